//! [`LmConfig`]: which LM a context's steps call, native and python alike, and the bounds of
//! the Rust client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value as Json};

use super::tape::{Player, Recorder, Tape};
use crate::error::{Error, Result};

/// The longest per-call delay of the scripted LM ([`LmConfig::delay`]).
pub const MAX_SCRIPTED_DELAY: Duration = Duration::from_secs(600);

/// How long one request to an OpenAI-compatible endpoint may take unless
/// [`LmConfig::timeout`] says otherwise.
pub const DEFAULT_LM_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest [`LmConfig::timeout`].
pub const MAX_LM_TIMEOUT: Duration = Duration::from_secs(600);

/// How many times a request that got 429 or a 5xx is retried unless
/// [`LmConfig::max_retries`] says otherwise.
pub const DEFAULT_LM_RETRIES: u32 = 3;

/// The most retries [`LmConfig::max_retries`] takes.
pub const MAX_LM_RETRIES: u32 = 10;

/// The wait before the first retry unless [`LmConfig::retry_backoff`] says otherwise; it
/// doubles with every retry, up to [`MAX_LM_BACKOFF`].
pub const DEFAULT_LM_BACKOFF: Duration = Duration::from_millis(500);

/// The longest wait between two attempts, whatever the backoff or a `Retry-After` header asks
/// for (a longer `Retry-After` is waited for this long).
pub const MAX_LM_BACKOFF: Duration = Duration::from_secs(30);

/// How many requests the Rust client has in flight at once unless
/// [`LmConfig::max_concurrent_requests`] says otherwise; further requests wait their turn.
pub const DEFAULT_LM_CONCURRENCY: usize = 32;

/// The most requests [`LmConfig::max_concurrent_requests`] allows in flight.
pub const MAX_LM_CONCURRENCY: usize = 1024;

/// The most replies a memory cache ([`Cache::memory`]) keeps; the oldest go first.
pub const MAX_LM_CACHE_ENTRIES: usize = 100_000;

/// Where the LM replies of both lanes are cached ([`LmConfig::cache`]): nowhere (the default,
/// so that every run, evaluation and tuning trial measures the LM and not a cache), in the
/// process's memory, or on disk in a directory you name. The python lane configures DSPy's
/// cache from it (`dspy.configure_cache`), so a worker never writes DSPy's default cache
/// directory (`~/.dspy_cache`).
///
/// A request is answered from the cache when it equals an earlier one: same model, messages
/// and settings. Each lane keeps its own entries (a disk cache holds the native lane's in
/// `native/` and DSPy's in `dspy/` under the directory): a reply cached by a python step does
/// not answer a native one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Cache {
    /// No cache: every request goes to the LM.
    #[default]
    Off,
    /// At most this many replies per lane, in memory, for the life of the process (the
    /// context's LM client, the worker process); the oldest go first.
    Memory(usize),
    /// Replies on disk under this directory, kept across processes; created when needed.
    Disk(PathBuf),
}

impl Cache {
    /// No cache (the default).
    pub fn off() -> Self {
        Self::Off
    }

    /// At most `entries` replies per lane in memory (1 to [`MAX_LM_CACHE_ENTRIES`]).
    pub fn memory(entries: usize) -> Self {
        Self::Memory(entries)
    }

    /// Replies on disk under `dir`, kept across processes.
    pub fn disk(dir: impl AsRef<Path>) -> Self {
        Self::Disk(dir.as_ref().to_path_buf())
    }
}

