//! The conformance suite on `SharedState` (each test on its own session of a private
//! redis-server this test binary starts) and on contexts built shared: the very same tests as
//! `conformance_local.rs` and `conformance_bridged.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use dspex::BackendKind;
use dspex::Context;
use dspex::state::{SharedConfig, SharedState, StateProvider};
use dspex_test_redis::RedisServer;

mod conformance;

/// One server for this test binary (stopped when the binary exits); sessions keep tests apart.
static REDIS: LazyLock<RedisServer> =
    LazyLock::new(|| RedisServer::start().expect("a private redis-server starts"));

/// A session name no other test of this binary uses.
fn session() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("conformance-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

struct Shared;

impl conformance::Fixture for Shared {
    async fn provider(&self) -> Arc<dyn StateProvider> {
        let config = SharedConfig::new(REDIS.url(), session());
        let state = tokio::task::spawn_blocking(move || SharedState::open(config))
            .await
            .expect("the open does not panic")
            .expect("a shared session opens");
        assert_eq!(state.kind(), BackendKind::Shared);
        Arc::new(state)
    }

    /// Separate `SharedState`s on one session: separate connections, mirrors and readers, as
    /// separate processes have.
    async fn handles(&self, n: usize) -> Vec<Arc<dyn StateProvider>> {
        let name = session();
        let mut handles: Vec<Arc<dyn StateProvider>> = Vec::new();
        for _ in 0..n {
            let config = SharedConfig::new(REDIS.url(), name.clone());
            let state = tokio::task::spawn_blocking(move || SharedState::open(config))
                .await
                .expect("the open does not panic")
                .expect("a shared session opens");
            handles.push(Arc::new(state));
        }
        handles
    }

    async fn context(&self) -> Context {
        let ctx = Context::builder()
            .shared(REDIS.url())
            .session(session())
            .build()
            .await
            .expect("a shared context builds");
        assert_eq!(ctx.backend().kind, BackendKind::Shared);
        ctx
    }
}

conformance_suite!(Shared);
