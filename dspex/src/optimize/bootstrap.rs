//! DSPy's few-shot optimizers on a whole program's run traces: `LabeledFewShot` (train
//! examples as demos) and `BootstrapFewShot` (the program run on train examples by a teacher,
//! and every LM step's inputs and outputs of each run the metric accepts kept as that step's
//! demo), as `dspy.teleprompt` defines them, with runs in parallel.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::Value as Json;

use super::score::{Scorer, trace_json};
use crate::context::Overrides;
use crate::data::{Fields, RunTrace};
use crate::error::{Error, Result};
use crate::eval::{Example, TokenUsage, progress_bar, token_usage};
use crate::program::BaseProgram;
use crate::program::rollout::with_rollout;
use crate::program::run_demos::with_run_demos;
use crate::util::rng::SeededRng;

/// How many train examples are bootstrapped at once.
pub const BOOTSTRAP_CONCURRENCY: usize = 8;

/// DSPy's `max_errors` when an optimizer sets none (`dspy.settings.max_errors`).
pub const DEFAULT_MAX_ERRORS: usize = 10;

/// The demo key DSPy's bootstrapping marks its demos with.
pub(crate) const AUGMENTED_KEY: &str = "augmented";

/// Demos by LM step name.
pub(crate) type DemoSets = BTreeMap<String, Vec<Fields>>;

/// The settings of `BootstrapFewShot`, with DSPy's defaults.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BootstrapSettings {
    pub(crate) max_bootstrapped_demos: usize,
    pub(crate) max_labeled_demos: usize,
    pub(crate) max_rounds: usize,
    pub(crate) max_errors: usize,
    pub(crate) metric_threshold: Option<f64>,
}

impl Default for BootstrapSettings {
    fn default() -> Self {
        Self {
            max_bootstrapped_demos: 4,
            max_labeled_demos: 16,
            max_rounds: 1,
            max_errors: DEFAULT_MAX_ERRORS,
            metric_threshold: None,
        }
    }
}

/// An example as a labeled demo: its inputs and its expected values, as DSPy's `Example` holds
/// them.
pub(crate) fn labeled_demo(example: &Example) -> Fields {
    example
        .inputs()
        .iter()
        .chain(example.expected_values())
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect()
}

/// `rng`'s choice of `n` of `items` (all of them when `n` is larger), in the order drawn.
fn sample<T: Clone>(rng: &mut SeededRng, items: &[T], n: usize) -> Vec<T> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    rng.shuffle(&mut order);
    order
        .into_iter()
        .take(n)
        .map(|i| items[i].clone())
        .collect()
}

/// `LabeledFewShot(k)`: every LM step takes the same `k` train examples (a seeded sample, or
/// the first `k` when `sample` is off) as its demos.
pub(crate) fn labeled_few_shot(
    steps: &[String],
    train: &[Example],
    k: usize,
    sample_them: bool,
) -> DemoSets {
    let demos: Vec<Fields> = train.iter().map(labeled_demo).collect();
    let mut rng = SeededRng::new(0);
    steps
        .iter()
        .map(|step| {
            let chosen = if sample_them {
                sample(&mut rng, &demos, k)
            } else {
                demos.iter().take(k).cloned().collect()
            };
            (step.clone(), chosen)
        })
        .collect()
}

/// What bootstrapping found.
#[derive(Debug, Default)]
pub(crate) struct Bootstrapped {
    /// Each LM step's demos: its bootstrapped demos, then labeled ones.
    pub(crate) demos: DemoSets,
    /// Train examples whose run the metric accepted.
    pub(crate) accepted: usize,
    /// Runs of the program (every round of every example tried).
    pub(crate) attempts: usize,
    /// Runs that failed, or whose metric failed.
    pub(crate) errors: usize,
    /// The LM usage of every run.
    pub(crate) tokens: TokenUsage,
}

/// How one round of one example went.
enum Outcome {
    Accepted(RunTrace),
    Rejected,
    Failed(Error),
}

/// One train example's rounds, until one is accepted.
struct Attempt {
    index: usize,
    rounds: Vec<Outcome>,
    tokens: TokenUsage,
}

/// `BootstrapFewShot` on a program: its LM steps `lm_steps` (in chain order, native and python)
/// take the teacher's demos (as DSPy's teacher, `LabeledFewShot(k=max_labeled_demos)` of the
/// train set, without the example being run; none when `max_labeled_demos` is 0: the steps'
/// own then) for each run only.
pub(crate) struct Bootstrap<'a, P: ?Sized> {
    pub(crate) program: &'a P,
    pub(crate) lm_steps: &'a [String],
    pub(crate) scorer: &'a Scorer,
    pub(crate) teacher: &'a Overrides,
    pub(crate) settings: &'a BootstrapSettings,
    pub(crate) progress: bool,
}

