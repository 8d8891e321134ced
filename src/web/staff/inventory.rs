//! The inventory screen: search and filter the pieces; put one on sale or take it off (with the CLI's
//! refusals: a piece in an order, a piece a customer holds); who holds a piece until when, and who waits
//! for it; the inventory sheet uploaded with a preview of what it would change before anything is
//! written, and exported. The work is `bot::staff`'s, as in `philia-bot inventory`.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use futures_util::stream;
use maud::{Markup, html};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Deserialize;

use super::audit;
use super::layout::{self, Screen, badge, csrf, see_other};
use super::orders::{capitalized, staff_of};
use super::session::{Checked, ConsoleError, Signed};
use crate::bot::staff::{ImportError, Imported, Notified, Stocked};
use crate::shop::inventory::{Kept, SetStatusError};
use crate::shop::price;
use crate::store::entities::items::ItemStatus;
use crate::store::entities::{parse_status, status_name, users, waitlist};

#[derive(Deserialize)]
pub struct Filter {
    q: Option<String>,
    status: Option<String>,
}

/// Whether a piece matches the search: its SKU, title, brand or tag size contains every word.
fn matches(stocked: &Stocked, query: &str) -> bool {
    let item = &stocked.item;
    let text = [Some(item.sku.as_str()), Some(item.title.as_str()), item.brand.as_deref(), item.tag_size.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    query.split_whitespace().all(|word| text.contains(&word.to_lowercase()))
}

/// `GET /staff/inventory?q=&status=`.
pub async fn page(signed: Signed, filter: web::Query<Filter>) -> Result<HttpResponse, ConsoleError> {
    let status: Option<ItemStatus> = filter.status.as_deref().filter(|s| !s.is_empty()).and_then(parse_status);
    let query = filter.q.clone().unwrap_or_default();
    let all = staff_of(&signed).items(status).await?;
    let shown: Vec<&Stocked> = all.iter().filter(|s| matches(s, &query)).collect();
    let waiting = waitlist::Entity::find()
        .filter(waitlist::Column::NotifiedAt.is_null())
        .order_by_asc(waitlist::Column::CreatedAt)
        .find_also_related(users::Entity)
        .all(&signed.state.db)
        .await?;
    let chosen = status.map(status_name).unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/staff/inventory" {
            label { "Search " input type="search" name="q" value=(query) placeholder="SKU, title, brand, size"; }
            label { "Status "
                select name="status" {
                    option value="" selected[chosen.is_empty()] { "all" }
                    @for s in ["available", "reserved", "sold"] { option value=(s) selected[chosen == s] { (s) } }
                }
            }
            button type="submit" { "Show" }
        }
        p.hint { (shown.len()) " of " (all.len()) " piece(s)." }
        @for stocked in &shown {
            @let waiters: Vec<&users::Model> = waiting.iter().filter(|(w, _)| w.item_id == stocked.item.id).filter_map(|(_, u)| u.as_ref()).collect();
            (item_card(&signed, stocked, &waiters))
        }
        h2 { "Inventory sheet" }
        div.card {
            form method="post" action="/staff/inventory/preview" enctype="multipart/form-data" hx-boost="false" {
                (csrf(&signed))
                label { "Upload the sheet (CSV, as exported) " input type="file" name="file" accept=".csv,text/csv" required; }
                button type="submit" { "Preview changes" }
            }
            p.hint { "Nothing is written until you confirm the preview. " a href="/staff/inventory/export" download { "Export the sheet" } }
        }
    };
    layout::page(&signed, Screen::Inventory, "Inventory", body).await
}

