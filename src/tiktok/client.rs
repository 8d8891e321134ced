//! The TikTok Business Messaging API client. It owns its policy: callers ask to send a message and never
//! see the rate limit, the retries (exponential backoff with full jitter, `Retry-After` honoured) or the
//! access-token refresh.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_retry::strategy::{ExponentialBackoff, jitter};

use super::api::{self, ApiError, MAX_IMAGE_BYTES, SendOutcome, api_url, codes, paths};
use super::capabilities::ImageGate;
use super::limiter::SendLimiter;
use super::tokens::TokenManager;
use crate::config::TikTokSettings;
use crate::kv::Kv;
use crate::metrics::Metrics;

/// TikTok keeps an uploaded image for 30 days; its id is reused for a day less.
const MEDIA_ID_LIFE: Duration = Duration::from_secs(29 * 24 * 3600);

tokio::task_local! {
    /// When the job that makes the current calls will be cut off. A call is started only if it can
    /// finish (request timeout included) before then, so a job timeout never lands in the middle of a
    /// request, where whether TikTok got the message would be unknown.
    pub static CALL_DEADLINE: tokio::time::Instant;
}

/// What the caller does around one send, so that a message is claimed only when a request is about to
/// be written and everyone knows when one is in flight. TikTok's send call has no idempotency key: a
/// message whose request was written and not answered may have landed.
pub trait SendGuard: Send + Sync {
    /// Called right before each send request is written, after the rate limit and the access token:
    /// `Ok(false)` when the message must not be sent (another delivery has it).
    fn claim(&self) -> BoxFuture<'_, Result<bool, ApiError>>;
    /// A request is being written (`true`), or its answer proved it was not taken (`false`).
    fn in_flight(&self, in_flight: bool);
}

/// The guard of a send nobody else could be making (tests, `chat`): it always may send.
pub struct Unguarded;

impl SendGuard for Unguarded {
    fn claim(&self) -> BoxFuture<'_, Result<bool, ApiError>> {
        Box::pin(async { Ok(true) })
    }

    fn in_flight(&self, _: bool) {}
}

/// A message of a conversation as TikTok lists it (`content/list`): how a send of unknown outcome is
/// settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMessage {
    pub message_id: String,
    pub at: DateTime<Utc>,
    /// Sent by the business account (the bot or staff), not the customer.
    pub from_business: bool,
    pub text: Option<String>,
    pub media_id: Option<String>,
}

/// A failed attempt and how long TikTok asked us to wait before the next.
struct Attempt {
    error: ApiError,
    retry_after: Option<Duration>,
}

#[derive(Clone)]
pub struct TikTokClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    kv: Kv,
    metrics: Metrics,
    base: String,
    tokens: TokenManager,
    images: ImageGate,
    limiter: SendLimiter,
    max_attempts: u32,
    retry_base: Duration,
    retry_max_delay: Duration,
    request_timeout: Duration,
}

