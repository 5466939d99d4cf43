//! Demos for one run only: an LM step of a run scoped with [`with_run_demos`] prompts with the
//! demos given for its step name instead of its own (a native `Predict` or `ChainOfThought`
//! step in Rust; a python `Predict` or `ChainOfThought` step gets them with its call, for that
//! call only), so that concurrent runs of one program can each try other demos (bootstrapping
//! with a teacher, candidate demo sets) without changing the program.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use crate::data::Fields;

/// Demos by step name, for the LM steps of one run.
pub(crate) type RunDemos = Arc<BTreeMap<String, Vec<Fields>>>;

tokio::task_local! {
    static RUN_DEMOS: RunDemos;
}

/// Runs `run` with `demos` in place of the demos of the LM steps they name.
pub(crate) async fn with_run_demos<F: Future>(demos: RunDemos, run: F) -> F::Output {
    RUN_DEMOS.scope(demos, run).await
}

/// The demos of step `step` for the run being polled, if the run is scoped with some.
pub(crate) fn run_demos(step: &str) -> Option<Vec<Fields>> {
    RUN_DEMOS
        .try_with(|demos| demos.get(step).cloned())
        .ok()
        .flatten()
}

/// The demos of python step `step` for the run being polled, as the JSON list the worker
/// takes with a call (`ExecuteModuleRequest.demos_json`), if the run is scoped with some; at
/// most [`MAX_COMPILED_STATE_BYTES`](super::compiled::MAX_COMPILED_STATE_BYTES).
#[cfg(feature = "python")]
pub(crate) fn run_demos_json(step: &str) -> crate::error::Result<Option<String>> {
    let Some(demos) = run_demos(step) else {
        return Ok(None);
    };
    let list: Vec<serde_json::Value> = demos
        .iter()
        .map(|demo| {
            serde_json::Value::Object(
                demo.iter()
                    .map(|(k, v)| (k.to_owned(), v.clone()))
                    .collect(),
            )
        })
        .collect();
    let text = serde_json::Value::Array(list).to_string();
    let limit = super::compiled::MAX_COMPILED_STATE_BYTES;
    if text.len() > limit {
        return Err(crate::error::Error::limit(
            "MAX_COMPILED_STATE_BYTES",
            format!(
                "the demos of step `{step}` for one run are {} bytes, over the limit of {limit} (MAX_COMPILED_STATE_BYTES)",
                text.len()
            ),
        ));
    }
    Ok(Some(text))
}

#[cfg(all(test, feature = "python"))]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::program::compiled::MAX_COMPILED_STATE_BYTES;

    /// One run's demos of step `answer`: one demo whose answer pads the JSON list to `bytes`.
    fn demos_of(bytes: usize) -> RunDemos {
        // `[{"answer":""}]` is 15 bytes.
        let demo = Fields::from([("answer", "x".repeat(bytes - 15))]);
        Arc::new(BTreeMap::from([("answer".to_owned(), vec![demo])]))
    }

    #[tokio::test]
    async fn a_runs_demos_are_sent_at_the_limit_and_refused_over_it() {
        let at = with_run_demos(demos_of(MAX_COMPILED_STATE_BYTES), async {
            run_demos_json("answer")
        })
        .await
        .unwrap();
        assert_eq!(at.map(|text| text.len()), Some(MAX_COMPILED_STATE_BYTES));

        let over = with_run_demos(demos_of(MAX_COMPILED_STATE_BYTES + 1), async {
            run_demos_json("answer")
        })
        .await;
        let error = over.unwrap_err();
        assert!(
            matches!(&error, Error::Limit { limit, .. } if limit == "MAX_COMPILED_STATE_BYTES"),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("step `answer`")
                && message.contains(&format!("{} bytes", MAX_COMPILED_STATE_BYTES + 1)),
            "{message}"
        );
        // Another step of the run, and a run with no demos, send none.
        let other = with_run_demos(demos_of(MAX_COMPILED_STATE_BYTES + 1), async {
            run_demos_json("rewrite")
        })
        .await;
        assert!(other.unwrap().is_none());
        assert!(run_demos_json("answer").unwrap().is_none());
    }
}
