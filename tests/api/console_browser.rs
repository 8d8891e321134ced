//! The staff console in a real browser: headless Chromium driven through chromedriver (WebDriver),
//! at a phone's width, then a desktop's. Signs in, marks an order paid and shipped, uploads the
//! inventory sheet and reads its preview before importing it, gives a conversation back to the bot,
//! and tries the bot; no page is wider than the phone's screen. With `PHILIA_SCREENSHOTS=DIR` it saves
//! each page at both widths there (the README's pictures: `PHILIA_SCREENSHOTS=docs/screenshots`).
//! Without chromedriver it is skipped with a SKIPPED line, unless `PHILIA_REQUIRE_SERVICES=1` (CI).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use philia_bot::store::entities::items;
use philia_bot::store::entities::orders::{self, OrderStatus};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::console::{PASSWORD, SHEET, STAFF, console_app, order_of};
use crate::conversation::say;
use crate::helpers::{TestDatabase, report_skip, wait_for};

const TEST: &str = "console_browser::staff_run_the_shop_from_a_phone_in_a_real_browser";
const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn required() -> bool {
    std::env::var("PHILIA_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Starts chromedriver; `None` (reported) when it is not installed and services are not required.
async fn start_driver() -> Option<Driver> {
    philia_bot::install_crypto_provider();
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let spawned =
        Command::new("chromedriver").arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(e) if required() => {
            panic!("{TEST}: cannot start chromedriver ({e}); .ci/run installs chromium and chromium-driver")
        }
        Err(e) => {
            report_skip(TEST, &format!("cannot start chromedriver ({e}): apt-get install chromium chromium-driver"));
            return None;
        }
    };
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    let status = format!("{}/status", driver.url);
    wait_for("chromedriver to answer", Duration::from_secs(20), || {
        let status = status.clone();
        async move { reqwest::get(&status).await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
    })
    .await;
    Some(driver)
}

/// Headless Chromium at `size`; a phone's is emulated (a window cannot be that narrow), with its touch.
async fn browser(driver: &Driver, size: (u32, u32), phone: bool) -> Client {
    let mut caps = serde_json::Map::new();
    let binary =
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists());
    let mut options = json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        format!("--window-size={},{}", size.0, size.1), "--hide-scrollbars"]});
    if phone {
        options["mobileEmulation"] =
            json!({"deviceMetrics": {"width": size.0, "height": size.1, "pixelRatio": 1, "touch": true}});
    }
    if let Some(binary) = binary {
        options["binary"] = json!(binary);
    }
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector).capabilities(caps).connect(&driver.url).await.expect("a WebDriver session")
}

/// Where screenshots go, when asked for.
fn screenshot_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PHILIA_SCREENSHOTS")?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(dir);
    std::fs::create_dir_all(&dir).expect("the screenshot folder");
    Some(dir)
}

async fn snap(client: &Client, name: &str, width: &str) {
    if let Some(dir) = screenshot_dir() {
        let png = client.screenshot().await.expect("a screenshot");
        std::fs::write(dir.join(format!("{name}-{width}.png")), png).expect("the screenshot is written");
    }
}

/// Waits for an element, for up to ten seconds.
async fn find(client: &Client, xpath: &str) -> fantoccini::elements::Element {
    match client.wait().at_most(Duration::from_secs(10)).for_element(Locator::XPath(xpath)).await {
        Ok(element) => element,
        Err(e) => panic!("{xpath}: {e}\n{}", client.source().await.unwrap_or_default()),
    }
}

/// The page fits the window: nothing to scroll sideways.
async fn fits(client: &Client, page: &str) {
    let fits =
        client.execute("return document.documentElement.scrollWidth <= window.innerWidth + 1;", vec![]).await.unwrap();
    assert_eq!(fits, json!(true), "{page} is wider than the screen");
}

