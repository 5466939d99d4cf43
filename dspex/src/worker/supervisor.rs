//! The worker supervisor: keeps one Python worker alive for a context. It starts it, checks
//! its health, restarts it after a crash and re-creates its modules from the specs it keeps,
//! and shuts it down (ask, then terminate, then kill) when the context goes away.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dspex_core::Value;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::config::WorkerConfig;
use super::process::WorkerProcess;
use super::runtime;
use crate::bridge::convert::value_to_proto;
use crate::bridge::proto::{
    CreateModuleRequest, DropModuleRequest, ExecuteModuleRequest, ExecuteModuleResponse,
    HealthRequest, ShutdownRequest,
};
use crate::bridge::{ERROR_METADATA, SessionInfo};
use crate::error::{Error, Result};

/// How many failed health checks in a row make the supervisor replace a running worker.
const UNHEALTHY_AFTER: u32 = 3;
/// Backoff between failed restarts, doubling up to the maximum.
const RESTART_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));

/// What the supervisor keeps of a module, to create it again in a new worker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModuleSpec {
    /// The id the module has in the worker.
    pub(crate) module_id: String,
    /// A DSPy module name or a dotted path.
    pub(crate) class: String,
    /// The DSPy signature.
    pub(crate) signature: String,
    /// Module parameter -> session variable.
    pub(crate) bindings: BTreeMap<String, String>,
    /// Extra constructor arguments.
    pub(crate) config: BTreeMap<String, Value>,
}

/// The state of a context's worker, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    /// The process id of the running worker (none while it restarts).
    pub pid: Option<u32>,
    /// How many times the worker was restarted after it died.
    pub restarts: u32,
    /// How many modules the supervisor keeps (and re-creates after a restart).
    pub modules: usize,
    /// The interpreter.
    pub python: String,
}

/// Which worker is current: none while (re)starting; an error once restarting failed and the
/// supervisor is retrying.
#[derive(Clone)]
enum Current {
    Starting,
    Running(Arc<WorkerProcess>),
    Failed(String),
    Closed,
}

/// Keeps a context's Python worker running.
pub struct WorkerSupervisor {
    config: WorkerConfig,
    session: SessionInfo,
    current: watch::Sender<Current>,
    modules: Mutex<BTreeMap<String, ModuleSpec>>,
    restarts: AtomicU32,
    closed: AtomicBool,
}

impl std::fmt::Debug for WorkerSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerSupervisor")
            .field("status", &self.status())
            .finish()
    }
}

impl WorkerSupervisor {
    /// Starts the worker for `session` and waits until it is ready.
    pub(crate) async fn start(config: WorkerConfig, session: SessionInfo) -> Result<Arc<Self>> {
        let runtime = runtime()?;
        let process = {
            let (config, session) = (config.clone(), session.clone());
            runtime
                .spawn(async move { WorkerProcess::spawn(&config, &session).await })
                .await
                .map_err(|e| Error::worker_with("the worker start task failed", e))??
        };
        let supervisor = Arc::new(Self {
            config,
            session,
            current: watch::Sender::new(Current::Running(Arc::new(process))),
            modules: Mutex::new(BTreeMap::new()),
            restarts: AtomicU32::new(0),
            closed: AtomicBool::new(false),
        });
        let python = supervisor.config.interpreter().display().to_string();
        let monitored = monitor(Arc::downgrade(&supervisor));
        runtime.spawn(async move {
            monitored.await;
            tracing::debug!(%python, "python worker monitor stopped: the worker will not be restarted");
        });
        runtime.spawn(health_checks(Arc::downgrade(&supervisor)));
        Ok(supervisor)
    }

    /// The worker's state.
    pub fn status(&self) -> WorkerStatus {
        let pid = match &*self.current.borrow() {
            Current::Running(p) if p.exit_status().is_none() => Some(p.pid()),
            _ => None,
        };
        WorkerStatus {
            pid,
            restarts: self.restarts.load(Ordering::Acquire),
            modules: self.modules.lock().len(),
            python: self.config.interpreter().display().to_string(),
        }
    }

    /// The running worker, waiting (up to the ready timeout) while it restarts. A worker that
    /// has died counts as restarting, even before the supervisor has noticed, so that a call
    /// made after an idle worker died goes to its replacement.
    async fn process(&self) -> Result<Arc<WorkerProcess>> {
        let mut current = self.current.subscribe();
        let wait = current.wait_for(|c| match c {
            Current::Starting => false,
            Current::Running(p) => !p.has_exited(),
            Current::Failed(_) | Current::Closed => true,
        });
        let state = match tokio::time::timeout(self.config.ready_timeout_value(), wait).await {
            Ok(Ok(state)) => state.clone(),
            Ok(Err(_)) | Err(_) => {
                return Err(Error::worker(format!(
                    "the python worker did not come back within {:?}",
                    self.config.ready_timeout_value()
                )));
            }
        };
        match state {
            Current::Running(p) => Ok(p),
            Current::Failed(why) => Err(Error::worker(why)),
            Current::Closed => Err(Error::worker("the python worker was shut down")),
            Current::Starting => Err(Error::internal("worker state changed under the wait")),
        }
    }

