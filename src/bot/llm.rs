//! The LLM intent classifier: any OpenAI-compatible endpoint (async-openai), asked for structured output
//! (a JSON schema) that names one intent from the fixed set and its entities. The model only ever picks
//! an intent: its answer is validated by code, and any failure (timeout, invalid JSON, an intent outside
//! the set) falls back to the keyword router's answer. Facts never come from it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessageArgs, ChatCompletionRequestMessage, ChatCompletionRequestSystemMessageArgs,
    ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs, ResponseFormat, ResponseFormatJsonSchema,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use super::intent::{Entities, INTENTS, Intent, intent_names};
use crate::config::LlmSettings;
use crate::metrics::Metrics;

/// The longest customer text sent to the model; the rest is cut.
const MAX_INPUT_CHARS: usize = 1_000;

/// Why the model's answer was not used (the keyword router's answer stands).
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("chat completion: {0}")]
    Request(#[from] OpenAIError),
    #[error("the answer has no content")]
    NoContent,
    #[error("the answer is not the schema: {0}")]
    NotTheSchema(#[from] serde_json::Error),
    #[error("faq without a known topic: {0:?}")]
    UnknownFaqTopic(Option<String>),
    #[error("intent {0:?} is not one of the set")]
    UnknownIntent(String),
    #[error("skipped: the model failed repeatedly and is left alone for a cool-down")]
    CircuitOpen,
}

/// Who said an earlier message of the conversation, for context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Customer,
    Shop,
}

/// Skips the model for a cool-down after consecutive failed classifications: with the endpoint down,
/// every message would otherwise wait two timeouts before the keyword answer. After the cool-down one
/// classification is tried again; a failure opens it for another cool-down, a success closes it.
#[derive(Debug)]
struct Breaker {
    /// Failed classifications in a row (each after its retry).
    failures: AtomicU32,
    /// When the model may be asked again, while open.
    open_until: Mutex<Option<Instant>>,
    threshold: u32,
    cool_down: Duration,
}

impl Breaker {
    fn is_open(&self, now: Instant) -> bool {
        let open_until = self.open_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        open_until.is_some_and(|until| now < until)
    }

    /// Records one classification's outcome; true when this failure opened the breaker.
    fn record(&self, ok: bool, now: Instant) -> bool {
        let mut open_until = self.open_until.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if ok {
            self.failures.store(0, Ordering::Relaxed);
            *open_until = None;
            return false;
        }
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= self.threshold {
            *open_until = Some(now + self.cool_down);
            return true;
        }
        false
    }
}

#[derive(Clone)]
pub struct LlmRouter {
    client: Client<OpenAIConfig>,
    model: String,
    system_prompt: String,
    timeout: Duration,
    faq_topics: Vec<String>,
    categories: Vec<String>,
    metrics: Metrics,
    breaker: Arc<Breaker>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Classification {
    intent: String,
    faq_topic: Option<String>,
    sku: Option<String>,
    size: Option<String>,
    category: Option<String>,
    order_number: Option<String>,
    item_position: Option<u32>,
}

/// The shop's instructions (`llm.system_prompt`), then every intent the router knows with what it means
/// and the FAQ topics: generated from the one list the router and the schema use, so the model is told
/// of every intent it may answer.
pub fn system_prompt(instructions: &str, faq_topics: &[String]) -> String {
    let mut prompt = instructions.trim_end().to_owned();
    prompt.push_str("\n\nThe intents (answer exactly one name):");
    for (name, meaning) in INTENTS {
        prompt.push_str(&format!("\n- {name}: {meaning}"));
    }
    prompt.push_str(&format!("\nThe faq topics: {}.", faq_topics.join(", ")));
    prompt
}

/// Strips control characters (newlines kept as spaces) and caps the length: the customer's text is data.
pub fn sanitize(text: &str) -> String {
    let cleaned: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    cleaned.chars().take(MAX_INPUT_CHARS).collect::<String>().trim().to_owned()
}

impl LlmRouter {
    /// The classifier, when an API key is configured.
    pub fn new(
        settings: &LlmSettings,
        http: reqwest::Client,
        faq_topics: Vec<String>,
        categories: Vec<String>,
        metrics: Metrics,
    ) -> Option<Self> {
        let key = settings.api_key.as_ref()?;
        let config = OpenAIConfig::new()
            .with_api_key(key.expose_secret())
            .with_api_base(settings.base_url.trim_end_matches('/'));
        Some(Self {
            client: Client::with_config(config).with_http_client(http),
            model: settings.model.clone(),
            system_prompt: system_prompt(&settings.system_prompt, &faq_topics),
            timeout: Duration::from_millis(settings.timeout_ms),
            faq_topics,
            categories,
            metrics,
            breaker: Arc::new(Breaker {
                failures: AtomicU32::new(0),
                open_until: Mutex::new(None),
                threshold: settings.breaker_failures.max(1),
                cool_down: Duration::from_secs(settings.breaker_cool_down_secs),
            }),
        })
    }

