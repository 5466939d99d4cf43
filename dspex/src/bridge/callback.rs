//! Rust callables that a session's Python code calls back: the tools of python steps, and any
//! other [`Callback`] registered with [`Context::register_callback`]. The worker reaches them
//! through the bridge server's `CallbackService` (`Call`: session, token, name, JSON arguments,
//! the id of the module call it is made in).
//!
//! - A session reaches only its own callables: the token rule of `SessionService`, then the
//!   name is looked up in the session's registry (`NOT_FOUND` otherwise).
//! - Arguments are bounded ([`MAX_CALLBACK_ARGUMENT_BYTES`]); a result over
//!   [`MAX_CALLBACK_RESULT_BYTES`] is answered as an error.
//! - Each call runs as its own task on the server's runtime, bounded by the callable's timeout
//!   ([`DEFAULT_CALLBACK_TIMEOUT`], at most [`MAX_CALLBACK_TIMEOUT`]). An error, a panic or a
//!   timeout is an answer (`error`), never a failed RPC: an agent sees it as an observation.
//! - A call made inside a python step's module call (its `call_id`) sees the run's variable
//!   values (its overrides, else the context's current values) and is recorded in the step's
//!   trace ([`ToolCall`]), at most [`MAX_CALLBACKS_PER_CALL`] per module call.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dspex_core::{Value, excerpt};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value as JsonValue};
use tonic::{Code, Request, Response, Status};

use super::limits::{
    MAX_CALLBACK_ARGUMENT_BYTES, MAX_CALLBACK_RESULT_BYTES, MAX_CALLBACK_TIMEOUT,
    MAX_CALLBACKS_PER_CALL, MAX_NAME_LEN,
};
use super::proto::callback_service_server::CallbackService;
use super::proto::{self as pb, ErrorKind};
use super::server::{authorized, status};
use super::store::SessionStore;
use crate::context::{Context, WeakContext};
use crate::error::{Error, Result};
use crate::program::{Overrides, ToolCall, VariableRead};

pub use super::limits::DEFAULT_CALLBACK_TIMEOUT;

/// What a callable returns: its result as JSON, or why it has none (the message an agent
/// reads after `error: `).
pub type CallbackFuture =
    Pin<Box<dyn Future<Output = std::result::Result<JsonValue, String>> + Send>>;

type Handler = dyn Fn(Invocation) -> CallbackFuture + Send + Sync;

