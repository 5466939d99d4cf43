//! A program's state in one versioned JSON file: the values of its variables, the compiled
//! state of its python steps and what its native LM steps learned, with the declaration they
//! belong to.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use dspex_core::Value;
use dspex_core::program::StepKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::dspy::{native_state_json, read_native_state};
use crate::error::{Error, Result};
use crate::lm::PredictorState;
use crate::program::declaration::{
    DeclaredStep, DeclaredVariable, step_differences, variable_differences,
};
use crate::program::{BaseProgram, CompiledState};
use crate::util::time::rfc3339;
use crate::util::value_json;

/// The `format` of a saved program state.
pub const PROGRAM_STATE_FORMAT: &str = "dspex.program.state";

/// The version of the saved format this build writes and reads.
pub const PROGRAM_STATE_VERSION: u32 = 1;

/// What a program learned: its variables' values and its python steps' compiled states, with
/// the declaration they belong to. Read-only variables are part of the declaration only: no
/// optimizer changes them, and loading never writes them.
///
/// [`AnyProgram::save_state`](crate::AnyProgram::save_state) writes it to a file and [`AnyProgram::load_state`](crate::AnyProgram::load_state) loads one
/// back; [`to_json`](Self::to_json) and [`from_json`](Self::from_json) give the text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramState {
    format: String,
    version: u32,
    /// The program's name.
    pub program: String,
    /// When it was taken (RFC 3339).
    pub saved_at: String,
    variables: Vec<DeclaredVariable>,
    steps: Vec<DeclaredStep>,
    /// The value of each variable that is not read-only, by name.
    values: BTreeMap<String, Json>,
    /// The compiled state of each python step that has one, by step name.
    compiled: BTreeMap<String, CompiledState>,
    /// What each native `Predict` or `ChainOfThought` step learned (demos, instructions, field
    /// texts), as DSPy dumps a module's state, by step name; absent when none did.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    native: BTreeMap<String, Map<String, Json>>,
}

impl ProgramState {
    /// The state of `program` now: its variables' current values and its python steps'
    /// compiled states.
    pub fn of<P: BaseProgram + ?Sized>(program: &P) -> Result<Self> {
        let spec = program.program_spec();
        let ctx = program.program_context();
        let values = spec
            .variables
            .iter()
            .filter(|v| !v.readonly)
            .map(|v| {
                Ok((
                    v.name.clone(),
                    value_json::to_json(&ctx.get_value(&v.name)?),
                ))
            })
            .collect::<Result<_>>()?;
        let compiled = program
            .program_python_steps()
            .into_iter()
            .filter_map(|step| Some((step.step().to_owned(), step.compiled_state()?)))
            .collect();
        let native = program
            .program_native_steps()
            .into_iter()
            .filter_map(|(step, _)| Some((step.to_owned(), native_state_json(program, step)?)))
            .collect();
        Ok(Self {
            format: PROGRAM_STATE_FORMAT.to_owned(),
            version: PROGRAM_STATE_VERSION,
            program: spec.name.clone(),
            saved_at: rfc3339(SystemTime::now()),
            variables: spec.variables.iter().map(DeclaredVariable::of).collect(),
            steps: spec.steps.iter().map(DeclaredStep::of).collect(),
            values,
            compiled,
            native,
        })
    }

    /// The saved value of variable `name`, if the state has one.
    pub fn value(&self, name: &str) -> Option<&Json> {
        self.values.get(name)
    }

    /// The compiled state of step `name`, if it has one.
    pub fn compiled(&self, step: &str) -> Option<&CompiledState> {
        self.compiled.get(step)
    }

    /// What native step `step` learned, as DSPy dumps a module's state, if it learned anything.
    pub fn native(&self, step: &str) -> Option<&Map<String, Json>> {
        self.native.get(step)
    }

