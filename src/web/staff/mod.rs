//! The staff console under `/staff`: orders, inventory, handoffs, the bot's health and a try-out chat,
//! on server-rendered pages (maud) that work without JavaScript and are enhanced by the vendored htmx.
//! Off unless `staff.enabled`; every page but the sign-in asks for a session, every form for its CSRF
//! token, and every change is written to the audit log with who made it. The work itself is the shop's
//! and the bot's (`bot::staff`, `bot::handoff`): the pages only call it and word the answer.

pub mod accounts;
mod audit;
mod handoffs;
mod health;
mod inventory;
mod layout;
mod login;
mod orders;
mod session;
mod try_bot;

pub use self::try_bot::{Line, TryOut, TryOutBot};

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::cookie::Key;
use actix_web::{HttpResponse, web};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use secrecy::ExposeSecret;

use crate::config::Settings;

/// The largest request a console form may send (the inventory sheet's upload is the big one).
const BODY_LIMIT: usize = 4 * 1024 * 1024;

/// What the console's routes share besides the application's state: the cookie key and the sign-in
/// rate limits (one per account, one per address, in this process).
pub struct Console {
    key: Key,
    session_hours: u64,
    secure_cookie: bool,
    trusted_proxies: usize,
    by_account: DefaultKeyedRateLimiter<String>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    login_window: Duration,
    /// The shop's time zone, as every time on the pages is shown.
    time_zone: chrono_tz::Tz,
    /// The "Try the bot" copy of the bot (started on first use).
    try_out: TryOut,
}

impl Console {
    /// The console for these settings; `None` when it is off (or has no key, which validation refuses).
    pub fn from_settings(settings: &Settings, try_out: TryOut) -> Option<web::Data<Console>> {
        let staff = &settings.staff;
        let key = staff.session_key.as_ref().filter(|_| staff.enabled)?;
        let attempts = NonZeroU32::new(staff.login_attempts).unwrap_or(NonZeroU32::MIN);
        let window = Duration::from_secs(staff.login_window_minutes.max(1) * 60);
        // `attempts` at once, then one more each window/attempts: at most `attempts` per window.
        let quota = Quota::with_period(window / attempts.get()).map(|q| q.allow_burst(attempts))?;
        Some(web::Data::new(Console {
            key: Key::derive_from(key.expose_secret().as_bytes()),
            session_hours: staff.session_hours,
            secure_cookie: staff.secure_cookie,
            trusted_proxies: settings.server.trusted_proxies,
            by_account: RateLimiter::keyed(quota),
            by_address: RateLimiter::keyed(quota),
            login_window: window,
            time_zone: settings.shop.tz(),
            try_out,
        }))
    }

    /// A moment in the shop's local time, as the pages show it.
    fn local(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        at.with_timezone(&self.time_zone).format("%b %-d, %H:%M").to_string()
    }
}

/// Mounts the console's routes under `/staff` (the one line `web` calls when the console is on).
pub fn mount(cfg: &mut web::ServiceConfig, console: web::Data<Console>) {
    cfg.service(
        web::scope("/staff")
            .app_data(console)
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .app_data(web::FormConfig::default().limit(BODY_LIMIT))
            .route("", web::get().to(home))
            .route("/", web::get().to(home))
            .route("/static/htmx.min.js", web::get().to(htmx))
            .route("/static/console.css", web::get().to(css))
            .route("/login", web::get().to(login::form))
            .route("/login", web::post().to(login::submit))
            .route("/logout", web::post().to(login::logout))
            .route("/orders", web::get().to(orders::page))
            .route("/orders/{number}/status", web::post().to(orders::set_status))
            .route("/orders/{number}/tracking", web::post().to(orders::set_tracking))
            .route("/inventory", web::get().to(inventory::page))
            .route("/inventory/export", web::get().to(inventory::export))
            .route("/inventory/preview", web::post().to(inventory::preview))
            .route("/inventory/import", web::post().to(inventory::import))
            .route("/inventory/{sku}/status", web::post().to(inventory::set_status))
            .route("/handoffs", web::get().to(handoffs::page))
            .route("/handoffs/release", web::post().to(handoffs::release))
            .route("/health", web::get().to(health::page))
            .route("/health/dead", web::post().to(health::dead_letter))
            .route("/try", web::get().to(try_bot::page))
            .route("/try", web::post().to(try_bot::say))
            .route("/audit", web::get().to(audit::page)),
    );
}

/// `/staff`: the orders, the page staff open most.
async fn home(_signed: session::Signed) -> HttpResponse {
    layout::see_other("/staff/orders")
}

/// htmx, vendored from its npm package (htmx.org 2.0.11, `dist/htmx.min.js`, BSD-0 licensed; see
/// `static/htmx.LICENSE`), served from the binary: the console loads nothing from elsewhere.
async fn htmx() -> HttpResponse {
    static_file("text/javascript; charset=utf-8", include_str!("../../../static/htmx.min.js"))
}

async fn css() -> HttpResponse {
    static_file("text/css; charset=utf-8", include_str!("../../../static/console.css"))
}

fn static_file(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(content_type).insert_header(("Cache-Control", "public, max-age=86400")).body(body)
}
