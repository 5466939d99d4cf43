//! Tuning a program's declared variables: a [`SearchSpace`] derived from the declaration
//! (float and integer ranges, optionally log-scaled; booleans; choices and module choices;
//! strings and embeddings over listed candidates; any variable fixed, narrowed or held), a
//! [`Sampler`] (grid, random, or TPE as Optuna 5's `TPESampler`), one or more [`Objective`]s
//! (a metric's score to maximize, a [`Cost`] in tokens or latency to minimize), a [`Study`]
//! that keeps the trials (in memory, in a file, or in Redis, shared by any number of
//! processes), and the [`Tuner`], which evaluates each trial through per-run
//! [`Overrides`](crate::Overrides) — several at once, reproducibly for a seed on a memory
//! study, optionally on growing minibatches ([`Halving`]) — and returns a [`TuneResult`]: every
//! trial, the best assignment, the [Pareto front](TuneResult::pareto_front) of several
//! objectives, [`apply`](TuneResult::apply) to write a result atomically with `tuned_at`,
//! `tuned_score` and `tuner` metadata, and versioned JSON to save and load it.
//!
//! Every proposed value lies in its variable's domain, which is built from (and checked
//! against) the declaration, so every trial's overrides pass validation; and no assignment is
//! evaluated twice in a study (a trial whose process died is the one exception: it is tried
//! again).
//!
//! # Which Optuna configuration each sampler matches
//!
//! | dspex | Optuna 5 |
//! |---|---|
//! | [`Sampler::tpe()`] ([`TpeConfig::default()`]) | `TPESampler()`, its default for one objective (`multivariate=True`, `constant_liar=True`) |
//! | [`Sampler::tpe_independent()`] ([`TpeConfig::independent()`]) | `TPESampler(multivariate=False)` (with its default `constant_liar=True`) |
//! | [`TpeConfig`] with `constant_liar: false` | `TPESampler(..., constant_liar=False)` |
//! | TPE with several objectives | MOTPE's split by non-domination rank, as `TPESampler(multivariate=True)` (Optuna's own default for several objectives is `multivariate=False`: use [`TpeConfig::independent()`] for that); the last rank is cut by crowding distance where Optuna solves a hypervolume subset selection |
//! | [`Sampler::Random`] | `RandomSampler` |
//! | [`Sampler::Grid`] | `GridSampler` over the same points |
//!
//! TPE is dspex's own, not the `tpe` crate: that crate's estimators are per-parameter with
//! settings that differ from Optuna's, and its draws go through `rand`, whose sequences are not
//! guaranteed across versions; here the algorithm follows Optuna and the random stream is
//! dspex's seeded generator, so a seed gives the same trials everywhere.
//!
//! # Ties
//!
//! The best trial is the best first objective among the finished trials evaluated in full.
//! Ties are broken by the lower cost when the tuner says
//! [`prefer_lower`](Tuner::prefer_lower), then, for a grid, by the grid's enumeration order
//! (the order a plain loop over the grid would visit, whatever the seed shuffled), then by the
//! earliest trial.
//!
//! Read-only variables (declared `readonly`) are never searched: the space holds them at their
//! value in the context, saying why.

mod objective;
mod result;
mod sampler;
mod space;
mod study;
mod tpe;
mod trial;
mod tuner;

pub use objective::{Cost, Direction, MAX_OBJECTIVES, Measure, Objective};
pub use result::{RESULT_FORMAT, RESULT_VERSION, TuneResult};
pub use sampler::{MAX_GRID_POINTS, Sampler};
pub use space::{Dimension, Domain, Held, SearchSpace};
pub use study::{
    DEFAULT_LEASE, MAX_ATTEMPTS, MAX_LEASE, MAX_STUDY_NAME_BYTES, MIN_LEASE, POLL_INTERVAL, Study,
};
pub use tpe::TpeConfig;
pub use trial::{Trial, TrialState};
pub use tuner::{DEFAULT_TRIAL_CONCURRENCY, Halving, MAX_TRIALS, Tuner};
