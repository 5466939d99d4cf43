//! The tuner: proposes assignments with a sampler, evaluates each through per-run overrides
//! (several trials at once, the context untouched), optionally on growing minibatches
//! (successive halving), and returns every trial and the best one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dspex_core::Value;
use futures_util::future::join_all;

use super::result::{Trial, TuneResult};
use super::sampler::{Observed, Proposer, Sampler};
use super::space::SearchSpace;
use crate::context::Overrides;
use crate::error::{Error, Result};
use crate::eval::{
    DEFAULT_CONCURRENCY, Dataset, ExampleResult, Metric, TokenUsage, check_concurrency,
    run_examples,
};
use crate::program::BaseProgram;

/// How many trials run at once unless [`Tuner::trial_concurrency`] says otherwise.
pub const DEFAULT_TRIAL_CONCURRENCY: usize = 4;

/// The most trials a tuning run may have.
pub const MAX_TRIALS: usize = 100_000;

/// Successive halving on minibatches: every trial is first scored on the first `rungs[0]`
/// examples of the (seed-shuffled) data set; a trial moves on to the next, larger minibatch
/// only if its score is in the best `keep` fraction of the scores that trials have reached at
/// that rung so far (at least the best one always moves on), and is evaluated on the added
/// examples only. The last rung is the full evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Halving {
    /// Strictly growing minibatch sizes; the last may not exceed the data set.
    pub rungs: Vec<usize>,
    /// The fraction that moves on from each rung, in `(0, 1]`.
    pub keep: f64,
}

impl Halving {
    /// Rungs `rungs`, keeping the best `keep` fraction at each.
    pub fn new(rungs: impl Into<Vec<usize>>, keep: f64) -> Self {
        Self {
            rungs: rungs.into(),
            keep,
        }
    }

    fn check(&self, examples: usize) -> Result<()> {
        let growing = self.rungs.windows(2).all(|w| w[0] < w[1]);
        let fits = self.rungs.last().is_some_and(|&last| last <= examples);
        if self.rungs.first().is_none_or(|&first| first == 0) || !growing || !fits {
            return Err(Error::tuning(format!(
                "the minibatch schedule {:?} must be strictly growing sizes from 1 to the data set's {examples} examples",
                self.rungs
            )));
        }
        if !(self.keep > 0.0 && self.keep <= 1.0) {
            return Err(Error::tuning(format!(
                "the kept fraction of successive halving must be in (0, 1], got {}",
                self.keep
            )));
        }
        Ok(())
    }
}

/// Tunes a program's declared variables: `trials` assignments proposed by a [`Sampler`] and
/// evaluated with a metric on a development set, through per-run [`Overrides`] (the context is
/// untouched until [`TuneResult::apply`]).
///
/// Trials run in rounds of [`trial_concurrency`](Self::trial_concurrency): the sampler
/// proposes a round's assignments in order, seeing every trial of the earlier rounds; the
/// round's trials then run at once. So a seed gives the same proposals, scores and result on
/// every run, whatever the timing (with a concurrency of 1, TPE sees every earlier trial, as
/// Optuna's sequential TPE does).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::prelude::*;
/// use dspex::eval::{Dataset, ExactMatch, Example};
/// use dspex::tune::{Sampler, SearchSpace, Tuner};
///
/// #[derive(Default)]
/// struct Guess;
/// impl Module for Guess {
///     async fn forward(&self, _: &Fields, params: &Params) -> Result<Fields> {
///         Ok(Fields::from([("answer", params.get::<i64>("k")?.to_string())]))
///     }
/// }
///
/// dspex_program! {
///     program Guesser: "question -> answer" {
///         variables { k: integer = 0 { min: 0, max: 9 } }
///         chain { guess: native Guess("question -> answer") { k } }
///     }
/// }
///
/// let program = Guesser::start().await?;
/// let dev = Dataset::from_examples([Example::new().with_input("question", "?").with_expected("answer", "7")]);
/// let result = Tuner::new(SearchSpace::of(&program)?, ExactMatch::new("answer"))
///     .sampler(Sampler::grid(10))
///     .trials(10)
///     .seed(1)
///     .run(&program, &dev)
///     .await?;
/// assert_eq!(result.best_score, Some(1.0));
/// assert_eq!(result.best.as_ref().map(|b| b["k"].clone()), Some(Value::Integer(7)));
/// result.apply(&program)?;
/// assert_eq!(program.k().get()?, 7);
/// assert_eq!(program.k().record()?.metadata["tuner"], "grid(10 points per range), seed 1");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Tuner {
    space: SearchSpace,
    metric: Arc<dyn Metric>,
    sampler: Sampler,
    trials: usize,
    seed: u64,
    trial_concurrency: usize,
    example_concurrency: usize,
    halving: Option<Halving>,
    stop_at: Option<f64>,
}