/// A Rust callable that the session's Python code may call by name.
///
/// ```
/// use dspex::bridge::Callback;
/// use std::time::Duration;
///
/// let double = Callback::new("double", |call| async move {
///     let x = call.arguments.get("x").and_then(|x| x.as_i64()).ok_or("`x` must be an integer")?;
///     Ok(dspex::json!(x * 2))
/// })
/// .timeout(Duration::from_secs(1));
/// assert_eq!(double.name(), "double");
/// ```
#[derive(Clone)]
pub struct Callback {
    name: String,
    timeout: Duration,
    handler: Arc<Handler>,
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callback")
            .field("name", &self.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Callback {
    /// A callable named `name` that runs `handler` for each call, with the
    /// [`DEFAULT_CALLBACK_TIMEOUT`].
    pub fn new<F, Fut, E>(name: impl Into<String>, handler: F) -> Self
    where
        F: Fn(Invocation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<JsonValue, E>> + Send + 'static,
        E: fmt::Display,
    {
        Self {
            name: name.into(),
            timeout: DEFAULT_CALLBACK_TIMEOUT,
            handler: Arc::new(move |call| {
                let fut = handler(call);
                Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
            }),
        }
    }

    /// How long one call may run before its caller is answered with a timeout error (at most
    /// [`MAX_CALLBACK_TIMEOUT`]; registering a longer one is an error).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The name Python calls it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long one call may run.
    pub fn call_timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks the name and the timeout.
    pub(crate) fn check(&self) -> Result<()> {
        let problem = if self.name.is_empty() {
            Some("its name is empty".to_owned())
        } else if self.name.len() > MAX_NAME_LEN {
            Some(format!(
                "its name takes {} bytes, over the limit of {MAX_NAME_LEN} (MAX_NAME_LEN)",
                self.name.len()
            ))
        } else if self.timeout.is_zero() || self.timeout > MAX_CALLBACK_TIMEOUT {
            Some(format!(
                "its timeout {:?} is not within (0, {MAX_CALLBACK_TIMEOUT:?}] (MAX_CALLBACK_TIMEOUT)",
                self.timeout
            ))
        } else {
            None
        };
        match problem {
            Some(message) => Err(Error::InvalidOption {
                option: format!("callback `{}`", excerpt(&self.name)),
                message,
            }),
            None => Ok(()),
        }
    }
}

/// One call of a [`Callback`]: its arguments and, through [`variables`](Self::variables), the
/// values of the context's variables for the run it is part of.
pub struct Invocation {
    /// The callable's name.
    pub name: String,
    /// The arguments, a JSON object.
    pub arguments: Map<String, JsonValue>,
    /// The id of the module call this call is made in; empty outside one.
    pub call_id: String,
    ctx: Option<Context>,
    overrides: Arc<Overrides>,
    reads: Arc<Mutex<Vec<VariableRead>>>,
}

impl fmt::Debug for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invocation")
            .field("name", &self.name)
            .field("arguments", &self.arguments)
            .field("call_id", &self.call_id)
            .finish_non_exhaustive()
    }
}

impl Invocation {
    /// An invocation outside any session, for calling a tool directly (tests, examples):
    /// `ctx` supplies the variables, `overrides` win over its values.
    pub fn new(
        name: impl Into<String>,
        arguments: Map<String, JsonValue>,
        ctx: Option<Context>,
        overrides: Overrides,
    ) -> Self {
        Self {
            name: name.into(),
            arguments,
            call_id: String::new(),
            ctx,
            overrides: Arc::new(overrides),
            reads: Arc::default(),
        }
    }

    /// The values of `names` for this call, in order: the run's override of each, else the
    /// context's current value, all read in one snapshot. Every read is recorded with its
    /// version (none for an override) in the call's trace.
    pub fn variables(&self, names: &[&str]) -> Result<Vec<Value>> {
        let from_ctx: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| self.overrides.get(n).is_none())
            .collect();
        let mut read = Vec::with_capacity(from_ctx.len());
        if !from_ctx.is_empty() {
            let ctx = self.ctx.as_ref().ok_or_else(|| {
                Error::bridge(format!(
                    "callback `{}` reads variables, but its context is gone",
                    self.name
                ))
            })?;
            ctx.with_backend(|backend| {
                backend.read_many(&from_ctx, &mut |_, record| {
                    read.push(record.map(|r| (r.value.clone(), r.version)));
                })
            })?;
        }
        let mut read = read.into_iter();
        let mut values = Vec::with_capacity(names.len());
        let mut reads = self.reads.lock();
        for name in names {
            let (value, version) = match self.overrides.get(name) {
                Some(value) => (value.clone(), None),
                None => {
                    let (value, version) = read
                        .next()
                        .flatten()
                        .ok_or_else(|| Error::not_found(name))?;
                    (value, Some(version))
                }
            };
            reads.push(VariableRead {
                name: (*name).to_owned(),
                value: value.clone(),
                version,
            });
            values.push(value);
        }
        Ok(values)
    }

    /// The value of one variable for this call (see [`variables`](Self::variables)).
    pub fn variable(&self, name: &str) -> Result<Value> {
        let mut values = self.variables(&[name])?;
        values.pop().ok_or_else(|| Error::not_found(name))
    }
}

