//! `POST /webhook/tiktok`: verify, parse, enqueue, answer fast. No business logic: a request that gets a
//! 4xx never reaches the queue, and 200 `ok` is said only once the job is durably queued.
//!
//! The checks run cheapest first, and everything that can be refused from the head is refused before the
//! body is read: the source's rate, the content type and encoding, the declared length; then the body
//! (at most `server.body_limit_bytes`), its signature, its envelope; then the queue.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::ExposeSecret;
use serde::Serialize;

use super::error::WebhookError;
use super::request_id::RequestId;
use crate::config::Settings;
use crate::jobs::{Job, Producer};
use crate::state::AppState;
use crate::telemetry::escape_for_log;
use crate::tiktok::envelope::{self, Envelope, WebhookEvent};
use crate::tiktok::signature::WebhookKey;
use crate::tiktok::unparsed;

/// The header TikTok signs webhooks with.
pub const SIGNATURE_HEADER: &str = "TikTok-Signature";

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// [`SIGNATURE_HEADER`] as a header name, so the lookup does not parse the name on every request.
const SIGNATURE: HeaderName = HeaderName::from_static("tiktok-signature");

/// What the webhook holds for the life of a server: its settings, the signing key, and the per-source
/// rate limiter (so one misbehaving sender cannot starve TikTok's deliveries).
pub struct Ingress {
    /// Keyed on an IP address (see [`source_address`]): a fixed-size key, whatever a client puts in its
    /// headers.
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// `None` when no webhook secret is set (local use only: production refuses to start so).
    key: Option<WebhookKey>,
    tolerance_secs: u64,
    trusted_proxies: usize,
    body_limit: usize,
}

impl Ingress {
    pub fn new(settings: &Settings) -> Arc<Self> {
        let webhook = &settings.webhook;
        let rate = NonZeroU32::new(webhook.rate_limit_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(webhook.rate_limit_burst).unwrap_or(rate);
        let ingress = Arc::new(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            key: settings
                .tiktok
                .webhook_secret
                .as_ref()
                .map(|secret| WebhookKey::new(secret.expose_secret().as_bytes())),
            tolerance_secs: settings.tiktok.signature_tolerance_secs,
            trusted_proxies: settings.server.trusted_proxies,
            body_limit: settings.server.body_limit_bytes,
        });
        // Forget sources that have gone quiet, so the map does not grow with every address ever seen.
        let weak: Weak<Self> = Arc::downgrade(&ingress);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let Some(ingress) = weak.upgrade() else { break };
                ingress.limiter.retain_recent();
            }
        });
        ingress
    }
}

/// The address a request's rate limit is counted against: the connection's peer, or, behind
/// `trusted_proxies` proxies that each append the address they saw to `X-Forwarded-For`, the entry that
/// many hops from the right (the address the outermost trusted proxy saw). Entries left of it are
/// whatever the client wrote and are never used. A missing, short or unparseable header falls back to
/// the peer, so a client cannot choose its own key.
pub fn source_address(peer: Option<SocketAddr>, headers: &HeaderMap, trusted_proxies: usize) -> IpAddr {
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |peer| peer.ip());
    let Some(skip) = trusted_proxies.checked_sub(1) else { return peer };
    let mut entries_from_the_right =
        headers.get_all(X_FORWARDED_FOR).rev().flat_map(|value| value.to_str().unwrap_or("\u{0}").rsplit(','));
    entries_from_the_right.nth(skip).and_then(parse_address).unwrap_or(peer)
}

/// An `X-Forwarded-For` entry: an IP address, optionally with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|address| address.ip()))
}

/// What became of an accepted webhook.
enum Accepted {
    /// The job is on the queue.
    Enqueued { event_id: String },
    /// An event the bot does not act on: acknowledged so TikTok does not retry it.
    Ignored { event: String, event_id: String },
    /// An event for another business account than the shop's: acknowledged, counted, not acted on.
    OtherAccount { event: String, event_id: String },
    /// TikTok removed the app's authorization: the account is marked disconnected.
    Disconnected { event_id: String },
    /// A signed event the bot could not read: kept raw with the reason, acknowledged.
    Kept { event_id: String },
}

#[derive(Serialize)]
struct Answer<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    event_id: &'a str,
}

impl Accepted {
    /// The `outcome` label of `philia_webhook_requests_total`.
    fn outcome(&self) -> &'static str {
        match self {
            Accepted::Enqueued { .. } => "enqueued",
            Accepted::Ignored { .. } => "ignored",
            Accepted::OtherAccount { .. } => "other_account",
            Accepted::Disconnected { .. } => "authorization_removed",
            Accepted::Kept { .. } => "unparsed",
        }
    }

    fn into_response(self) -> HttpResponse {
        let answer = match &self {
            Accepted::Enqueued { event_id } => Answer { status: "ok", event: None, event_id },
            Accepted::Ignored { event, event_id } | Accepted::OtherAccount { event, event_id } => {
                Answer { status: "ignored", event: Some(event), event_id }
            }
            Accepted::Disconnected { event_id } => Answer { status: "disconnected", event: None, event_id },
            Accepted::Kept { event_id } => Answer { status: "kept", event: None, event_id },
        };
        HttpResponse::Ok().json(answer)
    }
}

