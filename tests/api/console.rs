//! The staff console over HTTP, as a browser without JavaScript uses it: nothing is served signed out,
//! every form needs its CSRF token, sign-in is rate limited and sessions end, and each button does to
//! the shop and its customers what the same CLI command does, written to the audit log.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use philia_bot::config::Settings;
use philia_bot::store::entities::items::{self, ItemStatus};
use philia_bot::store::entities::orders::{self, OrderStatus};
use philia_bot::store::entities::{staff_audit, staff_sessions};
use philia_bot::web::staff::accounts;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use secrecy::SecretString;

use crate::conversation::{say, user_id};
use crate::helpers::{TestApp, TestDatabase, spawn_app_with, test_settings};
use crate::on_both_databases;

pub const STAFF: &str = "ana";
pub const PASSWORD: &str = "correct horse battery";

/// Test settings with the console on.
pub fn console_settings(db: &TestDatabase) -> Settings {
    let mut settings = test_settings(db);
    settings.staff.enabled = true;
    settings.staff.session_key = Some(SecretString::from("k".repeat(32) + "-console-test-session-key"));
    settings
}

/// The whole app with the console on and one staff account, `ana`.
pub async fn console_app(db: TestDatabase) -> TestApp {
    console_app_on(db, None, philia_bot::role::Role::All).await
}

/// The app in `role` with the console on, on `redis` when given, and one staff account, `ana`.
async fn console_app_on(
    db: TestDatabase,
    redis: Option<&crate::helpers::TestRedis>,
    role: philia_bot::role::Role,
) -> TestApp {
    let mut settings = console_settings(&db);
    crate::helpers::use_redis(&mut settings, redis);
    let app = spawn_app_with(db, settings, role).await;
    accounts::add(&app.state.db, STAFF, PASSWORD).await.expect("staff account");
    app
}

/// A browser without JavaScript: keeps the console's cookies, follows no redirect by itself.
pub struct Browser {
    base: String,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
    /// The address it comes from, as a trusted proxy says (`X-Forwarded-For`).
    forwarded_for: Option<String>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { base: app.address.clone(), client, cookies: HashMap::new(), forwarded_for: None }
    }

    /// The same browser behind a trusted proxy that says it comes from `address`.
    pub fn from(mut self, address: &str) -> Self {
        self.forwarded_for = Some(address.to_owned());
        self
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base)).header(COOKIE, self.cookie_header());
        match &self.forwarded_for {
            Some(address) => request.header("X-Forwarded-For", address),
            None => request,
        }
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let response = self.request(reqwest::Method::GET, path).send().await.unwrap();
        self.keep(&response);
        response
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let response = self.request(reqwest::Method::POST, path).form(form).send().await.unwrap();
        self.keep(&response);
        response
    }

    pub async fn post_multipart(&mut self, path: &str, form: reqwest::multipart::Form) -> reqwest::Response {
        let response = self.request(reqwest::Method::POST, path).multipart(form).send().await.unwrap();
        self.keep(&response);
        response
    }

    /// The page's text, after a 200.
    pub async fn page(&mut self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.text().await.unwrap()
    }

    /// Signs in; returns the response to the sign-in form.
    pub async fn sign_in_as(&mut self, name: &str, password: &str) -> reqwest::Response {
        let form = self.page("/staff/login").await;
        let csrf = csrf_of(&form);
        self.post("/staff/login", &[("name", name), ("password", password), ("csrf", &csrf)]).await
    }

    pub async fn sign_in(&mut self) {
        let response = self.sign_in_as(STAFF, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[LOCATION], "/staff/orders");
    }

    /// The CSRF token of the session, from any page's forms.
    pub async fn csrf(&mut self) -> String {
        csrf_of(&self.page("/staff/orders").await)
    }

    /// Posts a console form with the session's CSRF token; returns the page it leads to.
    pub async fn submit(&mut self, path: &str, form: &[(&str, &str)]) -> String {
        let csrf = self.csrf().await;
        let mut fields = form.to_vec();
        fields.push(("csrf", &csrf));
        let response = self.post(path, &fields).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "POST {path}: {:?}", response.text().await);
        let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
        self.page(location.split('#').next().unwrap()).await
    }
}

