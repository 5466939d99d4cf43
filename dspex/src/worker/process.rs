//! One Python worker process: spawned with the session's address and token in its environment
//! and its [`WorkerConfig`](crate::wire::proto::WorkerConfig) message on its stdin, ready once
//! it prints its readiness line (a [`WorkerReady`](crate::wire::proto::WorkerReady) message),
//! its output forwarded to `tracing`, its exit observed.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prost::Message;
use rustix::process::Signal;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, watch};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::config::WorkerConfig;
use crate::bridge::SessionInfo;
use crate::error::{Cause, Error, Result};
use crate::wire::limits::{MAX_MODULE_MESSAGE_BYTES, MAX_WORKER_CONFIG_BYTES};
use crate::wire::proto::module_service_client::ModuleServiceClient;
use crate::wire::proto::{self as pb, WorkerReady};
use crate::wire::{READY_PREFIX, TOKEN_METADATA};

/// How many lines of the worker's stderr an error message quotes.
const STDERR_TAIL: usize = 12;

/// The gRPC client of one worker, carrying the session token on every call.
pub(crate) type ModuleClient = ModuleServiceClient<InterceptedService<Channel, TokenInterceptor>>;

/// Adds the session token to every request.
#[derive(Clone)]
pub(crate) struct TokenInterceptor(MetadataValue<Ascii>);

impl Interceptor for TokenInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert(TOKEN_METADATA, self.0.clone());
        Ok(request)
    }
}

