//! [`LmClient`]: chat completions from Rust, against the scripted LM or an OpenAI-compatible
//! endpoint, with timeouts, bounded retries, a concurrency limit, an opt-in cache and token
//! usage per call.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde_json::{Map, Value as JsonValue, json};

use super::chat::ChatMessage;
use super::config::{Cache, LmConfig, LmKind};
use super::gate::Gate;
#[cfg(feature = "lm")]
use super::http::Endpoint;
use super::scripted::ScriptedLm;
use super::tape::{Lane, Player, Recorder, Tape, TapeReply, recorded_request};
use crate::data::spans::OpenSpan;
use crate::data::{LmCall, LmExchange, LmMessage};
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
    /// A rollout, as DSPy's `rollout_id`: not sent to the LM, but part of the cache key, so
    /// that a request of rollout `r` is answered by the LM, not by a cached reply to the same
    /// request of another rollout (or of none).
    pub rollout_id: Option<u32>,
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
///   model, messages and settings) is answered from memory (the oldest entries go first) or
///   from a directory on disk (one file per request, under `native/`).
#[derive(Debug)]
pub struct LmClient {
    config: LmConfig,
    backend: Backend,
    gate: Gate,
    cache: ReplyStore,
    cache_hits: AtomicU64,
    recorder: Option<Recorder>,
}

/// Where the client keeps replies ([`Cache`]).
#[derive(Debug)]
enum ReplyStore {
    Off,
    Memory(Mutex<ReplyCache>),
    Disk(PathBuf),
}

/// The largest file a disk cache ([`Cache::disk`]) reads as a reply (twice the largest reply
/// of an endpoint, JSON-escaped); a larger one is a miss, overwritten by the next reply.
pub const MAX_LM_CACHE_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug)]
enum Backend {
    Scripted(ScriptedLm),
    Replay(Player),
    #[cfg(feature = "lm")]
    OpenAi(Endpoint),
}