/// The LM every step of a context calls: python steps through the context's worker (DSPy),
/// native [`Predict`](crate::Predict) and [`ChainOfThought`](crate::ChainOfThought)
/// steps from Rust. Set it with `Context::builder().lm(config)`; a bound `model` variable
/// selects among models of the same kind.
///
/// - [`LmConfig::scripted`] (the default): an offline LM that answers every signature. Both
///   lanes answer alike from the same configuration: scripted answers in order, then the first
///   rule whose needle the prompt contains, then a generated answer of the right type for each
///   output field. In the worker it is DSPy's own `DummyLM`.
/// - [`LmConfig::openai`]: an OpenAI-compatible chat completions endpoint, `base_url` being the
///   API root (`http://127.0.0.1:8000/v1`: requests go to `{base_url}/chat/completions`), the
///   key read from the environment variable [`api_key_env`](Self::api_key_env) names (no key is
///   sent when none is named; the worker, whose DSPy refuses an empty key, sends the placeholder
///   `dspex-no-key` then). The worker reaches it through
///   `dspy.LM("openai/<model>", api_base=base_url)`.
/// - [`LmConfig::model`]: any model string `dspy.LM` accepts (`"anthropic/claude-3-haiku-20240307"`),
///   for python steps only: a native LM step on such a context is an [`Error::Lm`] saying so.
///
/// ```
/// use dspex::LmConfig;
///
/// let offline = LmConfig::scripted()
///     .answer([("answer", "Paris")])
///     .rule("capital of Italy", [("answer", "Rome")]);
/// let endpoint = LmConfig::openai("http://127.0.0.1:8000/v1", "gpt-4o-mini")
///     .api_key_env("OPENAI_API_KEY")
///     .setting("temperature", 0.2)
///     .cache(dspex::lm::Cache::memory(1_000));
/// let python_only = LmConfig::model("anthropic/claude-3-haiku-20240307");
/// # let _ = (offline, endpoint, python_only);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LmConfig {
    pub(crate) kind: LmKind,
    pub(crate) model: String,
    pub(crate) answers: Vec<BTreeMap<String, String>>,
    /// In the order they were given: the first whose needle a prompt contains answers it.
    pub(crate) rules: Vec<(String, BTreeMap<String, String>)>,
    pub(crate) settings: Map<String, Json>,
    pub(crate) delay: Duration,
    /// Scripted LM: a streamed reply's delta size in characters and the wait before each.
    pub(crate) deltas: Option<(usize, Duration)>,
    pub(crate) base_url: String,
    pub(crate) api_key_env: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
    pub(crate) backoff: Duration,
    pub(crate) max_concurrent: usize,
    pub(crate) cache: Cache,
    pub(crate) tape: Option<Tape>,
    pub(crate) capture: bool,
}

/// The kinds of LM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LmKind {
    Scripted,
    OpenAi,
    Model,
}

impl LmKind {
    /// The `gen_ai.provider.name` of an LM call of this kind.
    pub(crate) fn provider_name(self) -> &'static str {
        match self {
            LmKind::Scripted => "dspex.scripted",
            LmKind::OpenAi => "openai",
            LmKind::Model => "litellm",
        }
    }
}

impl Default for LmConfig {
    fn default() -> Self {
        Self::scripted()
    }
}

impl LmConfig {
    /// The offline scripted LM (model name `scripted`). Without answers or rules it generates a
    /// deterministic answer of the right shape for each output field.
    pub fn scripted() -> Self {
        Self {
            kind: LmKind::Scripted,
            model: "scripted".to_owned(),
            answers: Vec::new(),
            rules: Vec::new(),
            settings: Map::new(),
            delay: Duration::ZERO,
            deltas: None,
            base_url: String::new(),
            api_key_env: None,
            timeout: DEFAULT_LM_TIMEOUT,
            max_retries: DEFAULT_LM_RETRIES,
            backoff: DEFAULT_LM_BACKOFF,
            max_concurrent: DEFAULT_LM_CONCURRENCY,
            cache: Cache::Off,
            tape: None,
            capture: false,
        }
    }

