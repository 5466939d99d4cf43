//! Moving a context's variables from one backend to another: up to the bridge when a python
//! step needs them ([`Context::ensure_bridged`]), into a shared session in Redis
//! ([`Context::ensure_shared`]), transactionally, with every variable kept.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use super::handle::Context;
#[cfg(feature = "python")]
use crate::bridge::dispatch::CallbackDispatch;
#[cfg(feature = "python")]
use crate::bridge::{BridgeServer, BridgedState};
use crate::error::{Error, Result};
#[cfg(feature = "python")]
use crate::state::BackendKind;
use crate::state::{ExportedVar, StateProvider};
#[cfg(feature = "redis")]
use crate::state::{SharedConfig, SharedState};
use crate::util::time;

impl Context {
    /// Moves every variable into `target` and makes it the backend, atomically with respect to
    /// every other operation: the current backend hands its records over under its write lock,
    /// and only once `target` holds them and is installed does it drop them and start
    /// forwarding. If the import fails the context keeps its current backend, untouched.
    /// Migrated records keep their ids, values, versions, constraints, descriptions and
    /// metadata, and gain `migrated_from` and `migrated_at` metadata. A context upgrades once.
    #[cfg(test)]
    pub(crate) fn switch_backend(&self, target: Arc<dyn StateProvider>) -> Result<()> {
        let _one_at_a_time = self.inner.switching.lock();
        self.switch_locked(Arc::clone(&target), &mut |records| target.import(records))
    }

    #[cfg(feature = "python")]
    /// Moves the context's variables into a session of the bridge's store, so that Python
    /// processes can share them; does nothing if the context is bridged already.
    ///
    /// The switch is transactional. The bridge server is brought up (the one given to
    /// [`Context::builder`], else the process-wide [`BridgeServer::global`]) and a session is
    /// created with the context's watch hub first; then the local store hands every record over
    /// under its write lock, the session imports them, the session becomes the backend and the
    /// local store empties itself, forwarding the calls that raced with the switch. Writes
    /// running concurrently are neither lost nor applied twice, and watchers keep receiving.
    /// If the bridge cannot be brought up the context stays local and intact, and the error
    /// ([`Error::Bridge`]) says why.
    ///
    /// Migrated variables keep their ids, values, versions, constraints, descriptions and
    /// metadata, and gain `migrated_from = "local"` and `migrated_at` (RFC 3339) metadata.
    /// [`backend`](Self::backend) reports the switch count and how long the switch took.
    ///
    /// The switch takes about a millisecond per thousand variables, plus, the first time in a
    /// process, a millisecond or so for the process-wide server to start its thread. It runs
    /// on the runtime's blocking threads (`spawn_blocking`), never on the thread that awaits
    /// it, so other tasks of the runtime keep running, even on a `current_thread` runtime.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> dspex::Result<()> {
    /// use dspex::{BackendKind, Constraints, Context};
    ///
    /// let ctx = Context::new();
    /// let t = ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
    /// ctx.ensure_bridged().await?;
    /// ctx.ensure_bridged().await?; // idempotent
    /// assert_eq!(ctx.backend().kind, BackendKind::Bridged);
    /// assert_eq!(ctx.backend().switches, 1);
    /// assert_eq!(t.get()?, 0.7);
    /// assert_eq!(t.record()?.metadata["migrated_from"], "local");
    /// let info = ctx.bridge_session().expect("bridged");
    /// println!("python connects to {} as {}", info.address, info.session_id);
    /// # Ok(()) }
    /// ```
    pub async fn ensure_bridged(&self) -> Result<()> {
        if self.is_bridged() {
            return Ok(());
        }
        let ctx = self.clone();
        off_runtime(move || ctx.bridge_now()).await
    }

    #[cfg(feature = "python")]
    /// Whether Python can reach the context's variables through a bridge session already.
    fn is_bridged(&self) -> bool {
        self.inner.python.bridge.get().is_some() || self.current().kind() == BackendKind::Bridged
    }

