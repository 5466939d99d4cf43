//! How a whole program's compile scores a run: a Rust metric in this process, or a Python
//! metric in the context's worker (`metric(example, prediction, trace=None)`, the trace a
//! bootstrapping run's LM steps as DSPy passes its own); and the mean score of a program on a
//! validation set, with the demos of a candidate for those runs only.

use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
#[cfg(feature = "python")]
use serde_json::Value as Json;

use super::optimizer::{CompileMetric, FEEDBACK_METRIC_NAME, FeedbackFn};
use crate::context::{Context, Overrides};
use crate::data::{Fields, RunTrace};
use crate::error::{Error, Result};
use crate::eval::{Example, Metric, TokenUsage, checked_score, score_in_range, token_usage};
use crate::program::BaseProgram;
use crate::program::run_demos::{RunDemos, with_run_demos};
#[cfg(feature = "python")]
use crate::worker::WorkerSupervisor;

/// The metric of a whole program's compile, ready to score runs.
pub(crate) enum Scorer {
    Rust(Arc<dyn Metric>),
    Feedback(Arc<FeedbackFn>),
    #[cfg(feature = "python")]
    Python {
        path: String,
        worker: Arc<WorkerSupervisor>,
    },
}

impl Scorer {
    /// The scorer of `metric`: a Python metric is imported in the context's worker (started
    /// if need be) before any run, so that one that does not import fails first.
    pub(crate) async fn of(metric: &CompileMetric, ctx: &Context) -> Result<Self> {
        match metric {
            CompileMetric::Rust(metric) => Ok(Scorer::Rust(Arc::clone(metric))),
            CompileMetric::RustFeedback(metric) => Ok(Scorer::Feedback(Arc::clone(metric))),
            #[cfg(feature = "python")]
            CompileMetric::Python(path) => {
                let worker = ctx.worker().await?;
                worker
                    .score_metric(crate::wire::proto::ScoreMetricRequest {
                        metric_path: path.clone(),
                        check_only: true,
                        call_id: crate::program::next_call_id(),
                        ..Default::default()
                    })
                    .await?;
                Ok(Scorer::Python {
                    path: path.clone(),
                    worker,
                })
            }
            #[cfg(not(feature = "python"))]
            CompileMetric::Python(path) => {
                let _ = ctx;
                Err(Error::compile(format!(
                    "Python metric `{path}` runs in a Python worker, which needs dspex's feature `python`"
                )))
            }
        }
    }

    /// Whether scoring a bootstrapping run takes its trace (a Python metric's `trace`).
    pub(crate) fn takes_trace(&self) -> bool {
        #[cfg(feature = "python")]
        if matches!(self, Scorer::Python { .. }) {
            return true;
        }
        false
    }

    /// The score of `prediction` for `example`, in `[0, 1]`; `trace` (a bootstrapping run's LM
    /// steps, when [`takes_trace`](Self::takes_trace)) is the Python metric's `trace`.
    pub(crate) async fn score(
        &self,
        example: &Example,
        prediction: &Fields,
        trace: Option<String>,
    ) -> Result<f64> {
        match self {
            Scorer::Rust(metric) => {
                let _ = trace;
                checked_score(metric.as_ref(), example, prediction)
            }
            Scorer::Feedback(metric) => {
                let (score, _) = metric(example, prediction).map_err(|e| Error::Metric {
                    metric: FEEDBACK_METRIC_NAME.to_owned(),
                    message: e.to_string(),
                })?;
                score_in_range(FEEDBACK_METRIC_NAME, score)
            }
            #[cfg(feature = "python")]
            Scorer::Python { path, worker } => {
                let request = score_request(path, example, prediction, trace)?;
                let reply = worker.score_metric(request).await?;
                score_in_range(path, reply.score)
            }
        }
    }
}

/// The request scoring `prediction` for `example` with Python metric `path` (`trace` its
/// trace); an error, and nothing sent, when it is over
/// [`MAX_MODULE_MESSAGE_BYTES`](crate::wire::limits::MAX_MODULE_MESSAGE_BYTES) on the wire.
#[cfg(feature = "python")]
fn score_request(
    path: &str,
    example: &Example,
    prediction: &Fields,
    trace: Option<String>,
) -> Result<crate::wire::proto::ScoreMetricRequest> {
    let object = |fields: &mut dyn Iterator<Item = (&String, &Json)>| {
        Json::Object(fields.map(|(k, v)| (k.clone(), v.clone())).collect())
    };
    let example_json = serde_json::json!({
        "inputs": object(&mut example.inputs().iter()),
        "labels": object(&mut example.expected_values().iter()),
    });
    let prediction_json = Json::Object(
        prediction
            .iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect(),
    );
    let request = crate::wire::proto::ScoreMetricRequest {
        metric_path: path.to_owned(),
        example_json: example_json.to_string(),
        prediction_json: prediction_json.to_string(),
        trace_json: trace,
        check_only: false,
        call_id: crate::program::next_call_id(),
    };
    check_score_request_size(&request)?;
    Ok(request)
}

/// A scoring request must be at most
/// [`MAX_MODULE_MESSAGE_BYTES`](crate::wire::limits::MAX_MODULE_MESSAGE_BYTES) on the wire.
#[cfg(feature = "python")]
fn check_score_request_size(request: &crate::wire::proto::ScoreMetricRequest) -> Result<()> {
    let bytes = prost::Message::encoded_len(request);
    let limit = crate::wire::limits::MAX_MODULE_MESSAGE_BYTES;
    if bytes > limit {
        return Err(Error::limit(
            "MAX_MODULE_MESSAGE_BYTES",
            format!(
                "scoring a run with Python metric `{}` is {bytes} bytes on the wire, over the limit of {limit} (MAX_MODULE_MESSAGE_BYTES)",
                request.metric_path
            ),
        ));
    }
    Ok(())
}

