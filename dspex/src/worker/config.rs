//! How a context's Python worker is started: the interpreter, the LM, the time limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value as Json, json};

/// The environment variable naming the Python interpreter (else `python3`).
pub const ENV_PYTHON: &str = "DSPEX_PYTHON";

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
    rules: BTreeMap<String, BTreeMap<String, String>>,
    settings: Map<String, Json>,
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
            rules: BTreeMap::new(),
            settings: Map::new(),
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

    /// Scripted LM: the answer of any call whose prompt contains `needle`.
    #[must_use]
    pub fn rule<K: Into<String>, V: Into<String>>(
        mut self,
        needle: impl Into<String>,
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.rules.insert(
            needle.into(),
            fields
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// A default request setting of the LM (`temperature`, `max_tokens`, ...); bound variables
    /// override it per call.
    #[must_use]
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<Json>) -> Self {
        self.settings.insert(key.into(), value.into());
        self
    }

    /// The configuration as the worker reads it from `DSPEX_LM`.
    pub(crate) fn to_json(&self) -> String {
        json!({
            "kind": match self.kind {
                LmKind::Scripted => "scripted",
                LmKind::Model => "model",
            },
            "model": self.model,
            "answers": self.answers,
            "rules": self.rules,
            "settings": self.settings,
        })
        .to_string()
    }
}

/// How a context starts and watches its Python worker.
///
/// ```
/// use std::time::Duration;
/// use dspex::worker::{LmConfig, WorkerConfig};
///
/// let config = WorkerConfig::default()
///     .python("/opt/venv/bin/python")
///     .lm(LmConfig::scripted())
///     .ready_timeout(Duration::from_secs(20));
/// assert_eq!(config.interpreter().to_str(), Some("/opt/venv/bin/python"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    python: PathBuf,
    lm: LmConfig,
    ready_timeout: Duration,
    health_interval: Duration,
    health_timeout: Duration,
    call_timeout: Duration,
    shutdown_grace: Duration,
    env: Vec<(String, String)>,
}

impl Default for WorkerConfig {
    /// The interpreter from `DSPEX_PYTHON`, else `python3`; the scripted LM; 60 s to get ready
    /// (importing DSPy takes about a second, more on a loaded machine); a health check every
    /// 5 s, failed if it takes more than 5 s (three failures in a row replace the worker); 10
    /// minutes for one python step; 2 s for each shutdown stage.
    fn default() -> Self {
        Self {
            python: std::env::var_os(ENV_PYTHON)
                .filter(|p| !p.is_empty())
                .map_or_else(|| PathBuf::from("python3"), PathBuf::from),
            lm: LmConfig::default(),
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

    pub(crate) fn lm_config(&self) -> &LmConfig {
        &self.lm
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
    fn the_lm_config_is_the_json_the_worker_reads() {
        let lm = LmConfig::scripted()
            .default_model("gpt-4o-mini")
            .answer([("answer", "42")])
            .rule("weather", [("answer", "sunny")])
            .setting("temperature", 0.0);
        let parsed: Json = serde_json::from_str(&lm.to_json()).unwrap();
        assert_eq!(
            parsed,
            json!({
                "kind": "scripted",
                "model": "gpt-4o-mini",
                "answers": [{"answer": "42"}],
                "rules": {"weather": {"answer": "sunny"}},
                "settings": {"temperature": 0.0},
            })
        );
        let real: Json =
            serde_json::from_str(&LmConfig::model("openai/gpt-4o-mini").to_json()).unwrap();
        assert_eq!(real["kind"], "model");
        assert_eq!(real["model"], "openai/gpt-4o-mini");
    }
}
