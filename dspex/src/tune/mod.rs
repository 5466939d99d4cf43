//! Tuning a program's declared variables: a [`SearchSpace`] derived from the declaration
//! (float and integer ranges, optionally log-scaled; booleans; choices and module choices;
//! strings and embeddings over listed candidates; any variable fixed, narrowed or held), a
//! [`Sampler`] (grid, random, or TPE following Optuna's `TPESampler` defaults), and the
//! [`Tuner`], which evaluates each trial through per-run [`Overrides`](crate::Overrides) —
//! several at once, reproducibly for a seed, optionally on growing minibatches
//! ([`Halving`]) — and returns a [`TuneResult`]: every trial, the best assignment,
//! [`apply`](TuneResult::apply) to write it atomically with `tuned_at`, `tuned_score` and
//! `tuner` metadata, and versioned JSON to save and load it.
//!
//! Every proposed value lies in its variable's domain, which is built from (and checked
//! against) the declaration, so every trial's overrides pass validation.
//!
//! TPE is dspex's own, not the `tpe` crate: that crate's estimators are per-parameter with
//! settings that differ from Optuna's, and its draws go through `rand`, whose sequences are not
//! guaranteed across versions; here the algorithm follows Optuna's defaults and the random
//! stream is dspex's seeded generator, so a seed gives the same trials everywhere.
//!
//! Read-only variables (declared `readonly`) are never searched: the space holds them at their
//! value in the context, saying why.

mod result;
mod sampler;
mod space;
mod tpe;
mod tuner;

pub use result::{RESULT_FORMAT, RESULT_VERSION, Trial, TuneResult};
pub use sampler::{MAX_GRID_POINTS, Sampler};
pub use space::{Dimension, Domain, Held, SearchSpace};
pub use tpe::TpeConfig;
pub use tuner::{DEFAULT_TRIAL_CONCURRENCY, Halving, MAX_TRIALS, Tuner};
