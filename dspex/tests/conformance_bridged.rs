//! The conformance suite on `BridgedState` (a session of a real bridge server) and on contexts
//! built bridged: the very same tests as `conformance_local.rs`.

use std::sync::{Arc, LazyLock};

use dspex::BackendKind;
use dspex::Context;
use dspex::bridge::{BridgeConfig, BridgeServer};
use dspex::state::StateProvider;

mod conformance;

/// One server for this test binary; every test gets its own sessions on it.
static SERVER: LazyLock<BridgeServer> =
    LazyLock::new(|| BridgeServer::start(BridgeConfig::default()).expect("bridge server starts"));

struct Bridged;

impl conformance::Fixture for Bridged {
    async fn provider(&self) -> Arc<dyn StateProvider> {
        let state = SERVER.open_session().expect("a session opens");
        assert_eq!(state.kind(), BackendKind::Bridged);
        Arc::new(state)
    }

    async fn context(&self) -> Context {
        let ctx = Context::builder()
            .bridged()
            .server(SERVER.clone())
            .build()
            .await
            .expect("a bridged context builds");
        assert_eq!(ctx.backend().kind, BackendKind::Bridged);
        ctx
    }
}

conformance_suite!(Bridged);
