//! Load generator for the webhook ingress: sends signed TikTok `im_receive_msg` webhooks to a running
//! server at a fixed rate (open loop: latency is measured from when each request was due, so a stalled
//! server cannot hide its queueing) or with fixed concurrency (closed loop), and prints throughput and
//! p50/p90/p99/max latency. With `--e2e DATABASE_URL` it also waits for every reply to be stored and
//! prints messages per second end to end and the webhook → reply-stored latency.
//!
//!   cargo run --release --example loadgen -- --rate 2000 --duration 10 --secret S
//!   cargo run --release --example loadgen -- --concurrency 64 --requests 20000 --secret S --e2e sqlite://…
//!
//! With `--fake-tiktok PORT` it also runs a fake TikTok send API (point the server's
//! `PHILIA_TIKTOK__API_BASE_URL` at it, with a token and business id so it sends for real) and measures
//! end to end up to the moment each reply reaches "TikTok".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use philia_bot::store::entities::messages;
use philia_bot::tiktok::signature;
use sea_orm::{ColumnTrait, Database, EntityTrait, PaginatorTrait, QueryFilter};
use tokio::sync::Semaphore;

#[derive(Parser)]
#[command(about = "Send signed TikTok webhooks to a running philia-bot and measure it")]
struct Args {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Webhook secret the server verifies with.
    #[arg(long, env = "TIKTOK_WEBHOOK_SECRET")]
    secret: String,
    /// Requests per second (open loop). Without it, --concurrency requests are kept in flight.
    #[arg(long)]
    rate: Option<u32>,
    /// Requests in flight at once (closed loop), or the cap on them at a fixed rate.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds to send for (with --rate).
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Total requests (without --rate).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Distinct customers the messages come from.
    #[arg(long, default_value_t = 500)]
    users: usize,
    /// Database the server writes to: wait for every reply to be stored and measure end to end.
    #[arg(long)]
    e2e: Option<String>,
    /// Seconds to wait for the replies in --e2e mode.
    #[arg(long, default_value_t = 120)]
    e2e_timeout: u64,
    /// Run a fake TikTok send API on this port and measure until each reply arrives there (use
    /// --users equal to the number of requests, so every conversation has one message).
    #[arg(long)]
    fake_tiktok: Option<u16>,
    /// What every customer writes.
    #[arg(long, default_value = "is the carhartt jacket still available?")]
    text: String,
}

/// When each conversation's first reply reached the fake TikTok.
type Arrivals = Arc<std::sync::Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>>;