impl LmClient {
    /// A client for `config`; an error if the configuration is out of its bounds, is a
    /// `dspy.LM` model string (python steps only), or names an API key variable that is not
    /// set.
    pub fn new(config: LmConfig) -> Result<Self> {
        config.check()?;
        let recorder = match &config.tape {
            Some(Tape::Record(path)) => Some(Recorder::open(path)?),
            _ => None,
        };
        let backend = match (&config.tape, config.kind) {
            (Some(Tape::Replay(path)), _) => Backend::Replay(Player::load(path)?),
            (_, LmKind::Scripted) => Backend::Scripted(ScriptedLm::new(&config)),
            #[cfg(feature = "lm")]
            (_, LmKind::OpenAi) => Backend::OpenAi(Endpoint::new(&config)?),
            #[cfg(not(feature = "lm"))]
            (_, LmKind::OpenAi) => {
                return Err(Error::lm(format!(
                    "LmConfig::openai(\"{}\", ..) is called from Rust by dspex's `lm` feature, which this build leaves out; enable it, or give native steps LmConfig::scripted()",
                    dspex_core::excerpt(&config.base_url)
                )));
            }
            (_, LmKind::Model) => {
                return Err(Error::lm(format!(
                    "LmConfig::model(\"{}\") is a dspy.LM model string, for python steps only; native LM steps need LmConfig::scripted() or LmConfig::openai(base_url, model)",
                    dspex_core::excerpt(&config.model)
                )));
            }
        };
        let cache = match &config.cache {
            Cache::Off => ReplyStore::Off,
            Cache::Memory(capacity) => ReplyStore::Memory(Mutex::new(ReplyCache {
                capacity: *capacity,
                ..ReplyCache::default()
            })),
            Cache::Disk(dir) => ReplyStore::Disk(dir.join("native")),
        };
        Ok(Self {
            gate: Gate::new(config.max_concurrent),
            config,
            backend,
            cache,
            cache_hits: AtomicU64::new(0),
            recorder,
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
        body.extend(bound_settings(request));
        JsonValue::Object(body)
    }

    /// `request` as a recording keys it: the model and settings it binds, and its messages.
    fn recorded(&self, request: &LmRequest) -> JsonValue {
        let settings = bound_settings(request).collect();
        recorded_request(request.model.as_deref(), &json!(request.messages), settings)
    }

    fn model<'r>(&'r self, request: &'r LmRequest) -> &'r str {
        request.model.as_deref().unwrap_or(&self.config.model)
    }

    /// Sends `request` (or answers it from the cache) and returns the first choice's text.
    pub async fn complete(&self, request: &LmRequest) -> Result<LmResponse> {
        self.spanned(request, None).await
    }

    /// Sends `request` asking for a stream and hands the text to `on_text` as it arrives (an
    /// OpenAI-compatible endpoint: as the server sends it; the scripted LM: in the deltas of
    /// [`LmConfig::scripted_deltas`], else at once; a cached or replayed reply: at once);
    /// returns the whole reply as [`complete`](Self::complete) does. Retries happen only
    /// before any text came.
    pub async fn complete_streamed(
        &self,
        request: &LmRequest,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<LmResponse> {
        self.spanned(request, Some(on_text)).await
    }

    /// One LM call, in its `chat {model}` span.
    async fn spanned(
        &self,
        request: &LmRequest,
        on_text: Option<&mut (dyn FnMut(&str) + Send)>,
    ) -> Result<LmResponse> {
        let mut span = OpenSpan::chat(self.config.kind.provider_name(), self.model(request));
        let outcome = self.respond(request, on_text).await;
        match &outcome {
            Ok(response) => {
                span.record_lm_call(&response.call, || json!(request.messages), &response.text);
            }
            Err(e) => span.record_error(e),
        }
        outcome
    }

    async fn respond(
        &self,
        request: &LmRequest,
        on_text: Option<&mut (dyn FnMut(&str) + Send)>,
    ) -> Result<LmResponse> {
        let body = self.body(request);
        let key = (!matches!(self.cache, ReplyStore::Off)).then(|| cache_key(&body, request));
        if let Some(key) = &key
            && let Some(hit) = self.cached(key)
        {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            if let Some(on_text) = on_text {
                on_text(&hit.text);
            }
            let mut response = LmResponse {
                cached: true,
                ..hit
            };
            self.capture(request, &mut response);
            return Ok(response);
        }
        let mut call = LmCall {
            model: self.model(request).to_owned(),
            temperature: body.get("temperature").and_then(JsonValue::as_f64),
            max_tokens: body.get("max_tokens").and_then(JsonValue::as_i64),
            top_p: body.get("top_p").and_then(JsonValue::as_f64),
            n: body.get("n").and_then(JsonValue::as_i64),
            prompt_tokens: None,
            completion_tokens: None,
            exchange: None,
        };
        let text = match &self.backend {
            Backend::Replay(player) => {
                let reply = player.reply(&self.recorded(request))?;
                call.prompt_tokens = reply.prompt_tokens;
                call.completion_tokens = reply.completion_tokens;
                if let Some(on_text) = on_text {
                    on_text(&reply.text);
                }
                reply.text
            }
            Backend::Scripted(lm) => {
                let _slot = self.gate.enter().await?;
                if !self.config.delay.is_zero() {
                    tokio::time::sleep(self.config.delay).await;
                }
                let reply = lm.answer(&request.messages);
                call.prompt_tokens = Some(reply.prompt_words);
                call.completion_tokens = Some(reply.answer_words);
                if let Some(on_text) = on_text {
                    lm.stream(&reply.text, on_text).await;
                }
                reply.text
            }
            #[cfg(feature = "lm")]
            Backend::OpenAi(endpoint) => match on_text {
                Some(on_text) => {
                    endpoint
                        .stream(body, &mut call, &self.gate, &self.config, on_text)
                        .await?
                }
                None => {
                    endpoint
                        .complete(&body, &mut call, &self.gate, &self.config)
                        .await?
                }
            },
        };
        if let Some(recorder) = &self.recorder {
            let reply = TapeReply {
                text: text.clone(),
                prompt_tokens: call.prompt_tokens,
                completion_tokens: call.completion_tokens,
            };
            recorder.append(Lane::Native, self.recorded(request), reply)?;
        }
        let response = LmResponse {
            text,
            call,
            cached: false,
        };
        if let Some(key) = key {
            self.keep(key, &response)?;
        }
        let mut response = response;
        self.capture(request, &mut response);
        Ok(response)
    }

    /// Keeps the request's messages and the reply in the response's call, when the
    /// configuration captures them.
    fn capture(&self, request: &LmRequest, response: &mut LmResponse) {
        if !self.config.capture {
            return;
        }
        let messages = request.messages.iter().map(|m| LmMessage {
            role: m.role.clone(),
            content: m.content.clone(),
        });
        response.call.exchange = Some(LmExchange {
            messages: messages.collect(),
            reply: response.text.clone(),
        });
    }

    /// The reply kept for `key`, if any (a disk file that cannot be read is a miss).
    fn cached(&self, key: &str) -> Option<LmResponse> {
        match &self.cache {
            ReplyStore::Off => None,
            ReplyStore::Memory(cache) => cache.lock().get(key),
            ReplyStore::Disk(dir) => read_reply(&reply_path(dir, key), key),
        }
    }

    /// Keeps `response` for `key`; a disk cache that cannot be written is an error naming the
    /// file.
    fn keep(&self, key: String, response: &LmResponse) -> Result<()> {
        match &self.cache {
            ReplyStore::Off => Ok(()),
            ReplyStore::Memory(cache) => {
                cache.lock().insert(key, response.clone());
                Ok(())
            }
            ReplyStore::Disk(dir) => write_reply(dir, &key, response),
        }
    }
}

/// The file of the reply to `key` in a disk cache: a 64-bit FNV-1a hash of the request (the
/// file holds the request too, so that a collision is a miss, not a wrong answer).
fn reply_path(dir: &Path, key: &str) -> PathBuf {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    dir.join(format!("{hash:016x}.json"))
}

fn read_reply(path: &Path, key: &str) -> Option<LmResponse> {
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(MAX_LM_CACHE_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .ok()?;
    if text.len() as u64 > MAX_LM_CACHE_FILE_BYTES {
        return None;
    }
    let entry: JsonValue = serde_json::from_str(&text).ok()?;
    if entry.get("request")?.as_str()? != key {
        return None;
    }
    let request: JsonValue = serde_json::from_str(key).ok()?;
    let tokens = |name: &str| entry.get(name).and_then(JsonValue::as_u64);
    Some(LmResponse {
        text: entry.get("text")?.as_str()?.to_owned(),
        call: LmCall {
            model: request.get("model")?.as_str()?.to_owned(),
            temperature: request.get("temperature").and_then(JsonValue::as_f64),
            max_tokens: request.get("max_tokens").and_then(JsonValue::as_i64),
            top_p: request.get("top_p").and_then(JsonValue::as_f64),
            n: request.get("n").and_then(JsonValue::as_i64),
            prompt_tokens: tokens("prompt_tokens"),
            completion_tokens: tokens("completion_tokens"),
            exchange: None,
        },
        cached: true,
    })
}

/// Writes the reply to a temporary file, then renames it into place: a concurrent reader sees
/// the whole entry or none.
fn write_reply(dir: &Path, key: &str, response: &LmResponse) -> Result<()> {
    let path = reply_path(dir, key);
    let entry = json!({
        "request": key,
        "text": response.text,
        "prompt_tokens": response.call.prompt_tokens,
        "completion_tokens": response.call.completion_tokens,
    });
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let temporary = path.with_extension(format!(
        "{}-{}.tmp",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let failed = |e: std::io::Error| {
        Error::lm_with(
            format!("the LM cache file {} could not be written", path.display()),
            e,
        )
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    std::fs::write(&temporary, entry.to_string()).map_err(failed)?;
    std::fs::rename(&temporary, &path).map_err(failed)
}

/// The settings `request` sets itself.
/// The cache key of `request` (sent as `body`): the body, and its rollout if it has one.
fn cache_key(body: &JsonValue, request: &LmRequest) -> String {
    match request.rollout_id {
        Some(rollout) => json!({ "body": body, "rollout_id": rollout }).to_string(),
        None => body.to_string(),
    }
}

fn bound_settings(request: &LmRequest) -> impl Iterator<Item = (String, JsonValue)> {
    [
        ("temperature", request.temperature.map(JsonValue::from)),
        ("max_tokens", request.max_tokens.map(JsonValue::from)),
        ("top_p", request.top_p.map(JsonValue::from)),
        ("n", request.n.map(JsonValue::from)),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
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

    #[tokio::test]
    async fn a_rollout_is_answered_by_the_lm_not_by_a_reply_cached_for_another() {
        let lm = LmClient::new(LmConfig::scripted().cache(Cache::memory(8))).unwrap();
        let request = |rollout_id| LmRequest {
            messages: vec![ChatMessage {
                role: "user".to_owned(),
                content: "What is 2+2?".to_owned(),
            }],
            temperature: Some(1.0),
            rollout_id,
            ..LmRequest::default()
        };
        for rollout in [None, Some(1), Some(2), Some(1), None] {
            lm.complete(&request(rollout)).await.unwrap();
        }
        // Three distinct rollouts (none, 1, 2) went out; the repeats of 1 and none were cached.
        assert_eq!((lm.requests_sent(), lm.cache_hits()), (3, 2));
    }

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
                exchange: None,
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
    fn a_disk_cache_answers_its_own_request_only_and_ignores_files_over_the_limit() {
        let dir = std::env::temp_dir().join(format!("dspex-lm-cache-{}", std::process::id()));
        let reply = LmResponse {
            text: "Paris".to_owned(),
            call: LmCall {
                model: "m".into(),
                temperature: Some(0.5),
                max_tokens: None,
                top_p: None,
                n: None,
                prompt_tokens: Some(7),
                completion_tokens: Some(1),
                exchange: None,
            },
            cached: false,
        };
        let key = r#"{"messages":[],"model":"m","temperature":0.5}"#;
        write_reply(&dir, key, &reply).unwrap();
        let hit = read_reply(&reply_path(&dir, key), key).unwrap();
        assert_eq!((hit.text.as_str(), hit.cached), ("Paris", true));
        assert_eq!(hit.call, reply.call);
        // Another request whose file name were the same is a miss, not a wrong answer.
        assert!(read_reply(&reply_path(&dir, key), r#"{"model":"m"}"#).is_none());
        // At the limit a file is read; over it, it is not.
        let padded = |len: usize| {
            let entry = json!({"request": key, "text": "Paris"}).to_string();
            let mut text = entry.clone();
            text.push_str(&" ".repeat(len - entry.len()));
            std::fs::write(reply_path(&dir, key), text).unwrap();
        };
        let limit = usize::try_from(MAX_LM_CACHE_FILE_BYTES).unwrap();
        padded(limit);
        assert!(read_reply(&reply_path(&dir, key), key).is_some());
        padded(limit + 1);
        assert!(read_reply(&reply_path(&dir, key), key).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
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
