//! `BridgedState`: a context's variables in a session of the bridge's store, read and written
//! in-process from Rust and over gRPC from Python.

use std::fmt;
use std::sync::Arc;

use super::runtime::BridgeServer;
use super::store::Session;
use crate::error::{Error, Result};
use crate::state::check_history_limit;
use crate::state::table::delegate_state_provider;
use crate::state::{StateProvider, WatchHub};
use crate::wire::{ENV_SESSION_ID, ENV_SESSION_TOKEN, ENV_STORE_ADDR};

/// How a Python process reaches a bridged context's session: the store's address, the
/// session id and its token. `Debug` never shows the token.
///
/// `dspex_bridge.SessionContext.from_env()` reads exactly [`env`](Self::env).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The gRPC address of the store (`127.0.0.1:PORT` or `unix:/path`).
    pub address: String,
    /// The session id.
    pub session_id: String,
    /// The session's secret token, sent as `x-dspex-token` metadata.
    pub token: String,
}

impl SessionInfo {
    /// The environment a Python process needs to open this session
    /// (`DSPEX_STORE_ADDR`, `DSPEX_SESSION_ID`, `DSPEX_SESSION_TOKEN`).
    ///
    /// ```
    /// use dspex::bridge::SessionInfo;
    ///
    /// let info = SessionInfo {
    ///     address: "127.0.0.1:50051".into(),
    ///     session_id: "session-1".into(),
    ///     token: "secret".into(),
    /// };
    /// let env = info.env();
    /// assert_eq!(env[0], ("DSPEX_STORE_ADDR", "127.0.0.1:50051"));
    /// assert!(!format!("{info:?}").contains("secret"));
    /// ```
    pub fn env(&self) -> [(&'static str, &str); 3] {
        [
            (ENV_STORE_ADDR, self.address.as_str()),
            (ENV_SESSION_ID, self.session_id.as_str()),
            (ENV_SESSION_TOKEN, self.token.as_str()),
        ]
    }
}

impl fmt::Debug for SessionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionInfo")
            .field("address", &self.address)
            .field("session_id", &self.session_id)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl BridgeServer {
    /// Opens a new session with its own watch hub, as a [`StateProvider`](crate::state::StateProvider)
    /// that Python reaches over gRPC. The session lives as long as the returned state.
    pub fn open_session(&self) -> Result<BridgedState> {
        self.open_session_with_hub(Arc::default())
    }

    /// Opens a session whose watchers are fanned out by `hub` (a context's hub).
    pub(crate) fn open_session_with_hub(&self, hub: Arc<WatchHub>) -> Result<BridgedState> {
        if !self.is_running() {
            return Err(Error::bridge(format!(
                "the bridge server at {} has stopped",
                self.address()
            )));
        }
        let session = self.store().create_owned(hub)?;
        Ok(BridgedState::new(session, self.clone()))
    }
}

/// Variable state in a session of a [`BridgeServer`]'s store, shared with Python.
///
/// Rust reads and writes go straight to the session's table, the same table (and the same
/// rules) as [`LocalState`](crate::state::LocalState): a read is a read lock and a lookup,
/// with no gRPC hop. Python reaches the same table over gRPC with the session's token. The
/// session belongs to this state: it never expires while the state lives, and leaves the store
/// when the state is dropped (its token stops working and its watch streams end).
///
/// ```no_run
/// use dspex::bridge::{BridgeConfig, BridgeServer};
/// use dspex::state::{Key, StateProvider};
/// use dspex::{SetOptions, Source};
/// use dspex::{Value, VarType, VariableSpec};
///
/// let server = BridgeServer::start(BridgeConfig::default())?;
/// let state = server.open_session()?;
/// state.register(VariableSpec::new("n", VarType::Integer, 1), Source::Rust)?;
/// state.set(Key::Name("n"), Value::Integer(2), &SetOptions::default(), Source::Rust)?;
/// println!("python reaches it with {:?}", state.session_info());
/// # Ok::<(), dspex::Error>(())
/// ```
pub struct BridgedState {
    session: Arc<Session>,
    server: BridgeServer,
}

impl BridgedState {
    pub(crate) fn new(session: Arc<Session>, server: BridgeServer) -> Self {
        Self { session, server }
    }

    /// The session's id.
    pub fn session_id(&self) -> &str {
        &self.session.id
    }

    /// The address, id and token a Python process needs to reach the session.
    pub fn session_info(&self) -> SessionInfo {
        SessionInfo {
            address: self.server.address().to_owned(),
            session_id: self.session.id.clone(),
            token: self.session.token().as_str().to_owned(),
        }
    }

    /// Sends the session's callbacks to `dispatch` (the callables of the context that owns it).
    pub(crate) fn set_dispatch(&self, dispatch: Arc<dyn super::dispatch::CallbackDispatch>) {
        self.session.set_dispatch(dispatch);
    }

    /// The server whose store holds the session.
    pub fn server(&self) -> &BridgeServer {
        &self.server
    }

    /// Serves `backend` through this (empty) session: every call the session gets, from Rust
    /// or over gRPC, is forwarded to it, exactly as after a bridged context moved its variables
    /// into `backend`. How a shared context serves its shared session to its Python workers.
    pub(crate) fn forward_to(&self, backend: Arc<dyn StateProvider>) -> Result<()> {
        self.session
            .table
            .migrate_out(&mut |_| Ok(Arc::clone(&backend)))
    }

    /// Keeps the last `limit` writes of each variable from now on (default
    /// [`DEFAULT_HISTORY_LIMIT`](crate::state::DEFAULT_HISTORY_LIMIT)); a limit outside
    /// `1..=`[`MAX_HISTORY_LIMIT`](crate::state::MAX_HISTORY_LIMIT) is
    /// [`Error::InvalidOption`](crate::Error::InvalidOption).
    pub fn with_history_limit(self, limit: usize) -> Result<Self> {
        self.session
            .table
            .set_history_limit(check_history_limit(limit)?);
        Ok(self)
    }
}

impl Drop for BridgedState {
    fn drop(&mut self) {
        self.server.store().remove(&self.session.id);
    }
}

impl fmt::Debug for BridgedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgedState")
            .field("session", &self.session.id)
            .field("address", &self.server.address())
            .field("variables", &self.session.table.len())
            .finish()
    }
}

delegate_state_provider!(BridgedState, |this| this.session.table);