/// `POST /webhook/tiktok`, counted by outcome and timed.
pub async fn tiktok(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    ingress: web::Data<Ingress>,
    producer: web::Data<Producer>,
    id: RequestId,
) -> Result<HttpResponse, WebhookError> {
    let started = Instant::now();
    let result = accept(&req, payload, &state, &ingress, &producer, id).await;
    let outcome = match &result {
        Ok(accepted) => accepted.outcome(),
        Err(refused) => refused.outcome(),
    };
    state.metrics.webhook(outcome, started.elapsed());
    result.map(Accepted::into_response)
}

async fn accept(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    ingress: &Ingress,
    producer: &Producer,
    id: RequestId,
) -> Result<Accepted, WebhookError> {
    let source = source_address(req.peer_addr(), req.headers(), ingress.trusted_proxies);
    if ingress.limiter.check_key(&source).is_err() {
        tracing::warn!(request_id = %id, %source, "webhook rate limit exceeded");
        return Err(WebhookError::RateLimited);
    }
    check_media_type(req.headers())?;
    let body = read_body(req.headers(), payload, ingress.body_limit).await?;
    if let Some(key) = &ingress.key {
        let header = req.headers().get(SIGNATURE).map(|v| v.to_str().unwrap_or(""));
        let now = chrono::Utc::now().timestamp();
        if let Err(e) = key.verify(header, &body, now, ingress.tolerance_secs) {
            // Which check failed goes to the log only: the answer gives a forger nothing to work with.
            tracing::warn!(request_id = %id, %source, reason = %e, "webhook signature rejected");
            return Err(WebhookError::Unauthorized);
        }
    }
    let parsed = envelope::parse_envelope(&body, chrono::Utc::now());
    // Once the shop's account is known, events for another one are not the shop's business.
    let ours = match &parsed {
        Ok(Envelope { account: Some(_), .. }) => state.tokens.known_business_id().await,
        _ => None,
    };
    let job = match parsed {
        Ok(Envelope { account: Some(account), event }) if ours.as_deref().is_some_and(|ours| ours != account) => {
            let (event, event_id) = describe(&event);
            tracing::warn!(request_id = %id, account = %escape_for_log(&account, 128), %event, %event_id, "webhook for another business account ignored");
            return Ok(Accepted::OtherAccount { event, event_id });
        }
        Ok(Envelope { event: WebhookEvent::Inbound(message), .. }) => Job::InboundMessageV1(*message),
        Ok(Envelope { event: WebhookEvent::Echo(message), .. }) => Job::OutboundEchoV1(*message),
        Ok(Envelope { event: WebhookEvent::AuthorizationRemoved { idempotency_key, reason }, .. }) => {
            // Handled here, not queued: one UPDATE, and TikTok retries if the database cannot take it.
            tracing::warn!(request_id = %id, reason, "TikTok removed the app's authorization");
            return match state.tokens.authorization_removed(reason).await {
                Ok(()) => Ok(Accepted::Disconnected { event_id: idempotency_key }),
                Err(e) => {
                    tracing::error!(request_id = %id, error = %e, "cannot record the removed authorization");
                    Err(WebhookError::Unavailable)
                }
            };
        }
        Ok(Envelope { event: WebhookEvent::Ignored { idempotency_key, event }, .. }) => {
            tracing::info!(request_id = %id, event = %escape_for_log(&event, 64), event_id = %escape_for_log(&idempotency_key, 128), "webhook event ignored");
            return Ok(Accepted::Ignored { event, event_id: idempotency_key });
        }
        Err(e) if unparsed::is_json_object(&body) => {
            // Signed (or no key is set) and JSON, but not an event the bot can read: TikTok would retry a
            // refusal for 72 hours and it would never parse. Kept and acknowledged.
            return match unparsed::keep(&state.db, &body, &e.0).await {
                Ok(row) => {
                    tracing::warn!(request_id = %id, reason = %escape_for_log(&e.0, 300), row, "unreadable webhook kept");
                    Ok(Accepted::Kept { event_id: format!("unparsed:{row}") })
                }
                Err(db) => {
                    tracing::error!(request_id = %id, error = %db, "cannot keep an unreadable webhook");
                    Err(WebhookError::Unavailable)
                }
            };
        }
        Err(e) => {
            tracing::warn!(request_id = %id, reason = %escape_for_log(&e.0, 300), "malformed webhook");
            return Err(WebhookError::BadRequest(e.0));
        }
    };
    match producer.enqueue(&job).await {
        Ok(_) => {
            state.metrics.job_enqueued();
            Ok(Accepted::Enqueued { event_id: job.idempotency_key().to_owned() })
        }
        Err(e) => {
            let event_id = escape_for_log(job.idempotency_key(), 128);
            tracing::error!(request_id = %id, error = format!("{e:#}"), %event_id, "cannot enqueue webhook");
            Err(WebhookError::Unavailable)
        }
    }
}