/// The run a module call belongs to: the values its callbacks read and the record of each.
struct CallScope {
    ctx: Context,
    overrides: Arc<Overrides>,
    calls: Mutex<Vec<ToolCall>>,
}

/// The callables of one session and the module calls in flight.
#[derive(Default)]
pub(crate) struct CallbackRegistry {
    callables: RwLock<FxHashMap<String, Callback>>,
    /// The context that registered them, for calls made outside a module call.
    owner: Mutex<Option<WeakContext>>,
    scopes: Mutex<FxHashMap<String, Arc<CallScope>>>,
}

impl CallbackRegistry {
    pub(crate) fn register(&self, callback: Callback, owner: &Context) -> Result<()> {
        callback.check()?;
        *self.owner.lock() = Some(owner.downgrade());
        self.callables
            .write()
            .insert(callback.name.clone(), callback);
        Ok(())
    }

    pub(crate) fn unregister(&self, name: &str) -> bool {
        self.callables.write().remove(name).is_some()
    }

    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.callables.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Opens the scope of module call `call_id`; it closes when the guard drops.
    pub(crate) fn open_scope(
        self: &Arc<Self>,
        call_id: &str,
        ctx: &Context,
        overrides: &Overrides,
    ) -> ScopeGuard {
        let scope = Arc::new(CallScope {
            ctx: ctx.clone(),
            overrides: Arc::new(overrides.clone()),
            calls: Mutex::new(Vec::new()),
        });
        self.scopes
            .lock()
            .insert(call_id.to_owned(), Arc::clone(&scope));
        ScopeGuard {
            registry: Arc::clone(self),
            call_id: call_id.to_owned(),
            scope,
        }
    }
}

/// An open module call: its callbacks see its run and are recorded until it drops.
pub(crate) struct ScopeGuard {
    registry: Arc<CallbackRegistry>,
    call_id: String,
    scope: Arc<CallScope>,
}

impl ScopeGuard {
    /// The callbacks made so far, in the order they finished.
    pub(crate) fn take_calls(&self) -> Vec<ToolCall> {
        std::mem::take(&mut *self.scope.calls.lock())
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        self.registry.scopes.lock().remove(&self.call_id);
    }
}

/// `CallbackService` over a session store.
pub(crate) struct CallbackServer {
    store: SessionStore,
}

