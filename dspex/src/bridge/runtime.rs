//! The bridge server's lifecycle: [`BridgeServer`] binds a loopback port (or a Unix socket) and
//! serves the session store on a dedicated thread with its own tokio runtime, so that it
//! outlives any runtime of the caller.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use super::callback::CallbackServer;
use super::server::SessionServer;
use super::store::SessionStore;
use crate::error::{Error, Result};
use crate::wire::limits::{
    MAX_CONCURRENT_STREAMS, MAX_HEADER_LIST_BYTES, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES,
    REAP_INTERVAL,
};
use crate::wire::proto::callback_service_server::CallbackServiceServer;
use crate::wire::proto::session_service_server::SessionServiceServer;

/// How long a stopping server lets open calls finish before it closes their connections.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Where a bridge server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address; loopback unless [`BridgeConfig::allow_non_loopback`] is set. Port 0
    /// picks a free port.
    Tcp(SocketAddr),
    /// A Unix domain socket at this path (created by the server, removed when it stops).
    #[cfg(unix)]
    Unix(PathBuf),
}

/// How to start a [`BridgeServer`].
///
/// ```
/// use dspex::bridge::BridgeConfig;
///
/// // The default: a free port on 127.0.0.1.
/// let config = BridgeConfig::default();
/// assert_eq!(config.listen().to_string(), "127.0.0.1:0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    listen: Listen,
    allow_non_loopback: bool,
    worker_threads: usize,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            listen: Listen::Tcp(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)),
            allow_non_loopback: false,
            worker_threads: 2,
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            #[cfg(unix)]
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl BridgeConfig {
    /// Listens on a TCP address (`127.0.0.1:0` by default).
    #[must_use]
    pub fn tcp(mut self, addr: SocketAddr) -> Self {
        self.listen = Listen::Tcp(addr);
        self
    }

    /// Listens on a Unix domain socket instead of TCP.
    #[cfg(unix)]
    #[must_use]
    pub fn unix(mut self, path: impl Into<PathBuf>) -> Self {
        self.listen = Listen::Unix(path.into());
        self
    }

    /// Allows a TCP address that is not loopback. Off by default: the bridge is plaintext
    /// gRPC protected by session tokens, meant for processes on the same machine.
    #[must_use]
    pub fn allow_non_loopback(mut self, allow: bool) -> Self {
        self.allow_non_loopback = allow;
        self
    }

    /// Threads of the server's runtime (2 by default, at least 1).
    #[must_use]
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = threads.max(1);
        self
    }

    /// Where the server will listen.
    pub fn listen(&self) -> &Listen {
        &self.listen
    }
}

/// A running bridge server: the session store and the gRPC `SessionService` that exposes it.
/// Cheap to clone; every clone is a handle to the same server.
///
/// The server runs on a dedicated thread with its own tokio runtime, so it keeps serving when
/// the runtime of the code that started it ends (a `#[tokio::test]`, a short-lived `block_on`).
/// It stops on [`shutdown`](Self::shutdown), or when the last handle is dropped (contexts
/// bridged through it hold one).
///
/// ```no_run
/// # #[tokio::main] async fn main() -> dspex::Result<()> {
/// use dspex::bridge::{BridgeConfig, BridgeServer};
/// use dspex::Context;
///
/// let server = BridgeServer::start(BridgeConfig::default())?;
/// let ctx = Context::builder().bridged().server(server.clone()).build().await?;
/// let info = ctx.bridge_session().expect("a bridged context has a session");
/// assert_eq!(info.address, server.address());
/// drop(ctx); // releases the session
/// server.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BridgeServer {
    inner: Arc<ServerInner>,
}

struct ServerInner {
    address: String,
    local_addr: Option<SocketAddr>,
    store: SessionStore,
    shutdown: watch::Sender<bool>,
    stopped: watch::Receiver<bool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for ServerInner {
    fn drop(&mut self) {
        // Never joins here: the last handle may drop on the server's own thread.
        self.store.stop();
        self.shutdown.send_replace(true);
    }
}

impl fmt::Debug for BridgeServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeServer")
            .field("address", &self.inner.address)
            .field("sessions", &self.inner.store.len())
            .field("running", &self.is_running())
            .finish()
    }
}