/// The event name and id of a parsed webhook, for the log and the answer.
fn describe(event: &WebhookEvent) -> (String, String) {
    match event {
        WebhookEvent::Inbound(m) | WebhookEvent::Echo(m) => (m.event.clone(), m.idempotency_key.clone()),
        WebhookEvent::AuthorizationRemoved { idempotency_key, .. } => {
            (envelope::AUTHORIZATION_REMOVED_EVENT.to_owned(), idempotency_key.clone())
        }
        WebhookEvent::Ignored { idempotency_key, event } => (event.clone(), idempotency_key.clone()),
    }
}

/// JSON, sent as is: TikTok does not compress its webhooks, so a compressed body is refused before it
/// is read, and no small compressed bomb can make the server inflate megabytes before the signature
/// check.
fn check_media_type(headers: &HeaderMap) -> Result<(), WebhookError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(WebhookError::UnsupportedMediaType("content type must be application/json"));
    }
    let identity = headers
        .get_all(header::CONTENT_ENCODING)
        .all(|v| v.to_str().is_ok_and(|encoding| encoding.trim().eq_ignore_ascii_case("identity")));
    if !identity {
        return Err(WebhookError::UnsupportedMediaType(
            "content encoding must be identity: send the body uncompressed",
        ));
    }
    Ok(())
}

/// Reads the body, refusing it as soon as it is known to be over `limit` (from `Content-Length` before
/// anything is read, else while reading).
async fn read_body(headers: &HeaderMap, mut payload: web::Payload, limit: usize) -> Result<web::Bytes, WebhookError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(WebhookError::TooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| WebhookError::BadRequest(format!("unreadable body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(WebhookError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    const PEER: &str = "10.0.0.9:41000";

    fn source(values: &[&str], trusted_proxies: usize) -> IpAddr {
        source_address(Some(PEER.parse().unwrap()), &forwarded(values), trusted_proxies)
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_source_whatever_the_header_says() {
        assert_eq!(source(&[], 0), ip("10.0.0.9"));
        assert_eq!(source(&["198.51.100.1"], 0), ip("10.0.0.9"));
        assert_eq!(source_address(None, &forwarded(&["198.51.100.1"]), 0), ip("0.0.0.0"), "no peer (tests)");
    }

    #[test]
    fn behind_trusted_proxies_the_entry_that_many_hops_from_the_right_is_the_source() {
        // What the client wrote comes first; each proxy appends the address it saw.
        assert_eq!(source(&["198.51.100.1, 203.0.113.7"], 1), ip("203.0.113.7"));
        assert_eq!(source(&["198.51.100.1", "203.0.113.7"], 1), ip("203.0.113.7"), "several header lines");
        assert_eq!(source(&["198.51.100.1, 203.0.113.7, 192.0.2.1"], 2), ip("203.0.113.7"));
        assert_eq!(source(&[" 2001:db8::1 "], 1), ip("2001:db8::1"));
        assert_eq!(source(&["203.0.113.7:5123"], 1), ip("203.0.113.7"), "with a port");
        assert_eq!(source(&["[2001:db8::1]:443"], 1), ip("2001:db8::1"), "IPv6 with a port");
    }

    #[test]
    fn a_missing_short_or_unparseable_header_falls_back_to_the_peer() {
        for (values, trusted_proxies) in [
            (&[][..], 1),
            (&["203.0.113.7"][..], 2),
            (&["unknown"][..], 1),
            (&["198.51.100.1, not-an-ip"][..], 1),
            (&["198.51.100.1, "][..], 1),
            (&["1.2.3.4, 999.1.1.1"][..], 1),
        ] {
            assert_eq!(source(values, trusted_proxies), ip("10.0.0.9"), "{values:?} behind {trusted_proxies}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_bytes(b"203.0.113.\xff").unwrap());
        assert_eq!(source_address(Some(PEER.parse().unwrap()), &headers, 1), ip("10.0.0.9"), "not UTF-8");
    }

    #[test]
    fn the_signature_header_name_is_tiktoks() {
        assert_eq!(SIGNATURE, HeaderName::from_bytes(SIGNATURE_HEADER.as_bytes()).unwrap());
    }

    #[test]
    fn content_type_and_encoding_are_checked_from_the_head() {
        let check = |pairs: &[(&str, &str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
            }
            check_media_type(&headers).map_err(|e| e.to_string())
        };
        assert_eq!(check(&[("content-type", "application/json")]), Ok(()));
        assert_eq!(check(&[("content-type", "Application/JSON; charset=utf-8")]), Ok(()));
        assert_eq!(check(&[("content-type", "application/json"), ("content-encoding", " Identity ")]), Ok(()));
        assert!(check(&[("content-type", "text/plain")]).unwrap_err().contains("application/json"));
        assert!(check(&[]).unwrap_err().contains("application/json"));
        for encoding in ["gzip", "deflate", "br", "zstd", "identity, gzip", ""] {
            let refused = check(&[("content-type", "application/json"), ("content-encoding", encoding)]);
            assert!(refused.unwrap_err().contains("content encoding"), "{encoding:?}");
        }
    }
}
