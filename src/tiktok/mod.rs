//! TikTok Business Messaging: webhook signatures and envelope, and the API client (sending, tokens, the
//! shared send rate).

pub mod alerts;
pub mod api;
pub mod capabilities;
pub mod client;
pub mod connect;
pub mod envelope;
pub mod limiter;
pub mod signature;
pub mod status;
pub mod tokens;
pub mod unparsed;
pub mod webhooks;

pub use api::ApiError;
pub use client::TikTokClient;
