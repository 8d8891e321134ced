//! `philia-bot chat` scripted through standard input: the transcript a shop owner reads.

use std::io::Write;
use std::process::Stdio;

use crate::cli::{philia, repo_config_dir, text};

/// Runs `chat` with `script` on standard input; returns the transcript (standard output).
fn chat(script: &str) -> String {
    chat_with(script, &[])
}

fn chat_with(script: &str, env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut child = philia(dir.path())
        .envs(env.iter().copied())
        .arg("chat")
        .arg("--config-dir")
        .arg(repo_config_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(!dir.path().join("data").exists(), "the chat leaves no database behind");
    String::from_utf8(output.stdout).unwrap()
}

/// Every needle appears in the transcript, each after the one before.
fn assert_in_order(transcript: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        let found = transcript[from..]
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing (in order) from:\n{transcript}"));
        from += found;
    }
}

#[test]
fn a_scripted_chat_prints_the_whole_conversation() {
    let transcript = chat("hi\n2\n1\nI'm usually a M, will it fit?\nI'll take it\nwhere is my order\n3\n/state\n");
    let expect = [
        "router: keywords only",
        "the built-in demo inventory: loaded 30 item(s)",
        "kim › hi",
        "bot › Hey! 👋 Thanks for messaging Philia Thrifts.",
        "1. Order status",
        "3. Talk to a human",
        "kim › 2",
        "bot › Fresh in ✨ Reply with a number for details:",
        "1. Carhartt Detroit jacket brown duck — $85 (tagged L)",
        "bot › [image] https://images.example.com/philia/jkt-001.jpg",
        "state: choosing from JKT-001, DNM-001, SNK-001 (\"more\" pages on)",
        "Carhartt Detroit jacket brown duck is still available ✅ $85, tagged L.",
        "is tagged L, but it measures 20.5 in (52 cm) pit to pit, so it fits like an M.",
        "You're usually an M, so yes: it should fit you ✅",
        "bot › It's yours! 🙌 Carhartt Detroit jacket brown duck ($85) is on hold for you until",
        "state: talking about JKT-001",
        "Happy to check! 📦 What's your order number?",
        "Got it! 🙋",
        "handed to a human",
        "holds JKT-001 (Carhartt Detroit jacket brown duck) until",
    ];
    assert_in_order(&transcript, &expect);
}

#[test]
fn two_customers_race_for_one_piece_through_as() {
    let transcript = chat(
        "I'll take JKT-001\n/as lee\nI'll take JKT-001\n/as kim\ncancel\n/as lee\nI'll take it\n/as kim\nis JKT-001 still available?\n",
    );
    let expect = [
        "kim › I'll take JKT-001",
        "bot › It's yours! 🙌 Carhartt Detroit jacket brown duck",
        "(now writing as lee)",
        "lee › I'll take JKT-001",
        "bot › So close! 💔 Someone just put Carhartt Detroit jacket brown duck on hold.",
        "kim › cancel",
        "bot › Done — your hold on Carhartt Detroit jacket brown duck is released.",
        "bot → lee › Good news! ✨ Carhartt Detroit jacket brown duck ($85) you asked about is available again.",
        "lee › I'll take it",
        "bot › It's yours! 🙌 Carhartt Detroit jacket brown duck",
        "kim › is JKT-001 still available?",
        "on hold for someone else right now",
    ];
    assert_in_order(&transcript, &expect);
}

#[test]
fn with_a_webhook_secret_the_chat_signs_what_it_posts() {
    // The ingress verifies signatures when a secret is set: an unsigned post would be refused with 401.
    let transcript = chat_with("hi\n", &[("TIKTOK_WEBHOOK_SECRET", "chat-test-secret")]);
    assert!(transcript.contains("as TikTok would (signed)"), "{transcript}");
    assert!(transcript.contains("bot › Hey! 👋"), "{transcript}");
}
