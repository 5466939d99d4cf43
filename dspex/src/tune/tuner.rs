//! The tuner: asks its study for trials (each proposed by a sampler that sees the study's
//! finished and running trials), evaluates them through per-run overrides (several at once,
//! the context untouched), optionally on growing minibatches (successive halving), tells the
//! study their results, and returns every trial of the study and the best one.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use dspex_core::program::ProgramSpec;
use dspex_core::{Value, VarType};
use futures_util::future::join_all;

use super::objective::{Cost, Objective, Objectives, Scorer};
use super::result::{TieBreak, TuneResult};
use super::sampler::{Observed, Proposer, Sampler, Seen};
use super::space::SearchSpace;
use super::study::{
    Ask, Asked, Assignment, Backend, Header, Outcome, POLL_INTERVAL, Record, RecordState, Study,
    assignment_json, call, decode_assignment, key_of,
};
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
/// only if its first objective is in the best `keep` fraction of the values that the study's
/// trials have reached at that rung so far (at least the best one always moves on), and is
/// evaluated on the added examples only. The last rung is the full evaluation.
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
/// evaluated on a development set, through per-run [`Overrides`] (the context is untouched
/// until [`TuneResult::apply`]), scored on one or more [`Objective`]s, the trials kept in a
/// [`Study`].
///
/// Trials run in rounds of [`trial_concurrency`](Self::trial_concurrency): the tuner asks its
/// study for a round's trials one after the other, each proposal seeing every finished trial
/// and every running one (the sampler counts those as pending: TPE's constant liar); the
/// round's trials then run at once, and their results are told to the study. With a memory
/// study (the default), a seed gives the same proposals, scores and result on every run,
/// whatever the timing.
///
/// Any number of tuners, in any processes, may share one [`Study`]: `trials(n)` then means n
/// finished trials in the study in all, and a tuner returns once the study has them (waiting
/// for the other processes' running trials, and taking over those whose process died). A
/// tuner on a study that has them runs nothing.
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
    objectives: Objectives,
    sampler: Sampler,
    trials: usize,
    seed: u64,
    trial_concurrency: usize,
    example_concurrency: usize,
    halving: Option<Halving>,
    stop_at: Option<f64>,
    study: Option<Study>,
    prefer_lower: Option<Cost>,
}

impl Tuner {
    /// A tuner over `space` maximizing `metric` (the same as
    /// [`objectives([Objective::maximize(metric)])`](Self::objectives)): TPE, 50 trials, seed
    /// 0, [`DEFAULT_TRIAL_CONCURRENCY`] trials at once, each running
    /// [`DEFAULT_CONCURRENCY`](crate::eval::DEFAULT_CONCURRENCY) examples at once, no halving,
    /// a fresh memory study per run.
    pub fn new(space: SearchSpace, metric: impl Metric + 'static) -> Self {
        Self {
            space,
            objectives: Objectives::new(vec![Objective::maximize(metric)]),
            sampler: Sampler::tpe(),
            trials: 50,
            seed: 0,
            trial_concurrency: DEFAULT_TRIAL_CONCURRENCY,
            example_concurrency: DEFAULT_CONCURRENCY,
            halving: None,
            stop_at: None,
            study: None,
            prefer_lower: None,
        }
    }

