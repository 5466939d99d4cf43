//! Shared helpers of the cross-crate integration tests in `tests/`: finding the Python
//! interpreter, driving real processes by JSON lines ([`JsonProcess`]: Python agents on a
//! bridged context, [`SharedPeer`]s on a shared session), the fixture variables, JSON <->
//! [`Value`] conversions, and the events tests wait for instead of sleeping (process exits,
//! marker lines, log events). Tests that need Redis start their own with
//! [`dspex_test_redis::RedisServer`].
//!
//! The interpreter is `DSPEX_PYTHON`, else the workspace's `.venv/bin/python` if it exists,
//! else `python3`. If it cannot import `dspex_bridge` the tests fail (never skip) with a message
//! that says to run `scripts/python-env`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use dspex::bridge::SessionInfo;
use dspex::{Constraints, Context, Value, VarType, VariableSpec};
use serde_json::json;

mod events;
pub mod planted_qa;

pub use events::{LogEvents, Marker, process_alive, wait_gone, wait_gone_blocking};

/// How long a test waits for one answer of a Python process before failing.
pub const PYTHON_TIMEOUT: Duration = Duration::from_secs(120);

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Runs the Python script at `script` (relative to the workspace root) with the tests'
/// interpreter, `input` as JSON on its stdin, and returns the JSON it writes on stdout.
///
/// # Panics
///
/// If the script fails, does not answer within [`PYTHON_TIMEOUT`] (it is killed) or writes no
/// JSON.
pub fn run_script(script: &str, input: &serde_json::Value) -> serde_json::Value {
    use std::io::Read;
    let script = workspace_root().join(script);
    let mut child = Command::new(python())
        .arg(&script)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python().display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(&serde_json::to_vec(input).expect("JSON input"))
        .expect("write the script's input");
    drop(stdin);
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let (mut out, mut err) = (String::new(), String::new());
        let _ = stdout.read_to_string(&mut out);
        let _ = stderr.read_to_string(&mut err);
        let _ = tx.send((out, err));
    });
    let Ok((out, err)) = rx.recv_timeout(PYTHON_TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "{} did not answer within {PYTHON_TIMEOUT:?}",
            script.display()
        );
    };
    let status = child.wait().expect("wait for the script");
    let _ = reader.join();
    assert!(status.success(), "{} failed:\n{err}", script.display());
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"))
}

/// The Python interpreter of the tests, checked once to import `dspex_bridge`.
///
/// # Panics
///
/// If the interpreter cannot run or cannot import `dspex_bridge`, with a message telling to run
/// `scripts/python-env`.
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let python = std::env::var_os("DSPEX_PYTHON")
            .map(PathBuf::from)
            .or_else(|| {
                let venv = workspace_root().join(".venv/bin/python");
                venv.exists().then_some(venv)
            })
            .unwrap_or_else(|| PathBuf::from("python3"));
        let output = Command::new(&python)
            .args(["-c", "import dspex_bridge"])
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .output();
        match output {
            Ok(o) if o.status.success() => python,
            Ok(o) => panic!(
                "the Python interpreter {} cannot import dspex_bridge:\n{}\nRun scripts/python-env (it creates .venv with the pinned packages and dspex_bridge), or set DSPEX_PYTHON to an interpreter that has it (`pip install ./python`).",
                python.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!(
                "cannot run the Python interpreter {}: {e}\nRun scripts/python-env, or set DSPEX_PYTHON.",
                python.display()
            ),
        }
    })
}

/// Registers the fixture variables every end-to-end test and the test server start with.
///
/// # Errors
///
/// Whatever registering returns (nothing, on a fresh context).
pub fn register_fixtures(ctx: &Context) -> dspex::Result<()> {
    let specs = [
        VariableSpec::new("temperature", VarType::Float, 0.7)
            .with_constraints(Constraints::range(0.0, 2.0))
            .with_description("sampling temperature")
            .with_metadata("owner", "rust"),
        VariableSpec::new("max_tokens", VarType::Integer, 256)
            .with_constraints(Constraints::range(1, 4096)),
        VariableSpec::new("model", VarType::Choice, "gpt-4o-mini")
            .with_constraints(Constraints::choices(["gpt-4o-mini", "claude-3-haiku"])),
        VariableSpec::new("reasoning", VarType::Module, "Predict"),
        VariableSpec::new("style", VarType::String, "concise")
            .with_constraints(Constraints::default().with_length(1, 40)),
        VariableSpec::new("verbose", VarType::Boolean, false),
        VariableSpec::new("embedding", VarType::Embedding, vec![0.0f32, 0.5, 1.0])
            .with_constraints(Constraints::default().with_dimensions(3)),
        VariableSpec::new("counter", VarType::Integer, 0),
    ];
    for spec in specs {
        ctx.register(spec)?;
    }
    Ok(())
}