/// The value of the first `csrf` field of a page.
pub fn csrf_of(html: &str) -> String {
    let at = html.find(r#"name="csrf" value=""#).expect("the page has a CSRF field") + r#"name="csrf" value=""#.len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// Every console route, with its method.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/staff"),
    ("GET", "/staff/orders"),
    ("GET", "/staff/audit"),
    ("POST", "/staff/logout"),
    ("POST", "/staff/orders/PH-AAAAAA/status"),
    ("POST", "/staff/orders/PH-AAAAAA/tracking"),
    ("GET", "/staff/inventory"),
    ("GET", "/staff/inventory/export"),
    ("POST", "/staff/inventory/JKT-010/status"),
    ("POST", "/staff/inventory/preview"),
    ("POST", "/staff/inventory/import"),
    ("GET", "/staff/handoffs"),
    ("POST", "/staff/handoffs/release"),
    ("GET", "/staff/health"),
    ("POST", "/staff/health/dead"),
    ("GET", "/staff/try"),
    ("POST", "/staff/try"),
];

on_both_databases!(
    the_console_is_off_unless_configured,
    no_console_route_is_served_signed_out,
    every_console_form_without_its_csrf_token_is_refused,
    sign_in_sets_a_private_cookie_and_a_session_that_ends,
    sign_in_attempts_are_limited_per_account_and_per_address,
    removing_an_account_or_resetting_its_password_signs_it_out,
    staff_accounts_are_added_reset_and_removed_with_the_binary,
    an_order_is_marked_paid_and_shipped_from_the_console_and_the_customer_told,
    pieces_are_found_taken_off_sale_and_relisted_with_the_clis_refusals,
    an_inventory_sheet_is_previewed_before_anything_is_written_then_imported,
    a_waiting_conversation_is_shown_and_given_back_to_the_bot,
    the_health_page_says_how_the_bot_is_doing_in_words,
    the_bot_is_tried_in_the_page_on_a_copy_that_never_touches_the_shop,
);

async fn the_console_is_off_unless_configured(db: TestDatabase) {
    let app = crate::helpers::spawn_app(db).await;
    assert_eq!(app.get("/staff/login").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("/staff/orders").await.status(), StatusCode::NOT_FOUND);
}

async fn no_console_route_is_served_signed_out(db: TestDatabase) {
    let app = console_app(db).await;
    let mut browser = Browser::new(&app);
    for (method, path) in ROUTES {
        let response = if *method == "GET" { browser.get(path).await } else { browser.post(path, &[]).await };
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{method} {path}");
        assert_eq!(response.headers()[LOCATION], "/staff/login", "{method} {path}");
    }
    // A cookie the console did not make is no session either.
    browser.cookies.insert("philia_staff".into(), "forged".into());
    assert_eq!(browser.get("/staff/orders").await.status(), StatusCode::SEE_OTHER);
    // The sign-in page and the console's own script and styles are served to anyone.
    assert_eq!(browser.get("/staff/login").await.status(), StatusCode::OK);
    let script = browser.get("/staff/static/htmx.min.js").await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.text().await.unwrap().contains("htmx"));
}

