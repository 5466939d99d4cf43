//! The conformance suite on `LocalState` and a local `Context`.

use std::sync::Arc;

use dspex::Context;
use dspex::state::{LocalState, StateProvider};

mod conformance;

struct Local;

impl conformance::Fixture for Local {
    async fn provider(&self) -> Arc<dyn StateProvider> {
        Arc::new(LocalState::new())
    }

    async fn context(&self) -> Context {
        Context::new()
    }
}

conformance_suite!(Local);
