//! `GET /health` (is the process and its database alive) and `GET /ready` (can it take traffic: Redis too;
//! and whether replies are really sent, so a dry run in production is seen where deploys are watched).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::state::AppState;

/// How long a dependency may take to answer before it counts as unreachable.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let db_ok = database_ok(&state).await;
    let body = json!({
        "status": if db_ok { "ok" } else { "error" },
        "db": if db_ok { "connected" } else { "unreachable" },
        "service": "philia-bot",
    });
    respond(db_ok, body)
}

pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let db_ok = database_ok(&state).await;
    let redis = match &state.redis {
        None => "not_configured",
        Some(redis) => match tokio::time::timeout(CHECK_TIMEOUT, redis.ping()).await {
            Ok(Ok(())) => "connected",
            Ok(Err(e)) => {
                tracing::warn!(error = format!("{e:#}"), "readiness: Redis unreachable");
                "unreachable"
            }
            Err(_) => "unreachable",
        },
    };
    let ok = db_ok && redis != "unreachable";
    let body = json!({
        "status": if ok { "ok" } else { "error" },
        "db": if db_ok { "connected" } else { "unreachable" },
        "redis": redis,
        "sending": state.settings.tiktok.sending_mode(),
        "service": "philia-bot",
    });
    respond(ok, body)
}

async fn database_ok(state: &AppState) -> bool {
    match tokio::time::timeout(CHECK_TIMEOUT, crate::store::ping(&state.db)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: database unreachable");
            false
        }
        Err(_) => {
            tracing::warn!("health: database did not answer within {CHECK_TIMEOUT:?}");
            false
        }
    }
}

fn respond(ok: bool, body: serde_json::Value) -> HttpResponse {
    if ok { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
