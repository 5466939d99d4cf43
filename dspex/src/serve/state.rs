//! What every route of a server shares: its programs, tokens, bounds, the count of requests
//! in flight, the metrics.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};

use super::metrics::Metrics;
use crate::program::BaseProgram;

/// One served program.
pub(crate) struct Served {
    pub(crate) program: Box<dyn BaseProgram>,
}

/// What every route shares.
pub(crate) struct ServerState {
    pub(crate) programs: BTreeMap<String, Arc<Served>>,
    pub(crate) token: Option<String>,
    pub(crate) admin_token: Option<String>,
    /// One permit per run at once.
    pub(crate) runs: Arc<Semaphore>,
    pub(crate) max_concurrent_runs: usize,
    pub(crate) queued: AtomicUsize,
    pub(crate) max_queued_runs: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) shutting_down: AtomicBool,
    /// Set when a shutdown starts: the dashboard's live streams end.
    pub(crate) stopping: watch::Sender<bool>,
    /// Set at the drain timeout: the runs still going are answered 503.
    pub(crate) cancel_runs: watch::Sender<bool>,
    /// Requests being answered (a stream until its last event).
    pub(crate) in_flight: AtomicUsize,
    /// Told when `in_flight` drops to 0.
    pub(crate) drained: Notify,
    pub(crate) metrics: Metrics,
    /// The OpenAPI document, built once.
    pub(crate) openapi: serde_json::Value,
    /// The dashboard's sessions, recent runs and studies.
    #[cfg(feature = "dashboard")]
    pub(crate) dashboard: super::dashboard::Dashboard,
}

impl ServerState {
    /// How many runs go at once.
    pub(crate) fn runs_limit(&self) -> usize {
        self.max_concurrent_runs
    }

    /// Resolves when the runs still going must stop (the drain timeout of a shutdown).
    pub(crate) async fn runs_cancelled(&self) {
        let mut cancelled = self.cancel_runs.subscribe();
        // The sender lives as long as `self`.
        let _ = cancelled.wait_for(|c| *c).await;
    }

    /// Resolves once a shutdown has started.
    #[cfg(feature = "dashboard")]
    pub(crate) async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        // The sender lives as long as `self`.
        let _ = stopping.wait_for(|s| *s).await;
    }

    /// Counts a request in flight until the guard is dropped (a stream: until its last event).
    pub(crate) fn enter(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(Arc::clone(self))
    }
}

/// One request in flight; a shutdown waits for these.
pub(crate) struct InFlight(Arc<ServerState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}
