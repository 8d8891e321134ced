//! Integration tests: one binary, each test with its own database, Redis prefix and running app.

mod helpers;
mod routing;

mod chat;
mod cli;
mod console;
mod console_browser;
mod conversation;
mod conversation_eval;
mod deploy;
mod fake_tiktok;
mod fake_tiktok_rules;
mod hardening;
mod health;
mod layout;
mod lifecycle;
mod metrics;
mod orders;
mod reliability;
mod schema;
mod shop;
mod shop_races;
mod tiktok;
mod tiktok_account;
mod tiktok_rules;
mod tiktok_webhook;
mod webhook;
mod worker;
