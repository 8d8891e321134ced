//! The `philia-bot` binary itself: the commands a shop owner and an operator type.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use philia_bot::store::entities::{messages, orders};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::helpers::TestDatabase;
use crate::on_both_databases;

const BIN: &str = env!("CARGO_BIN_EXE_philia-bot");

/// The binary with an empty environment (only PATH), so the machine's variables cannot leak in.
pub fn philia(cwd: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).current_dir(cwd);
    command
}

pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

pub fn repo_config_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

#[test]
fn config_check_accepts_the_shipped_config() {
    let dir = tempfile::tempdir().unwrap();
    let output =
        philia(dir.path()).arg("config").arg("check").arg("--config-dir").arg(repo_config_dir()).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
}

#[test]
fn config_check_names_the_file_and_field_of_each_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(config.join("default.toml"), "[server]\nport = \"eighty\"\n[worker]\nconcurency = 4\n").unwrap();
    std::fs::write(config.join("replys.toml"), "").unwrap();
    let output = philia(dir.path()).args(["config", "check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.iter().any(|l| l.starts_with("config/default.toml: server.port: invalid type")), "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("config/default.toml: worker.concurency: unknown field")), "{stdout}");
    assert!(lines.iter().any(|l| l.starts_with("config/replys.toml: (file): not a known config file")), "{stdout}");
}

