//! Python workers: the processes that run a context's python steps with real DSPy modules.
//!
//! A bridged context that runs a python step starts its worker processes (one by default, a
//! pool with [`WorkerConfig::processes`]): `python -m dspex_bridge.worker` (the interpreter
//! from `DSPEX_PYTHON`, else `python3`), with its session's store address and token in the
//! environment and its configuration (the LM, the call limit) as a
//! `WorkerConfig` message on its stdin: a 4-byte
//! big-endian length, then the encoded message. A ready worker prints one line,
//! `DSPEX_WORKER_READY ` followed by its `WorkerReady` report in
//! hex. The context's supervisor waits for that line (bounded, with an error naming the
//! interpreter and what failed), forwards the worker's output to `tracing` (target
//! `dspex::worker`), checks its health, restarts it after a crash and creates its modules again
//! from the specs it keeps (so nothing is lost), and when the context goes away asks it to shut
//! down, then terminates it, then kills it. A worker also exits by itself when its stdin
//! closes, so it cannot outlive the Rust process.
//!
//! # A call
//!
//! A python step sends its inputs typed by its signature and the values of its bound
//! variables for the run (read in one snapshot, with the variables' versions, or the run's
//! overrides) with the call: the worker applies them to that call only (`temperature`,
//! `max_tokens`, `top_p`, `n` as the settings of the call's LM requests, over the module's own
//! configuration, `model` as the call's LM, anything else as a keyword argument of the module)
//! and never reads them back from the store, so concurrent calls of one module with different
//! values never see each other's. The outputs come back typed by the signature; one the module
//! returned in a form its declared type cannot take is an
//! [`Error::Field`] naming the step, the field, the type and the value.
//! Each call runs in a thread of its own in the worker; a process runs up to
//! [`WorkerConfig::max_concurrent_calls`] at once and further calls wait on the Rust side for a
//! place (the worker refuses a call over its limit with `RESOURCE_EXHAUSTED`). Calls go to the
//! process of the pool with the fewest calls in flight.
//!
//! # Cancellation
//!
//! A call given up on (its run's future dropped, or past [`WorkerConfig::call_timeout`]) is
//! cancelled in the worker: its LM request is closed, its thread returns, and its place is
//! freed only once the worker says so, so a worker that is still busy gets no more calls than
//! it may run; calls waiting for a place wait for that (bounded by their call timeout), or go
//! to another process of the pool.
//!
//! The supervisor's tasks and gRPC clients run on a small runtime of their own, so they keep
//! working whatever runtime the caller uses (or none).

use std::sync::OnceLock;

use crate::error::{Error, Result};

mod config;
mod process;
mod supervisor;

pub(crate) use config::lm_to_proto;
pub use config::{
    DEFAULT_MAX_CONCURRENT_CALLS, ENV_PYTHON, MAX_CONCURRENT_CALLS, MAX_WORKER_PROCESSES,
    WorkerConfig,
};
pub(crate) use supervisor::ModuleSpec;
pub(crate) use supervisor::WorkerSupervisor;
pub use supervisor::{ProcessStatus, WorkerHealth, WorkerStatus};

/// The runtime the supervisors' tasks run on, started on first use.
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("dspex-worker-supervisor")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::worker(format!("cannot start the supervisor runtime: {e}")))
}
