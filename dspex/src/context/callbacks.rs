//! Rust callables that a context's Python code calls back: the tools of python steps, a Rust
//! metric while a step compiles, and any [`Callback`] registered with
//! [`Context::register_callback`](crate::Context::register_callback).
//!
//! The bridge's `CallbackService` authenticates a call and hands it to the context's
//! [`CallbackRegistry`] (its [`CallbackDispatch`]), which:
//!
//! - looks the name up among the context's callables (`NOT_FOUND` otherwise);
//! - for a call made inside a python step's module call (its `call_id`), admits it into that
//!   call's scope, at most [`MAX_CALLBACKS_PER_CALL`] per module call: the count of admitted
//!   calls is reserved and checked under one lock, so concurrent calls cannot pass it, and a
//!   refused call never runs and is not recorded;
//! - runs it as its own task, bounded by the callable's timeout
//!   ([`DEFAULT_CALLBACK_TIMEOUT`], at most [`MAX_CALLBACK_TIMEOUT`]); an error, a panic or a
//!   timeout is an answer, and a result over [`MAX_CALLBACK_RESULT_BYTES`] is answered as an
//!   error;
//! - records it in the step's trace ([`ToolCall`]), with the variables it read: the run's
//!   values ([`read_run_values`]: its overrides, else the context's values in one snapshot).

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dspex_core::{Value, excerpt};
use futures_util::FutureExt;
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use serde_json::{Map, Value as JsonValue};

use super::overrides::Overrides;
use super::snapshot::{RunValue, read_run_values, read_with};
use crate::bridge::dispatch::{
    CallbackAnswer, CallbackCall, CallbackDispatch, CallbackRefusal, DispatchFuture,
};
use crate::data::spans;
use crate::data::{ToolCall, VariableRead};
use crate::error::{Error, Result};
use crate::state::StateProvider;
use crate::wire::limits::{
    DEFAULT_CALLBACK_TIMEOUT, MAX_CALLBACK_RESULT_BYTES, MAX_CALLBACK_TIMEOUT,
    MAX_CALLBACKS_PER_CALL, MAX_NAME_LEN,
};

/// What a callable returns: its result as JSON, or why it has none (the message an agent
/// reads after `error: `).
pub type CallbackFuture =
    Pin<Box<dyn Future<Output = std::result::Result<JsonValue, String>> + Send>>;

type Handler = dyn Fn(Invocation) -> CallbackFuture + Send + Sync;

