//! TikTok Business Messaging: webhook signatures and envelope, and the API client (sending, tokens, the
//! shared send rate).

pub mod api;
pub mod client;
pub mod envelope;
pub mod limiter;
pub mod signature;
pub mod tokens;

pub use api::ApiError;
pub use client::TikTokClient;
