//! The worker supervisor: keeps a context's Python worker processes alive, one or a pool. It
//! starts them, creates every module in each, sends each call to the process with the fewest
//! calls in flight (never more than the per-process limit: further calls wait their turn),
//! checks each process's health, restarts a process that died and re-creates its modules from
//! the specs it keeps, and shuts them all down (ask, then terminate, then kill) when the context
//! goes away.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dspex_core::{FieldError, Found, MAX_ECHO_CHARS, excerpt};
use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use super::config::WorkerConfig;
use super::process::{ModuleClient, WorkerProcess};
use super::runtime;
use crate::bridge::SessionInfo;
use crate::data::spans;
use crate::error::{Cause, Error, Result};
use crate::lm::LmConfig;
use crate::wire::proto as pb;
use crate::wire::proto::ConfigValue;
use crate::wire::proto::{
    CancelCallRequest, CompileModuleRequest, CompileModuleResponse, CreateModuleRequest,
    CreateModuleResponse, DropModuleRequest, ErrorKind, ExecuteModuleRequest,
    ExecuteModuleResponse, HealthRequest, ScoreMetricRequest, ScoreMetricResponse, ShutdownRequest,
};
use crate::wire::{
    ERROR_METADATA, EXCEPTION_TYPE_METADATA, FIELD_METADATA, FIELD_TYPE_METADATA,
    FIELD_VALUE_METADATA, TRACEPARENT_METADATA,
};

/// How many failed health checks in a row make the supervisor replace a running worker.
const UNHEALTHY_AFTER: u32 = 3;
/// Backoff between failed restarts, doubling up to the maximum.
const RESTART_BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));
/// How long one `CancelCall` asks the worker to wait for an abandoned call to end; the
/// supervisor asks again until it has ended (or its process is gone), and only then frees its
/// place.
const CANCEL_WAIT: Duration = Duration::from_millis(500);
/// The pause before asking again when a `CancelCall` failed (the process is busy or dying).
const CANCEL_RETRY: Duration = Duration::from_millis(50);

/// What the supervisor keeps of a module, to create it in every process and again in a
/// restarted one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModuleSpec {
    /// The id the module has in the workers.
    pub(crate) module_id: String,
    /// A DSPy module name or a dotted path.
    pub(crate) class: String,
    /// The DSPy signature.
    pub(crate) signature: String,
    /// Module parameter -> session variable.
    pub(crate) bindings: BTreeMap<String, String>,
    /// Constructor arguments (a float, an integer, a string, a boolean or a list of strings
    /// each).
    pub(crate) config: BTreeMap<String, ConfigValue>,
    /// The module's tools, in declared order.
    pub(crate) tools: Vec<crate::wire::proto::ToolSpec>,
    /// A compiled state (DSPy's `dump_state()` as JSON) loaded into the module once created.
    pub(crate) state: Option<String>,
}

/// The state of a context's workers, for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerStatus {
    /// The process id of the first running worker process (none while they all restart).
    pub pid: Option<u32>,
    /// How many times worker processes were restarted after they died, in total.
    pub restarts: u32,
    /// How many modules the supervisor keeps (and creates in every process).
    pub modules: usize,
    /// The interpreter.
    pub python: String,
    /// Each process of the pool, in order.
    pub processes: Vec<ProcessStatus>,
}

/// The state of one worker process of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessStatus {
    /// Its process id (none while it restarts).
    pub pid: Option<u32>,
    /// How many times it was restarted after it died.
    pub restarts: u32,
    /// The calls it is running now, abandoned calls included until the worker confirms they
    /// ended.
    pub calls_in_flight: usize,
}

/// What a worker process reports of itself (its `Health` answer), for tests and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerHealth {
    /// Its process id.
    pub pid: u32,
    /// The calls it runs now, as the worker counts them.
    pub calls_in_flight: u32,
    /// The calls it has answered.
    pub calls_served: u64,
    /// The calls it cancelled because their caller gave up on them.
    pub calls_cancelled: u64,
    /// Its Python threads.
    pub threads: u32,
    /// Its resident memory, in bytes (0 where the system does not tell).
    pub rss_bytes: u64,
}

