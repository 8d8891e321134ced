//! `philia-bot sign`: the `TikTok-Signature` header for a webhook body (or a curl command posting it),
//! to send a valid webhook by hand.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The webhook secret; defaults to TIKTOK_WEBHOOK_SECRET.
    #[arg(long, env = "TIKTOK_WEBHOOK_SECRET", hide_env_values = true)]
    secret: String,
    /// Print a complete curl command posting the body to this URL instead of the header alone.
    #[arg(long)]
    curl: Option<String>,
    /// The body: a file, or `-` (the default) for standard input.
    #[arg(default_value = "-")]
    file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let body = read_body(&args.file)?;
    println!("{}", signed(&args.secret, args.curl.as_deref(), &body, chrono::Utc::now().timestamp()));
    Ok(())
}

fn read_body(file: &Path) -> anyhow::Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut body = Vec::new();
        std::io::stdin().read_to_end(&mut body).context("reading the body from standard input")?;
        Ok(body)
    } else {
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))
    }
}

/// The signature header for `body` signed at `timestamp`, or a curl command that posts the body with it.
fn signed(secret: &str, curl: Option<&str>, body: &[u8], timestamp: i64) -> String {
    let header = crate::tiktok::signature::sign(secret.as_bytes(), timestamp, body);
    match curl {
        None => format!("TikTok-Signature: {header}"),
        Some(url) => {
            // Single quotes keep the shell from touching the body; a quote inside it is closed and escaped.
            let quoted = String::from_utf8_lossy(body).replace('\'', "'\\''");
            format!(
                "curl -sS -X POST '{url}' -H 'Content-Type: application/json' -H 'TikTok-Signature: {header}' --data-binary '{quoted}'"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curl_command_posts_the_body_untouched_by_the_shell() {
        let said =
            signed("s3cret", Some("http://127.0.0.1:8000/webhook/tiktok"), br#"{"text":"it's mine"}"#, 1_767_225_600);
        let header = crate::tiktok::signature::sign(b"s3cret", 1_767_225_600, br#"{"text":"it's mine"}"#);
        assert_eq!(
            said,
            format!(
                "curl -sS -X POST 'http://127.0.0.1:8000/webhook/tiktok' -H 'Content-Type: application/json' \
                 -H 'TikTok-Signature: {header}' --data-binary '{{\"text\":\"it'\\''s mine\"}}'"
            )
        );
        assert_eq!(
            signed("s3cret", None, b"{}", 1),
            format!("TikTok-Signature: {}", crate::tiktok::signature::sign(b"s3cret", 1, b"{}"))
        );
    }
}
