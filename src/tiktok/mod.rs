//! TikTok Business Messaging: webhook signatures and the webhook envelope (the API client joins here).

pub mod envelope;
pub mod signature;