/// Which process a slot of the pool runs: none while (re)starting; an error once restarting
/// failed and the supervisor is retrying.
#[derive(Clone)]
enum Current {
    Starting,
    Running(Arc<WorkerProcess>),
    Failed(String),
    Closed,
}

/// One place of the pool: the process running there now, and its counters.
struct Slot {
    index: usize,
    current: watch::Sender<Current>,
    in_flight: AtomicUsize,
    restarts: AtomicU32,
}

impl Slot {
    /// The process if it runs (a process that died counts as restarting, even before the
    /// monitor has noticed, so that calls go elsewhere).
    fn running(&self) -> Option<Arc<WorkerProcess>> {
        match &*self.current.borrow() {
            Current::Running(p) if !p.has_exited() => Some(Arc::clone(p)),
            _ => None,
        }
    }
}

/// Keeps a context's Python worker processes running.
pub(crate) struct WorkerSupervisor {
    config: WorkerConfig,
    /// What each process reads on its stdin: the configuration and the context's LM.
    launch: pb::WorkerConfig,
    session: SessionInfo,
    slots: Vec<Arc<Slot>>,
    modules: Mutex<BTreeMap<String, ModuleSpec>>,
    /// Bumped on every change of `modules`, so that a restart knows it created them all.
    modules_generation: AtomicU64,
    /// One permit per call the pool may run at once (processes x max_concurrent_calls): calls
    /// over it wait here, in the order they came.
    capacity: Arc<Semaphore>,
    /// Serializes choosing a process, so that two calls never take the last place of one.
    choosing: Mutex<()>,
    /// Woken whenever a call ends or a process becomes ready.
    changed: Arc<Notify>,
    closed: AtomicBool,
}

impl std::fmt::Debug for WorkerSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerSupervisor")
            .field("status", &self.status())
            .finish()
    }
}

/// A call's place in a process (and in the pool's capacity): counted in the process's calls
/// in flight until the call has ended there. A lease dropped before its call answered (the
/// caller gave up, or the call timed out) cancels the call in the worker and keeps the place
/// until the worker says the call ended, or its process is gone: the count follows what the
/// worker really runs, so no call is sent to a worker that is still full.
struct Lease {
    slot: Arc<Slot>,
    changed: Arc<Notify>,
    permit: Option<OwnedSemaphorePermit>,
    /// The process and the id of the call, until it answered.
    running: Option<(Arc<WorkerProcess>, String)>,
}

impl Lease {
    /// The call answered: the worker no longer runs it.
    fn answered(&mut self) {
        self.running = None;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let release = Release {
            slot: Arc::clone(&self.slot),
            changed: Arc::clone(&self.changed),
            _permit: self.permit.take(),
        };
        match (self.running.take(), runtime()) {
            (Some((process, call_id)), Ok(runtime)) if !process.has_exited() => {
                runtime.spawn(async move {
                    cancel_until_ended(&process, call_id).await;
                    drop(release);
                });
            }
            _ => drop(release),
        }
    }
}

/// Frees a call's place when dropped.
struct Release {
    slot: Arc<Slot>,
    changed: Arc<Notify>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }
}

/// Cancels call `call_id` in `process` and returns once the worker says it has ended (its
/// thread returned and its place is free), or once the process is gone.
async fn cancel_until_ended(process: &WorkerProcess, call_id: String) {
    let wait_ms = u32::try_from(CANCEL_WAIT.as_millis()).unwrap_or(u32::MAX);
    loop {
        if process.has_exited() {
            return;
        }
        let mut client = process.client();
        let request = CancelCallRequest {
            call_id: call_id.clone(),
            wait_ms,
        };
        match tokio::time::timeout(CANCEL_WAIT * 2, client.cancel_call(request)).await {
            Ok(Ok(reply)) if !reply.get_ref().running => return,
            Ok(Ok(_)) => {
                tracing::debug!(
                    pid = process.pid(),
                    call_id,
                    "an abandoned python call is still running"
                );
            }
            outcome => {
                tracing::debug!(pid = process.pid(), call_id, ?outcome, "CancelCall failed");
                tokio::time::sleep(CANCEL_RETRY).await;
            }
        }
    }
}

