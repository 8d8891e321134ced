//! The page every console screen is drawn in: the navigation (a bar that fits a phone), what the last
//! change said, and the small pieces the pages share (a form's CSRF field, a redirect, an error page).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use actix_web::ResponseError;

use super::session::{CSRF_FIELD, ConsoleError, Signed};

/// The console's screens, in the navigation's order.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Orders,
    Inventory,
    Handoffs,
    Health,
    Try,
    Audit,
}

impl Screen {
    const ALL: [Screen; 6] =
        [Screen::Orders, Screen::Inventory, Screen::Handoffs, Screen::Health, Screen::Try, Screen::Audit];

    fn path(self) -> &'static str {
        match self {
            Screen::Orders => "/staff/orders",
            Screen::Inventory => "/staff/inventory",
            Screen::Handoffs => "/staff/handoffs",
            Screen::Health => "/staff/health",
            Screen::Try => "/staff/try",
            Screen::Audit => "/staff/audit",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Screen::Orders => "Orders",
            Screen::Inventory => "Inventory",
            Screen::Handoffs => "Handoffs",
            Screen::Health => "Health",
            Screen::Try => "Try the bot",
            Screen::Audit => "Log",
        }
    }
}

/// The document around `body`, without navigation (the sign-in page).
pub fn document(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Philia staff" }
                link rel="stylesheet" href="/staff/static/console.css";
                script src="/staff/static/htmx.min.js" defer {}
            }
            // hx-boost: links and forms load without a full page reload when htmx is there; without it
            // they are plain links and forms and work the same.
            body hx-boost="true" { (body) }
        }
    }
}

/// A console page: navigation, what the last change said, then `body`.
pub async fn page(
    signed: &Signed,
    screen: Screen,
    title: &str,
    body: Markup,
) -> Result<HttpResponse, super::session::ConsoleError> {
    let flash = signed.take_flash().await?;
    let markup = document(
        title,
        html! {
            header.top {
                nav {
                    @for s in Screen::ALL {
                        a href=(s.path()) class=[(s == screen).then_some("here")] { (s.name()) }
                    }
                }
                form.signout method="post" action="/staff/logout" {
                    (csrf(signed))
                    button.link type="submit" { "Sign out " (signed.account.name) }
                }
            }
            main {
                h1 { (title) }
                @if let Some(flash) = flash {
                    div.flash role="status" {
                        @for line in flash.lines() { p { (line) } }
                    }
                }
                (body)
            }
        },
    );
    Ok(html_response(markup))
}

/// An HTML page as a response, never cached (every page shows the shop as it is now).
pub fn html_response(markup: Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(markup.into_string())
}

/// The hidden field that carries the session's CSRF token in a form.
pub fn csrf(signed: &Signed) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(signed.session.csrf_token); }
}

/// 303 See Other to `location`: where a form's answer, or a signed-out visit, goes.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", location)).finish()
}

/// A short page saying what went wrong, with a way back.
pub fn problem_page(status: StatusCode, message: &str) -> Markup {
    document(
        status.canonical_reason().unwrap_or("Error"),
        html! {
            main {
                h1 { (status.canonical_reason().unwrap_or("Error")) }
                p { (message) }
                p { a href="/staff" { "Back to the console" } }
            }
        },
    )
}

/// A status as a small coloured label.
pub fn badge(text: &str) -> Markup {
    html! { span class={ "badge " (text) } { (text) } }
}

/// Text from the shop's own files shown as-is, line breaks kept.
pub fn lines(text: &str) -> Markup {
    html! { @for (i, line) in text.lines().enumerate() { @if i > 0 { br; } (line) } }
}

/// A console error as the page staff see: sign-in when signed out, else the problem in words (here, with
/// the pages, so the session module needs nothing from the layout).
impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignIn => StatusCode::SEE_OTHER,
            ConsoleError::Csrf => StatusCode::FORBIDDEN,
            ConsoleError::BadForm(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Off => StatusCode::NOT_FOUND,
            ConsoleError::Db(_) | ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ConsoleError::SignIn = self {
            return see_other("/staff/login");
        }
        if let ConsoleError::Db(_) | ConsoleError::Internal(_) = self {
            tracing::error!(error = %self, "staff console request failed");
        }
        HttpResponse::build(self.status_code())
            .content_type("text/html; charset=utf-8")
            .body(problem_page(self.status_code(), &self.to_string()).into_string())
    }
}