impl Tuner {
    /// A tuner over `space` scoring with `metric`: TPE, 50 trials, seed 0,
    /// [`DEFAULT_TRIAL_CONCURRENCY`] trials at once, each running
    /// [`DEFAULT_CONCURRENCY`](crate::eval::DEFAULT_CONCURRENCY) examples at once, no halving.
    pub fn new(space: SearchSpace, metric: impl Metric + 'static) -> Self {
        Self {
            space,
            metric: Arc::new(metric),
            sampler: Sampler::tpe(),
            trials: 50,
            seed: 0,
            trial_concurrency: DEFAULT_TRIAL_CONCURRENCY,
            example_concurrency: DEFAULT_CONCURRENCY,
            halving: None,
            stop_at: None,
        }
    }

    /// The sampler.
    #[must_use]
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// How many trials (1 to [`MAX_TRIALS`]; a grid may stop sooner, when exhausted).
    #[must_use]
    pub fn trials(mut self, trials: usize) -> Self {
        self.trials = trials;
        self
    }

    /// The seed of every random choice (the sampler, the grid's order, the minibatches).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// How many trials run at once (1 to [`MAX_CONCURRENCY`](crate::eval::MAX_CONCURRENCY)).
    #[must_use]
    pub fn trial_concurrency(mut self, concurrency: usize) -> Self {
        self.trial_concurrency = concurrency;
        self
    }

    /// How many examples of one trial run at once (1 to
    /// [`MAX_CONCURRENCY`](crate::eval::MAX_CONCURRENCY)).
    #[must_use]
    pub fn example_concurrency(mut self, concurrency: usize) -> Self {
        self.example_concurrency = concurrency;
        self
    }

    /// Scores trials on growing minibatches first (successive halving).
    #[must_use]
    pub fn halving(mut self, halving: Halving) -> Self {
        self.halving = Some(halving);
        self
    }

    /// Stops after the round in which a trial's full evaluation scores at least `score`.
    #[must_use]
    pub fn stop_at(mut self, score: f64) -> Self {
        self.stop_at = Some(score);
        self
    }

    /// What the result's `tuner` field and the applied `tuner` metadata say.
    fn describe(&self) -> String {
        let mut text = format!("{}, seed {}", self.sampler, self.seed);
        if let Some(h) = &self.halving {
            text.push_str(&format!(", halving {:?} keep {}", h.rungs, h.keep));
        }
        text
    }

