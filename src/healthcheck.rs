//! The container health probe: asks a running philia-bot over HTTP whether it is ready, so images without a
//! shell or curl (the distroless runtime image) can run their `HEALTHCHECK` with the bot's own binary.

use std::time::Duration;

/// The longest answer body quoted in a failure, so one line in `docker inspect` says why without flooding it.
const QUOTED_BODY_CHARS: usize = 300;

/// Ok when `url` answers with a 2xx status within `timeout`. Otherwise one line saying what happened: the
/// status and the start of the body (`/ready` names the unreachable backend), or the connection error with
/// its causes.
pub async fn check(url: &str, timeout: Duration) -> Result<(), String> {
    crate::install_crypto_provider();
    // A probe of the bot in its own container must never go through an HTTP(S)_PROXY set for outbound calls.
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {:#}", anyhow::Error::from(e)))?;
    let response = client.get(url).send().await.map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let quoted: String = body.trim().chars().take(QUOTED_BODY_CHARS).collect();
    Err(format!("{url} answered {status}: {quoted}"))
}
