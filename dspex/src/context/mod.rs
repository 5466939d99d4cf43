//! [`Context`]: the handle programs and users hold. It owns one state backend at a time and
//! offers the variables API over it; beside it, the switch between backends and the services
//! it owns (the LM client, and on the Python side the bridge session, the worker and the Rust
//! callables Python may call back).
//!
//! - `handle`: the `Context` handle itself, its backend and what it holds.
//! - `vars` and `var`: the variables API, by name and through typed handles ([`Var`]).
//! - `switch`: moving the variables to the bridge or into a shared session.
//! - `services`: the LM client, the worker, the callbacks.
//! - `overrides`, `snapshot` and `runs`: the values a run sees (its overrides first,
//!   the others in one snapshot), for steps and tools alike.
//! - `callbacks`: Rust callables for Python code, dispatched from the bridge.
//! - `builder`: [`ContextBuilder`].

mod builder;
#[cfg(feature = "python")]
mod callbacks;
mod handle;
mod overrides;
mod runs;
mod services;
mod snapshot;
#[cfg(any(feature = "python", feature = "redis", test))]
mod switch;
mod var;
mod vars;

pub use builder::ContextBuilder;
#[cfg(feature = "python")]
pub(crate) use callbacks::panic_message;
#[cfg(feature = "python")]
pub use callbacks::{Callback, CallbackFuture, Invocation};
pub use handle::{BackendInfo, Context};
pub use overrides::Overrides;
pub(crate) use snapshot::StepParams;
#[cfg(any(feature = "python", feature = "redis"))]
pub(crate) use switch::off_runtime;
pub use var::Var;
