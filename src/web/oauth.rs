//! `GET /oauth/tiktok/callback`: where TikTok sends the shop's owner back after they authorized the app
//! from the link `philia-bot tiktok connect` printed. The link's one-time `state` is consumed, the code
//! traded for tokens, and the account TikTok names (`open_id`, the business id) stored with them; an
//! account other than the connected one is refused unless the link was made with `--replace`. There is
//! no HTTP route that starts an authorization: only the operator can.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::error::OAuthError;
use super::request_id::RequestId;
use crate::state::AppState;
use crate::tiktok::connect;
use crate::tiktok::tokens::{ConnectError, RECONNECT};

#[derive(Deserialize)]
pub struct Callback {
    /// TikTok's Login Kit names it `code`, the Business API `auth_code`: either, or both, is accepted.
    code: Option<String>,
    auth_code: Option<String>,
    state: Option<String>,
    /// Set when the owner declined (with `error_description`).
    error: Option<String>,
    error_description: Option<String>,
}

pub async fn callback(
    state: web::Data<AppState>,
    query: web::Query<Callback>,
    id: RequestId,
) -> Result<HttpResponse, OAuthError> {
    if let Some(error) = &query.error {
        let description = query.error_description.as_deref().unwrap_or("");
        tracing::warn!(request_id = %id, %error, %description, "TikTok authorization declined");
        return Err(OAuthError::Declined(format!("{error} {description}").trim().to_owned()));
    }
    let code = query.auth_code.as_deref().or(query.code.as_deref()).filter(|c| !c.is_empty());
    let (Some(code), Some(nonce)) = (code, query.state.as_deref()) else {
        return Err(OAuthError::MissingParameters);
    };
    let replace = match connect::consume_state(&state.db, nonce).await {
        Ok(Some(replace)) => replace,
        Ok(None) => return Err(OAuthError::UnknownState),
        Err(e) => {
            tracing::error!(request_id = %id, error = %e, "cannot check the OAuth state");
            return Err(OAuthError::CannotFinish);
        }
    };
    let redirect = state.settings.tiktok.oauth_redirect_url.as_deref();
    match state.tokens.exchange_code(code, redirect, replace).await {
        Ok(account) => {
            let business_id = account.business_id.clone().unwrap_or_default();
            let missing = account.missing_scopes();
            if missing.is_empty() {
                tracing::info!(request_id = %id, %business_id, scope = ?account.scope, "TikTok account connected");
            } else {
                tracing::warn!(
                    request_id = %id,
                    %business_id,
                    missing = %missing.join(","),
                    "TikTok account connected without every messaging scope: the bot cannot reply until the \
                     owner grants them; {RECONNECT}"
                );
            }
            Ok(HttpResponse::Ok().json(json!({
                "status": "connected",
                "business_id": business_id,
                "scope": account.scope,
                "missing_scopes": missing,
            })))
        }
        Err(ConnectError::OtherAccount { connected, offered }) => {
            tracing::warn!(request_id = %id, %connected, %offered, "refused to connect another TikTok account");
            Err(OAuthError::OtherAccount(ConnectError::OtherAccount { connected, offered }.to_string()))
        }
        Err(refused @ ConnectError::NotTheConfiguredAccount { .. }) => {
            tracing::warn!(request_id = %id, error = %refused, "refused to connect another TikTok account");
            Err(OAuthError::OtherAccount(refused.to_string()))
        }
        Err(ConnectError::Store(e)) => {
            tracing::error!(request_id = %id, error = %e, "TikTok tokens could not be stored");
            Err(OAuthError::CannotFinish)
        }
        Err(ConnectError::Refused(e)) => {
            // The error names the endpoint and TikTok's code, never a token.
            tracing::error!(request_id = %id, error = %e, "TikTok authorization code exchange failed");
            Err(OAuthError::ExchangeRefused)
        }
    }
}
