//! Connecting the shop's TikTok account the way TikTok does it, against the TikTok stand-in: a one-time
//! link only the operator can make, the code traded for tokens of the account TikTok names, another
//! account refused without `--replace`, one refresh across replicas, and the authorization TikTok removes.

use std::collections::HashMap;
use std::time::Duration;

use philia_bot::config::Settings;
use philia_bot::role::Role;
use philia_bot::store::entities::tiktok_tokens;
use philia_bot::tiktok::alerts::StaffAlerts;
use philia_bot::tiktok::tokens::TokenManager;
use philia_bot::tiktok::{ApiError, client, connect};
use sea_orm::EntityTrait;
use serde_json::Value;

use crate::fake_tiktok::{FakeConfig, FakeTikTok, TOKEN_PATH};
use crate::helpers::{TestApp, TestDatabase, TestRedis, spawn_app_with, test_settings, use_redis};

/// Runs an `async fn(TestDatabase, Option<TestRedis>)` on the embedded default (SQLite, no Redis) and on
/// PostgreSQL with Redis: `NAME::sqlite`, `NAME::postgres_redis` (skipped without the services).
#[macro_export]
macro_rules! on_sqlite_and_postgres_redis {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::helpers::TestDatabase::sqlite(), None).await
            }

            #[tokio::test]
            async fn postgres_redis() {
                let path = concat!(module_path!(), "::postgres_redis");
                let name = path.strip_prefix("api::").unwrap_or(path);
                if let Some(redis) = $crate::helpers::TestRedis::new(name)
                    && let Some(db) = $crate::helpers::TestDatabase::postgres(name).await
                {
                    super::$name(db, Some(redis)).await
                }
            }
        }
    )+};
}

pub const REDIRECT: &str = "https://shop.example/oauth/tiktok/callback";

/// Settings of an app pointed at the fake, with the app's key and secret but no account connected yet.
pub fn unconnected(fake: &FakeTikTok, db: &TestDatabase, redis: Option<&TestRedis>) -> Settings {
    let mut settings = test_settings(db);
    fake.configure(&mut settings.tiktok);
    settings.tiktok.access_token = None;
    settings.tiktok.refresh_token = None;
    settings.tiktok.business_id = None;
    settings.tiktok.oauth_redirect_url = Some(REDIRECT.into());
    use_redis(&mut settings, redis);
    settings
}

/// The query of a link, by name.
fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

pub async fn link(app: &TestApp, replace: bool) -> String {
    let link = connect::authorization_link(&app.state.db, &app.state.settings.tiktok, replace).await.unwrap();
    query_of(&link.url)["state"].clone()
}

pub async fn callback(app: &TestApp, query: &str) -> (u16, Value) {
    let response = app.get(&format!("/oauth/tiktok/callback?{query}")).await;
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

async fn stored(app: &TestApp) -> tiktok_tokens::Model {
    tiktok_tokens::Entity::find().one(&app.state.db).await.unwrap().expect("the account row")
}

on_sqlite_and_postgres_redis!(
    only_the_operators_one_time_link_connects_and_the_account_tiktok_names_is_stored,
    another_account_is_refused_unless_the_link_allows_replacing
);

async fn only_the_operators_one_time_link_connects_and_the_account_tiktok_names_is_stored(
    db: TestDatabase,
    redis: Option<TestRedis>,
) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let settings = unconnected(&fake, &db, redis.as_ref());
    let app = spawn_app_with(db, settings, Role::All).await;
    assert_eq!(app.get("/oauth/tiktok/start").await.status(), 404, "nobody but the operator starts a connection");

    let made = connect::authorization_link(&app.state.db, &app.state.settings.tiktok, false).await.unwrap();
    assert!(made.url.starts_with("https://www.tiktok.com/v2/auth/authorize?"), "{}", made.url);
    let query = query_of(&made.url);
    assert_eq!((query["client_key"].as_str(), query["response_type"].as_str()), ("app_key", "code"));
    assert_eq!(query["redirect_uri"], REDIRECT);
    let scopes: Vec<&str> = query["scope"].split(',').collect();
    for needed in ["user.info.basic", "message.list.read", "message.list.send", "message.list.manage"] {
        assert!(scopes.contains(&needed), "{needed} in {scopes:?}");
    }
    let state = query["state"].clone();

    let (status, _) = callback(&app, &format!("code=x&state=forged-{state}")).await;
    assert_eq!(status, 403, "a state nobody made is refused before TikTok is asked");
    assert!(fake.calls().iter().all(|c| c.path != TOKEN_PATH));

    // TikTok names the code `auth_code` or `code`; here both at once.
    let code = fake.authorization_code_for("biz_open_id");
    let (status, answer) = callback(&app, &format!("code={code}&auth_code={code}&state={state}")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["business_id"], "biz_open_id");
    assert_eq!(answer["missing_scopes"], serde_json::json!([]));
    let call = fake.calls().into_iter().find(|c| c.path == TOKEN_PATH).expect("the code was traded");
    let body: Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(
        (body["grant_type"].as_str(), body["auth_code"].as_str(), body["redirect_uri"].as_str()),
        (Some("authorization_code"), Some(code.as_str()), Some(REDIRECT))
    );
    let row = stored(&app).await;
    assert_eq!(row.business_id.as_deref(), Some("biz_open_id"));
    assert!(row.scope.as_deref().unwrap().contains("message.list.send"));
    assert_eq!(app.state.tokens.business_id().await.unwrap(), "biz_open_id", "no TIKTOK_BUSINESS_ID needed");

    let again = fake.authorization_code_for("biz_open_id");
    let (status, _) = callback(&app, &format!("auth_code={again}&state={state}")).await;
    assert_eq!(status, 403, "a link works once");

    // Only `code`, on a new link: also accepted.
    let state = link(&app, false).await;
    let (status, answer) = callback(&app, &format!("code={again}&state={state}")).await;
    assert_eq!((status, answer["business_id"].as_str()), (200, Some("biz_open_id")));
    app.stop().await.unwrap();
}

