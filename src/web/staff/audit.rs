//! The audit log: every change made in the console, with who made it and what came of it, and the page
//! that shows the latest.

use actix_web::HttpResponse;
use chrono::Utc;
use maud::html;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, QueryOrder, QuerySelect, Set};

use super::layout::{self, Screen, lines};
use super::session::{ConsoleError, Signed};
use crate::store::entities::staff_audit;

/// How many entries the page shows.
const SHOWN: u64 = 200;

/// Writes one entry: `staff` did `action` to `subject`; `detail` says what came of it.
pub async fn record(
    db: &impl ConnectionTrait,
    staff: &str,
    action: &str,
    subject: &str,
    detail: Option<&str>,
) -> Result<(), DbErr> {
    staff_audit::ActiveModel {
        staff_name: Set(staff.to_owned()),
        action: Set(action.to_owned()),
        subject: Set(subject.to_owned()),
        detail: Set(detail.map(str::to_owned)),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// `GET /staff/audit`: the latest changes, newest first.
pub async fn page(signed: Signed) -> Result<HttpResponse, ConsoleError> {
    let entries =
        staff_audit::Entity::find().order_by_desc(staff_audit::Column::Id).limit(SHOWN).all(&signed.state.db).await?;
    let body = html! {
        p.hint { "Every change made in the console, newest first (the last " (SHOWN) ")." }
        @if entries.is_empty() { p { "Nothing yet." } }
        ul.log {
            @for e in &entries {
                li {
                    span.when { (signed.local(e.created_at)) }
                    " " strong { (e.staff_name) } " " (e.action)
                    @if !e.subject.is_empty() { " " code { (e.subject) } }
                    @if let Some(detail) = &e.detail { div.detail { (lines(detail)) } }
                }
            }
        }
    };
    layout::page(&signed, Screen::Audit, "Log", body).await
}
