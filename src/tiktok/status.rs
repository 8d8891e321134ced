//! `philia-bot tiktok status`: what an operator reads when "the bot is silent". The connected account,
//! its scopes and token expiries, the webhook TikTok has, whether pictures are sent, and one line per
//! problem with its fix.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};

use super::tokens::{Account, MESSAGING_SCOPES, RECONNECT, TokenManager, removal_reason};
use super::webhooks;
use crate::config::{ImagePolicy, TikTokSettings};
use crate::store::entities::unparsed_webhooks;

/// The report: labelled facts, then problems (each says its fix).
#[derive(Debug, Default)]
pub struct Status {
    pub facts: Vec<(&'static str, String)>,
    pub problems: Vec<String>,
}

impl Status {
    fn fact(&mut self, label: &'static str, value: impl Into<String>) {
        self.facts.push((label, value.into()));
    }
}

fn at(moment: DateTime<Utc>) -> String {
    moment.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Builds the report. Asks TikTok for the registered webhook (with the app's key and secret).
pub async fn report(
    db: &DatabaseConnection,
    settings: &TikTokSettings,
    tokens: &TokenManager,
    http: &reqwest::Client,
) -> Status {
    let mut status = Status::default();
    let now = Utc::now();
    if settings.client_key.is_none() || settings.client_secret.is_none() {
        status.problems.push(
            "the app's key and secret are not set: set TIKTOK_CLIENT_KEY and TIKTOK_CLIENT_SECRET from the TikTok \
             developer portal"
                .into(),
        );
    }
    if settings.oauth_redirect_url.is_none() {
        status.problems.push(
            "no OAuth redirect URL: set PHILIA_TIKTOK__OAUTH_REDIRECT_URL to https://<this server>/oauth/tiktok/callback, \
             as registered with the app"
                .into(),
        );
    }
    match tokens.account().await {
        Ok(Some(account)) => describe_account(&mut status, &account, now),
        Ok(None) if settings.access_token.is_some() => {
            status.fact("account", "tokens from configuration (TIKTOK_ACCESS_TOKEN); never connected");
            if settings.business_id.is_none() {
                status.problems.push(format!("no business id: set TIKTOK_BUSINESS_ID, or {RECONNECT}"));
            }
        }
        Ok(None) => {
            status.fact("account", "not connected");
            status.problems.push(format!("no TikTok account is connected: {RECONNECT}"));
        }
        Err(e) => status.problems.push(format!("the account could not be read: {e}")),
    }
    if let Err(e) = tokens.check_configured_account().await {
        status.problems.push(e);
    }
    status.fact(
        "webhook key",
        if settings.webhook_secret_differs {
            "TIKTOK_WEBHOOK_SECRET (differs from the client secret)"
        } else if settings.webhook_secret.is_some() {
            "the app's client secret"
        } else {
            "none (signatures are not checked)"
        },
    );
    if settings.webhook_secret_differs {
        status.problems.push(
            "TIKTOK_WEBHOOK_SECRET is not the client secret: TikTok signs with the client secret, so its webhooks \
             will be refused. Unset TIKTOK_WEBHOOK_SECRET"
                .into(),
        );
    }
    match webhooks::registered(http, settings).await {
        Ok(Some(url)) => status.fact("webhook", url),
        Ok(None) => {
            status.fact("webhook", "none registered");
            status.problems.push(
                "TikTok has no webhook for the app: run `philia-bot tiktok webhook set https://<this server>/webhook/tiktok`"
                    .into(),
            );
        }
        Err(e) => {
            status.fact("webhook", "unknown");
            status.problems.push(format!("could not ask TikTok for the webhook: {e}"));
        }
    }
    status.fact(
        "images",
        match settings.images {
            ImagePolicy::Auto => "asked of TikTok per conversation (unavailable in the US, UK, EU and more)",
            ImagePolicy::Never => "never sent (tiktok.images = \"never\")",
            ImagePolicy::Always => "always sent, without asking TikTok (tiktok.images = \"always\")",
        },
    );
    if let Ok(unread) = unparsed_webhooks::Entity::find().count(db).await
        && unread > 0
    {
        status.fact("unread webhooks", format!("{unread} signed webhook(s) kept unparsed (table unparsed_webhooks)"));
    }
    if settings.is_dry_run() {
        status.problems.push(
            "dry run: no TikTok credentials, replies are printed and not sent (set TIKTOK_CLIENT_KEY and \
             TIKTOK_CLIENT_SECRET, then connect)"
                .into(),
        );
    }
    status
}

fn describe_account(status: &mut Status, account: &Account, now: DateTime<Utc>) {
    let business = account.business_id.clone().unwrap_or_else(|| "unknown".into());
    match account.disconnected_at {
        Some(when) => {
            let reason = removal_reason(account.disconnect_reason.unwrap_or(0));
            status.fact("account", format!("{business}, DISCONNECTED at {} ({reason})", at(when)));
            status.problems.push(format!("TikTok removed the authorization ({reason}): nothing is sent; {RECONNECT}"));
        }
        None => status.fact("account", format!("{business} (connected)")),
    }
    if account.business_id.is_none() {
        status.problems.push(format!("the stored tokens name no business account: {RECONNECT}"));
    }
    status.fact("scopes", account.scope.clone().unwrap_or_else(|| "not reported by TikTok".into()));
    let missing = account.missing_scopes();
    if !missing.is_empty() {
        status.problems.push(format!(
            "the grant lacks {} (the bot needs {}): {RECONNECT}, and grant every permission",
            missing.join(", "),
            MESSAGING_SCOPES.join(", ")
        ));
    }
    status.fact("access token", format!("expires {}", at(account.access_expires_at)));
    match account.refresh_expires_at {
        Some(expires) => {
            status.fact("refresh token", format!("expires {}", at(expires)));
            if expires < now {
                status.problems.push(format!("the refresh token expired at {}: {RECONNECT}", at(expires)));
            } else if expires - chrono::Duration::days(7) < now {
                status.problems.push(format!("the refresh token expires at {}: before then, {RECONNECT}", at(expires)));
            }
        }
        None => status.fact("refresh token", "expiry unknown"),
    }
}
