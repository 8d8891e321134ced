//! Registering the bot's webhook with TikTok: `POST /business/webhook/update/` sets the app's callback for
//! direct messages, `GET /business/webhook/list/` reads it back. Both are authenticated by the app's key
//! and secret, not by the shop's tokens.

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::api::{self, ApiError, api_url, paths};
use crate::config::TikTokSettings;

/// TikTok's event type of direct messages.
const EVENT_TYPE: &str = "DIRECT_MESSAGE";

#[derive(Deserialize)]
struct Registration {
    callback_url: Option<String>,
}

/// The app's key and secret, or why they are missing.
fn app(settings: &TikTokSettings) -> Result<(&str, &str), ApiError> {
    match (&settings.client_key, &settings.client_secret) {
        (Some(key), Some(secret)) => Ok((key, secret.expose_secret())),
        _ => Err(ApiError::Token("set TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET (the app's key and secret)".into())),
    }
}

/// A reqwest error and its causes, without the request's URL: the webhook calls carry the app's secret
/// in it (the list call's query), and a reqwest error prints its URL.
fn without_secret(error: reqwest::Error) -> String {
    // anyhow's alternate form prints the error and its causes ("…: Connection refused").
    format!("{:#}", anyhow::Error::new(error.without_url()))
}

/// Reads TikTok's answer to a webhook call; no error text or log line carries the app's secret.
async fn answer(response: Result<reqwest::Response, reqwest::Error>, path: &str) -> Result<Registration, ApiError> {
    let response = response.map_err(|e| ApiError::Unreachable(format!("calling {path}: {}", without_secret(e))))?;
    let envelope: api::Response<Registration> =
        response.json().await.map_err(|e| ApiError::Decode(format!("the answer of {path}: {}", without_secret(e))))?;
    envelope.log_refusal(path);
    match envelope.data {
        Some(data) if envelope.code == 0 => Ok(data),
        _ => Err(ApiError::Api { code: envelope.code, message: envelope.message }),
    }
}

/// Registers `callback_url` for the app's direct-message webhooks; returns the URL TikTok now has.
pub async fn register(
    http: &reqwest::Client,
    settings: &TikTokSettings,
    callback_url: &str,
) -> Result<String, ApiError> {
    let (app_id, secret) = app(settings)?;
    let body = json!({"app_id": app_id, "secret": secret, "event_type": EVENT_TYPE, "callback_url": callback_url});
    let sent = http.post(api_url(&settings.api_base_url, paths::WEBHOOK_UPDATE)).json(&body).send().await;
    let registered = answer(sent, paths::WEBHOOK_UPDATE).await?;
    Ok(registered.callback_url.unwrap_or_else(|| callback_url.to_owned()))
}

/// The callback URL TikTok has for the app's direct-message webhooks, if any.
pub async fn registered(http: &reqwest::Client, settings: &TikTokSettings) -> Result<Option<String>, ApiError> {
    let (app_id, secret) = app(settings)?;
    let sent = http
        .get(api_url(&settings.api_base_url, paths::WEBHOOK_LIST))
        .query(&[("app_id", app_id), ("secret", secret), ("event_type", EVENT_TYPE)])
        .send()
        .await;
    Ok(answer(sent, paths::WEBHOOK_LIST).await?.callback_url.filter(|u| !u.is_empty()))
}
