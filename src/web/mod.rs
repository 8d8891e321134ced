//! The HTTP side: routes, limits, the boundary's errors, and the one middleware every request goes
//! through (its request id).

pub mod error;
mod health;
pub mod metrics;
mod oauth;
pub mod request_id;
pub mod staff;
pub mod webhook;

use std::time::Duration;

use actix_web::dev::{Server, Service};
use actix_web::{App, HttpMessage, HttpServer, web};
use anyhow::Context;

use self::request_id::RequestId;

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
    try_out: staff::TryOut,
) -> anyhow::Result<(Server, u16)> {
    // The io::Error stays in the chain: the command line gives a taken port its own exit code.
    let listener = std::net::TcpListener::bind((settings.host.as_str(), port))
        .with_context(|| format!("binding {}:{port}", settings.host))?;
    let port = listener.local_addr()?.port();
    let body_limit = settings.body_limit_bytes;
    let ingress = web::Data::from(webhook::Ingress::new(&state.settings));
    let console = if which == Routes::All { staff::Console::from_settings(&state.settings, try_out) } else { None };
    let state = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            // No span per request: the id is put on the request for the log lines that need it, and
            // on the response for the caller.
            .wrap_fn(|req, service| {
                let id = RequestId::next();
                req.extensions_mut().insert(id);
                let response = service.call(req);
                async move {
                    let mut response = response.await?;
                    response.headers_mut().insert(request_id::HEADER, id.header_value());
                    Ok(response)
                }
            })
            .app_data(state.clone())
            .app_data(ingress.clone())
            // This factory runs once per HTTP worker thread: each worker enqueues on its own connection.
            .app_data(web::Data::new(state.queue.producer()))
            .app_data(web::PayloadConfig::new(body_limit))
            .app_data(web::JsonConfig::default().limit(body_limit))
            .configure(if which == Routes::All { routes } else { operations })
            .configure(|cfg| console.iter().for_each(|console| staff::mount(cfg, console.clone())))
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
    // Routes are matched in order: the webhook, nearly all of the traffic, first.
    // /metrics is public here: guarded (a bearer token, or not at all in production).
    cfg.route("/webhook/tiktok", web::post().to(webhook::tiktok))
        .route("/oauth/tiktok/callback", web::get().to(oauth::callback))
        .route("/health", web::get().to(health::health))
        .route("/ready", web::get().to(health::ready))
        .route("/metrics", web::get().to(metrics::guarded));
}