async fn another_account_is_refused_unless_the_link_allows_replacing(db: TestDatabase, redis: Option<TestRedis>) {
    let config = FakeConfig { accounts: vec!["biz_open_id".into(), "other_shop".into()], ..FakeConfig::default() };
    let fake = FakeTikTok::start(config).await;
    let settings = unconnected(&fake, &db, redis.as_ref());
    let app = spawn_app_with(db, settings, Role::All).await;
    let state = link(&app, false).await;
    let code = fake.authorization_code_for("biz_open_id");
    assert_eq!(callback(&app, &format!("auth_code={code}&state={state}")).await.0, 200);
    let before = stored(&app).await;

    let state = link(&app, false).await;
    let code = fake.authorization_code_for("other_shop");
    let (status, answer) = callback(&app, &format!("auth_code={code}&state={state}")).await;
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("--replace"), "{answer}");
    assert_eq!(stored(&app).await, before, "the shop's tokens are untouched");

    let state = link(&app, true).await;
    let code = fake.authorization_code_for("other_shop");
    let (status, answer) = callback(&app, &format!("auth_code={code}&state={state}")).await;
    assert_eq!((status, answer["business_id"].as_str()), (200, Some("other_shop")), "{answer}");
    assert_eq!(stored(&app).await.business_id.as_deref(), Some("other_shop"));
    app.stop().await.unwrap();
}

on_sqlite_and_postgres_redis!(a_grant_without_the_messaging_scopes_is_reported);

async fn a_grant_without_the_messaging_scopes_is_reported(db: TestDatabase, redis: Option<TestRedis>) {
    let fake = FakeTikTok::start(FakeConfig { scope: "user.info.basic".into(), ..FakeConfig::default() }).await;
    let settings = unconnected(&fake, &db, redis.as_ref());
    let app = spawn_app_with(db, settings, Role::All).await;
    let state = link(&app, false).await;
    let code = fake.authorization_code_for("biz_open_id");
    let (status, answer) = callback(&app, &format!("auth_code={code}&state={state}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["missing_scopes"],
        serde_json::json!(["message.list.read", "message.list.send", "message.list.manage"])
    );
    let report = philia_bot::tiktok::status::report(
        &app.state.db,
        &app.state.settings.tiktok,
        &app.state.tokens,
        &app.state.http,
    )
    .await;
    assert!(
        report.problems.iter().any(|p| p.contains("message.list.send") && p.contains("tiktok connect")),
        "{report:?}"
    );
    app.stop().await.unwrap();
}

/// A manager of the shop's tokens as another replica would have it: its own cache, the same database.
fn replica(app: &TestApp) -> TokenManager {
    let settings = &app.state.settings.tiktok;
    let http = client::http_client(settings).unwrap();
    TokenManager::new(settings, app.state.db.clone(), http.clone(), app.state.kv.clone(), StaffAlerts::new(http, None))
}

on_sqlite_and_postgres_redis!(replicas_refreshing_at_once_spend_the_refresh_token_once);

async fn replicas_refreshing_at_once_spend_the_refresh_token_once(db: TestDatabase, redis: Option<TestRedis>) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let settings = unconnected(&fake, &db, redis.as_ref());
    let app = spawn_app_with(db, settings, Role::All).await;
    let state = link(&app, false).await;
    let code = fake.authorization_code_for("biz_open_id");
    assert_eq!(callback(&app, &format!("auth_code={code}&state={state}")).await.0, 200);
    let replicas: Vec<TokenManager> = (0..4).map(|_| replica(&app)).collect();
    for replica in &replicas {
        replica.access_token().await.unwrap();
    }
    // TikTok rejected the token everywhere at once (40105): every replica asks for a refresh.
    let refreshed = futures_util::future::join_all(replicas.iter().map(TokenManager::refresh)).await;
    assert!(refreshed.iter().all(Result::is_ok), "{refreshed:?}");
    assert_eq!(fake.refresh_calls(), 1, "one refresh for all, its single-use token spent once");
    let tokens: Vec<String> = futures_util::future::join_all(replicas.iter().map(TokenManager::access_token))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(tokens.windows(2).all(|w| w[0] == w[1]), "every replica uses the new token");
    assert!(stored(&app).await.refreshing_until.is_none(), "the lease is released");
    app.stop().await.unwrap();
}