enum Listener {
    Tcp(tokio::net::TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
}

/// The process-wide server that `Context::ensure_bridged` starts on first use.
static GLOBAL: Mutex<Option<BridgeServer>> = Mutex::new(None);

impl BridgeServer {
    /// Binds the listener and starts serving. Fails with [`Error::Bridge`] saying why (the
    /// address cannot be bound, is not loopback, the runtime cannot start); the underlying
    /// `io::Error` is its source.
    ///
    /// It blocks the calling thread until the server's thread serves (about a millisecond).
    /// Async code that needs no handle of its own lets [`ContextBuilder::build`] or
    /// [`Context::ensure_bridged`] start the process-wide server: they do it on the runtime's
    /// blocking threads.
    ///
    /// [`ContextBuilder::build`]: crate::ContextBuilder::build
    /// [`Context::ensure_bridged`]: crate::Context::ensure_bridged
    pub fn start(config: BridgeConfig) -> Result<Self> {
        let (listener, address, local_addr) = bind(&config)?;
        #[cfg(unix)]
        let socket_path = match &config.listen {
            Listen::Unix(path) => Some(path.clone()),
            Listen::Tcp(_) => None,
        };
        let store = SessionStore::default();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (stopped_tx, stopped) = watch::channel(false);
        // The runtime is built, used and dropped on the server's thread only (dropping a
        // runtime inside the caller's async context would panic); the thread reports whether
        // it is serving before `start` returns.
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<()>>(1);
        let thread = {
            let store = store.clone();
            let threads = config.worker_threads;
            #[cfg(unix)]
            let socket_file = socket_path.clone();
            std::thread::Builder::new()
                .name("dspex-bridge".to_owned())
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(threads)
                        .thread_name("dspex-bridge-worker")
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            let _ = ready_tx.send(Err(Error::bridge_with(
                                "cannot start the bridge server's runtime",
                                e,
                            )));
                            stopped_tx.send_replace(true);
                            return;
                        }
                    };
                    let listener = {
                        let _in_runtime = runtime.enter();
                        listener.into_tokio()
                    };
                    match listener {
                        Ok(listener) => {
                            let _ = ready_tx.send(Ok(()));
                            runtime.block_on(serve(listener, store.clone(), shutdown_rx));
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                    store.stop();
                    runtime.shutdown_timeout(SHUTDOWN_GRACE);
                    // However the server stopped (shutdown, or its last handle dropped), its
                    // socket file goes, so that the path can be bound again.
                    #[cfg(unix)]
                    if let Some(path) = &socket_file {
                        let _ = std::fs::remove_file(path);
                    }
                    stopped_tx.send_replace(true);
                })
                .map_err(|e| Error::bridge_with("cannot start the bridge server's thread", e))?
        };
        let ready = ready_rx.recv().unwrap_or_else(|_| {
            Err(Error::bridge(
                "the bridge server's thread exited before serving",
            ))
        });
        if let Err(e) = ready {
            let _ = thread.join();
            return Err(e);
        }
        tracing::debug!(%address, "bridge server started");
        Ok(Self {
            inner: Arc::new(ServerInner {
                address,
                local_addr,
                store,
                shutdown,
                stopped,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// The process-wide server, started on first use on a free loopback port (which blocks the
    /// calling thread like [`start`](Self::start)). This is the server
    /// [`Context::ensure_bridged`](crate::Context::ensure_bridged) uses unless the context was
    /// built with one.
    pub fn global() -> Result<Self> {
        let mut global = GLOBAL.lock();
        if let Some(server) = global.as_ref()
            && server.is_running()
        {
            return Ok(server.clone());
        }
        let server = Self::start(BridgeConfig::default())?;
        *global = Some(server.clone());
        Ok(server)
    }

    /// The address gRPC clients connect to: `127.0.0.1:PORT`, or `unix:/path` for a Unix
    /// socket (both forms `grpc` in Python accepts).
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The bound TCP address (none for a Unix socket).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr
    }

    /// Whether the server still accepts sessions and calls.
    pub fn is_running(&self) -> bool {
        !self.inner.store.is_stopped() && !*self.inner.stopped.borrow()
    }

    /// Sessions in the store (of contexts and of gRPC clients).
    pub fn session_count(&self) -> usize {
        self.inner.store.len()
    }

    /// Whether a session with this id is in the store.
    pub fn has_session(&self, session_id: &str) -> bool {
        self.inner.store.contains(session_id)
    }

    pub(crate) fn store(&self) -> &SessionStore {
        &self.inner.store
    }

    fn signal_shutdown(&self) {
        self.inner.store.stop();
        self.inner.shutdown.send_replace(true);
    }

    fn join(&self) {
        if let Some(thread) = self.inner.thread.lock().take()
            && thread.join().is_err()
        {
            tracing::error!("the bridge server thread panicked");
        }
    }

    /// Stops the server: no new sessions or calls, open calls and watch streams end, then the
    /// server thread exits. Contexts bridged through it keep their variables in-process, but
    /// Python can no longer reach them.
    pub async fn shutdown(&self) {
        self.signal_shutdown();
        let mut stopped = self.inner.stopped.clone();
        let _ = stopped.wait_for(|s| *s).await;
        self.join();
    }

    /// [`shutdown`](Self::shutdown) for code outside an async runtime (blocks the thread).
    pub fn shutdown_blocking(&self) {
        self.signal_shutdown();
        self.join();
    }
}

/// A bound listener, before it joins the server's runtime.
enum StdListener {
    Tcp(std::net::TcpListener),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixListener, PathBuf),
}

impl StdListener {
    /// The listener on the current runtime.
    fn into_tokio(self) -> Result<Listener> {
        match self {
            StdListener::Tcp(l) => tokio::net::TcpListener::from_std(l)
                .map(Listener::Tcp)
                .map_err(|e| Error::bridge_with("cannot serve on a TCP listener", e)),
            #[cfg(unix)]
            StdListener::Unix(l, path) => tokio::net::UnixListener::from_std(l)
                .map(Listener::Unix)
                .map_err(|e| Error::bridge_with(format!("cannot serve on {}", path.display()), e)),
        }
    }
}

fn bind(config: &BridgeConfig) -> Result<(StdListener, String, Option<SocketAddr>)> {
    match &config.listen {
        Listen::Tcp(addr) => {
            if !addr.ip().is_loopback() && !config.allow_non_loopback {
                return Err(Error::bridge(format!(
                    "refusing to serve the bridge on {addr}: it is not a loopback address (use BridgeConfig::allow_non_loopback to allow it)"
                )));
            }
            let listener = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| Error::bridge_with(format!("cannot bind {addr}"), e))?;
            let local = listener
                .local_addr()
                .map_err(|e| Error::bridge_with("cannot read the bound address", e))?;
            Ok((StdListener::Tcp(listener), local.to_string(), Some(local)))
        }
        #[cfg(unix)]
        Listen::Unix(path) => {
            let listener = std::os::unix::net::UnixListener::bind(path)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| {
                    Error::bridge_with(format!("cannot bind unix socket {}", path.display()), e)
                })?;
            Ok((
                StdListener::Unix(listener, path.clone()),
                format!("unix:{}", path.display()),
                None,
            ))
        }
    }
}