/// A running, ready worker.
///
/// The worker leads its own process group, and every signal goes to the whole group (so that
/// what the worker started, like a code interpreter, goes with it), sent by the task that owns
/// the child: until that task has seen the exit the child is not reaped, so the pid cannot have
/// been reused.
pub(crate) struct WorkerProcess {
    pid: u32,
    client: ModuleClient,
    exit: watch::Receiver<Option<ExitStatus>>,
    signals: mpsc::UnboundedSender<Signal>,
    /// Kept open: the worker exits when it closes, so it never outlives this process.
    stdin: Mutex<Option<ChildStdin>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl WorkerProcess {
    /// Starts `python -m dspex_bridge.worker` for `session` and waits until it is ready.
    /// `launch` is what the worker reads on its stdin ([`WorkerConfig::launch_message`]).
    pub(crate) async fn spawn(
        config: &WorkerConfig,
        launch: &pb::WorkerConfig,
        session: &SessionInfo,
    ) -> Result<Self> {
        let python = config.interpreter().display().to_string();
        let framed = frame(launch)?;
        let mut command = Command::new(config.interpreter());
        command
            .args(["-m", "dspex_bridge.worker"])
            .envs(session.env())
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("PYTHONUNBUFFERED", "1")
            .envs(config.extra_env().iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let started = Instant::now();
        let mut child = command.spawn().map_err(|e| {
            Error::worker_with(format!("cannot start `{python} -m dspex_bridge.worker`"), e)
        })?;
        let pid = child.id().unwrap_or_default();
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        // The configuration goes in while the worker starts; a worker reads it whole before it
        // gets ready, and one that never does (or dies first) fails the readiness wait below with
        // its own words. The stdin comes back to be kept open.
        let configured = tokio::spawn(async move {
            let mut stdin = stdin?;
            if let Err(e) = stdin.write_all(&framed).await {
                tracing::debug!(pid, error = %e, "cannot send the worker its configuration");
            }
            Some(stdin)
        });
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL)));
        if let Some(stderr) = stderr {
            tokio::spawn(forward_stderr(stderr, pid, Arc::clone(&stderr_tail)));
        }
        let (exit_tx, exit) = watch::channel(None);
        let (signals, signals_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        if let Some(stdout) = stdout {
            tokio::spawn(read_stdout(stdout, pid, ready_tx));
        }
        tokio::spawn(own_child(child, pid, exit_tx, signals_rx));
        let kill = || {
            let _ = signals.send(Signal::KILL);
        };

        let failure = |what: String| {
            let tail = stderr_tail
                .lock()
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n");
            let hint = if tail.contains("No module named 'dspex_bridge'")
                || tail.contains("No module named 'dspy'")
            {
                " (run scripts/python-env and set DSPEX_PYTHON to the interpreter it prints)"
            } else {
                ""
            };
            if tail.is_empty() {
                Error::worker(format!("python worker `{python}` {what}{hint}"))
            } else {
                Error::worker(format!(
                    "python worker `{python}` {what}{hint}; its last output:\n{tail}"
                ))
            }
        };

        let mut exit_seen = exit.clone();
        let ready = tokio::select! {
            ready = tokio::time::timeout(config.ready_timeout_value(), ready_rx) => match ready {
                Ok(Ok(ready)) => ready,
                Ok(Err(_)) => {
                    // Stdout closed without a readiness line: wait for the exit status.
                    let status = wait_exit(&mut exit_seen, Duration::from_secs(5)).await;
                    kill();
                    return Err(failure(format!("exited{} before it was ready", describe_exit(status))));
                }
                Err(_) => {
                    kill();
                    return Err(failure(format!(
                        "was not ready within {:?}",
                        config.ready_timeout_value()
                    )));
                }
            },
            status = wait_exit(&mut exit_seen, Duration::MAX) => {
                // Let the stderr forwarder catch up with the last lines.
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(failure(format!("exited{} before it was ready", describe_exit(status))));
            }
        };

        let stdin = configured.await.ok().flatten();
        let port = ready.port;
        let token = MetadataValue::try_from(session.token.as_str()).map_err(|e| {
            Error::worker_with("the session token is not valid metadata", Cause::other(e))
        })?;
        let channel = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .map_err(|e| Error::worker_with("bad worker address", e))?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| {
                kill();
                Error::worker_with(
                    format!("cannot connect to the python worker on port {port}"),
                    e,
                )
            })?;
        tracing::info!(
            pid,
            port,
            dspy = %ready.dspy_version,
            max_concurrent_calls = ready.max_concurrent_calls,
            elapsed = ?started.elapsed(),
            "python worker ready"
        );
        let client = ModuleServiceClient::with_interceptor(channel, TokenInterceptor(token))
            .max_decoding_message_size(MAX_MODULE_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MODULE_MESSAGE_BYTES);
        Ok(Self {
            pid,
            client,
            exit,
            signals,
            stdin: Mutex::new(stdin),
            stderr_tail,
        })
    }

    /// The worker's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// A client for calls to the worker.
    pub(crate) fn client(&self) -> ModuleClient {
        self.client.clone()
    }

    /// The exit status, once the process has exited.
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Whether the process has died, even if it was not reaped yet (a zombie counts as dead).
    pub(crate) fn has_exited(&self) -> bool {
        if self.exit_status().is_some() {
            return true;
        }
        let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return true;
        };
        use rustix::process::{WaitId, WaitIdOptions, waitid};
        // NOWAIT leaves the zombie for the waiter task to reap. An error means it was reaped
        // already.
        let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        !matches!(waitid(WaitId::Pid(pid), options), Ok(None))
    }

    /// Waits until the process exits (or `timeout` passes); returns the status if it did.
    pub(crate) async fn wait(&self, timeout: Duration) -> Option<ExitStatus> {
        let mut exit = self.exit.clone();
        wait_exit(&mut exit, timeout).await
    }

    /// The last lines the worker wrote on stderr.
    pub(crate) fn stderr_tail(&self) -> String {
        self.stderr_tail
            .lock()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Sends SIGTERM to the worker's process group.
    pub(crate) fn terminate(&self) {
        let _ = self.signals.send(Signal::TERM);
    }

    /// Sends SIGKILL to the worker's process group.
    pub(crate) fn kill(&self) {
        let _ = self.signals.send(Signal::KILL);
    }

    /// Closes the worker's stdin, which makes it exit.
    pub(crate) fn close_stdin(&self) {
        self.stdin.lock().take();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Whoever drops the last handle without a shutdown still leaves no process behind.
        self.kill();
    }
}

fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => match s.code() {
            Some(code) => format!(" with status {code}"),
            None => format!(" ({s})"),
        },
        None => String::new(),
    }
}

async fn wait_exit(
    exit: &mut watch::Receiver<Option<ExitStatus>>,
    timeout: Duration,
) -> Option<ExitStatus> {
    let waited = tokio::time::timeout(timeout, exit.wait_for(Option::is_some))
        .await
        .ok()
        .and_then(|r| r.ok().map(|status| *status));
    waited.unwrap_or_else(|| *exit.borrow())
}

