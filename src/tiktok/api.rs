//! TikTok's Business Messaging API as data, shared by the client and the token manager: the answer codes,
//! why a call failed ([`ApiError`]), the response envelope every call answers with, the endpoint URLs,
//! and the limits a message must fit.

use serde::Deserialize;

/// TikTok's answer codes the client acts on.
pub mod codes {
    pub const OK: i64 = 0;
    pub const BAD_PARAMETER: i64 = 40002;
    /// "You are sending messages too fast. Take a rest.": a per-account limit (roughly 100–200 new
    /// conversations a day per the channel docs) or a messaging restriction. Not the reply window: the
    /// bot never sends outside it, nor past the quota.
    pub const TOO_FAST: i64 = 40064;
    pub const RATE_LIMITED: i64 = 40100;
    pub const TOKEN_INVALID: i64 = 40105;
    pub const SYSTEM_ERROR: i64 = 51065;
}

/// The longest text TikTok accepts in one message.
pub const MAX_TEXT_CHARS: usize = 6_000;
/// The largest image TikTok accepts.
pub const MAX_IMAGE_BYTES: usize = 3 * 1024 * 1024;

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// TikTok answered with a non-zero code.
    #[error("TikTok answered {code}: {message}")]
    Api { code: i64, message: String },
    /// An HTTP status without a usable TikTok body.
    #[error("TikTok answered HTTP {status}")]
    Http { status: u16 },
    /// The request never reached TikTok (connection refused, DNS): safe to send again.
    #[error("could not reach TikTok: {0}")]
    Unreachable(String),
    /// The request may or may not have reached TikTok (timeout, connection lost mid-call).
    #[error("no answer from TikTok: {0}")]
    NoAnswer(String),
    /// The answer could not be read.
    #[error("unreadable answer from TikTok: {0}")]
    Decode(String),
    /// No usable access token (none configured, or TikTok refused the refresh token).
    #[error("no valid TikTok access token: {0}")]
    Token(String),
    /// The shop's account is not connected: TikTok removed the authorization, or nobody connected it.
    #[error("the TikTok account is not connected: {0}")]
    NotConnected(String),
    /// The database could not be read or written (the tokens): nothing was sent, worth another try.
    #[error("database: {0}")]
    Database(String),
    /// The shared send-rate limiter (Redis) could not be asked.
    #[error("send rate limiter unavailable: {0}")]
    Limiter(String),
    /// The image to send could not be used (not found, too large, not JPG/PNG).
    #[error("image: {0}")]
    Image(String),
    /// The job this call belongs to has no time left for another attempt: nothing was sent, the job
    /// tries again later.
    #[error("no time left in this job for another attempt ({0})")]
    OutOfTime(String),
    /// The message was not sent: another delivery claimed it first.
    #[error("another delivery is sending this message")]
    Superseded,
}

impl ApiError {
    /// Worth another attempt: rate limits, TikTok's own failures, and requests that never left.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Api { code, .. } => matches!(*code, codes::RATE_LIMITED | codes::SYSTEM_ERROR),
            ApiError::Http { status } => *status == 429 || *status >= 500,
            ApiError::Unreachable(_)
            | ApiError::NoAnswer(_)
            | ApiError::Limiter(_)
            | ApiError::OutOfTime(_)
            | ApiError::Database(_) => true,
            ApiError::Decode(_)
            | ApiError::Token(_)
            | ApiError::NotConnected(_)
            | ApiError::Image(_)
            | ApiError::Superseded => false,
        }
    }

    /// TikTok's code, when it gave one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ApiError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the message may have been delivered although the call failed.
    pub fn maybe_delivered(&self) -> bool {
        self.send_outcome() == SendOutcome::Unknown
    }

    /// What a failed send means for the message. TikTok's send call has no idempotency key, so only a
    /// failure that proves the message was not taken may be sent again blindly: no connection, HTTP 429
    /// or 503 (refused at the door), TikTok's 40100 (rate limited), or a failure before the request was
    /// written (token, limiter, no time left). A timeout after the request was written, a connection lost
    /// before the answer, any other 5xx, 51065 ("system error") or an unreadable answer may have landed:
    /// `Unknown`. Anything else is a refusal of this message.
    pub fn send_outcome(&self) -> SendOutcome {
        match self {
            ApiError::Unreachable(_)
            | ApiError::Limiter(_)
            | ApiError::OutOfTime(_)
            | ApiError::Token(_)
            | ApiError::NotConnected(_)
            | ApiError::Database(_)
            | ApiError::Superseded => SendOutcome::NotSent,
            ApiError::Http { status: 429 | 503 } => SendOutcome::NotSent,
            ApiError::Api { code: codes::RATE_LIMITED, .. } => SendOutcome::NotSent,
            ApiError::NoAnswer(_) | ApiError::Decode(_) | ApiError::Api { code: codes::SYSTEM_ERROR, .. } => {
                SendOutcome::Unknown
            }
            ApiError::Http { status } if *status >= 500 => SendOutcome::Unknown,
            ApiError::Api { .. } | ApiError::Http { .. } | ApiError::Image(_) => SendOutcome::Refused,
        }
    }
}