impl WorkerSupervisor {
    /// Starts the worker processes for `session` and waits until they are all ready; if one
    /// cannot start, none is left running.
    ///
    /// Each process runs the context's LM, `lm`.
    pub(crate) async fn start(
        config: WorkerConfig,
        lm: &LmConfig,
        session: SessionInfo,
    ) -> Result<Arc<Self>> {
        let launch = config.launch_message(lm)?;
        let runtime = runtime()?;
        let mut starting = Vec::with_capacity(config.process_count());
        for _ in 0..config.process_count() {
            let (config, launch, session) = (config.clone(), launch.clone(), session.clone());
            starting.push(
                runtime
                    .spawn(async move { WorkerProcess::spawn(&config, &launch, &session).await }),
            );
        }
        let mut processes = Vec::with_capacity(starting.len());
        let mut failure = None;
        for task in starting {
            match task.await {
                Ok(Ok(process)) => processes.push(Arc::new(process)),
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(e) => {
                    failure =
                        failure.or(Some(Error::worker_with("the worker start task failed", e)));
                }
            }
        }
        if let Some(e) = failure {
            // Dropping the started processes kills them.
            drop(processes);
            return Err(e);
        }
        let slots = processes
            .into_iter()
            .enumerate()
            .map(|(index, process)| {
                Arc::new(Slot {
                    index,
                    current: watch::Sender::new(Current::Running(process)),
                    in_flight: AtomicUsize::new(0),
                    restarts: AtomicU32::new(0),
                })
            })
            .collect::<Vec<_>>();
        let capacity = config.process_count() * config.concurrent_calls();
        let (capacity, changed) = (Arc::new(Semaphore::new(capacity)), Arc::new(Notify::new()));
        let supervisor = Arc::new(Self {
            config,
            launch,
            session,
            slots,
            modules: Mutex::new(BTreeMap::new()),
            modules_generation: AtomicU64::new(0),
            capacity,
            choosing: Mutex::new(()),
            changed,
            closed: AtomicBool::new(false),
        });
        for slot in &supervisor.slots {
            let python = supervisor.config.interpreter().display().to_string();
            let monitored = monitor(Arc::downgrade(&supervisor), slot.index);
            runtime.spawn(async move {
                monitored.await;
                tracing::debug!(%python, "python worker monitor stopped: the worker will not be restarted");
            });
            runtime.spawn(health_checks(Arc::downgrade(&supervisor), slot.index));
        }
        Ok(supervisor)
    }

    /// The state of the workers.
    pub(crate) fn status(&self) -> WorkerStatus {
        let processes: Vec<ProcessStatus> = self
            .slots
            .iter()
            .map(|slot| ProcessStatus {
                pid: match &*slot.current.borrow() {
                    Current::Running(p) if p.exit_status().is_none() => Some(p.pid()),
                    _ => None,
                },
                restarts: slot.restarts.load(Ordering::Acquire),
                calls_in_flight: slot.in_flight.load(Ordering::Acquire),
            })
            .collect();
        WorkerStatus {
            pid: processes.iter().find_map(|p| p.pid),
            restarts: processes.iter().map(|p| p.restarts).sum(),
            modules: self.modules.lock().len(),
            python: self.config.interpreter().display().to_string(),
            processes,
        }
    }