/// The HTTP client every TikTok call uses: timeouts set, base URL from config.
pub fn http_client(settings: &TikTokSettings) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
        .timeout(Duration::from_millis(settings.request_timeout_ms))
        .user_agent(concat!("philia-bot/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl TikTokClient {
    /// `kv` caches uploaded images' media ids.
    pub fn new(
        settings: &TikTokSettings,
        http: reqwest::Client,
        tokens: TokenManager,
        limiter: SendLimiter,
        kv: Kv,
        metrics: Metrics,
    ) -> Self {
        let images =
            ImageGate::new(http.clone(), kv.clone(), tokens.clone(), settings.api_base_url.clone(), settings.images);
        Self {
            inner: Arc::new(Inner {
                http,
                kv,
                metrics,
                base: settings.api_base_url.clone(),
                images,
                tokens,
                limiter,
                max_attempts: settings.max_attempts.max(1),
                retry_base: Duration::from_millis(settings.retry_base_ms.max(1)),
                retry_max_delay: Duration::from_millis(settings.retry_max_delay_ms),
                request_timeout: Duration::from_millis(settings.request_timeout_ms),
            }),
        }
    }

    /// Whether TikTok lets the shop send pictures into the conversation (`tiktok.images`; asked once a
    /// day per conversation with `auto`).
    pub async fn allows_images(&self, conversation_id: &str, replied_before: bool) -> bool {
        self.inner.images.allows_images(conversation_id, replied_before).await
    }

    /// Sends one text message (at most [`MAX_TEXT_CHARS`]; split longer texts with [`split_text`]) and
    /// returns TikTok's id of the new message.
    pub async fn send_text(&self, conversation_id: &str, text: &str) -> Result<String, ApiError> {
        self.send_text_guarded(conversation_id, text, &Unguarded).await
    }

    /// [`TikTokClient::send_text`] with the caller's claim taken right before the request is written.
    pub async fn send_text_guarded(
        &self,
        conversation_id: &str,
        text: &str,
        guard: &dyn SendGuard,
    ) -> Result<String, ApiError> {
        self.send(conversation_id, "TEXT", "text", json!({"body": text}), guard).await
    }

    /// Sends an image from its URL (a JPG or PNG of at most 3 MB): uploaded once, then sent by media id.
    pub async fn send_image_url(&self, conversation_id: &str, image_url: &str) -> Result<String, ApiError> {
        self.send_image_url_guarded(conversation_id, image_url, &Unguarded).await
    }

    /// [`TikTokClient::send_image_url`] with the caller's claim taken after the upload, right before the
    /// send request is written.
    pub async fn send_image_url_guarded(
        &self,
        conversation_id: &str,
        image_url: &str,
        guard: &dyn SendGuard,
    ) -> Result<String, ApiError> {
        let media_id = self.media_id_for(image_url).await?;
        self.send_image_guarded(conversation_id, &media_id, guard).await
    }

    /// The conversation's most recent messages (TikTok lists 20, newest first): what settles a send whose
    /// outcome is unknown. One attempt; the caller asks again later.
    pub async fn recent_messages(&self, conversation_id: &str) -> Result<Vec<ListedMessage>, ApiError> {
        let inner = &self.inner;
        let token = inner.tokens.access_token().await?;
        let business_id = inner.tokens.business_id().await?;
        let started = std::time::Instant::now();
        let request = inner
            .http
            .get(api_url(&inner.base, paths::CONTENT_LIST))
            .header("Access-Token", &token)
            .query(&[("business_id", business_id.as_str()), ("conversation_id", conversation_id)]);
        let answer =
            Self::answer(request.send().await.map_err(|e| Attempt { error: transport_error(&e), retry_after: None }))
                .await;
        let code = match &answer {
            Ok(_) => codes::OK.to_string(),
            Err(Attempt { error: ApiError::Api { code, .. }, .. }) => code.to_string(),
            Err(Attempt { error: ApiError::Http { status }, .. }) => format!("http_{status}"),
            Err(_) => "network".to_owned(),
        };
        inner.metrics.tiktok_call("list", &code, started.elapsed());
        let data = answer.map_err(|failure| failure.error)?;
        let messages = data.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
        Ok(messages.iter().filter_map(|m| listed(m, &business_id)).collect())
    }

    /// TikTok's media id for an image: from the cache (media ids live 30 days), else downloaded and
    /// uploaded to `/business/message/media/upload/`.
    pub async fn media_id_for(&self, image_url: &str) -> Result<String, ApiError> {
        let key = self.inner.kv.key(&format!(
            "tiktok:media:{}",
            hex::encode(ring::digest::digest(&ring::digest::SHA256, image_url.as_bytes()))
        ));
        if let Ok(Some(media_id)) = self.inner.kv.get(&key).await {
            return Ok(media_id);
        }
        let (bytes, mime) = self.download_image(image_url).await?;
        let business_id = self.inner.tokens.business_id().await?;
        let file_name = if mime == "image/png" { "image.png" } else { "image.jpg" };
        let data = self
            .call_with(paths::MEDIA_UPLOAD, |request| {
                let part = reqwest::multipart::Part::bytes(bytes.clone())
                    .file_name(file_name)
                    .mime_str(mime)
                    .expect("a valid mime type");
                let form = reqwest::multipart::Form::new()
                    .text("business_id", business_id.clone())
                    .text("media_type", "IMAGE")
                    .part("file", part);
                request.multipart(form)
            })
            .await?;
        let media_id = data
            .get("media_id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Decode("no data.media_id in the upload answer".into()))?;
        if let Err(e) = self.inner.kv.set(&key, &media_id, MEDIA_ID_LIFE).await {
            tracing::warn!(error = format!("{e:#}"), "could not cache a TikTok media id");
        }
        Ok(media_id)
    }

    async fn download_image(&self, url: &str) -> Result<(Vec<u8>, &'static str), ApiError> {
        let response = self.inner.http.get(url).send().await.map_err(|e| transport_error(&e))?;
        if !response.status().is_success() {
            return Err(ApiError::Image(format!("{url} answered HTTP {}", response.status().as_u16())));
        }
        let bytes = response.bytes().await.map_err(|e| transport_error(&e))?;
        if bytes.len() > MAX_IMAGE_BYTES {
            return Err(ApiError::Image(format!("{url} is {} bytes; TikTok takes at most 3 MB", bytes.len())));
        }
        // Decided by the bytes, not the server's content type: only JPG and PNG are accepted.
        let mime = match bytes.as_ref() {
            [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
            [0x89, b'P', b'N', b'G', ..] => "image/png",
            _ => return Err(ApiError::Image(format!("{url} is not a JPG or PNG"))),
        };
        Ok((bytes.to_vec(), mime))
    }

    /// Sends one image, by the media id an upload returned.
    pub async fn send_image(&self, conversation_id: &str, media_id: &str) -> Result<String, ApiError> {
        self.send_image_guarded(conversation_id, media_id, &Unguarded).await
    }

    /// [`TikTokClient::send_image`] with the caller's claim taken right before the request is written.
    pub async fn send_image_guarded(
        &self,
        conversation_id: &str,
        media_id: &str,
        guard: &dyn SendGuard,
    ) -> Result<String, ApiError> {
        self.send(conversation_id, "IMAGE", "image", json!({"media_id": media_id}), guard).await
    }

    /// One message of `message_type` to a conversation; its content goes under `content_key`.
    async fn send(
        &self,
        conversation_id: &str,
        message_type: &str,
        content_key: &str,
        content: Value,
        guard: &dyn SendGuard,
    ) -> Result<String, ApiError> {
        let mut body = json!({
            "business_id": self.inner.tokens.business_id().await?,
            "recipient_type": "CONVERSATION",
            "recipient": conversation_id,
            "message_type": message_type,
        });
        body[content_key] = content;
        let data = self.call_guarded(paths::SEND, |request| request.json(&body), Some(guard)).await?;
        data.pointer("/message/message_id")
            .and_then(|id| match id {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| ApiError::Decode("no data.message.message_id in a successful answer".into()))
    }

    async fn call_with(
        &self,
        path: &str,
        body: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Value, ApiError> {
        self.call_guarded(path, body, None).await
    }

    /// One API call with the client's whole policy: the shared send rate, the access token (refreshed
    /// once on 40105), and retries with backoff and full jitter, or exactly the `Retry-After` TikTok
    /// asked for. A send (with its `guard`) is retried only after a failure that proves TikTok did not
    /// take it; one that may have landed ends the call (its outcome is unknown, never re-POSTed).
    async fn call_guarded(
        &self,
        path: &str,
        body: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
        guard: Option<&dyn SendGuard>,
    ) -> Result<Value, ApiError> {
        let inner = &self.inner;
        let factor = (inner.retry_base.as_millis() as u64 / 2).max(1);
        let mut backoff =
            ExponentialBackoff::from_millis(2).factor(factor).max_delay(inner.retry_max_delay).map(jitter);
        let mut refreshed = false;
        let mut attempt = 0;
        // The latest moment an attempt may start: a request must end before the job's deadline.
        let last_start = CALL_DEADLINE.try_with(|deadline| *deadline).ok().map(|d| d - inner.request_timeout);
        loop {
            attempt += 1;
            let ready = inner.limiter.until_ready();
            match last_start {
                // Time spent before this point (the job's earlier work, a retry's backoff) is not the limiter's.
                Some(last_start) if tokio::time::Instant::now() >= last_start => {
                    let before = if attempt == 1 { "before the first request" } else { "after a retry's wait" };
                    return Err(ApiError::OutOfTime(before.into()));
                }
                Some(last_start) => match tokio::time::timeout_at(last_start, ready).await {
                    Ok(ready) => ready.map_err(|e| ApiError::Limiter(format!("{e:#}")))?,
                    Err(_) => return Err(ApiError::OutOfTime("waiting for the send rate".into())),
                },
                None => ready.await.map_err(|e| ApiError::Limiter(format!("{e:#}")))?,
            }
            let token = inner.tokens.access_token().await?;
            if let Some(guard) = guard {
                if !guard.claim().await? {
                    return Err(ApiError::Superseded);
                }
                guard.in_flight(true);
            }
            let started = std::time::Instant::now();
            let sent = self.post_once(path, &body, &token).await;
            if let (Some(guard), Err(failure)) = (guard, &sent)
                && failure.error.send_outcome() != SendOutcome::Unknown
            {
                // TikTok answered: this request did not take the message.
                guard.in_flight(false);
            }
            let code = match &sent {
                Ok(_) => codes::OK.to_string(),
                Err(Attempt { error: ApiError::Api { code, .. }, .. }) => code.to_string(),
                Err(Attempt { error: ApiError::Http { status }, .. }) => format!("http_{status}"),
                Err(_) => "network".to_owned(),
            };
            let call = if path == paths::SEND { "send" } else { "upload" };
            inner.metrics.tiktok_call(call, &code, started.elapsed());
            let failure = match sent {
                Ok(data) => return Ok(data),
                Err(failure) => failure,
            };
            if failure.error.code() == Some(codes::TOKEN_INVALID) && !refreshed {
                refreshed = true;
                tracing::warn!("TikTok rejected the access token (40105): refreshing it once");
                inner.tokens.refresh().await?;
                continue;
            }
            let retryable = match guard {
                Some(_) => failure.error.is_retryable() && failure.error.send_outcome() == SendOutcome::NotSent,
                None => failure.error.is_retryable(),
            };
            if !retryable || attempt >= inner.max_attempts {
                return Err(failure.error);
            }
            let delay = failure.retry_after.unwrap_or_else(|| backoff.next().unwrap_or(inner.retry_max_delay));
            if last_start.is_some_and(|last| tokio::time::Instant::now() + delay > last) {
                // Another attempt could not finish in time: the job is retried later instead.
                return Err(failure.error);
            }
            tracing::warn!(attempt, error = %failure.error, delay_ms = delay.as_millis() as u64, "TikTok call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn post_once(
        &self,
        path: &str,
        body: &impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
        token: &str,
    ) -> Result<Value, Attempt> {
        let request = self.inner.http.post(api_url(&self.inner.base, path)).header("Access-Token", token);
        Self::answer(body(request).send().await.map_err(|e| Attempt { error: transport_error(&e), retry_after: None }))
            .await
    }

    /// Reads TikTok's answer: `data` of a code 0, else why not.
    async fn answer(response: Result<reqwest::Response, Attempt>) -> Result<Value, Attempt> {
        let response = response?;
        let path = response.url().path().to_owned();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.map_err(|e| Attempt { error: transport_error(&e), retry_after })?;
        let envelope: Option<api::Response<Value>> = serde_json::from_str(&text).ok();
        if let Some(envelope) = &envelope {
            envelope.log_refusal(&path);
        }
        match envelope {
            Some(envelope) if status == StatusCode::OK && envelope.code == codes::OK => {
                Ok(envelope.data.unwrap_or_default())
            }
            Some(envelope) if envelope.code != codes::OK => {
                Err(Attempt { error: ApiError::Api { code: envelope.code, message: envelope.message }, retry_after })
            }
            _ if status != StatusCode::OK => {
                Err(Attempt { error: ApiError::Http { status: status.as_u16() }, retry_after })
            }
            _ => Err(Attempt { error: ApiError::Decode("not a TikTok answer".into()), retry_after }),
        }
    }
}

/// One entry of `content/list`, when it has an id and a timestamp.
fn listed(message: &Value, business_id: &str) -> Option<ListedMessage> {
    let message_id = match message.get("message_id")? {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let at = DateTime::from_timestamp_millis(message.get("timestamp")?.as_i64()?)?;
    let from = message.get("from_user");
    let role = from.and_then(|f| f.get("role")).and_then(Value::as_str).unwrap_or_default();
    let from_id = from.and_then(|f| f.get("id")).and_then(Value::as_str);
    let from_business = role.eq_ignore_ascii_case("business_account") || from_id == Some(business_id);
    let text = message.pointer("/text/body").and_then(Value::as_str).map(str::to_owned);
    let media_id = message.pointer("/image/media_id").and_then(Value::as_str).map(str::to_owned);
    Some(ListedMessage { message_id, at, from_business, text, media_id })
}

fn transport_error(error: &reqwest::Error) -> ApiError {
    // A connect error means nothing was sent; anything later may have reached TikTok.
    if error.is_connect() { ApiError::Unreachable(error.to_string()) } else { ApiError::NoAnswer(error.to_string()) }
}
