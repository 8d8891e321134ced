//! Connecting the shop's TikTok account without copying tokens by hand: `GET /oauth/tiktok/start` sends
//! the owner to TikTok's authorization page with a one-time `state`, and `GET /oauth/tiktok/callback`
//! checks that state and trades the authorization code for tokens, which are stored in the database.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::error::OAuthError;
use super::request_id::RequestId;
use crate::state::AppState;

/// How long an authorization started here may take to come back.
const STATE_TTL: Duration = Duration::from_secs(600);

fn state_key(state: &AppState, value: &str) -> String {
    state.kv.key(&format!("oauth-state:{value}"))
}

pub async fn start(state: web::Data<AppState>, id: RequestId) -> Result<HttpResponse, OAuthError> {
    let tiktok = &state.settings.tiktok;
    let Some(client_key) = tiktok.client_key.as_deref().filter(|_| tiktok.client_secret.is_some()) else {
        return Err(OAuthError::NotConfigured);
    };
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    if let Err(e) = state.kv.set(&state_key(&state, &nonce), "pending", STATE_TTL).await {
        tracing::error!(request_id = %id, error = format!("{e:#}"), "cannot store the OAuth state");
        return Err(OAuthError::CannotStart);
    }
    let mut url = url::Url::parse(&tiktok.authorize_url).map_err(|_| OAuthError::BadAuthorizeUrl)?;
    url.query_pairs_mut().append_pair("app_id", client_key).append_pair("state", &nonce);
    if let Some(redirect) = &tiktok.oauth_redirect_url {
        url.query_pairs_mut().append_pair("redirect_uri", redirect);
    }
    Ok(HttpResponse::Found().insert_header((header::LOCATION, url.to_string())).finish())
}

#[derive(Deserialize)]
pub struct Callback {
    /// TikTok names it `auth_code` on the Business API and `code` elsewhere: both are accepted.
    #[serde(alias = "auth_code")]
    code: Option<String>,
    state: Option<String>,
}

pub async fn callback(
    state: web::Data<AppState>,
    query: web::Query<Callback>,
    id: RequestId,
) -> Result<HttpResponse, OAuthError> {
    let (Some(code), Some(nonce)) = (query.code.as_deref(), query.state.as_deref()) else {
        return Err(OAuthError::MissingParameters);
    };
    // One use only: a replayed or forged callback finds no state.
    let key = state_key(&state, nonce);
    match state.kv.get(&key).await {
        Ok(Some(_)) => {
            if let Err(e) = state.kv.delete_if_equals(&key, "pending").await {
                tracing::warn!(request_id = %id, error = format!("{e:#}"), "could not clear the OAuth state; it will lapse");
            }
        }
        Ok(None) => return Err(OAuthError::UnknownState),
        Err(e) => {
            tracing::error!(request_id = %id, error = format!("{e:#}"), "cannot check the OAuth state");
            return Err(OAuthError::CannotFinish);
        }
    }
    match state.tokens.exchange_code(code, state.settings.tiktok.oauth_redirect_url.as_deref()).await {
        Ok(()) => {
            tracing::info!(request_id = %id, "TikTok account connected");
            Ok(HttpResponse::Ok().json(json!({"status": "connected"})))
        }
        Err(e) => {
            // The error names the endpoint and TikTok's code, never a token.
            tracing::error!(request_id = %id, error = %e, "TikTok authorization code exchange failed");
            Err(OAuthError::ExchangeRefused)
        }
    }
}