    /// The running process of `slot`, waiting (up to the ready timeout) while it restarts.
    async fn process(&self, slot: &Slot) -> Result<Arc<WorkerProcess>> {
        let mut current = slot.current.subscribe();
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

    /// Takes a place in the running process with the fewest calls in flight. With every
    /// process restarting it waits (up to the ready timeout) for one to come back; it fails at
    /// once when every process failed to restart or the pool was shut down.
    async fn lease(&self, permit: OwnedSemaphorePermit) -> Result<(Lease, Arc<WorkerProcess>)> {
        let mut permit = Some(permit);
        let limit = self.config.concurrent_calls();
        let deadline = tokio::time::Instant::now() + self.config.ready_timeout_value();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let _one_at_a_time = self.choosing.lock();
                let least_busy = self
                    .slots
                    .iter()
                    .filter_map(|slot| slot.running().map(|p| (slot, p)))
                    .filter(|(slot, _)| slot.in_flight.load(Ordering::Acquire) < limit)
                    .min_by_key(|(slot, _)| slot.in_flight.load(Ordering::Acquire));
                if let Some((slot, process)) = least_busy {
                    slot.in_flight.fetch_add(1, Ordering::AcqRel);
                    let lease = Lease {
                        slot: Arc::clone(slot),
                        changed: Arc::clone(&self.changed),
                        permit: permit.take(),
                        running: None,
                    };
                    return Ok((lease, process));
                }
            }
            if self.is_closed() {
                return Err(Error::worker("the python worker was shut down"));
            }
            let failures: Vec<String> = self
                .slots
                .iter()
                .filter_map(|slot| match &*slot.current.borrow() {
                    Current::Failed(why) => Some(why.clone()),
                    _ => None,
                })
                .collect();
            if failures.len() == self.slots.len() {
                return Err(Error::worker(failures.join("; ")));
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(Error::worker(format!(
                    "the python worker did not come back within {:?}",
                    self.config.ready_timeout_value()
                )));
            }
        }
    }

    /// What each running worker process reports of itself (processes that do not answer
    /// within the health timeout are left out).
    pub(crate) async fn health(&self) -> Vec<WorkerHealth> {
        let mut reports = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let Some(process) = slot.running() else {
                continue;
            };
            let mut client = process.client();
            let asked = tokio::time::timeout(
                self.config.health_timeout_value(),
                client.health(HealthRequest {}),
            )
            .await;
            if let Ok(Ok(reply)) = asked {
                let h = reply.into_inner();
                reports.push(WorkerHealth {
                    pid: h.pid,
                    calls_in_flight: h.calls_in_flight,
                    calls_served: h.calls_served,
                    calls_cancelled: h.calls_cancelled,
                    threads: h.threads,
                    rss_bytes: h.rss_bytes,
                });
            }
        }
        reports
    }

    /// Whether the supervisor was shut down.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Creates a module in every worker process and keeps its spec, so that a restarted process
    /// gets it back. The spec is kept from before the calls (a process restarting meanwhile
    /// creates it too); a module a worker cannot create (unknown class, bad signature) is
    /// forgotten and dropped from the processes that did create it.
    pub(crate) async fn create_module(&self, spec: ModuleSpec) -> Result<String> {
        let module_id = spec.module_id.clone();
        self.modules.lock().insert(module_id.clone(), spec.clone());
        self.modules_generation.fetch_add(1, Ordering::AcqRel);
        let mut resolved = None;
        for slot in &self.slots {
            let created = match self.process(slot).await {
                Ok(process) => match create_in(&process, &self.session, &spec).await {
                    // The process died under the call: its restart creates the module.
                    Err(Error::Worker { .. }) if process.has_exited() => continue,
                    created => created,
                },
                Err(e) => Err(e),
            };
            match created {
                Ok(created) => resolved = Some(created.resolved_class),
                Err(e) => {
                    self.drop_module(&module_id);
                    return Err(e);
                }
            }
        }
        resolved.ok_or_else(|| {
            Error::worker(format!(
                "module `{module_id}`: every python worker died while it was being created"
            ))
        })
    }

    /// Forgets a module and drops it from every worker process, in the background.
    pub(crate) fn drop_module(&self, module_id: &str) {
        self.modules.lock().remove(module_id);
        self.modules_generation.fetch_add(1, Ordering::AcqRel);
        let Ok(runtime) = runtime() else {
            return;
        };
        for slot in &self.slots {
            if let Some(process) = slot.running() {
                let request = DropModuleRequest {
                    module_id: module_id.to_owned(),
                };
                let mut client = process.client();
                runtime.spawn(async move {
                    let _ = client.drop_module(request).await;
                });
            }
        }
    }

    /// Whether a module with this id was created.
    pub(crate) fn has_module(&self, module_id: &str) -> bool {
        self.modules.lock().contains_key(module_id)
    }

    /// Runs one call in the least busy worker process, waiting for a place when every process
    /// runs as many calls as it may. The whole call, wait included, is bounded by the call
    /// timeout. A worker that dies during the call gives this call a `Worker` error (the
    /// supervisor restarts it for the next one); a Python exception gives `Error::Python`.
    pub(crate) async fn execute(
        &self,
        step: &str,
        request: ExecuteModuleRequest,
    ) -> Result<ExecuteModuleResponse> {
        let call_id = request.call_id.clone();
        let request = traced_request(request);
        self.leased(
            step,
            self.config.call_timeout_value(),
            call_id,
            |mut client| async move {
                client
                    .execute_module(request)
                    .await
                    .map(tonic::Response::into_inner)
            },
        )
        .await
    }

    /// [`execute`](Self::execute), streamed (`ExecuteModuleStream`): `chunk` gets the text of
    /// the call's streamed fields as the worker sends it, then the reply comes as
    /// `execute`'s. Dropping the future cancels the call in the worker (the RPC is cancelled,
    /// and the call's place is freed once the worker says it ended).
    pub(crate) async fn execute_stream(
        &self,
        step: &str,
        request: ExecuteModuleRequest,
        mut chunk: impl FnMut(pb::OutputChunk) + Send,
    ) -> Result<ExecuteModuleResponse> {
        use pb::execute_module_event::Event;
        let call_id = request.call_id.clone();
        let request = traced_request(request);
        self.leased(
            step,
            self.config.call_timeout_value(),
            call_id,
            |mut client| async move {
                let mut events = client.execute_module_stream(request).await?.into_inner();
                while let Some(event) = events.message().await? {
                    match event.event {
                        Some(Event::Chunk(c)) => chunk(c),
                        Some(Event::Finished(reply)) => return Ok(reply),
                        None => {}
                    }
                }
                Err(tonic::Status::internal(
                    "the worker ended the streamed call without its reply",
                ))
            },
        )
        .await
    }

    /// Compiles a module in the least busy worker process, as a call that may take up to
    /// `timeout` (wait included). The module is left as it was in every process.
    pub(crate) async fn compile(
        &self,
        step: &str,
        request: CompileModuleRequest,
        timeout: Duration,
    ) -> Result<CompileModuleResponse> {
        let call_id = request.call_id.clone();
        self.leased(step, timeout, call_id, |mut client| async move {
            client
                .compile_module(request)
                .await
                .map(tonic::Response::into_inner)
        })
        .await
        .map_err(|e| match e {
            // What the worker refused in the request (the optimizer, a setting, the examples,
            // the metric, a limit): the worker's message says which and why.
            Error::Worker {
                source: Some(Cause::Grpc(status)),
                message,
            } => match error_kind(&status) {
                ErrorKind::Limit => Error::limit(
                    worker_limit_name(status.message()),
                    format!("step `{step}`: {}", status.message()),
                ),
                ErrorKind::InvalidRequest => {
                    Error::compile(format!("step `{step}`: {}", status.message()))
                }
                _ => Error::Worker {
                    message,
                    source: Some(Cause::Grpc(status)),
                },
            },
            e => e,
        })
    }

    /// Scores one run of a whole program with a Python metric in the least busy worker
    /// process, as a call (bounded by the call timeout). A metric that raises, or scores
    /// outside `[0, 1]`, is an [`Error::Metric`] with the Python error; one the worker cannot
    /// import an [`Error::Compile`] naming it.
    pub(crate) async fn score_metric(
        &self,
        request: ScoreMetricRequest,
    ) -> Result<ScoreMetricResponse> {
        let call_id = request.call_id.clone();
        let metric = request.metric_path.clone();
        self.leased(
            &metric.clone(),
            self.config.call_timeout_value(),
            call_id,
            |mut client| async move {
                client
                    .score_metric(request)
                    .await
                    .map(tonic::Response::into_inner)
            },
        )
        .await
        .map_err(|e| match e {
            Error::Python { message, .. } => Error::Metric { metric, message },
            Error::Worker {
                source: Some(Cause::Grpc(status)),
                ..
            } if error_kind(&status) == ErrorKind::InvalidRequest => {
                Error::compile(format!("Python metric `{metric}`: {}", status.message()))
            }
            e => e,
        })
    }

    /// Runs `call` (with id `call_id`) on a place of the least busy process, bounded by
    /// `timeout`: waiting for a place while every process runs as many calls as it may, then
    /// the call. A call given up on (this future dropped, or the timeout) is cancelled in the
    /// worker, and its place is freed once the worker says it ended.
    async fn leased<T, F, Fut>(
        &self,
        step: &str,
        timeout: Duration,
        call_id: String,
        call: F,
    ) -> Result<T>
    where
        F: FnOnce(ModuleClient) -> Fut,
        Fut: Future<Output = std::result::Result<T, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        let capacity = Arc::clone(&self.capacity).acquire_owned();
        let permit = match tokio::time::timeout_at(deadline, capacity).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(Error::worker("the python worker was shut down")),
            Err(_) => {
                return Err(Error::worker(format!(
                    "step `{step}`: no python worker had room for the call within {timeout:?} ({} processes running {} calls each at most)",
                    self.slots.len(),
                    self.config.concurrent_calls()
                )));
            }
        };
        let (mut lease, process) = self.lease(permit).await?;
        lease.running = Some((Arc::clone(&process), call_id));
        // The channel's connection task runs on the supervisor's runtime; the call itself is
        // made from the caller's, which saves a hand-over each way.
        let reply = match tokio::time::timeout_at(deadline, call(process.client())).await {
            Ok(reply) => {
                // An answer, or a refusal from the worker's code (it carries an error kind):
                // the call has ended there. A transport failure says nothing of that.
                if reply.as_ref().map_or_else(
                    |status| status.metadata().contains_key(ERROR_METADATA),
                    |_| true,
                ) {
                    lease.answered();
                }
                reply
            }
            Err(_) => {
                return Err(Error::worker(format!(
                    "step `{step}`: the python worker (pid {}) did not answer within {timeout:?}",
                    process.pid()
                )));
            }
        };
        match reply {
            Ok(response) => Ok(response),
            Err(status) => Err(call_error(&process, step, status).await),
        }
    }

    /// Checks that a module spec creates (its class, signature, configuration and compiled
    /// state), in one running worker process under a module id of its own, without keeping
    /// it: nothing changes, whatever the outcome.
    pub(crate) async fn check_module(&self, spec: &ModuleSpec) -> Result<()> {
        self.probe_module(spec).await.map(|_| ())
    }

    /// The state (DSPy's `dump_state()` as JSON) of the module a spec creates, created in one
    /// running worker process under a module id of its own and dropped again: nothing
    /// changes, whatever the outcome.
    pub(crate) async fn probe_module(&self, spec: &ModuleSpec) -> Result<String> {
        let slot = self
            .slots
            .first()
            .ok_or_else(|| Error::internal("a worker pool without processes"))?;
        let process = self.process(slot).await?;
        let probe = ModuleSpec {
            module_id: format!("{}~check", spec.module_id),
            ..spec.clone()
        };
        let created = create_in(&process, &self.session, &probe).await;
        let mut client = process.client();
        let request = DropModuleRequest {
            module_id: probe.module_id,
        };
        let _ = runtime()?
            .spawn(async move { client.drop_module(request).await })
            .await;
        created.map(|created| created.state_json)
    }

    /// Stops every worker process: asks it to shut down, then terminates it, then kills it,
    /// each after the grace period. No process is left behind.
    pub(crate) async fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.capacity.close();
        self.changed.notify_waiters();
        let Ok(runtime) = runtime() else {
            return;
        };
        let grace = self.config.shutdown_grace_value();
        let stops: Vec<_> = self
            .slots
            .iter()
            .filter_map(|slot| match slot.current.send_replace(Current::Closed) {
                Current::Running(process) => Some(runtime.spawn(stop_process(process, grace))),
                _ => None,
            })
            .collect();
        for stop in stops {
            let _ = stop.await;
        }
    }
}