async fn every_console_form_without_its_csrf_token_is_refused(db: TestDatabase) {
    let app = console_app(db).await;
    let mut browser = Browser::new(&app);
    // The sign-in form too, before there is a session.
    let _ = browser.page("/staff/login").await;
    let response = browser.post("/staff/login", &[("name", STAFF), ("password", PASSWORD)]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = browser.post("/staff/login", &[("name", STAFF), ("password", PASSWORD), ("csrf", "0")]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    browser.sign_in().await;
    for (method, path) in ROUTES.iter().filter(|(method, _)| *method == "POST") {
        let missing = browser.post(path, &[("to", "paid")]).await;
        assert_eq!(missing.status(), StatusCode::FORBIDDEN, "{method} {path} without a token");
        let wrong = browser.post(path, &[("to", "paid"), ("csrf", &"0".repeat(64))]).await;
        assert_eq!(wrong.status(), StatusCode::FORBIDDEN, "{method} {path} with another token");
    }
    // Still signed in: a refused form changes nothing.
    assert_eq!(browser.get("/staff/orders").await.status(), StatusCode::OK);
}

async fn sign_in_sets_a_private_cookie_and_a_session_that_ends(db: TestDatabase) {
    let app = console_app(db).await;
    let mut browser = Browser::new(&app);
    let wrong = browser.sign_in_as(STAFF, "not the password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.unwrap().contains("do not match"));
    let unknown = browser.sign_in_as("nobody", PASSWORD).await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED, "an unknown name is refused alike");

    let signed_in = browser.sign_in_as("  ANA ", PASSWORD).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = signed_in
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("philia_staff="))
        .expect("a session cookie");
    for flag in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/staff"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    let session = staff_sessions::Entity::find().one(&app.state.db).await.unwrap().expect("a session row");
    let value = browser.cookies["philia_staff"].clone();
    assert!(!value.contains(&session.token_hash), "the cookie is encrypted, the table has only a hash");
    let page = browser.page("/staff/orders").await;
    assert!(page.contains("Sign out ana"), "{page}");

    let audit = staff_audit::Entity::find().all(&app.state.db).await.unwrap();
    assert!(audit.iter().any(|e| e.staff_name == STAFF && e.action == "signed in"), "{audit:?}");

    // A session ends at its time, whatever the cookie says.
    let mut ended: staff_sessions::ActiveModel = session.into();
    ended.expires_at = Set(Utc::now() - Duration::seconds(1));
    ended.update(&app.state.db).await.unwrap();
    let response = browser.get("/staff/orders").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/staff/login");

    // Signing out ends the session in the database, not only in the browser.
    browser.sign_in().await;
    let csrf = browser.csrf().await;
    let kept_cookie = browser.cookies["philia_staff"].clone();
    assert_eq!(browser.post("/staff/logout", &[("csrf", &csrf)]).await.status(), StatusCode::SEE_OTHER);
    browser.cookies.insert("philia_staff".into(), kept_cookie);
    assert_eq!(browser.get("/staff/orders").await.status(), StatusCode::SEE_OTHER);
}

async fn sign_in_attempts_are_limited_per_account_and_per_address(db: TestDatabase) {
    let mut settings = console_settings(&db);
    settings.staff.login_attempts = 3;
    let app = spawn_app_with(db, settings, philia_bot::role::Role::All).await;
    accounts::add(&app.state.db, STAFF, PASSWORD).await.unwrap();
    accounts::add(&app.state.db, "bo", PASSWORD).await.unwrap();
    let mut browser = Browser::new(&app);
    for _ in 0..3 {
        assert_eq!(browser.sign_in_as(STAFF, "guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    let limited = browser.sign_in_as(STAFF, PASSWORD).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS, "the right password waits too");
    assert!(limited.text().await.unwrap().contains("Too many sign-in attempts"));
    // The address used up its attempts as well: another account from it waits.
    assert_eq!(browser.sign_in_as("bo", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(staff_sessions::Entity::find().one(&app.state.db).await.unwrap().is_none());
}

async fn removing_an_account_or_resetting_its_password_signs_it_out(db: TestDatabase) {
    let app = console_app(db).await;
    let mut browser = Browser::new(&app);
    browser.sign_in().await;
    accounts::reset_password(&app.state.db, STAFF, "a brand new password").await.unwrap();
    assert_eq!(browser.get("/staff/orders").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(browser.sign_in_as(STAFF, PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(browser.sign_in_as(STAFF, "a brand new password").await.status(), StatusCode::SEE_OTHER);
    accounts::remove(&app.state.db, STAFF).await.unwrap();
    assert_eq!(browser.get("/staff/orders").await.status(), StatusCode::SEE_OTHER);
    assert!(matches!(accounts::add(&app.state.db, "Ana B", PASSWORD).await, Err(accounts::AccountError::BadName(_))));
}

/// Runs `philia-bot ARGS` on the app's database, with `stdin` piped in (a password, as a script types it).
async fn philia_staff(url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut command = crate::cli::philia(dir.path());
    command.env("DATABASE_URL", url).arg("--config-dir").arg(crate::cli::repo_config_dir()).args(args);
    let stdin = stdin.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        drop(dir);
        output
    })
    .await
    .unwrap()
}

/// `philia-bot staff add|list|reset-password|remove` through the binary, against the console that
/// serves the same database: the account it adds signs in, a reset or a removal signs it out at once.
async fn staff_accounts_are_added_reset_and_removed_with_the_binary(db: TestDatabase) {
    use crate::cli::text;
    let url = db.url.clone();
    let app = console_app(db).await;
    let out = |output: &std::process::Output| String::from_utf8_lossy(&output.stdout).into_owned();

    let added = philia_staff(&url, &["staff", "add", "Bo"], "bo's long password\n").await;
    assert!(added.status.success(), "{}", text(&added));
    assert_eq!(out(&added), "bo: staff account created; sign in at /staff\n");
    let again = philia_staff(&url, &["staff", "add", "bo"], "another long password\n").await;
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(text(&again).contains("there is already a staff account \"bo\""), "{}", text(&again));
    let short = philia_staff(&url, &["staff", "add", "cy"], "short\n").await;
    assert_eq!(short.status.code(), Some(1), "{}", text(&short));
    assert!(text(&short).contains("the password is too short"), "{}", text(&short));
    let listed = philia_staff(&url, &["staff", "list"], "").await;
    let listed = out(&listed);
    assert!(listed.contains("| ana ") && listed.contains("| bo ") && !listed.contains("| cy "), "{listed}");
    assert!(listed.trim_end().ends_with("2 staff account(s)"), "{listed}");

    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in_as("bo", "bo's long password").await.status(), StatusCode::SEE_OTHER);
    assert!(browser.page("/staff/orders").await.contains("Sign out bo"));

    let reset = philia_staff(&url, &["staff", "reset-password", "BO"], "bo's new long password\n").await;
    assert!(reset.status.success(), "{}", text(&reset));
    assert_eq!(out(&reset), "bo: new password set, signed out everywhere\n");
    let response = browser.get("/staff/orders").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "the old session ended");
    assert_eq!(response.headers()[LOCATION], "/staff/login");
    assert_eq!(browser.sign_in_as("bo", "bo's long password").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(browser.sign_in_as("bo", "bo's new long password").await.status(), StatusCode::SEE_OTHER);
    assert_eq!(browser.get("/staff/orders").await.status(), StatusCode::OK);

    let removed = philia_staff(&url, &["staff", "remove", "bo"], "").await;
    assert!(removed.status.success(), "{}", text(&removed));
    assert_eq!(out(&removed), "bo: staff account removed, signed out everywhere\n");
    assert_eq!(browser.get("/staff/orders").await.status(), StatusCode::SEE_OTHER, "signed out at once");
    assert_eq!(browser.sign_in_as("bo", "bo's new long password").await.status(), StatusCode::UNAUTHORIZED);
    let nobody = philia_staff(&url, &["staff", "remove", "bo"], "").await;
    assert_eq!(nobody.status.code(), Some(1), "{}", text(&nobody));
    assert!(text(&nobody).contains("there is no staff account \"bo\""), "{}", text(&nobody));
    // Ana, whom none of this touched, still signs in.
    assert_eq!(Browser::new(&app).sign_in_as(STAFF, PASSWORD).await.status(), StatusCode::SEE_OTHER);
}

/// Each limit on its own: one account guessed at from many addresses waits while those addresses may
/// still sign in to other accounts; one address guessing at many names waits while those accounts may
/// still sign in from elsewhere.
#[tokio::test]
async fn sign_in_limits_per_account_and_per_address_each_hold_on_their_own() {
    let db = TestDatabase::sqlite();
    let mut settings = console_settings(&db);
    settings.staff.login_attempts = 3;
    settings.server.trusted_proxies = 1;
    let app = spawn_app_with(db, settings, philia_bot::role::Role::All).await;
    accounts::add(&app.state.db, STAFF, PASSWORD).await.unwrap();
    accounts::add(&app.state.db, "bo", PASSWORD).await.unwrap();
    let from = |address: &str| Browser::new(&app).from(address);

    // Three wrong guesses at ana, each from its own address.
    for n in 1..=3 {
        assert_eq!(from(&format!("203.0.113.{n}")).sign_in_as(STAFF, "guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    // Ana waits, from a fresh address and with her password; that address is not limited: bo signs in from it.
    let mut fresh = from("203.0.113.4");
    let limited = fresh.sign_in_as(STAFF, PASSWORD).await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS, "the account's limit, from an address never seen");
    assert!(limited.text().await.unwrap().contains("Too many sign-in attempts"));
    assert_eq!(fresh.sign_in_as("bo", PASSWORD).await.status(), StatusCode::SEE_OTHER);

    // One address guessing at three names: a fourth account waits from there, and signs in from elsewhere.
    let mut guesser = from("198.51.100.7");
    for name in ["cy", "di", "ed"] {
        assert_eq!(guesser.sign_in_as(name, "guess").await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(guesser.sign_in_as("bo", PASSWORD).await.status(), StatusCode::TOO_MANY_REQUESTS, "the address's limit");
    assert_eq!(from("198.51.100.8").sign_in_as("bo", PASSWORD).await.status(), StatusCode::SEE_OTHER);
    let sessions: Vec<i64> =
        staff_sessions::Entity::find().all(&app.state.db).await.unwrap().into_iter().map(|s| s.staff_id).collect();
    let bo = accounts::find(&app.state.db, "bo").await.unwrap().unwrap().id;
    assert_eq!(sessions, [bo, bo], "only bo's two sign-ins made sessions");
}

/// The health page with a TikTok connection and a queue with work in it: the token's expiry in the
/// shop's time with how long is left, a warning when the connection runs out within a week, and the
/// queue's depth with its oldest job's wait. A web-only process, so no worker drains the queue.
#[tokio::test]
async fn the_health_page_shows_the_tokens_expiry_and_the_queues_depth() {
    use philia_bot::store::entities::tiktok_tokens;
    let test = "console::the_health_page_shows_the_tokens_expiry_and_the_queues_depth";
    let Some(redis) = crate::helpers::TestRedis::new(test) else { return };
    let app = console_app_on(TestDatabase::sqlite(), Some(&redis), philia_bot::role::Role::Web).await;
    let now = Utc::now();
    let (access, refresh) = (now + Duration::hours(20), now + Duration::days(3) + Duration::hours(2));
    tiktok_tokens::ActiveModel {
        account: Set("shop".into()),
        business_id: Set(Some("biz-1".into())),
        access_token: Set("act.secret".into()),
        access_expires_at: Set(access),
        refresh_token: Set(Some("rft.secret".into())),
        refresh_expires_at: Set(Some(refresh)),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap();

    // Five jobs, the first enqueued two minutes ago; a worker took that one and has not finished it.
    let stream = format!("{}:jobs", redis.prefix);
    let group = format!("{}:workers", redis.prefix);
    let first_ms = (now - Duration::minutes(2)).timestamp_millis();
    for n in 0..5 {
        let id = format!("{}-0", first_ms + n);
        let job = ["XADD", &stream, &id, "job", "{\"type\":\"NoSuchJobV9\"}"];
        assert!(crate::helpers::redis_cli(&redis.url, &job).await.is_some(), "XADD {id}");
    }
    // The group, unless the web process made it already.
    let _ = crate::helpers::redis_cli(&redis.url, &["XGROUP", "CREATE", &stream, &group, "0"]).await;
    let read = ["XREADGROUP", "GROUP", &group, "stuck-worker", "COUNT", "1", "STREAMS", &stream, ">"];
    assert!(crate::helpers::redis_cli(&redis.url, &read).await.is_some());

    let mut browser = Browser::new(&app);
    browser.sign_in().await;
    let page = browser.page("/staff/health").await;
    let zone = app.state.settings.shop.tz();
    let local = |at: chrono::DateTime<Utc>| at.with_timezone(&zone).format("%b %-d, %H:%M").to_string();
    for shown in [
        format!("Account <code>shop</code>: the access token is valid until {} (renewed by itself)", local(access)),
        format!("the connection lasts until {} (3 d 1 h from now)", local(refresh)),
        format!("TikTok's connection for shop runs out on {}: reconnect the account before then.", local(refresh)),
        "<span>Queue</span><b>5</b>".to_owned(),
        "4 waiting, 1 being handled".to_owned(),
        "The oldest message in the queue has waited 1".to_owned(),
    ] {
        assert!(page.contains(&shown), "{shown} on the health page: {page}");
    }
    assert!(!page.contains("All good."), "{page}");
    assert!(!page.contains("act.secret") && !page.contains("rft.secret"), "no token on the page");
}

/// A piece in stock, with a photo.
pub async fn stock(app: &TestApp, sku: &str, title: &str, price_minor: i64) -> items::Model {
    let now = Utc::now();
    items::ActiveModel {
        sku: Set(sku.into()),
        title: Set(title.into()),
        category: Set("jacket".into()),
        tag_size: Set(Some("L".into())),
        measurements: Set(serde_json::json!({"pit_to_pit": 58})),
        condition: Set("great".into()),
        price_minor: Set(price_minor),
        currency: Set("USD".into()),
        status: Set(ItemStatus::Available),
        image_url: Set(Some(format!("https://cdn.example/{sku}.jpg"))),
        dropped_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap()
}

/// `user` holds `sku` and checks out over TikTok; returns the order.
pub async fn order_of(app: &TestApp, user: &str, sku: &str) -> orders::Model {
    assert!(say(app, user, &format!("I'll take {sku}")).await.contains("It's yours!"));
    assert!(say(app, user, "checkout").await.contains("is in 🎉"));
    orders::Entity::find()
        .filter(orders::Column::UserId.eq(user_id(app, user).await))
        .order_by_desc(orders::Column::Id)
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap()
}

async fn order_row(app: &TestApp, number: &str) -> orders::Model {
    orders::Entity::find().filter(orders::Column::OrderNumber.eq(number)).one(&app.state.db).await.unwrap().unwrap()
}

async fn an_order_is_marked_paid_and_shipped_from_the_console_and_the_customer_told(db: TestDatabase) {
    let app = console_app(db).await;
    stock(&app, "JKT-010", "Barbour wax jacket", 12_000).await;
    let order = order_of(&app, "kim", "JKT-010").await;
    let number = order.order_number.clone();
    let mut browser = Browser::new(&app);
    browser.sign_in().await;

    let page = browser.page("/staff/orders").await;
    for shown in [
        number.as_str(),
        "@kim",
        "Barbour wax jacket",
        "https://cdn.example/JKT-010.jpg",
        "Total <strong>$120</strong>",
        "Mark paid",
    ] {
        assert!(page.contains(shown), "{shown} on the orders page");
    }
    assert!(!page.contains("Mark shipped"), "a pending order is paid before it ships");

    let page = browser.submit(&format!("/staff/orders/{number}/status"), &[("to", "paid")]).await;
    assert_eq!(order_row(&app, &number).await.status, OrderStatus::Paid);
    assert!(page.contains(&format!("{number}: paid")), "the page says what happened");
    assert!(page.contains("told @kim about their order: dry run"), "and what the customer was told");

    // Shipping without tracking is refused with a reason, and changes nothing.
    let page = browser.submit(&format!("/staff/orders/{number}/status"), &[("to", "shipped")]).await;
    assert!(page.contains("Shipping needs a carrier and a tracking number"), "{page}");
    assert_eq!(order_row(&app, &number).await.status, OrderStatus::Paid);

    let page = browser
        .submit(
            &format!("/staff/orders/{number}/status"),
            &[("to", "shipped"), ("carrier", "USPS"), ("tracking", "9400 1111")],
        )
        .await;
    let row = order_row(&app, &number).await;
    assert_eq!(row.status, OrderStatus::Shipped);
    assert_eq!((row.carrier.as_deref(), row.tracking_number.as_deref()), (Some("USPS"), Some("9400 1111")));
    // The customer's notice is stored, delivered (dry run here), and shown under the order.
    let notices: Vec<String> = app
        .replies()
        .await
        .into_iter()
        .filter(|m| m.role == philia_bot::store::entities::messages::Role::System)
        .filter_map(|m| m.text)
        .collect();
    assert!(notices.iter().any(|t| t.contains("9400 1111") && t.contains(&number)), "{notices:?}");
    assert!(page.contains("Customer told (2)"), "paid and shipped notices under the order: {page}");
    assert!(page.contains("9400 1111"));

    let page =
        browser.submit(&format!("/staff/orders/{number}/tracking"), &[("carrier", "UPS"), ("tracking", "1Z999")]).await;
    assert_eq!(order_row(&app, &number).await.tracking_number.as_deref(), Some("1Z999"));
    assert!(page.contains("Customer told (3)"), "{page}");

    let filtered = browser.page("/staff/orders?status=pending").await;
    assert!(!filtered.contains(&number), "the filter shows pending orders only");
    let audit: Vec<(String, String, String)> = staff_audit::Entity::find()
        .order_by_asc(staff_audit::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.staff_name, e.action, e.subject))
        .filter(|(_, action, _)| action != "signed in")
        .collect();
    let ana = || STAFF.to_owned();
    assert_eq!(
        audit,
        vec![
            (ana(), "order paid".into(), number.clone()),
            (ana(), "order shipped".into(), number.clone()),
            (ana(), "tracking corrected".into(), number.clone()),
        ]
    );
}

async fn item_row(app: &TestApp, sku: &str) -> items::Model {
    items::Entity::find().filter(items::Column::Sku.eq(sku)).one(&app.state.db).await.unwrap().unwrap()
}

async fn pieces_are_found_taken_off_sale_and_relisted_with_the_clis_refusals(db: TestDatabase) {
    let app = console_app(db).await;
    stock(&app, "JKT-010", "Barbour wax jacket", 12_000).await;
    stock(&app, "JKT-020", "Carhartt chore coat", 9_000).await;
    stock(&app, "DNM-001", "Levi's 501", 6_500).await;
    let order = order_of(&app, "kim", "JKT-010").await;
    assert!(say(&app, "lee", "I'll take JKT-020").await.contains("It's yours!"));
    let mut browser = Browser::new(&app);
    browser.sign_in().await;

    let page = browser.page("/staff/inventory?q=carhartt").await;
    assert!(page.contains("Carhartt chore coat") && !page.contains("Levi's 501"), "the search finds by title");
    assert!(page.contains("Held by @lee until"), "who holds it, until when");
    let page = browser.page("/staff/inventory?status=available").await;
    assert!(page.contains("DNM-001") && !page.contains("JKT-020"), "the filter shows available pieces only");

    // Off sale and back on.
    let page = browser.submit("/staff/inventory/DNM-001/status", &[("status", "sold")]).await;
    assert_eq!(item_row(&app, "DNM-001").await.status, ItemStatus::Sold);
    assert!(page.contains("DNM-001: sold"), "{page}");
    browser.submit("/staff/inventory/DNM-001/status", &[("status", "available")]).await;
    assert_eq!(item_row(&app, "DNM-001").await.status, ItemStatus::Available);

    // A piece in an order is not relisted: the page says why, the piece stays sold.
    let page = browser.submit("/staff/inventory/JKT-010/status", &[("status", "available")]).await;
    assert!(page.contains(&format!("JKT-010 is in order {}", order.order_number)), "{page}");
    assert_ne!(item_row(&app, "JKT-010").await.status, ItemStatus::Available);

    // Taking a held piece off sale ends the hold and tells its holder.
    let page = browser.submit("/staff/inventory/JKT-020/status", &[("status", "sold")]).await;
    assert_eq!(item_row(&app, "JKT-020").await.status, ItemStatus::Sold);
    assert!(page.contains("told @lee that their hold on JKT-020 ended"), "{page}");

    let export = browser.get("/staff/inventory/export").await;
    assert_eq!(export.status(), StatusCode::OK);
    assert!(export.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let csv = export.text().await.unwrap();
    assert!(csv.starts_with("sku,") && csv.contains("JKT-020") && csv.contains("DNM-001"), "{csv}");
    let actions: Vec<String> = staff_audit::Entity::find()
        .filter(staff_audit::Column::Subject.eq("JKT-020"))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["marked sold"]);
}

/// The inventory sheet: JKT-010 cheaper, JKT-011 (sold) listed as available, JKT-012 new.
pub const SHEET: &str = "sku,title,brand,category,tag_size,price,condition,status,image_url\n\
JKT-010,Barbour wax jacket,Barbour,jacket,L,99,great,available,https://cdn.example/JKT-010.jpg\n\
JKT-011,Patagonia fleece,Patagonia,jacket,M,70,great,available,\n\
JKT-012,Arc'teryx shell,Arc'teryx,jacket,S,180,great,available,\n";

async fn an_inventory_sheet_is_previewed_before_anything_is_written_then_imported(db: TestDatabase) {
    let app = console_app(db).await;
    stock(&app, "JKT-010", "Barbour wax jacket", 12_000).await;
    stock(&app, "JKT-011", "Patagonia fleece", 7_000).await;
    let mut browser = Browser::new(&app);
    browser.sign_in().await;
    browser.submit("/staff/inventory/JKT-011/status", &[("status", "sold")]).await;

    let upload = |csrf: Option<String>| {
        let file = reqwest::multipart::Part::bytes(SHEET.as_bytes().to_vec()).file_name("stock.csv");
        let form = reqwest::multipart::Form::new().part("file", file);
        match csrf {
            Some(csrf) => form.text("csrf", csrf),
            None => form,
        }
    };
    let refused = browser.post_multipart("/staff/inventory/preview", upload(None)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "the upload needs its CSRF token too");

    let csrf = browser.csrf().await;
    let preview = browser.post_multipart("/staff/inventory/preview", upload(Some(csrf))).await;
    assert_eq!(preview.status(), StatusCode::OK);
    let preview = preview.text().await.unwrap();
    for said in [
        "Would import: 1 new, 1 price change(s), 1 other change(s), 0 unchanged; 1 piece(s) keep their status.",
        "$120 → $99",
        "JKT-012",
        "<h2>1 piece(s) keep their status</h2>",
        "JKT-011</code> stays sold",
    ] {
        assert!(preview.contains(said), "{said} in the preview: {preview}");
    }
    // Nothing written yet.
    assert_eq!(item_row(&app, "JKT-010").await.price_minor, 12_000);
    assert!(items::Entity::find().filter(items::Column::Sku.eq("JKT-012")).one(&app.state.db).await.unwrap().is_none());

    let csv = SHEET.to_owned();
    let page = browser.submit("/staff/inventory/import", &[("csv", &csv), ("file_name", "stock.csv")]).await;
    assert!(page.contains("Imported: 1 new, 1 price change(s)"), "{page}");
    assert_eq!(item_row(&app, "JKT-010").await.price_minor, 9_900);
    assert_eq!(item_row(&app, "JKT-011").await.status, ItemStatus::Sold, "a sold piece stays sold");
    assert_eq!(item_row(&app, "JKT-012").await.status, ItemStatus::Available);
    let logged = staff_audit::Entity::find()
        .filter(staff_audit::Column::Action.eq("imported the inventory sheet"))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the import is in the audit log");
    assert_eq!((logged.staff_name.as_str(), logged.subject.as_str()), (STAFF, "stock.csv"));

    // A sheet with a bad row is refused whole, with the row named.
    let bad = "sku,title,category,price,condition\nJKT-013,Shell,jacket,abc,great\n";
    let csrf = browser.csrf().await;
    let file = reqwest::multipart::Part::bytes(bad.as_bytes().to_vec()).file_name("bad.csv");
    let form = reqwest::multipart::Form::new().text("csrf", csrf).part("file", file);
    let page = browser.post_multipart("/staff/inventory/preview", form).await.text().await.unwrap();
    assert!(page.contains("1 problem(s); nothing can be imported"), "{page}");
    assert!(items::Entity::find().filter(items::Column::Sku.eq("JKT-013")).one(&app.state.db).await.unwrap().is_none());
}

async fn a_waiting_conversation_is_shown_and_given_back_to_the_bot(db: TestDatabase) {
    let app = console_app(db).await;
    say(&app, "dana", "3").await;
    // Until a person from the shop writes, the bot still answers clear shop questions (issue 16).
    assert_ne!(say(&app, "dana", "is the barbour still there??").await, "", "the bot answers while she waits");
    let mut browser = Browser::new(&app);
    browser.sign_in().await;
    let page = browser.page("/staff/handoffs").await;
    for shown in [
        "1 conversation(s) waiting",
        "@dana",
        "is the barbour still there??",
        "waiting 0 min",
        "https://www.tiktok.com/@dana",
    ] {
        assert!(page.contains(shown), "{shown} on the handoffs page: {page}");
    }
    let page = browser.submit("/staff/handoffs/release", &[("conversation", "conv-dana")]).await;
    assert!(page.contains("The conversation is back with the bot."), "{page}");
    assert!(page.contains("0 conversation(s) waiting"));
    assert!(philia_bot::bot::handoff::list(&app.state.db).await.unwrap().is_empty());
    assert_ne!(say(&app, "dana", "menu").await, "", "the bot answers again");
    let page = browser.submit("/staff/handoffs/release", &[("conversation", "conv-dana")]).await;
    assert!(page.contains("not waiting for a person any more"), "{page}");
    let released = staff_audit::Entity::find()
        .filter(staff_audit::Column::Action.eq("gave back to the bot"))
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(released.len(), 1, "one release, one entry");
}

async fn the_health_page_says_how_the_bot_is_doing_in_words(db: TestDatabase) {
    use philia_bot::store::entities::messages::{self, DeliveryStatus};
    let app = console_app(db).await;
    say(&app, "kim", "hi").await;
    let mut browser = Browser::new(&app);
    browser.sign_in().await;
    let page = browser.page("/staff/health").await;
    for shown in ["All good.", "dry run", "never sent to TikTok", "Failed today", "Dead letters", "keywords only"] {
        assert!(page.contains(shown), "{shown} on the health page: {page}");
    }
    // A reply TikTok refused for its quota: counted as failed and as a quota refusal, and said on top.
    let reply = app.replies().await.pop().expect("the bot replied");
    let mut refused: messages::ActiveModel = reply.into();
    refused.delivery_status = Set(Some(DeliveryStatus::Failed));
    refused.error_code = Set(Some(40100));
    refused.update(&app.state.db).await.unwrap();
    let page = browser.page("/staff/health").await;
    assert!(page.contains("1 repl(ies) failed to send today."), "{page}");
    assert!(page.contains("<span>Quota refusals today</span><b>1</b>"), "{page}");
}

async fn the_bot_is_tried_in_the_page_on_a_copy_that_never_touches_the_shop(db: TestDatabase) {
    use philia_bot::store::entities::{messages, users};
    use sea_orm::PaginatorTrait;
    let app = console_app(db).await;
    stock(&app, "JKT-010", "Barbour wax jacket", 12_000).await;
    let mut browser = Browser::new(&app);
    browser.sign_in().await;
    let page = browser.page("/staff/try").await;
    assert!(page.contains("TEST · nothing here is sent to TikTok"), "{page}");
    let page = browser.submit("/staff/try", &[("text", "is JKT-010 still available?")]).await;
    assert!(page.contains("is JKT-010 still available?"), "the test customer's line: {page}");
    assert!(page.contains("Barbour wax jacket"), "the bot answers from a copy of the shop's inventory: {page}");
    // The shop's own database never saw the test customer, and nothing was sent or stored there.
    assert_eq!(messages::Entity::find().count(&app.state.db).await.unwrap(), 0);
    assert_eq!(users::Entity::find().count(&app.state.db).await.unwrap(), 0);
    let page = browser.submit("/staff/try", &[("restart", "1")]).await;
    assert!(page.contains("Started over"), "{page}");
    assert!(!page.contains("is JKT-010 still available?"), "a fresh conversation after starting over");
}

#[tokio::test]
async fn dead_letters_are_replayed_and_dropped_from_the_health_page() {
    let test = "console::dead_letters_are_replayed_and_dropped_from_the_health_page";
    let Some(redis) = crate::helpers::TestRedis::new(test) else { return };
    let app = console_app_on(TestDatabase::sqlite(), Some(&redis), philia_bot::role::Role::All).await;
    let stream = format!("{}:jobs", redis.prefix);
    for _ in 0..2 {
        crate::helpers::redis_cli(&redis.url, &["XADD", &stream, "*", "job", "{\"type\":\"NoSuchJobV9\"}"])
            .await
            .unwrap();
    }
    let dead = crate::helpers::wait_for("two dead letters", std::time::Duration::from_secs(15), || async {
        let dead = app.state.queue.dead_jobs().await.ok()?;
        (dead.len() == 2).then_some(dead)
    })
    .await;
    let mut browser = Browser::new(&app);
    browser.sign_in().await;
    let page = browser.page("/staff/health").await;
    assert!(page.contains("2 message(s) could not be processed and wait in the dead letters."), "{page}");
    assert!(page.contains(&dead[0].entry) && page.contains("undecodable job"), "{page}");

    let page = browser.submit("/staff/health/dead", &[("entry", &dead[0].entry), ("action", "drop")]).await;
    assert!(page.contains(&format!("{}: dropped.", dead[0].entry)), "{page}");
    let page = browser.submit("/staff/health/dead", &[("entry", &dead[1].entry), ("action", "replay")]).await;
    assert!(page.contains(&format!("{}: back on the queue as job", dead[1].entry)), "{page}");
    let left = app.state.queue.dead_jobs().await.unwrap();
    assert!(left.iter().all(|d| d.entry != dead[0].entry && d.entry != dead[1].entry), "{left:?}");
    let actions: Vec<String> = staff_audit::Entity::find()
        .filter(staff_audit::Column::Action.contains("dead letter"))
        .order_by_asc(staff_audit::Column::Id)
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["dropped a dead letter", "replayed a dead letter"]);
}