    /// An OpenAI-compatible chat completions endpoint: `base_url` is the API root
    /// (`https://api.openai.com/v1`), `model` the model of calls that bind none.
    pub fn openai(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            kind: LmKind::OpenAi,
            model: model.into(),
            base_url: base_url.into(),
            ..Self::scripted()
        }
    }

    /// Python steps only: any model string `dspy.LM` accepts, with the provider's API key in
    /// the worker's environment as LiteLLM expects it.
    pub fn model(model: impl Into<String>) -> Self {
        Self {
            kind: LmKind::Model,
            model: model.into(),
            ..Self::scripted()
        }
    }

    /// The default model name (for the scripted LM, the name its calls record).
    #[must_use]
    pub fn default_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Scripted LM: the next call's answer, one value per output field; answers are used in
    /// order, one per LM call, before rules and generated answers.
    #[must_use]
    pub fn answer<K: Into<String>, V: Into<String>>(
        mut self,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.answers.push(collect_fields(fields));
        self
    }

    /// Scripted LM: the answer of any call whose prompt (its last message) contains `needle`,
    /// or, when no rule's needle is in the last message, whose system message (with the
    /// step's instructions) does. Rules are tried in the order they were given (a rule for a needle given before replaces
    /// it in place).
    #[must_use]
    pub fn rule<K: Into<String>, V: Into<String>>(
        mut self,
        needle: impl Into<String>,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let needle = needle.into();
        let fields = collect_fields(fields);
        match self.rules.iter_mut().find(|(n, _)| *n == needle) {
            Some((_, existing)) => *existing = fields,
            None => self.rules.push((needle, fields)),
        }
        self
    }

    /// Scripted LM: makes every `ReAct` agent of the worker call `calls` in order, one per
    /// iteration (each a tool name and its JSON arguments), then finish, and answer with
    /// `answer` (one value per output field of the agent's signature). Written as rules on the
    /// agent's trajectory (given before any other rule).
    ///
    /// ```
    /// use dspex::LmConfig;
    ///
    /// let lm = LmConfig::scripted().agent_plan(
    ///     [("search_docs", dspex::json!({"query": "tokio"})), ("calculator", dspex::json!({"expression": "2 + 2"}))],
    ///     [("answer", "4")],
    /// );
    /// # let _ = lm;
    /// ```
    #[must_use]
    pub fn agent_plan<'a, K: Into<String>, V: Into<String>>(
        mut self,
        calls: impl IntoIterator<Item = (&'a str, Json)>,
        answer: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let calls: Vec<(&str, Json)> = calls.into_iter().collect();
        let n = calls.len();
        let step = |tool: &str, args: &Json| {
            BTreeMap::from([
                ("next_thought".to_owned(), format!("call {tool}")),
                ("next_tool_name".to_owned(), tool.to_owned()),
                ("next_tool_args".to_owned(), args.to_string()),
            ])
        };
        // The trajectory after the k-th call names tool_name_{k-1}; before any, it is empty.
        let after = |k: usize| {
            if k == 0 {
                "[[ ## trajectory ## ]]".to_owned()
            } else {
                format!("[[ ## tool_name_{} ## ]]", k - 1)
            }
        };
        // The most advanced trajectory first: its needle is in every later prompt too.
        let mut answer = collect_fields(answer);
        answer.insert("reasoning".to_owned(), "the tools answered".to_owned());
        let mut rules = vec![(format!("[[ ## tool_name_{n} ## ]]"), answer)];
        rules.push((after(n), step("finish", &Json::Object(Map::new()))));
        for k in (0..n).rev() {
            rules.push((after(k), step(calls[k].0, &calls[k].1)));
        }
        rules.retain(|(needle, _)| !self.rules.iter().any(|(n, _)| n == needle));
        rules.append(&mut self.rules);
        self.rules = rules;
        self
    }

    /// A default request setting of the LM (`temperature`, `max_tokens`, ...), or, for a
    /// python step's `dspy.LM`, any other keyword argument (`api_base`, ...); bound variables
    /// override the request settings per call. A setting is a float, an integer, a string, a
    /// boolean or a list of strings; any other value is an error when the worker starts.
    #[must_use]
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<Json>) -> Self {
        self.settings.insert(key.into(), value.into());
        self
    }

    /// Scripted LM: how long every LM request takes (default: no time at all), to stand in for
    /// a real LM in benchmarks and tests; at most [`MAX_SCRIPTED_DELAY`].
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Scripted LM: a streamed request (a program's `stream`) gets its reply in deltas of
    /// `chars` characters (at least 1), each `gap` after the one before (at most
    /// [`MAX_SCRIPTED_DELAY`]); by default the whole reply comes at once, one chunk per
    /// output field.
    #[must_use]
    pub fn scripted_deltas(mut self, chars: usize, gap: Duration) -> Self {
        self.deltas = Some((chars, gap));
        self
    }

    /// OpenAI-compatible endpoint: the environment variable that holds the API key (sent as
    /// `Authorization: Bearer <key>`); without it no key is sent. The variable is read when
    /// the client is built, and a variable that is not set is an error then.
    #[must_use]
    pub fn api_key_env(mut self, variable: impl Into<String>) -> Self {
        self.api_key_env = Some(variable.into());
        self
    }

    /// How long one request may take (default [`DEFAULT_LM_TIMEOUT`], at most
    /// [`MAX_LM_TIMEOUT`]); a request that times out is not retried.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a request that got 429 or a 5xx is retried (default
    /// [`DEFAULT_LM_RETRIES`], at most [`MAX_LM_RETRIES`]).
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The wait before the first retry (default [`DEFAULT_LM_BACKOFF`]), doubled for each
    /// further one; a `Retry-After` header wins over it; neither waits more than
    /// [`MAX_LM_BACKOFF`].
    #[must_use]
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Rust client: how many requests may be in flight at once (default
    /// [`DEFAULT_LM_CONCURRENCY`], 1 to [`MAX_LM_CONCURRENCY`]).
    #[must_use]
    pub fn max_concurrent_requests(mut self, requests: usize) -> Self {
        self.max_concurrent = requests;
        self
    }

    /// Where both lanes cache LM replies: [`Cache::off`] (the default), [`Cache::memory`] or
    /// [`Cache::disk`]. A request equal to an earlier one (same model, messages and settings)
    /// is answered from the cache without calling the LM.
    #[must_use]
    pub fn cache(mut self, cache: Cache) -> Self {
        self.cache = cache;
        self
    }

    /// Whether each LM call keeps the messages it sent and the reply it received in the run's
    /// trace ([`LmCall::exchange`](crate::LmCall::exchange)), printed by
    /// [`RunTrace::inspect_history`](crate::RunTrace::inspect_history), as DSPy's
    /// `inspect_history` does: native steps' calls as the Rust client sent them, python steps'
    /// as the worker's `dspy.LM` sent them (the worker sends them back with the call). Off by
    /// default, at no cost (the worker captures and sends nothing); a run keeps at most
    /// [`MAX_CAPTURED_CALLS_PER_RUN`](crate::MAX_CAPTURED_CALLS_PER_RUN) exchanges of at most
    /// [`MAX_CAPTURED_BYTES_PER_RUN`](crate::MAX_CAPTURED_BYTES_PER_RUN) bytes in all, and a
    /// python step's call sends no more than that.
    #[must_use]
    pub fn capture_messages(mut self, capture: bool) -> Self {
        self.capture = capture;
        self
    }

    /// `inner`, with every LM request of both lanes and its reply appended to the file at
    /// `path` (created if missing), one JSON object per line: native steps' requests as the
    /// Rust client makes them, python steps' as the worker's `dspy.LM` makes them. A request is
    /// recorded as the program made it (the model and settings the call bound, and the
    /// messages), so [`replay`](Self::replay) answers it whatever configuration recorded it.
    /// The file is opened when the context is built (an error then if it cannot be); a line
    /// longer than [`MAX_LM_TAPE_LINE_BYTES`](super::MAX_LM_TAPE_LINE_BYTES) is refused
    /// (the call fails).
    ///
    /// ```
    /// use dspex::LmConfig;
    ///
    /// let lm = LmConfig::record(LmConfig::openai("http://127.0.0.1:8000/v1", "gpt-4o-mini"), "lm.jsonl");
    /// # let _ = lm;
    /// ```
    pub fn record(inner: LmConfig, path: impl Into<PathBuf>) -> Self {
        let tape = match inner.tape {
            None => Tape::Record(path.into()),
            Some(_) => Tape::Nested,
        };
        Self {
            tape: Some(tape),
            ..inner
        }
    }

    /// An LM that answers from a file [`record`](Self::record) wrote, in both lanes, with no
    /// network: a request equal to a recorded one (same model, messages and settings) gets its
    /// recorded reply (equal requests recorded several times get their replies in order, then
    /// the last one again), and any other request is an [`Error::Lm`] naming the file and the
    /// request. The file is read when the context is built: a missing file, one over
    /// [`MAX_LM_TAPE_BYTES`](super::MAX_LM_TAPE_BYTES) or with more than
    /// [`MAX_LM_TAPE_ENTRIES`](super::MAX_LM_TAPE_ENTRIES) exchanges, and a truncated,
    /// corrupt or over-long line (named by its number) are errors then.
    pub fn replay(path: impl Into<PathBuf>) -> Self {
        Self {
            model: "replay".to_owned(),
            tape: Some(Tape::Replay(path.into())),
            ..Self::scripted()
        }
    }

    /// Opens the file of [`record`](Self::record) or reads that of [`replay`](Self::replay),
    /// so that a file error surfaces when a context is built.
    pub(crate) fn check_tape(&self) -> Result<()> {
        match &self.tape {
            Some(Tape::Record(path)) => Recorder::open(path).map(drop),
            Some(Tape::Replay(path)) => Player::load(path).map(drop),
            Some(Tape::Nested) | None => Ok(()),
        }
    }

    /// The cache setting.
    pub fn cache_setting(&self) -> &Cache {
        &self.cache
    }

    /// The model of calls that bind none.
    pub fn model_name(&self) -> &str {
        &self.model
    }

    /// Whether native (Rust) steps can call this LM: the scripted LM and OpenAI-compatible
    /// endpoints can, a `dspy.LM` model string cannot.
    pub fn is_native(&self) -> bool {
        self.kind != LmKind::Model
    }

    /// Checks the bounds: the scripted delay, the timeout, the retries, the concurrency limit,
    /// the cache size, and an endpoint's URL.
    pub fn check(&self) -> Result<()> {
        let bound = |what: &str, problem: String| {
            Err(Error::InvalidOption {
                option: format!("LmConfig::{what}"),
                message: problem,
            })
        };
        if self.delay > MAX_SCRIPTED_DELAY {
            return bound(
                "delay",
                format!(
                    "the scripted LM's delay of {:?} is over the limit of {MAX_SCRIPTED_DELAY:?} (MAX_SCRIPTED_DELAY)",
                    self.delay
                ),
            );
        }
        if let Some((chars, gap)) = self.deltas
            && (chars == 0 || gap > MAX_SCRIPTED_DELAY)
        {
            return bound(
                "scripted_deltas",
                format!(
                    "deltas of {chars} characters, {gap:?} apart: a delta holds at least 1 character and waits at most {MAX_SCRIPTED_DELAY:?} (MAX_SCRIPTED_DELAY)"
                ),
            );
        }
        if self.timeout.is_zero() || self.timeout > MAX_LM_TIMEOUT {
            return bound(
                "timeout",
                format!(
                    "{:?} is outside (0, {MAX_LM_TIMEOUT:?}] (MAX_LM_TIMEOUT)",
                    self.timeout
                ),
            );
        }
        if self.max_retries > MAX_LM_RETRIES {
            return bound(
                "max_retries",
                format!(
                    "{} is over the limit of {MAX_LM_RETRIES} (MAX_LM_RETRIES)",
                    self.max_retries
                ),
            );
        }
        if !(1..=MAX_LM_CONCURRENCY).contains(&self.max_concurrent) {
            return bound(
                "max_concurrent_requests",
                format!(
                    "{} is outside 1..={MAX_LM_CONCURRENCY} (MAX_LM_CONCURRENCY)",
                    self.max_concurrent
                ),
            );
        }
        match &self.cache {
            Cache::Memory(entries) if !(1..=MAX_LM_CACHE_ENTRIES).contains(entries) => {
                return bound(
                    "cache",
                    format!(
                        "Cache::memory({entries}) is outside 1..={MAX_LM_CACHE_ENTRIES} entries (MAX_LM_CACHE_ENTRIES)"
                    ),
                );
            }
            Cache::Disk(dir) if dir.as_os_str().is_empty() => {
                return bound(
                    "cache",
                    "Cache::disk needs a directory (like `Cache::disk(\"lm-cache\")`)".to_owned(),
                );
            }
            _ => {}
        }
        if self.settings.contains_key("cache") {
            return bound(
                "setting",
                "`cache` is not a setting: LmConfig::cache(Cache::off() | Cache::memory(n) | Cache::disk(dir)) sets the cache of both lanes".to_owned(),
            );
        }
        if self.kind == LmKind::OpenAi
            && !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://"))
        {
            return bound(
                "openai",
                format!(
                    "base_url `{}` is no http:// or https:// URL (like `http://127.0.0.1:8000/v1`)",
                    dspex_core::excerpt(&self.base_url)
                ),
            );
        }
        if self.tape == Some(Tape::Nested) {
            return bound(
                "record",
                "the LM it records is itself recorded or replayed; record a plain LM configuration"
                    .to_owned(),
            );
        }
        if self.kind != LmKind::Scripted && self.model.is_empty() {
            return bound(
                "model",
                "a real LM needs a model name (like `gpt-4o-mini`)".to_owned(),
            );
        }
        Ok(())
    }
}

fn collect_fields<K: Into<String>, V: Into<String>>(
    fields: impl IntoIterator<Item = (K, V)>,
) -> BTreeMap<String, String> {
    fields
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bound_is_checked_at_and_over_its_limit() {
        let ok = LmConfig::openai("https://example.com/v1", "m");
        assert!(ok.clone().timeout(MAX_LM_TIMEOUT).check().is_ok());
        let over = ok
            .clone()
            .timeout(MAX_LM_TIMEOUT + Duration::from_millis(1));
        assert!(
            over.check()
                .unwrap_err()
                .to_string()
                .contains("MAX_LM_TIMEOUT")
        );
        assert!(ok.clone().timeout(Duration::ZERO).check().is_err());
        assert!(ok.clone().max_retries(MAX_LM_RETRIES).check().is_ok());
        let err = ok
            .clone()
            .max_retries(MAX_LM_RETRIES + 1)
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("MAX_LM_RETRIES"), "{err}");
        assert!(
            ok.clone()
                .max_concurrent_requests(MAX_LM_CONCURRENCY)
                .check()
                .is_ok()
        );
        let err = ok
            .clone()
            .max_concurrent_requests(MAX_LM_CONCURRENCY + 1)
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("MAX_LM_CONCURRENCY"), "{err}");
        assert!(ok.clone().max_concurrent_requests(0).check().is_err());
        let cache = |c: Cache| ok.clone().cache(c).check();
        assert!(cache(Cache::memory(MAX_LM_CACHE_ENTRIES)).is_ok());
        let err = cache(Cache::memory(MAX_LM_CACHE_ENTRIES + 1)).unwrap_err();
        assert!(err.to_string().contains("MAX_LM_CACHE_ENTRIES"), "{err}");
        assert!(cache(Cache::memory(0)).is_err());
        assert!(cache(Cache::disk("")).is_err());
        assert!(cache(Cache::disk("lm-cache")).is_ok());
        assert_eq!(LmConfig::scripted().cache_setting(), &Cache::Off);
        let err = ok.clone().setting("cache", false).check().unwrap_err();
        assert!(err.to_string().contains("LmConfig::cache("), "{err}");
        let err = LmConfig::openai("127.0.0.1:8000", "m").check().unwrap_err();
        assert!(
            err.to_string().contains("no http:// or https:// URL"),
            "{err}"
        );
        let err = LmConfig::openai("http://h/v1", "").check().unwrap_err();
        assert!(err.to_string().contains("needs a model name"), "{err}");
    }
}
