//! The webhook envelope, parsed without business logic: TikTok's real envelope (`event`, `create_time`,
//! `user_openid`, `content` as a JSON string or an object) and a plain test envelope (`event_id`,
//! `event`, `data`). Ids stay strings. Every failure names the field.
//!
//! The body is read into a [`Json`] view that borrows its strings from the body where it can, rather than
//! into `serde_json::Value` (a map and an owned string per field): the webhook's hot path parses every
//! envelope twice (the envelope, then the message in its `content` string). The view reads JSON exactly
//! as `Value` does (the same parser, nesting limit, UTF-8 checks and numbers; a repeated key: the last
//! one counts).

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use ring::digest;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use crate::jobs::MessageV1;

/// The event a customer message arrives with.
pub const RECEIVE_EVENT: &str = "im_receive_msg";
/// The echo of every message the business sent, by the bot or by staff in the TikTok app.
pub const SEND_EVENT: &str = "im_send_msg";
/// TikTok revoked the app's access to the account (`content: {"reason": n}`); its tokens are dead already.
pub const AUTHORIZATION_REMOVED_EVENT: &str = "authorization.removed";

/// A webhook the bot acts on, or one it acknowledges and leaves alone.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookEvent {
    Inbound(Box<MessageV1>),
    Echo(Box<MessageV1>),
    /// TikTok removed the app's authorization: 1 the owner disconnected it, 2 the account was deleted, 4
    /// banned, 5 revoked by the developer.
    AuthorizationRemoved {
        idempotency_key: String,
        reason: i32,
    },
    Ignored {
        idempotency_key: String,
        event: String,
    },
}

/// A parsed webhook and the business account it is for (the envelope's `user_openid`), when named.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub event: WebhookEvent,
    pub account: Option<String>,
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
    parse_envelope(body, received_at).map(|envelope| envelope.event)
}

/// [`parse`], with the business account the event is for.
pub fn parse_envelope(body: &[u8], received_at: DateTime<Utc>) -> Result<Envelope, EnvelopeError> {
    let root: Json<'_> = serde_json::from_slice(body).map_err(|e| EnvelopeError(format!("malformed JSON: {e}")))?;
    let Json::Object(envelope) = root else { return Err(EnvelopeError("the body must be a JSON object".into())) };
    let event = required_str(&envelope, "event", "event")?;
    // `content` as a string is parsed here, and the message object borrows from it.
    let nested: Json<'_>;
    let content = match envelope.get("content").or_else(|| envelope.get("data")) {
        None | Some(Json::Null) => None,
        Some(Json::Object(object)) => Some(object),
        Some(Json::String(text)) => {
            nested =
                serde_json::from_str(text).map_err(|e| EnvelopeError(format!("`content` is not valid JSON: {e}")))?;
            match &nested {
                Json::Object(object) => Some(object),
                _ => return Err(EnvelopeError("`content` must hold a JSON object".into())),
            }
        }
        Some(_) => return Err(EnvelopeError("`content` must be a JSON object or a string holding one".into())),
    };
    let idempotency_key = idempotency_key(&envelope, event, content, body)?;
    let account = envelope.get("user_openid").and_then(Json::as_str).filter(|a| !a.is_empty()).map(str::to_owned);
    let event = match event {
        RECEIVE_EVENT | SEND_EVENT => event,
        AUTHORIZATION_REMOVED_EVENT => {
            let reason = match content.and_then(|c| c.get("reason")) {
                Some(Json::Number(n)) => n.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(0),
                Some(Json::String(n)) => n.parse().unwrap_or(0),
                _ => 0,
            };
            return Ok(Envelope { event: WebhookEvent::AuthorizationRemoved { idempotency_key, reason }, account });
        }
        _ => {
            let event = WebhookEvent::Ignored { idempotency_key, event: event.to_owned() };
            return Ok(Envelope { event, account });
        }
    };
    let content = content.ok_or_else(|| missing("content"))?;
    let message_type = required_str(content, "type", "content.type")?;
    let text = match content.get("text") {
        Some(Json::Object(text)) => Some(required_str(text, "body", "content.text.body")?.to_owned()),
        Some(Json::String(text)) => Some(text.to_string()),
        _ if message_type == "text" => return Err(missing("content.text.body")),
        _ => None,
    };
    let media_id = content
        .get(message_type)
        .and_then(Json::as_object)
        .and_then(|m| m.get("media_id"))
        .map(|v| id_string(v, "media_id"))
        .transpose()?;
    let from_user = content.get("from_user").and_then(Json::as_object);
    let from_user_id = match from_user.and_then(|u| u.get("id")) {
        Some(id) => id_string(id, "content.from_user.id")?,
        None => return Err(missing("content.from_user.id")),
    };
    let message = Box::new(MessageV1 {
        idempotency_key,
        event: event.to_owned(),
        received_at,
        conversation_id: match content.get("conversation_id") {
            Some(id) => id_string(id, "content.conversation_id")?,
            None => return Err(missing("content.conversation_id")),
        },
        message_id: content.get("message_id").map(|id| id_string(id, "content.message_id")).transpose()?,
        sent_at_ms: content.get("timestamp").and_then(Json::as_i64),
        message_type: message_type.to_owned(),
        text,
        media_id,
        from_user_id,
        from_username: content.get("from").and_then(Json::as_str).map(str::to_owned),
        to_user_id: content
            .get("to_user")
            .and_then(Json::as_object)
            .and_then(|u| u.get("id"))
            .map(|id| id_string(id, "content.to_user.id"))
            .transpose()?,
        source: content
            .get("message_tag")
            .and_then(Json::as_object)
            .and_then(|tag| tag.get("source"))
            .and_then(Json::as_str)
            .map(str::to_owned),
        auto_message_type: content.get("auto_message_type").and_then(Json::as_str).map(str::to_owned),
    });
    let event = if message.event == SEND_EVENT { WebhookEvent::Echo(message) } else { WebhookEvent::Inbound(message) };
    Ok(Envelope { event, account })
}

