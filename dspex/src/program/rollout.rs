//! Rollouts, as DSPy's bootstrapping rounds after the first make them: every LM request of a
//! run scoped with [`with_rollout`] (native steps in Rust, python steps in the worker) goes out
//! at [`ROLLOUT_TEMPERATURE`] whatever the step's own temperature, and carries the rollout's id,
//! which keeps a cached reply to the same request of another rollout (or of none) from
//! answering it, as `lm.copy(rollout_id=round, temperature=1.0)` does in DSPy.

use std::future::Future;

/// The temperature of every LM request of a rollout (DSPy's rounds after the first).
pub const ROLLOUT_TEMPERATURE: f64 = 1.0;

tokio::task_local! {
    static ROLLOUT: u32;
}

/// Runs `run` as rollout `rollout`, or as itself when `None`.
pub(crate) async fn with_rollout<F: Future>(rollout: Option<u32>, run: F) -> F::Output {
    match rollout {
        Some(id) => ROLLOUT.scope(id, run).await,
        None => run.await,
    }
}

/// The rollout of the run being polled, if it is one.
pub(crate) fn rollout() -> Option<u32> {
    ROLLOUT.try_with(|id| *id).ok()
}