    /// Classifies `text`, given the last messages of the conversation (oldest first). One retry after a
    /// failure; the caller falls back to the keyword router on `Err`.
    /// While the circuit breaker is open the model is not asked at all (counted as `skipped` in
    /// `philia_llm_calls_total`), and the caller uses the keywords at once.
    pub async fn classify(&self, text: &str, history: &[(Speaker, String)]) -> Result<(Intent, Entities), LlmError> {
        if self.breaker.is_open(Instant::now()) {
            self.metrics.llm("skipped", Duration::ZERO);
            return Err(LlmError::CircuitOpen);
        }
        let result = match self.measured(text, history).await {
            Ok(result) => Ok(result),
            Err(first) => {
                tracing::debug!(error = format!("{first:#}"), "LLM classification failed; retrying once");
                let second = self.measured(text, history).await;
                if second.is_err() {
                    self.metrics.llm("fallback", Duration::ZERO);
                }
                second
            }
        };
        if self.breaker.record(result.is_ok(), Instant::now()) {
            self.metrics.llm("circuit_opened", Duration::ZERO);
            tracing::warn!(
                failures = self.breaker.threshold,
                cool_down_secs = self.breaker.cool_down.as_secs(),
                "LLM failed repeatedly: the keyword router answers alone for the cool-down"
            );
        }
        result
    }

    /// One classification, counted by outcome (ok, timeout, error) with its latency.
    async fn measured(&self, text: &str, history: &[(Speaker, String)]) -> Result<(Intent, Entities), LlmError> {
        let started = std::time::Instant::now();
        let result = self.classify_once(text, history).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(LlmError::Timeout(_)) => "timeout",
            Err(_) => "error",
        };
        self.metrics.llm(outcome, started.elapsed());
        result
    }

    async fn classify_once(&self, text: &str, history: &[(Speaker, String)]) -> Result<(Intent, Entities), LlmError> {
        let mut messages: Vec<ChatCompletionRequestMessage> =
            vec![ChatCompletionRequestSystemMessageArgs::default().content(self.system_prompt.clone()).build()?.into()];
        for (speaker, said) in history {
            let said = sanitize(said);
            messages.push(match speaker {
                Speaker::Customer => ChatCompletionRequestUserMessageArgs::default()
                    .content(format!("<customer_message>\n{said}\n</customer_message>"))
                    .build()?
                    .into(),
                Speaker::Shop => ChatCompletionRequestAssistantMessageArgs::default().content(said).build()?.into(),
            });
        }
        // The customer's words go only in a user message, delimited; never into the system prompt.
        messages.push(
            ChatCompletionRequestUserMessageArgs::default()
                .content(format!("<customer_message>\n{}\n</customer_message>", sanitize(text)))
                .build()?
                .into(),
        );
        let request = CreateChatCompletionRequestArgs::default()
            .model(self.model.clone())
            .messages(messages)
            .temperature(0.0)
            .response_format(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    name: "intent".into(),
                    description: Some("The customer's intent and the entities they named".into()),
                    schema: self.schema(),
                    strict: Some(true),
                },
            })
            .build()?;
        let response = tokio::time::timeout(self.timeout, self.client.chat().create(request))
            .await
            .map_err(|_| LlmError::Timeout(self.timeout))??;
        let content =
            response.choices.first().and_then(|choice| choice.message.content.clone()).ok_or(LlmError::NoContent)?;
        let classification: Classification = serde_json::from_str(&content)?;
        self.validate(classification)
    }

    fn schema(&self) -> serde_json::Value {
        let nullable_string = json!({"type": ["string", "null"]});
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["intent", "faq_topic", "sku", "size", "category", "order_number", "item_position"],
            "properties": {
                "intent": {"type": "string", "enum": intent_names().collect::<Vec<_>>()},
                "faq_topic": {"type": ["string", "null"], "enum": self.faq_topics.iter().map(|t| json!(t)).chain([json!(null)]).collect::<Vec<_>>()},
                "sku": nullable_string,
                "size": nullable_string,
                "category": nullable_string,
                "order_number": nullable_string,
                "item_position": {"type": ["integer", "null"]},
            }
        })
    }

    /// Accepts only an intent from the set and entities of the right shape; anything else is an error.
    fn validate(&self, c: Classification) -> Result<(Intent, Entities), LlmError> {
        let intent = match c.intent.as_str() {
            "faq" => match c.faq_topic {
                Some(topic) if self.faq_topics.contains(&topic) => Intent::Faq(topic),
                other => return Err(LlmError::UnknownFaqTopic(other)),
            },
            name => serde_json::from_value(json!(name)).map_err(|_| LlmError::UnknownIntent(name.to_owned()))?,
        };
        let token = |value: Option<String>, max: usize| {
            value
                .map(|v| v.trim().to_uppercase())
                .filter(|v| !v.is_empty() && v.len() <= max && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        };
        let entities = Entities {
            sku: token(c.sku, 32),
            size: token(c.size, 8),
            category: c.category.filter(|cat| self.categories.contains(cat)),
            order_number: token(c.order_number, 32).filter(|n| n.starts_with("PH-")),
            item_position: c.item_position.filter(|p| (1..=9).contains(p)),
            // Sums of money are read by code from the message, never taken from the model.
            amount_minor: None,
        };
        Ok((intent, entities))
    }
}
