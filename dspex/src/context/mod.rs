//! `Context`: the handle programs and users hold, owning one state backend at a time, and the
//! variables API (the verbs of the original design) over it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use std::sync::OnceLock;

use dspex_core::{Constraints, Glob, Value, VariableSpec};
use parking_lot::Mutex;

use crate::bridge::{BridgeServer, BridgedState, SessionInfo};
use crate::error::{Error, Result};
use crate::state::{
    BackendKind, Capabilities, DEFAULT_HISTORY_LIMIT, ExportedVar, GetMany, HistoryEntry, Key,
    LocalState, SetOptions, SharedConfig, SharedState, Source, StateProvider, VarRecord, WatchHub,
    WatchOptions, Watcher,
};
use crate::worker::{WorkerConfig, WorkerStatus, WorkerSupervisor};

mod builder;
pub(crate) mod time;
mod var;

pub use builder::ContextBuilder;
pub use var::{Choice, Embedding, ModuleName, Var, VarValue};

/// What a context's backend is and how it got there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendInfo {
    /// Local, bridged or shared.
    pub kind: BackendKind,
    /// What the backend can do.
    pub capabilities: Capabilities,
    /// Whether something in the context (a python step) needs the bridge.
    pub requires_bridge: bool,
    /// How many times the context switched backends.
    pub switches: u32,
    /// How long the last switch took (migration included).
    pub last_switch: Option<Duration>,
}

impl fmt::Display for BackendInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} backend", self.kind)?;
        if self.switches > 0 {
            write!(f, " ({} switch", self.switches)?;
            if self.switches > 1 {
                f.write_str("es")?;
            }
            if let Some(d) = self.last_switch {
                write!(f, ", last took {d:.2?}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

struct Inner {
    id: u64,
    /// The backend the context started on.
    initial: Arc<dyn StateProvider>,
    /// The backend it upgraded to, once. Reading a `OnceLock` is one atomic load, which keeps
    /// the local read path at a single read lock; the initial backend forwards the calls that
    /// raced with the upgrade.
    upgraded: OnceLock<Arc<dyn StateProvider>>,
    /// The backend of a second switch: a bridged context that moved into a shared session
    /// (read only once `upgraded` is set, so that the local read path stays one load).
    second: OnceLock<Arc<dyn StateProvider>>,
    hub: Arc<WatchHub>,
    requires_bridge: AtomicBool,
    switches: AtomicU32,
    last_switch_nanos: AtomicU64,
    /// Serializes backend switches.
    switching: Mutex<()>,
    /// The bridge server to use when the context bridges (the process-wide one when `None`).
    server: Option<BridgeServer>,
    /// How the Python worker is started.
    worker_config: WorkerConfig,
    /// The Python worker, started by the first python step (and again after
    /// `shutdown_worker`). Dropping it starts its shutdown in the background.
    worker: Mutex<Option<Arc<WorkerSupervisor>>>,
    /// Serializes worker starts.
    worker_start: tokio::sync::Mutex<()>,
    /// The context's session in the bridge's store, once bridged. Dropping the context drops
    /// it, which releases the session.
    bridge: OnceLock<Arc<BridgedState>>,
    /// The shared session the context's variables live in, once shared.
    shared: OnceLock<Arc<SharedState>>,
    /// How many writes each variable's history keeps in the backends the context creates.
    history_limit: usize,
}

/// A handle that does not keep a context alive (held by the context's own bridge session).
#[derive(Clone)]
pub(crate) struct WeakContext(std::sync::Weak<Inner>);

impl WeakContext {
    /// The context, if it is still alive.
    pub(crate) fn upgrade(&self) -> Option<Context> {
        self.0.upgrade().map(|inner| Context { inner })
    }
}

/// A cheap-to-clone, `Send + Sync` handle to a set of variables and the backend that holds
/// them. Every clone sees the same variables; the backend can change underneath (local to
/// bridged) without the handles noticing.
///
/// ```
/// use dspex::{Context, Constraints, BackendKind};
///
/// let ctx = Context::new();
/// let temperature = ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
/// temperature.set(0.9)?;
/// assert_eq!(ctx.get::<f64>("temperature")?, 0.9);
/// assert!(ctx.set("temperature", 3.0).is_err());
/// assert_eq!(ctx.backend().kind, BackendKind::Local);
/// # Ok::<(), dspex::Error>(())
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
}

impl Default for Context {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.inner.id)
            .field("backend", &self.backend())
            .finish()
    }
}

