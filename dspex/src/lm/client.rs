//! [`LmClient`]: chat completions from Rust, against the scripted LM or an OpenAI-compatible
//! endpoint, with timeouts, bounded retries, a concurrency limit, an opt-in cache and token
//! usage per call.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde_json::{Map, Value as JsonValue, json};

use super::chat::ChatMessage;
use super::config::{LmConfig, LmKind};
use super::gate::Gate;
#[cfg(feature = "lm")]
use super::http::Endpoint;
use super::scripted::ScriptedLm;
use crate::data::LmCall;
use crate::error::{Error, Result};

/// One chat completion request: the messages and the settings of this call (unset ones take
/// the [`LmConfig`]'s defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LmRequest {
    /// The model; `None` for the configuration's.
    pub model: Option<String>,
    /// The messages.
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Token limit of the completion.
    pub max_tokens: Option<i64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Number of completions (the first is used).
    pub n: Option<i64>,
}

/// A completion: its text, and the call as a run trace records it (the settings it went out
/// with and the token usage the LM reported).
#[derive(Debug, Clone, PartialEq)]
pub struct LmResponse {
    /// The text of the first choice.
    pub text: String,
    /// The model, settings and token usage of the call.
    pub call: LmCall,
    /// Whether the reply came from the response cache.
    pub cached: bool,
}

/// A client for the LM of an [`LmConfig`] (scripted or OpenAI-compatible; a `dspy.LM` model
/// string is refused). Cheap to share: a context keeps one for all its native steps.
///
/// - **Timeouts**: each request may take [`LmConfig::timeout`]; one that takes longer is an
///   error and is not retried.
/// - **Retries**: a request answered 429 or 5xx is retried up to [`LmConfig::max_retries`]
///   times, after the `Retry-After` the endpoint asked for (seconds) or else an exponential
///   backoff from [`LmConfig::retry_backoff`], never more than
///   [`MAX_LM_BACKOFF`](super::MAX_LM_BACKOFF) at a time.
/// - **Concurrency**: at most [`LmConfig::max_concurrent_requests`] requests are in flight;
///   the others wait (a request waiting to retry holds no slot).
/// - **Cache** (opt-in, [`LmConfig::cache`]): a request identical to an earlier one (same
///   model, messages and settings) is answered from memory; the oldest entries go first.
#[derive(Debug)]
pub struct LmClient {
    config: LmConfig,
    backend: Backend,
    gate: Gate,
    cache: Option<Mutex<ReplyCache>>,
    cache_hits: AtomicU64,
}

#[derive(Debug)]
enum Backend {
    Scripted(ScriptedLm),
    #[cfg(feature = "lm")]
    OpenAi(Endpoint),
}

