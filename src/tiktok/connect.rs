//! Connecting the shop's TikTok account, started by the operator: `philia-bot tiktok connect` stores a
//! one-time `state` (10 minutes, in the database so the command and the server share it without Redis)
//! and prints TikTok's authorization link; the callback consumes the state once, atomically, and trades
//! the code for tokens. Nobody else can start an authorization, so nobody else can connect their account.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter};

use crate::config::TikTokSettings;
use crate::store::entities::oauth_states;

/// How long an authorization link works.
pub const STATE_LIFE: chrono::Duration = chrono::Duration::minutes(10);

/// Why no authorization link could be made.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("set TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET (the app's key and secret) first")]
    NotConfigured,
    #[error(
        "set PHILIA_TIKTOK__OAUTH_REDIRECT_URL to this server's https://…/oauth/tiktok/callback, as registered \
         with the TikTok app"
    )]
    NoRedirect,
    #[error("tiktok.authorize_url is not a URL: {0}")]
    BadAuthorizeUrl(String),
    #[error("storing the link's state: {0}")]
    Store(#[from] DbErr),
}

/// A link the owner opens to authorize the app, and until when it works.
#[derive(Debug, Clone)]
pub struct AuthorizationLink {
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// Stores a one-time state and returns TikTok's authorization link for it (`client_key`,
/// `response_type=code`, `scope`, `redirect_uri`, `state`). `replace` lets the callback connect an account
/// other than the connected one.
pub async fn authorization_link(
    db: &DatabaseConnection,
    settings: &TikTokSettings,
    replace: bool,
) -> Result<AuthorizationLink, LinkError> {
    let Some(client_key) = settings.client_key.as_deref().filter(|_| settings.client_secret.is_some()) else {
        return Err(LinkError::NotConfigured);
    };
    let redirect = settings.oauth_redirect_url.as_deref().ok_or(LinkError::NoRedirect)?;
    let mut url = url::Url::parse(&settings.authorize_url)
        .map_err(|_| LinkError::BadAuthorizeUrl(settings.authorize_url.clone()))?;
    let now = Utc::now();
    // Links nobody used are forgotten here, the one place states are made.
    oauth_states::Entity::delete_many().filter(oauth_states::Column::ExpiresAt.lt(now)).exec(db).await?;
    let state = uuid::Uuid::new_v4().simple().to_string();
    let expires_at = now + STATE_LIFE;
    let row =
        oauth_states::ActiveModel { state: Set(state.clone()), replace: Set(replace), expires_at: Set(expires_at) };
    oauth_states::Entity::insert(row).exec_without_returning(db).await?;
    let scope: Vec<&str> = settings.scopes.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    url.query_pairs_mut()
        .append_pair("client_key", client_key)
        .append_pair("response_type", "code")
        .append_pair("scope", &scope.join(","))
        .append_pair("redirect_uri", redirect)
        .append_pair("state", &state);
    Ok(AuthorizationLink { url: url.to_string(), expires_at })
}

/// Consumes a state: `Some(replace)` for the one caller that takes a live state, `None` for an unknown,
/// expired or already used one. Two callbacks racing with one state: one delete succeeds.
pub async fn consume_state(db: &DatabaseConnection, state: &str) -> Result<Option<bool>, DbErr> {
    let now = Utc::now();
    let found = oauth_states::Entity::find_by_id(state.to_owned())
        .filter(oauth_states::Column::ExpiresAt.gt(now))
        .one(db)
        .await?;
    let Some(found) = found else { return Ok(None) };
    let deleted = oauth_states::Entity::delete_many()
        .filter(oauth_states::Column::State.eq(state))
        .filter(oauth_states::Column::ExpiresAt.gt(now))
        .exec(db)
        .await?;
    Ok((deleted.rows_affected == 1).then_some(found.replace))
}
