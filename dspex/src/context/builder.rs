//! `ContextBuilder`: a context on the backend of your choice (local, bridged, shared in
//! Redis, or one of your own), and the bridge server it uses.

use std::fmt;
use std::sync::Arc;
#[cfg(feature = "redis")]
use std::time::Duration;

use super::handle::{Context, Settings};
#[cfg(feature = "python")]
use crate::bridge::BridgeServer;
use crate::error::{Error, Result};
use crate::lm::LmConfig;
use crate::state::{
    DEFAULT_HISTORY_LIMIT, LocalState, StateProvider, WatchHub, check_history_limit,
};
#[cfg(feature = "redis")]
use crate::state::{SharedConfig, SharedState};
#[cfg(feature = "python")]
use crate::worker::WorkerConfig;

/// Creates a backend that publishes to the given hub (see [`ContextBuilder::state`]).
type StateFactory = Arc<dyn Fn(Arc<WatchHub>) -> Result<Arc<dyn StateProvider>> + Send + Sync>;

/// The backend a builder starts the context on.
#[derive(Clone, Default)]
enum Start {
    #[default]
    Local,
    #[cfg(feature = "python")]
    Bridged,
    /// A shared session on the Redis at this URL (the session name comes from `session`).
    #[cfg(feature = "redis")]
    Shared(String),
    /// A shared session fully configured.
    #[cfg(feature = "redis")]
    SharedWith(SharedConfig),
    Custom(StateFactory),
}

impl fmt::Debug for Start {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Start::Local => "Local",
            #[cfg(feature = "python")]
            Start::Bridged => "Bridged",
            #[cfg(feature = "redis")]
            Start::Shared(_) | Start::SharedWith(_) => "Shared",
            Start::Custom(_) => "Custom",
        })
    }
}

/// Builds a [`Context`]: local (the default, like [`Context::new`]) or bridged from the start,
/// and optionally with the [`BridgeServer`] to use when it bridges (instead of the process-wide
/// [`BridgeServer::global`]).
///
/// ```no_run
/// # #[tokio::main] async fn main() -> dspex::Result<()> {
/// use dspex::bridge::{BridgeConfig, BridgeServer};
/// use dspex::{BackendKind, Context};
///
/// let server = BridgeServer::start(BridgeConfig::default())?;
/// // Local for now; `ensure_bridged` will use `server`.
/// let ctx = Context::builder().server(server.clone()).build().await?;
/// assert_eq!(ctx.backend().kind, BackendKind::Local);
/// // Bridged from the start.
/// let ctx = Context::builder().bridged().server(server).build().await?;
/// assert_eq!(ctx.backend().kind, BackendKind::Bridged);
/// assert_eq!(ctx.backend().switches, 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct ContextBuilder {
    start: Start,
    lm: LmConfig,
    history_limit: usize,
    #[cfg(feature = "python")]
    server: Option<BridgeServer>,
    #[cfg(feature = "python")]
    worker: WorkerConfig,
    #[cfg(feature = "redis")]
    session: Option<String>,
    #[cfg(feature = "redis")]
    session_ttl: Option<Duration>,
}

impl Default for ContextBuilder {
    fn default() -> Self {
        Self {
            start: Start::default(),
            lm: LmConfig::default(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            #[cfg(feature = "python")]
            server: None,
            #[cfg(feature = "python")]
            worker: WorkerConfig::default(),
            #[cfg(feature = "redis")]
            session: None,
            #[cfg(feature = "redis")]
            session_ttl: None,
        }
    }
}

impl Context {
    /// A builder to choose the backend (local, bridged, shared, or one of your own), the LM,
    /// and the bridge server and worker of python steps.
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
}

impl ContextBuilder {
    /// Starts the context on the local backend (the default).
    pub fn local(mut self) -> Self {
        self.start = Start::Local;
        self
    }

    #[cfg(feature = "python")]
    /// Starts the context on the bridged backend: its variables live in a session of the
    /// bridge's store from the first registration on.
    pub fn bridged(mut self) -> Self {
        self.start = Start::Bridged;
        self
    }

    #[cfg(feature = "redis")]
    /// Starts the context on a shared session in the Redis (7 or later) at `url`
    /// (`redis://host:port/db`), named by [`session`](Self::session): every process that
    /// opens the same session on the same Redis shares its variables (see
    /// [`SharedState`](crate::state::SharedState)). A python step's worker reaches them
    /// through this process's bridge, as for a bridged context.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> dspex::Result<()> {
    /// use std::time::Duration;
    /// use dspex::{BackendKind, Context};
    ///
    /// let ctx = Context::builder()
    ///     .shared("redis://127.0.0.1:6379/0")
    ///     .session("qa-prod")
    ///     .session_ttl(Duration::from_secs(3600))
    ///     .build()
    ///     .await?;
    /// assert_eq!(ctx.backend().kind, BackendKind::Shared);
    /// # Ok(()) }
    /// ```
    pub fn shared(mut self, url: impl Into<String>) -> Self {
        self.start = Start::Shared(url.into());
        self
    }