    #[cfg(feature = "python")]
    /// [`ensure_bridged`](Self::ensure_bridged) on the calling thread. A shared context does
    /// not switch: its bridge session forwards every call to the shared backend.
    fn bridge_now(&self) -> Result<()> {
        let _one_at_a_time = self.inner.switching.lock();
        if self.is_bridged() {
            return Ok(());
        }
        let server = match &self.inner.python.server {
            Some(server) => server.clone(),
            None => BridgeServer::global()?,
        };
        let bridged = Arc::new(
            server
                .open_session_with_hub(Arc::clone(self.hub()))?
                .with_history_limit(self.inner.history_limit)?,
        );
        // On failure `bridged` is dropped here, which removes its session from the store.
        #[cfg(feature = "redis")]
        let shared = self.inner.shared.get();
        #[cfg(not(feature = "redis"))]
        let shared: Option<&Arc<dyn StateProvider>> = None;
        match shared {
            Some(shared) => bridged.forward_to(Arc::clone(shared) as Arc<dyn StateProvider>)?,
            None => {
                let target = Arc::clone(&bridged) as Arc<dyn StateProvider>;
                self.switch_locked(Arc::clone(&target), &mut |records| target.import(records))?;
            }
        }
        self.adopt_bridge(bridged)
    }

    #[cfg(feature = "python")]
    /// Makes `bridged` the context's bridge session, whose callbacks go to the context's
    /// callables. A context has one bridge session.
    pub(super) fn adopt_bridge(&self, bridged: Arc<BridgedState>) -> Result<()> {
        let python = &self.inner.python;
        bridged.set_dispatch(Arc::clone(&python.callbacks) as Arc<dyn CallbackDispatch>);
        python
            .bridge
            .set(bridged)
            .map_err(|_| Error::internal("context bridged twice"))
    }

