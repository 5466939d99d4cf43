//! Binding a server, the middleware every request goes through (request id, header bound,
//! shutdown, token), the health and metrics routes, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::json;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::builder::Server;
use super::error::ApiError;
use super::state::ServerState;
use super::{MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_REQUEST_ID_BYTES, run, schema, variables};
use crate::error::{Cause, Error, Result};

const REQUEST_ID: &str = "x-request-id";

/// How long the requests cancelled at the drain timeout, and then the connections, have to
/// close before the server stops without them.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// A running server: its address, and [`shutdown`](Self::shutdown).
pub struct ServerHandle {
    local_addr: SocketAddr,
    state: Arc<ServerState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Listens on `addr` and serves in the background (on the current tokio runtime). Without
    /// a [`token`](super::ServerBuilder::token), an address that is not loopback is refused.
    pub async fn bind(self, addr: impl ToSocketAddrs) -> Result<ServerHandle> {
        let serve_error = |message: String, e: std::io::Error| Error::Serve {
            message,
            source: Some(e.into()),
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| serve_error("cannot resolve the address to bind".to_owned(), e))?
            .collect();
        if self.state.token.is_none()
            && let Some(open) = addrs.iter().find(|a| !a.ip().is_loopback())
        {
            return Err(Error::InvalidOption {
                option: "bind".to_owned(),
                message: format!(
                    "{open} is not a loopback address: a server reachable from other hosts needs a token (`Server::builder().token(..)`)"
                ),
            });
        }
        let listener = TcpListener::bind(addrs.as_slice())
            .await
            .map_err(|e| serve_error(format!("cannot bind {addrs:?}"), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| serve_error("cannot read the bound address".to_owned(), e))?;
        let router = router(Arc::clone(&self.state));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(ServerHandle {
            local_addr,
            state: self.state,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

impl ServerHandle {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops gracefully: new requests get 503 (`shutting_down`), running ones (streams too)
    /// finish within the drain timeout (those still running then are answered 503, a stream
    /// with an `error` event), then the server stops listening and the programs' Python
    /// workers stop.
    pub async fn shutdown(mut self) -> Result<()> {
        self.drain().await
    }

    /// Waits until no request is in flight, or `deadline`; whether they all finished.
    async fn drained_by(&self, deadline: tokio::time::Instant) -> bool {
        let state = &self.state;
        loop {
            let drained = state.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if state.in_flight.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return false;
            }
        }
    }

    async fn drain(&mut self) -> Result<()> {
        let state = Arc::clone(&self.state);
        state.shutting_down.store(true, Ordering::SeqCst);
        state.stopping.send_replace(true);
        let deadline = tokio::time::Instant::now() + state.drain_timeout;
        if !self.drained_by(deadline).await {
            tracing::warn!(
                target: "dspex::serve",
                in_flight = state.in_flight.load(Ordering::SeqCst),
                "drain timeout reached: the requests still running are answered 503"
            );
            state.cancel_runs.send_replace(true);
            let deadline = tokio::time::Instant::now() + CANCEL_GRACE;
            self.drained_by(deadline).await;
        }
        // No more permits for runs still waiting in the queue.
        state.runs.close();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let deadline = tokio::time::Instant::now() + CANCEL_GRACE;
        if let Some(mut task) = self.task.take() {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(served)) => served.map_err(|e| Error::Serve {
                    message: "the server stopped with an error".to_owned(),
                    source: Some(e.into()),
                })?,
                Ok(Err(join)) => {
                    return Err(Error::Serve {
                        message: "the server task panicked".to_owned(),
                        source: Some(Cause::other(join)),
                    });
                }
                Err(_) => {
                    tracing::warn!(
                        target: "dspex::serve",
                        "connections still open at the drain timeout: closing them"
                    );
                    task.abort();
                }
            }
        }
        #[cfg(feature = "python")]
        for served in state.programs.values() {
            served.program.program_context().shutdown_worker().await;
        }
        Ok(())
    }
}

impl Drop for ServerHandle {
    /// A handle dropped without [`shutdown`](Self::shutdown) stops the server without
    /// waiting for running requests.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            self.state.shutting_down.store(true, Ordering::SeqCst);
            self.state.stopping.send_replace(true);
            self.state.runs.close();
            let _ = stop.send(());
        }
    }
}