/// A small square picture, so the thumbnails show without the network.
fn swatch(colour: &str) -> String {
    format!(
        "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='56' height='56'%3E%3Crect width='56' height='56' fill='%23{colour}'/%3E%3C/svg%3E"
    )
}

#[tokio::test]
async fn staff_run_the_shop_from_a_phone_in_a_real_browser() {
    let Some(driver) = start_driver().await else { return };
    let app = console_app(TestDatabase::sqlite()).await;
    for (sku, title, price, colour) in
        [("JKT-010", "Barbour wax jacket", 12_000, "6b4f2a"), ("JKT-011", "Patagonia fleece", 7_000, "2a5d6b")]
    {
        let item = crate::console::stock(&app, sku, title, price).await;
        let mut item: items::ActiveModel = item.into();
        item.image_url = Set(Some(swatch(colour)));
        item.update(&app.state.db).await.unwrap();
    }
    let order = order_of(&app, "kim", "JKT-010").await;
    let number = order.order_number.clone();
    say(&app, "dana", "3").await;
    say(&app, "dana", "hello, anyone there??").await;
    let sheets = tempfile::tempdir().unwrap();
    let sheet = sheets.path().join("stock.csv");
    std::fs::write(&sheet, SHEET).unwrap();

    let client = browser(&driver, PHONE, true).await;
    let base = format!("http://localhost:{}", app.port.unwrap());

    // Signed out, the console sends the browser to the sign-in page.
    client.goto(&format!("{base}/staff/orders")).await.unwrap();
    find(&client, "//h1[.='Philia staff']").await;
    snap(&client, "sign-in", "phone").await;
    find(&client, "//input[@name='name']").await.send_keys(STAFF).await.unwrap();
    find(&client, "//input[@name='password']").await.send_keys(PASSWORD).await.unwrap();
    find(&client, "//button[.='Sign in']").await.click().await.unwrap();
    find(&client, &format!("//article[@id='order-{number}']")).await;
    fits(&client, "orders").await;

    // Paid, then shipped with its carrier and tracking number.
    let card = format!("//article[@id='order-{number}']");
    find(&client, &format!("{card}//form[input[@value='paid']]//button")).await.click().await.unwrap();
    find(&client, &format!("//div[contains(@class,'flash')]//p[contains(.,'{number}: paid')]")).await;
    find(&client, &format!("{card}//form[input[@value='shipped']]//input[@name='carrier']"))
        .await
        .send_keys("USPS")
        .await
        .unwrap();
    find(&client, &format!("{card}//form[input[@value='shipped']]//input[@name='tracking']"))
        .await
        .send_keys("9400 1111")
        .await
        .unwrap();
    snap(&client, "orders", "phone").await;
    find(&client, &format!("{card}//form[input[@value='shipped']]//button")).await.click().await.unwrap();
    find(&client, &format!("//div[contains(@class,'flash')]//p[contains(.,'{number}: shipped (USPS 9400 1111)')]"))
        .await;
    let row = orders::Entity::find()
        .filter(orders::Column::OrderNumber.eq(&number))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status, row.tracking_number.as_deref()), (OrderStatus::Shipped, Some("9400 1111")));

    // The inventory sheet: uploaded, its preview read, then imported.
    client.goto(&format!("{base}/staff/inventory")).await.unwrap();
    find(&client, "//article[@id='item-JKT-011']").await;
    fits(&client, "inventory").await;
    snap(&client, "inventory", "phone").await;
    find(&client, "//input[@type='file']").await.send_keys(&sheet.display().to_string()).await.unwrap();
    find(&client, "//button[.='Preview changes']").await.click().await.unwrap();
    let diff = find(&client, "//div[@class='diff']").await.text().await.unwrap();
    assert!(diff.contains("1 new, 1 price change(s)"), "{diff}");
    assert!(diff.contains("JKT-010 $120 → $99"), "{diff}");
    fits(&client, "the sheet's preview").await;
    snap(&client, "inventory-preview", "phone").await;
    find(&client, "//button[.='Import these changes']").await.click().await.unwrap();
    find(&client, "//div[contains(@class,'flash')]//p[contains(.,'Imported: 1 new, 1 price change(s)')]").await;
    let jacket =
        items::Entity::find().filter(items::Column::Sku.eq("JKT-010")).one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(jacket.price_minor, 9_900);

    // A conversation waiting for a person, given back to the bot.
    client.goto(&format!("{base}/staff/handoffs")).await.unwrap();
    find(&client, "//div[contains(@class,'bubble')][contains(.,'hello, anyone there??')]").await;
    fits(&client, "handoffs").await;
    snap(&client, "handoffs", "phone").await;
    find(&client, "//button[.='Give back to the bot']").await.click().await.unwrap();
    find(&client, "//div[contains(@class,'flash')]//p[.='The conversation is back with the bot.']").await;
    assert!(philia_bot::bot::handoff::list(&app.state.db).await.unwrap().is_empty());

    // Health, and the bot tried in the page.
    client.goto(&format!("{base}/staff/health")).await.unwrap();
    find(&client, "//div[contains(@class,'stat')]//span[.='Sending']").await;
    fits(&client, "health").await;
    snap(&client, "health", "phone").await;
    client.goto(&format!("{base}/staff/try")).await.unwrap();
    find(&client, "//input[@name='text']").await.send_keys("do you have a fleece?").await.unwrap();
    find(&client, "//button[.='Send (test)']").await.click().await.unwrap();
    find(&client, "//div[contains(@class,'bubble') and contains(@class,'in')]").await;
    fits(&client, "try the bot").await;
    snap(&client, "try", "phone").await;
    // The log of who did what.
    client.goto(&format!("{base}/staff/audit")).await.unwrap();
    find(&client, &format!("//ul[@class='log']/li[contains(.,'{number}')]")).await;
    fits(&client, "the log").await;
    let empty = client.find_all(Locator::XPath("//ul[@class='log']/li/code[normalize-space(.)='']")).await.unwrap();
    assert!(empty.is_empty(), "a change without a subject (signing in) shows no empty box");
    snap(&client, "log", "phone").await;

    let width = client.execute("return window.innerWidth;", vec![]).await.unwrap();
    assert_eq!(width, json!(PHONE.0), "the pages were seen at a phone's width");
    client.close().await.unwrap();

    // The same pages at a desktop's width, signed in again.
    let client = browser(&driver, DESKTOP, false).await;
    client.goto(&format!("{base}/staff/login")).await.unwrap();
    find(&client, "//h1[.='Philia staff']").await;
    fits(&client, "sign-in").await;
    snap(&client, "sign-in", "desktop").await;
    find(&client, "//input[@name='name']").await.send_keys(STAFF).await.unwrap();
    find(&client, "//input[@name='password']").await.send_keys(PASSWORD).await.unwrap();
    find(&client, "//button[.='Sign in']").await.click().await.unwrap();
    find(&client, "//h1[.='Orders']").await;
    for (page, path, ready) in [
        ("orders", "/staff/orders", "//article[contains(@class,'card')]"),
        ("inventory", "/staff/inventory", "//article[@id='item-JKT-012']"),
        ("handoffs", "/staff/handoffs", "//h1[.='Handoffs']"),
        ("health", "/staff/health", "//h1[.='Health']"),
        ("try", "/staff/try", "//div[contains(@class,'bubble')]"),
        ("log", "/staff/audit", "//ul[@class='log']/li"),
    ] {
        client.goto(&format!("{base}{path}")).await.unwrap();
        find(&client, ready).await;
        fits(&client, page).await;
        snap(&client, page, "desktop").await;
    }
    // Next week's sheet previewed at a desktop's width: one piece cheaper again, one new.
    let next = sheets.path().join("stock-next-week.csv");
    let next_sheet = SHEET.replace(",L,99,", ",L,89,")
        + "JKT-013,Stone Island overshirt,Stone Island,jacket,M,210,great,available,\n";
    std::fs::write(&next, next_sheet).unwrap();
    client.goto(&format!("{base}/staff/inventory")).await.unwrap();
    find(&client, "//input[@type='file']").await.send_keys(&next.display().to_string()).await.unwrap();
    find(&client, "//button[.='Preview changes']").await.click().await.unwrap();
    let diff = find(&client, "//div[@class='diff']").await.text().await.unwrap();
    assert!(diff.contains("1 new, 1 price change(s)") && diff.contains("JKT-010 $99 → $89"), "{diff}");
    fits(&client, "the sheet's preview").await;
    snap(&client, "inventory-preview", "desktop").await;
    client.close().await.unwrap();
}

