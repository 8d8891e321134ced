//! Alerts to the shop's team about the TikTok account itself (not one conversation): the authorization was
//! removed, the refresh token is about to expire, TikTok paused sending. A log line always, and a POST to
//! the staff webhook when one is configured (Slack reads `text`, Discord `content`). Best effort: an alert
//! never fails what raised it.

use serde_json::json;

/// Where account alerts go.
#[derive(Clone)]
pub struct StaffAlerts {
    http: reqwest::Client,
    url: Option<String>,
}

impl StaffAlerts {
    pub fn new(http: reqwest::Client, url: Option<String>) -> Self {
        Self { http, url }
    }

    /// Logs `text` as a warning and posts it to the staff webhook in the background.
    pub fn send(&self, text: String) {
        tracing::warn!(alert = %text, "TikTok account alert");
        let Some(url) = self.url.clone() else { return };
        let http = self.http.clone();
        tokio::spawn(async move {
            let body = json!({"text": text, "content": text});
            match http.post(&url).json(&body).send().await {
                Ok(response) if response.status().is_success() => {}
                Ok(response) => tracing::warn!(status = response.status().as_u16(), "staff webhook refused an alert"),
                // Without the URL: for Slack it is the secret that lets anyone post to the channel.
                Err(e) => tracing::warn!(error = %e.without_url(), "staff webhook unreachable"),
            }
        });
    }
}
