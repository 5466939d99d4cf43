//! The result of a tuning run: every trial, the best assignment and score, the Pareto front of
//! several objectives; applying a trial to a program's context atomically, with metadata;
//! saving it to and loading it from versioned JSON that records the declaration it was tuned
//! for.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use dspex_core::Value;
use dspex_core::program::ProgramSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::objective::{Cost, Direction, SavedObjective, dominates};
use super::trial::{Trial, TrialState};
use crate::error::{Error, Result};
use crate::eval::{TokenUsage, millis};
use crate::program::BaseProgram;
use crate::program::declaration::{DeclaredVariable, variable_differences};
use crate::util::time::rfc3339;
use crate::util::value_json;

/// The `format` of a saved tuning result.
pub const RESULT_FORMAT: &str = "dspex.tune.result";

/// The version of the saved format this build writes (it reads versions 1 and 2; version 1
/// had one objective, its trials all finished).
pub const RESULT_VERSION: u32 = 2;

/// How ties between trials are broken, in order: the lower cost if the tuner says
/// [`prefer_lower`](super::Tuner::prefer_lower), then the first in the grid's enumeration order
/// (a grid's trials), then the earliest trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TieBreak {
    pub(crate) prefer_lower: Option<Cost>,
}

impl TieBreak {
    fn order(&self, a: &Trial, b: &Trial) -> std::cmp::Ordering {
        let cost = |t: &Trial| self.prefer_lower.map_or(0.0, |c| c.of(t));
        cost(a)
            .total_cmp(&cost(b))
            .then(
                a.grid_point
                    .unwrap_or(usize::MAX)
                    .cmp(&b.grid_point.unwrap_or(usize::MAX)),
            )
            .then(a.index.cmp(&b.index))
    }
}

/// The result of [`Tuner::run`](super::Tuner::run).
#[derive(Debug, Clone, PartialEq)]
pub struct TuneResult {
    /// The program tuned.
    pub program: String,
    /// The metric's name.
    pub metric: String,
    /// The sampler and its settings, the seed, the halving schedule.
    pub tuner: String,
    /// The seed.
    pub seed: u64,
    /// Every objective: its direction and what it measures (`exact_match(answer)`, `tokens`).
    pub objectives: Vec<(Direction, String)>,
    /// The best assignment: the best first objective among the finished trials that reached
    /// the full evaluation; ties are broken by the lower cost with
    /// [`prefer_lower`](super::Tuner::prefer_lower), then by the grid's enumeration order for a
    /// grid, then by the earliest trial. `None` without such trials.
    pub best: Option<BTreeMap<String, Value>>,
    /// Its score.
    pub best_score: Option<f64>,
    /// Its trial's index.
    pub best_trial: Option<usize>,
    /// Every trial of the study, in order: finished, failed and (another process's) running
    /// ones.
    pub trials: Vec<Trial>,
    /// Wall time of the tuning run.
    pub duration: Duration,
    declaration: Vec<DeclaredVariable>,
    ties: TieBreak,
}

