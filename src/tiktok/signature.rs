//! `TikTok-Signature: t=<unix seconds>,s=<hex>` where `s = hex(HMAC-SHA256(secret, "<t>." + raw body))`.

use std::io::Write as _;

use ring::hmac;

/// Why a signature was refused. The HTTP answer never says which (401 for all); the log does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing TikTok-Signature header")]
    Missing,
    #[error("malformed TikTok-Signature header: {0}")]
    Malformed(&'static str),
    #[error("signature timestamp {age_secs} s away from now (tolerance {tolerance_secs} s)")]
    Stale { age_secs: i64, tolerance_secs: u64 },
    #[error("signature does not match the body")]
    Mismatch,
}

/// The parts of a signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeader {
    pub timestamp: i64,
    pub signature: [u8; 32],
}

/// Parses `t=…,s=…`: parts in any order, spaces around parts, keys and values tolerated; unknown parts
/// ignored (forward compatibility); a part given twice, a non-integer `t`, or an `s` that is not 64 hex
/// digits is malformed.
pub fn parse_header(header: &str) -> Result<SignatureHeader, SignatureError> {
    let (mut timestamp, mut signature) = (None, None);
    for part in header.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (key, value) = part.split_once('=').ok_or(SignatureError::Malformed("part without '='"))?;
        let (key, value) = (key.trim(), value.trim());
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed("duplicated t"));
                }
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed("t is not a unix timestamp"));
                }
                timestamp = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed("t out of range"))?);
            }
            "s" => {
                if signature.is_some() {
                    return Err(SignatureError::Malformed("duplicated s"));
                }
                let mut bytes = [0u8; 32];
                if value.len() != 64 {
                    return Err(SignatureError::Malformed("s is not 64 hex digits"));
                }
                hex::decode_to_slice(value, &mut bytes).map_err(|_| SignatureError::Malformed("s is not hex"))?;
                signature = Some(bytes);
            }
            _ => {}
        }
    }
    match (timestamp, signature) {
        (Some(timestamp), Some(signature)) => Ok(SignatureHeader { timestamp, signature }),
        (None, _) => Err(SignatureError::Malformed("no t")),
        (_, None) => Err(SignatureError::Malformed("no s")),
    }
}

/// The webhook secret, ready to check signatures with: the HMAC key is derived once, not per request.
pub struct WebhookKey(hmac::Key);

impl WebhookKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// Checks a webhook: the header parses, its timestamp is within `tolerance_secs` of `now` (either
    /// way), and the HMAC over `"<t>." + body` matches, compared in constant time.
    pub fn verify(
        &self,
        header: Option<&str>,
        body: &[u8],
        now: i64,
        tolerance_secs: u64,
    ) -> Result<(), SignatureError> {
        let header = parse_header(header.ok_or(SignatureError::Missing)?)?;
        let age_secs = now.saturating_sub(header.timestamp);
        if age_secs.unsigned_abs() > tolerance_secs {
            return Err(SignatureError::Stale { age_secs, tolerance_secs });
        }
        let mut message = Vec::with_capacity(body.len() + 21);
        // Writing to a Vec cannot fail.
        let _ = write!(message, "{}.", header.timestamp);
        message.extend_from_slice(body);
        hmac::verify(&self.0, &message, &header.signature).map_err(|_| SignatureError::Mismatch)
    }
}

/// [`WebhookKey::verify`] with a secret given as bytes.
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    WebhookKey::new(secret).verify(header, body, now, tolerance_secs)
}