    /// Tunes `program` on `dev`.
    pub async fn run<P: BaseProgram + ?Sized>(
        &self,
        program: &P,
        dev: &Dataset,
    ) -> Result<TuneResult> {
        let spec = program.program_spec();
        if spec.name != self.space.program() || spec.variables != self.space.variables() {
            return Err(Error::tuning(format!(
                "the search space was built for program `{}`, not for this declaration of `{}`",
                self.space.program(),
                spec.name
            )));
        }
        if dev.is_empty() {
            return Err(Error::tuning("the development set is empty".to_owned()));
        }
        if !(1..=MAX_TRIALS).contains(&self.trials) {
            return Err(Error::tuning(format!(
                "the number of trials must be between 1 and {MAX_TRIALS}, got {}",
                self.trials
            )));
        }
        check_concurrency("trial concurrency", self.trial_concurrency)?;
        check_concurrency("example concurrency", self.example_concurrency)?;
        let rungs = match &self.halving {
            Some(h) => {
                h.check(dev.len())?;
                h.rungs.clone()
            }
            None => vec![dev.len()],
        };
        let keep = self.halving.as_ref().map_or(1.0, |h| h.keep);
        // Minibatches are prefixes of one seeded order; without halving, the data set as is.
        let data = if self.halving.is_some() {
            dev.shuffled(self.seed)
        } else {
            dev.clone()
        };
        let mut proposer = Proposer::new(self.sampler, &self.space, self.seed)?;
        let budget = proposer
            .capacity()
            .map_or(self.trials, |c| c.min(self.trials));
        let ctx = program.program_context();
        let mut state = State {
            trials: Vec::new(),
            values: Vec::new(),
            rung_scores: vec![Vec::new(); rungs.len()],
        };
        let started = Instant::now();
        while state.trials.len() < budget {
            let round = self.trial_concurrency.min(budget - state.trials.len());
            let mut proposals = Vec::with_capacity(round);
            for _ in 0..round {
                let history: Vec<Observed<'_>> = state
                    .trials
                    .iter()
                    .zip(&state.values)
                    .map(|(t, v)| Observed {
                        values: v,
                        rung: t.rung,
                        score: t.score,
                    })
                    .collect();
                let Some(values) = proposer.propose(&self.space, &history) else {
                    break;
                };
                proposals.push(values);
            }
            if proposals.is_empty() {
                break;
            }
            let mut pending: Vec<Pending> = Vec::with_capacity(proposals.len());
            for values in proposals {
                let assignment = self.assignment(&values)?;
                let overrides: Overrides = assignment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<Overrides>()
                    .validate(ctx, spec)?;
                pending.push(Pending {
                    index: state.trials.len() + pending.len(),
                    values,
                    assignment,
                    overrides,
                    results: Vec::new(),
                    duration: Duration::ZERO,
                    alive: true,
                });
            }
            for (rung, &size) in rungs.iter().enumerate() {
                if !pending.iter().any(|p| p.alive) {
                    break;
                }
                let from = if rung == 0 { 0 } else { rungs[rung - 1] };
                let evaluations = pending.iter_mut().filter(|p| p.alive).map(|p| async {
                    let started = Instant::now();
                    let results = run_examples(
                        program,
                        self.metric.as_ref(),
                        &p.overrides,
                        data.examples()
                            .iter()
                            .enumerate()
                            .skip(from)
                            .take(size - from),
                        self.example_concurrency,
                        || {},
                    )
                    .await;
                    p.duration += started.elapsed();
                    p.results.extend(results);
                });
                join_all(evaluations).await;
                // Promotions, in trial order: each trial is ranked among every score reached
                // at this rung so far (earlier trials win ties).
                for p in pending.iter_mut().filter(|p| p.alive) {
                    let score = mean_score(&p.results);
                    state.rung_scores[rung].push(score);
                    if rung + 1 < rungs.len() {
                        let better = state.rung_scores[rung]
                            .iter()
                            .filter(|&&s| s > score)
                            .count();
                        let seen = state.rung_scores[rung].len();
                        #[allow(
                            clippy::cast_precision_loss,
                            clippy::cast_possible_truncation,
                            clippy::cast_sign_loss
                        )]
                        let kept = ((keep * seen as f64).ceil() as usize).max(1);
                        p.alive = better < kept;
                    }
                }
            }
            for p in pending {
                let rung = rungs
                    .iter()
                    .position(|&s| s == p.results.len())
                    .unwrap_or(0);
                let mut tokens = TokenUsage::default();
                for r in &p.results {
                    tokens.add(&r.tokens);
                }
                state.trials.push(Trial {
                    index: p.index,
                    assignment: p.assignment,
                    score: mean_score(&p.results),
                    rung,
                    complete: rung + 1 == rungs.len(),
                    examples: p.results.len(),
                    errors: p.results.iter().filter(|r| r.error.is_some()).count(),
                    tokens,
                    duration: p.duration,
                    first_error: p.results.iter().find_map(|r| r.error.clone()),
                });
                state.values.push(p.values);
            }
            if let Some(target) = self.stop_at
                && state.trials.iter().any(|t| t.complete && t.score >= target)
            {
                break;
            }
        }
        Ok(TuneResult::new(
            spec,
            self.metric.name().to_owned(),
            self.describe(),
            self.seed,
            state.trials,
            started.elapsed(),
        ))
    }

    /// A trial's full assignment: the proposed values and the fixed ones, each checked against
    /// its declaration (a proposal outside it would be a sampler bug).
    fn assignment(&self, values: &[Value]) -> Result<BTreeMap<String, Value>> {
        let mut assignment = BTreeMap::new();
        for (dim, value) in self.space.dimensions().iter().zip(values) {
            self.space.check(&dim.name, value)?;
            assignment.insert(dim.name.clone(), value.clone());
        }
        for (name, value) in self.space.fixed() {
            assignment.insert(name.to_owned(), value.clone());
        }
        Ok(assignment)
    }
}

/// The trials so far and, per rung, every score reached there.
struct State {
    trials: Vec<Trial>,
    values: Vec<Vec<Value>>,
    rung_scores: Vec<Vec<f64>>,
}

/// A trial of the current round.
struct Pending {
    index: usize,
    values: Vec<Value>,
    assignment: BTreeMap<String, Value>,
    overrides: Overrides,
    results: Vec<ExampleResult>,
    duration: Duration,
    alive: bool,
}

/// The mean score of the examples evaluated (0 for none).
fn mean_score(results: &[ExampleResult]) -> f64 {
    let scores: Vec<f64> = results.iter().map(|r| r.score).collect();
    crate::eval::mean_and_std_error(&scores).0
}
