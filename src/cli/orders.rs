//! `philia-bot orders list|set-status`: orders as a table, and staff moves with who was told.

use clap::Subcommand;

use crate::bot::staff::{OrderMoved, Staff};
use crate::shop::{self, orders::OrderView, orders::StatusError};
use crate::store::entities::orders::OrderStatus;
use crate::store::entities::{parse_status, status_name};

#[derive(Subcommand)]
pub enum Action {
    /// List orders, newest first.
    List {
        /// Only orders of this status: pending, paid, shipped or cancelled.
        #[arg(long, value_parser = order_status)]
        status: Option<OrderStatus>,
    },
    /// Move an order to paid, shipped (with --carrier and --tracking) or cancelled (its items go back
    /// on sale). The customer is told when TikTok lets the shop message them.
    SetStatus {
        number: String,
        #[arg(value_parser = order_status)]
        status: OrderStatus,
        #[arg(long)]
        carrier: Option<String>,
        #[arg(long)]
        tracking: Option<String>,
    },
}

fn order_status(text: &str) -> Result<OrderStatus, String> {
    parse_status(text).ok_or_else(|| format!("{text:?} is not an order status (pending, paid, shipped, cancelled)"))
}

pub async fn run(staff: &Staff, action: Action) -> anyhow::Result<()> {
    let symbol = staff.shop().currency_symbol.as_str();
    match action {
        Action::List { status } => println!("{}", orders_table(&staff.orders(status).await?, symbol)),
        Action::SetStatus { number, status, carrier, tracking } => {
            let shipping = carrier.as_deref().zip(tracking.as_deref());
            let moved = staff.set_order_status(&number, status, shipping).await.map_err(with_hint)?;
            println!("{}", order_moved(&moved));
        }
    }
    Ok(())
}

/// One line per order (number, status, total, customer, when, SKUs, and carrier and tracking once
/// shipped) under a header, and the count.
fn orders_table(views: &[OrderView], symbol: &str) -> String {
    let mut out =
        format!("{:<10} {:<9} {:>9}  {:<16} {:<17} {}", "ORDER", "STATUS", "TOTAL", "CUSTOMER", "CREATED", "ITEMS");
    for view in views {
        let skus: Vec<&str> = view.items.iter().map(|i| i.sku.as_str()).collect();
        out.push_str(&format!(
            "\n{:<10} {:<9} {:>9}  {:<16} {:<17} {}",
            view.order.order_number,
            status_name(view.order.status),
            shop::price(view.order.total_minor, symbol),
            format!("@{}", view.customer.handle()),
            view.order.created_at.format("%Y-%m-%d %H:%M"),
            skus.join(" ")
        ));
        if let (Some(carrier), Some(tracking)) = (&view.order.carrier, &view.order.tracking_number) {
            out.push_str(&format!("  [{carrier} {tracking}]"));
        }
    }
    out.push_str(&format!("\n{} order(s)", views.len()));
    out
}

fn order_moved(moved: &OrderMoved) -> String {
    let OrderMoved { moved, customer_told } = moved;
    let customer = moved.customer.handle();
    let mut out = format!("{}: {}", moved.order.order_number, status_name(moved.order.status));
    if *customer_told {
        out.push_str(&format!("\ntold @{customer} (sent by the running bot)"));
    } else {
        out.push_str(&format!(
            "\n@{customer} not told: their 48-hour reply window is closed (or they opted out); tell them when they write"
        ));
    }
    for freed in &moved.freed {
        out.push_str(&format!("\n{} is back on sale", freed.item.sku));
        if let Some(waiting) = &freed.tell {
            out.push_str(&format!(", told @{} (on its waitlist)", waiting.handle()));
        }
    }
    out
}

/// The domain's error, in the words of this command: its flags, and the command that shows what exists.
fn with_hint(error: StatusError) -> anyhow::Error {
    match error {
        StatusError::NotFound(number) => anyhow::anyhow!("no order {number} (see `philia-bot orders list`)"),
        StatusError::MissingShipping => anyhow::anyhow!("shipped needs --carrier and --tracking"),
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
    }
}
