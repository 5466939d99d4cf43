//! How a context's Python workers are started: the interpreter, the LM, how many processes and
//! how many calls each runs at once, the time limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value as Json};

use crate::bridge::convert::config_to_proto;
use crate::bridge::proto as pb;
use crate::error::{Error, Result};

/// The environment variable naming the Python interpreter (else `python3`).
pub const ENV_PYTHON: &str = "DSPEX_PYTHON";

/// Calls one worker process runs at once unless [`WorkerConfig::max_concurrent_calls`] says
/// otherwise.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 64;

/// The most calls one worker process may be configured to run at once (each runs in a thread
/// of its own).
pub const MAX_CONCURRENT_CALLS: usize = 512;

/// The most worker processes a context may start ([`WorkerConfig::processes`]).
pub const MAX_WORKER_PROCESSES: usize = 16;

/// The longest per-call delay of the scripted LM ([`LmConfig::delay`]).
pub const MAX_SCRIPTED_DELAY: Duration = Duration::from_secs(600);

/// The LM a context's worker uses for every python step (a bound `model` variable selects
/// among models of the same kind).
///
/// The default is [`LmConfig::scripted`]: DSPy's own `DummyLM`, answering every signature
/// offline and recording the settings of each call in its history. For real use, any model
/// string `dspy.LM` accepts works (`"openai/gpt-4o-mini"`, `"anthropic/claude-3-haiku-20240307"`,
/// ...), with the provider's API key in the worker's environment as LiteLLM expects it.
///
/// ```
/// use dspex::worker::LmConfig;
///
/// let offline = LmConfig::scripted()
///     .answer([("answer", "Paris")])
///     .rule("capital of Italy", [("answer", "Rome")]);
/// let real = LmConfig::model("openai/gpt-4o-mini").setting("temperature", 0.2);
/// # let _ = (offline, real);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LmConfig {
    kind: LmKind,
    model: String,
    answers: Vec<BTreeMap<String, String>>,
    /// In the order they were given: the first whose needle a prompt contains answers it.
    rules: Vec<(String, BTreeMap<String, String>)>,
    settings: Map<String, Json>,
    delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LmKind {
    Scripted,
    Model,
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
        }
    }

    /// A real LM: any model string `dspy.LM` accepts.
    pub fn model(model: impl Into<String>) -> Self {
        Self {
            kind: LmKind::Model,
            model: model.into(),
            ..Self::scripted()
        }
    }

    /// The default model name (for the scripted LM, the name its history records).
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
        self.answers.push(
            fields
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Scripted LM: the answer of any call whose prompt contains `needle`. Rules are tried in
    /// the order they were given (a rule for a needle given before replaces it in place).
    #[must_use]
    pub fn rule<K: Into<String>, V: Into<String>>(
        mut self,
        needle: impl Into<String>,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let needle = needle.into();
        let fields = fields
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
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
    /// use dspex::worker::LmConfig;
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
        // The most advanced trajectory first: its needle is in every later prompt too.
        let mut rules = vec![(
            format!("[[ ## tool_name_{n} ## ]]"),
            answer
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .chain([("reasoning".to_owned(), "the tools answered".to_owned())])
                .collect(),
        )];
        rules.push((
            if n == 0 {
                "[[ ## trajectory ## ]]".to_owned()
            } else {
                format!("[[ ## tool_name_{} ## ]]", n - 1)
            },
            step("finish", &Json::Object(Map::new())),
        ));
        for k in (0..n).rev() {
            let needle = if k == 0 {
                "[[ ## trajectory ## ]]".to_owned()
            } else {
                format!("[[ ## tool_name_{} ## ]]", k - 1)
            };
            rules.push((needle, step(calls[k].0, &calls[k].1)));
        }
        rules.retain(|(needle, _)| !self.rules.iter().any(|(n, _)| n == needle));
        rules.append(&mut self.rules);
        self.rules = rules;
        self
    }

    /// A default request setting of the LM (`temperature`, `max_tokens`, ...), or any other
    /// keyword argument of `dspy.LM` (`api_base`, ...); bound variables override the request
    /// settings per call. A setting is a float, an integer, a string, a boolean or a list of
    /// strings; any other value is an error when the worker starts.
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

    /// The configuration as the worker receives it.
    pub(crate) fn to_proto(&self) -> Result<pb::LmConfig> {
        let settings = self
            .settings
            .iter()
            .map(|(k, v)| {
                config_to_proto(k, v)
                    .map(|value| (k.clone(), value))
                    .map_err(|e| Error::worker(format!("LM setting {e}")))
            })
            .collect::<Result<_>>()?;
        let kind = match self.kind {
            LmKind::Scripted => {
                if self.delay > MAX_SCRIPTED_DELAY {
                    return Err(Error::worker(format!(
                        "the scripted LM's delay of {:?} is over the limit of {MAX_SCRIPTED_DELAY:?} (MAX_SCRIPTED_DELAY)",
                        self.delay
                    )));
                }
                pb::lm_config::Kind::Scripted(pb::ScriptedLm {
                    default_model: self.model.clone(),
                    answers: self
                        .answers
                        .iter()
                        .map(|fields| pb::ScriptedAnswer {
                            fields: fields.clone().into_iter().collect(),
                        })
                        .collect(),
                    rules: self
                        .rules
                        .iter()
                        .map(|(needle, fields)| pb::ScriptedRule {
                            needle: needle.clone(),
                            fields: fields.clone().into_iter().collect(),
                        })
                        .collect(),
                    settings,
                    delay_ms: u32::try_from(self.delay.as_millis()).unwrap_or(u32::MAX),
                })
            }
            LmKind::Model => pb::lm_config::Kind::Model(pb::ModelLm {
                model: self.model.clone(),
                settings,
            }),
        };
        Ok(pb::LmConfig { kind: Some(kind) })
    }
}