/// A price typed into a customer-facing text goes stale when the shop's settings change (issue 15: one
/// truth): `config check` warns, naming the file, the field and the amount, and still passes.
#[test]
fn config_check_warns_about_an_amount_written_by_hand_and_passes() {
    let config = crate::helpers::shipped_config_copy();
    let config = config.path();
    let faq = std::fs::read_to_string(config.join("faq.toml")).unwrap();
    let shipping = faq.find("[shipping]").unwrap();
    let answer = shipping + faq[shipping..].find("answer = \"").unwrap() + "answer = \"".len();
    let edited = format!("{}Shipping is $6 flat. {}", &faq[..answer], &faq[answer..]);
    std::fs::write(config.join("faq.toml"), edited).unwrap();
    let output = philia(config).args(["config", "check", "--config-dir"]).arg(config).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let all = text(&output);
    assert!(all.contains("faq.toml: shipping.answer: \"$6\" is written by hand"), "{all}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().last(), Some("ok"), "{all}");
}

/// `config/examples.tsv` is staff's to edit: a row `config check` cannot use names the file, the line and
/// what is wrong with it.
#[test]
fn config_check_names_the_line_of_a_bad_example() {
    let config = crate::helpers::shipped_config_copy();
    let config = config.path();
    let mut examples = std::fs::read_to_string(config.join("examples.tsv")).unwrap();
    let line = examples.lines().count() + 1;
    examples.push_str("how much for the jacket\tprize\n");
    std::fs::write(config.join("examples.tsv"), examples).unwrap();
    let output = philia(config).args(["config", "check", "--config-dir"]).arg(config).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expected = format!("examples.tsv: line {line}: unknown intent \"prize\" (known: ");
    assert!(stdout.lines().any(|l| l.contains(&expected)), "{stdout}");
}

/// What staff do when the bot misread a message: add it to `config/examples.tsv` with the intent it meant,
/// and from the next start the router routes it that way (and its model leans that way on messages like it).
#[test]
fn a_message_added_to_the_examples_is_routed_as_taught() {
    let config = crate::helpers::shipped_config_copy();
    let config = config.path();
    std::fs::write(config.join("table.tsv"), "slide me that flannel\treserve\n").unwrap();
    let eval = || {
        philia(config)
            .args(["eval", "routing", "table.tsv", "--min", "100", "--config-dir"])
            .arg(config)
            .output()
            .unwrap()
    };
    let before = eval();
    assert!(!before.status.success(), "misrouted before: {}", text(&before));
    let mut examples = std::fs::read_to_string(config.join("examples.tsv")).unwrap();
    examples.push_str("slide me that flannel\treserve\n");
    std::fs::write(config.join("examples.tsv"), examples).unwrap();
    let check = philia(config).args(["config", "check", "--config-dir"]).arg(config).output().unwrap();
    assert!(check.status.success(), "{}", text(&check));
    let after = eval();
    assert!(after.status.success(), "routed as taught: {}", text(&after));
}

#[test]
fn production_refuses_to_start_and_names_each_missing_setting() {
    let dir = tempfile::tempdir().unwrap();
    let output = philia(dir.path()).args(["serve", "--role", "web"]).env("ENVIRONMENT", "production").output().unwrap();
    assert!(!output.status.success());
    let all = text(&output);
    for needle in ["TIKTOK_WEBHOOK_SECRET", "DATABASE_URL", "REDIS_URL"] {
        assert!(all.contains(needle), "missing {needle} in: {all}");
    }
    assert!(!dir.path().join("data").exists(), "nothing is created when start-up is refused");
}

#[test]
fn serve_with_no_configuration_runs_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    // Port 0 instead of 8000 so tests can run side by side; everything else is the bare default.
    let mut child = philia(dir.path())
        .arg("serve")
        .env("PHILIA_SERVER__PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines.by_ref().map_while(Result::ok).find(|l| l.contains("philia-bot started")).expect("start line");
    for part in ["role=all", "database=sqlite (./data/philia.db, embedded)", "NOT durable", "tiktok=dry run"] {
        assert!(started.contains(part), "{part:?} missing from {started}");
    }
    let port: u16 =
        started.split("http=127.0.0.1:").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    let body = http_get(port, "/health");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains(r#""db":"connected""#), "{body}");
    assert!(dir.path().join("data/philia.db").exists(), "the embedded database file is created");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "serve did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "graceful exit after SIGTERM: {exit:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("SIGTERM received")), "{rest:?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("no items yet") && l.contains("philia-bot inventory import examples/inventory.csv")),
        "an empty shop is offered the demo inventory: {rest:?}"
    );
}

/// A minimal HTTP/1.1 GET, so this test does not need an HTTP client with a TLS provider.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

on_both_databases!(
    migrate_up_status_and_down_manage_the_schema,
    an_unpaid_order_ships_only_with_unpaid_and_a_return_with_restock_goes_back_on_sale,
);

async fn migrate_up_status_and_down_manage_the_schema(db: TestDatabase) {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = philia(dir.path()).args(args).env("DATABASE_URL", &db.url).output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let status = run(&["migrate", "status"]);
    let migrations = status.lines().count();
    assert!(migrations >= 10 && status.lines().all(|l| l.starts_with("pending ")), "{status}");

    // Every migration the status listed is applied, whatever their number grows to.
    assert!(run(&["migrate", "up"]).contains(&format!("applied {migrations} migration(s)")));
    let status = run(&["migrate", "status"]);
    assert!(status.lines().all(|l| l.starts_with("applied ")), "{status}");
    assert_eq!(tables(&db).await, expected_tables(), "{}", db.kind);

    run(&["migrate", "down"]);
    assert!(run(&["migrate", "status"]).lines().all(|l| l.starts_with("pending ")));
    let left = tables(&db).await;
    assert!(expected_tables().iter().all(|t| !left.contains(t)), "{left:?}");
}

fn expected_tables() -> Vec<String> {
    let mut tables = [
        "conversations",
        "items",
        "messages",
        "oauth_states",
        "order_items",
        "orders",
        "processed_events",
        "reply_quota",
        "reservations",
        "staff_accounts",
        "staff_audit",
        "staff_sessions",
        "tiktok_tokens",
        "unparsed_webhooks",
        "users",
        "waitlist",
    ]
    .map(String::from)
    .to_vec();
    tables.sort();
    tables
}

/// The application tables present in the database (the migrations' own bookkeeping table excluded).
async fn tables(db: &TestDatabase) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let conn = Database::connect(&db.url).await.unwrap();
    let sql = if db.kind == "postgres" {
        "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    };
    let rows = conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql)).await.unwrap();
    let mut names: Vec<String> = rows
        .iter()
        .map(|row| row.try_get::<String>("", "name").unwrap())
        .filter(|name| name != "seaql_migrations" && !name.starts_with("sqlite_"))
        .collect();
    names.sort();
    conn.close().await.unwrap();
    names
}

