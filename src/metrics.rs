//! What the process measures, for `GET /metrics` (Prometheus text format): webhook requests and their
//! latency, jobs through the queue, sends to TikTok by result code, LLM calls, and at scrape time the
//! queue's depth and the active holds. Each application has its own registry (tests run many in one
//! process and must not see each other's numbers).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// One of a fixed set of names: a `&'static str`, so counting allocates nothing on the hot path.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Call {
    /// `send` (a message) or `upload` (an image).
    pub call: String,
    /// TikTok's result code (`0` for success), or `http_STATUS` / `network` when there was none.
    pub code: String,
}

fn latency() -> Histogram {
    // 0.25 ms … about 4 s: the ingress answers in milliseconds, a send or an LLM call in hundreds of them.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The process's metrics. Cheap to clone (shared counters).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    webhook_requests: Family<Outcome, Counter>,
    webhook_latency: Histogram,
    jobs_enqueued: Counter,
    jobs_processed: Family<Outcome, Counter>,
    jobs_retried: Counter,
    jobs_dead: Counter,
    queue_waiting: Gauge,
    queue_pending: Gauge,
    queue_oldest_pending: Gauge<f64, AtomicU64>,
    queue_stream_length: Gauge,
    queue_stream_bytes: Gauge,
    sends: Family<Call, Counter>,
    send_latency: Histogram,
    llm_calls: Family<Outcome, Counter>,
    llm_latency: Histogram,
    active_holds: Gauge,
    /// Labelled with the deployment's key prefix; no sample at all when Redis is not configured (0 would
    /// read as "down").
    redis_up: Family<Vec<(&'static str, String)>, Gauge>,
    not_sent: Family<Outcome, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("philia");
        let inner = Inner {
            webhook_requests: Family::default(),
            webhook_latency: latency(),
            jobs_enqueued: Counter::default(),
            jobs_processed: Family::default(),
            jobs_retried: Counter::default(),
            jobs_dead: Counter::default(),
            queue_waiting: Gauge::default(),
            queue_pending: Gauge::default(),
            queue_oldest_pending: Gauge::default(),
            queue_stream_length: Gauge::default(),
            queue_stream_bytes: Gauge::default(),
            sends: Family::default(),
            send_latency: latency(),
            llm_calls: Family::default(),
            llm_latency: latency(),
            active_holds: Gauge::default(),
            redis_up: Family::default(),
            not_sent: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "webhook_requests",
            "Webhook requests by outcome (enqueued, ignored, or the refusal)",
            inner.webhook_requests.clone(),
        );
        registry.register("webhook_duration_seconds", "Time to answer a webhook", inner.webhook_latency.clone());
        registry.register("jobs_enqueued", "Jobs put on the queue", inner.jobs_enqueued.clone());
        registry.register(
            "jobs_processed",
            "Jobs finished, by outcome (processed, duplicate)",
            inner.jobs_processed.clone(),
        );
        registry.register("jobs_retried", "Failed deliveries left for another try", inner.jobs_retried.clone());
        registry.register("jobs_dead", "Jobs moved to the dead letters", inner.jobs_dead.clone());
        registry.register("queue_waiting", "Jobs not yet read by any worker", inner.queue_waiting.clone());
        registry.register("queue_pending", "Jobs read but not yet acknowledged", inner.queue_pending.clone());
        registry.register(
            "queue_oldest_pending_seconds",
            "Age of the oldest unacknowledged job (Redis)",
            inner.queue_oldest_pending.clone(),
        );
        registry.register(
            "queue_stream_length",
            "Entries in the Redis job stream (unread or unacknowledged: acknowledged jobs are deleted)",
            inner.queue_stream_length.clone(),
        );
        registry.register(
            "queue_stream_bytes",
            "Memory the Redis job stream takes, in bytes (MEMORY USAGE)",
            inner.queue_stream_bytes.clone(),
        );
        registry.register("tiktok_calls", "Calls to TikTok's API, by call and result code", inner.sends.clone());
        registry.register("tiktok_call_duration_seconds", "Time of a TikTok API call", inner.send_latency.clone());
        registry.register(
            "llm_calls",
            "Intent classifications, by outcome (ok, timeout, error; each failure falls back to the keywords)",
            inner.llm_calls.clone(),
        );
        registry.register("llm_duration_seconds", "Time of a classification", inner.llm_latency.clone());
        registry.register("active_holds", "Items on hold for a customer right now", inner.active_holds.clone());
        registry.register(
            "redis_up",
            "1 when Redis answered at this scrape, 0 when it did not (absent without Redis); with Redis down the \
             queue gauges keep their last values",
            inner.redis_up.clone(),
        );
        registry.register(
            "messages_not_sent",
            "Messages the bot did not send, by why (quota_exhausted, throttled, not_connected, skipped)",
            inner.not_sent.clone(),
        );
        Self { inner: Arc::new(Inner { registry, ..inner }) }
    }

    pub fn webhook(&self, outcome: &'static str, took: Duration) {
        self.inner.webhook_requests.get_or_create(&Outcome { outcome }).inc();
        self.inner.webhook_latency.observe(took.as_secs_f64());
    }

    pub fn job_enqueued(&self) {
        self.inner.jobs_enqueued.inc();
    }

    pub fn job_processed(&self, outcome: &'static str) {
        self.inner.jobs_processed.get_or_create(&Outcome { outcome }).inc();
    }

    pub fn job_retried(&self) {
        self.inner.jobs_retried.inc();
    }

    pub fn job_dead(&self) {
        self.inner.jobs_dead.inc();
    }

    pub fn tiktok_call(&self, call: &str, code: &str, took: Duration) {
        self.inner.sends.get_or_create(&Call { call: call.to_owned(), code: code.to_owned() }).inc();
        self.inner.send_latency.observe(took.as_secs_f64());
    }

    pub fn llm(&self, outcome: &'static str, took: Duration) {
        self.inner.llm_calls.get_or_create(&Outcome { outcome }).inc();
        self.inner.llm_latency.observe(took.as_secs_f64());
    }

    /// LLM classifications of one outcome (ok, timeout, error, fallback) since the process started, for
    /// the staff console's health page.
    pub fn llm_calls(&self, outcome: &'static str) -> u64 {
        self.inner.llm_calls.get(&Outcome { outcome }).map_or(0, |counter| counter.get())
    }

    /// The queue's depth, read at scrape time.
    pub fn set_queue(&self, stats: &crate::jobs::QueueStats) {
        self.inner.queue_waiting.set(stats.waiting as i64);
        self.inner.queue_pending.set(stats.pending as i64);
        self.inner.queue_oldest_pending.set(stats.oldest_pending.as_secs_f64());
        self.inner.queue_stream_length.set(stats.stream_length as i64);
        self.inner.queue_stream_bytes.set(stats.stream_bytes as i64);
    }

    /// The active holds, read at scrape time.
    pub fn set_active_holds(&self, holds: u64) {
        self.inner.active_holds.set(holds as i64);
    }

    /// Whether Redis (holding keys under `prefix`) answered, read at scrape time.
    pub fn set_redis_up(&self, prefix: &str, up: bool) {
        self.inner.redis_up.get_or_create(&vec![("prefix", prefix.to_owned())]).set(i64::from(up));
    }

    /// A message the bot did not send because of one of TikTok's rules.
    pub fn not_sent(&self, outcome: &'static str) {
        self.inner.not_sent.get_or_create(&Outcome { outcome }).inc();
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.inner.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        let metrics = Metrics::new();
        metrics.webhook("enqueued", Duration::from_millis(2));
        metrics.webhook("enqueued", Duration::from_millis(3));
        metrics.webhook("unauthorized", Duration::from_micros(300));
        metrics.tiktok_call("send", "40100", Duration::from_millis(40));
        metrics.set_queue(&crate::jobs::QueueStats {
            waiting: 3,
            pending: 2,
            oldest_pending: Duration::from_secs(7),
            stream_length: 5,
            stream_bytes: 4_096,
        });
        metrics.set_active_holds(1);
        assert!(!metrics.render().contains("philia_redis_up{"), "no sample before Redis is asked");
        metrics.set_redis_up("philia", false);
        let text = metrics.render();
        assert!(text.contains("\nphilia_redis_up{prefix=\"philia\"} 0\n"), "{text}");
        assert!(text.contains("philia_webhook_requests_total{outcome=\"enqueued\"} 2"), "{text}");
        assert!(text.contains("philia_webhook_requests_total{outcome=\"unauthorized\"} 1"), "{text}");
        assert!(text.contains("philia_webhook_duration_seconds_count 3"), "{text}");
        assert!(text.contains("philia_tiktok_calls_total{call=\"send\",code=\"40100\"} 1"), "{text}");
        assert!(text.contains("philia_queue_oldest_pending_seconds 7.0"), "{text}");
        assert!(text.contains("philia_queue_stream_length 5"), "{text}");
        assert!(text.contains("philia_queue_stream_bytes 4096"), "{text}");
        assert!(text.contains("philia_active_holds 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
