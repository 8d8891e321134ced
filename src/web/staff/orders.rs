//! The orders screen: newest first, filtered by status; each order with its customer, pieces (with
//! their photos), money, where it ships, what the customer was told and when, and the buttons its
//! lifecycle allows. The moves are `bot::staff`'s, as in `philia-bot orders`.

use actix_web::{HttpResponse, web};
use maud::{Markup, html};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, RelationTrait};
use serde::Deserialize;

use super::audit;
use super::layout::{Screen, badge, csrf, lines, see_other};
use super::session::{Checked, ConsoleError, Signed};
use crate::bot::staff::{Notified, OrderMoved, Staff};
use crate::shop::orders::{Address, Move, OrderView, StatusError};
use crate::shop::price;
use crate::store::entities::messages::{self, DeliveryStatus, Role};
use crate::store::entities::orders::OrderStatus;
use crate::store::entities::{conversations, parse_status, status_name};

const STATUSES: [&str; 6] = ["pending", "paid", "shipped", "delivered", "returned", "cancelled"];

#[derive(Deserialize)]
pub struct Filter {
    status: Option<String>,
}

/// The shop's staff work, for this request.
pub fn staff_of(signed: &Signed) -> Staff {
    let state = &signed.state;
    Staff::new(state.db.clone(), state.bot.clone(), state.settings.shop.clone())
}

/// `GET /staff/orders?status=`.
pub async fn page(signed: Signed, filter: web::Query<Filter>) -> Result<HttpResponse, ConsoleError> {
    let status: Option<OrderStatus> = filter.status.as_deref().filter(|s| !s.is_empty()).and_then(parse_status);
    let views = staff_of(&signed).orders(status).await?;
    let mut cards = Vec::with_capacity(views.len());
    for view in &views {
        let told = notices_of(&signed, view).await?;
        cards.push(order_card(&signed, view, &told));
    }
    let chosen = status.map(status_name).unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/staff/orders" {
            label { "Status "
                select name="status" onchange="this.form.requestSubmit()" {
                    option value="" selected[chosen.is_empty()] { "all" }
                    @for s in STATUSES { option value=(s) selected[chosen == s] { (s) } }
                }
            }
            noscript { button type="submit" { "Show" } }
        }
        p.hint { (views.len()) " order(s), newest first." }
        @for card in cards { (card) }
    };
    super::layout::page(&signed, Screen::Orders, "Orders", body).await
}

/// What the shop told a customer about this order: the notices in their conversations that name it.
async fn notices_of(signed: &Signed, view: &OrderView) -> Result<Vec<messages::Model>, ConsoleError> {
    Ok(messages::Entity::find()
        .join(sea_orm::JoinType::InnerJoin, messages::Relation::Conversation.def())
        .filter(conversations::Column::UserId.eq(view.customer.id))
        .filter(messages::Column::Role.eq(Role::System))
        .filter(messages::Column::Text.contains(&view.order.order_number))
        .order_by_asc(messages::Column::Id)
        .all(&signed.state.db)
        .await?)
}

/// What became of a notice, in a word or two.
pub fn delivery_word(message: &messages::Model) -> &'static str {
    match message.delivery_status {
        Some(DeliveryStatus::Sent) => "sent",
        Some(DeliveryStatus::DryRun) => "dry run, not sent",
        Some(DeliveryStatus::OutsideWindow) => "not sent: reply window closed",
        Some(DeliveryStatus::Pending | DeliveryStatus::Sending) => "being sent",
        Some(DeliveryStatus::Unknown) => "unconfirmed: TikTok did not say whether it arrived",
        Some(DeliveryStatus::Failed) => "failed",
        Some(DeliveryStatus::QuotaExhausted) => "not sent: TikTok's 10 messages since they last wrote are used up",
        Some(DeliveryStatus::Throttled) => "waiting: TikTok paused the shop's sending",
        Some(DeliveryStatus::NotConnected) => "not sent: the TikTok account is not connected",
        Some(DeliveryStatus::Skipped) => "skipped",
        Some(DeliveryStatus::Merged) => "sent with the message before",
        None => "",
    }
}

fn order_card(signed: &Signed, view: &OrderView, told: &[messages::Model]) -> Markup {
    let order = &view.order;
    let symbol = signed.state.settings.shop.currency_symbol.as_str();
    let number = order.order_number.as_str();
    let status = status_name(order.status);
    html! {
        article.card id={ "order-" (number) } {
            header {
                strong { (number) } " " (badge(&status))
                span.when { (signed.local(order.created_at)) }
            }
            p { "@" (view.customer.handle()) }
            ul.pieces {
                @for item in &view.items {
                    li {
                        @if let Some(url) = &item.image_url { img src=(url) alt="" loading="lazy" width="56" height="56"; }
                        @else { span.noimg {} }
                        span { code { (item.sku) } " " (item.title) } span.price { (price(item.price_minor, symbol)) }
                    }
                }
            }
            p.total { "Total " strong { (price(order.total_minor, symbol)) } " (" (price(order.shipping_minor, symbol)) " shipping)" }
            p { "Ships to: " (address_line(order)) }
            @if let (Some(carrier), Some(tracking)) = (&order.carrier, &order.tracking_number) {
                p { "Tracking: " (carrier) " " code { (tracking) } }
            }
            details.told open[!told.is_empty()] {
                summary { "Customer told (" (told.len()) ")" }
                @if told.is_empty() { p.hint { "Nothing yet." } }
                ul {
                    @for m in told {
                        li { span.when { (signed.local(m.created_at)) } " " em { (delivery_word(m)) } br; (lines(m.text.as_deref().unwrap_or(""))) }
                    }
                }
            }
            (actions(signed, order.status, number))
        }
    }
}

