//! What the bridge hands a callback to. The callables of a session (the tools of python steps,
//! a Rust metric) live in the layers above, which the bridge knows only through
//! [`CallbackDispatch`]: the `CallbackService` authenticates and bounds a call, then the
//! session's dispatcher admits, runs and records it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{Map, Value as JsonValue};

/// One call as the bridge received it: authenticated, its arguments bounded and a JSON object.
#[derive(Debug)]
pub(crate) struct CallbackCall {
    /// The session the call came from.
    pub(crate) session_id: String,
    /// The callable's name.
    pub(crate) name: String,
    /// The arguments.
    pub(crate) arguments: Map<String, JsonValue>,
    /// The module call it is made in; empty outside one.
    pub(crate) call_id: String,
    /// The W3C trace context the caller sent (the module call's), if any.
    pub(crate) traceparent: Option<String>,
}

/// The answer to an admitted call: its result as JSON text, or the error the caller reads
/// (the callable's error, its panic, its timeout, a result over the bound).
#[derive(Debug)]
pub(crate) struct CallbackAnswer {
    /// The result or the error.
    pub(crate) outcome: Result<String, String>,
    /// How long the callable ran.
    pub(crate) duration: Duration,
}

/// Why a call was refused before it ran; each message names what was asked for.
#[derive(Debug)]
pub(crate) enum CallbackRefusal {
    /// The session has no callable of that name.
    UnknownCallable(String),
    /// No module call of that id is in flight in the session.
    UnknownCall(String),
    /// The module call has made as many callbacks as it may.
    Limit(String),
}

/// A boxed dispatch.
pub(crate) type DispatchFuture =
    Pin<Box<dyn Future<Output = Result<CallbackAnswer, CallbackRefusal>> + Send>>;

/// The callables of one session, as the bridge's `CallbackService` reaches them.
pub(crate) trait CallbackDispatch: Send + Sync + 'static {
    /// Admits `call` (or refuses it, running nothing), runs it and answers.
    fn dispatch(&self, call: CallbackCall) -> DispatchFuture;
}