/// The header value TikTok would send for `body` at `timestamp` (tests, the load generator, `sign`).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("t={timestamp},s={}", hex::encode(context.sign().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"webhook-secret";
    const BODY: &[u8] = br#"{"event":"im_receive_msg"}"#;
    const NOW: i64 = 1_767_225_600;

    fn check(header: &str) -> Result<(), SignatureError> {
        verify(SECRET, Some(header), BODY, NOW, 300)
    }

    #[test]
    fn a_valid_signature_is_accepted() {
        assert_eq!(check(&sign(SECRET, NOW, BODY)), Ok(()));
        // Known vector, computed independently: HMAC-SHA256("webhook-secret", "1767225600." + BODY).
        let expected = {
            let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
            hex::encode(hmac::sign(&key, b"1767225600.{\"event\":\"im_receive_msg\"}").as_ref())
        };
        assert_eq!(sign(SECRET, NOW, BODY), format!("t={NOW},s={expected}"));
    }

    #[test]
    fn wrong_secret_and_flipped_body_byte_are_rejected() {
        assert_eq!(check(&sign(b"other-secret", NOW, BODY)), Err(SignatureError::Mismatch));
        let mut flipped = BODY.to_vec();
        flipped[3] ^= 0x01;
        assert_eq!(verify(SECRET, Some(&sign(SECRET, NOW, &flipped)), BODY, NOW, 300), Err(SignatureError::Mismatch));
    }

    #[test]
    fn stale_and_future_timestamps_are_rejected() {
        assert!(matches!(check(&sign(SECRET, NOW - 301, BODY)), Err(SignatureError::Stale { .. })));
        assert!(matches!(check(&sign(SECRET, NOW + 301, BODY)), Err(SignatureError::Stale { .. })));
        assert_eq!(check(&sign(SECRET, NOW - 300, BODY)), Ok(()), "the tolerance itself is inclusive");
    }

    #[test]
    fn a_missing_header_is_rejected() {
        assert_eq!(verify(SECRET, None, BODY, NOW, 300), Err(SignatureError::Missing));
    }

    #[test]
    fn spaces_and_order_of_parts_are_tolerated() {
        let header = sign(SECRET, NOW, BODY);
        let (t, s) = header.split_once(',').unwrap();
        assert_eq!(check(&format!("  {t} ,  {s}  ")), Ok(()));
        assert_eq!(check(&format!("{s},{t}")), Ok(()));
        let (tk, tv) = t.split_once('=').unwrap();
        assert_eq!(check(&format!("{tk} = {tv}, {s}")), Ok(()));
        assert_eq!(check(&format!("{t},{s},v=2")), Ok(()), "unknown parts are ignored");
    }

    #[test]
    fn malformed_headers_are_rejected() {
        let header = sign(SECRET, NOW, BODY);
        let (t, s) = header.split_once(',').unwrap();
        for bad in [
            format!("t=12ab,{s}"),
            format!("t=,{s}"),
            format!("t=-5,{s}"),
            format!("{t},s="),
            format!("{t},s=zz{}", &s[4..]),
            format!("{t},{s},{t}"),
            format!("{t},{s},{s}"),
            t.to_owned(),
            s.to_owned(),
            "garbage".to_owned(),
            String::new(),
            format!("t=99999999999999999999999,{s}"),
        ] {
            assert!(matches!(check(&bad), Err(SignatureError::Malformed(_))), "{bad:?} → {:?}", check(&bad));
        }
    }
}

/// Properties over generated input (proptest; a few hundred cases per run, so it stays in every CI run).
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any header text at all is parsed or refused, never a panic.
        #[test]
        fn any_header_is_parsed_or_refused(header in ".{0,200}") {
            let _ = parse_header(&header);
            let _ = verify(b"secret", Some(&header), b"{}", 1_700_000_000, 300);
        }

        /// Headers shaped like the real one, with every part possibly wrong, never panic either.
        #[test]
        fn near_miss_headers_are_refused(t in "[-0-9a-z]{0,25}", s in "[0-9a-fA-Fxz]{0,70}", extra in "[ ,=ts0-9]{0,10}") {
            let header = format!("t={t},s={s}{extra}");
            let body: &[u8] = b"{}";
            // Not signed with this secret: refused whatever the shape (a random 64-hex match is 2^-256).
            prop_assert!(verify(b"secret", Some(&header), body, 1_700_000_000, 300).is_err());
        }

        /// What `sign` writes, `verify` accepts, for any body and secret; any other body is refused.
        #[test]
        fn signed_bodies_verify_and_changed_ones_do_not(
            secret in proptest::collection::vec(any::<u8>(), 1..64),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            flip in any::<prop::sample::Index>(),
        ) {
            let now = 1_700_000_000;
            let header = sign(&secret, now, &body);
            prop_assert!(verify(&secret, Some(&header), &body, now, 300).is_ok());
            if !body.is_empty() {
                let mut changed = body.clone();
                let i = flip.index(changed.len());
                changed[i] ^= 0x01;
                prop_assert_eq!(verify(&secret, Some(&header), &changed, now, 300), Err(SignatureError::Mismatch));
            }
        }
    }
}