impl TuneResult {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        spec: &ProgramSpec,
        metric: String,
        tuner: String,
        seed: u64,
        objectives: Vec<(Direction, String)>,
        trials: Vec<Trial>,
        duration: Duration,
        ties: TieBreak,
    ) -> Self {
        let mut result = Self {
            program: spec.name.clone(),
            metric,
            tuner,
            seed,
            objectives,
            best: None,
            best_score: None,
            best_trial: None,
            duration,
            trials,
            declaration: spec.variables.iter().map(DeclaredVariable::of).collect(),
            ties,
        };
        let best = result
            .best_by(&[0], |t| t.evaluated_in_full())
            .map(|t| (t.assignment.clone(), t.score, t.index));
        if let Some((assignment, score, index)) = best {
            result.best = Some(assignment);
            result.best_score = Some(score);
            result.best_trial = Some(index);
        }
        result
    }

    /// A trial's value of objective `o` as a loss (smaller is better).
    fn loss(&self, t: &Trial, o: usize) -> f64 {
        let direction = self.objectives.get(o).map_or(Direction::Maximize, |d| d.0);
        direction.loss(t.values.get(o).copied().unwrap_or(t.score))
    }

    /// The best of the trials that pass `keep`: compared on the objectives `order` (indices,
    /// lexicographically), then by the tie rule.
    fn best_by(&self, order: &[usize], keep: impl Fn(&Trial) -> bool) -> Option<&Trial> {
        self.trials.iter().filter(|t| keep(t)).min_by(|a, b| {
            order
                .iter()
                .fold(std::cmp::Ordering::Equal, |acc, &o| {
                    acc.then(self.loss(a, o).total_cmp(&self.loss(b, o)))
                })
                .then(self.ties.order(a, b))
        })
    }

    /// The trials no other trial dominates (no worse on every objective and better on one),
    /// among the finished trials evaluated in full, in trial order. With one objective: the
    /// trials that share the best value.
    pub fn pareto_front(&self) -> Vec<&Trial> {
        let candidates: Vec<(&Trial, Vec<f64>)> = self
            .trials
            .iter()
            .filter(|t| t.evaluated_in_full())
            .map(|t| {
                let losses = (0..self.objectives.len().max(1))
                    .map(|o| self.loss(t, o))
                    .collect();
                (t, losses)
            })
            .collect();
        candidates
            .iter()
            .filter(|(_, l)| !candidates.iter().any(|(_, other)| dominates(other, l)))
            .map(|(t, _)| *t)
            .collect()
    }

    /// Among the Pareto front's trials that satisfy `keep`, the best on the objectives after
    /// the first, in order (then on the first, then by the tie rule of [`best`](Self::best)),
    /// or `None`. With `maximize(metric)` then `minimize(Cost::tokens())`:
    /// `best_where(|t| t.score >= 0.9)` is the cheapest trial that is good enough.
    pub fn best_where(&self, keep: impl Fn(&Trial) -> bool) -> Option<&Trial> {
        let front: Vec<usize> = self.pareto_front().iter().map(|t| t.index).collect();
        let mut order: Vec<usize> = (1..self.objectives.len()).collect();
        order.push(0);
        self.best_by(&order, |t| front.contains(&t.index) && keep(t))
    }

    /// Examples evaluated over all trials.
    pub fn examples_evaluated(&self) -> usize {
        self.trials.iter().map(|t| t.examples).sum()
    }

    /// The first trial (1-based count of trials run) whose full evaluation scored at least
    /// `score`: trials-to-target.
    pub fn trials_to_reach(&self, score: f64) -> Option<usize> {
        self.trials
            .iter()
            .position(|t| t.complete && t.score >= score)
            .map(|i| i + 1)
    }

    fn check_fits(&self, spec: &ProgramSpec) -> Result<()> {
        let differences =
            variable_differences("the result", &self.program, &self.declaration, spec);
        if differences.is_empty() {
            Ok(())
        } else {
            Err(Error::tuning(format!(
                "the result does not fit program `{}`: {}",
                spec.name,
                differences.join("; ")
            )))
        }
    }

    /// Writes the best assignment into `program`'s context, atomically
    /// ([`Context::update_many_with`](crate::Context::update_many_with): all values or none),
    /// with metadata `tuned_at` (RFC 3339), `tuned_score` and `tuner` on each written variable.
    /// Fails, writing nothing, if the program's declaration is not the one tuned or there is no
    /// best assignment.
    pub fn apply<P: BaseProgram + ?Sized>(&self, program: &P) -> Result<Vec<u64>> {
        let (Some(best), Some(score)) = (&self.best, self.best_score) else {
            self.check_fits(program.program_spec())?;
            return Err(Error::tuning(
                "the result has no best assignment to apply (no trial finished)".to_owned(),
            ));
        };
        self.write(program, best, score)
    }

    /// Writes the assignment of `trial` (one of this result's finished trials, say from
    /// [`best_where`](Self::best_where)) into `program`'s context as [`apply`](Self::apply)
    /// does, with the trial's first objective as `tuned_score`.
    pub fn apply_trial<P: BaseProgram + ?Sized>(
        &self,
        program: &P,
        trial: &Trial,
    ) -> Result<Vec<u64>> {
        let ours = self
            .trials
            .iter()
            .any(|t| t.index == trial.index && t.assignment == trial.assignment);
        if !ours || trial.state != TrialState::Finished {
            self.check_fits(program.program_spec())?;
            return Err(Error::tuning(format!(
                "trial {} is not a finished trial of this result",
                trial.index
            )));
        }
        self.write(program, &trial.assignment, trial.score)
    }

    fn write<P: BaseProgram + ?Sized>(
        &self,
        program: &P,
        assignment: &BTreeMap<String, Value>,
        score: f64,
    ) -> Result<Vec<u64>> {
        self.check_fits(program.program_spec())?;
        let metadata = BTreeMap::from([
            ("tuned_at".to_owned(), rfc3339(SystemTime::now())),
            ("tuned_score".to_owned(), score.to_string()),
            ("tuner".to_owned(), self.tuner.clone()),
        ]);
        program.program_context().update_many_with(
            assignment.iter().map(|(k, v)| (k.as_str(), v.clone())),
            &metadata,
        )
    }

    /// The result as versioned JSON (format [`RESULT_FORMAT`], version [`RESULT_VERSION`]),
    /// with the declaration it was tuned for.
    pub fn to_json(&self) -> String {
        let assignment = |a: &BTreeMap<String, Value>| -> BTreeMap<String, Json> {
            a.iter()
                .map(|(k, v)| (k.clone(), value_json::to_json(v)))
                .collect()
        };
        let saved = Saved {
            format: RESULT_FORMAT.to_owned(),
            version: RESULT_VERSION,
            program: self.program.clone(),
            variables: self.declaration.clone(),
            metric: self.metric.clone(),
            tuner: self.tuner.clone(),
            seed: self.seed,
            objectives: self
                .objectives
                .iter()
                .map(|(direction, measure)| SavedObjective {
                    direction: *direction,
                    measure: measure.clone(),
                })
                .collect(),
            prefer_lower: self.ties.prefer_lower.map(|c| c.name().to_owned()),
            best: self.best.as_ref().map(assignment),
            best_score: self.best_score,
            best_trial: self.best_trial,
            duration: self.duration,
            trials: self
                .trials
                .iter()
                .map(|t| SavedTrial {
                    index: t.index,
                    assignment: assignment(&t.assignment),
                    score: t.score,
                    values: t.values.clone(),
                    state: t.state.name().to_owned(),
                    rung: t.rung,
                    complete: t.complete,
                    examples: t.examples,
                    errors: t.errors,
                    tokens: t.tokens,
                    duration: t.duration,
                    latency: t.latency,
                    first_error: t.first_error.clone(),
                    grid_point: t.grid_point,
                    retry_of: t.retry_of,
                })
                .collect(),
        };
        // Only strings, numbers and maps of them: serializing cannot fail.
        serde_json::to_string_pretty(&saved).unwrap_or_default()
    }

    /// Reads a result saved by [`to_json`](Self::to_json) for `program`: the format must be
    /// [`RESULT_FORMAT`] and the version one this build reads, and the declaration it was
    /// tuned for must be `program`'s (the error names every difference); every value is
    /// validated against its variable.
    pub fn from_json<P: BaseProgram + ?Sized>(text: &str, program: &P) -> Result<Self> {
        let spec = program.program_spec();
        let saved: Saved = serde_json::from_str(text)
            .map_err(|e| Error::tuning_with("malformed tuning result", e))?;
        if saved.format != RESULT_FORMAT || !(1..=RESULT_VERSION).contains(&saved.version) {
            return Err(Error::tuning(format!(
                "a tuning result of format `{}` version {} cannot be read; this build reads `{RESULT_FORMAT}` versions 1 to {RESULT_VERSION}",
                saved.format, saved.version
            )));
        }
        let read = |a: BTreeMap<String, Json>| -> Result<BTreeMap<String, Value>> {
            a.into_iter()
                .map(|(name, json)| {
                    let var = spec.variable(&name).ok_or_else(|| {
                        Error::tuning(format!(
                            "the result sets variable `{name}`, which program `{}` does not declare",
                            spec.name
                        ))
                    })?;
                    let value = value_json::from_json(var.ty, &json)
                        .map_err(|e| Error::tuning(format!("`{name}`: {e}")))?;
                    Ok((name, var.validate(value)?))
                })
                .collect()
        };
        let prefer_lower = match saved.prefer_lower.as_deref() {
            None => None,
            Some("tokens") => Some(Cost::tokens()),
            Some("latency") => Some(Cost::latency()),
            Some(other) => {
                return Err(Error::tuning(format!(
                    "unknown cost `{other}` in `prefer_lower`; expected `tokens` or `latency`"
                )));
            }
        };
        // Version 1 had one objective: the metric, maximized.
        let objectives = if saved.objectives.is_empty() {
            vec![(Direction::Maximize, saved.metric.clone())]
        } else {
            saved
                .objectives
                .into_iter()
                .map(|o| (o.direction, o.measure))
                .collect()
        };
        let result = Self {
            program: saved.program,
            metric: saved.metric,
            tuner: saved.tuner,
            seed: saved.seed,
            objectives,
            best: saved.best.map(read).transpose()?,
            best_score: saved.best_score,
            best_trial: saved.best_trial,
            duration: saved.duration,
            declaration: saved.variables,
            trials: Vec::new(),
            ties: TieBreak { prefer_lower },
        };
        result.check_fits(spec)?;
        let trials = saved
            .trials
            .into_iter()
            .map(|t| {
                let state = TrialState::parse(&t.state).ok_or_else(|| {
                    Error::tuning(format!(
                        "trial {}: unknown state `{}`; expected `running`, `finished` or `failed`",
                        t.index, t.state
                    ))
                })?;
                Ok(Trial {
                    index: t.index,
                    assignment: read(t.assignment)?,
                    score: t.score,
                    values: if t.values.is_empty() && state == TrialState::Finished {
                        vec![t.score]
                    } else {
                        t.values
                    },
                    state,
                    rung: t.rung,
                    complete: t.complete,
                    examples: t.examples,
                    errors: t.errors,
                    tokens: t.tokens,
                    duration: t.duration,
                    latency: t.latency,
                    first_error: t.first_error,
                    grid_point: t.grid_point,
                    retry_of: t.retry_of,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { trials, ..result })
    }

    /// Saves [`to_json`](Self::to_json) to `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json()).map_err(|e| {
            Error::tuning(format!(
                "cannot write the result to {}: {e}",
                path.display()
            ))
        })
    }

    /// Loads a result saved for `program` (see [`from_json`](Self::from_json)).
    pub fn load<P: BaseProgram + ?Sized>(path: impl AsRef<Path>, program: &P) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::tuning_with(format!("cannot read a result from {}", path.display()), e)
        })?;
        Self::from_json(&text, program).map_err(|e| match e {
            Error::Tuning { message, source } => Error::Tuning {
                message: format!("{}: {message}", path.display()),
                source,
            },
            e => Error::tuning(format!("{}: {}", path.display(), strip(&e))),
        })
    }
}