/// A Rust callable that the session's Python code may call by name.
///
/// ```
/// use dspex::tools::Callback;
/// use std::time::Duration;
///
/// let double = Callback::new("double", |call| async move {
///     match call.arguments.get("x").and_then(|x| x.as_i64()) {
///         Some(x) => Ok(dspex::json!(x * 2)),
///         None => Err("`x` must be an integer"),
///     }
/// })
/// .timeout(Duration::from_secs(1));
/// assert_eq!(double.name(), "double");
/// ```
#[derive(Clone)]
pub struct Callback {
    name: String,
    timeout: Duration,
    handler: Arc<Handler>,
    /// What the callable is (a tool's full path): registering another callable under the same
    /// name is refused.
    origin: Option<&'static str>,
    /// Polled in the call's own task rather than spawned as a task of its own (a short
    /// synchronous tool): a result after its timeout is refused.
    inline: bool,
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
            origin: None,
            inline: false,
        }
    }

    /// A callable whose handler is a plain function (what a tool generates).
    pub(crate) fn from_fn(name: &str, handler: fn(Invocation) -> CallbackFuture) -> Self {
        Self {
            name: name.to_owned(),
            timeout: DEFAULT_CALLBACK_TIMEOUT,
            handler: Arc::new(handler),
            origin: None,
            inline: false,
        }
    }

    /// Marks what the callable is, so that another one of the same name is refused.
    pub(crate) fn origin(mut self, origin: &'static str) -> Self {
        self.origin = Some(origin);
        self
    }

    /// Marks a handler that returns at once (a short synchronous tool), to be run inline.
    pub(crate) fn inline(mut self, inline: bool) -> Self {
        self.inline = inline;
        self
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

/// Where a callback reads the variables of its run: a context (held strongly by a module
/// call's scope, weakly by the registry for calls made outside one).
pub(crate) trait VariableSource: Send + Sync {
    /// Runs `read` on the context's current backend; an error if the context is gone.
    fn with_state(
        &self,
        read: &mut dyn FnMut(&dyn StateProvider) -> Result<Vec<RunValue>>,
    ) -> Result<Vec<RunValue>>;
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
    pub(super) source: Option<Arc<dyn VariableSource>>,
    pub(super) overrides: Arc<Overrides>,
    pub(super) reads: Arc<Mutex<Vec<VariableRead>>>,
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
    /// The values of `names` for this call, in order: the run's override of each, else the
    /// context's current value, all read in one snapshot. Every read is recorded with its
    /// version (none for an override) in the call's trace.
    pub fn variables(&self, names: &[&str]) -> Result<Vec<Value>> {
        let values = match &self.source {
            Some(source) => source
                .with_state(&mut |backend| read_run_values(backend, &self.overrides, names))?,
            // Without a context, only overrides can be read.
            None => {
                let mut values = Vec::with_capacity(names.len());
                read_with(
                    &self.overrides,
                    names,
                    |missing, _| {
                        Err(Error::bridge(format!(
                            "callback `{}` reads variable `{}`, but its context is gone",
                            self.name,
                            missing.first().copied().unwrap_or_default()
                        )))
                    },
                    |_, value| values.push(value),
                )?;
                values
            }
        };
        let mut reads = self.reads.lock();
        Ok(names
            .iter()
            .zip(values)
            .map(|(name, read)| {
                reads.push(VariableRead {
                    name: (*name).to_owned(),
                    value: read.value.clone(),
                    version: read.version,
                });
                read.value
            })
            .collect())
    }

    /// The value of one variable for this call (see [`variables`](Self::variables)).
    pub fn variable(&self, name: &str) -> Result<Value> {
        let mut values = self.variables(&[name])?;
        values.pop().ok_or_else(|| Error::not_found(name))
    }
}

/// The run a module call belongs to: where its callbacks read their variables, how many were
/// admitted, and the record of each that ran.
struct CallScope {
    source: Arc<dyn VariableSource>,
    overrides: Arc<Overrides>,
    calls: Mutex<ScopeCalls>,
    /// The span of the step whose call this is: the parent of its tool calls' spans.
    span: spans::SpanScope,
}

#[derive(Default)]
struct ScopeCalls {
    /// Callbacks admitted so far (running or done): the bound applies to these.
    admitted: usize,
    /// The record of each finished callback, in the order they finished.
    done: Vec<ToolCall>,
}

/// The callables of one context and the module calls in flight; the dispatcher of the
/// context's bridge session.
#[derive(Default)]
pub(crate) struct CallbackRegistry {
    callables: RwLock<FxHashMap<String, Callback>>,
    /// The context that registered them, for calls made outside a module call.
    owner: Mutex<Option<Arc<dyn VariableSource>>>,
    scopes: Mutex<FxHashMap<String, Arc<CallScope>>>,
}

impl CallbackRegistry {
    /// Registers `callback` (replacing one of the same name, unless both are tools of
    /// different paths); `owner` is where calls made outside a module call read variables.
    pub(crate) fn register(
        &self,
        callback: Callback,
        owner: Arc<dyn VariableSource>,
    ) -> Result<()> {
        callback.check()?;
        let mut callables = self.callables.write();
        if let Some(existing) = callables.get(&callback.name)
            && let (Some(theirs), Some(ours)) = (existing.origin, callback.origin)
            && theirs != ours
        {
            return Err(Error::InvalidOption {
                option: format!("tool `{}`", callback.name),
                message: format!(
                    "`{ours}` and `{theirs}` are both tools named `{}` in one context; rename one",
                    callback.name
                ),
            });
        }
        *self.owner.lock() = Some(owner);
        callables.insert(callback.name.clone(), callback);
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

    /// Opens the scope of module call `call_id`, whose callbacks read their variables from
    /// `source` with `overrides`; it closes when the guard drops.
    pub(crate) fn open_scope(
        self: &Arc<Self>,
        call_id: &str,
        source: Arc<dyn VariableSource>,
        overrides: &Overrides,
    ) -> ScopeGuard {
        let scope = Arc::new(CallScope {
            source,
            overrides: Arc::new(overrides.clone()),
            calls: Mutex::default(),
            span: spans::current_scope(),
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

    /// The callable and, for a call inside a module call, its scope with a place reserved;
    /// refuses (running nothing) an unknown callable or call, or a full scope.
    fn admit(
        &self,
        call: &CallbackCall,
    ) -> std::result::Result<(Callback, Option<Arc<CallScope>>), CallbackRefusal> {
        let Some(callback) = self.callables.read().get(&call.name).cloned() else {
            return Err(CallbackRefusal::UnknownCallable(format!(
                "session `{}` has no callable `{}`; it has: {}",
                call.session_id,
                excerpt(&call.name),
                names_list(&self.names())
            )));
        };
        if call.call_id.is_empty() {
            return Ok((callback, None));
        }
        let Some(scope) = self.scopes.lock().get(&call.call_id).cloned() else {
            return Err(CallbackRefusal::UnknownCall(format!(
                "session `{}` has no module call `{}` in flight",
                call.session_id,
                excerpt(&call.call_id)
            )));
        };
        {
            let mut calls = scope.calls.lock();
            if calls.admitted >= MAX_CALLBACKS_PER_CALL {
                return Err(CallbackRefusal::Limit(format!(
                    "module call `{}` already made {MAX_CALLBACKS_PER_CALL} callbacks, the limit (MAX_CALLBACKS_PER_CALL)",
                    excerpt(&call.call_id)
                )));
            }
            calls.admitted += 1;
        }
        Ok((callback, Some(scope)))
    }
}

impl CallbackDispatch for CallbackRegistry {
    fn dispatch(&self, call: CallbackCall) -> DispatchFuture {
        let admitted = self.admit(&call);
        let owner = self.owner.lock().clone();
        Box::pin(async move {
            let (callback, scope) = admitted?;
            let (source, overrides) = match &scope {
                Some(scope) => (
                    Some(Arc::clone(&scope.source)),
                    Arc::clone(&scope.overrides),
                ),
                None => (owner, Arc::default()),
            };
            let reads = Arc::new(Mutex::new(Vec::new()));
            // The trace keeps the arguments: a copy only for a call that is recorded.
            let recorded = scope.as_ref().map(|_| call.arguments.clone());
            let invocation = Invocation {
                name: callback.name.clone(),
                arguments: call.arguments,
                call_id: call.call_id,
                source,
                overrides,
                reads: Arc::clone(&reads),
            };
            // The tool call continues the trace its caller sent, else its run's step.
            let step_span = scope.as_ref().map(|scope| scope.span.clone());
            let mut span = spans::OpenSpan::remote_tool(
                call.traceparent.as_deref(),
                &step_span.unwrap_or_default(),
                &callback.name,
            );
            let started = Instant::now();
            let outcome = spans::in_scope(span.scope(), run(&callback, invocation)).await;
            let duration = started.elapsed();
            if let Err(e) = &outcome {
                span.record_failure(e);
            }
            // The tool's span ends here (with telemetry compiled in; nothing to end without).
            #[allow(clippy::drop_non_drop)]
            drop(span);
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
            let answer = CallbackAnswer {
                outcome: match &outcome {
                    Ok((_, json)) => Ok(json.clone()),
                    Err(e) => Err(e.clone()),
                },
                duration,
            };
            if let (Some(scope), Some(arguments)) = (scope, recorded) {
                let variables = std::mem::take(&mut *reads.lock());
                scope.calls.lock().done.push(ToolCall {
                    tool: callback.name.clone(),
                    arguments: JsonValue::Object(arguments),
                    result: outcome.map(|(result, _)| result),
                    duration,
                    variables,
                });
            }
            Ok(answer)
        })
    }
}

/// An open module call: its callbacks see its run and are recorded until it drops.
pub(crate) struct ScopeGuard {
    registry: Arc<CallbackRegistry>,
    call_id: String,
    scope: Arc<CallScope>,
}

impl ScopeGuard {
    /// The callbacks that finished so far, in the order they finished.
    pub(crate) fn take_calls(&self) -> Vec<ToolCall> {
        std::mem::take(&mut self.scope.calls.lock().done)
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        self.registry.scopes.lock().remove(&self.call_id);
    }
}

/// Runs one call as a task of its own, bounded by the callable's timeout (an inline one in
/// this task, a result after its timeout refused); a panic or a timeout is an error message.
async fn run(
    callback: &Callback,
    invocation: Invocation,
) -> std::result::Result<JsonValue, String> {
    let timed_out = || {
        format!(
            "`{}` timed out after {:?} (its timeout)",
            callback.name, callback.timeout
        )
    };
    let started = Instant::now();
    let future = match std::panic::catch_unwind(AssertUnwindSafe(|| (callback.handler)(invocation)))
    {
        Ok(future) => future,
        Err(panic) => return Err(panic_message(panic.as_ref())),
    };
    if callback.inline {
        let outcome = AssertUnwindSafe(future)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(panic_message(panic.as_ref())));
        // A result that came after the timeout is refused; an error or a panic says more.
        return match outcome {
            Ok(_) if started.elapsed() > callback.timeout => Err(timed_out()),
            outcome => outcome,
        };
    }
    let mut task = tokio::spawn(future);
    match tokio::time::timeout(callback.timeout, &mut task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(join)) if join.is_panic() => Err(panic_message(join.into_panic().as_ref())),
        Ok(Err(join)) => Err(format!("`{}` was cancelled: {join}", callback.name)),
        Err(_) => {
            task.abort();
            Err(timed_out())
        }
    }
}

/// What a panic's payload says, as the error of a call.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
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
