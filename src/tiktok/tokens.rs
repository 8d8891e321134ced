//! The shop's TikTok tokens: read from the database (seeded from configuration), refreshed before they
//! expire and when TikTok rejects them, every new refresh token kept. Tokens are `SecretString`s in
//! memory and never reach a log.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::api::{self, ApiError, api_url, paths};
use crate::config::TikTokSettings;
use crate::store::entities::tiktok_tokens;

/// Refresh this long before the access token expires, so no send uses a token about to lapse.
const REFRESH_MARGIN: chrono::Duration = chrono::Duration::minutes(10);
/// A configured access token's life is unknown; TikTok's are 24 h.
const CONFIGURED_TOKEN_LIFE: chrono::Duration = chrono::Duration::hours(23);

#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    http: reqwest::Client,
    base: String,
    account: String,
    client_key: Option<String>,
    client_secret: Option<SecretString>,
    configured_access: Option<SecretString>,
    configured_refresh: Option<SecretString>,
    cached: Mutex<Option<Cached>>,
    /// One refresh at a time in this process (a refresh token is single-use).
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Cached {
    access: SecretString,
    expires_at: DateTime<Utc>,
    refresh: Option<SecretString>,
}

/// TikTok's OAuth answer (`data` of `/tt_user/oauth2/token/` and `/tt_user/oauth2/refresh_token/`).
#[derive(Deserialize)]
struct Grant {
    access_token: String,
    expires_in: i64,
    refresh_token: Option<String>,
    refresh_token_expires_in: Option<i64>,
    scope: Option<String>,
}

impl TokenManager {
    pub fn new(settings: &TikTokSettings, db: DatabaseConnection, http: reqwest::Client) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                http,
                base: settings.api_base_url.clone(),
                account: settings.business_id.clone().unwrap_or_else(|| "default".into()),
                client_key: settings.client_key.clone(),
                client_secret: settings.client_secret.clone(),
                configured_access: settings.access_token.clone(),
                configured_refresh: settings.refresh_token.clone(),
                cached: Mutex::new(None),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn cached(&self) -> Option<Cached> {
        self.inner.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn remember(&self, cached: Cached) {
        *self.inner.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(cached);
    }

    /// A usable access token: the stored one, refreshed first when it is about to expire.
    pub async fn access_token(&self) -> Result<String, ApiError> {
        let current = match self.cached() {
            Some(cached) => cached,
            None => self.load().await?,
        };
        if current.expires_at - REFRESH_MARGIN > Utc::now() || current.refresh.is_none() {
            return Ok(current.access.expose_secret().to_owned());
        }
        self.refresh().await?;
        Ok(self.cached().expect("refresh stores a token").access.expose_secret().to_owned())
    }

    /// The stored tokens, or the configured ones when none are stored yet.
    async fn load(&self) -> Result<Cached, ApiError> {
        let stored = tiktok_tokens::Entity::find()
            .filter(tiktok_tokens::Column::Account.eq(&self.inner.account))
            .one(&self.inner.db)
            .await
            .map_err(|e| ApiError::Token(format!("reading stored tokens: {e}")))?;
        let cached = match (stored, &self.inner.configured_access) {
            (Some(row), _) => Cached {
                access: SecretString::from(row.access_token),
                expires_at: row.access_expires_at,
                refresh: row.refresh_token.map(SecretString::from),
            },
            (None, Some(access)) => Cached {
                access: access.clone(),
                expires_at: Utc::now() + CONFIGURED_TOKEN_LIFE,
                refresh: self.inner.configured_refresh.clone(),
            },
            (None, None) => {
                return Err(ApiError::Token("none stored and none configured: connect the shop's account".into()));
            }
        };
        self.remember(cached.clone());
        Ok(cached)
    }

    /// Trades the refresh token for new tokens and stores them (the new refresh token included).
    pub async fn refresh(&self) -> Result<(), ApiError> {
        let seen = self.cached().map(|c| c.access.expose_secret().to_owned());
        let _only_one = self.inner.refreshing.lock().await;
        // Another task (or replica) may have refreshed while this one waited: then its token is used.
        *self.inner.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        let current = self.load().await?;
        if seen.is_some_and(|seen| current.access.expose_secret() != seen) {
            return Ok(());
        }
        let refresh = current.refresh.ok_or_else(|| ApiError::Token("no refresh token to renew with".into()))?;
        let body = json!({
            "client_id": self.inner.client_key,
            "client_secret": self.inner.client_secret.as_ref().map(secrecy::ExposeSecret::expose_secret),
            "grant_type": "refresh_token",
            "refresh_token": refresh.expose_secret(),
        });
        let grant = self.grant(paths::OAUTH_REFRESH, &body).await?;
        self.store(grant).await
    }

    /// Exchanges an OAuth authorization code for tokens and stores them.
    pub async fn exchange_code(&self, code: &str, redirect_uri: Option<&str>) -> Result<(), ApiError> {
        let _only_one = self.inner.refreshing.lock().await;
        let body = json!({
            "client_id": self.inner.client_key,
            "client_secret": self.inner.client_secret.as_ref().map(secrecy::ExposeSecret::expose_secret),
            "grant_type": "authorization_code",
            "auth_code": code,
            "redirect_uri": redirect_uri,
        });
        let grant = self.grant(paths::OAUTH_TOKEN, &body).await?;
        self.store(grant).await
    }

    async fn grant(&self, path: &str, body: &serde_json::Value) -> Result<Grant, ApiError> {
        let response = self
            .inner
            .http
            .post(api_url(&self.inner.base, path))
            .json(body)
            .send()
            .await
            .map_err(|e| ApiError::Token(format!("calling {path}: {e}")))?;
        let envelope: api::Response<Grant> =
            response.json().await.map_err(|e| ApiError::Token(format!("reading the answer of {path}: {e}")))?;
        match envelope.data {
            Some(grant) if envelope.code == 0 => Ok(grant),
            _ => Err(ApiError::Token(format!("{path} answered {}: {}", envelope.code, envelope.message))),
        }
    }

    async fn store(&self, grant: Grant) -> Result<(), ApiError> {
        let now = Utc::now();
        let expires_at = now + chrono::Duration::seconds(grant.expires_in);
        let previous_refresh = self.cached().and_then(|c| c.refresh);
        let refresh = grant.refresh_token.map(SecretString::from).or(previous_refresh);
        let row = tiktok_tokens::ActiveModel {
            account: Set(self.inner.account.clone()),
            access_token: Set(grant.access_token.clone()),
            access_expires_at: Set(expires_at),
            refresh_token: Set(refresh.as_ref().map(|r| r.expose_secret().to_owned())),
            refresh_expires_at: Set(grant.refresh_token_expires_in.map(|s| now + chrono::Duration::seconds(s))),
            scope: Set(grant.scope),
            updated_at: Set(now),
            ..Default::default()
        };
        tiktok_tokens::Entity::insert(row)
            .on_conflict(
                OnConflict::column(tiktok_tokens::Column::Account)
                    .update_columns([
                        tiktok_tokens::Column::AccessToken,
                        tiktok_tokens::Column::AccessExpiresAt,
                        tiktok_tokens::Column::RefreshToken,
                        tiktok_tokens::Column::RefreshExpiresAt,
                        tiktok_tokens::Column::Scope,
                        tiktok_tokens::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.inner.db)
            .await
            .map_err(|e| ApiError::Token(format!("storing tokens: {e}")))?;
        tracing::info!(expires_in_secs = grant.expires_in, "TikTok tokens stored");
        self.remember(Cached { access: SecretString::from(grant.access_token), expires_at, refresh });
        Ok(())
    }
}
