//! `ContextBuilder`: a context on the backend of your choice, local or bridged, and the bridge
//! server it uses.

use std::sync::Arc;

use super::Context;
use crate::bridge::BridgeServer;
use crate::error::Result;
use crate::state::{LocalState, StateProvider, WatchHub};
use crate::worker::{LmConfig, WorkerConfig};

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
#[derive(Debug, Default, Clone)]
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct ContextBuilder {
    bridged: bool,
    server: Option<BridgeServer>,
    worker: WorkerConfig,
}

impl ContextBuilder {
    /// Starts the context on the local backend (the default).
    pub fn local(mut self) -> Self {
        self.bridged = false;
        self
    }

    /// Starts the context on the bridged backend: its variables live in a session of the
    /// bridge's store from the first registration on.
    pub fn bridged(mut self) -> Self {
        self.bridged = true;
        self
    }

    /// The bridge server the context uses (now if bridged, else when it upgrades).
    pub fn server(mut self, server: BridgeServer) -> Self {
        self.server = Some(server);
        self
    }

    /// How the context's Python worker is started (interpreter, LM, time limits).
    pub fn worker(mut self, config: WorkerConfig) -> Self {
        self.worker = config;
        self
    }

    /// The LM of the context's Python worker (default: the offline scripted LM).
    pub fn lm(mut self, lm: LmConfig) -> Self {
        self.worker = self.worker.lm(lm);
        self
    }

    /// The Python interpreter of the context's worker (default: `DSPEX_PYTHON`, else
    /// `python3`).
    pub fn python(mut self, interpreter: impl Into<std::path::PathBuf>) -> Self {
        self.worker = self.worker.python(interpreter);
        self
    }

    /// Builds the context. A bridged context brings up its server (the process-wide one unless
    /// [`server`](Self::server) was given) and creates its session first; if that fails the
    /// error is [`Error::Bridge`](crate::Error::Bridge) and says why. A worker configuration
    /// out of its bounds ([`WorkerConfig::check`]) is an [`Error::Worker`](crate::Error::Worker).
    pub async fn build(self) -> Result<Context> {
        self.worker.check()?;
        let hub: Arc<WatchHub> = Arc::default();
        if !self.bridged {
            let local = LocalState::with_hub(Arc::clone(&hub));
            return Ok(Context::with_backend_and_hub(
                Arc::new(local),
                hub,
                self.server,
                None,
                self.worker,
            ));
        }
        let server = match self.server {
            Some(server) => server,
            None => BridgeServer::global()?,
        };
        let bridged = Arc::new(server.open_session_with_hub(Arc::clone(&hub))?);
        Ok(Context::with_backend_and_hub(
            Arc::clone(&bridged) as Arc<dyn StateProvider>,
            hub,
            Some(server),
            Some(bridged),
            self.worker,
        ))
    }
}
