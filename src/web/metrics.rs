//! `GET /metrics`: the process's metrics in the Prometheus (OpenMetrics) text format. The queue's depth
//! and the active holds are read at scrape time; a backend that cannot answer leaves its last value.

use actix_web::{HttpResponse, web};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::state::AppState;
use crate::store::entities::reservations::{self, ReservationStatus};

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
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
