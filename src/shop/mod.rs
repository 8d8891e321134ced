//! The shop's facts, straight from the database: items and their fit, one-of-a-kind holds and the
//! waitlist, orders, and the staff's inventory file. The bot answers from these and nothing else (the
//! LLM never decides a price, a size or a stock level).

pub mod catalog;
pub mod claims;
pub mod fit;
pub mod holds;
pub mod inventory;
pub mod locks;
pub mod orders;
pub mod privacy;
pub mod window;

pub use self::catalog::{Ranked, Search, clear_best, fits_size, item_by_sku, measurements, new_drops, rank, search};
pub use self::fit::{SIZE_CHART_FILE, SizeChart};
pub use self::window::ReplyWindow;

/// A price in minor units as customers read it: `$85` or `$85.50`.
pub fn price(minor: i64, symbol: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.abs();
    if minor % 100 == 0 {
        format!("{sign}{symbol}{}", minor / 100)
    } else {
        format!("{sign}{symbol}{}.{:02}", minor / 100, minor % 100)
    }
}
