//! [`Context`]: the cheap-to-clone handle programs and users hold, owning one state backend at
//! a time (and the services bridged to it); what it can do lives in the files beside this one.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

#[cfg(feature = "python")]
use super::callbacks::CallbackRegistry;
#[cfg(feature = "python")]
use crate::bridge::{BridgeServer, BridgedState};
use crate::lm::{LmClient, LmConfig};
#[cfg(feature = "redis")]
use crate::state::SharedState;
use crate::state::{
    BackendKind, Capabilities, DEFAULT_HISTORY_LIMIT, LocalState, StateProvider, WatchHub,
};
#[cfg(feature = "python")]
use crate::worker::{WorkerConfig, WorkerSupervisor};

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

pub(super) struct Inner {
    pub(super) id: u64,
    /// The backend the context started on.
    pub(super) initial: Arc<dyn StateProvider>,
    /// The backend it upgraded to, once. Reading a `OnceLock` is one atomic load, which keeps
    /// the local read path at a single read lock; the initial backend forwards the calls that
    /// raced with the upgrade.
    pub(super) upgraded: OnceLock<Arc<dyn StateProvider>>,
    /// The backend of a second switch: a bridged context that moved into a shared session
    /// (read only once `upgraded` is set, so that the local read path stays one load).
    pub(super) second: OnceLock<Arc<dyn StateProvider>>,
    /// Fans the changes of every backend the context has out to its watchers.
    #[cfg_attr(
        not(any(feature = "python", feature = "redis")),
        allow(dead_code, reason = "only a backend switch reads it")
    )]
    pub(super) hub: Arc<WatchHub>,
    pub(super) requires_bridge: AtomicBool,
    pub(super) switches: AtomicU32,
    pub(super) last_switch_nanos: AtomicU64,
    /// Serializes backend switches.
    #[cfg_attr(
        not(any(feature = "python", feature = "redis")),
        allow(dead_code, reason = "only a backend switch reads it")
    )]
    pub(super) switching: Mutex<()>,
    /// How many writes each variable's history keeps in the backends the context creates.
    pub(super) history_limit: usize,
    /// The LM of the context's steps, native and python.
    pub(super) lm: LmConfig,
    /// The client native LM steps call, built from `lm` on first use.
    pub(super) lm_client: OnceLock<Arc<LmClient>>,
    /// The Python side: the bridge session, the worker, the callables Python may call.
    #[cfg(feature = "python")]
    pub(super) python: PythonServices,
    /// The shared session the context's variables live in, once shared.
    #[cfg(feature = "redis")]
    pub(super) shared: OnceLock<Arc<SharedState>>,
}

/// What a context owns on the Python side.
#[cfg(feature = "python")]
pub(super) struct PythonServices {
    /// The bridge server to use when the context bridges (the process-wide one when `None`).
    pub(super) server: Option<BridgeServer>,
    /// How the Python worker is started.
    pub(super) worker_config: WorkerConfig,
    /// The Python worker, started by the first python step (and again after
    /// `shutdown_worker`). Dropping it starts its shutdown in the background.
    pub(super) worker: Mutex<Option<Arc<WorkerSupervisor>>>,
    /// Serializes worker starts.
    pub(super) worker_start: tokio::sync::Mutex<()>,
    /// The context's session in the bridge's store, once bridged. Dropping the context drops
    /// it, which releases the session.
    pub(super) bridge: OnceLock<Arc<BridgedState>>,
    /// The Rust callables the context's Python code may call, and the module calls in flight:
    /// the dispatcher of its bridge session.
    pub(super) callbacks: Arc<CallbackRegistry>,
}

/// How a context is put together ([`Context::assemble`]).
pub(super) struct Settings {
    pub(super) history_limit: usize,
    pub(super) lm: LmConfig,
    #[cfg(feature = "python")]
    pub(super) server: Option<BridgeServer>,
    #[cfg(feature = "python")]
    pub(super) worker_config: WorkerConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            history_limit: DEFAULT_HISTORY_LIMIT,
            lm: LmConfig::default(),
            #[cfg(feature = "python")]
            server: None,
            #[cfg(feature = "python")]
            worker_config: WorkerConfig::default(),
        }
    }
}

#[cfg(feature = "python")]
/// A handle that does not keep a context alive (held by the context's own bridge session).
#[derive(Clone)]
pub(crate) struct WeakContext(std::sync::Weak<Inner>);

#[cfg(feature = "python")]
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
    pub(super) inner: Arc<Inner>,
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
        Self::assemble(Arc::new(local), hub, Settings::default())
    }

    /// A context on `backend`, whose changes `hub` fans out.
    pub(super) fn assemble(
        backend: Arc<dyn StateProvider>,
        hub: Arc<WatchHub>,
        settings: Settings,
    ) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
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
                history_limit: settings.history_limit,
                lm: settings.lm,
                lm_client: OnceLock::new(),
                #[cfg(feature = "python")]
                python: PythonServices {
                    server: settings.server,
                    worker_config: settings.worker_config,
                    worker: Mutex::new(None),
                    worker_start: tokio::sync::Mutex::new(()),
                    bridge: OnceLock::new(),
                    callbacks: Arc::default(),
                },
                #[cfg(feature = "redis")]
                shared: OnceLock::new(),
            }),
        }
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
    pub(super) fn current(&self) -> &dyn StateProvider {
        match self.inner.upgraded.get() {
            None => self.inner.initial.as_ref(),
            Some(upgraded) => self.inner.second.get().unwrap_or(upgraded).as_ref(),
        }
    }

    #[cfg(any(feature = "python", feature = "redis", test))]
    /// The context's watch hub, shared with every backend it switches to.
    pub(crate) fn hub(&self) -> &Arc<WatchHub> {
        &self.inner.hub
    }

    /// Marks the context as needing the bridge (a python step was added).
    pub(crate) fn mark_requires_bridge(&self) {
        self.inner.requires_bridge.store(true, Ordering::Release);
    }

    #[cfg(feature = "python")]
    pub(crate) fn downgrade(&self) -> WeakContext {
        WeakContext(Arc::downgrade(&self.inner))
    }

    /// How many writes each variable's history keeps in the backends the context creates
    /// (set with [`ContextBuilder::history_limit`](crate::ContextBuilder::history_limit)).
    pub fn history_limit(&self) -> usize {
        self.inner.history_limit
    }
}