impl CallbackServer {
    pub(crate) fn new(store: SessionStore) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl CallbackService for CallbackServer {
    async fn call(
        &self,
        request: Request<pb::CallbackRequest>,
    ) -> std::result::Result<Response<pb::CallbackResponse>, Status> {
        let session = authorized(&self.store, &request, &request.get_ref().session_id)?;
        let r = request.into_inner();
        if r.arguments_json.len() > MAX_CALLBACK_ARGUMENT_BYTES {
            return Err(status(
                Code::InvalidArgument,
                ErrorKind::Limit,
                format!(
                    "the arguments of `{}` take {} bytes, over the limit of {MAX_CALLBACK_ARGUMENT_BYTES} (MAX_CALLBACK_ARGUMENT_BYTES)",
                    excerpt(&r.name),
                    r.arguments_json.len()
                ),
            ));
        }
        let registry = &session.callbacks;
        let Some(callback) = registry.callables.read().get(&r.name).cloned() else {
            return Err(status(
                Code::NotFound,
                ErrorKind::NotFound,
                format!(
                    "session `{}` has no callable `{}`; it has: {}",
                    session.id,
                    excerpt(&r.name),
                    names_list(&registry.names())
                ),
            ));
        };
        let arguments = match serde_json::from_str::<JsonValue>(&r.arguments_json) {
            Ok(JsonValue::Object(map)) => map,
            Ok(_) | Err(_) => {
                return Err(status(
                    Code::InvalidArgument,
                    ErrorKind::InvalidRequest,
                    format!(
                        "the arguments of `{}` must be a JSON object, found {:?}",
                        callback.name,
                        excerpt(&r.arguments_json)
                    ),
                ));
            }
        };
        let scope = if r.call_id.is_empty() {
            None
        } else {
            let scope = registry.scopes.lock().get(&r.call_id).cloned();
            let Some(scope) = scope else {
                return Err(status(
                    Code::NotFound,
                    ErrorKind::NotFound,
                    format!(
                        "session `{}` has no module call `{}` in flight",
                        session.id,
                        excerpt(&r.call_id)
                    ),
                ));
            };
            if scope.calls.lock().len() >= MAX_CALLBACKS_PER_CALL {
                return Err(status(
                    Code::ResourceExhausted,
                    ErrorKind::Limit,
                    format!(
                        "module call `{}` already made {MAX_CALLBACKS_PER_CALL} callbacks, the limit (MAX_CALLBACKS_PER_CALL)",
                        excerpt(&r.call_id)
                    ),
                ));
            }
            Some(scope)
        };
        let (ctx, overrides) = match &scope {
            Some(scope) => (Some(scope.ctx.clone()), Arc::clone(&scope.overrides)),
            None => (
                registry
                    .owner
                    .lock()
                    .as_ref()
                    .and_then(WeakContext::upgrade),
                Arc::default(),
            ),
        };
        drop(session);
        let reads = Arc::new(Mutex::new(Vec::new()));
        let invocation = Invocation {
            name: callback.name.clone(),
            arguments: arguments.clone(),
            call_id: r.call_id,
            ctx,
            overrides,
            reads: Arc::clone(&reads),
        };
        let started = Instant::now();
        let outcome = run(&callback, invocation).await;
        let duration = started.elapsed();
        let outcome = outcome.and_then(|result| {
            let json = result.to_string();
            if json.len() > MAX_CALLBACK_RESULT_BYTES {
                Err(format!(
                    "the result takes {} bytes, over the limit of {MAX_CALLBACK_RESULT_BYTES} (MAX_CALLBACK_RESULT_BYTES)",
                    json.len()
                ))
            } else {
                Ok((result, json))
            }
        });
        let response = pb::CallbackResponse {
            outcome: Some(match &outcome {
                Ok((_, json)) => pb::callback_response::Outcome::ResultJson(json.clone()),
                Err(e) => {
                    pb::callback_response::Outcome::Error(super::server::bounded_message(e.clone()))
                }
            }),
            duration_micros: u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
        };
        if let Some(scope) = scope {
            let variables = std::mem::take(&mut *reads.lock());
            scope.calls.lock().push(ToolCall {
                tool: callback.name.clone(),
                arguments: JsonValue::Object(arguments),
                result: outcome.map(|(result, _)| result),
                duration,
                variables,
            });
        }
        Ok(Response::new(response))
    }
}

/// Runs one call as a task of its own, bounded by the callable's timeout; a panic or a timeout
/// is an error message.
async fn run(
    callback: &Callback,
    invocation: Invocation,
) -> std::result::Result<JsonValue, String> {
    let handler = Arc::clone(&callback.handler);
    let future = match std::panic::catch_unwind(AssertUnwindSafe(|| handler(invocation))) {
        Ok(future) => future,
        Err(panic) => return Err(panicked(panic.as_ref())),
    };
    let mut task = tokio::spawn(future);
    match tokio::time::timeout(callback.timeout, &mut task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join)) if join.is_panic() => Err(panicked(join.into_panic().as_ref())),
        Ok(Err(join)) => Err(format!("`{}` was cancelled: {join}", callback.name)),
        Err(_) => {
            task.abort();
            Err(format!(
                "`{}` timed out after {:?} (its timeout)",
                callback.name, callback.timeout
            ))
        }
    }
}

fn panicked(payload: &(dyn std::any::Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic payload".to_owned());
    format!("panicked: {message}")
}

fn names_list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    let shown: Vec<String> = names.iter().take(16).map(|n| format!("`{n}`")).collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