    /// Starts the context on a shared session in Redis: this needs dspex's `redis` feature,
    /// so without it a call is a compile error that says so.
    #[cfg(not(feature = "redis"))]
    pub fn shared<U: crate::util::feature::RedisFeature>(self, url: U) -> Self {
        url.unreachable()
    }

    #[cfg(feature = "redis")]
    /// The name of the shared session (see [`shared`](Self::shared)).
    pub fn session(mut self, name: impl Into<String>) -> Self {
        self.session = Some(name.into());
        self
    }

    #[cfg(feature = "redis")]
    /// How long the shared session lives once no process renews it (default
    /// [`DEFAULT_SESSION_TTL`](crate::state::shared::DEFAULT_SESSION_TTL)).
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = Some(ttl);
        self
    }

    #[cfg(feature = "redis")]
    /// Starts the context on the shared session `config` describes (URL, session name, TTL,
    /// heartbeat, stream length).
    pub fn shared_with(mut self, config: SharedConfig) -> Self {
        self.start = Start::SharedWith(config);
        self
    }

    /// Starts the context on a backend of your own: `make` receives the context's
    /// [`WatchHub`], to which the backend must publish every change it accepts (the rules a
    /// backend follows are those of [`StateProvider`]). The context upgrades from it to the
    /// bridged backend like from a local one, through [`StateProvider::migrate_out`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
    /// use std::sync::Arc;
    ///
    /// use dspex::state::{LocalState, StateProvider};
    /// use dspex::{Constraints, Context};
    ///
    /// // Any `StateProvider` will do; a `LocalState` on the context's hub is the simplest.
    /// let ctx = Context::builder()
    ///     .state(|hub| Ok(Arc::new(LocalState::with_hub(hub)) as Arc<dyn StateProvider>))
    ///     .build()
    ///     .await?;
    /// let n = ctx.defvariable::<i64>("n", 1, Constraints::none())?;
    /// let mut watcher = ctx.watch(&["n"])?;
    /// n.set(2)?;
    /// assert!(watcher.recv().await.is_some());
    /// # Ok(()) }
    /// ```
    pub fn state<F>(mut self, make: F) -> Self
    where
        F: Fn(Arc<WatchHub>) -> Result<Arc<dyn StateProvider>> + Send + Sync + 'static,
    {
        self.start = Start::Custom(Arc::new(make));
        self
    }

    #[cfg(feature = "python")]
    /// The bridge server the context uses (now if bridged, else when it upgrades).
    pub fn server(mut self, server: BridgeServer) -> Self {
        self.server = Some(server);
        self
    }

    /// How many writes each variable's history keeps (default
    /// [`DEFAULT_HISTORY_LIMIT`](crate::state::DEFAULT_HISTORY_LIMIT), at most
    /// [`MAX_HISTORY_LIMIT`](crate::state::MAX_HISTORY_LIMIT); checked by
    /// [`build`](Self::build)). It applies to the local and bridged backends the context
    /// creates, including the bridged one it upgrades to; a backend of your own
    /// ([`state`](Self::state)) keeps the history its own configuration says until then.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
    /// use dspex::{Constraints, Context};
    ///
    /// let ctx = Context::builder().history_limit(2).build().await?;
    /// let n = ctx.defvariable::<i64>("n", 1, Constraints::none())?;
    /// n.set(2)?;
    /// n.set(3)?;
    /// assert_eq!(ctx.history("n", 10)?.len(), 2);
    /// assert!(Context::builder().history_limit(0).build().await.is_err());
    /// # Ok(()) }
    /// ```
    pub fn history_limit(mut self, limit: usize) -> Self {
        self.history_limit = limit;
        self
    }

    #[cfg(feature = "python")]
    /// How the context's Python worker is started (interpreter, LM, time limits).
    pub fn worker(mut self, config: WorkerConfig) -> Self {
        self.worker = config;
        self
    }

    /// The LM of the context's steps, native and python (default: the offline scripted LM).
    pub fn lm(mut self, lm: LmConfig) -> Self {
        self.lm = lm;
        self
    }

    #[cfg(feature = "python")]
    /// The Python interpreter of the context's worker (default: `DSPEX_PYTHON`, else
    /// `python3`).
    pub fn python(mut self, interpreter: impl Into<std::path::PathBuf>) -> Self {
        self.worker = self.worker.python(interpreter);
        self
    }

