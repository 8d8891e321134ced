//! The shop's TikTok account and its tokens, in the one `tiktok_tokens` row (`account = 'shop'`): the
//! business id TikTok named when the owner connected (`open_id`, the `business_id` of every call), the
//! granted scopes, the tokens (seeded from configuration until the first connection), and whether TikTok
//! removed the authorization. Access tokens are refreshed before they expire and when TikTok rejects
//! them, one refresh at a time across every process (a lease on the row: a refresh token is single-use),
//! every new refresh token kept. Tokens are `SecretString`s in memory and never reach a log.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::alerts::StaffAlerts;
use super::api::{self, ApiError, api_url, paths};
use crate::config::TikTokSettings;
use crate::kv::Kv;
use crate::store::entities::tiktok_tokens;

/// The key of the shop's row: one deployment serves one shop's account.
pub const ACCOUNT_KEY: &str = "shop";
/// The scopes the bot needs to read, send and manage messages.
pub const MESSAGING_SCOPES: [&str; 3] = ["message.list.read", "message.list.send", "message.list.manage"];
/// Refresh this long before the access token expires, so no send uses a token about to lapse.
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(10);
/// A configured access token's life is unknown; TikTok's are 24 h.
const CONFIGURED_TOKEN_LIFE: chrono::Duration = chrono::Duration::hours(23);
/// The row is read again after this long, so a process sees tokens another one stored and an
/// authorization TikTok removed.
const RECHECK_AFTER: chrono::Duration = chrono::Duration::seconds(30);
/// How long a call that trades a grant (a refresh token, an authorization code) waits for TikTok's
/// answer. Longer than a send's: the grant is spent when TikTok receives the call (refresh tokens are
/// rotated, the old one stops working), so an answer given up on loses the new tokens for good, and the
/// shop stays unable to send until the owner reconnects.
const GRANT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one refresh may hold the lease: longer than its call may take.
const REFRESH_LEASE: chrono::Duration = chrono::Duration::seconds(90);
/// How long a process waits for another one's refresh before giving up (retryably).
const REFRESH_WAIT: Duration = Duration::from_secs(15);
/// Warn this long before the refresh token (about a year) expires.
const EXPIRY_WARNING: chrono::Duration = chrono::Duration::days(7);

#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    http: reqwest::Client,
    kv: Kv,
    alerts: StaffAlerts,
    base: String,
    /// `TIKTOK_BUSINESS_ID`: an override, which must agree with the connected account.
    configured_business_id: Option<String>,
    client_key: Option<String>,
    client_secret: Option<SecretString>,
    configured_access: Option<SecretString>,
    configured_refresh: Option<SecretString>,
    cached: Mutex<Option<Cached>>,
    /// The shop's business id as the webhook checks events against it, and when it was read: kept
    /// [`RECHECK_AFTER`] whatever the answer (also "none yet"), so the ingress reads the database at most
    /// that often.
    known_account: Mutex<Option<(Option<String>, DateTime<Utc>)>>,
    /// One refresh at a time in this process; the row's lease does it across processes.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Cached {
    access: SecretString,
    expires_at: DateTime<Utc>,
    refresh: Option<SecretString>,
    business_id: Option<String>,
    /// The tokens come from the row (not from configuration): a refresh takes the row's lease.
    stored: bool,
    loaded_at: DateTime<Utc>,
}

/// TikTok's OAuth answer (`data` of `/tt_user/oauth2/token/` and `/tt_user/oauth2/refresh_token/`).
#[derive(Deserialize)]
struct Grant {
    access_token: String,
    expires_in: i64,
    refresh_token: Option<String>,
    refresh_token_expires_in: Option<i64>,
    /// The business account the tokens are for: the `business_id` of every call.
    open_id: Option<String>,
    scope: Option<String>,
}

/// The connected account as the operator sees it (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub business_id: Option<String>,
    pub scope: Option<String>,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    pub disconnected_at: Option<DateTime<Utc>>,
    pub disconnect_reason: Option<i32>,
}