    /// Whether the supervisor was shut down.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Creates a module in the worker and keeps its spec, so that a restarted worker gets it
    /// back. The spec is kept from before the call (a worker restarting meanwhile creates it
    /// too); a module the worker cannot create (unknown class, bad signature) is forgotten.
    pub(crate) async fn create_module(&self, spec: ModuleSpec) -> Result<String> {
        let process = self.process().await?;
        let module_id = spec.module_id.clone();
        self.modules.lock().insert(module_id.clone(), spec.clone());
        let created = create_in(&process, &self.session, &spec).await;
        if created.is_err() {
            self.modules.lock().remove(&module_id);
        }
        created
    }

    /// Forgets a module and drops it from the worker, in the background.
    pub(crate) fn drop_module(&self, module_id: &str) {
        self.modules.lock().remove(module_id);
        let current = self.current.borrow().clone();
        if let (Current::Running(process), Ok(runtime)) = (current, runtime()) {
            let request = DropModuleRequest {
                module_id: module_id.to_owned(),
            };
            let mut client = process.client();
            runtime.spawn(async move {
                let _ = client.drop_module(request).await;
            });
        }
    }

    /// Whether a module with this id was created.
    pub(crate) fn has_module(&self, module_id: &str) -> bool {
        self.modules.lock().contains_key(module_id)
    }

    /// Runs a module; `min_versions` are the versions of its bound variables the caller saw, so
    /// that the worker may use its cached values when they are that new. A worker that dies
    /// during the call gives this call a `Worker` error (the supervisor restarts it for the
    /// next one); a Python exception gives `Error::Python`.
    pub(crate) async fn execute(
        &self,
        step: &str,
        module_id: &str,
        inputs: BTreeMap<String, String>,
        min_versions: BTreeMap<String, u64>,
    ) -> Result<ExecuteModuleResponse> {
        let process = self.process().await?;
        let request = ExecuteModuleRequest {
            module_id: module_id.to_owned(),
            inputs: inputs.into_iter().collect(),
            min_versions: min_versions.into_iter().collect(),
        };
        // The channel's connection task runs on the supervisor's runtime; the call itself can
        // be made from the caller's, which saves a hand-over each way.
        let mut client = process.client();
        let timeout = self.config.call_timeout_value();
        let reply = match tokio::time::timeout(timeout, client.execute_module(request)).await {
            Ok(reply) => reply,
            Err(_) => {
                return Err(Error::worker(format!(
                    "step `{step}`: the python worker (pid {}) did not answer within {timeout:?}",
                    process.pid()
                )));
            }
        };
        match reply {
            Ok(response) => Ok(response.into_inner()),
            Err(status) => Err(self.call_error(&process, step, status).await),
        }
    }

    /// Turns a failed call into the error the caller should see.
    async fn call_error(
        &self,
        process: &WorkerProcess,
        step: &str,
        status: tonic::Status,
    ) -> Error {
        let kind = status
            .metadata()
            .get(ERROR_METADATA)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if kind == "python" || status.code() == tonic::Code::FailedPrecondition {
            return Error::Python {
                step: step.to_owned(),
                message: status.message().to_owned(),
            };
        }
        let pid = process.pid();
        match status.code() {
            // Transport failures: did the worker die under the call?
            tonic::Code::Unavailable
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
            | tonic::Code::Internal
            | tonic::Code::Aborted => {
                if let Some(exit) = process.wait(Duration::from_secs(2)).await {
                    return Error::worker_with(
                        format!(
                            "the python worker (pid {pid}) exited ({exit}) during step `{step}`; it is being restarted"
                        ),
                        status,
                    );
                }
            }
            _ => {}
        }
        Error::worker_with(
            format!("step `{step}`: the python worker (pid {pid}) refused the call"),
            status,
        )
    }

    /// Stops the worker: asks it to shut down, then terminates it, then kills it, each after
    /// the grace period. No process is left behind.
    pub async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        let previous = self.current.send_replace(Current::Closed);
        if let Current::Running(process) = previous
            && let Ok(runtime) = runtime()
        {
            let grace = self.config.shutdown_grace_value();
            let _ = runtime.spawn(stop_process(process, grace)).await;
        }
    }
}

impl Drop for WorkerSupervisor {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let previous = self.current.send_replace(Current::Closed);
        if let Current::Running(process) = previous {
            match runtime() {
                Ok(runtime) => {
                    runtime.spawn(stop_process(process, self.config.shutdown_grace_value()));
                }
                Err(_) => process.kill(),
            }
        }
    }
}

