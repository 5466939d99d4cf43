//! Evaluation: a program over a data set with bounded concurrency, every example scored by a
//! metric; a failing example scores 0 and is reported, it never aborts the run.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::dataset::Dataset;
use super::example::{Example, fields_json};
use super::metric::{Metric, checked_score};
use super::report::{EvalReport, ExampleResult, TokenUsage};
use crate::context::Overrides;
use crate::data::RunTrace;
use crate::error::{Error, Result};
use crate::program::BaseProgram;

/// How many examples run at once unless [`Evaluate::concurrency`] says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// The most examples that may run at once.
pub const MAX_CONCURRENCY: usize = 1024;

/// Checks a concurrency setting: between 1 and [`MAX_CONCURRENCY`].
pub(crate) fn check_concurrency(option: &str, concurrency: usize) -> Result<()> {
    if (1..=MAX_CONCURRENCY).contains(&concurrency) {
        Ok(())
    } else {
        Err(Error::InvalidOption {
            option: option.to_owned(),
            message: format!("{concurrency} is not between 1 and {MAX_CONCURRENCY}"),
        })
    }
}

/// Evaluates programs with a metric: runs the program on every example of a data set, at most
/// [`concurrency`](Self::concurrency) at a time (all on the calling task), scores each
/// prediction, and reports.
///
/// An example whose run or metric fails scores 0 and its error is in the report; it never
/// aborts the evaluation. `run` itself fails only before any example runs: an invalid
/// concurrency, an invalid override.
///
/// Output: by default nothing is printed (a library does not print unasked); the one-line
/// summary goes to `tracing` at `info` level (target `dspex::eval`). With
/// [`progress(true)`](Self::progress) a progress bar is drawn on stderr when stderr is a
/// terminal, and the summary line is printed to stderr at the end, terminal or not.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::prelude::*;
/// use dspex::eval::{Dataset, Evaluate, ExactMatch, Example};
///
/// #[derive(Default)]
/// struct Upper;
/// impl Module for Upper {
///     async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
///         Ok(Fields::from([("loud", inputs.get::<&str>("text")?.to_uppercase())]))
///     }
/// }
///
/// dspex_program! {
///     program Shout: "text -> loud" {
///         variables {}
///         chain { upper: native Upper("text -> loud") }
///     }
/// }
///
/// let data = Dataset::from_examples([
///     Example::new().with_input("text", "hi").with_expected("loud", "HI"),
///     Example::new().with_input("text", "ok").with_expected("loud", "nope"),
/// ]);
/// let report = Evaluate::new(ExactMatch::new("loud")).run(&Shout::start().await?, &data).await?;
/// assert_eq!(report.mean, 0.5);
/// assert_eq!(report.examples[1].score, 0.0);
/// println!("{report}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Evaluate {
    metric: Arc<dyn Metric>,
    concurrency: usize,
    overrides: Overrides,
    progress: bool,
}

impl Evaluate {
    /// An evaluation with `metric`, [`DEFAULT_CONCURRENCY`], no overrides, no progress bar.
    pub fn new(metric: impl Metric + 'static) -> Self {
        Self::with_metric(Arc::new(metric))
    }

    /// [`new`](Self::new) with a shared metric.
    pub fn with_metric(metric: Arc<dyn Metric>) -> Self {
        Self {
            metric,
            concurrency: DEFAULT_CONCURRENCY,
            overrides: Overrides::new(),
            progress: false,
        }
    }

    /// At most `concurrency` examples run at once: 1 to [`MAX_CONCURRENCY`] (checked by `run`).
    #[must_use]
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Runs every example with these per-run overrides (validated once, before any example).
    #[must_use]
    pub fn overrides(mut self, overrides: Overrides) -> Self {
        self.overrides = overrides;
        self
    }

    /// Draws a progress bar on stderr when it is a terminal, and prints the summary line to
    /// stderr at the end.
    #[must_use]
    pub fn progress(mut self, show: bool) -> Self {
        self.progress = show;
        self
    }

    /// The metric.
    pub fn metric(&self) -> &Arc<dyn Metric> {
        &self.metric
    }

    /// Evaluates `program` on every example of `data`, with the evaluation's
    /// [`overrides`](Self::overrides).
    pub async fn run<P: BaseProgram + ?Sized>(
        &self,
        program: &P,
        data: &Dataset,
    ) -> Result<EvalReport> {
        self.run_with(program, data, &self.overrides).await
    }

    /// Evaluates `program` on every example of `data` with `overrides` in place of the
    /// evaluation's own: one `Evaluate` compares several settings without being rebuilt.
    pub async fn run_with<P: BaseProgram + ?Sized>(
        &self,
        program: &P,
        data: &Dataset,
        overrides: &Overrides,
    ) -> Result<EvalReport> {
        check_concurrency("concurrency", self.concurrency)?;
        let spec = program.program_spec();
        let overrides = overrides.validate(program.program_context(), spec)?;
        let bar = self.progress.then(|| progress_bar(data.len()));
        let started = Instant::now();
        let results = run_examples(
            program,
            self.metric.as_ref(),
            &overrides,
            data.examples().iter().enumerate(),
            self.concurrency,
            || {
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
            },
        )
        .await;
        let report = EvalReport::new(
            spec.name.clone(),
            self.metric.name().to_owned(),
            overrides
                .iter()
                .map(|(k, v)| (k.to_owned(), crate::util::value_json::to_json(v)))
                .collect(),
            self.concurrency,
            results,
            started.elapsed(),
        );
        let summary = report.summary();
        tracing::info!(target: "dspex::eval", "{summary}");
        if let Some(bar) = bar {
            bar.finish_and_clear();
            eprintln!("{summary}");
        }
        Ok(report)
    }
}