impl Drop for WorkerSupervisor {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        for slot in &self.slots {
            if let Current::Running(process) = slot.current.send_replace(Current::Closed) {
                match runtime() {
                    Ok(runtime) => {
                        runtime.spawn(stop_process(process, self.config.shutdown_grace_value()));
                    }
                    Err(_) => process.kill(),
                }
            }
        }
    }
}

/// The kind a worker's error status carries.
fn error_kind(status: &tonic::Status) -> ErrorKind {
    status
        .metadata()
        .get(ERROR_METADATA)
        .and_then(|v| v.to_str().ok())
        .and_then(ErrorKind::from_str_name)
        .unwrap_or(ErrorKind::Unspecified)
}

/// The output a worker's `OUTPUT_TYPE` error is about, from its trailers: the field, its
/// declared type and an excerpt of the value the module returned (quoted as the worker wrote
/// it, unless it is longer than an excerpt can be).
fn output_type_error(status: &tonic::Status) -> Option<FieldError> {
    let metadata = status.metadata();
    let field = metadata.get(FIELD_METADATA)?.to_str().ok()?;
    let expected = metadata
        .get(FIELD_TYPE_METADATA)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    let value = metadata.get_bin(FIELD_VALUE_METADATA)?.to_bytes().ok()?;
    let value = String::from_utf8_lossy(&value);
    // An excerpt is at most MAX_ECHO_CHARS chars and its length note ("... (123 chars)").
    let value = if value.chars().count() <= MAX_ECHO_CHARS + 32 {
        value.into_owned()
    } else {
        excerpt(&value)
    };
    Some(FieldError {
        field: field.to_owned(),
        expected,
        found: Found::Value(value),
    })
}