/// `event_id` when present, else `event:message_id`, else a SHA-256 of the body.
fn idempotency_key(
    envelope: &Object<'_>,
    event: &str,
    content: Option<&Object<'_>>,
    body: &[u8],
) -> Result<String, EnvelopeError> {
    if let Some(id) = envelope.get("event_id").filter(|v| !v.is_null()) {
        return id_string(id, "event_id");
    }
    if let Some(id) = content.and_then(|c| c.get("message_id")).filter(|v| !v.is_null()) {
        return Ok([event, ":", &id_string(id, "content.message_id")?].concat());
    }
    Ok(format!("sha256:{}", hex::encode(digest::digest(&digest::SHA256, body).as_ref())))
}

fn required_str<'a>(object: &'a Object<'_>, key: &str, path: &str) -> Result<&'a str, EnvelopeError> {
    match object.get(key) {
        Some(Json::String(value)) => Ok(value),
        Some(_) => Err(EnvelopeError(format!("field `{path}` must be a string"))),
        None => Err(missing(path)),
    }
}

/// An id as a string. Integers are accepted and written out exactly; anything else is refused,
/// floats included (a 19-digit id that went through a float has already lost its last digits).
fn id_string(value: &Json<'_>, path: &str) -> Result<String, EnvelopeError> {
    match value {
        Json::String(s) if !s.is_empty() => Ok(s.to_string()),
        Json::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        _ => Err(EnvelopeError(format!("field `{path}` must be a non-empty string id"))),
    }
}

/// A JSON value read from a webhook body, its strings borrowed from the body unless they hold escapes.
#[derive(Debug)]
enum Json<'a> {
    Null,
    Bool,
    Number(Number),
    String(Cow<'a, str>),
    /// Checked like any other value, then dropped: no field of the envelope is an array.
    Array,
    Object(Object<'a>),
}

/// An object's entries in the order they came.
#[derive(Debug)]
struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Object<'a> {
    /// The value of `key`; the last one when the key is repeated.
    fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.0.iter().rev().find(|(name, _)| name == key).map(|(_, value)| value)
    }
}

impl<'a> Json<'a> {
    fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    fn as_object(&self) -> Option<&Object<'a>> {
        if let Json::Object(object) = self { Some(object) } else { None }
    }

    fn as_str(&self) -> Option<&str> {
        if let Json::String(text) = self { Some(text) } else { None }
    }

    fn as_i64(&self) -> Option<i64> {
        if let Json::Number(number) = self { number.as_i64() } else { None }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool)
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(value.into()))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json<'de>, E> {
        Ok(Number::from_f64(value).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value)))
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        while seq.next_element::<Json<'de>>()?.is_some() {}
        Ok(Json::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        // TikTok's message object has nine keys, its envelope five.
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(12));
        while let Some((Key(key), value)) = map.next_entry::<Key<'de>, Json<'de>>()? {
            entries.push((key, value));
        }
        Ok(Json::Object(Object(entries)))
    }
}

/// An object's key, borrowed unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(JsonVisitor).and_then(|value| match value {
            Json::String(key) => Ok(Key(key)),
            _ => Err(serde::de::Error::custom("an object key must be a string")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

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
    fn the_body_is_read_as_serde_json_reads_it() {
        let ignored = |body: &str| match parse(body.as_bytes(), now()) {
            Ok(WebhookEvent::Ignored { idempotency_key, event }) => Ok((idempotency_key, event)),
            Ok(_) => Err("not ignored".to_owned()),
            Err(e) => Err(e.0),
        };
        // A repeated key: the last one counts; escapes in keys and values are read.
        assert_eq!(ignored(r#"{"event":"im_receive_msg","event":"x","event_id":"e"}"#), Ok(("e".into(), "x".into())));
        assert_eq!(ignored(r#"{"ev\u0065nt":"a\u00e9","event_id":"\"e\""}"#), Ok(("\"e\"".into(), "aé".into())));
        // `content: null` is no content, and `data` is then not looked at.
        let key = ignored(r#"{"event":"x","content":null,"data":{"message_id":"m"}}"#).unwrap().0;
        assert!(key.starts_with("sha256:"), "{key}");
        // Fields nobody reads are still checked: nesting depth, UTF-8, syntax.
        let deep = format!(r#"{{"event":"x","extra":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        assert!(ignored(&deep).unwrap_err().contains("recursion limit"));
        let invalid_utf8 = b"{\"event\":\"x\",\"extra\":\"\xff\"}";
        assert!(parse(invalid_utf8, now()).unwrap_err().0.starts_with("malformed JSON"));
        assert!(ignored(r#"{"event":"x"} trailing"#).unwrap_err().starts_with("malformed JSON"));
        // Numbers: integers are ids, exactly; a u64 too large for i64 is no timestamp.
        let mut content = message();
        content["timestamp"] = json!(u64::MAX);
        content["message_id"] = json!(-5);
        let WebhookEvent::Inbound(m) = parse(&tiktok_body(content), now()).unwrap() else { panic!("inbound") };
        assert_eq!((m.sent_at_ms, m.message_id.as_deref()), (None, Some("-5")));
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
    use serde_json::{Value, json};

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