fn item_card(signed: &Signed, stocked: &Stocked, waiters: &[&users::Model]) -> Markup {
    let item = &stocked.item;
    let symbol = signed.state.settings.shop.currency_symbol.as_str();
    let status = status_name(item.status);
    html! {
        article.card id={ "item-" (item.sku) } {
            ul.pieces {
                li {
                    @if let Some(url) = &item.image_url { img src=(url) alt="" loading="lazy" width="56" height="56"; }
                    @else { span.noimg {} }
                    span {
                        code { (item.sku) } " " (badge(&status)) br;
                        (item.title)
                        @if let Some(size) = &item.tag_size { " · tag " (size) }
                        @if let Some(fits) = &stocked.fits_like { " · fits like " (fits) }
                    }
                    span.price { (price(item.price_minor, symbol)) }
                }
            }
            @if let Some((holder, until)) = &stocked.held_by {
                p { "Held by @" (holder.handle()) " until " (signed.local(*until)) }
            }
            @if !waiters.is_empty() {
                p { "Waitlist: " @for (i, u) in waiters.iter().enumerate() { @if i > 0 { ", " } "@" (u.handle()) } }
            }
            div.actions {
                form.inline method="post" action={ "/staff/inventory/" (item.sku) "/status" } {
                    (csrf(signed))
                    @match item.status {
                        ItemStatus::Sold => {
                            input type="hidden" name="status" value="available";
                            button type="submit" { "Put back on sale" }
                        }
                        ItemStatus::Available => {
                            input type="hidden" name="status" value="sold";
                            button type="submit" class="danger" { "Mark sold" }
                        }
                        ItemStatus::Reserved => {
                            input type="hidden" name="status" value="sold";
                            button type="submit" class="danger" { "Mark sold (ends the hold; they are told)" }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct StatusForm {
    status: String,
}

/// `POST /staff/inventory/{sku}/status`: on sale or off; the holder or the waitlist is told.
pub async fn set_status(path: web::Path<String>, checked: Checked<StatusForm>) -> Result<HttpResponse, ConsoleError> {
    let Checked { signed, form } = checked;
    let sku = path.into_inner().trim().to_uppercase();
    let back = format!("/staff/inventory#item-{sku}");
    let Some(status) = parse_status::<ItemStatus>(&form.status) else {
        signed.flash(&format!("{:?} is not an item status", form.status)).await?;
        return Ok(see_other(&back));
    };
    let moved = match staff_of(&signed).set_item_status(&sku, status).await {
        Ok(moved) => moved,
        Err(SetStatusError::Db(e)) => return Err(e.into()),
        Err(refused) => {
            signed.flash(&refusal(&signed, refused)).await?;
            return Ok(see_other(&back));
        }
    };
    crate::worker::delivery::deliver_notices(&signed.state, &Notified::messages_of(&moved.notified)).await;
    let mut said = vec![format!("{}: {} ({})", moved.item.sku, status_name(moved.item.status), moved.item.title)];
    said.extend(Notified::said_deliveries(&signed.state.db, &moved.notified).await?);
    let said = said.join("\n");
    let action = if status == ItemStatus::Sold { "marked sold" } else { "put back on sale" };
    audit::record(&signed.state.db, &signed.account.name, action, &sku, Some(&said)).await?;
    signed.flash(&said).await?;
    Ok(see_other(&back))
}

/// Why a piece's status was not changed, in the console's words.
fn refusal(signed: &Signed, refused: SetStatusError) -> String {
    match refused {
        SetStatusError::NotFound(sku) => format!("There is no piece {sku}."),
        SetStatusError::InOrder { sku, order_number, order_status } => format!(
            "{sku} is in order {order_number} ({}): cancel the order, or record its return with its pieces back on \
             sale, first.",
            status_name(order_status)
        ),
        SetStatusError::Held { sku, by, until } => format!(
            "{sku} is on hold for @{by} until {}; it goes back on sale by itself if they do not order it.",
            signed.local(until)
        ),
        other => format!("{}.", capitalized(&other.to_string())),
    }
}

/// `GET /staff/inventory/export`: the sheet, as `philia-bot inventory export` writes it.
pub async fn export(signed: Signed) -> Result<HttpResponse, ConsoleError> {
    let mut csv = Vec::new();
    staff_of(&signed).export(&mut csv).await.map_err(|e| ConsoleError::Internal(e.to_string()))?;
    let name = format!("inventory-{}.csv", Utc::now().format("%Y-%m-%d"));
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{name}\"")))
        .insert_header(("Cache-Control", "no-store"))
        .body(csv))
}

/// `POST /staff/inventory/preview` (multipart: `csrf`, `file`): what the sheet would change, with the
/// button that imports it. Nothing is written.
pub async fn preview(signed: Signed, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, ConsoleError> {
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| ConsoleError::Csrf)?;
    let mut form = multer::Multipart::new(stream::once(async move { Ok::<_, std::io::Error>(body) }), boundary);
    let (mut token, mut file, mut file_name) = (None, None, String::from("the sheet"));
    while let Some(field) = form.next_field().await.map_err(|e| ConsoleError::BadForm(e.to_string()))? {
        match field.name() {
            Some("csrf") => token = Some(field.text().await.map_err(|e| ConsoleError::BadForm(e.to_string()))?),
            Some("file") => {
                file_name = field.file_name().unwrap_or("the sheet").to_owned();
                file = Some(field.bytes().await.map_err(|e| ConsoleError::BadForm(e.to_string()))?);
            }
            _ => {}
        }
    }
    signed.check_csrf(token.as_deref())?;
    let Some(file) = file.filter(|f| !f.is_empty()) else {
        signed.flash("Choose the sheet to upload first.").await?;
        return Ok(see_other("/staff/inventory"));
    };
    let Ok(text) = String::from_utf8(file.to_vec()) else {
        signed.flash(&format!("{file_name} is not a text (UTF-8) CSV file: nothing imported.")).await?;
        return Ok(see_other("/staff/inventory"));
    };
    let result = staff_of(&signed).import(text.as_bytes(), true).await;
    let body = match result {
        Ok(imported) => html! {
            p.hint { (file_name) ": nothing is written until you import it." }
            (diff(&signed, &imported, true))
            form method="post" action="/staff/inventory/import" {
                (csrf(&signed))
                input type="hidden" name="file_name" value=(file_name);
                textarea name="csv" hidden { (text) }
                button type="submit" { "Import these changes" }
                " " a href="/staff/inventory" { "Cancel" }
            }
        },
        Err(ImportError::Rows(errors)) => html! {
            div.flash.bad role="alert" {
                p { (file_name) ": " (errors.len()) " problem(s); nothing can be imported until they are fixed." }
                ul { @for e in &errors { li { (e) } } }
            }
            a href="/staff/inventory" { "Back to the inventory" }
        },
        Err(ImportError::Db(e)) => return Err(e.into()),
    };
    layout::page(&signed, Screen::Inventory, "Inventory sheet preview", body).await
}

#[derive(Deserialize)]
pub struct ImportForm {
    csv: String,
    file_name: Option<String>,
}

/// `POST /staff/inventory/import`: writes the previewed sheet (checked again: what changed since the
/// preview is said as it is now).
pub async fn import(checked: Checked<ImportForm>) -> Result<HttpResponse, ConsoleError> {
    let Checked { signed, form } = checked;
    let file_name = form.file_name.unwrap_or_else(|| "the sheet".into());
    let said = match staff_of(&signed).import(form.csv.as_bytes(), false).await {
        Ok(imported) => {
            let said = summary(&imported, false);
            audit::record(
                &signed.state.db,
                &signed.account.name,
                "imported the inventory sheet",
                &file_name,
                Some(&said),
            )
            .await?;
            said
        }
        Err(ImportError::Rows(errors)) => format!("{} problem(s) in {file_name}; nothing imported.", errors.len()),
        Err(ImportError::Db(e)) => return Err(e.into()),
    };
    signed.flash(&said).await?;
    Ok(see_other("/staff/inventory"))
}

/// "2 new, 5 price changes, 1 other change, 3 unchanged".
fn summary(imported: &Imported, dry_run: bool) -> String {
    let report = &imported.report;
    let other = report.changed.len().saturating_sub(report.price_changes.len());
    let verb = if dry_run { "Would import" } else { "Imported" };
    format!(
        "{verb}: {} new, {} price change(s), {} other change(s), {} unchanged; {} piece(s) keep their status.",
        report.inserted.len(),
        report.price_changes.len(),
        other,
        report.unchanged.len(),
        report.kept.len()
    )
}

/// The preview: the counts, then each new piece, price change, status change and status kept.
fn diff(signed: &Signed, imported: &Imported, dry_run: bool) -> Markup {
    let report = &imported.report;
    let symbol = signed.state.settings.shop.currency_symbol.as_str();
    let when = |at: &DateTime<Utc>| signed.local(*at);
    html! {
        div.diff {
            p { strong { (summary(imported, dry_run)) } }
            @if let Some(separator) = imported.separator { p.hint { "Read as " (separator) "-separated." } }
            @if !imported.ignored_columns.is_empty() {
                p.hint { "Columns nothing reads (ignored): " (imported.ignored_columns.join(", ")) }
            }
            @if !report.inserted.is_empty() {
                h2 { (report.inserted.len()) " new" }
                ul { @for sku in &report.inserted { li { code { (sku) } } } }
            }
            @if !report.price_changes.is_empty() {
                h2 { (report.price_changes.len()) " price change(s)" }
                ul { @for c in &report.price_changes { li { code { (c.sku) } " " (price(c.from, symbol)) " → " (price(c.to, symbol)) } } }
            }
            @if !report.status_changes.is_empty() {
                h2 { (report.status_changes.len()) " status change(s)" }
                ul { @for c in &report.status_changes { li { code { (c.sku) } " " (status_name(c.from)) " → " (status_name(c.to)) } } }
            }
            @if !report.kept.is_empty() {
                h2 { (report.kept.len()) " piece(s) keep their status" }
                ul {
                    @for k in &report.kept {
                        li {
                            code { (k.sku) } " stays " (status_name(k.status)) ": "
                            @match &k.because {
                                Kept::Held { by, until } => { "on hold for @" (by) " until " (when(until)) }
                                Kept::InOrder { order_number, order_status, .. } => { "in order " (order_number) " (" (status_name(*order_status)) ")" }
                                Kept::Sold { at } => { "marked " (status_name(k.status)) " on " (when(at)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
