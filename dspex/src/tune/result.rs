//! The result of a tuning run: every trial, the best assignment and score; applying it to a
//! program's context atomically, with metadata; saving it to and loading it from versioned JSON
//! that records the declaration it was tuned for.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use dspex_core::Value;
use dspex_core::program::ProgramSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::eval::{TokenUsage, millis};
use crate::program::BaseProgram;
use crate::program::declaration::{DeclaredVariable, variable_differences};
use crate::util::time::rfc3339;
use crate::util::value_json;

/// The `format` of a saved tuning result.
pub const RESULT_FORMAT: &str = "dspex.tune.result";

/// The version of the saved format this build writes and reads.
pub const RESULT_VERSION: u32 = 1;

/// One trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Trial {
    /// Its position, from 0, in proposal order.
    pub index: usize,
    /// The values it ran with: the searched variables' and the fixed ones.
    pub assignment: BTreeMap<String, Value>,
    /// Its mean score over the examples it was evaluated on.
    pub score: f64,
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
    /// The first error of its examples, if any.
    pub first_error: Option<String>,
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
    /// The best assignment: the best score among the trials that reached the full evaluation
    /// (the earliest on ties); `None` without trials.
    pub best: Option<BTreeMap<String, Value>>,
    /// Its score.
    pub best_score: Option<f64>,
    /// Its trial's index.
    pub best_trial: Option<usize>,
    /// Every trial, in proposal order.
    pub trials: Vec<Trial>,
    /// Wall time of the tuning run.
    pub duration: Duration,
    declaration: Vec<DeclaredVariable>,
}

impl TuneResult {
    pub(crate) fn new(
        spec: &ProgramSpec,
        metric: String,
        tuner: String,
        seed: u64,
        trials: Vec<Trial>,
        duration: Duration,
    ) -> Self {
        let best =
            trials
                .iter()
                .filter(|t| t.complete)
                .fold(None::<&Trial>, |best, t| match best {
                    Some(b) if b.score >= t.score => Some(b),
                    _ => Some(t),
                });
        Self {
            program: spec.name.clone(),
            metric,
            tuner,
            seed,
            best: best.map(|t| t.assignment.clone()),
            best_score: best.map(|t| t.score),
            best_trial: best.map(|t| t.index),
            duration,
            trials,
            declaration: spec.variables.iter().map(DeclaredVariable::of).collect(),
        }
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
        self.check_fits(program.program_spec())?;
        let (Some(best), Some(score)) = (&self.best, self.best_score) else {
            return Err(Error::tuning(
                "the result has no best assignment to apply (no trial finished)".to_owned(),
            ));
        };
        let metadata = BTreeMap::from([
            ("tuned_at".to_owned(), rfc3339(SystemTime::now())),
            ("tuned_score".to_owned(), score.to_string()),
            ("tuner".to_owned(), self.tuner.clone()),
        ]);
        program
            .program_context()
            .update_many_with(best.iter().map(|(k, v)| (k.as_str(), v.clone())), &metadata)
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
                    rung: t.rung,
                    complete: t.complete,
                    examples: t.examples,
                    errors: t.errors,
                    tokens: t.tokens,
                    duration: t.duration,
                    first_error: t.first_error.clone(),
                })
                .collect(),
        };
        // Only strings, numbers and maps of them: serializing cannot fail.
        serde_json::to_string_pretty(&saved).unwrap_or_default()
    }

    /// Reads a result saved by [`to_json`](Self::to_json) for `program`: the format and
    /// version must be this build's, and the declaration it was tuned for must be `program`'s
    /// (the error names every difference); every value is validated against its variable.
    pub fn from_json<P: BaseProgram + ?Sized>(text: &str, program: &P) -> Result<Self> {
        let spec = program.program_spec();
        let saved: Saved = serde_json::from_str(text)
            .map_err(|e| Error::tuning_with("malformed tuning result", e))?;
        if saved.format != RESULT_FORMAT || saved.version != RESULT_VERSION {
            return Err(Error::tuning(format!(
                "a tuning result of format `{}` version {} cannot be read; this build reads `{RESULT_FORMAT}` version {RESULT_VERSION}",
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
        let result = Self {
            program: saved.program,
            metric: saved.metric,
            tuner: saved.tuner,
            seed: saved.seed,
            best: saved.best.map(read).transpose()?,
            best_score: saved.best_score,
            best_trial: saved.best_trial,
            duration: saved.duration,
            declaration: saved.variables,
            trials: Vec::new(),
        };
        result.check_fits(spec)?;
        let trials = saved
            .trials
            .into_iter()
            .map(|t| {
                Ok(Trial {
                    index: t.index,
                    assignment: read(t.assignment)?,
                    score: t.score,
                    rung: t.rung,
                    complete: t.complete,
                    examples: t.examples,
                    errors: t.errors,
                    tokens: t.tokens,
                    duration: t.duration,
                    first_error: t.first_error,
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
        for t in &self.trials {
            let values: Vec<String> = t
                .assignment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            writeln!(
                f,
                "  #{:<4} {:.4}  {:>4} examples{}  {}",
                t.index,
                t.score,
                t.examples,
                if t.complete { "" } else { " (cut)" },
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
    rung: usize,
    complete: bool,
    examples: usize,
    errors: usize,
    tokens: TokenUsage,
    #[serde(with = "millis", rename = "duration_ms")]
    duration: Duration,
    first_error: Option<String>,
}