/// What a failed send says about the message (see [`ApiError::send_outcome`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// TikTok certainly did not take it: safe to send again.
    NotSent,
    /// It may have reached the customer: settled by its echo or by reading the conversation, never sent
    /// again blindly.
    Unknown,
    /// TikTok refused this message for good (bad parameter, window closed, …).
    Refused,
}

/// TikTok's answer to every call: HTTP 200 with `{"code", "message", "request_id", "data"}`, where `code` 0
/// is success and `data` holds what was asked for.
#[derive(Debug, Deserialize)]
pub struct Response<T> {
    pub code: i64,
    #[serde(default)]
    pub message: String,
    /// TikTok's id of the request: logged with every non-zero code, for TikTok's support.
    #[serde(default)]
    pub request_id: Option<String>,
    pub data: Option<T>,
}

impl<T> Response<T> {
    /// Logs a refusal with TikTok's `request_id` (the one thing TikTok's support asks for).
    pub fn log_refusal(&self, path: &str) {
        if self.code != codes::OK {
            tracing::warn!(
                path,
                code = self.code,
                message = %self.message,
                request_id = self.request_id.as_deref().unwrap_or("none"),
                "TikTok refused a call"
            );
        }
    }
}

/// The endpoints the bot calls, under `/open_api/v1.3`.
pub mod paths {
    pub const SEND: &str = "/business/message/send/";
    pub const MEDIA_UPLOAD: &str = "/business/message/media/upload/";
    pub const OAUTH_TOKEN: &str = "/tt_user/oauth2/token/";
    pub const OAUTH_REFRESH: &str = "/tt_user/oauth2/refresh_token/";
    pub const CONTENT_LIST: &str = "/business/message/content/list/";
    pub const CAPABILITIES: &str = "/business/message/capabilities/get/";
    pub const WEBHOOK_UPDATE: &str = "/business/webhook/update/";
    pub const WEBHOOK_LIST: &str = "/business/webhook/list/";
}

/// `{base}/open_api/v1.3{path}`.
pub fn api_url(base: &str, path: &str) -> String {
    format!("{}/open_api/v1.3{path}", base.trim_end_matches('/'))
}

/// Splits a text into messages of at most `max` characters, at paragraph, line or sentence ends when
/// there is one in the second half of the chunk, else at a space, else anywhere. Order is kept.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > max {
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..limit];
        let half = window.len() / 2;
        let cut = ["\n\n", "\n", ". ", "! ", "? ", " "]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|i| *i >= half).map(|i| i + sep.len()))
            .unwrap_or(limit);
        parts.push(rest[..cut].trim_end().to_owned());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_message() {
        assert_eq!(split_text("hello there", 6_000), vec!["hello there"]);
    }

    #[test]
    fn long_text_splits_at_sentence_ends_in_order() {
        let sentence = "This jacket is a one-of-one Carhartt Detroit in great shape. ";
        let text = sentence.repeat(300);
        let parts = split_text(&text, 6_000);
        assert!(parts.len() >= 3);
        assert!(parts.iter().all(|p| p.chars().count() <= 6_000));
        assert!(parts.iter().all(|p| p.ends_with('.')), "every part ends a sentence");
        assert_eq!(parts.join(" "), text.trim());
    }

    #[test]
    fn text_without_boundaries_is_cut_by_characters() {
        let text = "é".repeat(13_000);
        let parts = split_text(&text, 6_000);
        assert_eq!(parts.iter().map(|p| p.chars().count()).collect::<Vec<_>>(), [6_000, 6_000, 1_000]);
    }

    #[test]
    fn retryable_codes_are_classified() {
        let api = |code| ApiError::Api { code, message: String::new() };
        assert!(api(codes::RATE_LIMITED).is_retryable());
        assert!(api(codes::SYSTEM_ERROR).is_retryable());
        assert!(!api(codes::TOO_FAST).is_retryable());
        assert!(!api(codes::BAD_PARAMETER).is_retryable());
        assert!(ApiError::Http { status: 503 }.is_retryable());
        assert!(ApiError::Http { status: 429 }.is_retryable());
        assert!(!ApiError::Http { status: 404 }.is_retryable());
    }

    #[test]
    fn send_outcomes_split_what_may_have_landed_from_what_did_not() {
        let api = |code| ApiError::Api { code, message: String::new() };
        for not_sent in [
            ApiError::Unreachable("refused".into()),
            ApiError::Http { status: 429 },
            ApiError::Http { status: 503 },
            api(codes::RATE_LIMITED),
        ] {
            assert_eq!(not_sent.send_outcome(), SendOutcome::NotSent, "{not_sent}");
        }
        for unknown in [
            ApiError::NoAnswer("timeout".into()),
            ApiError::Http { status: 500 },
            ApiError::Http { status: 502 },
            ApiError::Http { status: 504 },
            api(codes::SYSTEM_ERROR),
        ] {
            assert_eq!(unknown.send_outcome(), SendOutcome::Unknown, "{unknown}");
        }
        assert_eq!(api(codes::BAD_PARAMETER).send_outcome(), SendOutcome::Refused);
        assert_eq!(ApiError::Http { status: 404 }.send_outcome(), SendOutcome::Refused);
    }
}
