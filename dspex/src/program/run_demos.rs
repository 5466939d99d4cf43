//! Demos for one run only: a native `Predict` or `ChainOfThought` step of a run scoped with
//! [`with_run_demos`] prompts with the demos given for its step name instead of its own, so
//! that concurrent runs of one program can each try other demos (bootstrapping with a teacher,
//! candidate demo sets) without changing the program.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use crate::data::Fields;

/// Demos by step name, for the native LM steps of one run.
pub(crate) type RunDemos = Arc<BTreeMap<String, Vec<Fields>>>;

tokio::task_local! {
    static RUN_DEMOS: RunDemos;
}

/// Runs `run` with `demos` in place of the demos of the native LM steps they name.
pub(crate) async fn with_run_demos<F: Future>(demos: RunDemos, run: F) -> F::Output {
    RUN_DEMOS.scope(demos, run).await
}

/// The demos of native step `step` for the run being polled, if the run is scoped with some.
pub(crate) fn run_demos(step: &str) -> Option<Vec<Fields>> {
    RUN_DEMOS
        .try_with(|demos| demos.get(step).cloned())
        .ok()
        .flatten()
}