/// Owns the child: reports its exit, and delivers signals to its process group while it has
/// not exited (an unreaped child's pid cannot be reused).
async fn own_child(
    mut child: Child,
    pid: u32,
    exit: watch::Sender<Option<ExitStatus>>,
    mut signals: mpsc::UnboundedReceiver<Signal>,
) {
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            Some(sig) = signals.recv() => match child.try_wait() {
                Ok(None) => signal_group(pid, sig),
                Ok(Some(status)) => break Ok(status),
                Err(e) => break Err(e),
            },
        }
    };
    // Whatever the worker started and left behind (it led the group) goes too. The group id
    // cannot have been reused: a pid stays reserved while a group of that id has members.
    signal_group(pid, Signal::KILL);
    match status {
        Ok(status) => {
            exit.send_replace(Some(status));
        }
        Err(e) => tracing::error!(pid, error = %e, "cannot wait for the python worker"),
    }
}

async fn read_stdout(
    stdout: impl AsyncRead + Unpin,
    pid: u32,
    ready: tokio::sync::oneshot::Sender<WorkerReady>,
) {
    let mut lines = BufReader::new(stdout).lines();
    let mut ready = Some(ready);
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(hex) = line.strip_prefix(READY_PREFIX)
            && let Some(tx) = ready.take()
        {
            match parse_ready(hex) {
                Ok(report) => {
                    let _ = tx.send(report);
                }
                Err(why) => {
                    tracing::error!(pid, %line, "unreadable readiness line from the python worker: {why}")
                }
            }
            continue;
        }
        tracing::info!(target: "dspex::worker", pid, "{line}");
    }
}

/// The [`WorkerReady`] report of a readiness line (what follows [`READY_PREFIX`]).
fn parse_ready(hex: &str) -> std::result::Result<WorkerReady, String> {
    let bytes = decode_hex(hex.trim()).ok_or("not lowercase hex")?;
    let ready = WorkerReady::decode(bytes.as_slice()).map_err(|e| e.to_string())?;
    if u16::try_from(ready.port).is_err() || ready.port == 0 {
        return Err(format!("port {} is not a TCP port", ready.port));
    }
    Ok(ready)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    hex.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// A message as the worker reads it from its stdin: a 4-byte big-endian length, then the
/// encoded message.
fn frame(config: &pb::WorkerConfig) -> Result<Vec<u8>> {
    let len = config.encoded_len();
    if len > MAX_WORKER_CONFIG_BYTES {
        return Err(Error::worker(format!(
            "the worker configuration takes {len} bytes, over the limit of {MAX_WORKER_CONFIG_BYTES} (MAX_WORKER_CONFIG_BYTES)"
        )));
    }
    let mut framed = Vec::with_capacity(4 + len);
    framed.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    config
        .encode(&mut framed)
        .map_err(|e| Error::internal(&e.to_string()))?;
    Ok(framed)
}

async fn forward_stderr(
    stderr: impl AsyncRead + Unpin,
    pid: u32,
    tail: Arc<Mutex<VecDeque<String>>>,
) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.starts_with("ERROR") || line.starts_with("Traceback") {
            tracing::warn!(target: "dspex::worker", pid, "{line}");
        } else {
            tracing::info!(target: "dspex::worker", pid, "{line}");
        }
        let mut tail = tail.lock();
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

fn signal_group(pid: u32, sig: Signal) {
    let Some(pgid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process_group(pgid, sig) {
        tracing::debug!(pid, error = %e, "signal not delivered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_lines_carry_a_hex_encoded_report() {
        let report = WorkerReady {
            port: 50123,
            pid: 42,
            dspy_version: "3.4.1".into(),
            python_version: "3.11.7".into(),
            max_concurrent_calls: 8,
        };
        let hex: String = report
            .encode_to_vec()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(parse_ready(&hex), Ok(report));
        assert!(parse_ready("zz").is_err());
        assert!(parse_ready("abc").is_err());
        let no_port: String = WorkerReady::default()
            .encode_to_vec()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(parse_ready(&no_port).unwrap_err().contains("port"));
    }

    #[test]
    fn the_configuration_is_framed_with_its_length() {
        let config = crate::wire::proto::WorkerConfig {
            lm: None,
            max_concurrent_calls: 3,
        };
        let framed = frame(&config).unwrap();
        let len = u32::from_be_bytes(framed[..4].try_into().unwrap()) as usize;
        assert_eq!(len, framed.len() - 4);
        assert_eq!(
            crate::wire::proto::WorkerConfig::decode(&framed[4..]).unwrap(),
            config
        );
    }
}