/// A fake TikTok send API: answers every send with success and notes when each conversation's first
/// reply arrived. Called inside the runtime, which `tokio::spawn` needs.
fn fake_tiktok(port: u16, arrivals: Arrivals) -> anyhow::Result<()> {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let server = HttpServer::new(move || {
        let (arrivals, counter) = (arrivals.clone(), counter.clone());
        App::new().route(
            "/open_api/v1.3/business/message/send/",
            web::post().to(move |body: web::Json<serde_json::Value>| {
                let (arrivals, counter) = (arrivals.clone(), counter.clone());
                async move {
                    let recipient = body["recipient"].as_str().unwrap_or_default().to_owned();
                    arrivals.lock().unwrap().entry(recipient).or_insert_with(chrono::Utc::now);
                    let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    HttpResponse::Ok().json(serde_json::json!({
                        "code": 0, "message": "ok", "request_id": "fake",
                        "data": {"message": {"message_id": format!("fake-{n}")}}
                    }))
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", port))?
    .run();
    tokio::spawn(server);
    Ok(())
}

fn body(run: &str, n: usize, users: usize, text: &str) -> String {
    let user = n % users;
    let content = serde_json::json!({
        "conversation_id": format!("load-conv-{user}"),
        "message_id": format!("{run}-{n}"),
        "timestamp": chrono::Utc::now().timestamp_millis(),
        "type": "text",
        "text": {"body": text},
        "from": format!("shopper{user}"),
        "from_user": {"id": format!("load-user-{user}"), "role": "personal_account"},
        "to_user": {"id": "biz_open_id", "role": "business_account"},
    });
    serde_json::json!({"client_key": "load", "event": "im_receive_msg", "create_time": chrono::Utc::now().timestamp(),
        "user_openid": "biz_open_id", "content": content.to_string()})
    .to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(label: &str, mut latencies: Vec<Duration>, elapsed: Duration) {
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: {} in {:.2} s = {:.0}/s | p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 90.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    philia_bot::install_crypto_provider();
    let args = Args::parse();
    let arrivals: Arrivals = Arc::default();
    if let Some(port) = args.fake_tiktok {
        fake_tiktok(port, arrivals.clone())?;
    }
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let total = match args.rate {
        Some(rate) => rate as usize * args.duration as usize,
        None => args.requests,
    };
    let e2e_db = match &args.e2e {
        Some(url) => Some(Database::connect(url).await?),
        None => None,
    };
    let baseline = match &e2e_db {
        Some(db) => settled_replies().count(db).await?,
        None => 0,
    };
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let url = format!("{}/webhook/tiktok", args.url.trim_end_matches('/'));
    let secret = Arc::new(args.secret.clone().into_bytes());
    let permits = Arc::new(Semaphore::new(args.concurrency));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for n in 0..total {
        // Open loop: request n is due at n / rate; its latency counts from then, not from when it left.
        let due = match args.rate {
            Some(rate) => {
                let due = start + Duration::from_secs_f64(n as f64 / f64::from(rate));
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        let permit = permits.clone().acquire_owned().await?;
        let (client, url, secret) = (client.clone(), url.clone(), secret.clone());
        let body = body(&run, n, args.users, &args.text);
        tasks.push(tokio::spawn(async move {
            let due = if args.rate.is_some() { due } else { Instant::now() };
            let signature = signature::sign(&secret, chrono::Utc::now().timestamp(), body.as_bytes());
            let sent_at = chrono::Utc::now();
            let status = client
                .post(url)
                .header("Content-Type", "application/json")
                .header("TikTok-Signature", signature)
                .body(body)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            drop(permit);
            (status, due.elapsed(), sent_at)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    let mut sent_at = HashMap::with_capacity(total);
    for (n, task) in tasks.into_iter().enumerate() {
        let (status, latency, at) = task.await?;
        *statuses.entry(status).or_default() += 1;
        latencies.push(latency);
        sent_at.insert(format!("im_receive_msg:{run}-{n}"), at);
    }
    let elapsed = start.elapsed();
    let mut statuses: Vec<_> = statuses.into_iter().collect();
    statuses.sort_unstable();
    println!("statuses (0 = connection error): {statuses:?}");
    report("ingress", latencies, elapsed);

    if args.fake_tiktok.is_some() {
        let deadline = Instant::now() + Duration::from_secs(args.e2e_timeout);
        while arrivals.lock().unwrap().len() < total && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let arrivals = arrivals.lock().unwrap().clone();
        let mut e2e = Vec::new();
        let mut last = start_time_of(&sent_at);
        for (n, key) in (0..total).map(|n| (n, format!("im_receive_msg:{run}-{n}"))) {
            let conversation = format!("load-conv-{}", n % args.users);
            if let (Some(sent), Some(arrived)) = (sent_at.get(&key), arrivals.get(&conversation)) {
                e2e.push((*arrived - *sent).to_std().unwrap_or_default());
                last = last.max(*arrived);
            }
        }
        let span = (last - start_time_of(&sent_at)).to_std().unwrap_or_default();
        println!("replies at the fake TikTok: {} of {total}", e2e.len());
        report("end to end (webhook sent → reply at TikTok)", e2e, span);
    }

    if let Some(db) = &e2e_db {
        let before_run = sent_at.len();
        let deadline = Instant::now() + Duration::from_secs(args.e2e_timeout);
        // A cheap count while waiting (the rows themselves are read once, at the end), so the measuring
        // does not load the database it measures.
        while settled_replies().count(db).await? < baseline + before_run as u64 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let e2e_elapsed = start.elapsed();
        let replies = settled_replies().all(db).await?;
        let mut e2e = Vec::new();
        let mut last = start_time_of(&sent_at);
        for reply in &replies {
            if let Some(sent) = in_reply_to(reply).and_then(|k| sent_at.get(&k)) {
                e2e.push((reply.created_at - *sent).to_std().unwrap_or_default());
                last = last.max(reply.created_at);
            }
        }
        let first = start_time_of(&sent_at);
        let span = (last - first).to_std().unwrap_or(e2e_elapsed);
        println!(
            "replies stored: {} of {} (total outbound rows {})",
            e2e.len(),
            before_run,
            settled_replies().count(db).await?
        );
        report("end to end (webhook sent → reply stored)", e2e, span);
    }
    Ok(())
}

/// Replies the server has settled (stored and sent, printed, or refused by the window).
fn settled_replies() -> sea_orm::Select<messages::Entity> {
    messages::Entity::find()
        .filter(messages::Column::Direction.eq(messages::Direction::Out))
        .filter(messages::Column::DeliveryStatus.ne(messages::DeliveryStatus::Pending))
}

fn in_reply_to(message: &messages::Model) -> Option<String> {
    message.metadata.get("in_reply_to").and_then(|v| v.as_str()).map(str::to_owned)
}

fn start_time_of(sent_at: &HashMap<String, chrono::DateTime<chrono::Utc>>) -> chrono::DateTime<chrono::Utc> {
    sent_at.values().min().copied().unwrap_or_else(chrono::Utc::now)
}