impl LmClient {
    /// A client for `config`; an error if the configuration is out of its bounds, is a
    /// `dspy.LM` model string (python steps only), or names an API key variable that is not
    /// set.
    pub fn new(config: LmConfig) -> Result<Self> {
        config.check()?;
        let backend = match config.kind {
            LmKind::Scripted => Backend::Scripted(ScriptedLm::new(&config)),
            #[cfg(feature = "lm")]
            LmKind::OpenAi => Backend::OpenAi(Endpoint::new(&config)?),
            #[cfg(not(feature = "lm"))]
            LmKind::OpenAi => {
                return Err(Error::lm(format!(
                    "LmConfig::openai(\"{}\", ..) is called from Rust by dspex's `lm` feature, which this build leaves out; enable it, or give native steps LmConfig::scripted()",
                    dspex_core::excerpt(&config.base_url)
                )));
            }
            LmKind::Model => {
                return Err(Error::lm(format!(
                    "LmConfig::model(\"{}\") is a dspy.LM model string, for python steps only; native LM steps need LmConfig::scripted() or LmConfig::openai(base_url, model)",
                    dspex_core::excerpt(&config.model)
                )));
            }
        };
        let cache = (config.cache_entries > 0).then(|| {
            Mutex::new(ReplyCache {
                capacity: config.cache_entries,
                ..ReplyCache::default()
            })
        });
        Ok(Self {
            gate: Gate::new(config.max_concurrent),
            config,
            backend,
            cache,
            cache_hits: AtomicU64::new(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LmConfig {
        &self.config
    }

    /// How many requests went out (retries included; cache hits not).
    pub fn requests_sent(&self) -> u64 {
        self.gate.sent()
    }

    /// How many requests the cache answered.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Ordering::Relaxed)
    }

    /// The request body as it goes out: model, messages, the configuration's settings and the
    /// request's own over them.
    pub fn body(&self, request: &LmRequest) -> JsonValue {
        let mut body = Map::new();
        body.insert("model".to_owned(), json!(self.model(request)));
        body.insert("messages".to_owned(), json!(request.messages));
        for (k, v) in &self.config.settings {
            body.insert(k.clone(), v.clone());
        }
        let settings = [
            ("temperature", request.temperature.map(JsonValue::from)),
            ("max_tokens", request.max_tokens.map(JsonValue::from)),
            ("top_p", request.top_p.map(JsonValue::from)),
            ("n", request.n.map(JsonValue::from)),
        ];
        for (k, v) in settings {
            if let Some(v) = v {
                body.insert(k.to_owned(), v);
            }
        }
        JsonValue::Object(body)
    }

    fn model<'r>(&'r self, request: &'r LmRequest) -> &'r str {
        request.model.as_deref().unwrap_or(&self.config.model)
    }

    /// Sends `request` (or answers it from the cache) and returns the first choice's text.
    pub async fn complete(&self, request: &LmRequest) -> Result<LmResponse> {
        let body = self.body(request);
        let key = self.cache.as_ref().map(|_| body.to_string());
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(hit) = cache.lock().get(key)
        {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(LmResponse {
                cached: true,
                ..hit
            });
        }
        let mut call = LmCall {
            model: self.model(request).to_owned(),
            temperature: body.get("temperature").and_then(JsonValue::as_f64),
            max_tokens: body.get("max_tokens").and_then(JsonValue::as_i64),
            top_p: body.get("top_p").and_then(JsonValue::as_f64),
            n: body.get("n").and_then(JsonValue::as_i64),
            prompt_tokens: None,
            completion_tokens: None,
        };
        let text = match &self.backend {
            Backend::Scripted(lm) => {
                let _slot = self.gate.enter().await?;
                if !self.config.delay.is_zero() {
                    tokio::time::sleep(self.config.delay).await;
                }
                let reply = lm.answer(&request.messages);
                call.prompt_tokens = Some(reply.prompt_words);
                call.completion_tokens = Some(reply.answer_words);
                reply.text
            }
            #[cfg(feature = "lm")]
            Backend::OpenAi(endpoint) => {
                endpoint
                    .complete(&body, &mut call, &self.gate, &self.config)
                    .await?
            }
        };
        let response = LmResponse {
            text,
            call,
            cached: false,
        };
        if let (Some(cache), Some(key)) = (&self.cache, key) {
            cache.lock().insert(key, response.clone());
        }
        Ok(response)
    }
}

/// The opt-in response cache: at most `capacity` replies, the oldest evicted first.
#[derive(Debug, Default)]
struct ReplyCache {
    capacity: usize,
    replies: HashMap<Arc<str>, LmResponse>,
    order: VecDeque<Arc<str>>,
}

impl ReplyCache {
    fn get(&self, key: &str) -> Option<LmResponse> {
        self.replies.get(key).cloned()
    }

    fn insert(&mut self, key: String, response: LmResponse) {
        let key: Arc<str> = key.into();
        if self.replies.insert(Arc::clone(&key), response).is_some() {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.replies.remove(&oldest);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.replies.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_at_most_its_capacity_oldest_out_first() {
        let mut cache = ReplyCache {
            capacity: 2,
            ..ReplyCache::default()
        };
        let reply = |t: &str| LmResponse {
            text: t.to_owned(),
            call: LmCall {
                model: "m".into(),
                temperature: None,
                max_tokens: None,
                top_p: None,
                n: None,
                prompt_tokens: None,
                completion_tokens: None,
            },
            cached: false,
        };
        for key in ["a", "b", "c"] {
            cache.insert(key.to_owned(), reply(key));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get("a").is_none());
        assert_eq!(cache.get("c").map(|r| r.text), Some("c".to_owned()));
    }

    #[test]
    fn a_model_string_is_for_python_steps_only() {
        let err = LmClient::new(LmConfig::model("anthropic/claude")).unwrap_err();
        assert!(err.to_string().contains("for python steps only"), "{err}");
    }

    #[cfg(feature = "lm")]
    #[test]
    fn an_unset_key_variable_is_named() {
        let err = LmClient::new(
            LmConfig::openai("http://127.0.0.1:1/v1", "m").api_key_env("DSPEX_SURELY_UNSET_KEY"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("`DSPEX_SURELY_UNSET_KEY`"),
            "{err}"
        );
    }
}
