//! Python workers: the processes that run a context's python steps with real DSPy modules.
//!
//! A bridged context that runs a python step starts one worker, `python -m dspex_bridge.worker`
//! (the interpreter from `DSPEX_PYTHON`, else `python3`), with its session's store address and
//! token in the environment. The [`WorkerSupervisor`] waits for the worker's readiness line
//! (bounded, with an error naming the interpreter and what failed), forwards its output to
//! `tracing` (target `dspex::worker`), checks its health, restarts it after a crash and creates
//! its modules again from the specs it keeps (so nothing is lost), and when the context goes
//! away asks it to shut down, then terminates it, then kills it. The worker also exits by itself
//! when its stdin closes, so it cannot outlive the Rust process.
//!
//! The supervisor's tasks and gRPC clients run on a small runtime of their own, so they keep
//! working whatever runtime the caller uses (or none).

use std::sync::OnceLock;

use crate::error::{Error, Result};

mod config;
mod process;
mod supervisor;

pub use config::{ENV_PYTHON, LmConfig, WorkerConfig};
pub(crate) use supervisor::ModuleSpec;
pub use supervisor::{WorkerStatus, WorkerSupervisor};

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
