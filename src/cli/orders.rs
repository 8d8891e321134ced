//! `philia-bot orders list|show|set-status|set-tracking|set-address`: orders as tables, and staff moves
//! with what became of each customer's notice.

use clap::{Args, Subcommand};
use serde_json::json;

use super::desk::{Desk, print_json, table};
use crate::bot::staff::OrderMoved;
use crate::shop::orders::{Address, AddressError, Move, OrderView, StatusError};
use crate::shop::{self};
use crate::store::entities::orders::OrderStatus;
use crate::store::entities::{parse_status, status_name};

#[derive(Subcommand)]
pub enum Action {
    /// List orders, newest first.
    List {
        /// Only orders of this status: pending, paid, shipped, delivered, returned or cancelled.
        #[arg(long, value_parser = order_status)]
        status: Option<OrderStatus>,
        /// Print JSON (for scripts) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One order in full: customer, pieces, money, shipping address, carrier and tracking, its moments.
    Show {
        number: String,
        #[arg(long)]
        json: bool,
    },
    /// Move an order: pending → paid → shipped (--carrier, --tracking) → delivered, shipped/delivered →
    /// returned (--restock puts its pieces back on sale), pending/paid → cancelled (its pieces go back on
    /// sale). The customer is told at once when TikTok lets the shop message them.
    SetStatus {
        number: String,
        #[arg(value_parser = order_status)]
        status: OrderStatus,
        #[arg(long)]
        carrier: Option<String>,
        #[arg(long)]
        tracking: Option<String>,
        /// Ship an order that is not paid yet, on purpose.
        #[arg(long)]
        unpaid: bool,
        /// With `returned`: put the order's pieces back on sale (the waitlist is told).
        #[arg(long)]
        restock: bool,
    },
    /// Correct a shipped order's carrier and tracking number (the customer is told).
    SetTracking {
        number: String,
        #[arg(long)]
        carrier: String,
        #[arg(long)]
        tracking: String,
    },
    /// Set or change where an order ships (until it ships).
    SetAddress(AddressArgs),
}

#[derive(Args)]
pub struct AddressArgs {
    number: String,
    #[arg(long)]
    name: String,
    #[arg(long)]
    line1: String,
    #[arg(long)]
    line2: Option<String>,
    #[arg(long)]
    city: String,
    /// State, province or county.
    #[arg(long)]
    region: Option<String>,
    #[arg(long)]
    postal_code: String,
    /// Two-letter country code, like US.
    #[arg(long)]
    country: String,
}

fn order_status(text: &str) -> Result<OrderStatus, String> {
    parse_status(text).ok_or_else(|| {
        format!("{text:?} is not an order status (pending, paid, shipped, delivered, returned, cancelled)")
    })
}

pub async fn run(desk: &Desk, action: Action) -> anyhow::Result<()> {
    let staff = &desk.staff;
    match action {
        Action::List { status, json } => {
            let orders = staff.orders(status).await?;
            if json {
                print_json(&orders.iter().map(order_json).collect())?;
            } else {
                println!("{}", orders_table(desk, &orders));
            }
        }
        Action::Show { number, json } => {
            let Some(order) = staff.order(&number).await? else { return Err(not_found(&number)) };
            if json {
                print_json(&order_json(&order))?;
            } else {
                println!("{}", order_shown(desk, &order));
            }
        }
        Action::SetStatus { number, status, carrier, tracking, unpaid, restock } => {
            if restock && status != OrderStatus::Returned {
                anyhow::bail!("--restock goes with `returned` (a cancellation always puts the pieces back on sale)");
            }
            let shipping = carrier.as_deref().zip(tracking.as_deref());
            let step = Move { to: status, shipping, unpaid, restock };
            let moved = staff.set_order_status(&number, step).await.map_err(with_hint)?;
            println!("{}", said_moved(desk, &moved).await?);
        }
        Action::SetTracking { number, carrier, tracking } => {
            let moved = staff.set_tracking(&number, &carrier, &tracking).await.map_err(with_hint)?;
            println!("{}", said_moved(desk, &moved).await?);
        }
        Action::SetAddress(args) => {
            let address = Address {
                name: args.name,
                line1: args.line1,
                line2: args.line2,
                city: args.city,
                region: args.region,
                postal_code: args.postal_code,
                country: args.country,
            };
            let order = staff.set_address(&args.number, &address).await.map_err(|e| match e {
                AddressError::NotFound(number) => not_found(&number),
                other => other.into(),
            })?;
            println!("{}: ships to {}", order.order.order_number, address_line(&order));
        }
    }
    Ok(())
}

fn not_found(number: &str) -> anyhow::Error {
    anyhow::anyhow!("no order {} (see `philia-bot orders list`)", number.trim().to_uppercase())
}

/// The order's new state, the pieces back on sale, and what became of each customer's notice (sent now).
async fn said_moved(desk: &Desk, moved: &OrderMoved) -> anyhow::Result<String> {
    let order = &moved.moved.order;
    let mut out = format!("{}: {}", order.order_number, status_name(order.status));
    if let (Some(carrier), Some(tracking)) = (&order.carrier, &order.tracking_number) {
        out.push_str(&format!(" ({carrier} {tracking})"));
    }
    for freed in &moved.moved.freed {
        out.push_str(&format!("\n{} is back on sale", freed.item.sku));
    }
    for line in desk.deliver(&moved.notified).await? {
        out.push('\n');
        out.push_str(&line);
    }
    Ok(out)
}

/// The shipping address on one line, or what is missing.
fn address_line(view: &OrderView) -> String {
    match Address::of(&view.order) {
        Some(a) => {
            let parts =
                [Some(a.name), Some(a.line1), a.line2, Some(a.city), a.region, Some(a.postal_code), Some(a.country)];
            parts.into_iter().flatten().collect::<Vec<_>>().join(", ")
        }
        None => "(no address yet)".into(),
    }
}

/// One row per order: number, status, total, customer, when (shop time), pieces, carrier and tracking.
fn orders_table(desk: &Desk, views: &[OrderView]) -> String {
    let symbol = desk.staff.shop().currency_symbol.as_str();
    let created = format!("CREATED ({})", desk.zone());
    let mut t = table(&["ORDER", "STATUS", "TOTAL", "CUSTOMER", &created, "ITEMS", "TRACKING"]);
    for view in views {
        let skus: Vec<&str> = view.items.iter().map(|i| i.sku.as_str()).collect();
        let order = &view.order;
        let tracking = match (&order.carrier, &order.tracking_number) {
            (Some(carrier), Some(tracking)) => format!("{carrier} {tracking}"),
            _ => String::new(),
        };
        t.add_row([
            order.order_number.clone(),
            status_name(order.status),
            shop::price(order.total_minor, symbol),
            format!("@{}", view.customer.handle()),
            desk.local(order.created_at),
            skus.join(" "),
            tracking,
        ]);
    }
    format!("{t}\n{} order(s)", views.len())
}

/// One order in full, as `orders show` prints it.
fn order_shown(desk: &Desk, view: &OrderView) -> String {
    let symbol = desk.staff.shop().currency_symbol.as_str();
    let order = &view.order;
    let money = |minor: i64| shop::price(minor, symbol);
    let mut t = table(&["FIELD", "VALUE"]);
    t.add_row(["order".to_owned(), order.order_number.clone()]);
    t.add_row(["status".to_owned(), status_name(order.status)]);
    t.add_row(["customer".to_owned(), format!("@{}", view.customer.handle())]);
    for item in &view.items {
        t.add_row(["piece".to_owned(), format!("{} {} ({})", item.sku, item.title, money(item.price_minor))]);
    }
    t.add_row(["subtotal".to_owned(), money(order.subtotal_minor)]);
    t.add_row(["shipping".to_owned(), money(order.shipping_minor)]);
    t.add_row(["total".to_owned(), format!("{} {}", money(order.total_minor), order.currency)]);
    t.add_row(["ships to".to_owned(), address_line(view)]);
    if let (Some(carrier), Some(tracking)) = (&order.carrier, &order.tracking_number) {
        t.add_row(["tracking".to_owned(), format!("{carrier} {tracking}")]);
    }
    let moments = [
        ("created", Some(order.created_at)),
        ("reminded to pay", order.payment_reminded_at),
        ("paid", order.paid_at),
        ("shipped", order.shipped_at),
        ("delivered", order.delivered_at),
        ("returned", order.returned_at),
        ("cancelled", order.cancelled_at),
    ];
    for (name, at) in moments {
        if let Some(at) = at {
            t.add_row([name.to_owned(), format!("{} {}", desk.local(at), desk.zone())]);
        }
    }
    t.to_string()
}

fn order_json(view: &OrderView) -> serde_json::Value {
    let order = &view.order;
    let address = Address::of(order).map(|a| {
        json!({"name": a.name, "line1": a.line1, "line2": a.line2, "city": a.city, "region": a.region,
               "postal_code": a.postal_code, "country": a.country})
    });
    json!({
        "order_number": order.order_number,
        "status": status_name(order.status),
        "customer": view.customer.handle(),
        "items": view.items.iter().map(|i| json!({"sku": i.sku, "title": i.title, "price_minor": i.price_minor})).collect::<Vec<_>>(),
        "subtotal_minor": order.subtotal_minor,
        "shipping_minor": order.shipping_minor,
        "total_minor": order.total_minor,
        "currency": order.currency,
        "carrier": order.carrier,
        "tracking_number": order.tracking_number,
        "address": address,
        "created_at": order.created_at.to_rfc3339(),
        "paid_at": order.paid_at.map(|t| t.to_rfc3339()),
        "shipped_at": order.shipped_at.map(|t| t.to_rfc3339()),
        "delivered_at": order.delivered_at.map(|t| t.to_rfc3339()),
        "returned_at": order.returned_at.map(|t| t.to_rfc3339()),
        "cancelled_at": order.cancelled_at.map(|t| t.to_rfc3339()),
    })
}

/// The domain's error, in the words of this command: its flags, and the command that shows what exists.
fn with_hint(error: StatusError) -> anyhow::Error {
    match error {
        StatusError::NotFound(number) => not_found(&number),
        StatusError::MissingShipping => anyhow::anyhow!("shipped needs --carrier and --tracking"),
        StatusError::Unpaid(number) => {
            anyhow::anyhow!("order {number} is not paid yet: mark it paid first, or ship it unpaid with --unpaid")
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_errors_are_said_with_the_commands_flags() {
        assert_eq!(with_hint(StatusError::MissingShipping).to_string(), "shipped needs --carrier and --tracking");
        assert_eq!(
            with_hint(StatusError::NotFound("PH-NOPE00".into())).to_string(),
            "no order PH-NOPE00 (see `philia-bot orders list`)"
        );
        assert_eq!(
            with_hint(StatusError::Unpaid("PH-ABC234".into())).to_string(),
            "order PH-ABC234 is not paid yet: mark it paid first, or ship it unpaid with --unpaid"
        );
    }
}