fn router(state: Arc<ServerState>) -> Router {
    let router = Router::new()
        .route("/v1/programs", get(schema::programs))
        .route("/v1/programs/{name}/run", post(run::run))
        .route("/v1/programs/{name}/stream", post(run::stream))
        .route("/v1/programs/{name}/variables", get(variables::list))
        .route("/v1/programs/{name}/variables/{var}", put(variables::put))
        .route(
            "/v1/programs/{name}/variables/{var}/history",
            get(variables::history),
        )
        .route(
            "/v1/programs/{name}/variables/{var}/rollback",
            post(variables::rollback),
        )
        .route("/openapi.json", get(schema::openapi_document))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz));
    #[cfg(feature = "dashboard")]
    let router = router.merge(super::dashboard::router::routes());
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), guard))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see GET /openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "not_found",
        "this route does not take this method; see GET /openapi.json",
    )
}

/// The caller's request id if it is usable, else a new one.
fn request_id_of(headers: &HeaderMap) -> HeaderValue {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if let Some(id) = headers.get(REQUEST_ID)
        && !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_BYTES
        && id.as_bytes().iter().all(|b| b.is_ascii_graphic())
    {
        return id.clone();
    }
    let process = std::process::id();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{process:x}-{n:x}"))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Gives every response an `x-request-id`.
async fn request_id(request: Request, next: Next) -> Response {
    let id = request_id_of(request.headers());
    let mut response = next.run(request).await;
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

/// Headers within their bound, the server not shutting down, the token: then the route.
async fn guard(State(state): State<Arc<ServerState>>, request: Request, next: Next) -> Response {
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        let mut error = ApiError::too_large(format!(
            "the request headers are over {MAX_HEADER_BYTES} bytes"
        ));
        error.status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
        return error.into_response();
    }
    if state.shutting_down.load(Ordering::SeqCst) {
        return ApiError::shutting_down().into_response();
    }
    // The dashboard signs its users in with a cookie of its own and checks it itself.
    if request.uri().path() != "/healthz"
        && !is_dashboard(request.uri().path())
        && let Err(error) = require_reader(&state, request.headers())
    {
        return error.into_response();
    }
    let _in_flight = state.enter();
    next.run(request).await
}

/// Whether `path` is one of the dashboard's (feature `dashboard`).
fn is_dashboard(path: &str) -> bool {
    cfg!(feature = "dashboard") && (path == "/dashboard" || path.starts_with("/dashboard/"))
}

/// The bearer token of a request, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// Reads need the read or the admin token when the server has one.
fn require_reader(state: &ServerState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.token.is_none() {
        return Ok(());
    }
    match bearer(headers) {
        None => Err(unauthorized(
            "this route needs a bearer token (`Authorization: Bearer <token>`)",
        )),
        Some(given)
            if Some(given) == state.token.as_deref()
                || Some(given) == state.admin_token.as_deref() =>
        {
            Ok(())
        }
        Some(_) => Err(unauthorized("the bearer token is not this server's")),
    }
}

/// Writes need the admin token: none at all or a wrong one is 401, the read token 403.
pub(crate) fn require_admin(state: &ServerState, headers: &HeaderMap) -> Result<(), ApiError> {
    let forbidden = |message: &str| ApiError::new(StatusCode::FORBIDDEN, "forbidden", message);
    let Some(admin) = state.admin_token.as_deref() else {
        return Err(forbidden(
            "this server takes no variable writes: it has no admin token",
        ));
    };
    match bearer(headers) {
        Some(given) if given == admin => Ok(()),
        Some(given) if Some(given) == state.token.as_deref() => Err(forbidden(
            "writing a variable needs the admin token, not the read token",
        )),
        Some(_) => Err(unauthorized("the bearer token is not this server's")),
        None => Err(unauthorized(
            "writing a variable needs the admin token (`Authorization: Bearer <token>`)",
        )),
    }
}

async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Ready when every program's Python worker (if it has python steps) runs and every shared
/// session is connected.
async fn readyz(State(state): State<Arc<ServerState>>) -> Response {
    #[allow(unused_mut)] // pushed to only with the `python` or `redis` feature
    let mut problems: Vec<String> = Vec::new();
    for (name, served) in &state.programs {
        let program = &*served.program;
        let ctx = program.program_context();
        #[cfg(feature = "python")]
        if !program.program_python_steps().is_empty()
            && ctx.worker_status().is_none_or(|w| w.pid.is_none())
        {
            problems.push(format!(
                "program `{name}`: its Python worker is not running"
            ));
        }
        #[cfg(feature = "redis")]
        if ctx.shared_state().is_some_and(|s| !s.is_connected()) {
            problems.push(format!(
                "program `{name}`: its Redis session is not connected"
            ));
        }
        let _ = (name, ctx);
    }
    if problems.is_empty() {
        axum::Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not_ready", "problems": problems})),
        )
            .into_response()
    }
}

async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(state.queued.load(Ordering::SeqCst)),
    )
        .into_response()
}