    /// Builds the context. A bridged context brings up its server (the process-wide one unless
    /// [`server`](Self::server) was given) and creates its session first; if that fails the
    /// error is [`Error::Bridge`](crate::Error::Bridge) and says why. Starting the server
    /// (the first time in a process) runs off the async runtime's threads. A worker
    /// configuration out of its bounds ([`WorkerConfig::check`]) is an
    /// [`Error::Worker`](crate::Error::Worker).
    ///
    /// A shared context connects to Redis and loads its session first (off the async
    /// runtime's threads); the error names the URL if Redis cannot be reached. `session` and
    /// `session_ttl` are errors ([`Error::InvalidOption`]) without `shared`, and `shared`
    /// needs `session`.
    pub async fn build(self) -> Result<Context> {
        self.lm
            .check()
            .map_err(|e| Error::lm(format!("LM configuration: {e}")))?;
        self.lm.check_tape()?;
        #[cfg(feature = "python")]
        self.worker.launch_message(&self.lm)?;
        let history_limit = check_history_limit(self.history_limit)?;
        let hub: Arc<WatchHub> = Arc::default();
        #[cfg(feature = "redis")]
        if let Some(config) = self.shared_config(history_limit)? {
            let state = {
                let hub = Arc::clone(&hub);
                super::off_runtime(move || SharedState::open_with_hub(config, hub)).await?
            };
            let state = Arc::new(state);
            let ctx = Context::assemble(
                Arc::clone(&state) as Arc<dyn StateProvider>,
                hub,
                self.settings(history_limit),
            );
            ctx.adopt_shared(state)?;
            return Ok(ctx);
        }
        let backend: Arc<dyn StateProvider> = match &self.start {
            Start::Local => {
                Arc::new(LocalState::with_hub(Arc::clone(&hub)).with_history_limit(history_limit)?)
            }
            Start::Custom(make) => make(Arc::clone(&hub))?,
            #[cfg(feature = "redis")]
            Start::Shared(_) | Start::SharedWith(_) => {
                return Err(Error::internal("a shared start was not handled"));
            }
            #[cfg(feature = "python")]
            Start::Bridged => {
                let (server, bridged) = {
                    let (server, hub) = (self.server.clone(), Arc::clone(&hub));
                    super::off_runtime(move || {
                        let server = match server {
                            Some(server) => server,
                            None => BridgeServer::global()?,
                        };
                        let bridged = Arc::new(
                            server
                                .open_session_with_hub(hub)?
                                .with_history_limit(history_limit)?,
                        );
                        Ok((server, bridged))
                    })
                    .await?
                };
                let mut settings = self.settings(history_limit);
                settings.server = Some(server);
                let ctx = Context::assemble(
                    Arc::clone(&bridged) as Arc<dyn StateProvider>,
                    hub,
                    settings,
                );
                ctx.adopt_bridge(bridged)?;
                return Ok(ctx);
            }
        };
        Ok(Context::assemble(
            backend,
            hub,
            self.settings(history_limit),
        ))
    }

    /// How the context is put together, besides its backend.
    fn settings(&self, history_limit: usize) -> Settings {
        Settings {
            history_limit,
            lm: self.lm.clone(),
            #[cfg(feature = "python")]
            server: self.server.clone(),
            #[cfg(feature = "python")]
            worker_config: self.worker.clone(),
        }
    }

    /// The shared session to start on, if any; errors for a shared start without a session
    /// name, and for session settings without a shared start.
    #[cfg(feature = "redis")]
    fn shared_config(&self, history_limit: usize) -> Result<Option<SharedConfig>> {
        match &self.start {
            Start::Shared(url) => {
                let Some(session) = self.session.clone() else {
                    return Err(Error::InvalidOption {
                        option: "session".to_owned(),
                        message: "a shared context needs a session name: add `.session(name)` to `.shared(url)`".to_owned(),
                    });
                };
                let config = SharedConfig::new(url.clone(), session).history_limit(history_limit);
                Ok(Some(match self.session_ttl {
                    Some(ttl) => config.ttl(ttl),
                    None => config,
                }))
            }
            Start::SharedWith(config) => {
                if self.session.is_some()
                    || self.session_ttl.is_some()
                    || history_limit != DEFAULT_HISTORY_LIMIT
                {
                    return Err(Error::InvalidOption {
                        option: "session".to_owned(),
                        message: "`shared_with` takes the session name, TTL and history limit from its `SharedConfig`; remove `.session(..)`, `.session_ttl(..)` and `.history_limit(..)`".to_owned(),
                    });
                }
                Ok(Some(config.clone()))
            }
            _ => {
                if self.session.is_some() || self.session_ttl.is_some() {
                    return Err(Error::InvalidOption {
                        option: "session".to_owned(),
                        message: "`session` and `session_ttl` apply to a shared context; add `.shared(url)`".to_owned(),
                    });
                }
                Ok(None)
            }
        }
    }
}