    /// What the tuner optimizes, in order (1 to [`MAX_OBJECTIVES`](super::MAX_OBJECTIVES), at
    /// least one a metric): a trial's [`score`](super::Trial::score) is the first objective,
    /// its [`values`](super::Trial::values) all of them. With several, TPE splits the trials
    /// by non-domination (Optuna's MOTPE idea) and the result has a
    /// [`pareto_front`](TuneResult::pareto_front) and
    /// [`best_where`](TuneResult::best_where).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
    /// use dspex::prelude::*;
    /// use dspex::eval::{Dataset, ExactMatch, Example};
    /// use dspex::tune::{Cost, Objective, Sampler, SearchSpace, Tuner};
    ///
    /// #[derive(Default)]
    /// struct Guess;
    /// impl Module for Guess {
    ///     async fn forward(&self, _: &Fields, params: &Params) -> Result<Fields> {
    ///         let k = params.get::<i64>("k")?;
    ///         Ok(Fields::from([("answer", if k >= 5 { "yes" } else { "no" })]))
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
    /// let dev = Dataset::from_examples([Example::new().with_input("question", "?").with_expected("answer", "yes")]);
    /// let result = Tuner::new(SearchSpace::of(&program)?, ExactMatch::new("answer"))
    ///     .objectives([
    ///         Objective::maximize(ExactMatch::new("answer")),
    ///         Objective::minimize(Cost::latency()),
    ///     ])
    ///     .sampler(Sampler::grid(10))
    ///     .run(&program, &dev)
    ///     .await?;
    /// assert_eq!(result.trials[0].values.len(), 2);
    /// // Among the non-dominated trials that answer right, the fastest.
    /// let fastest = result.best_where(|t| t.score == 1.0).expect("k >= 5 answers right");
    /// assert!(fastest.assignment["k"].as_i64() >= Some(5));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn objectives(mut self, objectives: impl IntoIterator<Item = Objective>) -> Self {
        self.objectives = Objectives::new(objectives.into_iter().collect());
        self
    }

    /// The sampler.
    #[must_use]
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// How many finished trials the study should hold, in all (1 to [`MAX_TRIALS`]; a grid,
    /// or a finite space, may stop sooner, when exhausted).
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

    /// How many trials run at once in this process (1 to
    /// [`MAX_CONCURRENCY`](crate::eval::MAX_CONCURRENCY)).
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

    /// Stops once the study has a trial whose full evaluation reaches `score` on the first
    /// objective (at least `score` when maximized, at most when minimized).
    #[must_use]
    pub fn stop_at(mut self, score: f64) -> Self {
        self.stop_at = Some(score);
        self
    }

    /// Keeps the trials in `study` (default: a fresh memory study per run). Running a tuner
    /// again on a study resumes it.
    #[must_use]
    pub fn study(mut self, study: Study) -> Self {
        self.study = Some(study);
        self
    }

    /// Breaks ties on the first objective by the lower `cost` (before the rule every result
    /// applies: the first in a grid's enumeration order, then the earliest trial).
    #[must_use]
    pub fn prefer_lower(mut self, cost: Cost) -> Self {
        self.prefer_lower = Some(cost);
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
        self.objectives.check()?;
        let rungs = match &self.halving {
            Some(h) => {
                h.check(dev.len())?;
                h.rungs.clone()
            }
            None => vec![dev.len()],
        };
        let study = self.study.clone().unwrap_or_else(Study::memory);
        study.check_lease()?;
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
        let backend = study.backend();
        let header = Header::new(spec, &self.space, &self.objectives);
        let text = header.encode();
        if let Some(held) = call(&backend, move |b| b.open(&text)).await? {
            let held = Header::decode(&held, &backend.header_location())?;
            let differences = held.differences(&header, spec);
            if !differences.is_empty() {
                return Err(Error::tuning(format!(
                    "{study} holds another tuning; this tuner differs: {}",
                    differences.join("; ")
                )));
            }
        }
        let ask = Ask {
            budget,
            proposal: None,
            owner: owner()?,
            lease_ms: u64::try_from(study.lease_duration().as_millis()).unwrap_or(u64::MAX),
        };
        let mut cache = Cache::new(spec, &self.space, &self.objectives);
        cache.sync(&backend).await?;
        let started = Instant::now();
        loop {
            if self.reached(&cache) {
                break;
            }
            let (round, next) = self
                .ask_round(&backend, &ask, &mut proposer, &mut cache)
                .await?;
            if round.is_empty() {
                match next {
                    Next::Stop => break,
                    Next::Wait(ms) => {
                        let pause = Duration::from_millis(ms)
                            .min(POLL_INTERVAL)
                            .max(Duration::from_millis(1));
                        tokio::time::sleep(pause).await;
                        cache.sync(&backend).await?;
                        continue;
                    }
                }
            }
            let outcomes = self
                .evaluate(
                    program, &data, &rungs, round, &cache, &backend, &study, &ask.owner,
                )
                .await?;
            for (number, outcome) in outcomes {
                let owner = ask.owner.clone();
                let told = call(&backend, move |b| b.tell(number, &owner, &outcome)).await?;
                if !told {
                    tracing::warn!(
                        target: "dspex::tune",
                        trial = number,
                        study = %study,
                        "the trial's lease ran out before its result came: the study marked it failed and proposes it again; its result is dropped"
                    );
                }
            }
            cache.sync(&backend).await?;
        }
        cache.sync(&backend).await?;
        let trials = cache
            .known
            .values()
            .map(|k| {
                let mut trial = k.record.trial(k.assignment.clone());
                trial.grid_point = proposer.grid_point(&k.values);
                trial
            })
            .collect();
        Ok(TuneResult::new(
            spec,
            self.objectives.metric_name(),
            self.describe(),
            self.seed,
            self.objectives
                .list()
                .iter()
                .map(|o| (o.direction(), o.measure().name().to_owned()))
                .collect(),
            trials,
            started.elapsed(),
            TieBreak {
                prefer_lower: self.prefer_lower,
            },
        ))
    }

    /// Whether the study has a full evaluation that reaches [`stop_at`](Self::stop_at).
    fn reached(&self, cache: &Cache) -> bool {
        let Some(target) = self.stop_at else {
            return false;
        };
        let direction = self.objectives.list()[0].direction();
        cache.known.values().any(|k| {
            k.record.state == RecordState::Finished
                && k.record.outcome.as_ref().is_some_and(|o| o.complete)
                && direction.loss(k.score()) <= direction.loss(target)
        })
    }

    /// Asks the study for up to a round of trials; when none is granted, says what next.
    async fn ask_round(
        &self,
        backend: &std::sync::Arc<dyn Backend>,
        ask: &Ask,
        proposer: &mut Proposer,
        cache: &mut Cache,
    ) -> Result<(Vec<Pending>, Next)> {
        let mut round = Vec::new();
        let mut next = Next::Stop;
        while round.len() < self.trial_concurrency {
            let proposal = cache.propose(proposer, &self.space);
            let assignment = proposal
                .as_deref()
                .map(|v| self.assignment(v))
                .transpose()?;
            let request = Ask {
                proposal: assignment.as_ref().map(assignment_json),
                ..ask.clone()
            };
            let lease_until = super::study::now_ms() + ask.lease_ms;
            let asked = call(backend, move |b| b.ask(&request)).await?;
            let (number, values, assignment, origin) = match asked {
                Asked::Granted(number) => match (proposal, assignment) {
                    (Some(values), Some(assignment)) => (number, values, assignment, None),
                    _ => {
                        return Err(Error::Internal(
                            "a trial was granted without a proposal".to_owned(),
                        ));
                    }
                },
                Asked::Retry {
                    number,
                    of,
                    assignment,
                } => {
                    let (assignment, values) = cache.decode(&assignment, &backend.location(of))?;
                    (number, values, assignment, Some(of))
                }
                Asked::Duplicate => {
                    // Another process took it since the last read: read again, propose again.
                    cache.sync(backend).await?;
                    continue;
                }
                Asked::Wait(ms) => {
                    next = Next::Wait(ms);
                    break;
                }
                Asked::Finished | Asked::Exhausted => break,
            };
            let overrides = assignment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Overrides>();
            cache.insert(Known {
                record: Record {
                    number,
                    state: RecordState::Running,
                    assignment: assignment_json(&assignment),
                    owner: ask.owner.clone(),
                    lease_until_ms: lease_until,
                    // Until the next read, which brings the study's own record.
                    attempt: 1,
                    origin,
                    reproposed_as: None,
                    outcome: None,
                },
                assignment,
                values,
                losses: Vec::new(),
            });
            round.push(Pending {
                number,
                overrides,
                scorer: self.objectives.scorer(),
                results: Vec::new(),
                rung_scores: Vec::new(),
                duration: Duration::ZERO,
                alive: true,
            });
        }
        Ok((round, next))
    }

    /// Evaluates a round's trials (renewing their leases meanwhile) and returns each trial's
    /// outcome, in trial order.
    #[allow(clippy::too_many_arguments)]
    async fn evaluate<P: BaseProgram + ?Sized>(
        &self,
        program: &P,
        data: &Dataset,
        rungs: &[usize],
        mut round: Vec<Pending>,
        cache: &Cache,
        backend: &std::sync::Arc<dyn Backend>,
        study: &Study,
        owner: &str,
    ) -> Result<Vec<(usize, Outcome)>> {
        let spec = program.program_spec();
        let ctx = program.program_context();
        for p in &mut round {
            p.overrides = std::mem::take(&mut p.overrides).validate(ctx, spec)?;
        }
        let keep = self.halving.as_ref().map_or(1.0, |h| h.keep);
        let direction = self.objectives.list()[0].direction();
        // Every first-objective value the study's finished trials reached at each rung.
        let mut rung_scores: Vec<Vec<f64>> = vec![Vec::new(); rungs.len()];
        for k in cache.known.values() {
            if let Some(o) = &k.record.outcome {
                for (r, v) in o.rung_scores.iter().enumerate().take(rungs.len()) {
                    rung_scores[r].push(*v);
                }
            }
        }
        let numbers: Vec<usize> = round.iter().map(|p| p.number).collect();
        let evaluation = async {
            for (rung, &size) in rungs.iter().enumerate() {
                if !round.iter().any(|p| p.alive) {
                    break;
                }
                let from = if rung == 0 { 0 } else { rungs[rung - 1] };
                let runs = round.iter_mut().filter(|p| p.alive).map(|p| async {
                    let started = Instant::now();
                    let results = run_examples(
                        program,
                        &p.scorer,
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
                join_all(runs).await;
                // Promotions, in trial order: each trial is ranked among every value reached
                // at this rung so far (earlier trials win ties).
                for p in round.iter_mut().filter(|p| p.alive) {
                    let value = self
                        .objectives
                        .values(&p.scorer, data.examples(), &p.results)[0];
                    p.rung_scores.push(value);
                    rung_scores[rung].push(value);
                    if rung + 1 < rungs.len() {
                        let loss = direction.loss(value);
                        let better = rung_scores[rung]
                            .iter()
                            .filter(|&&s| direction.loss(s) < loss)
                            .count();
                        let seen = rung_scores[rung].len();
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
        };
        let lease = study.lease_duration();
        let renewal = async {
            loop {
                tokio::time::sleep(lease / 3).await;
                let (numbers, owner) = (numbers.clone(), owner.to_owned());
                let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
                if let Err(e) = call(backend, move |b| b.renew(&numbers, &owner, lease_ms)).await {
                    tracing::warn!(target: "dspex::tune", study = %study, error = %e, "cannot renew the leases of running trials");
                }
            }
        };
        tokio::select! {
            () = evaluation => {}
            () = renewal => {}
        }
        Ok(round
            .into_iter()
            .map(|p| {
                let rung = rungs
                    .iter()
                    .position(|&s| s == p.results.len())
                    .unwrap_or(0);
                let mut tokens = TokenUsage::default();
                for r in &p.results {
                    tokens.add(&r.tokens);
                }
                let latency = if p.results.is_empty() {
                    Duration::ZERO
                } else {
                    p.results.iter().map(|r| r.latency).sum::<Duration>()
                        / u32::try_from(p.results.len()).unwrap_or(u32::MAX)
                };
                let outcome = Outcome {
                    values: self
                        .objectives
                        .values(&p.scorer, data.examples(), &p.results),
                    rung,
                    complete: rung + 1 == rungs.len(),
                    rung_scores: p.rung_scores,
                    examples: p.results.len(),
                    errors: p.results.iter().filter(|r| r.error.is_some()).count(),
                    tokens,
                    duration: p.duration,
                    latency,
                    first_error: p.results.iter().find_map(|r| r.error.clone()),
                };
                (p.number, outcome)
            })
            .collect())
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

/// What to do when a round got no trial.
enum Next {
    /// The study is finished, or nothing is left to propose.
    Stop,
    /// Others' trials hold the budget: ask again (the first lease runs out after this many
    /// milliseconds).
    Wait(u64),
}

/// A lease holder's name: this process and a random tag, so that two tuners never share one.
fn owner() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::tuning(format!("cannot draw random bytes: {e}")))?;
    let tag: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("pid {} {tag}", std::process::id()))
}

/// A trial the tuner knows of: its record, and its assignment decoded.
struct Known {
    record: Record,
    assignment: BTreeMap<String, Value>,
    /// The searched variables' values, in dimension order.
    values: Vec<Value>,
    /// Its objectives as losses, once finished (else empty).
    losses: Vec<f64>,
}

impl Known {
    /// Its first objective (0 unless finished).
    fn score(&self) -> f64 {
        self.record
            .outcome
            .as_ref()
            .and_then(|o| o.values.first().copied())
            .unwrap_or(0.0)
    }
}

/// This process's copy of the study: every trial read so far, kept up to date from the
/// study's log of changes.
struct Cache {
    cursor: u64,
    known: BTreeMap<usize, Known>,
    keys: HashSet<String>,
    types: BTreeMap<String, VarType>,
    space: SearchSpace,
    directions: Vec<super::objective::Direction>,
}

impl Cache {
    fn new(spec: &ProgramSpec, space: &SearchSpace, objectives: &Objectives) -> Self {
        Self {
            cursor: 0,
            known: BTreeMap::new(),
            keys: HashSet::new(),
            types: spec
                .variables
                .iter()
                .map(|v| (v.name.clone(), v.ty))
                .collect(),
            space: space.clone(),
            directions: objectives.directions(),
        }
    }

    /// Reads what changed in the study since the last read.
    async fn sync(&mut self, backend: &std::sync::Arc<dyn Backend>) -> Result<()> {
        let cursor = self.cursor;
        let (records, next) = call(backend, move |b| b.read(cursor)).await?;
        for record in records {
            let (assignment, values) =
                self.decode(&record.assignment, &backend.location(record.number))?;
            self.insert(Known {
                record,
                assignment,
                values,
                losses: Vec::new(),
            });
        }
        self.cursor = next;
        Ok(())
    }

    /// A stored assignment, checked against the search space, and its searched values.
    fn decode(
        &self,
        stored: &Assignment,
        location: &str,
    ) -> Result<(BTreeMap<String, Value>, Vec<Value>)> {
        let assignment = decode_assignment(stored, &self.types, location)?;
        let values = self
            .space
            .dimensions()
            .iter()
            .map(|d| {
                let value = assignment.get(&d.name).ok_or_else(|| {
                    Error::tuning(format!(
                        "the study record at {location} is corrupt: it has no value for `{}`",
                        d.name
                    ))
                })?;
                self.space.check(&d.name, value).map_err(|e| {
                    Error::tuning(format!("the study record at {location} is corrupt: {e}"))
                })?;
                Ok(value.clone())
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((assignment, values))
    }

    fn insert(&mut self, mut known: Known) {
        self.keys.insert(key_of(&known.record.assignment));
        if known.record.state == RecordState::Finished
            && let Some(o) = &known.record.outcome
        {
            known.losses = o
                .values
                .iter()
                .zip(&self.directions)
                .map(|(v, d)| d.loss(*v))
                .collect();
        }
        self.known.insert(known.record.number, known);
    }

    /// The sampler's next proposal, from the finished and running trials known.
    fn propose(&self, proposer: &mut Proposer, space: &SearchSpace) -> Option<Vec<Value>> {
        let finished: Vec<Observed<'_>> = self
            .known
            .values()
            .filter(|k| k.record.state == RecordState::Finished)
            .map(|k| Observed {
                number: k.record.number,
                values: &k.values,
                rung: k.record.outcome.as_ref().map_or(0, |o| o.rung),
                losses: &k.losses,
            })
            .collect();
        let pending: Vec<(usize, &[Value])> = self
            .known
            .values()
            .filter(|k| k.record.state == RecordState::Running)
            .map(|k| (k.record.number, k.values.as_slice()))
            .collect();
        let fixed: Assignment = space
            .fixed()
            .map(|(name, v)| (name.to_owned(), crate::util::value_json::to_json(v)))
            .collect();
        let is_taken = |values: &[Value]| {
            let mut assignment = fixed.clone();
            for (d, v) in space.dimensions().iter().zip(values) {
                assignment.insert(d.name.clone(), crate::util::value_json::to_json(v));
            }
            self.keys.contains(&key_of(&assignment))
        };
        let seen = Seen {
            finished: &finished,
            pending: &pending,
            known: self.known.len(),
            objectives: self.directions.len(),
            is_taken: &is_taken,
        };
        proposer.propose(space, &seen)
    }
}

/// A trial of the current round.
struct Pending {
    number: usize,
    overrides: Overrides,
    scorer: Scorer,
    results: Vec<ExampleResult>,
    /// Its first objective at each rung reached.
    rung_scores: Vec<f64>,
    duration: Duration,
    alive: bool,
}