#[tokio::test]
async fn sign_output_is_accepted_by_the_ingress_and_a_changed_byte_is_not() {
    use std::io::Write;
    let app = crate::helpers::spawn_app(TestDatabase::sqlite()).await;
    let body = crate::helpers::tiktok_message("signed-1", "sam", "hi");
    let dir = tempfile::tempdir().unwrap();
    let mut child = philia(dir.path())
        .args(["sign", "--secret", crate::helpers::WEBHOOK_SECRET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let line = String::from_utf8(output.stdout).unwrap();
    let header = line.trim().strip_prefix("TikTok-Signature: ").expect("a header line").to_owned();
    let post = |payload: String| app.webhook_request().header("TikTok-Signature", header.clone()).body(payload).send();
    assert_eq!(post(body.clone()).await.unwrap().status(), 200);
    let changed = body.replacen("hi", "hj", 1);
    assert_eq!(post(changed).await.unwrap().status(), 401, "one byte changed");
    app.stop().await.unwrap();
}

#[test]
fn inventory_import_works_on_the_embedded_default_and_reports_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/inventory.csv");
    let run =
        |args: &[&str]| philia(dir.path()).arg("--config-dir").arg(repo_config_dir()).args(args).output().unwrap();
    let refused = run(&["inventory", "import", example.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.starts_with("database: sqlite (./data/philia.db, embedded)\n"), "which database, first: {said}");
    assert!(said.contains("no database at ./data/philia.db") && said.contains("--create"), "{said}");
    assert!(!dir.path().join("data/philia.db").exists(), "no fresh, empty shop created by accident");
    let imported = run(&["inventory", "import", "--create", example.to_str().unwrap()]);
    assert!(imported.status.success(), "{}", text(&imported));
    assert!(String::from_utf8_lossy(&imported.stdout).contains("imported 30 item(s): 30 new, 0 changed, 0 unchanged"));
    assert!(dir.path().join("data/philia.db").exists(), "the embedded database, created and migrated");
    let listed = run(&["inventory", "list", "--status", "available"]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("JKT-001") && listed.contains("Carhartt Detroit jacket brown duck"), "{listed}");
    assert!(listed.trim_end().ends_with("29 item(s)"), "one of the 30 is sold: {listed}");

    std::fs::write(dir.path().join("bad.csv"), "sku,title,category,condition,price\nA-1,Tee,tee,ok,1O\n").unwrap();
    let bad = run(&["inventory", "import", "bad.csv"]);
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("bad.csv: row 2, column price: \"1O\" is not a price"), "{stderr}");
    let wrong = run(&["orders", "set-status", "PH-NOPE00", "paid"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("no order PH-NOPE00"), "{}", text(&wrong));
}

#[tokio::test]
async fn health_answers_ok_for_a_ready_app_and_fails_when_nothing_listens() {
    let app = crate::helpers::spawn_app(TestDatabase::sqlite()).await;
    let dir = tempfile::tempdir().unwrap();
    let ready = format!("{}/ready", app.address);
    // Off the test's runtime, which serves the app while the probe waits for it; a generous timeout,
    // since this checks the answer, not how fast a loaded machine gives it.
    let mut probe = philia(dir.path());
    probe.args(["health", "--url", &ready, "--timeout-ms", "30000"]);
    let output = tokio::task::spawn_blocking(move || probe.output().unwrap()).await.unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
    app.stop().await.unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nobody = format!("http://127.0.0.1:{port}/ready");
    let output = philia(dir.path()).args(["health", "--url", &nobody]).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&nobody), "{}", text(&output));
}

