//! The webhook envelope, parsed without business logic: TikTok's real envelope (`event`, `create_time`,
//! `user_openid`, `content` as a JSON string or an object) and a plain test envelope (`event_id`,
//! `event`, `data`). Ids stay strings. Every failure names the field.

use chrono::{DateTime, Utc};
use ring::digest;
use serde_json::{Map, Value};

use crate::jobs::MessageV1;

/// The event a customer message arrives with.
pub const RECEIVE_EVENT: &str = "im_receive_msg";
/// The echo of every message the business sent, by the bot or by staff in the TikTok app.
pub const SEND_EVENT: &str = "im_send_msg";

/// A webhook the bot acts on, or one it acknowledges and leaves alone.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    Inbound(Box<MessageV1>),
    Echo(Box<MessageV1>),
    Ignored { idempotency_key: String, event: String },
}

/// The body is not a usable envelope; the message says what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EnvelopeError(pub String);

fn missing(field: &str) -> EnvelopeError {
    EnvelopeError(format!("missing field `{field}`"))
}

/// Parses a webhook body received at `received_at`.
pub fn parse(body: &[u8], received_at: DateTime<Utc>) -> Result<WebhookEvent, EnvelopeError> {
    let root: Value = serde_json::from_slice(body).map_err(|e| EnvelopeError(format!("malformed JSON: {e}")))?;
    let Value::Object(mut envelope) = root else { return Err(EnvelopeError("the body must be a JSON object".into())) };
    let event = required_str(&envelope, "event", "event")?.to_owned();
    let content = content(&mut envelope)?;
    let idempotency_key = idempotency_key(&envelope, &event, content.as_ref(), body)?;
    if event != RECEIVE_EVENT && event != SEND_EVENT {
        return Ok(WebhookEvent::Ignored { idempotency_key, event });
    }
    let content = content.ok_or_else(|| missing("content"))?;
    let message_type = required_str(&content, "type", "content.type")?.to_owned();
    let text = match content.get("text") {
        Some(Value::Object(text)) => Some(required_str(text, "body", "content.text.body")?.to_owned()),
        Some(Value::String(text)) => Some(text.clone()),
        _ if message_type == "text" => return Err(missing("content.text.body")),
        _ => None,
    };
    let media_id = content
        .get(message_type.as_str())
        .and_then(Value::as_object)
        .and_then(|m| m.get("media_id"))
        .map(|v| id_string(v, "media_id"))
        .transpose()?;
    let from_user = content.get("from_user").and_then(Value::as_object);
    let from_user_id = match from_user.and_then(|u| u.get("id")) {
        Some(id) => id_string(id, "content.from_user.id")?,
        None => return Err(missing("content.from_user.id")),
    };
    let message = Box::new(MessageV1 {
        idempotency_key,
        event,
        received_at,
        conversation_id: match content.get("conversation_id") {
            Some(id) => id_string(id, "content.conversation_id")?,
            None => return Err(missing("content.conversation_id")),
        },
        message_id: content.get("message_id").map(|id| id_string(id, "content.message_id")).transpose()?,
        sent_at_ms: content.get("timestamp").and_then(Value::as_i64),
        message_type,
        text,
        media_id,
        from_user_id,
        from_username: content.get("from").and_then(Value::as_str).map(str::to_owned),
        to_user_id: content
            .get("to_user")
            .and_then(|u| u.get("id"))
            .map(|id| id_string(id, "content.to_user.id"))
            .transpose()?,
    });
    Ok(if message.event == SEND_EVENT { WebhookEvent::Echo(message) } else { WebhookEvent::Inbound(message) })
}

/// The message object: `content` (a JSON string in TikTok's envelope, or an object) or `data`, taken out
/// of the envelope (it is read once, so it is moved rather than copied).
fn content(envelope: &mut Map<String, Value>) -> Result<Option<Map<String, Value>>, EnvelopeError> {
    let value = match envelope.remove("content") {
        Some(content) => Some(content),
        None => envelope.remove("data"),
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(object)) => Ok(Some(object)),
        Some(Value::String(text)) => match serde_json::from_str(&text) {
            Ok(Value::Object(object)) => Ok(Some(object)),
            Ok(_) => Err(EnvelopeError("`content` must hold a JSON object".into())),
            Err(e) => Err(EnvelopeError(format!("`content` is not valid JSON: {e}"))),
        },
        Some(_) => Err(EnvelopeError("`content` must be a JSON object or a string holding one".into())),
    }
}