/// A bar on stderr if it is a terminal; hidden otherwise.
pub(crate) fn progress_bar(len: usize) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len as u64), target);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} examples [{elapsed_precise}<{eta}]")
    {
        bar.set_style(style);
    }
    bar
}

/// Runs `program` on `examples` (with their data set positions), at most `concurrency` at once
/// on the calling task, and scores each with `metric`; `done` is called as each finishes.
/// Returns the results in the order of `examples`. `overrides` are already validated.
pub(crate) async fn run_examples<'e, P: BaseProgram + ?Sized>(
    program: &P,
    metric: &dyn Metric,
    overrides: &Overrides,
    examples: impl Iterator<Item = (usize, &'e Example)>,
    concurrency: usize,
    mut done: impl FnMut(),
) -> Vec<ExampleResult> {
    // A plain loop over `FuturesUnordered` rather than stream combinators: their closures
    // would keep the future from being provably `Send` (so it could not be spawned).
    let mut examples = examples;
    let mut in_flight = FuturesUnordered::new();
    let mut results = Vec::new();
    loop {
        while in_flight.len() < concurrency {
            let Some((index, example)) = examples.next() else {
                break;
            };
            in_flight.push(run_example(program, metric, overrides, index, example));
        }
        let Some(result) = in_flight.next().await else {
            break;
        };
        done();
        results.push(result);
    }
    results.sort_unstable_by_key(|r| r.index);
    results
}

async fn run_example<P: BaseProgram + ?Sized>(
    program: &P,
    metric: &dyn Metric,
    overrides: &Overrides,
    index: usize,
    example: &Example,
) -> ExampleResult {
    let started = Instant::now();
    let run = program.run_boxed(overrides, example.input_fields()).await;
    let (score, error, prediction, tokens) = match run {
        Ok((prediction, trace)) => {
            let tokens = token_usage(&trace);
            let (score, error) = match checked_score(metric, example, &prediction) {
                Ok(score) => (score, None),
                Err(e) => (0.0, Some(e.report())),
            };
            (score, error, Some(fields_json(&prediction)), tokens)
        }
        Err(e) => (0.0, Some(e.report()), None, TokenUsage::default()),
    };
    ExampleResult {
        index,
        score,
        error,
        prediction,
        latency: started.elapsed(),
        tokens,
    }
}

/// The LM token usage of a run: every LM call of every step.
pub(crate) fn token_usage(trace: &RunTrace) -> TokenUsage {
    let mut usage = TokenUsage::default();
    for call in trace.steps.iter().flat_map(|s| &s.lm_calls) {
        usage.lm_calls += 1;
        match (call.prompt_tokens, call.completion_tokens) {
            (None, None) => usage.calls_without_usage += 1,
            (prompt, completion) => {
                usage.prompt_tokens += prompt.unwrap_or(0);
                usage.completion_tokens += completion.unwrap_or(0);
            }
        }
    }
    usage
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::data::{Fields, LmCall, Params, StepRunner, StepTrace};

    fn call(prompt: Option<u64>, completion: Option<u64>) -> LmCall {
        LmCall {
            model: "m".to_owned(),
            temperature: None,
            max_tokens: None,
            top_p: None,
            n: None,
            prompt_tokens: prompt,
            completion_tokens: completion,
            exchange: None,
        }
    }

    #[test]
    fn token_usage_sums_every_lm_call_of_every_step() {
        let step = |calls: Vec<LmCall>| StepTrace {
            step: "s".to_owned(),
            runner: StepRunner::Python("Predict".to_owned()),
            inputs: Fields::new(),
            outputs: Fields::new(),
            params: Params::default(),
            lm_calls: calls,
            tool_calls: Vec::new(),
            duration: Duration::ZERO,
            called_by: None,
        };
        let trace = RunTrace {
            steps: vec![
                step(vec![call(Some(10), Some(3)), call(None, None)]),
                step(vec![call(Some(5), None)]),
            ],
            captures_dropped: 0,
        };
        let usage = token_usage(&trace);
        assert_eq!(
            usage,
            TokenUsage {
                lm_calls: 3,
                prompt_tokens: 15,
                completion_tokens: 3,
                calls_without_usage: 1,
            }
        );
        assert_eq!(usage.total(), 18);
    }

    #[test]
    fn concurrency_is_bounded_both_ways() {
        assert!(check_concurrency("c", 1).is_ok());
        assert!(check_concurrency("c", MAX_CONCURRENCY).is_ok());
        assert!(check_concurrency("c", 0).is_err());
        assert!(check_concurrency("c", MAX_CONCURRENCY + 1).is_err());
    }
}