impl Account {
    fn of(row: &tiktok_tokens::Model) -> Self {
        Self {
            business_id: row.business_id.clone(),
            scope: row.scope.clone(),
            access_expires_at: row.access_expires_at,
            refresh_expires_at: row.refresh_expires_at,
            disconnected_at: row.disconnected_at,
            disconnect_reason: row.disconnect_reason,
        }
    }

    /// The messaging scopes the grant lacks (none when TikTok did not say which it granted).
    pub fn missing_scopes(&self) -> Vec<&'static str> {
        let Some(scope) = &self.scope else { return Vec::new() };
        let granted: Vec<&str> = scope.split(',').map(str::trim).collect();
        MESSAGING_SCOPES.into_iter().filter(|s| !granted.contains(s)).collect()
    }
}

/// What TikTok's `reason` of `authorization.removed` means (0–5, per
/// https://developers.tiktok.com/doc/webhooks-events/; docs/tiktok-facts.md).
pub fn removal_reason(reason: i32) -> &'static str {
    match reason {
        0 => "TikTok did not say why",
        1 => "the owner disconnected the app from the TikTok account",
        2 => "the TikTok account was deleted",
        3 => "the age of the TikTok account's owner changed",
        4 => "the TikTok account was banned",
        5 => "the app's developer revoked the authorization",
        _ => "TikTok gave no reason the bot knows",
    }
}

/// How to connect again, as every message about a lost connection says it.
pub const RECONNECT: &str = "run `philia-bot tiktok connect` and open the link it prints as the shop's owner";

/// Why connecting an account did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("TikTok refused the authorization code: {0}")]
    Refused(ApiError),
    #[error(
        "TikTok account {offered} is not the connected account {connected}: nothing changed. To connect \
         another account, run `philia-bot tiktok connect --replace`"
    )]
    OtherAccount { connected: String, offered: String },
    #[error("TikTok account {offered} is not TIKTOK_BUSINESS_ID ({configured}): nothing changed")]
    NotTheConfiguredAccount { configured: String, offered: String },
    #[error("storing the tokens: {0}")]
    Store(ApiError),
}

fn database(error: sea_orm::DbErr) -> ApiError {
    ApiError::Database(error.to_string())
}