#[tokio::test]
async fn a_staff_move_tells_the_customer_at_once_and_the_tables_show_who_holds_what() {
    let db = TestDatabase::sqlite();
    let url = db.url.clone();
    let app = crate::helpers::spawn_app(db).await;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/inventory.csv");
    let dir = tempfile::tempdir().unwrap();
    let staff = move |args: &[&str]| {
        let mut command = philia(dir.path());
        command.env("DATABASE_URL", &url).arg("--config-dir").arg(repo_config_dir()).args(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
    };
    let imported = staff(&["inventory", "import", example.to_str().unwrap()]).await.unwrap();
    assert!(imported.status.success(), "{}", text(&imported));
    assert!(String::from_utf8_lossy(&imported.stderr).starts_with("database: sqlite ("), "{}", text(&imported));
    crate::conversation::say(&app, "kim", "I'll take DNM-001").await;
    crate::conversation::say(&app, "kim", "I'll take JKT-001").await;

    // The shop's zone as it is called today (EST in winter, EDT in summer), read before and after the
    // command: on the night the clocks change it may be called either.
    let zone_now = || chrono::Utc::now().with_timezone(&chrono_tz::America::New_York).format("%Z").to_string();
    let zone_before = zone_now();
    let listed = staff(&["inventory", "list", "--status", "reserved"]).await.unwrap();
    let mut zones = vec![zone_before, zone_now()];
    let table = String::from_utf8_lossy(&listed.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    let named = zones.iter().any(|zone| lines[0].contains(&format!("HELD UNTIL ({zone})")));
    assert!(lines[0].contains("HELD BY") && named, "{table}");
    let denim = lines.iter().find(|l| l.contains("DNM-001")).expect("the held jeans");
    assert!(denim.contains("W32 L30") && denim.contains("@kim"), "{table}");
    let bars = |line: &str| line.match_indices('|').map(|(i, _)| line[..i].chars().count()).collect::<Vec<_>>();
    assert!(lines.iter().take(lines.len() - 1).all(|l| bars(l) == bars(lines[0])), "columns line up: {table}");
    let json = staff(&["inventory", "list", "--json", "--status", "reserved"]).await.unwrap();
    let items: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 2);
    assert!(items.as_array().unwrap().iter().all(|i| i["held_by"] == "kim" && i["held_until"].is_string()));

    crate::conversation::say(&app, "kim", "checkout").await;
    let number = orders::Entity::find().one(&app.state.db).await.unwrap().unwrap().order_number;
    let paid = staff(&["orders", "set-status", &number, "paid"]).await.unwrap();
    assert!(paid.status.success(), "{}", text(&paid));
    let said = String::from_utf8_lossy(&paid.stdout).into_owned();
    assert_eq!(
        said,
        format!(
            "{number}: paid\ntold @kim about their order: dry run (no TikTok credentials), printed in the log on standard error, not sent\n"
        )
    );
    let notice = messages::Entity::find()
        .filter(messages::Column::Role.eq(messages::Role::System))
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(notice.delivery_status, Some(messages::DeliveryStatus::DryRun), "delivered by the command itself");
    let shown = staff(&["orders", "show", &number, "--json"]).await.unwrap();
    let order: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!((order["status"].as_str(), order["items"].as_array().map(Vec::len)), (Some("paid"), Some(2)));
    let relist = staff(&["inventory", "set-status", "DNM-001", "available"]).await.unwrap();
    assert_eq!(relist.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&relist.stderr).contains(&format!("DNM-001 is in order {number} (paid)")),
        "{}",
        text(&relist)
    );
    // The sheet imported again keeps the ordered piece sold, and says since when in the shop's zone, as
    // the tables and the refusal above do.
    let again = staff(&["inventory", "import", example.to_str().unwrap()]).await.unwrap();
    assert!(again.status.success(), "{}", text(&again));
    let said = String::from_utf8_lossy(&again.stdout).into_owned();
    let kept = said.lines().find(|l| l.contains("DNM-001 was sold in order")).unwrap_or_else(|| panic!("{said}"));
    assert!(kept.starts_with(&format!("row 3: DNM-001 was sold in order {number} (paid) on ")), "{kept}");
    zones.push(zone_now());
    let named = zones.iter().any(|zone| kept.contains(&format!(" {zone}; its status stays sold")));
    assert!(named, "the time with its zone: {kept}");
    app.stop().await.unwrap();
}

