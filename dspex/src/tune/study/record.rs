//! A trial as a study stores it, and the requests and answers of asking a study for a trial:
//! what every study backend (memory, file, Redis) reads and writes.

use std::collections::BTreeMap;
use std::time::Duration;

use dspex_core::Value;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::eval::{TokenUsage, millis};
use crate::tune::trial::{Trial, TrialState};
use crate::util::value_json;

/// How many times one assignment is tried: a trial whose lease ran out is proposed again
/// until its assignment failed this many times.
pub const MAX_ATTEMPTS: u32 = 3;

/// A trial's assignment as stored: variable name -> JSON value, in name order (so its text is
/// canonical: the study's key for "the same assignment").
pub(crate) type Assignment = BTreeMap<String, Json>;

/// The canonical text of an assignment.
pub(crate) fn key_of(assignment: &Assignment) -> String {
    // Strings and finite numbers only: serializing cannot fail.
    serde_json::to_string(assignment).unwrap_or_default()
}

/// An assignment as stored.
pub(crate) fn assignment_json(assignment: &BTreeMap<String, Value>) -> Assignment {
    assignment
        .iter()
        .map(|(k, v)| (k.clone(), value_json::to_json(v)))
        .collect()
}

/// The state of a stored trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RecordState {
    Running,
    Finished,
    Failed,
}

impl RecordState {
    #[cfg(feature = "redis")]
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "running" => Some(RecordState::Running),
            "finished" => Some(RecordState::Finished),
            "failed" => Some(RecordState::Failed),
            _ => None,
        }
    }
}

/// One trial as a study stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    pub(crate) number: usize,
    pub(crate) state: RecordState,
    pub(crate) assignment: Assignment,
    /// The lease's holder while running (empty otherwise).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) owner: String,
    /// When the lease runs out, in milliseconds since the Unix epoch (while running).
    #[serde(default)]
    pub(crate) lease_until_ms: u64,
    /// 1 for a first proposal, one more for each time the assignment was proposed again.
    pub(crate) attempt: u32,
    /// The failed trial this one proposes again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) origin: Option<usize>,
    /// The trial that proposed this failed one again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reproposed_as: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) outcome: Option<Outcome>,
}

impl Record {
    pub(crate) fn key(&self) -> String {
        key_of(&self.assignment)
    }

    /// The public trial of this record, with its decoded assignment.
    pub(crate) fn trial(&self, assignment: BTreeMap<String, Value>) -> Trial {
        let state = match self.state {
            RecordState::Running => TrialState::Running,
            RecordState::Finished => TrialState::Finished,
            RecordState::Failed => TrialState::Failed,
        };
        let o = self.outcome.clone().unwrap_or_default();
        Trial {
            index: self.number,
            assignment,
            score: o.values.first().copied().unwrap_or(0.0),
            values: o.values,
            state,
            rung: o.rung,
            complete: o.complete,
            examples: o.examples,
            errors: o.errors,
            tokens: o.tokens,
            duration: o.duration,
            latency: o.latency,
            first_error: o.first_error,
            grid_point: None,
            retry_of: self.origin,
        }
    }
}

/// What a finished trial measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Outcome {
    /// Every objective's value, in order.
    pub(crate) values: Vec<f64>,
    pub(crate) rung: usize,
    pub(crate) complete: bool,
    /// Its first objective's value at each rung it reached.
    pub(crate) rung_scores: Vec<f64>,
    pub(crate) examples: usize,
    pub(crate) errors: usize,
    pub(crate) tokens: TokenUsage,
    #[serde(with = "millis", rename = "duration_ms")]
    pub(crate) duration: Duration,
    #[serde(with = "millis", rename = "latency_ms")]
    pub(crate) latency: Duration,
    pub(crate) first_error: Option<String>,
}

/// A request for a trial.
#[derive(Debug, Clone)]
pub(crate) struct Ask {
    /// Finished trials the asker wants in the study.
    pub(crate) budget: usize,
    /// The asker's proposal (`None`: it has none left).
    pub(crate) proposal: Option<Assignment>,
    /// Who holds the lease.
    pub(crate) owner: String,
    pub(crate) lease_ms: u64,
}

/// The study's answer to an [`Ask`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Asked {
    /// A new trial of the proposal.
    Granted(usize),
    /// A new trial that proposes failed trial `of` again, with its assignment.
    Retry {
        number: usize,
        of: usize,
        assignment: Assignment,
    },
    /// The study holds the proposal already.
    Duplicate,
    /// The budget is taken by running trials (or the asker has no proposal and trials run):
    /// ask again; the first lease runs out after this long.
    Wait(u64),
    /// The study has the budget's finished trials.
    Finished,
    /// The asker has no proposal, and no trial runs or waits to be proposed again.
    Exhausted,
}
