//! How a context's Python workers are started: the interpreter, how many processes and how many
//! calls each runs at once, the time limits; and the message a worker reads on its stdin (this
//! configuration and the context's LM).

use std::path::PathBuf;
use std::time::Duration;

use crate::data::spans;
use crate::data::{MAX_CAPTURED_BYTES_PER_RUN, MAX_CAPTURED_CALLS_PER_RUN};
use crate::error::{Error, Result};
use crate::lm::{Cache, LmConfig, LmKind, MAX_LM_BACKOFF, Tape};
use crate::wire::convert::config_to_proto;
use crate::wire::proto as pb;

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
/// use dspex::worker::WorkerConfig;
///
/// let config = WorkerConfig::default()
///     .python("/opt/venv/bin/python")
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
    /// The interpreter from `DSPEX_PYTHON`, else `python3`; one process
    /// running up to [`DEFAULT_MAX_CONCURRENT_CALLS`] calls at once; 60 s to get ready
    /// (importing DSPy takes about a second, more on a loaded machine); a health check every
    /// 5 s, failed if it takes more than 5 s (three failures in a row replace the worker); 10
    /// minutes for one python step; 2 s for each shutdown stage.
    fn default() -> Self {
        Self {
            python: std::env::var_os(ENV_PYTHON)
                .filter(|p| !p.is_empty())
                .map_or_else(|| PathBuf::from("python3"), PathBuf::from),
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

    /// Checks the configuration: the process count and call limit within their bounds.
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
        Ok(())
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

    /// How long one python step may take (its wait for a place included) before it fails with
    /// a `Worker` error; its call is then cancelled in the worker, which keeps the call's place
    /// until the call has ended.
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

    /// What a worker process receives on its stdin when it starts: this configuration and the
    /// context's LM. Fails if either is out of its bounds or `lm` holds a setting that cannot
    /// be sent.
    pub(crate) fn launch_message(&self, lm: &LmConfig) -> Result<pb::WorkerConfig> {
        self.check()?;
        Ok(pb::WorkerConfig {
            lm: Some(lm_to_proto(lm)?),
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

/// `duration` in whole milliseconds, saturated.
fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

/// The LM configuration as the worker reads it; an error names a setting that has no wire
/// form or a bound the configuration breaks.
pub(crate) fn lm_to_proto(lm: &LmConfig) -> Result<pb::LmConfig> {
    lm.check()
        .map_err(|e| Error::worker(format!("LM configuration: {e}")))?;
    let settings = lm
        .settings
        .iter()
        .map(|(k, v)| {
            config_to_proto(k, v)
                .map(|value| (k.clone(), value))
                .map_err(|e| Error::worker(format!("LM setting {e}")))
        })
        .collect::<Result<_>>()?;
    let kind = match lm.kind {
        LmKind::Scripted => pb::lm_config::Kind::Scripted(pb::ScriptedLm {
            default_model: lm.model.clone(),
            answers: lm
                .answers
                .iter()
                .map(|fields| pb::ScriptedAnswer {
                    fields: fields.clone().into_iter().collect(),
                })
                .collect(),
            rules: lm
                .rules
                .iter()
                .map(|(needle, fields)| pb::ScriptedRule {
                    needle: needle.clone(),
                    fields: fields.clone().into_iter().collect(),
                })
                .collect(),
            settings,
            delay_ms: millis(lm.delay),
        }),
        LmKind::OpenAi => pb::lm_config::Kind::Openai(pb::OpenAiLm {
            base_url: lm.base_url.clone(),
            model: lm.model.clone(),
            api_key_env: lm.api_key_env.clone().unwrap_or_default(),
            settings,
            timeout_ms: millis(lm.timeout),
            max_retries: lm.max_retries,
            retry_backoff_ms: millis(lm.backoff),
            max_backoff_ms: millis(MAX_LM_BACKOFF),
        }),
        LmKind::Model => pb::lm_config::Kind::Model(pb::ModelLm {
            model: lm.model.clone(),
            settings,
        }),
    };
    // The worker may run elsewhere than this process's directory: it gets absolute paths.
    let path = |path: &std::path::Path| {
        std::path::absolute(path)
            .unwrap_or_else(|_| path.to_owned())
            .to_string_lossy()
            .into_owned()
    };
    let (record_path, replay_path) = match &lm.tape {
        Some(Tape::Record(file)) => (path(file), String::new()),
        Some(Tape::Replay(file)) => (String::new(), path(file)),
        Some(Tape::Nested) | None => (String::new(), String::new()),
    };
    let cache = match &lm.cache {
        Cache::Off => pb::LmCache::default(),
        Cache::Memory(entries) => pb::LmCache {
            memory_entries: u32::try_from(*entries).unwrap_or(u32::MAX),
            disk_dir: String::new(),
        },
        Cache::Disk(dir) => pb::LmCache {
            memory_entries: 0,
            disk_dir: dir
                .to_str()
                .ok_or_else(|| {
                    Error::worker(format!(
                        "LM configuration: the cache directory {} is not UTF-8",
                        dir.display()
                    ))
                })?
                .to_owned(),
        },
    };
    // A python step's call captures at most what one run's trace keeps, for the trace
    // (`capture_messages`) or for telemetry that records message contents.
    let capture = (lm.capture || spans::capture_message_content()).then(|| pb::LmCapture {
        max_calls: u32::try_from(MAX_CAPTURED_CALLS_PER_RUN).unwrap_or(u32::MAX),
        max_bytes: u64::try_from(MAX_CAPTURED_BYTES_PER_RUN).unwrap_or(u64::MAX),
    });
    Ok(pb::LmConfig {
        kind: Some(kind),
        record_path,
        replay_path,
        cache: Some(cache),
        capture,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::MAX_SCRIPTED_DELAY;

    #[test]
    fn the_lm_config_is_the_message_the_worker_reads() {
        let lm = LmConfig::scripted()
            .default_model("gpt-4o-mini")
            .answer([("answer", "42")])
            .rule("weather", [("answer", "sunny")])
            .setting("temperature", 0.0)
            .delay(Duration::from_millis(200));
        let Some(pb::lm_config::Kind::Scripted(scripted)) = lm_to_proto(&lm).unwrap().kind else {
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
        let real = lm_to_proto(
            &LmConfig::model("openai/gpt-4o-mini").setting("api_base", "http://127.0.0.1:1/v1"),
        )
        .unwrap();
        let Some(pb::lm_config::Kind::Model(model)) = real.kind else {
            panic!("not a model");
        };
        assert_eq!(model.model, "openai/gpt-4o-mini");
        assert!(model.settings.contains_key("api_base"));
    }

    #[test]
    fn the_worker_captures_messages_only_when_asked_within_one_runs_bounds() {
        assert_eq!(lm_to_proto(&LmConfig::scripted()).unwrap().capture, None);
        let capture = lm_to_proto(&LmConfig::scripted().capture_messages(true))
            .unwrap()
            .capture
            .expect("capture bounds sent");
        assert_eq!(capture.max_calls as usize, MAX_CAPTURED_CALLS_PER_RUN);
        assert_eq!(capture.max_bytes as usize, MAX_CAPTURED_BYTES_PER_RUN);
    }

    #[test]
    fn settings_without_a_wire_form_and_out_of_range_counts_are_errors() {
        let err = lm_to_proto(
            &LmConfig::scripted().setting("response_format", serde_json::json!({"type": "json"})),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`response_format`"), "{err}");
        let delay = LmConfig::scripted().delay(MAX_SCRIPTED_DELAY + Duration::from_millis(1));
        assert!(
            lm_to_proto(&delay)
                .unwrap_err()
                .to_string()
                .contains("MAX_SCRIPTED_DELAY")
        );
        assert!(lm_to_proto(&LmConfig::scripted().delay(MAX_SCRIPTED_DELAY)).is_ok());

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

    #[test]
    fn an_endpoint_travels_to_the_worker_with_its_key_variable_and_bounds() {
        let lm = LmConfig::openai("http://127.0.0.1:9/v1", "gpt-x")
            .api_key_env("MY_KEY")
            .timeout(Duration::from_secs(3))
            .max_retries(2)
            .setting("temperature", 0.5);
        let Some(pb::lm_config::Kind::Openai(openai)) = lm_to_proto(&lm).unwrap().kind else {
            panic!("not an endpoint");
        };
        assert_eq!(openai.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(openai.model, "gpt-x");
        assert_eq!(openai.api_key_env, "MY_KEY");
        assert_eq!(openai.timeout_ms, 3000);
        assert_eq!(openai.max_retries, 2);
        assert_eq!(openai.retry_backoff_ms, 500);
        assert_eq!(openai.max_backoff_ms, 30_000);
        assert!(openai.settings.contains_key("temperature"));
    }
}
