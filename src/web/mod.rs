//! The HTTP side: routes, limits and the middleware every request goes through.

mod health;
mod metrics;
mod oauth;
pub mod webhook;

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage, HttpServer, web};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::config::ServerSettings;
use crate::state::AppState;

/// Which routes a server has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routes {
    /// Everything: the webhook, OAuth, health, readiness and metrics.
    All,
    /// Health, readiness and metrics only (the worker role's `server.metrics_port`).
    Operations,
}

/// Binds the listener on `port` and returns the (not yet running) server and the port it got.
pub fn build_server(
    settings: &ServerSettings,
    port: u16,
    which: Routes,
    state: AppState,
    shutdown_grace: Duration,
) -> anyhow::Result<(Server, u16)> {
    let listener = std::net::TcpListener::bind((settings.host.as_str(), port))
        .map_err(|e| anyhow::anyhow!("binding {}:{port}: {e}", settings.host))?;
    let port = listener.local_addr()?.port();
    let body_limit = settings.body_limit_bytes;
    let limiter = web::Data::from(webhook::SourceLimiter::new(&state.settings.webhook));
    let state = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(request_id_header))
            .wrap(TracingLogger::default())
            .app_data(state.clone())
            .app_data(limiter.clone())
            .app_data(web::PayloadConfig::new(body_limit))
            .app_data(web::JsonConfig::default().limit(body_limit))
            .configure(if which == Routes::All { routes } else { operations })
    })
    .client_request_timeout(Duration::from_millis(settings.client_request_timeout_ms))
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(Duration::from_secs(settings.keep_alive_secs))
    .shutdown_timeout(shutdown_grace.as_secs())
    // Signals are handled once, by the Application, which stops web and worker parts together.
    .disable_signals();
    if settings.http_workers > 0 {
        server = server.workers(settings.http_workers);
    }
    Ok((server.listen(listener)?.run(), port))
}

fn operations(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health::health))
        .route("/ready", web::get().to(health::ready))
        .route("/metrics", web::get().to(metrics::metrics));
}

fn routes(cfg: &mut web::ServiceConfig) {
    operations(cfg);
    cfg.route("/webhook/tiktok", web::post().to(webhook::tiktok))
        .route("/oauth/tiktok/start", web::get().to(oauth::start))
        .route("/oauth/tiktok/callback", web::get().to(oauth::callback));
}

/// Echoes the request id that `TracingLogger` put on the request span, so a customer report or a TikTok
/// retry can be matched to its log lines.
async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req.extensions().get::<RequestId>().copied();
    let mut response = next.call(req).await?;
    if let Some(id) = id
        && let Ok(value) = HeaderValue::from_str(&id.to_string())
    {
        response.headers_mut().insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(response)
}