on_sqlite_and_postgres_redis!(
    a_refresh_that_cannot_reach_tiktok_is_retryable_and_spends_nothing,
    a_business_id_override_that_disagrees_with_the_connected_account_stops_the_start,
);

async fn a_refresh_that_cannot_reach_tiktok_is_retryable_and_spends_nothing(
    db: TestDatabase,
    redis: Option<TestRedis>,
) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let settings = unconnected(&fake, &db, redis.as_ref());
    let app = spawn_app_with(db, settings, Role::All).await;
    let state = link(&app, false).await;
    let code = fake.authorization_code_for("biz_open_id");
    assert_eq!(callback(&app, &format!("auth_code={code}&state={state}")).await.0, 200);
    let mut unreachable = app.state.settings.tiktok.clone();
    unreachable.api_base_url = "http://127.0.0.1:1".into();
    let http = client::http_client(&unreachable).unwrap();
    let tokens = TokenManager::new(
        &unreachable,
        app.state.db.clone(),
        http.clone(),
        app.state.kv.clone(),
        StaffAlerts::new(http, None),
    );
    tokens.access_token().await.unwrap();
    let error = tokens.refresh().await.unwrap_err();
    assert!(matches!(error, ApiError::Unreachable(_)) && error.is_retryable() && !error.maybe_delivered(), "{error:?}");
    assert!(stored(&app).await.refreshing_until.is_none(), "a failed refresh releases the lease");
    assert!(replica(&app).refresh().await.is_ok(), "the refresh token was not spent");
    app.stop().await.unwrap();
}

async fn a_business_id_override_that_disagrees_with_the_connected_account_stops_the_start(
    db: TestDatabase,
    redis: Option<TestRedis>,
) {
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let settings = unconnected(&fake, &db, redis.as_ref());
    let mut wrong = settings.clone();
    let app = spawn_app_with(db, settings, Role::All).await;
    let state = link(&app, false).await;
    let code = fake.authorization_code_for("biz_open_id");
    assert_eq!(callback(&app, &format!("auth_code={code}&state={state}")).await.0, 200);

    wrong.tiktok.business_id = Some("someone_else".into());
    wrong.server.port = 0;
    let started =
        philia_bot::startup::Application::build(wrong, philia_bot::startup::StartOptions::new(Role::All, true))
            .await
            .expect("builds");
    let refused =
        tokio::time::timeout(Duration::from_secs(10), started.run_until_stopped()).await.expect("stops at once");
    let message = format!("{:#}", refused.unwrap_err());
    assert!(message.contains("someone_else") && message.contains("biz_open_id"), "{message}");
    app.stop().await.unwrap();
}

on_sqlite_and_postgres_redis!(a_refresh_token_about_to_expire_is_warned_about_once_with_how_to_reconnect);

async fn a_refresh_token_about_to_expire_is_warned_about_once_with_how_to_reconnect(
    db: TestDatabase,
    redis: Option<TestRedis>,
) {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    let fake = FakeTikTok::start(FakeConfig::default()).await;
    let staff = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&staff)
        .await;
    let settings = unconnected(&fake, &db, redis.as_ref());
    let app = spawn_app_with(db, settings, Role::All).await;
    let state = link(&app, false).await;
    let code = fake.authorization_code_for("biz_open_id");
    assert_eq!(callback(&app, &format!("auth_code={code}&state={state}")).await.0, 200);
    let row = stored(&app).await;
    let soon = chrono::Utc::now() + chrono::Duration::days(3);
    tiktok_tokens::ActiveModel { id: Set(row.id), refresh_expires_at: Set(Some(soon)), ..Default::default() }
        .update(&app.state.db)
        .await
        .unwrap();
    let settings = &app.state.settings.tiktok;
    let http = client::http_client(settings).unwrap();
    let alerts = StaffAlerts::new(http.clone(), Some(staff.uri()));
    let tokens = TokenManager::new(settings, app.state.db.clone(), http, app.state.kv.clone(), alerts);
    tokens.access_token().await.unwrap();
    let alert = crate::helpers::wait_for("the expiry alert", Duration::from_secs(10), || async {
        let requests = staff.received_requests().await?;
        let body: Value = serde_json::from_slice(&requests.first()?.body).ok()?;
        body["text"].as_str().map(str::to_owned)
    })
    .await;
    assert!(alert.contains("expires") && alert.contains("philia-bot tiktok connect"), "{alert}");
    tokens.refresh().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(staff.received_requests().await.unwrap().len(), 1, "warned once a day, not on every load");
    app.stop().await.unwrap();
}
