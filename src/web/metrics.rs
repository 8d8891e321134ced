//! `GET /metrics`: the process's metrics in the Prometheus (OpenMetrics) text format. The queue's depth,
//! the active holds and whether Redis answers are read at scrape time; a backend that cannot answer
//! leaves its last value (and `philia_redis_up` says so for Redis). On the webhook's port, which is
//! public, [`guarded`] serves them only to the bearer of `server.metrics_token`, or locally.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use secrecy::ExposeSecret;

use crate::state::AppState;
use crate::store::entities::reservations::{self, ReservationStatus};

/// `/metrics` on the webhook's port: with `server.metrics_token` set, only for its bearer; without it,
/// open locally and not served in production (scrape `server.metrics_port` instead).
pub async fn guarded(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let settings = &state.settings;
    match &settings.server.metrics_token {
        Some(token) => {
            let offered = request
                .headers()
                .get(actix_web::http::header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !same_secret(offered.as_bytes(), token.expose_secret().as_bytes()) {
                return HttpResponse::Unauthorized()
                    .insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"))
                    .body("metrics: send Authorization: Bearer <PHILIA_METRICS_TOKEN>\n");
            }
        }
        None if settings.environment == crate::config::Environment::Production => {
            return HttpResponse::NotFound()
                .body("metrics are served on server.metrics_port, or here with PHILIA_METRICS_TOKEN\n");
        }
        None => {}
    }
    metrics(state).await
}

/// Compares digests, every byte of them: the time taken tells neither how much of a guess was right
/// nor how long the token is.
fn same_secret(offered: &[u8], token: &[u8]) -> bool {
    use ring::digest::{SHA256, digest};
    let (offered, token) = (digest(&SHA256, offered), digest(&SHA256, token));
    offered.as_ref().iter().zip(token.as_ref()).fold(0u8, |differ, (a, b)| differ | (a ^ b)) == 0
}

/// How long Redis may take to answer a scrape's PING.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    if let Some(redis) = &state.redis {
        let up = matches!(tokio::time::timeout(REDIS_TIMEOUT, redis.ping()).await, Ok(Ok(())));
        state.metrics.set_redis_up(&state.settings.redis.key_prefix, up);
    }
    match state.queue.stats().await {
        Ok(stats) => state.metrics.set_queue(&stats),
        Err(e) => tracing::warn!(error = format!("{e:#}"), "metrics: the queue did not answer"),
    }
    let holds = reservations::Entity::find()
        .filter(reservations::Column::Status.eq(ReservationStatus::Active))
        .count(&state.db)
        .await;
    match holds {
        Ok(holds) => state.metrics.set_active_holds(holds),
        Err(e) => tracing::warn!(error = %e, "metrics: the database did not answer"),
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}