impl<P: BaseProgram + ?Sized> Bootstrap<'_, P> {
    /// Runs the train examples in order until `max_bootstrapped_demos` of them are accepted
    /// (at most as many at once as are still needed, and [`BOOTSTRAP_CONCURRENCY`]: so no
    /// more runs than DSPy's one-by-one loop makes), then gives each LM step its demos. An
    /// error once `max_errors` runs failed.
    pub(crate) async fn run(&self, train: &[Example]) -> Result<Bootstrapped> {
        let settings = self.settings;
        let teacher_demos = (settings.max_labeled_demos > 0)
            .then(|| labeled_few_shot(self.lm_steps, train, settings.max_labeled_demos, true));
        let bar = self.progress.then(|| progress_bar(train.len()));
        let mut found = Bootstrapped::default();
        let mut traces: DemoSets = self
            .lm_steps
            .iter()
            .map(|s| (s.clone(), Vec::new()))
            .collect();
        let mut accepted_examples = vec![false; train.len()];
        let mut next = 0;
        while next < train.len() && found.accepted < settings.max_bootstrapped_demos {
            let wanted =
                (settings.max_bootstrapped_demos - found.accepted).min(BOOTSTRAP_CONCURRENCY);
            let end = (next + wanted).min(train.len());
            let mut batch: Vec<Attempt> = (next..end)
                .map(|index| self.attempt(index, &train[index], teacher_demos.as_ref()))
                .collect::<FuturesUnordered<_>>()
                .collect()
                .await;
            next = end;
            batch.sort_unstable_by_key(|a| a.index);
            for attempt in batch {
                if let Some(bar) = &bar {
                    bar.inc(1);
                }
                found.tokens.add(&attempt.tokens);
                for outcome in attempt.rounds {
                    found.attempts += 1;
                    match outcome {
                        Outcome::Accepted(trace) => {
                            found.accepted += 1;
                            accepted_examples[attempt.index] = true;
                            self.keep_demos(attempt.index, &trace, &mut traces);
                        }
                        Outcome::Rejected => {}
                        Outcome::Failed(error) => {
                            found.errors += 1;
                            if found.errors >= settings.max_errors {
                                if let Some(bar) = &bar {
                                    bar.finish_and_clear();
                                }
                                return Err(Error::compile(format!(
                                    "bootstrapping program `{}` stopped: {} runs failed, the limit `max_errors` is {}; the last, on train example {}: {}",
                                    self.program.program_spec().name,
                                    found.errors,
                                    settings.max_errors,
                                    attempt.index,
                                    error.report()
                                )));
                            }
                            tracing::warn!(target: "dspex::optimize", example = attempt.index, error = %error.report(), "a bootstrapping run failed");
                        }
                    }
                }
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        // DSPy's `_train`: the examples not bootstrapped, shuffled, are the labeled demos.
        let mut rest: Vec<Fields> = train
            .iter()
            .zip(&accepted_examples)
            .filter(|(_, accepted)| !**accepted)
            .map(|(example, _)| labeled_demo(example))
            .collect();
        SeededRng::new(0).shuffle(&mut rest);
        let mut rng = SeededRng::new(0);
        found.demos = self
            .lm_steps
            .iter()
            .map(|step| {
                let mut demos: Vec<Fields> = traces
                    .remove(step)
                    .unwrap_or_default()
                    .into_iter()
                    .take(settings.max_bootstrapped_demos)
                    .collect();
                let labeled = settings
                    .max_labeled_demos
                    .saturating_sub(demos.len())
                    .min(rest.len());
                demos.extend(sample(&mut rng, &rest, labeled));
                (step.clone(), demos)
            })
            .collect();
        Ok(found)
    }

    /// Every LM step's demo from an accepted run: its inputs and outputs, marked augmented.
    /// A step that ran several times in the run gives one of its calls, as DSPy picks one.
    fn keep_demos(&self, index: usize, trace: &RunTrace, traces: &mut DemoSets) {
        let mut rng = SeededRng::new(index as u64);
        for step in self.lm_steps {
            let calls: Vec<Fields> = trace
                .steps
                .iter()
                .filter(|s| s.step == *step)
                .map(|s| {
                    let mut demo = Fields::new();
                    demo.insert(AUGMENTED_KEY, Json::Bool(true));
                    for (k, v) in s.inputs.iter().chain(s.outputs.iter()) {
                        demo.insert(k, v.clone());
                    }
                    demo
                })
                .collect();
            let chosen = match calls.len() {
                0 => continue,
                1 => calls.into_iter().next(),
                n if rng.unit() < 0.5 => calls.into_iter().nth(rng.index(n - 1)),
                _ => calls.into_iter().last(),
            };
            if let (Some(demo), Some(kept)) = (chosen, traces.get_mut(step)) {
                kept.push(demo);
            }
        }
    }

    /// Up to `max_rounds` runs of train example `index`, until the metric accepts one; rounds
    /// after the first are rollouts (every LM request at
    /// [`ROLLOUT_TEMPERATURE`](crate::optimize::ROLLOUT_TEMPERATURE), no cached reply). The
    /// teacher's LM steps prompt with its labeled demos minus this example.
    async fn attempt(
        &self,
        index: usize,
        example: &Example,
        teacher_demos: Option<&DemoSets>,
    ) -> Attempt {
        let own = labeled_demo(example);
        let demos: Arc<DemoSets> = Arc::new(match teacher_demos {
            Some(sets) => sets
                .iter()
                .map(|(step, demos)| {
                    let others = demos.iter().filter(|d| **d != own).cloned().collect();
                    (step.clone(), others)
                })
                .collect(),
            None => DemoSets::new(),
        });
        let mut attempt = Attempt {
            index,
            rounds: Vec::new(),
            tokens: TokenUsage::default(),
        };
        for round in 0..self.settings.max_rounds {
            // DSPy's rounds after the first: a fresh rollout at temperature 1.0.
            let rollout = u32::try_from(round).ok().filter(|r| *r > 0);
            let run = with_run_demos(
                Arc::clone(&demos),
                with_rollout(
                    rollout,
                    self.program.run_boxed(self.teacher, example.input_fields()),
                ),
            )
            .await;
            let outcome = match run {
                Err(error) => Outcome::Failed(error),
                Ok((prediction, trace)) => {
                    attempt.tokens.add(&token_usage(&trace));
                    let steps = self
                        .scorer
                        .takes_trace()
                        .then(|| trace_json(&trace, self.lm_steps));
                    match self.scorer.score(example, &prediction, steps).await {
                        Err(error) => Outcome::Failed(error),
                        Ok(score) if accepts(self.settings.metric_threshold, score) => {
                            Outcome::Accepted(trace)
                        }
                        Ok(_) => Outcome::Rejected,
                    }
                }
            };
            let done = matches!(outcome, Outcome::Accepted(_));
            attempt.rounds.push(outcome);
            if done {
                break;
            }
        }
        attempt
    }
}

/// Whether a score passes: at least the threshold when one is set (and not 0), else above 0,
/// as DSPy reads a metric's value.
fn accepts(threshold: Option<f64>, score: f64) -> bool {
    match threshold {
        Some(threshold) if threshold > 0.0 => score >= threshold,
        _ => score > 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_passes_above_zero_or_at_the_threshold_as_dspy_reads_it() {
        assert!(accepts(None, 0.1) && !accepts(None, 0.0));
        assert!(accepts(Some(0.5), 0.5) && !accepts(Some(0.5), 0.49));
        // DSPy's `if self.metric_threshold:`: a threshold of 0 is no threshold.
        assert!(!accepts(Some(0.0), 0.0) && accepts(Some(0.0), 0.2));
    }

    #[test]
    fn a_sample_takes_distinct_items_and_at_most_all() {
        let mut rng = SeededRng::new(0);
        let items: Vec<u32> = (0..10).collect();
        let mut picked = sample(&mut rng, &items, 4);
        assert_eq!(picked.len(), 4);
        picked.sort_unstable();
        picked.dedup();
        assert_eq!(picked.len(), 4);
        assert_eq!(sample(&mut rng, &items, 20).len(), 10);
    }

    #[test]
    fn labeled_few_shot_gives_every_step_k_examples_or_the_first_k() {
        let train: Vec<Example> = (0..5)
            .map(|i| Example::new().with_input("q", i).with_expected("a", i * 2))
            .collect();
        let steps = vec!["one".to_owned(), "two".to_owned()];
        let sampled = labeled_few_shot(&steps, &train, 3, true);
        assert_eq!(sampled["one"].len(), 3);
        assert_eq!(sampled["two"].len(), 3);
        let first = labeled_few_shot(&steps, &train, 2, false);
        assert_eq!(
            first["one"],
            vec![labeled_demo(&train[0]), labeled_demo(&train[1])]
        );
        assert_eq!(first["one"][1].get::<i64>("a").ok(), Some(2));
    }
}