/// `event_id` when present, else `event:message_id`, else a SHA-256 of the body.
fn idempotency_key(
    envelope: &Map<String, Value>,
    event: &str,
    content: Option<&Map<String, Value>>,
    body: &[u8],
) -> Result<String, EnvelopeError> {
    if let Some(id) = envelope.get("event_id").filter(|v| !v.is_null()) {
        return id_string(id, "event_id");
    }
    if let Some(id) = content.and_then(|c| c.get("message_id")).filter(|v| !v.is_null()) {
        return Ok(format!("{event}:{}", id_string(id, "content.message_id")?));
    }
    Ok(format!("sha256:{}", hex::encode(digest::digest(&digest::SHA256, body).as_ref())))
}

fn required_str<'a>(object: &'a Map<String, Value>, key: &str, path: &str) -> Result<&'a str, EnvelopeError> {
    match object.get(key) {
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(EnvelopeError(format!("field `{path}` must be a string"))),
        None => Err(missing(path)),
    }
}

/// An id as a string. Integers are accepted and written out exactly; anything else is refused,
/// floats included (a 19-digit id that went through a float has already lost its last digits).
fn id_string(value: &Value, path: &str) -> Result<String, EnvelopeError> {
    match value {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        _ => Err(EnvelopeError(format!("field `{path}` must be a non-empty string id"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap()
    }

    fn tiktok_body(content: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "client_key": "app_key", "event": "im_receive_msg", "create_time": 1767225600,
            "user_openid": "biz_open_id", "content": content.to_string(),
        }))
        .unwrap()
    }

    fn message() -> Value {
        json!({
            "conversation_id": "Cgw4LjE+Y29udjE=", "message_id": "7447361234567890123",
            "timestamp": 1767225599873i64, "type": "text", "text": {"body": "is the carhartt jacket still available?"},
            "from": "alice", "from_user": {"id": "user_open_id_456", "role": "personal_account"},
            "to_user": {"id": "biz_open_id", "role": "business_account"},
        })
    }

    #[test]
    fn tiktok_envelope_with_content_as_a_string_is_parsed() {
        let WebhookEvent::Inbound(m) = parse(&tiktok_body(message()), now()).unwrap() else { panic!("inbound") };
        assert_eq!(m.idempotency_key, "im_receive_msg:7447361234567890123");
        assert_eq!(m.conversation_id, "Cgw4LjE+Y29udjE=");
        assert_eq!(m.message_id.as_deref(), Some("7447361234567890123"));
        assert_eq!(m.text.as_deref(), Some("is the carhartt jacket still available?"));
        assert_eq!(m.from_user_id, "user_open_id_456");
        assert_eq!(m.from_username.as_deref(), Some("alice"));
        assert_eq!(m.to_user_id.as_deref(), Some("biz_open_id"));
        assert_eq!(m.sent_at_ms, Some(1_767_225_599_873));
    }

    #[test]
    fn test_envelope_with_event_id_and_data_object_is_parsed() {
        let body = json!({"event_id": "evt-1", "event": "im_receive_msg", "data": message()});
        let WebhookEvent::Inbound(m) = parse(body.to_string().as_bytes(), now()).unwrap() else { panic!() };
        assert_eq!(m.idempotency_key, "evt-1");
    }

    #[test]
    fn numeric_ids_stay_exact_and_floats_are_refused() {
        let mut content = message();
        content["message_id"] = json!(7447361234567890123u64);
        let body = json!({"event": "im_receive_msg", "content": content});
        let WebhookEvent::Inbound(m) = parse(body.to_string().as_bytes(), now()).unwrap() else { panic!() };
        assert_eq!(m.message_id.as_deref(), Some("7447361234567890123"));
        content["message_id"] = json!(7.447_361_234_567_89e18);
        let body = json!({"event": "im_receive_msg", "content": content});
        assert!(parse(body.to_string().as_bytes(), now()).unwrap_err().0.contains("content.message_id"));
    }

    #[test]
    fn without_event_id_or_message_id_the_key_is_a_hash_of_the_body() {
        let body = br#"{"event":"im_mark_read_msg"}"#;
        let WebhookEvent::Ignored { idempotency_key, event } = parse(body, now()).unwrap() else { panic!() };
        assert_eq!(event, "im_mark_read_msg");
        assert!(idempotency_key.starts_with("sha256:") && idempotency_key.len() == 7 + 64);
        assert_eq!(parse(body, now()), parse(body, now()), "the same body gives the same key");
    }

    #[test]
    fn each_missing_field_is_named() {
        for (field, path) in [
            ("conversation_id", "content.conversation_id"),
            ("type", "content.type"),
            ("from_user", "content.from_user.id"),
            ("text", "content.text.body"),
        ] {
            let mut content = message();
            content.as_object_mut().unwrap().remove(field);
            let error = parse(&tiktok_body(content), now()).unwrap_err();
            assert_eq!(error.0, format!("missing field `{path}`"));
        }
        assert_eq!(parse(br#"{"content":"{}"}"#, now()).unwrap_err().0, "missing field `event`");
        assert_eq!(parse(br#"{"event":"im_receive_msg"}"#, now()).unwrap_err().0, "missing field `content`");
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        assert!(parse(b"{not json", now()).unwrap_err().0.starts_with("malformed JSON"));
        assert!(parse(b"[1,2]", now()).unwrap_err().0.contains("JSON object"));
        assert!(
            parse(br#"{"event":"im_receive_msg","content":"{oops"}"#, now()).unwrap_err().0.contains("not valid JSON")
        );
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse(deep.as_bytes(), now()).unwrap_err().0.starts_with("malformed JSON"), "deep nesting is refused");
    }

    #[test]
    fn non_text_messages_keep_their_media_id() {
        let mut content = message();
        let object = content.as_object_mut().unwrap();
        object.remove("text");
        object.insert("type".into(), json!("image"));
        object.insert("image".into(), json!({"media_id": "m-123"}));
        let WebhookEvent::Inbound(m) = parse(&tiktok_body(content), now()).unwrap() else { panic!() };
        assert_eq!((m.message_type.as_str(), m.media_id.as_deref(), m.text), ("image", Some("m-123"), None));
    }
}

/// Properties over generated input (proptest; a few hundred cases per run, so it stays in every CI run).
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Arbitrary JSON values, nested a few levels.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{1,12}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Any bytes are parsed or refused with a reason, never a panic.
        #[test]
        fn any_bytes_are_parsed_or_refused(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Err(e) = parse(&body, Utc::now()) {
                prop_assert!(!e.0.is_empty());
            }
        }

        /// Any JSON document, and any JSON put where TikTok's fields go, is parsed or refused.
        #[test]
        fn any_json_in_any_field_is_parsed_or_refused(
            value in any_json(),
            content in any_json(),
            event in prop_oneof![Just("im_receive_msg".to_owned()), Just("im_send_msg".to_owned()), ".{0,12}".prop_map(String::from)],
        ) {
            let _ = parse(value.to_string().as_bytes(), Utc::now());
            let envelope = json!({"event": event, "client_key": "k", "create_time": 1, "user_openid": "b", "content": content.to_string()});
            let _ = parse(envelope.to_string().as_bytes(), Utc::now());
            let object = json!({"event": event, "client_key": "k", "create_time": 1, "user_openid": "b", "content": content});
            let _ = parse(object.to_string().as_bytes(), Utc::now());
        }

        /// A well-formed message is read back exactly, whatever its ids and text.
        #[test]
        fn well_formed_messages_round_trip(
            conversation in "[A-Za-z0-9_-]{1,40}",
            message_id in "[A-Za-z0-9_-]{1,40}",
            user in "[A-Za-z0-9_-]{1,40}",
            text in ".{1,300}",
        ) {
            let content = json!({
                "conversation_id": conversation, "message_id": message_id, "timestamp": 1_700_000_000_000i64,
                "type": "text", "text": {"body": text}, "from_user": {"id": user}, "to_user": {"id": "biz"},
            });
            let body = json!({"event": "im_receive_msg", "client_key": "k", "create_time": 1, "user_openid": "biz", "content": content.to_string()});
            match parse(body.to_string().as_bytes(), Utc::now()) {
                Ok(WebhookEvent::Inbound(message)) => {
                    prop_assert_eq!(message.conversation_id, conversation);
                    prop_assert_eq!(message.message_id, Some(message_id));
                    prop_assert_eq!(message.from_user_id, user);
                    prop_assert_eq!(message.text, Some(text));
                }
                other => prop_assert!(false, "not an inbound message: {:?}", other.map(|_| ())),
            }
        }
    }
}