/// A run's LM steps (`lm_steps`) as a Python metric's trace: `[{"step", "inputs",
/// "outputs"}]`, in the order they ran.
#[cfg(feature = "python")]
pub(crate) fn trace_json(trace: &RunTrace, lm_steps: &[String]) -> String {
    let fields =
        |f: &Fields| Json::Object(f.iter().map(|(k, v)| (k.to_owned(), v.clone())).collect());
    Json::Array(
        trace
            .steps
            .iter()
            .filter(|s| lm_steps.contains(&s.step))
            .map(|s| serde_json::json!({"step": s.step, "inputs": fields(&s.inputs), "outputs": fields(&s.outputs)}))
            .collect(),
    )
    .to_string()
}

#[cfg(not(feature = "python"))]
pub(crate) fn trace_json(_: &RunTrace, _: &[String]) -> String {
    String::new()
}

/// A program's scores on a validation set.
#[derive(Debug, Default)]
pub(crate) struct Scored {
    /// The mean score (a run or a metric call that fails scores 0, as `Evaluate` counts it).
    pub(crate) mean: f64,
    /// The LM usage of the runs.
    pub(crate) tokens: TokenUsage,
}

/// `program`'s mean score on `valset` by `scorer`, `concurrency` runs at once, each with
/// `demos` in place of its LM steps' own when given (for those runs only).
pub(crate) async fn score_on<P: BaseProgram + ?Sized>(
    program: &P,
    valset: &[Example],
    scorer: &Scorer,
    concurrency: usize,
    demos: Option<RunDemos>,
) -> Scored {
    let mut examples = valset.iter();
    let mut in_flight = FuturesUnordered::new();
    let mut scored = Scored::default();
    let mut total = 0.0;
    loop {
        while in_flight.len() < concurrency {
            let Some(example) = examples.next() else {
                break;
            };
            in_flight.push(score_one(program, example, scorer, demos.clone()));
        }
        let Some((score, tokens)) = in_flight.next().await else {
            break;
        };
        total += score;
        scored.tokens.add(&tokens);
    }
    #[allow(clippy::cast_precision_loss)] // at most MAX_TRAIN_EXAMPLES examples
    if !valset.is_empty() {
        scored.mean = total / valset.len() as f64;
    }
    scored
}

/// One validation example's score and LM usage (0 when the run fails).
async fn score_one<P: BaseProgram + ?Sized>(
    program: &P,
    example: &Example,
    scorer: &Scorer,
    demos: Option<RunDemos>,
) -> (f64, TokenUsage) {
    let overrides = Overrides::new();
    let run = program.run_boxed(&overrides, example.input_fields());
    let outcome = match demos {
        Some(demos) => with_run_demos(demos, run).await,
        None => run.await,
    };
    match outcome {
        Ok((prediction, trace)) => {
            let score = scorer.score(example, &prediction, None).await;
            (score.unwrap_or(0.0), token_usage(&trace))
        }
        Err(_) => (0.0, TokenUsage::default()),
    }
}

#[cfg(all(test, feature = "python"))]
mod tests {
    use super::*;
    use crate::wire::limits::MAX_MODULE_MESSAGE_BYTES;
    use crate::wire::proto::ScoreMetricRequest;

    /// A scoring request whose prediction is padded so that it is `bytes` bytes on the wire.
    fn request_of(bytes: usize) -> ScoreMetricRequest {
        let mut request = ScoreMetricRequest {
            metric_path: "metrics.exact".to_owned(),
            example_json: r#"{"inputs":{"question":"q"},"labels":{"answer":"a"}}"#.to_owned(),
            call_id: "1-1".to_owned(),
            ..ScoreMetricRequest::default()
        };
        // The padding adds its bytes, a tag byte and its length's varint (1 to 5 bytes).
        let room = bytes - prost::Message::encoded_len(&request);
        let pad = (room.saturating_sub(6)..room).rev().find(|pad| {
            request.prediction_json = "x".repeat(*pad);
            prost::Message::encoded_len(&request) == bytes
        });
        assert!(pad.is_some(), "no padding makes {bytes} bytes");
        request
    }

    #[test]
    fn a_scoring_request_is_sent_at_the_limit_and_refused_over_it() {
        assert!(check_score_request_size(&request_of(MAX_MODULE_MESSAGE_BYTES)).is_ok());
        let over = request_of(MAX_MODULE_MESSAGE_BYTES + 1);
        let error = check_score_request_size(&over).unwrap_err();
        assert!(
            matches!(&error, Error::Limit { limit, .. } if limit == "MAX_MODULE_MESSAGE_BYTES"),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("Python metric `metrics.exact`")
                && message.contains(&format!("{} bytes", MAX_MODULE_MESSAGE_BYTES + 1)),
            "{message}"
        );
    }

    #[test]
    fn a_scoring_request_holds_the_example_the_prediction_and_the_trace() {
        let example = Example::new()
            .with_input("question", "q")
            .with_expected("answer", "A");
        let prediction = Fields::from([("answer", "A")]);
        let request = score_request("m.f", &example, &prediction, Some("[]".to_owned())).unwrap();
        assert_eq!(
            request.example_json,
            r#"{"inputs":{"question":"q"},"labels":{"answer":"A"}}"#
        );
        assert_eq!(request.prediction_json, r#"{"answer":"A"}"#);
        assert_eq!(request.trace_json.as_deref(), Some("[]"));
    }
}