    #[cfg(feature = "redis")]
    /// Moves the context's variables into the shared session `session` on the Redis at `url`
    /// (see [`SharedState`]), so that every process that opens the session shares them; does
    /// nothing if the context is in that session already. Like
    /// [`ensure_bridged`](Self::ensure_bridged), the move is transactional, and a bridged
    /// context keeps its bridge session (its Python workers reach the shared variables
    /// through it).
    ///
    /// For each variable of the context:
    ///
    /// - the session does not hold its name: it is created in the session with its value,
    ///   version, description, metadata (plus `migrated_from` and `migrated_at`) and times,
    ///   and a new id of the session;
    /// - the session holds it with the same declaration (type, constraints, description):
    ///   **the session's record wins** (its value, version and metadata: other processes
    ///   already use it), and the context's watchers get an `Updated` event if the value
    ///   differs from the context's;
    /// - the session holds it with another declaration: the move is refused with
    ///   [`Error::DeclarationMismatch`] naming the variable and what differs, and the context
    ///   stays as it was.
    ///
    /// Typed handles ([`Var`](crate::Var)) keep working across the move. Runs on the runtime's blocking
    /// threads.
    ///
    /// # Errors
    ///
    /// [`Error::DeclarationMismatch`]; [`Error::Shared`] naming the URL if Redis cannot be
    /// reached; [`Error::InvalidOption`] for a bad session name or setting, or if the context
    /// is already in another shared session. The context is unchanged on every error.
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> dspex::Result<()> {
    /// use dspex::{BackendKind, Constraints, Context};
    ///
    /// let ctx = Context::new();
    /// let t = ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
    /// ctx.ensure_shared("redis://127.0.0.1:6379/0", "qa-prod").await?;
    /// assert_eq!(ctx.backend().kind, BackendKind::Shared);
    /// println!("temperature in the session: {}", t.get()?);
    /// # Ok(()) }
    /// ```
    pub async fn ensure_shared(
        &self,
        url: impl Into<String>,
        session: impl Into<String>,
    ) -> Result<()> {
        self.ensure_shared_with(SharedConfig::new(url, session))
            .await
    }

    #[cfg(feature = "redis")]
    /// [`ensure_shared`](Self::ensure_shared) with the session's settings (TTL, heartbeat,
    /// stream length).
    ///
    /// # Errors
    ///
    /// As [`ensure_shared`](Self::ensure_shared).
    pub async fn ensure_shared_with(&self, config: SharedConfig) -> Result<()> {
        let ctx = self.clone();
        off_runtime(move || ctx.share_now(config)).await
    }

    #[cfg(feature = "redis")]
    fn share_now(&self, config: SharedConfig) -> Result<()> {
        let _one_at_a_time = self.inner.switching.lock();
        if let Some(current) = self.inner.shared.get() {
            let same =
                current.config().url() == config.url() && current.session() == config.session();
            return if same {
                Ok(())
            } else {
                Err(Error::InvalidOption {
                    option: "shared session".to_owned(),
                    message: format!(
                        "the context is in shared session `{}` at {} already; it cannot move to `{}` at {}",
                        current.session(),
                        current.config().shown_url(),
                        config.session(),
                        config.shown_url()
                    ),
                })
            };
        }
        let shared = Arc::new(SharedState::open_with_hub(config, Arc::clone(self.hub()))?);
        let target = Arc::clone(&shared) as Arc<dyn StateProvider>;
        self.switch_locked(target, &mut |records| shared.adopt(records))?;
        self.inner
            .shared
            .set(shared)
            .map_err(|_| Error::internal("context shared twice"))
    }

    /// Makes `shared` the context's shared session (a context built on it).
    #[cfg(feature = "redis")]
    pub(super) fn adopt_shared(&self, shared: Arc<SharedState>) -> Result<()> {
        self.inner
            .shared
            .set(shared)
            .map_err(|_| Error::internal("context shared twice"))
    }

    #[cfg(feature = "redis")]
    /// The shared session the context's variables live in, if any.
    pub fn shared_state(&self) -> Option<&SharedState> {
        self.inner.shared.get().map(AsRef::as_ref)
    }

    #[cfg(any(feature = "python", feature = "redis", test))]
    /// The switch itself; the caller holds `switching`. `fill` moves the variables into
    /// `target`. A context switches at most twice (local to bridged to shared).
    fn switch_locked(
        &self,
        target: Arc<dyn StateProvider>,
        fill: &mut dyn FnMut(Vec<ExportedVar>) -> Result<()>,
    ) -> Result<()> {
        let (current, slot) = match self.inner.upgraded.get() {
            None => (&self.inner.initial, &self.inner.upgraded),
            Some(upgraded) if self.inner.second.get().is_none() => (upgraded, &self.inner.second),
            Some(_) => {
                return Err(Error::internal("a context switches backends at most twice"));
            }
        };
        let started = Instant::now();
        let from = current.kind().to_string();
        let at = time::rfc3339(SystemTime::now());
        current.migrate_out(&mut |variables| {
            let variables = variables
                .into_iter()
                .map(|mut v| {
                    let metadata = &mut v.record.metadata;
                    metadata.insert("migrated_from".to_owned(), from.clone());
                    metadata.insert("migrated_at".to_owned(), at.clone());
                    v
                })
                .collect();
            fill(variables)?;
            slot.set(Arc::clone(&target))
                .map_err(|_| Error::internal("backend switched twice"))?;
            Ok(Arc::clone(&target))
        })?;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.inner.last_switch_nanos.store(nanos, Ordering::Release);
        self.inner.switches.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(any(feature = "python", feature = "redis"))]
/// Runs `f`, which may block for a while (bind a port, start a thread, migrate variables), on
/// the current tokio runtime's blocking threads, so that the runtime keeps running its other
/// tasks; outside a tokio runtime, on the calling thread.
pub(crate) async fn off_runtime<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return f();
    };
    match runtime.spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::internal(
            "the runtime shut down while the bridge was being set up",
        )),
    }
}

#[cfg(test)]
mod tests {
    use dspex_core::{Constraints, VariableSpec};

    use super::*;
    use crate::state::{LocalState, Source};

    /// A second local backend stands in for the bridged one, so that the import can be made to
    /// fail (the bridged switch is tested end to end in `tests/bridge_switch.rs`).
    fn local_target(ctx: &Context) -> Arc<dyn StateProvider> {
        Arc::new(LocalState::with_hub(Arc::clone(ctx.hub())))
    }

    #[test]
    fn a_failed_switch_leaves_the_context_intact() {
        let ctx = Context::new();
        ctx.defvariable::<i64>("n", 1, Constraints::none()).unwrap();
        let target = local_target(&ctx);
        // The target already holds a variable of the same name: the import must fail.
        target
            .register(
                VariableSpec::new("n", dspex_core::VarType::Boolean, true),
                Source::Rust,
            )
            .unwrap();
        assert!(matches!(
            ctx.switch_backend(target),
            Err(Error::AlreadyExists { .. })
        ));
        assert_eq!(ctx.backend().switches, 0);
        assert_eq!(ctx.get::<i64>("n").unwrap(), 1);
        ctx.set("n", 2).unwrap();
        assert!(
            !ctx.record("n")
                .unwrap()
                .metadata
                .contains_key("migrated_from")
        );
    }
}
