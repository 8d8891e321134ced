//! The web boundary's refusals: one enum per route family, each variant one HTTP status, all answered
//! with the same JSON body `{"status": …, "error": …}`. Handlers return them as `Err`; actix turns them
//! into responses through [`ResponseError`]. What went wrong inside is logged where it is handled, with
//! the request id; the body says only what the caller can act on.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// The one body of every refusal.
#[derive(Serialize)]
struct Refusal<'a> {
    status: &'a str,
    error: &'a str,
}

/// A refusal with `status` (`"error"`, or `"unavailable"` when trying again later will work) and a
/// message for the caller; `retry_after` (seconds) tells a well-behaved client when to come back.
fn refusal(code: StatusCode, status: &str, error: &str, retry_after: Option<&'static str>) -> HttpResponse {
    let mut response = HttpResponse::build(code);
    if let Some(seconds) = retry_after {
        response.insert_header((header::RETRY_AFTER, HeaderValue::from_static(seconds)));
    }
    response.json(Refusal { status, error })
}

/// Why `POST /webhook/tiktok` refused a request. None of them reaches the queue.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The source sent more than its share (`webhook.rate_limit_per_second`).
    #[error("rate limit exceeded")]
    RateLimited,
    /// Not `application/json`, or a body encoding other than identity.
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// The body is over `server.body_limit_bytes`.
    #[error("body larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The body could not be read, or is not a usable envelope; the message names the problem.
    #[error("{0}")]
    BadRequest(String),
    /// The signature is missing, malformed, stale or wrong: the body never says which (the log does).
    #[error("invalid signature")]
    Unauthorized,
    /// The queue cannot take the job now; TikTok retries.
    #[error("the queue is unavailable; retry later")]
    Unavailable,
}

impl WebhookError {
    /// The `outcome` label of `philia_webhook_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            WebhookError::RateLimited => "rate_limited",
            WebhookError::UnsupportedMediaType(_) => "unsupported_media_type",
            WebhookError::TooLarge { .. } => "too_large",
            WebhookError::BadRequest(_) => "bad_request",
            WebhookError::Unauthorized => "unauthorized",
            WebhookError::Unavailable => "unavailable",
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebhookError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            WebhookError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebhookError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WebhookError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebhookError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebhookError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = self.to_string();
        match self {
            WebhookError::RateLimited => refusal(self.status_code(), "error", &message, Some("1")),
            WebhookError::Unavailable => refusal(self.status_code(), "unavailable", &message, Some("5")),
            _ => refusal(self.status_code(), "error", &message, None),
        }
    }
}

/// Why connecting the shop's TikTok account (`/oauth/tiktok/*`) did not go through.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("the callback needs `code` (or `auth_code`) and `state`")]
    MissingParameters,
    /// A replayed, forged or expired callback, or one nobody started with `philia-bot tiktok connect`.
    #[error("unknown, used or expired state: run `philia-bot tiktok connect` for a new link")]
    UnknownState,
    /// The one-time state could not be read, or the tokens stored (the database is down).
    #[error("cannot finish the authorization now; try again")]
    CannotFinish,
    /// The owner declined on TikTok's page.
    #[error("the authorization was declined on TikTok: {0}")]
    Declined(String),
    /// TikTok named another account than the connected one.
    #[error("{0}")]
    OtherAccount(String),
    #[error("TikTok did not accept the authorization; start again")]
    ExchangeRefused,
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            OAuthError::CannotFinish => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::MissingParameters | OAuthError::Declined(_) => StatusCode::BAD_REQUEST,
            OAuthError::OtherAccount(_) => StatusCode::CONFLICT,
            OAuthError::UnknownState => StatusCode::FORBIDDEN,
            OAuthError::ExchangeRefused => StatusCode::BAD_GATEWAY,
        }
    }

    fn error_response(&self) -> HttpResponse {
        refusal(self.status_code(), "error", &self.to_string(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(response: HttpResponse) -> serde_json::Value {
        serde_json::from_slice(&response.into_body().try_into_bytes().unwrap()).unwrap()
    }

    #[test]
    fn every_webhook_refusal_has_its_status_label_and_body() {
        let cases = [
            (WebhookError::RateLimited, 429, "rate_limited", "error", Some("1")),
            (
                WebhookError::UnsupportedMediaType("content type must be application/json"),
                415,
                "unsupported_media_type",
                "error",
                None,
            ),
            (WebhookError::TooLarge { limit: 65_536 }, 413, "too_large", "error", None),
            (WebhookError::BadRequest("missing field `event`".into()), 400, "bad_request", "error", None),
            (WebhookError::Unauthorized, 401, "unauthorized", "error", None),
            (WebhookError::Unavailable, 503, "unavailable", "unavailable", Some("5")),
        ];
        for (error, code, outcome, status, retry_after) in cases {
            let message = error.to_string();
            assert_eq!(error.outcome(), outcome);
            let response = error.error_response();
            assert_eq!(response.status().as_u16(), code, "{outcome}");
            assert_eq!(
                response.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap()),
                retry_after,
                "{outcome}"
            );
            assert_eq!(body_of(response), serde_json::json!({"status": status, "error": message}), "{outcome}");
        }
        assert_eq!(WebhookError::TooLarge { limit: 65_536 }.to_string(), "body larger than 65536 bytes");
    }

    #[test]
    fn oauth_refusals_keep_their_statuses() {
        for (error, code) in [
            (OAuthError::Declined("access_denied".into()), 400),
            (OAuthError::OtherAccount("another account".into()), 409),
            (OAuthError::MissingParameters, 400),
            (OAuthError::UnknownState, 403),
            (OAuthError::CannotFinish, 503),
            (OAuthError::ExchangeRefused, 502),
        ] {
            let message = error.to_string();
            let response = error.error_response();
            assert_eq!(response.status().as_u16(), code, "{message}");
            assert_eq!(body_of(response), serde_json::json!({"status": "error", "error": message}));
        }
    }
}