/// `orders set-status … shipped --unpaid` and `returned --restock` through the binary: shipping an unpaid
/// order is refused until staff say `--unpaid`, then it ships without becoming paid; a return with
/// `--restock` puts the piece back on sale and tells whoever waits for it, who can then take it.
async fn an_unpaid_order_ships_only_with_unpaid_and_a_return_with_restock_goes_back_on_sale(db: TestDatabase) {
    use philia_bot::store::entities::items::{self, ItemStatus};
    use philia_bot::store::entities::orders::OrderStatus;
    let url = db.url.clone();
    let app = crate::helpers::spawn_app(db).await;
    crate::console::stock(&app, "JKT-050", "Carhartt chore coat", 9_000).await;
    let number = crate::console::order_of(&app, "kim", "JKT-050").await.order_number;
    let asked = crate::conversation::say(&app, "lee", "is JKT-050 still available?").await;
    assert!(asked.contains("reserved in someone's order"), "lee waits for it: {asked}");
    let dir = tempfile::tempdir().unwrap();
    let staff = move |args: &[&str]| {
        let mut command = philia(dir.path());
        command.env("DATABASE_URL", &url).arg("--config-dir").arg(repo_config_dir()).args(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
    };
    let order = || async {
        orders::Entity::find()
            .filter(orders::Column::OrderNumber.eq(&number))
            .one(&app.state.db)
            .await
            .unwrap()
            .unwrap()
    };
    let piece = || async {
        items::Entity::find().filter(items::Column::Sku.eq("JKT-050")).one(&app.state.db).await.unwrap().unwrap()
    };
    let ship = ["orders", "set-status", &number, "shipped", "--carrier", "USPS", "--tracking", "9400 3333"];

    let refused = staff(&ship).await.unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains(&format!("order {number} is not paid yet: mark it paid first, or ship it unpaid with --unpaid")),
        "{}",
        text(&refused)
    );
    assert_eq!(order().await.status, OrderStatus::Pending, "nothing changed");

    let shipped = staff(&[&ship[..], &["--unpaid"]].concat()).await.unwrap();
    assert!(shipped.status.success(), "{}", text(&shipped));
    let said = String::from_utf8_lossy(&shipped.stdout).into_owned();
    assert_eq!(said.lines().next(), Some(format!("{number}: shipped (USPS 9400 3333)").as_str()), "{said}");
    assert!(said.contains("told @kim about their order"), "{said}");
    let row = order().await;
    assert_eq!((row.status, row.tracking_number.as_deref()), (OrderStatus::Shipped, Some("9400 3333")));
    assert!(row.shipped_at.is_some() && row.paid_at.is_none(), "shipped, still not paid: {row:?}");
    assert_eq!(piece().await.status, ItemStatus::Sold);

    let misplaced = staff(&["orders", "set-status", &number, "delivered", "--restock"]).await.unwrap();
    assert_eq!(misplaced.status.code(), Some(1), "{}", text(&misplaced));
    assert!(String::from_utf8_lossy(&misplaced.stderr).contains("--restock goes with `returned`"));
    assert_eq!(order().await.status, OrderStatus::Shipped);

    let returned = staff(&["orders", "set-status", &number, "returned", "--restock"]).await.unwrap();
    assert!(returned.status.success(), "{}", text(&returned));
    let said = String::from_utf8_lossy(&returned.stdout).into_owned();
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(
        lines[..2],
        [format!("{number}: returned (USPS 9400 3333)").as_str(), "JKT-050 is back on sale"],
        "{said}"
    );
    assert!(lines.iter().any(|l| l.starts_with("told @kim")), "{said}");
    assert!(lines.iter().any(|l| l.starts_with("told @lee")), "the customer waiting for it is told: {said}");
    let row = order().await;
    assert!(row.status == OrderStatus::Returned && row.returned_at.is_some(), "{row:?}");
    assert_eq!(piece().await.status, ItemStatus::Available, "back on sale");
    assert!(crate::conversation::say(&app, "lee", "I'll take JKT-050").await.contains("It's yours!"));
    app.stop().await.unwrap();
}