/// How a context starts and watches its Python workers.
///
/// A context runs its python steps in one worker process, or in a pool of
/// [`processes`](Self::processes): every module is created in each of them, and each call goes
/// to the process with the fewest calls in flight. A process runs up to
/// [`max_concurrent_calls`](Self::max_concurrent_calls) calls at once, each in a thread of its
/// own with its own LM settings; further calls wait, in the order they came, until one
/// finishes (or until [`call_timeout`](Self::call_timeout)). Each process is supervised on its
/// own: restarted after a crash with its modules created again, stopped with the context.
///
/// ```
/// use std::time::Duration;
/// use dspex::worker::{LmConfig, WorkerConfig};
///
/// let config = WorkerConfig::default()
///     .python("/opt/venv/bin/python")
///     .lm(LmConfig::scripted())
///     .processes(2)
///     .max_concurrent_calls(32)
///     .ready_timeout(Duration::from_secs(20));
/// assert_eq!(config.interpreter().to_str(), Some("/opt/venv/bin/python"));
/// assert!(config.check().is_ok());
/// assert!(WorkerConfig::default().processes(0).check().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    python: PathBuf,
    lm: LmConfig,
    processes: usize,
    max_concurrent_calls: usize,
    ready_timeout: Duration,
    health_interval: Duration,
    health_timeout: Duration,
    call_timeout: Duration,
    shutdown_grace: Duration,
    env: Vec<(String, String)>,
}

impl Default for WorkerConfig {
    /// The interpreter from `DSPEX_PYTHON`, else `python3`; the scripted LM; one process
    /// running up to [`DEFAULT_MAX_CONCURRENT_CALLS`] calls at once; 60 s to get ready
    /// (importing DSPy takes about a second, more on a loaded machine); a health check every
    /// 5 s, failed if it takes more than 5 s (three failures in a row replace the worker); 10
    /// minutes for one python step; 2 s for each shutdown stage.
    fn default() -> Self {
        Self {
            python: std::env::var_os(ENV_PYTHON)
                .filter(|p| !p.is_empty())
                .map_or_else(|| PathBuf::from("python3"), PathBuf::from),
            lm: LmConfig::default(),
            processes: 1,
            max_concurrent_calls: DEFAULT_MAX_CONCURRENT_CALLS,
            ready_timeout: Duration::from_secs(60),
            health_interval: Duration::from_secs(5),
            health_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(2),
            env: Vec::new(),
        }
    }
}

impl WorkerConfig {
    /// The Python interpreter to run `-m dspex_bridge.worker` with.
    #[must_use]
    pub fn python(mut self, interpreter: impl Into<PathBuf>) -> Self {
        self.python = interpreter.into();
        self
    }

    /// The LM of the worker.
    #[must_use]
    pub fn lm(mut self, lm: LmConfig) -> Self {
        self.lm = lm;
        self
    }

    /// How many worker processes the context starts (1 to [`MAX_WORKER_PROCESSES`]; default 1).
    #[must_use]
    pub fn processes(mut self, processes: usize) -> Self {
        self.processes = processes;
        self
    }

    /// How many calls each worker process runs at once (1 to [`MAX_CONCURRENT_CALLS`]; default
    /// [`DEFAULT_MAX_CONCURRENT_CALLS`]).
    #[must_use]
    pub fn max_concurrent_calls(mut self, calls: usize) -> Self {
        self.max_concurrent_calls = calls;
        self
    }

    /// Checks the configuration: the process count and call limit within their bounds, and
    /// LM settings that can be sent to the worker.
    pub fn check(&self) -> Result<()> {
        if !(1..=MAX_WORKER_PROCESSES).contains(&self.processes) {
            return Err(Error::worker(format!(
                "WorkerConfig::processes: {} is outside 1..={MAX_WORKER_PROCESSES} (MAX_WORKER_PROCESSES)",
                self.processes
            )));
        }
        if !(1..=MAX_CONCURRENT_CALLS).contains(&self.max_concurrent_calls) {
            return Err(Error::worker(format!(
                "WorkerConfig::max_concurrent_calls: {} is outside 1..={MAX_CONCURRENT_CALLS} (MAX_CONCURRENT_CALLS)",
                self.max_concurrent_calls
            )));
        }
        self.lm.to_proto().map(|_| ())
    }