fn address_line(order: &crate::store::entities::orders::Model) -> String {
    match Address::of(order) {
        Some(a) => [Some(a.name), Some(a.line1), a.line2, Some(a.city), a.region, Some(a.postal_code), Some(a.country)]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
        None => "no address yet".into(),
    }
}

/// The buttons an order of `status` has: the moves its lifecycle allows.
fn actions(signed: &Signed, status: OrderStatus, number: &str) -> Markup {
    let to = format!("/staff/orders/{number}/status");
    let simple = |label: &str, target: &str, class: &str| {
        html! {
            form.inline method="post" action=(to) {
                (csrf(signed)) input type="hidden" name="to" value=(target);
                button type="submit" class=(class) { (label) }
            }
        }
    };
    html! {
        div.actions {
            @match status {
                OrderStatus::Pending => {
                    (simple("Mark paid", "paid", ""))
                    (simple("Cancel order", "cancelled", "danger"))
                }
                OrderStatus::Paid => {
                    form.ship method="post" action=(to) {
                        (csrf(signed)) input type="hidden" name="to" value="shipped";
                        input name="carrier" placeholder="Carrier (USPS)" required;
                        input name="tracking" placeholder="Tracking number" required;
                        button type="submit" { "Mark shipped" }
                    }
                    (simple("Cancel order", "cancelled", "danger"))
                }
                OrderStatus::Shipped => {
                    (simple("Mark delivered", "delivered", ""))
                    details {
                        summary { "Correct tracking" }
                        form.ship method="post" action={ "/staff/orders/" (number) "/tracking" } {
                            (csrf(signed))
                            input name="carrier" placeholder="Carrier" required;
                            input name="tracking" placeholder="Tracking number" required;
                            button type="submit" { "Save tracking" }
                        }
                    }
                    (return_form(signed, &to))
                }
                OrderStatus::Delivered => { (return_form(signed, &to)) }
                OrderStatus::Returned | OrderStatus::Cancelled => {}
            }
        }
    }
}

fn return_form(signed: &Signed, to: &str) -> Markup {
    html! {
        details {
            summary { "Record a return" }
            form.ship method="post" action=(to) {
                (csrf(signed)) input type="hidden" name="to" value="returned";
                label.check { input type="checkbox" name="restock" value="on"; " Put the pieces back on sale" }
                button type="submit" class="danger" { "Mark returned" }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct StatusForm {
    to: String,
    carrier: Option<String>,
    tracking: Option<String>,
    restock: Option<String>,
}

/// `POST /staff/orders/{number}/status`: moves the order; the customer is told at once.
pub async fn set_status(path: web::Path<String>, checked: Checked<StatusForm>) -> Result<HttpResponse, ConsoleError> {
    let Checked { signed, form } = checked;
    let number = path.into_inner();
    let back = format!("/staff/orders#order-{}", number.trim().to_uppercase());
    let Some(to) = parse_status::<OrderStatus>(&form.to) else {
        signed.flash(&format!("{:?} is not an order status", form.to)).await?;
        return Ok(see_other(&back));
    };
    let carrier = form.carrier.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let tracking = form.tracking.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let step = Move { to, shipping: carrier.zip(tracking), unpaid: false, restock: form.restock.is_some() };
    let moved = staff_of(&signed).set_order_status(&number, step).await;
    answer(&signed, &number, &format!("order {}", status_name(to)), moved, &back).await
}

#[derive(Deserialize)]
pub struct TrackingForm {
    carrier: String,
    tracking: String,
}

/// `POST /staff/orders/{number}/tracking`: corrects a shipped order's tracking; the customer is told.
pub async fn set_tracking(
    path: web::Path<String>,
    checked: Checked<TrackingForm>,
) -> Result<HttpResponse, ConsoleError> {
    let Checked { signed, form } = checked;
    let number = path.into_inner();
    let back = format!("/staff/orders#order-{}", number.trim().to_uppercase());
    let moved = staff_of(&signed).set_tracking(&number, form.carrier.trim(), form.tracking.trim()).await;
    answer(&signed, &number, "tracking corrected", moved, &back).await
}

/// Delivers the notices a move stored, logs the change with what came of it, and says so on the page.
async fn answer(
    signed: &Signed,
    number: &str,
    action: &str,
    moved: Result<OrderMoved, StatusError>,
    back: &str,
) -> Result<HttpResponse, ConsoleError> {
    let number = number.trim().to_uppercase();
    let moved = match moved {
        Ok(moved) => moved,
        Err(StatusError::Db(e)) => return Err(e.into()),
        Err(refused) => {
            let said = match refused {
                StatusError::MissingShipping => "Shipping needs a carrier and a tracking number.".to_owned(),
                other => format!("{}.", capitalized(&other.to_string())),
            };
            signed.flash(&said).await?;
            return Ok(see_other(back));
        }
    };
    crate::worker::delivery::deliver_notices(&signed.state, &Notified::messages_of(&moved.notified)).await;
    let order = &moved.moved.order;
    let mut said = vec![format!("{}: {}", order.order_number, status_name(order.status))];
    if let (Some(carrier), Some(tracking)) = (&order.carrier, &order.tracking_number) {
        said[0].push_str(&format!(" ({carrier} {tracking})"));
    }
    said.extend(moved.moved.freed.iter().map(|f| format!("{} is back on sale", f.item.sku)));
    said.extend(Notified::said_deliveries(&signed.state.db, &moved.notified).await?);
    let said = said.join("\n");
    audit::record(&signed.state.db, &signed.account.name, action, &number, Some(&said)).await?;
    signed.flash(&said).await?;
    Ok(see_other(back))
}

pub fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
