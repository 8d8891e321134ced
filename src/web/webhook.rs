//! `POST /webhook/tiktok`: verify, parse, enqueue, answer fast. No business logic: a request that gets a
//! 4xx never reaches the queue, and 200 `ok` is said only once the job is durably queued.

use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use actix_web::dev::Decompress;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::config::WebhookSettings;
use crate::jobs::Job;
use crate::state::AppState;
use crate::telemetry::escape_for_log;
use crate::tiktok::envelope::{self, WebhookEvent};
use crate::tiktok::signature;

/// The header TikTok signs webhooks with.
pub const SIGNATURE_HEADER: &str = "TikTok-Signature";

/// Requests per source address, so one misbehaving sender cannot starve TikTok's deliveries.
pub struct SourceLimiter(DefaultKeyedRateLimiter<String>);

impl SourceLimiter {
    pub fn new(settings: &WebhookSettings) -> Arc<Self> {
        let rate = NonZeroU32::new(settings.rate_limit_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.rate_limit_burst).unwrap_or(rate);
        let limiter = Arc::new(Self(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))));
        // Forget sources that have gone quiet, so the map does not grow with every address ever seen.
        let weak: Weak<Self> = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let Some(limiter) = weak.upgrade() else { break };
                limiter.0.retain_recent();
            }
        });
        limiter
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    reply(status, json!({"status": "error", "error": message}))
}

/// `POST /webhook/tiktok`, counted by outcome and timed.
pub async fn tiktok(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    limiter: web::Data<SourceLimiter>,
) -> HttpResponse {
    let started = std::time::Instant::now();
    let (outcome, response) = handle(req, payload, &state, &limiter).await;
    state.metrics.webhook(outcome, started.elapsed());
    response
}

async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: &AppState,
    limiter: &SourceLimiter,
) -> (&'static str, HttpResponse) {
    let source = req.connection_info().realip_remote_addr().unwrap_or("unknown").to_owned();
    if limiter.0.check_key(&source).is_err() {
        tracing::warn!(source = %escape_for_log(&source, 64), "webhook rate limit exceeded");
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return ("rate_limited", response);
    }
    if !is_json(&req) {
        return (
            "unsupported_media_type",
            error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "content type must be application/json"),
        );
    }
    let limit = state.settings.server.body_limit_bytes;
    let body = match read_body(&req, payload, limit).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return ("too_large", error(StatusCode::PAYLOAD_TOO_LARGE, &format!("body larger than {limit} bytes")));
        }
        Err(BodyError::Unreadable(reason)) => return ("bad_request", error(StatusCode::BAD_REQUEST, &reason)),
    };
    if let Some(secret) = &state.settings.tiktok.webhook_secret {
        let header = req.headers().get(SIGNATURE_HEADER).map(|v| v.to_str().unwrap_or(""));
        let now = chrono::Utc::now().timestamp();
        let tolerance = state.settings.tiktok.signature_tolerance_secs;
        if let Err(e) = signature::verify(secret.expose_secret().as_bytes(), header, &body, now, tolerance) {
            // Which check failed goes to the log only: the answer gives a forger nothing to work with.
            tracing::warn!(source = %escape_for_log(&source, 64), reason = %e, "webhook signature rejected");
            return ("unauthorized", error(StatusCode::UNAUTHORIZED, "invalid signature"));
        }
    }
    let event = match envelope::parse(&body, chrono::Utc::now()) {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(reason = %escape_for_log(&e.0, 300), "malformed webhook");
            return ("bad_request", error(StatusCode::BAD_REQUEST, &e.0));
        }
    };
    let job = match event {
        WebhookEvent::Ignored { idempotency_key, event } => {
            tracing::info!(event = %escape_for_log(&event, 64), event_id = %escape_for_log(&idempotency_key, 128), "webhook event ignored");
            return (
                "ignored",
                reply(StatusCode::OK, json!({"status": "ignored", "event": event, "event_id": idempotency_key})),
            );
        }
        WebhookEvent::Inbound(message) => Job::InboundMessageV1(*message),
        WebhookEvent::Echo(message) => Job::OutboundEchoV1(*message),
    };
    let key = job.idempotency_key().to_owned();
    match state.queue.enqueue(&job).await {
        Ok(_) => {
            state.metrics.job_enqueued();
            ("enqueued", reply(StatusCode::OK, json!({"status": "ok", "event_id": key})))
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), event_id = %escape_for_log(&key, 128), "cannot enqueue webhook");
            let mut response = reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "unavailable", "error": "the queue is unavailable; retry later"}),
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            ("unavailable", response)
        }
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

enum BodyError {
    TooLarge,
    Unreadable(String),
}

/// Reads the body, decompressing it as its `Content-Encoding` says; the limit applies to the
/// decompressed bytes, so a small compressed bomb is refused too.
async fn read_body(req: &HttpRequest, payload: web::Payload, limit: usize) -> Result<web::Bytes, BodyError> {
    let declared =
        req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut stream = Decompress::from_headers(payload.into_inner(), req.headers());
    let mut body = web::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Unreadable(format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
