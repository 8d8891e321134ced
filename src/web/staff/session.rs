//! Who is signed in: a random token in a private cookie (signed and encrypted with the console's key;
//! `Secure`, `HttpOnly`, `SameSite=Lax`), whose SHA-256 names a `staff_sessions` row that ends at a
//! fixed time. Each session has its CSRF token, which every form carries back; the sign-in form, before
//! any session, carries one that matches a cookie of its own (double submit).

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, CookieJar, SameSite};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, Utc};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use serde::de::DeserializeOwned;

use super::Console;
use crate::state::AppState;
use crate::store::entities::{staff_accounts, staff_sessions};

/// The session cookie.
pub const SESSION_COOKIE: &str = "philia_staff";
/// The sign-in form's CSRF cookie (before there is a session).
pub const LOGIN_COOKIE: &str = "philia_staff_login";
/// The form field every form sends its CSRF token in.
pub const CSRF_FIELD: &str = "csrf";

/// 32 random bytes, hex: a session token or a CSRF token.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The system's random source failing is not something a request can recover from.
    SystemRandom::new().fill(&mut bytes).expect("the system random source works");
    hex::encode(bytes)
}

fn token_hash(token: &str) -> String {
    hex::encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// Equal strings, compared in time that does not depend on where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A private cookie for `name`, as every console cookie is set.
pub fn cookie(console: &Console, name: &'static str, value: String, max_age_hours: i64) -> Cookie<'static> {
    let mut jar = CookieJar::new();
    let built = Cookie::build(name, value)
        .path("/staff")
        .http_only(true)
        .secure(console.secure_cookie)
        .same_site(SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::hours(max_age_hours))
        .finish();
    jar.private_mut(&console.key).add(built);
    jar.get(name).cloned().unwrap_or_else(|| Cookie::new(name, ""))
}

/// A cookie that removes `name` from the browser.
pub fn removal(console: &Console, name: &'static str) -> Cookie<'static> {
    let mut gone = Cookie::build(name, "").path("/staff").http_only(true).secure(console.secure_cookie).finish();
    gone.make_removal();
    gone
}

/// The value of the private cookie `name`, when it is there and was made with the console's key.
pub fn read_cookie(req: &HttpRequest, console: &Console, name: &str) -> Option<String> {
    let mut jar = CookieJar::new();
    jar.add_original(req.cookie(name)?.into_owned());
    jar.private(&console.key).get(name).map(|c| c.value().to_owned())
}

/// Starts a session for `account`; returns the token for its cookie.
pub async fn start(db: &impl ConnectionTrait, account: &staff_accounts::Model, hours: u64) -> Result<String, DbErr> {
    let token = random_token();
    let now = Utc::now();
    staff_sessions::ActiveModel {
        token_hash: Set(token_hash(&token)),
        staff_id: Set(account.id),
        csrf_token: Set(random_token()),
        flash: Set(None),
        created_at: Set(now),
        expires_at: Set(now + chrono::Duration::hours(hours as i64)),
        ..Default::default()
    }
    .insert(db)
    .await?;
    // Sessions that ended are of no use to anyone: cleared as new ones start.
    staff_sessions::Entity::delete_many().filter(staff_sessions::Column::ExpiresAt.lt(now)).exec(db).await?;
    Ok(token)
}

/// The live session of `token` and its account.
async fn find(
    db: &impl ConnectionTrait,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<(staff_sessions::Model, staff_accounts::Model)>, DbErr> {
    let found = staff_sessions::Entity::find()
        .filter(staff_sessions::Column::TokenHash.eq(token_hash(token)))
        .filter(staff_sessions::Column::ExpiresAt.gt(now))
        .find_also_related(staff_accounts::Entity)
        .one(db)
        .await?;
    Ok(found.and_then(|(session, account)| Some((session, account?))))
}

/// Ends the session of `token` (signing out).
pub async fn end(db: &impl ConnectionTrait, token: &str) -> Result<(), DbErr> {
    staff_sessions::Entity::delete_many()
        .filter(staff_sessions::Column::TokenHash.eq(token_hash(token)))
        .exec(db)
        .await?;
    Ok(())
}

/// A signed-in staff member: what every console route but the sign-in takes. Without a live session
/// the browser is sent to the sign-in page.
pub struct Signed {
    pub account: staff_accounts::Model,
    pub session: staff_sessions::Model,
    pub console: web::Data<Console>,
    pub state: web::Data<AppState>,
}

impl Signed {
    /// Says `text` on the next page this session sees (what a change did).
    pub async fn flash(&self, text: &str) -> Result<(), ConsoleError> {
        staff_sessions::Entity::update_many()
            .col_expr(staff_sessions::Column::Flash, sea_orm::sea_query::Expr::value(text.to_owned()))
            .filter(staff_sessions::Column::Id.eq(self.session.id))
            .exec(&self.state.db)
            .await?;
        Ok(())
    }

    /// What the last change said, once: it is cleared as it is read.
    pub async fn take_flash(&self) -> Result<Option<String>, ConsoleError> {
        if self.session.flash.is_none() {
            return Ok(None);
        }
        staff_sessions::Entity::update_many()
            .col_expr(staff_sessions::Column::Flash, sea_orm::sea_query::Expr::value(Option::<String>::None))
            .filter(staff_sessions::Column::Id.eq(self.session.id))
            .exec(&self.state.db)
            .await?;
        Ok(self.session.flash.clone())
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, sent: Option<&str>) -> Result<(), ConsoleError> {
        match sent {
            Some(sent) if same_token(sent, &self.session.csrf_token) => Ok(()),
            _ => Err(ConsoleError::Csrf),
        }
    }

    /// A moment in the shop's local time.
    pub fn local(&self, at: DateTime<Utc>) -> String {
        self.console.local(at)
    }
}

impl FromRequest for Signed {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let console = req.app_data::<web::Data<Console>>().cloned().ok_or(ConsoleError::Off)?;
            let state = req.app_data::<web::Data<AppState>>().cloned().ok_or(ConsoleError::Off)?;
            let token = read_cookie(&req, &console, SESSION_COOKIE).ok_or(ConsoleError::SignIn)?;
            let (session, account) = find(&state.db, &token, Utc::now()).await?.ok_or(ConsoleError::SignIn)?;
            Ok(Signed { account, session, console, state })
        })
    }
}

/// A form posted by a signed-in staff member, its CSRF token checked: what every console change takes.
pub struct Checked<T> {
    pub signed: Signed,
    pub form: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for Checked<T> {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed = Signed::from_request(req, payload);
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let signed = signed.await?;
            let body = body.await.map_err(|e| ConsoleError::BadForm(e.to_string()))?;
            #[derive(serde::Deserialize)]
            struct Token {
                csrf: Option<String>,
            }
            let token: Token = serde_urlencoded::from_bytes(&body).map_err(|_| ConsoleError::Csrf)?;
            signed.check_csrf(token.csrf.as_deref())?;
            let form = serde_urlencoded::from_bytes(&body).map_err(|e| ConsoleError::BadForm(e.to_string()))?;
            Ok(Checked { signed, form })
        })
    }
}

/// Why a console request was not served.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: sign in first.
    #[error("sign in first")]
    SignIn,
    /// The form's CSRF token is missing or not this session's.
    #[error("this form is out of date or did not come from the console: reload the page and try again")]
    Csrf,
    #[error("the form could not be read: {0}")]
    BadForm(String),
    #[error("the staff console is not configured")]
    Off,
    #[error("the database did not answer: {0}")]
    Db(#[from] DbErr),
    #[error("{0}")]
    Internal(String),
}

impl From<anyhow::Error> for ConsoleError {
    fn from(e: anyhow::Error) -> Self {
        ConsoleError::Internal(format!("{e:#}"))
    }
}