/// A value as JSON (embeddings as arrays of numbers).
pub fn value_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Float(x) => json!(x),
        Value::Integer(i) => json!(i),
        Value::String(s) => json!(s),
        Value::Boolean(b) => json!(b),
        Value::Embedding(e) => json!(e),
    }
}

/// A JSON value as a variable value: booleans, integers, floats (`1.0` stays a float),
/// strings, arrays of numbers (embeddings). `None` for anything else.
pub fn json_to_value(json: &serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    match json {
        J::Bool(b) => Some(Value::Boolean(*b)),
        J::Number(n) => n
            .as_i64()
            .map(Value::Integer)
            .or_else(|| n.as_f64().map(Value::Float)),
        J::String(s) => Some(Value::String(s.clone())),
        J::Array(items) => items
            .iter()
            .map(|x| {
                #[allow(clippy::cast_possible_truncation)] // embeddings are f32
                x.as_f64().map(|f| f as f32)
            })
            .collect::<Option<Vec<f32>>>()
            .map(Value::Embedding),
        _ => None,
    }
}

/// A child process driven by one JSON command per stdin line, answering one JSON line each
/// on stdout (`{"ok": ...}` or `{"error": ...}`); its stderr is kept for failure messages.
///
/// Dropping it kills and reaps the process: no test leaves a process behind, even when it
/// panics.
pub struct JsonProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl JsonProcess {
    /// Spawns `command` with piped stdio; `what` names it in panics.
    ///
    /// # Panics
    ///
    /// If the process cannot start.
    pub fn spawn(mut command: Command, what: &str) -> Self {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take();
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = stdout {
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }));
        }
        if let Some(stderr) = child.stderr.take() {
            let text = Arc::clone(&stderr_text);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut t) = text.lock() {
                        t.push_str(&line);
                        t.push('\n');
                    }
                }
            }));
        }
        Self {
            child,
            stdin,
            lines,
            stderr: stderr_text,
            readers,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command without waiting for its answer.
    ///
    /// # Panics
    ///
    /// If the process is gone.
    pub fn send(&mut self, command: &serde_json::Value) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("the process is gone ({e}); stderr:\n{}", self.stderr()));
    }

    /// The next answer.
    ///
    /// # Panics
    ///
    /// If none comes within [`PYTHON_TIMEOUT`], with the process's stderr.
    pub fn recv(&mut self) -> serde_json::Value {
        match self.lines.recv_timeout(PYTHON_TIMEOUT) {
            Ok(line) => serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("the process wrote {line:?}, not JSON: {e}")),
            Err(e) => panic!(
                "no answer from the process ({e}); its stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// Sends a command and returns its answer (`{"ok": ...}` or `{"error": ...}`).
    pub fn call(&mut self, command: serde_json::Value) -> serde_json::Value {
        self.send(&command);
        self.recv()
    }

    /// Sends a command that must succeed and returns its result.
    ///
    /// # Panics
    ///
    /// If the command failed.
    pub fn ok(&mut self, command: serde_json::Value) -> serde_json::Value {
        let reply = self.call(command.clone());
        match reply.get("ok") {
            Some(result) => result.clone(),
            None => panic!("{command} failed: {reply}"),
        }
    }

    /// Sends a command that must fail and returns `(error, message, mro)` (`message` and
    /// `mro` as a Python agent reports them; empty otherwise).
    ///
    /// # Panics
    ///
    /// If the command succeeded.
    pub fn err(&mut self, command: serde_json::Value) -> (String, String, Vec<String>) {
        let reply = self.call(command.clone());
        let text = |key: &str| reply[key].as_str().unwrap_or_default().to_owned();
        if reply.get("error").is_none() {
            panic!("{command} should have failed, returned {reply}");
        }
        let mro = reply["mro"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        (text("error"), text("message"), mro)
    }

    /// What the process wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Asks the process to exit (`{"op": "exit"}`, then the end of its stdin) and waits for
    /// it.
    ///
    /// # Panics
    ///
    /// If it does not exit cleanly.
    pub fn finish(mut self) {
        self.send(&json!({"op": "exit"}));
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + PYTHON_TIMEOUT;
        let status = loop {
            if let Some(status) = self
                .child
                .try_wait()
                .expect("the process can be waited for")
            {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the process did not exit; stderr:\n{}",
                self.stderr()
            );
            wait_gone_blocking(self.child.id(), deadline - std::time::Instant::now());
        };
        assert!(
            status.success(),
            "the process exited with {status}; stderr:\n{}",
            self.stderr()
        );
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for JsonProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// A running `tests/python/agent.py`: a real Python process with a `dspex_bridge`
/// `SessionContext` opened from its environment, driven by one JSON command per line (a
/// [`JsonProcess`]).
pub struct PyAgent(JsonProcess);

impl PyAgent {
    /// Starts an agent on `session` (whose fields become `DSPEX_STORE_ADDR`,
    /// `DSPEX_SESSION_ID` and `DSPEX_SESSION_TOKEN`) and waits until it is ready.
    ///
    /// # Panics
    ///
    /// If Python cannot start or does not get ready.
    pub fn start(session: &SessionInfo) -> Self {
        Self::start_with(session, &[])
    }

    /// [`start`](Self::start) with extra environment variables (`AGENT_CACHE_TTL`, ...).
    ///
    /// # Panics
    ///
    /// If Python cannot start or does not get ready.
    pub fn start_with(session: &SessionInfo, extra_env: &[(&str, &str)]) -> Self {
        let script = workspace_root().join("tests/python/agent.py");
        let mut command = Command::new(python());
        command
            .arg(&script)
            .envs(session.env())
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("PYTHONUNBUFFERED", "1")
            .envs(extra_env.iter().copied());
        let mut agent = JsonProcess::spawn(command, &python().display().to_string());
        let ready = agent.recv();
        assert_eq!(ready, json!({"ready": true}), "the agent did not get ready");
        Self(agent)
    }

    /// Asks the agent to exit and waits for it.
    ///
    /// # Panics
    ///
    /// If it does not exit cleanly.
    pub fn finish(self) {
        self.0.finish();
    }
}

impl std::ops::Deref for PyAgent {
    type Target = JsonProcess;
    fn deref(&self) -> &JsonProcess {
        &self.0
    }
}

impl std::ops::DerefMut for PyAgent {
    fn deref_mut(&mut self) -> &mut JsonProcess {
        &mut self.0
    }
}

/// A `shared_peer` process (`tests/src/bin/shared_peer.rs`): another OS process with a context
/// on a shared session, driven by one JSON command per line (a [`JsonProcess`]).
pub struct SharedPeer(JsonProcess);

impl SharedPeer {
    /// Starts a peer on session `session` of the Redis at `url` and waits until it has the
    /// session open.
    ///
    /// # Panics
    ///
    /// If it cannot start or open the session.
    pub fn start(url: &str, session: &str) -> Self {
        // Cargo builds the package's binaries next to the test binaries' `deps` folder.
        let binary = std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.join("shared_peer")))
            .unwrap_or_else(|| PathBuf::from("shared_peer"));
        let mut command = Command::new(binary);
        command.args([url, session]);
        let mut peer = JsonProcess::spawn(command, "shared_peer");
        let ready = peer.recv();
        assert_eq!(
            ready["ready"],
            json!(true),
            "the peer did not get ready: {ready}"
        );
        Self(peer)
    }

    /// Asks the peer to exit and waits for it.
    ///
    /// # Panics
    ///
    /// If it does not exit cleanly.
    pub fn finish(self) {
        self.0.finish();
    }
}

impl std::ops::Deref for SharedPeer {
    type Target = JsonProcess;
    fn deref(&self) -> &JsonProcess {
        &self.0
    }
}

impl std::ops::DerefMut for SharedPeer {
    fn deref_mut(&mut self) -> &mut JsonProcess {
        &mut self.0
    }
}

/// The metadata of a record as a JSON object.
pub fn metadata_json(metadata: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Object(
        metadata
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect(),
    )
}

/// The worker configuration of the end-to-end tests: the tests' interpreter, and
/// `python/tests` on the worker's `PYTHONPATH` so that steps can name the custom modules of
/// `python/tests/sample_modules.py` (`sample_modules.Sleeper`, ...).
pub fn worker_config() -> dspex::worker::WorkerConfig {
    dspex::worker::WorkerConfig::default()
        .python(python())
        .env(
            "PYTHONPATH",
            workspace_root().join("python/tests").display().to_string(),
        )
        .ready_timeout(PYTHON_TIMEOUT)
}

/// A context with the LM `lm` whose python steps run in workers started with `worker`.
///
/// # Panics
///
/// If the context cannot be built.
pub async fn context_with(worker: dspex::worker::WorkerConfig, lm: dspex::LmConfig) -> Context {
    Context::builder()
        .worker(worker)
        .lm(lm)
        .build()
        .await
        .expect("build the context")
}