/// Serves until `shutdown` flips (or its sender is dropped), then lets open calls finish for
/// at most [`SHUTDOWN_GRACE`].
async fn serve(listener: Listener, store: SessionStore, shutdown: watch::Receiver<bool>) {
    tokio::spawn(reap(store.clone(), shutdown.clone()));
    let store_for_callbacks = store.clone();
    let service = SessionServiceServer::new(SessionServer::new(store, shutdown.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let mut builder = Server::builder()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES);
    let callbacks = CallbackServiceServer::new(CallbackServer::new(store_for_callbacks))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(MAX_RESPONSE_BYTES);
    let router = builder.add_service(service).add_service(callbacks);
    let signal = {
        let mut shutdown = shutdown.clone();
        async move {
            let _ = shutdown.wait_for(|s| *s).await;
        }
    };
    let served = async move {
        match listener {
            Listener::Tcp(l) => {
                router
                    .serve_with_incoming_shutdown(
                        TcpIncoming::from(l).with_nodelay(Some(true)),
                        signal,
                    )
                    .await
            }
            #[cfg(unix)]
            Listener::Unix(l) => {
                router
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::UnixListenerStream::new(l),
                        signal,
                    )
                    .await
            }
        }
    };
    let grace_over = {
        let mut shutdown = shutdown;
        async move {
            let _ = shutdown.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        }
    };
    tokio::select! {
        result = served => {
            if let Err(e) = result {
                tracing::error!("the bridge server failed: {e}");
            }
        }
        () = grace_over => tracing::debug!("bridge server: closing calls still open after the grace period"),
    }
}

/// Removes expired remote sessions every [`REAP_INTERVAL`] until shutdown.
async fn reap(store: SessionStore, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(REAP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let removed = store.reap(Instant::now());
                if removed > 0 {
                    tracing::debug!(removed, "bridge server: expired sessions removed");
                }
            }
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
}
