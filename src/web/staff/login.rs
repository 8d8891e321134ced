//! Signing in and out. Attempts are limited per account and per address (whether or not they succeed),
//! a wrong name takes as long to refuse as a wrong password, and the answer never says which was wrong.

use actix_web::{HttpRequest, HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::audit;
use super::layout::{document, html_response, see_other};
use super::session::{self, Checked, ConsoleError, LOGIN_COOKIE, SESSION_COOKIE};
use super::{Console, accounts};
use crate::state::AppState;
use crate::web::webhook::source_address;

#[derive(Deserialize)]
pub struct Credentials {
    name: String,
    password: String,
    csrf: Option<String>,
}

/// `GET /staff/login`: the sign-in form, with a fresh CSRF token in the form and in a cookie.
pub async fn form(console: web::Data<Console>) -> HttpResponse {
    let token = session::random_token();
    let mut response = login_page(&token, None);
    let _ = response.add_cookie(&session::cookie(&console, LOGIN_COOKIE, token, 1));
    response
}

fn login_page(token: &str, problem: Option<&str>) -> HttpResponse {
    html_response(document(
        "Sign in",
        html! {
            main.narrow {
                h1 { "Philia staff" }
                @if let Some(problem) = problem { div.flash.bad role="alert" { p { (problem) } } }
                form method="post" action="/staff/login" hx-boost="false" {
                    input type="hidden" name="csrf" value=(token);
                    label { "Name" input name="name" autocomplete="username" autocapitalize="none" required; }
                    label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                    button type="submit" { "Sign in" }
                }
                p.hint { "No account? Someone with the shop's server runs " code { "philia-bot staff add NAME" } "." }
            }
        },
    ))
}

/// `POST /staff/login`.
pub async fn submit(
    req: HttpRequest,
    console: web::Data<Console>,
    state: web::Data<AppState>,
    form: web::Form<Credentials>,
) -> Result<HttpResponse, ConsoleError> {
    let Credentials { name, password, csrf } = form.into_inner();
    let expected = session::read_cookie(&req, &console, LOGIN_COOKIE);
    match (csrf.as_deref(), expected.as_deref()) {
        (Some(sent), Some(expected)) if session::same_token(sent, expected) => {}
        _ => return Err(ConsoleError::Csrf),
    }
    let address = source_address(req.peer_addr(), req.headers(), console.trusted_proxies);
    let account_key = name.trim().to_lowercase();
    // Both limits count this attempt, so neither many names from one address nor one name from many
    // addresses gets more tries.
    let account_ok = console.by_account.check_key(&account_key).is_ok();
    let address_ok = console.by_address.check_key(&address).is_ok();
    if !(account_ok && address_ok) {
        tracing::warn!(staff = %account_key, %address, "staff sign-in rate limited");
        let minutes = console.login_window.as_secs() / 60;
        let mut response = login_page(
            expected.as_deref().unwrap_or_default(),
            Some(&format!("Too many sign-in attempts. Wait up to {minutes} minutes and try again.")),
        );
        *response.status_mut() = actix_web::http::StatusCode::TOO_MANY_REQUESTS;
        return Ok(response);
    }
    let account = accounts::find(&state.db, &name).await?;
    let checked = account.clone();
    let matches = web::block(move || accounts::verify(checked.as_ref(), &password))
        .await
        .map_err(|e| ConsoleError::Internal(format!("checking the password: {e}")))?;
    let Some(account) = account.filter(|_| matches) else {
        tracing::info!(staff = %account_key, %address, "staff sign-in refused");
        let mut response =
            login_page(expected.as_deref().unwrap_or_default(), Some("That name and password do not match."));
        *response.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
        return Ok(response);
    };
    let token = session::start(&state.db, &account, console.session_hours).await?;
    audit::record(&state.db, &account.name, "signed in", "", Some(&format!("from {address}"))).await?;
    let mut response = see_other("/staff/orders");
    let _ = response.add_cookie(&session::cookie(&console, SESSION_COOKIE, token, console.session_hours as i64));
    let _ = response.add_cookie(&session::removal(&console, LOGIN_COOKIE));
    Ok(response)
}

#[derive(Deserialize)]
pub struct Nothing {}

/// `POST /staff/logout`: ends this session.
pub async fn logout(req: HttpRequest, checked: Checked<Nothing>) -> Result<HttpResponse, ConsoleError> {
    let signed = &checked.signed;
    if let Some(token) = session::read_cookie(&req, &signed.console, SESSION_COOKIE) {
        session::end(&signed.state.db, &token).await?;
    }
    audit::record(&signed.state.db, &signed.account.name, "signed out", "", None).await?;
    let mut response = see_other("/staff/login");
    let _ = response.add_cookie(&session::removal(&signed.console, SESSION_COOKIE));
    Ok(response)
}