    /// The state as versioned JSON (format [`PROGRAM_STATE_FORMAT`], version
    /// [`PROGRAM_STATE_VERSION`]).
    pub fn to_json(&self) -> String {
        // Only strings, numbers, JSON values and maps of them: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a state saved by [`to_json`](Self::to_json): the format and version must be this
    /// build's. Whether it fits a program is checked when it is loaded.
    pub fn from_json(text: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Header {
            format: Option<String>,
            version: Option<u32>,
        }
        let header: Header = serde_json::from_str(text)
            .map_err(|e| Error::program_state_with("malformed program state", e))?;
        if header.format.as_deref() != Some(PROGRAM_STATE_FORMAT)
            || header.version != Some(PROGRAM_STATE_VERSION)
        {
            return Err(Error::program_state(format!(
                "a file of format {} version {} cannot be read; this build reads `{PROGRAM_STATE_FORMAT}` version {PROGRAM_STATE_VERSION}",
                header
                    .format
                    .map_or_else(|| "(none)".to_owned(), |f| format!("`{f}`")),
                header
                    .version
                    .map_or_else(|| "(none)".to_owned(), |v| v.to_string()),
            )));
        }
        serde_json::from_str(text)
            .map_err(|e| Error::program_state_with("malformed program state", e))
    }

    /// The variable values to write into `program`, every one validated, after checking that
    /// the state fits `program`'s declaration (the error names every difference).
    fn checked_values<P: BaseProgram + ?Sized>(&self, program: &P) -> Result<Vec<(String, Value)>> {
        let spec = program.program_spec();
        let mut differences =
            variable_differences("the state", &self.program, &self.variables, spec);
        differences.extend(step_differences("the state", &self.steps, spec));
        for name in self.compiled.keys() {
            if let Some(step) = spec.steps.iter().find(|s| s.name == *name)
                && !matches!(step.kind, StepKind::Python { .. })
            {
                differences.push(format!(
                    "the state has a compiled state for step `{name}`, which is not a python step"
                ));
            }
        }
        if !differences.is_empty() {
            return Err(Error::program_state(format!(
                "the state does not fit program `{}`: {}",
                spec.name,
                differences.join("; ")
            )));
        }
        let mut values = Vec::with_capacity(self.values.len());
        for var in &spec.variables {
            match (self.values.get(&var.name), var.readonly) {
                (Some(_), true) => {
                    return Err(Error::program_state(format!(
                        "the state sets read-only variable `{}`",
                        var.name
                    )));
                }
                (None, false) => {
                    return Err(Error::program_state(format!(
                        "the state has no value for variable `{}`",
                        var.name
                    )));
                }
                (Some(json), false) => {
                    let value = value_json::from_json(var.ty, json)
                        .and_then(|v| var.validate(v).map_err(|e| e.to_string()))
                        .map_err(|e| {
                            Error::program_state(format!("variable `{}`: {e}", var.name))
                        })?;
                    values.push((var.name.clone(), value));
                }
                (None, true) => {}
            }
        }
        if let Some(extra) = self.values.keys().find(|n| spec.variable(n).is_none()) {
            return Err(Error::program_state(format!(
                "the state sets variable `{extra}`, which program `{}` does not declare",
                spec.name
            )));
        }
        Ok(values)
    }

    /// Loads the state into `program`, all or nothing as far as it can be checked first: the
    /// declaration must match, every value must be valid, and every compiled state must load
    /// into its step's module (tried in a worker, in a module of its own), and every native
    /// step's learned state must fit its step. Then the values are written atomically (with
    /// metadata `loaded_at` and `loaded_from`), each native `Predict` or `ChainOfThought` step
    /// takes its learned state and each python step its compiled state (a step the state has
    /// none for loses its own).
    pub async fn apply<P: BaseProgram + ?Sized>(&self, program: &P, source: &str) -> Result<()> {
        let values = self.checked_values(program)?;
        let mut natives = Vec::new();
        for (step, module) in program.program_native_steps() {
            let Some(predictor) = module.dyn_predictor() else {
                if self.native.contains_key(step) {
                    return Err(Error::program_state(format!(
                        "the state has a learned state for native step `{step}`, which is no Predict or ChainOfThought"
                    )));
                }
                continue;
            };
            natives.push(match self.native.get(step) {
                Some(state) => {
                    read_native_state(program, step, state.clone()).map_err(|e| match e {
                        Error::ProgramState { message, source } => Error::ProgramState {
                            message: format!("the learned state of step `{step}` {message}"),
                            source,
                        },
                        e => e,
                    })?
                }
                None => (predictor, PredictorState::default()),
            });
        }
        if let Some(other) = self.native.keys().find(|name| {
            !program
                .program_native_steps()
                .iter()
                .any(|(s, _)| s == name)
        }) {
            return Err(Error::program_state(format!(
                "the state has a learned state for step `{other}`, which is no native step of program `{}`",
                program.program_spec().name
            )));
        }
        let steps = program.program_python_steps();
        for step in &steps {
            if let Some(state) = self.compiled.get(step.step()) {
                step.check_state(state).await?;
            }
        }
        if !values.is_empty() {
            let metadata = BTreeMap::from([
                ("loaded_at".to_owned(), rfc3339(SystemTime::now())),
                ("loaded_from".to_owned(), source.to_owned()),
            ]);
            program.program_context().update_many_with(
                values.iter().map(|(k, v)| (k.as_str(), v.clone())),
                &metadata,
            )?;
        }
        for (predictor, learned) in natives {
            predictor.set_predictor_state(learned);
        }
        for step in steps {
            step.set_compiled_state(self.compiled.get(step.step()).cloned())
                .await?;
        }
        Ok(())
    }

    /// Saves [`to_json`](Self::to_json) to `path` (written to a temporary file first, then
    /// renamed, so that a failed save leaves the old file whole).
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.to_json())
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                Error::program_state_with(format!("cannot write {}", path.display()), e)
            })
    }

    /// Reads a state from `path` (see [`from_json`](Self::from_json)).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::program_state_with(format!("cannot read {}", path.display()), e))?;
        Self::from_json(&text).map_err(|e| match e {
            Error::ProgramState { message, source } => Error::ProgramState {
                message: format!("{}: {message}", path.display()),
                source,
            },
            e => e,
        })
    }
}