/// A call's request, carrying the step's span, which the worker's calls back into this process
/// continue.
fn traced_request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    // The step's span, which the worker's calls back into this process continue.
    if let Some(traceparent) = spans::traceparent()
        && let Ok(value) = traceparent.parse()
    {
        request.metadata_mut().insert(TRACEPARENT_METADATA, value);
    }
    request
}

/// Turns a failed call into the error the caller should see.
async fn call_error(process: &WorkerProcess, step: &str, status: tonic::Status) -> Error {
    let pid = process.pid();
    let kind = error_kind(&status);
    if kind == ErrorKind::OutputType
        && let Some(error) = output_type_error(&status)
    {
        return Error::Field {
            context: format!("the output of python step `{step}`"),
            error: Box::new(error),
        };
    }
    match kind {
        ErrorKind::Python | ErrorKind::OutputType | ErrorKind::InputType => {
            return Error::Python {
                step: step.to_owned(),
                exception: exception_type(&status),
                message: status.message().to_owned(),
            };
        }
        _ => {}
    }
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

async fn create_in(
    process: &WorkerProcess,
    session: &SessionInfo,
    spec: &ModuleSpec,
) -> Result<CreateModuleResponse> {
    let request = CreateModuleRequest {
        session_id: session.session_id.clone(),
        module_id: spec.module_id.clone(),
        module_class: spec.class.clone(),
        signature: spec.signature.clone(),
        bindings: spec.bindings.clone().into_iter().collect(),
        config: spec.config.clone().into_iter().collect(),
        tools: spec.tools.clone(),
        state_json: spec.state.clone(),
    };
    let mut client = process.client();
    let reply = runtime()?
        .spawn(async move { client.create_module(request).await })
        .await
        .map_err(|e| Error::worker_with("the call task failed", e))?;
    match reply {
        Ok(r) => Ok(r.into_inner()),
        Err(status) if error_kind(&status) == ErrorKind::Module => Err(Error::Python {
            step: spec.module_id.clone(),
            exception: exception_type(&status),
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

/// The process running in slot `index`, if the supervisor is still there.
fn running(supervisor: &Weak<WorkerSupervisor>, index: usize) -> Option<Arc<WorkerProcess>> {
    let sup = supervisor.upgrade()?;
    let current = sup.slots[index].current.borrow().clone();
    match current {
        Current::Running(p) => Some(p),
        _ => None,
    }
}

/// Restarts the process of slot `index` whenever it exits, until the supervisor closes or goes
/// away. It holds the supervisor only while restarting, so a context dropped during a failing
/// restart loop still drops its supervisor and the loop ends.
async fn monitor(supervisor: Weak<WorkerSupervisor>, index: usize) {
    loop {
        let Some(process) = running(&supervisor, index) else {
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
                sup.slots[index].current.send_replace(Current::Starting);
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
            let slot = &sup.slots[index];
            match restart(&sup).await {
                Ok(process) => {
                    slot.restarts.fetch_add(1, Ordering::AcqRel);
                    if !sup.is_closed() {
                        slot.current.send_replace(Current::Running(process));
                        sup.changed.notify_waiters();
                    }
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot restart the python worker; retrying in {backoff:?}");
                    slot.current.send_replace(Current::Failed(format!(
                        "the python worker could not be restarted: {e}"
                    )));
                    sup.changed.notify_waiters();
                }
            }
            drop(sup);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RESTART_BACKOFF.1);
        }
    }
}

/// A new worker process with every kept module created in it: the modules are created again
/// until no module was added or dropped meanwhile.
async fn restart(sup: &WorkerSupervisor) -> Result<Arc<WorkerProcess>> {
    let process = Arc::new(WorkerProcess::spawn(&sup.config, &sup.launch, &sup.session).await?);
    loop {
        let generation = sup.modules_generation.load(Ordering::Acquire);
        let specs: Vec<ModuleSpec> = sup.modules.lock().values().cloned().collect();
        for spec in &specs {
            create_in(&process, &sup.session, spec).await?;
        }
        if generation == sup.modules_generation.load(Ordering::Acquire) {
            tracing::info!(
                pid = process.pid(),
                modules = specs.len(),
                "python worker restarted"
            );
            return Ok(process);
        }
    }
}

/// Checks the health of the process of slot `index`; replaces one that stops answering.
async fn health_checks(supervisor: Weak<WorkerSupervisor>, index: usize) {
    let mut failures = 0;
    loop {
        let (interval, timeout) = match supervisor.upgrade() {
            Some(sup) if !sup.is_closed() => (
                sup.config.health_interval_value(),
                sup.config.health_timeout_value(),
            ),
            _ => return,
        };
        tokio::time::sleep(interval).await;
        let Some(process) = running(&supervisor, index) else {
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

/// The type of the Python exception a worker's error carries (its
/// `EXCEPTION_TYPE_METADATA` trailer), if it carries one.
fn exception_type(status: &tonic::Status) -> Option<String> {
    let bytes = status
        .metadata()
        .get_bin(EXCEPTION_TYPE_METADATA)?
        .to_bytes()
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// The bound a worker's `LIMIT` refusal names: the last `(MAX_...)` of its message (each
/// limit message ends with the constant's name), else `worker limit`.
fn worker_limit_name(message: &str) -> String {
    message
        .rmatch_indices("(MAX_")
        .next()
        .and_then(|(at, _)| {
            let name = &message[at + 1..];
            name.find(')').map(|end| name[..end].to_owned())
        })
        .unwrap_or_else(|| "worker limit".to_owned())
}
