//! Whether a conversation takes pictures. Media sending is unavailable in several regions (the United
//! States among them), so with `tiktok.images = "auto"` TikTok is asked before the first picture of a
//! conversation (`/business/message/capabilities/get/`, `IMAGE_SEND`), and its answer is kept a day.
//! Without a picture, an item's answer still reads complete: its text names the piece, size and price.

use std::time::Duration;

use serde::Deserialize;

use super::api::{self, ApiError, api_url, paths};
use super::tokens::TokenManager;
use crate::config::ImagePolicy;
use crate::kv::Kv;

/// How long TikTok's answer for a conversation is kept.
const ANSWER_LIFE: Duration = Duration::from_secs(24 * 3600);

/// Asks (and remembers) whether a conversation may be sent pictures.
#[derive(Clone)]
pub struct ImageGate {
    http: reqwest::Client,
    kv: Kv,
    tokens: TokenManager,
    base: String,
    policy: ImagePolicy,
}

#[derive(Deserialize)]
struct Capabilities {
    #[serde(default)]
    capability_infos: Vec<CapabilityInfo>,
}

#[derive(Deserialize)]
struct CapabilityInfo {
    capability_type: String,
    #[serde(default)]
    capability_result: bool,
}

impl ImageGate {
    pub fn new(http: reqwest::Client, kv: Kv, tokens: TokenManager, base: String, policy: ImagePolicy) -> Self {
        Self { http, kv, tokens, base, policy }
    }

    /// True when a picture may be sent into the conversation. `replied_before`: the shop has written in it
    /// (TikTok's `SINGLE`), else it is a message request (`STRANGER`). When TikTok cannot be asked the
    /// answer is no, for this picture only (it is not remembered): a text-only answer reads complete, a
    /// refused picture would be a wasted message of the customer's 10.
    pub async fn allows_images(&self, conversation_id: &str, replied_before: bool) -> bool {
        match self.policy {
            ImagePolicy::Never => return false,
            ImagePolicy::Always => return true,
            ImagePolicy::Auto => {}
        }
        let key = self.kv.key(&format!("tiktok:image-send:{conversation_id}"));
        if let Ok(Some(known)) = self.kv.get(&key).await {
            return known == "1";
        }
        match self.ask(conversation_id, replied_before).await {
            Ok(allowed) => {
                if let Err(e) = self.kv.set(&key, if allowed { "1" } else { "0" }, ANSWER_LIFE).await {
                    tracing::warn!(error = format!("{e:#}"), "could not remember whether a conversation takes images");
                }
                if !allowed {
                    tracing::info!(conversation = %conversation_id, "TikTok allows no images in this conversation: text only");
                }
                allowed
            }
            Err(e) => {
                tracing::warn!(conversation = %conversation_id, error = %e, "could not ask TikTok whether images are allowed: text only");
                false
            }
        }
    }

    async fn ask(&self, conversation_id: &str, replied_before: bool) -> Result<bool, ApiError> {
        let business_id = self.tokens.business_id().await?;
        let token = self.tokens.access_token().await?;
        let conversation_type = if replied_before { "SINGLE" } else { "STRANGER" };
        let response = self
            .http
            .get(api_url(&self.base, paths::CAPABILITIES))
            .header("Access-Token", token)
            .query(&[
                ("business_id", business_id.as_str()),
                ("capability_types", r#"["IMAGE_SEND"]"#),
                ("conversation_id", conversation_id),
                ("conversation_type", conversation_type),
            ])
            .send()
            .await
            .map_err(|e| ApiError::Unreachable(e.to_string()))?;
        let envelope: api::Response<Capabilities> =
            response.json().await.map_err(|e| ApiError::Decode(format!("the capabilities answer: {e}")))?;
        envelope.log_refusal(paths::CAPABILITIES);
        match envelope.data {
            Some(data) if envelope.code == 0 => Ok(data
                .capability_infos
                .iter()
                .any(|info| info.capability_type == "IMAGE_SEND" && info.capability_result)),
            _ => Err(ApiError::Api { code: envelope.code, message: envelope.message }),
        }
    }
}
