//! The services a context owns besides its variables: the LM client of its native LM steps,
//! and on the Python side its bridge session, its Python worker and the Rust callables its
//! Python code may call back.

use std::sync::Arc;

use super::handle::Context;
use crate::error::Result;
use crate::lm::{LmClient, LmConfig};
#[cfg(feature = "python")]
use {
    super::callbacks::{Callback, CallbackRegistry},
    crate::bridge::{BridgeServer, SessionInfo},
    crate::error::Error,
    crate::worker::{WorkerHealth, WorkerStatus, WorkerSupervisor},
};

impl Context {
    /// The LM of the context's steps, native and python (set with
    /// [`ContextBuilder::lm`](crate::ContextBuilder::lm)).
    pub fn lm_config(&self) -> &LmConfig {
        &self.inner.lm
    }

    /// The LM client of the context's native LM steps ([`Predict`](crate::Predict),
    /// [`ChainOfThought`](crate::ChainOfThought)): built from the context's
    /// [`LmConfig`] on first use and shared by every step, so that its
    /// concurrency limit and cache are the context's. An [`Error::Lm`](crate::Error::Lm) if
    /// that LM cannot be called from Rust (a `dspy.LM` model string) or its API key variable
    /// is not set; a later call tries again.
    pub fn lm_client(&self) -> Result<Arc<LmClient>> {
        if let Some(lm) = self.inner.lm_client.get() {
            return Ok(Arc::clone(lm));
        }
        let built = Arc::new(LmClient::new(self.inner.lm.clone())?);
        Ok(Arc::clone(self.inner.lm_client.get_or_init(|| built)))
    }
}

#[cfg(feature = "python")]
impl Context {
    /// The address, session id and token a Python process needs to reach this context's
    /// variables; `None` while the context is local.
    pub fn bridge_session(&self) -> Option<SessionInfo> {
        self.inner.python.bridge.get().map(|b| b.session_info())
    }

    /// The bridge server of a bridged context.
    pub fn bridge_server(&self) -> Option<&BridgeServer> {
        self.inner.python.bridge.get().map(|b| b.server())
    }

    /// Registers `callback` for this context's bridge session (bridging the context first), so
    /// that the context's Python code (its workers' tools, metrics) can call it by name through
    /// the bridge server's `CallbackService`. A callback of the same name is replaced. Only this
    /// context's session reaches it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for an empty or over-long name or a timeout outside
    /// `(0, MAX_CALLBACK_TIMEOUT]`; the errors of [`ensure_bridged`](Self::ensure_bridged).
    pub async fn register_callback(&self, callback: Callback) -> Result<()> {
        callback.check()?;
        self.ensure_bridged().await?;
        self.register_callback_now(callback)
    }

    /// Registers `callback` in the context's registry (the context is bridged already).
    pub(crate) fn register_callback_now(&self, callback: Callback) -> Result<()> {
        self.callbacks()
            .register(callback, Arc::new(self.downgrade()))
    }

    /// Removes the callback named `name`; whether there was one.
    pub fn unregister_callback(&self, name: &str) -> bool {
        self.callbacks().unregister(name)
    }

    /// The context's callables and the module calls in flight.
    pub(crate) fn callbacks(&self) -> &Arc<CallbackRegistry> {
        &self.inner.python.callbacks
    }

    /// Starts the context's Python worker now (bridging the context first) instead of at its
    /// first python step, and waits until it is ready; does nothing if it runs already. Fails
    /// with [`Error::Worker`] naming the interpreter and what went wrong when the worker cannot
    /// start; a later call tries again.
    pub async fn start_worker(&self) -> Result<WorkerStatus> {
        Ok(self.worker().await?.status())
    }

    /// The context's Python worker: started on first use (the context bridges first), then
    /// shared by every python step of the context. Fails with [`Error::Worker`] naming the
    /// interpreter and what went wrong when the worker cannot start; a later call tries again.
    pub(crate) async fn worker(&self) -> Result<Arc<WorkerSupervisor>> {
        if let Some(worker) = self.running_worker() {
            return Ok(worker);
        }
        self.ensure_bridged().await?;
        let _one_at_a_time = self.inner.python.worker_start.lock().await;
        if let Some(worker) = self.running_worker() {
            return Ok(worker);
        }
        let session = self
            .bridge_session()
            .ok_or_else(|| Error::internal("a bridged context has no session"))?;
        let worker = WorkerSupervisor::start(
            self.inner.python.worker_config.clone(),
            &self.inner.lm,
            session,
        )
        .await?;
        *self.inner.python.worker.lock() = Some(Arc::clone(&worker));
        Ok(worker)
    }

    /// The worker if one is running (not shut down).
    pub(crate) fn running_worker(&self) -> Option<Arc<WorkerSupervisor>> {
        self.inner
            .python
            .worker
            .lock()
            .as_ref()
            .filter(|w| !w.is_closed())
            .cloned()
    }

    /// The state of the context's Python worker, if one was started and not shut down.
    pub fn worker_status(&self) -> Option<WorkerStatus> {
        self.running_worker().map(|w| w.status())
    }

    /// What each process of the context's Python worker reports of itself (the calls it runs,
    /// its threads, its memory); empty if no worker runs.
    pub async fn worker_health(&self) -> Vec<WorkerHealth> {
        match self.running_worker() {
            Some(worker) => worker.health().await,
            None => Vec::new(),
        }
    }

    /// Stops the context's Python worker now (ask, terminate, kill) instead of when the
    /// context is dropped. A later python step starts a new one, and creates its module in it
    /// again.
    pub async fn shutdown_worker(&self) {
        let worker = self.inner.python.worker.lock().take();
        if let Some(worker) = worker {
            worker.shutdown().await;
        }
    }
}