/// An order's status in the database.
async fn status_of(app: &crate::helpers::TestApp, number: &str) -> OrderStatus {
    orders::Entity::find()
        .filter(orders::Column::OrderNumber.eq(number))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
        .status
}

/// A piece's status in the database.
async fn piece_status(app: &crate::helpers::TestApp, sku: &str) -> items::ItemStatus {
    items::Entity::find().filter(items::Column::Sku.eq(sku)).one(&app.state.db).await.unwrap().unwrap().status
}

/// The rest of an order's life from the phone: an unpaid order cancelled (its piece back on sale), a
/// shipped one marked delivered then returned with its piece put back on sale, another returned
/// without (its piece stays off sale) and relisted from the inventory page by hand.
#[tokio::test]
async fn staff_cancel_deliver_return_and_relist_from_a_phone_in_a_real_browser() {
    use items::ItemStatus;
    use philia_bot::shop::orders::Move;
    let test = "console_browser::staff_cancel_deliver_return_and_relist_from_a_phone_in_a_real_browser";
    let Some(driver) = start_driver().await else { return };
    let app = console_app(TestDatabase::sqlite()).await;
    for (sku, title, price) in [
        ("JKT-010", "Barbour wax jacket", 12_000),
        ("JKT-011", "Patagonia fleece", 7_000),
        ("JKT-012", "Arc'teryx shell", 18_000),
    ] {
        crate::console::stock(&app, sku, title, price).await;
    }
    let pending = order_of(&app, "kim", "JKT-010").await.order_number;
    let restocked = order_of(&app, "lee", "JKT-011").await.order_number;
    let kept = order_of(&app, "ann", "JKT-012").await.order_number;
    // Two of them paid and shipped already (those buttons are pressed by the test above).
    let staff = crate::shop::open_staff(crate::console::console_settings(&app._database)).await;
    for number in [&restocked, &kept] {
        staff.set_order_status(number, Move::to(OrderStatus::Paid)).await.unwrap();
        let shipped = Move { shipping: Some(("USPS", "9400 2222")), ..Move::to(OrderStatus::Shipped) };
        staff.set_order_status(number, shipped).await.unwrap();
    }

    let client = browser(&driver, PHONE, true).await;
    let base = format!("http://localhost:{}", app.port.unwrap());
    client.goto(&format!("{base}/staff/login")).await.unwrap();
    find(&client, "//input[@name='name']").await.send_keys(STAFF).await.unwrap();
    find(&client, "//input[@name='password']").await.send_keys(PASSWORD).await.unwrap();
    find(&client, "//button[.='Sign in']").await.click().await.unwrap();
    let card = |number: &str| format!("//article[@id='order-{number}']");
    let flash = |line: String| format!("//div[contains(@class,'flash')]//p[.='{line}']");

    // The unpaid order, cancelled: its piece is back on sale.
    find(&client, &format!("{}//button[.='Cancel order']", card(&pending))).await.click().await.unwrap();
    find(&client, &flash(format!("{pending}: cancelled"))).await;
    find(&client, &flash("JKT-010 is back on sale".into())).await;
    fits(&client, "orders after a cancellation").await;
    assert_eq!(status_of(&app, &pending).await, OrderStatus::Cancelled);
    assert_eq!(piece_status(&app, "JKT-010").await, ItemStatus::Available);
    let gone = client.find_all(Locator::XPath(&format!("{}//button", card(&pending)))).await.unwrap();
    assert!(gone.is_empty(), "a cancelled order has no buttons left");

    // Shipped, then delivered, then returned with its piece put back on sale.
    find(&client, &format!("{}//button[.='Mark delivered']", card(&restocked))).await.click().await.unwrap();
    find(&client, &flash(format!("{restocked}: delivered (USPS 9400 2222)"))).await;
    assert_eq!(status_of(&app, &restocked).await, OrderStatus::Delivered);
    assert!(
        client
            .find_all(Locator::XPath(&format!("{}//button[.='Mark delivered']", card(&restocked))))
            .await
            .unwrap()
            .is_empty(),
        "delivered once"
    );
    find(&client, &format!("{}//summary[.='Record a return']", card(&restocked))).await.click().await.unwrap();
    find(&client, &format!("{}//input[@name='restock']", card(&restocked))).await.click().await.unwrap();
    find(&client, &format!("{}//button[.='Mark returned']", card(&restocked))).await.click().await.unwrap();
    find(&client, &flash(format!("{restocked}: returned (USPS 9400 2222)"))).await;
    find(&client, &flash("JKT-011 is back on sale".into())).await;
    assert_eq!(status_of(&app, &restocked).await, OrderStatus::Returned);
    assert_eq!(piece_status(&app, "JKT-011").await, ItemStatus::Available, "returned with restock: on sale again");

    // Returned without restock: the piece stays off sale until staff relist it from the inventory page.
    find(&client, &format!("{}//summary[.='Record a return']", card(&kept))).await.click().await.unwrap();
    find(&client, &format!("{}//button[.='Mark returned']", card(&kept))).await.click().await.unwrap();
    find(&client, &flash(format!("{kept}: returned (USPS 9400 2222)"))).await;
    assert_eq!(status_of(&app, &kept).await, OrderStatus::Returned);
    assert_eq!(piece_status(&app, "JKT-012").await, ItemStatus::Sold, "a return stays off sale unless staff say so");
    let said = find(&client, "//div[contains(@class,'flash')]").await.text().await.unwrap();
    assert!(!said.contains("back on sale"), "{said}");

    client.goto(&format!("{base}/staff/inventory")).await.unwrap();
    find(&client, "//article[@id='item-JKT-012']//button[.='Put back on sale']").await.click().await.unwrap();
    find(&client, "//div[contains(@class,'flash')]//p[starts-with(.,'JKT-012: available')]").await;
    fits(&client, "inventory after a relist").await;
    assert_eq!(piece_status(&app, "JKT-012").await, ItemStatus::Available);
    find(&client, "//article[@id='item-JKT-012']//button[.='Mark sold']").await;

    // Who did each, in the log.
    use philia_bot::store::entities::staff_audit;
    use sea_orm::QueryOrder;
    let actions: Vec<(String, String)> = staff_audit::Entity::find()
        .order_by_asc(staff_audit::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action != "signed in")
        .map(|e| (e.action, e.subject))
        .collect();
    assert_eq!(
        actions,
        [
            ("order cancelled".to_owned(), pending.clone()),
            ("order delivered".to_owned(), restocked.clone()),
            ("order returned".to_owned(), restocked.clone()),
            ("order returned".to_owned(), kept.clone()),
            ("put back on sale".to_owned(), "JKT-012".to_owned()),
        ],
        "{test}"
    );
    let width = client.execute("return window.innerWidth;", vec![]).await.unwrap();
    assert_eq!(width, json!(PHONE.0), "the pages were seen at a phone's width");
    client.close().await.unwrap();
}