impl Context {
    /// A context on a fresh local backend.
    pub fn new() -> Self {
        let hub: Arc<WatchHub> = Arc::default();
        let local = LocalState::with_hub(Arc::clone(&hub));
        Self::with_backend_and_hub(
            Arc::new(local),
            hub,
            None,
            None,
            WorkerConfig::default(),
            DEFAULT_HISTORY_LIMIT,
        )
    }

    /// A builder to choose the backend (local or bridged) and the bridge server.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> dspex::Result<()> {
    /// use dspex::{BackendKind, Context};
    ///
    /// let ctx = Context::builder().bridged().build().await?;
    /// assert_eq!(ctx.backend().kind, BackendKind::Bridged);
    /// # Ok(()) }
    /// ```
    pub fn builder() -> ContextBuilder {
        ContextBuilder::default()
    }

    pub(crate) fn with_backend_and_hub(
        backend: Arc<dyn StateProvider>,
        hub: Arc<WatchHub>,
        server: Option<BridgeServer>,
        bridge: Option<Arc<BridgedState>>,
        worker_config: WorkerConfig,
        history_limit: usize,
    ) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let bridge_cell = OnceLock::new();
        if let Some(bridge) = bridge {
            let _ = bridge_cell.set(bridge);
        }
        Self {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                initial: backend,
                upgraded: OnceLock::new(),
                second: OnceLock::new(),
                hub,
                requires_bridge: AtomicBool::new(false),
                switches: AtomicU32::new(0),
                last_switch_nanos: AtomicU64::new(0),
                switching: Mutex::new(()),
                server,
                worker_config,
                worker: Mutex::new(None),
                worker_start: tokio::sync::Mutex::new(()),
                bridge: bridge_cell,
                shared: OnceLock::new(),
                history_limit,
            }),
        }
    }

    /// A context on a shared session (see [`ContextBuilder::shared`]).
    pub(crate) fn on_shared(
        shared: Arc<SharedState>,
        hub: Arc<WatchHub>,
        server: Option<BridgeServer>,
        worker_config: WorkerConfig,
        history_limit: usize,
    ) -> Self {
        let ctx = Self::with_backend_and_hub(
            Arc::clone(&shared) as Arc<dyn StateProvider>,
            hub,
            server,
            None,
            worker_config,
            history_limit,
        );
        let _ = ctx.inner.shared.set(shared);
        ctx
    }

    /// A number identifying the context within the process.
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// The current backend: kind, capabilities, switch count and last switch duration.
    pub fn backend(&self) -> BackendInfo {
        let backend = self.current();
        let nanos = self.inner.last_switch_nanos.load(Ordering::Acquire);
        let switches = self.inner.switches.load(Ordering::Acquire);
        BackendInfo {
            kind: backend.kind(),
            capabilities: backend.capabilities(),
            requires_bridge: self.inner.requires_bridge.load(Ordering::Acquire),
            switches,
            last_switch: (switches > 0).then(|| Duration::from_nanos(nanos)),
        }
    }

    /// Runs `op` on the current backend. A call that picks the backend just before a switch
    /// is forwarded by the old backend to the new one, so it is neither lost nor applied twice.
    #[inline]
    pub(crate) fn with_backend<R>(&self, op: impl FnOnce(&dyn StateProvider) -> R) -> R {
        op(self.current())
    }

    #[inline]
    fn current(&self) -> &dyn StateProvider {
        match self.inner.upgraded.get() {
            None => self.inner.initial.as_ref(),
            Some(upgraded) => self.inner.second.get().unwrap_or(upgraded).as_ref(),
        }
    }

    /// The context's watch hub, shared with every backend it switches to.
    pub(crate) fn hub(&self) -> &Arc<WatchHub> {
        &self.inner.hub
    }

    /// Marks the context as needing the bridge (a python step was added).
    pub(crate) fn mark_requires_bridge(&self) {
        self.inner.requires_bridge.store(true, Ordering::Release);
    }

    /// Moves every variable into `target` and makes it the backend, atomically with respect to
    /// every other operation: the current backend hands its records over under its write lock,
    /// and only once `target` holds them and is installed does it drop them and start
    /// forwarding. If the import fails the context keeps its current backend, untouched.
    /// Migrated records keep their ids, values, versions, constraints, descriptions and
    /// metadata, and gain `migrated_from` and `migrated_at` metadata. A context upgrades once.
    #[cfg(test)]
    pub(crate) fn switch_backend(&self, target: Arc<dyn StateProvider>) -> Result<()> {
        let _one_at_a_time = self.inner.switching.lock();
        self.switch_locked(Arc::clone(&target), &mut |records| target.import(records))
    }

    /// Moves the context's variables into a session of the bridge's store, so that Python
    /// processes can share them; does nothing if the context is bridged already.
    ///
    /// The switch is transactional. The bridge server is brought up (the one given to
    /// [`Context::builder`], else the process-wide [`BridgeServer::global`]) and a session is
    /// created with the context's watch hub first; then the local store hands every record over
    /// under its write lock, the session imports them, the session becomes the backend and the
    /// local store empties itself, forwarding the calls that raced with the switch. Writes
    /// running concurrently are neither lost nor applied twice, and watchers keep receiving.
    /// If the bridge cannot be brought up the context stays local and intact, and the error
    /// ([`Error::Bridge`]) says why.
    ///
    /// Migrated variables keep their ids, values, versions, constraints, descriptions and
    /// metadata, and gain `migrated_from = "local"` and `migrated_at` (RFC 3339) metadata.
    /// [`backend`](Self::backend) reports the switch count and how long the switch took.
    ///
    /// The switch takes about a millisecond per thousand variables, plus, the first time in a
    /// process, a millisecond or so for the process-wide server to start its thread. It runs
    /// on the runtime's blocking threads (`spawn_blocking`), never on the thread that awaits
    /// it, so other tasks of the runtime keep running, even on a `current_thread` runtime.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> dspex::Result<()> {
    /// use dspex::{BackendKind, Constraints, Context};
    ///
    /// let ctx = Context::new();
    /// let t = ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
    /// ctx.ensure_bridged().await?;
    /// ctx.ensure_bridged().await?; // idempotent
    /// assert_eq!(ctx.backend().kind, BackendKind::Bridged);
    /// assert_eq!(ctx.backend().switches, 1);
    /// assert_eq!(t.get()?, 0.7);
    /// assert_eq!(t.record()?.metadata["migrated_from"], "local");
    /// let info = ctx.bridge_session().expect("bridged");
    /// println!("python connects to {} as {}", info.address, info.session_id);
    /// # Ok(()) }
    /// ```
    pub async fn ensure_bridged(&self) -> Result<()> {
        if self.is_bridged() {
            return Ok(());
        }
        let ctx = self.clone();
        off_runtime(move || ctx.bridge_now()).await
    }

    /// Whether Python can reach the context's variables through a bridge session already.
    fn is_bridged(&self) -> bool {
        self.inner.bridge.get().is_some() || self.current().kind() == BackendKind::Bridged
    }

    /// [`ensure_bridged`](Self::ensure_bridged) on the calling thread. A shared context does
    /// not switch: its bridge session forwards every call to the shared backend.
    fn bridge_now(&self) -> Result<()> {
        let _one_at_a_time = self.inner.switching.lock();
        if self.is_bridged() {
            return Ok(());
        }
        let server = match &self.inner.server {
            Some(server) => server.clone(),
            None => BridgeServer::global()?,
        };
        let bridged = Arc::new(
            server
                .open_session_with_hub(Arc::clone(self.hub()))?
                .with_history_limit(self.inner.history_limit)?,
        );
        // On failure `bridged` is dropped here, which removes its session from the store.
        match self.inner.shared.get() {
            Some(shared) => bridged.forward_to(Arc::clone(shared) as Arc<dyn StateProvider>)?,
            None => {
                let target = Arc::clone(&bridged) as Arc<dyn StateProvider>;
                self.switch_locked(Arc::clone(&target), &mut |records| target.import(records))?;
            }
        }
        self.inner
            .bridge
            .set(bridged)
            .map_err(|_| Error::internal("context bridged twice"))
    }

    /// Moves the context's variables into the shared session `session` on the Redis at `url`
    /// (see [`SharedState`]), so that every process that opens the session shares them; does
    /// nothing if the context is in that session already. Like
    /// [`ensure_bridged`](Self::ensure_bridged), the move is transactional, and a bridged
    /// context keeps its bridge session (its Python workers reach the shared variables
    /// through it).
    ///
    /// For each variable of the context:
    ///
    /// - the session does not hold its name: it is created in the session with its value,
    ///   version, description, metadata (plus `migrated_from` and `migrated_at`) and times,
    ///   and a new id of the session;
    /// - the session holds it with the same declaration (type, constraints, description):
    ///   **the session's record wins** (its value, version and metadata: other processes
    ///   already use it), and the context's watchers get an `Updated` event if the value
    ///   differs from the context's;
    /// - the session holds it with another declaration: the move is refused with
    ///   [`Error::DeclarationMismatch`] naming the variable and what differs, and the context
    ///   stays as it was.
    ///
    /// Typed handles ([`Var`]) keep working across the move. Runs on the runtime's blocking
    /// threads.
    ///
    /// # Errors
    ///
    /// [`Error::DeclarationMismatch`]; [`Error::Shared`] naming the URL if Redis cannot be
    /// reached; [`Error::InvalidOption`] for a bad session name or setting, or if the context
    /// is already in another shared session. The context is unchanged on every error.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> dspex::Result<()> {
    /// use dspex::{BackendKind, Constraints, Context};
    ///
    /// let ctx = Context::new();
    /// let t = ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
    /// ctx.ensure_shared("redis://127.0.0.1:6379/0", "qa-prod").await?;
    /// assert_eq!(ctx.backend().kind, BackendKind::Shared);
    /// println!("temperature in the session: {}", t.get()?);
    /// # Ok(()) }
    /// ```
    pub async fn ensure_shared(
        &self,
        url: impl Into<String>,
        session: impl Into<String>,
    ) -> Result<()> {
        self.ensure_shared_with(SharedConfig::new(url, session))
            .await
    }

    /// [`ensure_shared`](Self::ensure_shared) with the session's settings (TTL, heartbeat,
    /// stream length).
    ///
    /// # Errors
    ///
    /// As [`ensure_shared`](Self::ensure_shared).
    pub async fn ensure_shared_with(&self, config: SharedConfig) -> Result<()> {
        let ctx = self.clone();
        off_runtime(move || ctx.share_now(config)).await
    }

    fn share_now(&self, config: SharedConfig) -> Result<()> {
        let _one_at_a_time = self.inner.switching.lock();
        if let Some(current) = self.inner.shared.get() {
            let same =
                current.config().url() == config.url() && current.session() == config.session();
            return if same {
                Ok(())
            } else {
                Err(Error::InvalidOption {
                    option: "shared session".to_owned(),
                    message: format!(
                        "the context is in shared session `{}` at {} already; it cannot move to `{}` at {}",
                        current.session(),
                        current.config().shown_url(),
                        config.session(),
                        config.shown_url()
                    ),
                })
            };
        }
        let shared = Arc::new(SharedState::open_with_hub(config, Arc::clone(self.hub()))?);
        let target = Arc::clone(&shared) as Arc<dyn StateProvider>;
        self.switch_locked(target, &mut |records| shared.adopt(records))?;
        self.inner
            .shared
            .set(shared)
            .map_err(|_| Error::internal("context shared twice"))
    }

    /// The shared session the context's variables live in, if any.
    pub fn shared_state(&self) -> Option<&SharedState> {
        self.inner.shared.get().map(AsRef::as_ref)
    }

    /// The address, session id and token a Python process needs to reach this context's
    /// variables; `None` while the context is local.
    pub fn bridge_session(&self) -> Option<SessionInfo> {
        self.inner.bridge.get().map(|b| b.session_info())
    }

    pub(crate) fn downgrade(&self) -> WeakContext {
        WeakContext(Arc::downgrade(&self.inner))
    }

    /// Registers `callback` for this context's bridge session (bridging the context first), so
    /// that the context's Python code (its workers' tools, metrics) can call it by name through
    /// the bridge server's `CallbackService`. A callback of the same name is replaced. Only this
    /// context's session reaches it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for an empty or over-long name or a timeout outside
    /// `(0, MAX_CALLBACK_TIMEOUT]`; the errors of [`ensure_bridged`](Self::ensure_bridged).
    pub async fn register_callback(&self, callback: crate::bridge::Callback) -> Result<()> {
        callback.check()?;
        self.ensure_bridged().await?;
        self.callbacks()?.register(callback, self)
    }

    /// Removes the callback named `name`; whether there was one.
    pub fn unregister_callback(&self, name: &str) -> bool {
        self.callbacks().is_ok_and(|c| c.unregister(name))
    }

    /// The callables of the context's bridge session.
    pub(crate) fn callbacks(&self) -> Result<&Arc<crate::bridge::callback::CallbackRegistry>> {
        self.inner
            .bridge
            .get()
            .map(|b| b.callbacks())
            .ok_or_else(|| Error::internal("the context has no bridge session"))
    }

    /// The bridge server of a bridged context.
    pub fn bridge_server(&self) -> Option<&BridgeServer> {
        self.inner.bridge.get().map(|b| b.server())
    }

    /// The context's Python worker: started on first use (the context bridges first), then
    /// shared by every python step of the context. Fails with [`Error::Worker`] naming the
    /// interpreter and what went wrong when the worker cannot start; a later call tries again.
    pub async fn worker(&self) -> Result<Arc<WorkerSupervisor>> {
        if let Some(worker) = self.running_worker() {
            return Ok(worker);
        }
        self.ensure_bridged().await?;
        let _one_at_a_time = self.inner.worker_start.lock().await;
        if let Some(worker) = self.running_worker() {
            return Ok(worker);
        }
        let session = self
            .bridge_session()
            .ok_or_else(|| Error::internal("a bridged context has no session"))?;
        let worker = WorkerSupervisor::start(self.inner.worker_config.clone(), session).await?;
        *self.inner.worker.lock() = Some(Arc::clone(&worker));
        Ok(worker)
    }

    /// The worker if one is running (not shut down).
    pub(crate) fn running_worker(&self) -> Option<Arc<WorkerSupervisor>> {
        self.inner
            .worker
            .lock()
            .as_ref()
            .filter(|w| !w.is_closed())
            .cloned()
    }

    /// The state of the context's Python worker, if one was started and not shut down.
    pub fn worker_status(&self) -> Option<WorkerStatus> {
        self.running_worker().map(|w| w.status())
    }

    /// Stops the context's Python worker now (ask, terminate, kill) instead of when the
    /// context is dropped. A later python step starts a new one, and creates its module in it
    /// again.
    pub async fn shutdown_worker(&self) {
        let worker = self.inner.worker.lock().take();
        if let Some(worker) = worker {
            worker.shutdown().await;
        }
    }

    /// How many writes each variable's history keeps in the backends the context creates
    /// (set with [`ContextBuilder::history_limit`]).
    pub fn history_limit(&self) -> usize {
        self.inner.history_limit
    }

    /// The switch itself; the caller holds `switching`. `fill` moves the variables into
    /// `target`. A context switches at most twice (local to bridged to shared).
    fn switch_locked(
        &self,
        target: Arc<dyn StateProvider>,
        fill: &mut dyn FnMut(Vec<ExportedVar>) -> Result<()>,
    ) -> Result<()> {
        let (current, slot) = match self.inner.upgraded.get() {
            None => (&self.inner.initial, &self.inner.upgraded),
            Some(upgraded) if self.inner.second.get().is_none() => (upgraded, &self.inner.second),
            Some(_) => {
                return Err(Error::internal("a context switches backends at most twice"));
            }
        };
        let started = Instant::now();
        let from = current.kind().to_string();
        let at = time::rfc3339(SystemTime::now());
        current.migrate_out(&mut |variables| {
            let variables = variables
                .into_iter()
                .map(|mut v| {
                    let metadata = &mut v.record.metadata;
                    metadata.insert("migrated_from".to_owned(), from.clone());
                    metadata.insert("migrated_at".to_owned(), at.clone());
                    v
                })
                .collect();
            fill(variables)?;
            slot.set(Arc::clone(&target))
                .map_err(|_| Error::internal("backend switched twice"))?;
            Ok(Arc::clone(&target))
        })?;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.inner.last_switch_nanos.store(nanos, Ordering::Release);
        self.inner.switches.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    // ---- registration -------------------------------------------------------------------

    /// Registers a variable of the Rust type `T` and returns its typed handle.
    ///
    /// ```
    /// use dspex::{Context, Constraints, Choice};
    ///
    /// let ctx = Context::new();
    /// let model = ctx.defvariable::<Choice>(
    ///     "model",
    ///     "gpt-4o-mini",
    ///     Constraints::choices(["gpt-4o-mini", "claude-3-haiku"]),
    /// )?;
    /// assert_eq!(model.get()?, "gpt-4o-mini");
    /// assert!(ctx.defvariable::<f64>("model", 1.0, Constraints::none()).is_err()); // AlreadyExists
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn defvariable<T: VarValue>(
        &self,
        name: &str,
        initial: impl Into<T>,
        constraints: Constraints,
    ) -> Result<Var<T>> {
        let spec = VariableSpec::new(name, T::TYPE, initial.into().into_value())
            .with_constraints(constraints);
        self.defvariable_with(spec)
    }

    /// Registers a full declaration (description, metadata) and returns its typed handle.
    /// Fails with `TypeMismatch` if `T` does not fit the declared type.
    pub fn defvariable_with<T: VarValue>(&self, spec: VariableSpec) -> Result<Var<T>> {
        if !T::fits(spec.ty) {
            return Err(Error::TypeMismatch {
                name: spec.name,
                expected: T::TYPE.name(),
                found: spec.ty.name(),
            });
        }
        let record = self.register(spec)?;
        self.var(&record.name)
    }

    /// Registers a variable and returns its record.
    pub fn register(&self, spec: VariableSpec) -> Result<VarRecord> {
        self.with_backend(|b| b.register(spec, Source::Rust))
    }

    /// A typed handle to an existing variable.
    pub fn var<T: VarValue>(&self, name: &str) -> Result<Var<T>> {
        let (vref, ty) = self.with_backend(|b| -> Result<_> {
            let vref = b.resolve(name)?;
            let mut ty = None;
            b.read(vref.into(), &mut |r| ty = Some(r.ty))?;
            Ok((vref, ty))
        })?;
        let ty = ty.ok_or_else(|| Error::not_found(name))?;
        if !T::fits(ty) {
            return Err(Error::TypeMismatch {
                name: name.to_owned(),
                expected: T::TYPE.name(),
                found: ty.name(),
            });
        }
        Ok(Var::new(self.clone(), name, vref))
    }

    // ---- reads --------------------------------------------------------------------------

    #[inline]
    pub(crate) fn read_typed<T: VarValue>(&self, key: Key<'_>, name: &str) -> Result<T> {
        let mut out: Option<std::result::Result<T, dspex_core::VarType>> = None;
        self.with_backend(|b| {
            b.read(key, &mut |r| {
                out = Some(T::from_value(&r.value).ok_or(r.ty));
            })
        })?;
        match out {
            Some(Ok(v)) => Ok(v),
            Some(Err(found)) => Err(Error::TypeMismatch {
                name: name.to_owned(),
                expected: T::TYPE.name(),
                found: found.name(),
            }),
            None => Err(Error::internal("read returned without a record")),
        }
    }

    /// The value of `name` as `T`.
    #[inline]
    pub fn get<T: VarValue>(&self, name: &str) -> Result<T> {
        self.read_typed(Key::Name(name), name)
    }

    /// The value of `name` as `T`, or `default` if there is no such variable. A variable of
    /// another type is still an error.
    pub fn get_or<T: VarValue>(&self, name: &str, default: T) -> Result<T> {
        match self.get(name) {
            Err(Error::NotFound { .. }) => Ok(default),
            other => other,
        }
    }

    /// The value of `name`, untyped.
    pub fn get_value(&self, name: &str) -> Result<Value> {
        let mut out = None;
        self.with_backend(|b| b.read(Key::Name(name), &mut |r| out = Some(r.value.clone())))?;
        out.ok_or_else(|| Error::not_found(name))
    }

    /// The full record of `name`.
    pub fn record(&self, name: &str) -> Result<VarRecord> {
        self.with_backend(|b| b.get(Key::Name(name)))
    }

    /// The values of several variables; names that do not exist are listed in `missing`.
    pub fn get_many(&self, names: &[&str]) -> Result<GetMany> {
        self.with_backend(|b| b.get_many(names))
    }

    /// Whether a variable named `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.with_backend(|b| b.read(Key::Name(name), &mut |_| {}))
            .is_ok()
    }

    /// The records sorted by name; with a pattern, only those whose whole name matches the glob
    /// (`*`, `?`, `[a-z]`).
    pub fn list(&self, pattern: Option<&str>) -> Result<Vec<VarRecord>> {
        let glob = pattern.map(Glob::new).transpose()?;
        self.with_backend(|b| b.list(glob.as_ref()))
    }

    // ---- writes -------------------------------------------------------------------------

    #[inline]
    pub(crate) fn set_key(&self, key: Key<'_>, value: Value, options: &SetOptions) -> Result<u64> {
        self.with_backend(|b| b.set(key, value, options, Source::Rust))
    }

    /// Validates and writes `value`; returns the new version. A rejected value changes nothing.
    #[inline]
    pub fn set(&self, name: &str, value: impl Into<Value>) -> Result<u64> {
        self.set_key(Key::Name(name), value.into(), &SetOptions::default())
    }

    /// Writes with options: compare-and-set (`expected_version`) and metadata.
    ///
    /// ```
    /// use dspex::{Context, Constraints, Error, SetOptions};
    ///
    /// let ctx = Context::new();
    /// ctx.defvariable::<i64>("n", 1, Constraints::none())?;
    /// let v = ctx.record("n")?.version;
    /// ctx.set_with("n", 2, &SetOptions::expect_version(v).with_metadata("by", "doc"))?;
    /// assert!(matches!(
    ///     ctx.set_with("n", 3, &SetOptions::expect_version(v)),
    ///     Err(Error::Conflict { .. })
    /// ));
    /// assert_eq!(ctx.record("n")?.metadata["by"], "doc");
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn set_with(
        &self,
        name: &str,
        value: impl Into<Value>,
        options: &SetOptions,
    ) -> Result<u64> {
        self.set_key(Key::Name(name), value.into(), options)
    }

    /// Compare-and-set loop: read the value and its version, compute `f` outside any lock, write
    /// it if the version is unchanged, else start again with the newer value.
    pub(crate) fn update_key<T: VarValue>(
        &self,
        key: Key<'_>,
        name: &str,
        mut f: impl FnMut(T) -> T,
    ) -> Result<T> {
        loop {
            let mut read = None;
            self.with_backend(|b| {
                b.read(key, &mut |r| {
                    read = Some((T::from_value(&r.value).ok_or(r.ty), r.version));
                })
            })?;
            let (current, version) =
                read.ok_or_else(|| Error::internal("read returned without a record"))?;
            let current = current.map_err(|found| Error::TypeMismatch {
                name: name.to_owned(),
                expected: T::TYPE.name(),
                found: found.name(),
            })?;
            let next = f(current);
            let options = SetOptions::expect_version(version);
            match self.set_key(key, next.clone().into_value(), &options) {
                Ok(_) => return Ok(next),
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Atomically replaces the value of `name` with `f(current)`; returns the new value. No
    /// concurrent write is lost between the read and the write: `f` runs outside any lock and
    /// the result is written only if the variable is still at the version `f` saw; otherwise
    /// `f` runs again on the newer value. So `f` may run more than once, and may itself read
    /// the context.
    ///
    /// ```
    /// use dspex::{Context, Constraints};
    ///
    /// let ctx = Context::new();
    /// ctx.defvariable::<f64>("scale", 2.0, Constraints::none())?;
    /// ctx.defvariable::<f64>("x", 1.5, Constraints::none())?;
    /// let scaled = ctx.update::<f64>("x", |x| x * ctx.get::<f64>("scale").unwrap_or(1.0))?;
    /// assert_eq!(scaled, 3.0);
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn update<T: VarValue>(&self, name: &str, f: impl FnMut(T) -> T) -> Result<T> {
        self.update_key(Key::Name(name), name, f)
    }

    /// Atomically writes several variables: all are validated first, then all apply or none.
    ///
    /// ```
    /// use dspex::{Context, Constraints, Value};
    ///
    /// let ctx = Context::new();
    /// ctx.defvariable::<i64>("a", 1, Constraints::range(0, 10))?;
    /// ctx.defvariable::<i64>("b", 1, Constraints::range(0, 10))?;
    /// assert!(ctx.update_many([("a", Value::from(5)), ("b", Value::from(50))]).is_err());
    /// assert_eq!(ctx.get::<i64>("a")?, 1); // nothing applied
    /// ctx.update_many([("a", Value::from(5)), ("b", Value::from(6))])?;
    /// assert_eq!(ctx.get::<i64>("b")?, 6);
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn update_many<'a>(
        &self,
        writes: impl IntoIterator<Item = (&'a str, Value)>,
    ) -> Result<Vec<u64>> {
        self.update_many_with(writes, &BTreeMap::new())
    }

    /// [`update_many`](Self::update_many) that also merges `metadata` into the metadata of
    /// every written variable, in the same atomic step (nothing changes if a write is refused).
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use dspex::{Context, Constraints, Value};
    ///
    /// let ctx = Context::new();
    /// ctx.defvariable::<i64>("a", 1, Constraints::range(0, 10))?;
    /// let metadata = BTreeMap::from([("tuner".to_owned(), "grid".to_owned())]);
    /// ctx.update_many_with([("a", Value::from(5))], &metadata)?;
    /// assert_eq!(ctx.record("a")?.metadata["tuner"], "grid");
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn update_many_with<'a>(
        &self,
        writes: impl IntoIterator<Item = (&'a str, Value)>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Vec<u64>> {
        let writes: Vec<(String, Value)> =
            writes.into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
        self.with_backend(|b| b.update_many_with(writes, metadata, Source::Rust))
    }

    /// Deletes a variable, and its history, and returns its last record.
    pub fn delete(&self, name: &str) -> Result<VarRecord> {
        self.with_backend(|b| b.delete(Key::Name(name), Source::Rust))
    }

    // ---- history ------------------------------------------------------------------------

    /// The last writes of `name`, newest first, at most `limit` of them: version, value,
    /// source, the metadata given with the write, and time. Registration is version 1; the
    /// history keeps the last [`history_limit`](Self::history_limit) writes (and at most
    /// [`MAX_HISTORY_BYTES`](crate::state::MAX_HISTORY_BYTES)).
    ///
    /// ```
    /// use dspex::{Context, Constraints, Source, Value};
    ///
    /// let ctx = Context::new();
    /// ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
    /// ctx.set("temperature", 0.9)?;
    /// ctx.set("temperature", 1.4)?;
    /// let history = ctx.history("temperature", 10)?;
    /// let versions: Vec<(u64, Value)> = history.iter().map(|e| (e.version, e.value.clone())).collect();
    /// assert_eq!(versions, [(3, Value::Float(1.4)), (2, Value::Float(0.9)), (1, Value::Float(0.7))]);
    /// assert_eq!(history[0].source, Source::Rust);
    /// assert_eq!(ctx.history("temperature", 1)?.len(), 1);
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn history(&self, name: &str, limit: usize) -> Result<Vec<HistoryEntry>> {
        self.with_backend(|b| b.history(Key::Name(name), limit))
    }

    /// Writes the value `name` had at `version` again, as a new version with metadata
    /// `rolled_back_from = "<version>"`, and returns the new version. It is a write like any
    /// other: validated, the version goes up (a compare-and-set at the old version conflicts),
    /// and watchers see an ordinary update. A version the history no longer keeps is
    /// [`Error::VersionNotFound`], which names the versions it keeps.
    ///
    /// ```
    /// use dspex::{Context, Constraints, Error};
    ///
    /// let ctx = Context::new();
    /// let t = ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
    /// t.set(1.9)?; // a bad change
    /// assert_eq!(ctx.rollback("temperature", 1)?, 3);
    /// assert_eq!(t.get()?, 0.7);
    /// assert_eq!(t.record()?.metadata["rolled_back_from"], "1");
    /// assert!(matches!(ctx.rollback("temperature", 9), Err(Error::VersionNotFound { .. })));
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn rollback(&self, name: &str, version: u64) -> Result<u64> {
        self.with_backend(|b| b.rollback(Key::Name(name), version, Source::Rust))
    }

    // ---- watching -----------------------------------------------------------------------

    /// Watches the named variables (every variable when `names` is empty).
    pub fn watch(&self, names: &[&str]) -> Result<Watcher> {
        self.watch_with(names, WatchOptions::default())
    }

    /// Watches with options: queue capacity, initial values.
    pub fn watch_with(&self, names: &[&str], options: WatchOptions) -> Result<Watcher> {
        self.with_backend(|b| b.watch(names, options))
    }
}

/// Runs `f`, which may block for a while (bind a port, start a thread, migrate variables), on
/// the current tokio runtime's blocking threads, so that the runtime keeps running its other
/// tasks; outside a tokio runtime, on the calling thread.
pub(crate) async fn off_runtime<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return f();
    };
    match runtime.spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::internal(
            "the runtime shut down while the bridge was being set up",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second local backend stands in for the bridged one, so that the import can be made to
    /// fail (the bridged switch is tested end to end in `tests/bridge_switch.rs`).
    fn local_target(ctx: &Context) -> Arc<dyn StateProvider> {
        Arc::new(LocalState::with_hub(Arc::clone(ctx.hub())))
    }

    #[test]
    fn a_failed_switch_leaves_the_context_intact() {
        let ctx = Context::new();
        ctx.defvariable::<i64>("n", 1, Constraints::none()).unwrap();
        let target = local_target(&ctx);
        // The target already holds a variable of the same name: the import must fail.
        target
            .register(
                VariableSpec::new("n", dspex_core::VarType::Boolean, true),
                Source::Rust,
            )
            .unwrap();
        assert!(matches!(
            ctx.switch_backend(target),
            Err(Error::AlreadyExists { .. })
        ));
        assert_eq!(ctx.backend().switches, 0);
        assert_eq!(ctx.get::<i64>("n").unwrap(), 1);
        ctx.set("n", 2).unwrap();
        assert!(
            !ctx.record("n")
                .unwrap()
                .metadata
                .contains_key("migrated_from")
        );
    }
}
