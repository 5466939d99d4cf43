//! A program's declaration as saved files record it (a tuning result, a program state): its
//! variables' types and constraints, its steps' modules and signatures, and what differs
//! between a saved declaration and a program's.

use dspex_core::VariableSpec;
use dspex_core::program::{ProgramSpec, StepKind, StepSpec};
use serde::{Deserialize, Serialize};

/// A variable as a saved file records its declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeclaredVariable {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) ty: String,
    pub(crate) constraints: String,
}

impl DeclaredVariable {
    pub(crate) fn of(var: &VariableSpec) -> Self {
        Self {
            name: var.name.clone(),
            ty: var.ty.name().to_owned(),
            constraints: var.constraints.to_string(),
        }
    }

    fn describe(&self) -> String {
        format!("a {} variable (constraints: {})", self.ty, self.constraints)
    }
}

/// A step as a saved file records its declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeclaredStep {
    pub(crate) name: String,
    /// `python ChainOfThought`, `python @reasoning`, `native Classifier`.
    pub(crate) module: String,
    pub(crate) signature: String,
}

impl DeclaredStep {
    pub(crate) fn of(step: &StepSpec) -> Self {
        let module = match &step.kind {
            StepKind::Native { type_name } => format!("native {type_name}"),
            StepKind::Python { module } => format!("python {module}"),
        };
        Self {
            name: step.name.clone(),
            module,
            signature: step.signature.to_string(),
        }
    }
}

/// What differs between the variables a file was saved with (`saved`, of program `program`)
/// and `spec`'s, one line per difference (empty when they match). `file` names the file in
/// the lines ("the result", "the state").
pub(crate) fn variable_differences(
    file: &str,
    program: &str,
    saved: &[DeclaredVariable],
    spec: &ProgramSpec,
) -> Vec<String> {
    let mut out = Vec::new();
    if program != spec.name {
        out.push(format!(
            "{file} was saved for program `{program}`, not `{}`",
            spec.name
        ));
    }
    for saved in saved {
        match spec.variables.iter().find(|v| v.name == saved.name) {
            None => out.push(format!(
                "variable `{}` is not declared by program `{}`",
                saved.name, spec.name
            )),
            Some(var) => {
                let now = DeclaredVariable::of(var);
                if now != *saved {
                    out.push(format!(
                        "variable `{}` was {}, program `{}` declares {}",
                        saved.name,
                        saved.describe(),
                        spec.name,
                        now.describe()
                    ));
                }
            }
        }
    }
    for var in &spec.variables {
        if !saved.iter().any(|d| d.name == var.name) {
            out.push(format!(
                "program `{}` declares variable `{}`, which {file} does not know",
                spec.name, var.name
            ));
        }
    }
    out
}

/// What differs between the steps a file was saved with and `spec`'s, one line per difference.
pub(crate) fn step_differences(
    file: &str,
    saved: &[DeclaredStep],
    spec: &ProgramSpec,
) -> Vec<String> {
    let mut out = Vec::new();
    for saved in saved {
        match spec.steps.iter().find(|s| s.name == saved.name) {
            None => out.push(format!(
                "step `{}` is not a step of program `{}`",
                saved.name, spec.name
            )),
            Some(step) => {
                let now = DeclaredStep::of(step);
                if now.module != saved.module {
                    out.push(format!(
                        "step `{}` was `{}`, program `{}` declares `{}`",
                        saved.name, saved.module, spec.name, now.module
                    ));
                }
                if now.signature != saved.signature {
                    out.push(format!(
                        "step `{}` had signature `{}`, program `{}` declares `{}`",
                        saved.name, saved.signature, spec.name, now.signature
                    ));
                }
            }
        }
    }
    for step in &spec.steps {
        if !saved.iter().any(|d| d.name == step.name) {
            out.push(format!(
                "program `{}` has step `{}`, which {file} does not know",
                spec.name, step.name
            ));
        }
    }
    out
}