/// An error's message without the `tuning: ` prefix, to nest it.
fn strip(e: &Error) -> String {
    let text = e.to_string();
    text.strip_prefix("tuning: ")
        .map_or(text.clone(), str::to_owned)
}

impl fmt::Display for TuneResult {
    /// The best assignment and score, then one row per trial.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tuned `{}` with {} ({})",
            self.program, self.tuner, self.metric
        )?;
        match (&self.best, self.best_score, self.best_trial) {
            (Some(best), Some(score), Some(trial)) => {
                let values: Vec<String> = best.iter().map(|(k, v)| format!("{k}={v}")).collect();
                writeln!(
                    f,
                    "best score   {score:.4} (trial {trial}): {}",
                    values.join(" ")
                )?;
            }
            _ => writeln!(f, "best score   none")?,
        }
        writeln!(
            f,
            "trials       {} ({} examples evaluated, {:.2?})",
            self.trials.len(),
            self.examples_evaluated(),
            self.duration
        )?;
        if self.objectives.len() > 1 {
            let names: Vec<String> = self
                .objectives
                .iter()
                .map(|(d, m)| format!("{d} {m}"))
                .collect();
            writeln!(f, "objectives   {}", names.join(", "))?;
        }
        for t in &self.trials {
            let values: Vec<String> = t
                .assignment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let scores: Vec<String> = t.values.iter().map(|v| format!("{v:.4}")).collect();
            let note = match t.state {
                TrialState::Running => " (running)",
                TrialState::Failed => " (failed)",
                TrialState::Finished if !t.complete => " (cut)",
                TrialState::Finished => "",
            };
            writeln!(
                f,
                "  #{:<4} {}  {:>4} examples{note}  {}",
                t.index,
                if scores.is_empty() {
                    "-".to_owned()
                } else {
                    scores.join(" ")
                },
                t.examples,
                values.join(" ")
            )?;
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    format: String,
    version: u32,
    program: String,
    variables: Vec<DeclaredVariable>,
    metric: String,
    tuner: String,
    seed: u64,
    #[serde(default)]
    objectives: Vec<SavedObjective>,
    #[serde(default)]
    prefer_lower: Option<String>,
    best: Option<BTreeMap<String, Json>>,
    best_score: Option<f64>,
    best_trial: Option<usize>,
    #[serde(with = "millis", rename = "duration_ms")]
    duration: Duration,
    trials: Vec<SavedTrial>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedTrial {
    index: usize,
    assignment: BTreeMap<String, Json>,
    score: f64,
    #[serde(default)]
    values: Vec<f64>,
    #[serde(default = "finished")]
    state: String,
    rung: usize,
    complete: bool,
    examples: usize,
    errors: usize,
    tokens: TokenUsage,
    #[serde(with = "millis", rename = "duration_ms")]
    duration: Duration,
    #[serde(with = "millis", rename = "latency_ms", default)]
    latency: Duration,
    first_error: Option<String>,
    #[serde(default)]
    grid_point: Option<usize>,
    #[serde(default)]
    retry_of: Option<usize>,
}

/// The state of a trial saved by version 1, which saved finished trials only.
fn finished() -> String {
    TrialState::Finished.name().to_owned()
}