async fn create_in(
    process: &WorkerProcess,
    session: &SessionInfo,
    spec: &ModuleSpec,
) -> Result<String> {
    let request = CreateModuleRequest {
        session_id: session.session_id.clone(),
        module_id: spec.module_id.clone(),
        module_class: spec.class.clone(),
        signature: spec.signature.clone(),
        bindings: spec.bindings.clone().into_iter().collect(),
        config: spec
            .config
            .iter()
            .map(|(k, v)| (k.clone(), value_to_proto(v)))
            .collect(),
    };
    let mut client = process.client();
    let reply = runtime()?
        .spawn(async move { client.create_module(request).await })
        .await
        .map_err(|e| Error::worker_with("the call task failed", e))?;
    match reply {
        Ok(r) => Ok(r.into_inner().resolved_class),
        Err(status) if status.code() == tonic::Code::InvalidArgument => Err(Error::Python {
            step: spec.module_id.clone(),
            message: status.message().to_owned(),
        }),
        Err(status) => Err(Error::worker_with(
            format!(
                "cannot create module `{}` in the python worker (pid {})",
                spec.module_id,
                process.pid(),
            ),
            status,
        )),
    }
}

/// Ask, terminate, kill.
async fn stop_process(process: Arc<WorkerProcess>, grace: Duration) {
    let pid = process.pid();
    let mut client = process.client();
    let asked = tokio::time::timeout(grace, client.shutdown(ShutdownRequest {})).await;
    if matches!(asked, Ok(Ok(_))) && process.wait(grace).await.is_some() {
        tracing::debug!(pid, "python worker shut down");
        return;
    }
    process.close_stdin();
    process.terminate();
    if process.wait(grace).await.is_some() {
        tracing::debug!(pid, "python worker terminated");
        return;
    }
    tracing::warn!(
        pid,
        "python worker ignored shutdown and SIGTERM; killing it"
    );
    process.kill();
    let _ = process.wait(grace).await;
}

/// Restarts the worker whenever it exits, until the supervisor closes or goes away. It holds
/// the supervisor only while restarting, so a context dropped during a failing restart loop
/// still drops its supervisor and the loop ends.
async fn monitor(supervisor: Weak<WorkerSupervisor>) {
    loop {
        let Some(process) = running(&supervisor) else {
            return;
        };
        let status = process.wait(Duration::MAX).await;
        match supervisor.upgrade() {
            Some(sup) if !sup.is_closed() => {
                tracing::warn!(
                    pid = process.pid(),
                    status = ?status,
                    stderr = %process.stderr_tail(),
                    "python worker exited; restarting it"
                );
                sup.current.send_replace(Current::Starting);
            }
            _ => return,
        }
        drop(process);
        let mut backoff = RESTART_BACKOFF.0;
        loop {
            let Some(sup) = supervisor.upgrade() else {
                return;
            };
            if sup.is_closed() {
                return;
            }
            match restart(&sup).await {
                Ok(process) => {
                    sup.restarts.fetch_add(1, Ordering::AcqRel);
                    if !sup.is_closed() {
                        sup.current.send_replace(Current::Running(process));
                    }
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot restart the python worker; retrying in {backoff:?}");
                    sup.current.send_replace(Current::Failed(format!(
                        "the python worker could not be restarted: {e}"
                    )));
                }
            }
            drop(sup);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RESTART_BACKOFF.1);
        }
    }
}

fn running(supervisor: &Weak<WorkerSupervisor>) -> Option<Arc<WorkerProcess>> {
    let sup = supervisor.upgrade()?;
    let current = sup.current.borrow().clone();
    match current {
        Current::Running(p) => Some(p),
        _ => None,
    }
}

/// A new worker with every kept module created again.
async fn restart(sup: &WorkerSupervisor) -> Result<Arc<WorkerProcess>> {
    let process = Arc::new(WorkerProcess::spawn(&sup.config, &sup.session).await?);
    let specs: Vec<ModuleSpec> = sup.modules.lock().values().cloned().collect();
    for spec in &specs {
        create_in(&process, &sup.session, spec).await?;
    }
    tracing::info!(
        pid = process.pid(),
        modules = specs.len(),
        "python worker restarted"
    );
    Ok(process)
}

/// Checks the worker's health; replaces a worker that stops answering.
async fn health_checks(supervisor: Weak<WorkerSupervisor>) {
    let mut failures = 0;
    loop {
        let (interval, timeout) = match supervisor.upgrade() {
            Some(sup) if !sup.closed.load(Ordering::Acquire) => (
                sup.config.health_interval_value(),
                sup.config.health_timeout_value(),
            ),
            _ => return,
        };
        tokio::time::sleep(interval).await;
        let Some(process) = running(&supervisor) else {
            continue;
        };
        let mut client = process.client();
        match tokio::time::timeout(timeout, client.health(HealthRequest {})).await {
            Ok(Ok(_)) => failures = 0,
            _ if process.exit_status().is_some() => failures = 0,
            outcome => {
                failures += 1;
                tracing::warn!(
                    pid = process.pid(),
                    failures,
                    ?outcome,
                    "python worker health check failed"
                );
                if failures >= UNHEALTHY_AFTER {
                    // The monitor sees the exit and restarts it.
                    process.kill();
                    failures = 0;
                }
            }
        }
    }
}