impl TokenManager {
    pub fn new(
        settings: &TikTokSettings,
        db: DatabaseConnection,
        http: reqwest::Client,
        kv: Kv,
        alerts: StaffAlerts,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                http,
                kv,
                alerts,
                base: settings.api_base_url.clone(),
                configured_business_id: settings.business_id.clone(),
                client_key: settings.client_key.clone(),
                client_secret: settings.client_secret.clone(),
                configured_access: settings.access_token.clone(),
                configured_refresh: settings.refresh_token.clone(),
                cached: Mutex::new(None),
                known_account: Mutex::new(None),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn cached(&self) -> Option<Cached> {
        self.inner.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn remember(&self, cached: Option<Cached>) {
        *self.inner.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = cached;
    }

    /// The cached tokens while fresh, else the row read again.
    async fn current(&self) -> Result<Cached, ApiError> {
        match self.cached() {
            Some(cached) if Utc::now() - cached.loaded_at < RECHECK_AFTER => Ok(cached),
            _ => self.load().await,
        }
    }

    /// A usable access token: the stored one, refreshed first when it is about to expire.
    pub async fn access_token(&self) -> Result<String, ApiError> {
        let current = self.current().await?;
        if current.expires_at - REFRESH_MARGIN > Utc::now() || current.refresh.is_none() {
            return Ok(current.access.expose_secret().to_owned());
        }
        self.refresh().await?;
        Ok(self.current().await?.access.expose_secret().to_owned())
    }

    /// The `business_id` of every call: `TIKTOK_BUSINESS_ID` when set, else the connected account's.
    pub async fn business_id(&self) -> Result<String, ApiError> {
        if let Some(configured) = &self.inner.configured_business_id {
            return Ok(configured.clone());
        }
        self.current().await?.business_id.ok_or_else(|| {
            ApiError::NotConnected(format!(
                "no TikTok account is connected yet (or set TIKTOK_BUSINESS_ID): {RECONNECT}"
            ))
        })
    }

    /// The shop's business account once it is known (configured or connected), for telling events of
    /// another account apart; `None` before the first connection. Read from the database at most every
    /// 30 s.
    pub async fn known_business_id(&self) -> Option<String> {
        let now = Utc::now();
        let remembered = self.inner.known_account.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some((account, at)) = remembered
            && now - at < RECHECK_AFTER
        {
            return account;
        }
        let account = match &self.inner.configured_business_id {
            Some(configured) => Some(configured.clone()),
            None => self.row().await.ok().flatten().and_then(|row| row.business_id),
        };
        *self.inner.known_account.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((account.clone(), now));
        account
    }

    /// The shop's row, if any.
    async fn row(&self) -> Result<Option<tiktok_tokens::Model>, ApiError> {
        tiktok_tokens::Entity::find()
            .filter(tiktok_tokens::Column::Account.eq(ACCOUNT_KEY))
            .one(&self.inner.db)
            .await
            .map_err(database)
    }

    /// The connected account, as stored (`None` before the first connection).
    pub async fn account(&self) -> Result<Option<Account>, ApiError> {
        Ok(self.row().await?.as_ref().map(Account::of))
    }

    /// `TIKTOK_BUSINESS_ID` must name the connected account, or every send would go out for another one.
    pub async fn check_configured_account(&self) -> Result<(), String> {
        let (Some(configured), Ok(Some(account))) = (&self.inner.configured_business_id, self.account().await) else {
            return Ok(());
        };
        match account.business_id {
            Some(connected) if &connected != configured => Err(format!(
                "TIKTOK_BUSINESS_ID is {configured}, but the connected TikTok account is {connected}: unset \
                 TIKTOK_BUSINESS_ID (the connected account is used), or connect {configured} with \
                 `philia-bot tiktok connect --replace`"
            )),
            _ => Ok(()),
        }
    }

    /// The stored tokens, or the configured ones when none are stored yet. A disconnected account has none.
    async fn load(&self) -> Result<Cached, ApiError> {
        let now = Utc::now();
        let cached = match (self.row().await?, &self.inner.configured_access) {
            (Some(row), _) => {
                if let Some(at) = row.disconnected_at {
                    let reason = removal_reason(row.disconnect_reason.unwrap_or(0));
                    self.remember(None);
                    return Err(ApiError::NotConnected(format!(
                        "TikTok removed the authorization at {at} ({reason}): {RECONNECT}"
                    )));
                }
                self.warn_if_expiring(&row).await;
                Cached {
                    access: SecretString::from(row.access_token),
                    expires_at: row.access_expires_at,
                    refresh: row.refresh_token.map(SecretString::from),
                    business_id: row.business_id,
                    stored: true,
                    loaded_at: now,
                }
            }
            (None, Some(access)) => Cached {
                access: access.clone(),
                expires_at: now + CONFIGURED_TOKEN_LIFE,
                refresh: self.inner.configured_refresh.clone(),
                business_id: None,
                stored: false,
                loaded_at: now,
            },
            (None, None) => {
                return Err(ApiError::NotConnected(format!("no TikTok account is connected: {RECONNECT}")));
            }
        };
        self.remember(Some(cached.clone()));
        Ok(cached)
    }

    /// Warns (log and staff webhook, once a day) when the refresh token lapses within a week: after it,
    /// nothing can be sent until the owner connects again.
    async fn warn_if_expiring(&self, row: &tiktok_tokens::Model) {
        let Some(expires) = row.refresh_expires_at.filter(|at| *at - EXPIRY_WARNING < Utc::now()) else { return };
        let key = self.inner.kv.key("tiktok:refresh-expiry-warned");
        if let Ok(true) = self.inner.kv.set_if_absent(&key, "1", Duration::from_secs(24 * 3600)).await {
            self.inner.alerts.send(format!(
                "⚠️ The TikTok connection expires at {expires} (TikTok's refresh tokens last about a year). \
                 Before then, {RECONNECT}."
            ));
        }
    }

    /// Trades the refresh token for new tokens and stores them (the new refresh token included). One
    /// refresh at a time across processes: the others wait for its tokens.
    pub async fn refresh(&self) -> Result<(), ApiError> {
        let seen = self.cached().map(|c| c.access.expose_secret().to_owned());
        let _only_one_here = self.inner.refreshing.lock().await;
        let waited_since = tokio::time::Instant::now();
        loop {
            let current = self.load().await?;
            // Another task or process refreshed while this one waited: its token is used.
            if seen.as_deref().is_some_and(|seen| current.access.expose_secret() != seen) {
                return Ok(());
            }
            if !current.stored {
                return self.refresh_detached(current, false).await;
            }
            if self.take_lease().await? {
                // Read again under the lease: a refresh that ended between the read above and the lease
                // has spent the refresh token this one holds.
                let current = self.load().await?;
                if seen.as_deref().is_some_and(|seen| current.access.expose_secret() != seen) {
                    self.release_lease().await;
                    return Ok(());
                }
                return self.refresh_detached(current, true).await;
            }
            if waited_since.elapsed() > REFRESH_WAIT {
                return Err(ApiError::Unreachable(
                    "another process has been refreshing the TikTok tokens too long".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Refreshes in a task of its own: a caller that gives up (its job cut off at its deadline) must not
    /// drop TikTok's answer, which carries the only working refresh token. `leased`: the row's refresh
    /// lease is held, and given back when the refresh fails.
    async fn refresh_detached(&self, current: Cached, leased: bool) -> Result<(), ApiError> {
        let manager = self.clone();
        let refreshing = tokio::spawn(async move {
            let refreshed = manager.refresh_from(current).await;
            if refreshed.is_err() && leased {
                manager.release_lease().await;
            }
            refreshed
        });
        refreshing.await.unwrap_or_else(|e| Err(ApiError::Unreachable(format!("the token refresh task failed: {e}"))))
    }

    async fn refresh_from(&self, current: Cached) -> Result<(), ApiError> {
        let Some(refresh) = current.refresh else {
            return Err(ApiError::Token(format!("no refresh token: {RECONNECT}")));
        };
        let body = json!({
            "client_id": self.inner.client_key,
            "client_secret": self.inner.client_secret.as_ref().map(secrecy::ExposeSecret::expose_secret),
            "grant_type": "refresh_token",
            "refresh_token": refresh.expose_secret(),
        });
        let grant = self.grant(paths::OAUTH_REFRESH, &body).await?;
        self.store(grant, Some(refresh)).await
    }

    /// Takes the row's refresh lease if nobody holds it (or its holder's lease lapsed).
    async fn take_lease(&self) -> Result<bool, ApiError> {
        let now = Utc::now();
        let taken = tiktok_tokens::Entity::update_many()
            .col_expr(tiktok_tokens::Column::RefreshingUntil, Expr::value(now + REFRESH_LEASE))
            .filter(tiktok_tokens::Column::Account.eq(ACCOUNT_KEY))
            .filter(
                Condition::any()
                    .add(tiktok_tokens::Column::RefreshingUntil.is_null())
                    .add(tiktok_tokens::Column::RefreshingUntil.lt(now)),
            )
            .exec(&self.inner.db)
            .await
            .map_err(database)?;
        Ok(taken.rows_affected == 1)
    }

    async fn release_lease(&self) {
        let released = tiktok_tokens::Entity::update_many()
            .col_expr(tiktok_tokens::Column::RefreshingUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(tiktok_tokens::Column::Account.eq(ACCOUNT_KEY))
            .exec(&self.inner.db)
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "could not release the token refresh lease; it lapses in 90 s");
        }
    }

    /// Exchanges an OAuth authorization code for tokens and stores them with the account TikTok names.
    /// Another account than the connected one is refused unless `replace`.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: Option<&str>,
        replace: bool,
    ) -> Result<Account, ConnectError> {
        let _only_one = self.inner.refreshing.lock().await;
        let body = json!({
            "client_id": self.inner.client_key,
            "client_secret": self.inner.client_secret.as_ref().map(secrecy::ExposeSecret::expose_secret),
            "grant_type": "authorization_code",
            "auth_code": code,
            "redirect_uri": redirect_uri,
        });
        let grant = self.grant(paths::OAUTH_TOKEN, &body).await.map_err(ConnectError::Refused)?;
        let offered = grant
            .open_id
            .clone()
            .ok_or_else(|| ConnectError::Refused(ApiError::Decode("no data.open_id in the token answer".into())))?;
        if let Some(configured) = self.inner.configured_business_id.as_ref().filter(|c| **c != offered) {
            return Err(ConnectError::NotTheConfiguredAccount { configured: configured.clone(), offered });
        }
        let connected = self.account().await.map_err(ConnectError::Store)?.and_then(|a| a.business_id);
        if let Some(connected) = connected.filter(|c| *c != offered && !replace) {
            return Err(ConnectError::OtherAccount { connected, offered });
        }
        self.store(grant, None).await.map_err(ConnectError::Store)?;
        let account = self.account().await.map_err(ConnectError::Store)?;
        account.ok_or_else(|| ConnectError::Store(ApiError::Database("the stored account is gone".into())))
    }

    /// Records that TikTok removed the authorization (its tokens are revoked already): nothing is sent
    /// until the owner connects again. True when the account was connected until now.
    pub async fn mark_disconnected(&self, reason: i32) -> Result<bool, ApiError> {
        let now = Utc::now();
        let marked = tiktok_tokens::Entity::update_many()
            .col_expr(tiktok_tokens::Column::DisconnectedAt, Expr::value(now))
            .col_expr(tiktok_tokens::Column::DisconnectReason, Expr::value(reason))
            .filter(tiktok_tokens::Column::Account.eq(ACCOUNT_KEY))
            .filter(tiktok_tokens::Column::DisconnectedAt.is_null())
            .exec(&self.inner.db)
            .await
            .map_err(database)?;
        self.remember(None);
        if marked.rows_affected == 1 {
            return Ok(true);
        }
        if self.row().await?.is_some() {
            return Ok(false); // disconnected already
        }
        // Tokens from configuration only: the row is made to say the account is disconnected, so the
        // configured (revoked) tokens are not used again.
        let row = tiktok_tokens::ActiveModel {
            account: Set(ACCOUNT_KEY.to_owned()),
            business_id: Set(self.inner.configured_business_id.clone()),
            access_token: Set(String::new()),
            access_expires_at: Set(now),
            updated_at: Set(now),
            disconnected_at: Set(Some(now)),
            disconnect_reason: Set(Some(reason)),
            ..Default::default()
        };
        tiktok_tokens::Entity::insert(row)
            .on_conflict(OnConflict::column(tiktok_tokens::Column::Account).do_nothing().to_owned())
            .exec_without_returning(&self.inner.db)
            .await
            .map_err(database)?;
        Ok(true)
    }

    /// TikTok removed the app's authorization (`authorization.removed`): the account is marked
    /// disconnected, so replies are stored `not_connected` instead of failing on revoked tokens, and the
    /// team is told why and how to reconnect (once: TikTok may deliver the event again).
    pub async fn authorization_removed(&self, reason: i32) -> Result<(), ApiError> {
        if self.mark_disconnected(reason).await? {
            self.inner.alerts.send(format!(
                "🔌 TikTok disconnected the shop's account: {} (reason {reason}). The bot sends nothing until \
                 the owner connects again: {RECONNECT}.",
                removal_reason(reason)
            ));
        }
        Ok(())
    }

    async fn grant(&self, path: &str, body: &serde_json::Value) -> Result<Grant, ApiError> {
        // Whatever happens on the way, no message was sent: a failure to reach TikTok is worth another try.
        let response = self
            .inner
            .http
            .post(api_url(&self.inner.base, path))
            .timeout(GRANT_CALL_TIMEOUT)
            .json(body)
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(format!("calling {path}: {e}")))?;
        let status = response.status();
        let text =
            response.text().await.map_err(|e| ApiError::Unreachable(format!("reading the answer of {path}: {e}")))?;
        // `data` is read only on success: a refusal comes with `"data": {}`.
        let envelope: api::Response<serde_json::Value> = match serde_json::from_str(&text) {
            Ok(envelope) => envelope,
            Err(_) if !status.is_success() => return Err(ApiError::Http { status: status.as_u16() }),
            Err(e) => return Err(ApiError::Decode(format!("the answer of {path}: {e}"))),
        };
        envelope.log_refusal(path);
        match envelope.data {
            Some(data) if envelope.code == 0 => serde_json::from_value(data)
                .map_err(|e| ApiError::Decode(format!("the tokens in the answer of {path}: {e}"))),
            _ => Err(ApiError::Token(format!("{path} answered {}: {}", envelope.code, envelope.message))),
        }
    }

    /// Stores a grant in the shop's row: its tokens, its account and scope; the account is connected and
    /// the refresh lease released. `previous_refresh` is kept when TikTok sends no new refresh token.
    async fn store(&self, grant: Grant, previous_refresh: Option<SecretString>) -> Result<(), ApiError> {
        let now = Utc::now();
        let expires_at = now + chrono::Duration::seconds(grant.expires_in);
        let refresh = grant.refresh_token.map(SecretString::from).or(previous_refresh);
        let mut updated = vec![
            tiktok_tokens::Column::AccessToken,
            tiktok_tokens::Column::AccessExpiresAt,
            tiktok_tokens::Column::RefreshToken,
            tiktok_tokens::Column::UpdatedAt,
            tiktok_tokens::Column::DisconnectedAt,
            tiktok_tokens::Column::DisconnectReason,
            tiktok_tokens::Column::RefreshingUntil,
        ];
        // What TikTok did not say is kept as it was.
        for (given, column) in [
            (grant.refresh_token_expires_in.is_some(), tiktok_tokens::Column::RefreshExpiresAt),
            (grant.scope.is_some(), tiktok_tokens::Column::Scope),
            (grant.open_id.is_some(), tiktok_tokens::Column::BusinessId),
        ] {
            if given {
                updated.push(column);
            }
        }
        let row = tiktok_tokens::ActiveModel {
            account: Set(ACCOUNT_KEY.to_owned()),
            business_id: Set(grant.open_id.clone()),
            access_token: Set(grant.access_token.clone()),
            access_expires_at: Set(expires_at),
            refresh_token: Set(refresh.as_ref().map(|r| r.expose_secret().to_owned())),
            refresh_expires_at: Set(grant.refresh_token_expires_in.map(|s| now + chrono::Duration::seconds(s))),
            scope: Set(grant.scope),
            updated_at: Set(now),
            disconnected_at: Set(None),
            disconnect_reason: Set(None),
            refreshing_until: Set(None),
            ..Default::default()
        };
        tiktok_tokens::Entity::insert(row)
            .on_conflict(OnConflict::column(tiktok_tokens::Column::Account).update_columns(updated).to_owned())
            .exec_without_returning(&self.inner.db)
            .await
            .map_err(database)?;
        tracing::info!(expires_in_secs = grant.expires_in, "TikTok tokens stored");
        self.remember(None);
        Ok(())
    }
}
