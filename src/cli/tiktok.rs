//! `philia-bot tiktok connect|status|webhook set|webhook show`: the steps to go live with the shop's
//! TikTok account, and the check an operator runs when the bot is silent.

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::config::{Environment, Settings};
use crate::kv::Kv;
use crate::startup;
use crate::tiktok::alerts::StaffAlerts;
use crate::tiktok::tokens::TokenManager;
use crate::tiktok::{client, connect, status, webhooks};

#[derive(Subcommand)]
pub enum Action {
    /// Print a one-time link (10 minutes) for the shop's owner to authorize the app on TikTok. TikTok
    /// sends them back to /oauth/tiktok/callback, which stores the account and its tokens.
    Connect {
        /// Allow a TikTok account other than the connected one to take its place.
        #[arg(long)]
        replace: bool,
    },
    /// The account, scopes, token expiries, registered webhook and image sending, and every problem
    /// with its fix. Exits 1 when there is a problem.
    Status,
    /// The webhook TikTok delivers direct messages to.
    Webhook {
        #[command(subcommand)]
        action: WebhookAction,
    },
}

#[derive(Subcommand)]
pub enum WebhookAction {
    /// Register this server's webhook URL with TikTok (https://…/webhook/tiktok).
    Set { url: String },
    /// Print the webhook URL TikTok has.
    Show,
}

pub async fn run(settings: Settings, action: Action) -> anyhow::Result<()> {
    let tiktok = &settings.tiktok;
    let http = client::http_client(tiktok)?;
    match action {
        Action::Connect { replace } => {
            let db = startup::open_database(&settings).await?;
            let link = connect::authorization_link(&db, tiktok, replace).await?;
            println!("Open this link as the shop's owner, logged in to the shop's TikTok business account:\n");
            println!("{}\n", link.url);
            println!("It works once, until {} UTC.", link.expires_at.format("%H:%M"));
            if replace {
                println!("--replace: the account authorized with it replaces the connected one.");
            }
            db.close().await?;
        }
        Action::Status => {
            let db = startup::open_database(&settings).await?;
            let alerts = StaffAlerts::new(http.clone(), None);
            let tokens = TokenManager::new(tiktok, db.clone(), http.clone(), Kv::new(None), alerts);
            let report = status::report(&db, tiktok, &tokens, &http).await;
            db.close().await?;
            for (label, value) in &report.facts {
                println!("{:<16}{value}", format!("{label}:"));
            }
            if report.problems.is_empty() {
                println!("\nno problems found");
            } else {
                println!("\nproblems:");
                for problem in &report.problems {
                    println!("  - {problem}");
                }
                bail!("{} problem(s)", report.problems.len());
            }
        }
        Action::Webhook { action: WebhookAction::Set { url } } => {
            let parsed = url::Url::parse(&url).with_context(|| format!("{url:?} is not a URL"))?;
            if parsed.scheme() != "https" && settings.environment == Environment::Production {
                bail!("TikTok delivers webhooks over https: {url} is not");
            }
            if !parsed.path().ends_with("/webhook/tiktok") {
                eprintln!("note: the bot's webhook is served at /webhook/tiktok; {url} ends elsewhere");
            }
            let registered = webhooks::register(&http, tiktok, &url).await?;
            println!("TikTok delivers direct messages to {registered}");
        }
        Action::Webhook { action: WebhookAction::Show } => match webhooks::registered(&http, tiktok).await? {
            Some(url) => println!("{url}"),
            None => {
                bail!("TikTok has no webhook for the app: run `philia-bot tiktok webhook set https://…/webhook/tiktok`")
            }
        },
    }
    Ok(())
}
