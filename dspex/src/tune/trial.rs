//! One trial of a tuning run or study: the assignment it ran with, its objectives' values, its
//! costs, and where it stands.

use std::collections::BTreeMap;
use std::time::Duration;

use dspex_core::Value;

use crate::eval::TokenUsage;

/// Where a trial of a study stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrialState {
    /// Being evaluated, under a lease its process renews.
    Running,
    /// Evaluated: its values are set. The budget counts these.
    Finished,
    /// Its lease ran out before it finished (its process died or stopped renewing it); its
    /// assignment is proposed again (see [`Trial::retry_of`]) until it failed
    /// [`MAX_ATTEMPTS`](super::MAX_ATTEMPTS) times.
    Failed,
}

/// One trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Its number in the study, from 0, in the order trials were handed out.
    pub index: usize,
    /// The values it ran with: the searched variables' and the fixed ones.
    pub assignment: BTreeMap<String, Value>,
    /// Its first objective's value (its mean score, with the default objective) over the
    /// examples it was evaluated on; 0 unless finished.
    pub score: f64,
    /// Every objective's value, in the order of
    /// [`Tuner::objectives`](super::Tuner::objectives); empty unless finished.
    pub values: Vec<f64>,
    /// Running, finished or failed.
    pub state: TrialState,
    /// The last minibatch rung it reached (0 without halving).
    pub rung: usize,
    /// Whether it reached the full evaluation (the last rung).
    pub complete: bool,
    /// Examples evaluated (its cost in runs).
    pub examples: usize,
    /// Examples that failed (scored 0).
    pub errors: usize,
    /// LM tokens its runs used.
    pub tokens: TokenUsage,
    /// Time spent evaluating it.
    pub duration: Duration,
    /// Its examples' mean latency (from the start of a run to its score).
    pub latency: Duration,
    /// The first error of its examples, if any.
    pub first_error: Option<String>,
    /// Its position in the grid's enumeration order (grid sampler only): ties between trials
    /// are broken by it.
    pub grid_point: Option<usize>,
    /// The failed trial whose assignment it tries again.
    pub retry_of: Option<usize>,
}

impl Trial {
    /// Whether it finished its full evaluation (the last minibatch rung): the trials the best
    /// assignment and the Pareto front are chosen from.
    pub fn evaluated_in_full(&self) -> bool {
        self.state == TrialState::Finished && self.complete
    }
}

impl TrialState {
    /// `running`, `finished` or `failed`.
    pub fn name(self) -> &'static str {
        match self {
            TrialState::Running => "running",
            TrialState::Finished => "finished",
            TrialState::Failed => "failed",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        [
            TrialState::Running,
            TrialState::Finished,
            TrialState::Failed,
        ]
        .into_iter()
        .find(|s| s.name() == text)
    }
}