    /// How long a starting worker may take to print its readiness line.
    #[must_use]
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// How often the supervisor checks the worker's health.
    #[must_use]
    pub fn health_interval(mut self, interval: Duration) -> Self {
        self.health_interval = interval;
        self
    }

    /// How long a health check may take before it counts as failed; three failures in a row
    /// make the supervisor kill the worker and start a new one.
    #[must_use]
    pub fn health_timeout(mut self, timeout: Duration) -> Self {
        self.health_timeout = timeout;
        self
    }

    /// How long one python step may take before its call is abandoned with a `Worker` error.
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// How long each shutdown stage (ask, terminate) waits before the next.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// An extra environment variable for the worker process.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The interpreter.
    pub fn interpreter(&self) -> &std::path::Path {
        &self.python
    }

    /// What a worker process receives on its stdin when it starts.
    pub(crate) fn to_proto(&self) -> Result<pb::WorkerConfig> {
        self.check()?;
        Ok(pb::WorkerConfig {
            lm: Some(self.lm.to_proto()?),
            max_concurrent_calls: u32::try_from(self.max_concurrent_calls).unwrap_or(u32::MAX),
        })
    }

    /// The number of worker processes.
    pub fn process_count(&self) -> usize {
        self.processes
    }

    /// The calls each worker process runs at once.
    pub fn concurrent_calls(&self) -> usize {
        self.max_concurrent_calls
    }

    pub(crate) fn ready_timeout_value(&self) -> Duration {
        self.ready_timeout
    }

    pub(crate) fn health_interval_value(&self) -> Duration {
        self.health_interval
    }

    pub(crate) fn health_timeout_value(&self) -> Duration {
        self.health_timeout
    }

    pub(crate) fn call_timeout_value(&self) -> Duration {
        self.call_timeout
    }

    pub(crate) fn shutdown_grace_value(&self) -> Duration {
        self.shutdown_grace
    }

    pub(crate) fn extra_env(&self) -> &[(String, String)] {
        &self.env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lm_config_is_the_message_the_worker_reads() {
        let lm = LmConfig::scripted()
            .default_model("gpt-4o-mini")
            .answer([("answer", "42")])
            .rule("weather", [("answer", "sunny")])
            .setting("temperature", 0.0)
            .delay(Duration::from_millis(200));
        let Some(pb::lm_config::Kind::Scripted(scripted)) = lm.to_proto().unwrap().kind else {
            panic!("not scripted");
        };
        assert_eq!(scripted.default_model, "gpt-4o-mini");
        assert_eq!(scripted.answers[0].fields["answer"], "42");
        assert_eq!(scripted.rules[0].needle, "weather");
        assert_eq!(scripted.rules[0].fields["answer"], "sunny");
        assert_eq!(
            scripted.settings["temperature"].kind,
            Some(pb::config_value::Kind::Float(0.0))
        );
        assert_eq!(scripted.delay_ms, 200);
        let real = LmConfig::model("openai/gpt-4o-mini")
            .setting("api_base", "http://127.0.0.1:1/v1")
            .to_proto()
            .unwrap();
        let Some(pb::lm_config::Kind::Model(model)) = real.kind else {
            panic!("not a model");
        };
        assert_eq!(model.model, "openai/gpt-4o-mini");
        assert!(model.settings.contains_key("api_base"));
    }

    #[test]
    fn settings_without_a_wire_form_and_out_of_range_counts_are_errors() {
        let err = LmConfig::scripted()
            .setting("response_format", serde_json::json!({"type": "json"}))
            .to_proto()
            .unwrap_err();
        assert!(err.to_string().contains("`response_format`"), "{err}");
        let delay = LmConfig::scripted().delay(MAX_SCRIPTED_DELAY + Duration::from_millis(1));
        assert!(
            delay
                .to_proto()
                .unwrap_err()
                .to_string()
                .contains("MAX_SCRIPTED_DELAY")
        );
        assert!(
            LmConfig::scripted()
                .delay(MAX_SCRIPTED_DELAY)
                .to_proto()
                .is_ok()
        );

        let ok = WorkerConfig::default();
        assert!(ok.clone().processes(MAX_WORKER_PROCESSES).check().is_ok());
        let err = ok
            .clone()
            .processes(MAX_WORKER_PROCESSES + 1)
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("MAX_WORKER_PROCESSES"), "{err}");
        assert!(
            ok.clone()
                .max_concurrent_calls(MAX_CONCURRENT_CALLS)
                .check()
                .is_ok()
        );
        let err = ok
            .clone()
            .max_concurrent_calls(MAX_CONCURRENT_CALLS + 1)
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("MAX_CONCURRENT_CALLS"), "{err}");
        assert!(ok.max_concurrent_calls(0).check().is_err());
    }
}
