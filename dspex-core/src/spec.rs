//! A variable declaration (name, type, initial value, constraints, description, metadata) and
//! its checks.

use std::collections::BTreeMap;
use std::fmt;

use crate::constraints::{ConstraintIssue, ConstraintProblem, Constraints, Field};
use crate::validate::{ValidationError, validate};
use crate::value::{Value, VarType};

/// The longest variable name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// A variable declaration: everything needed to register a variable.
///
/// A declaration marked [`readonly`](Self::readonly) declares a variable that only Rust code
/// may write: a write from Python is refused and changes nothing.
///
/// ```
/// use dspex_core::{Constraints, VariableSpec, VarType};
///
/// let spec = VariableSpec::new("temperature", VarType::Float, 0.7)
///     .with_constraints(Constraints::range(0.0, 2.0))
///     .with_description("sampling temperature");
/// assert!(spec.check().is_ok());
///
/// let bad = VariableSpec::new("temperature", VarType::Float, 2.5)
///     .with_constraints(Constraints::range(0.0, 2.0));
/// assert_eq!(
///     bad.check().unwrap_err().to_string(),
///     "invalid variable `temperature`: initial value 2.5 is above max 2.0"
/// );
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct VariableSpec {
    /// The name, unique in a context.
    pub name: String,
    /// The type.
    pub ty: VarType,
    /// The initial value.
    pub initial: Value,
    /// The constraints.
    pub constraints: Constraints,
    /// A human description.
    pub description: Option<String>,
    /// String metadata.
    pub metadata: BTreeMap<String, String>,
    /// Only Rust code may write the variable; Python's writes are refused.
    pub readonly: bool,
}

impl VariableSpec {
    /// A declaration without constraints, description or metadata.
    pub fn new(name: impl Into<String>, ty: VarType, initial: impl Into<Value>) -> Self {
        Self {
            name: name.into(),
            ty,
            initial: initial.into(),
            constraints: Constraints::none(),
            description: None,
            metadata: BTreeMap::new(),
            readonly: false,
        }
    }

    /// Sets the constraints.
    #[must_use]
    pub fn with_constraints(mut self, constraints: Constraints) -> Self {
        self.constraints = constraints;
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Marks the variable read-only: only Rust code may write it, and a write from Python is
    /// refused and changes nothing.
    ///
    /// ```
    /// use dspex_core::{VariableSpec, VarType};
    ///
    /// let spec = VariableSpec::new("model", VarType::String, "gpt-4o-mini").readonly();
    /// assert!(spec.readonly);
    /// ```
    #[must_use]
    pub fn readonly(mut self) -> Self {
        self.readonly = true;
        self
    }

    /// Checks the whole declaration: the name, the constraints, then the initial value against
    /// them. On success returns the initial value in canonical form; on failure every issue.
    pub fn check(&self) -> Result<Value, SpecError> {
        let mut issues = Vec::new();
        if let Err(reason) = check_name(&self.name) {
            issues.push(SpecIssue {
                at: Field::Name,
                problem: SpecProblem::InvalidName(reason),
            });
        }
        let constraint_issues = self.constraints.check(self.ty);
        let constraints_sound = constraint_issues.is_empty();
        issues.extend(constraint_issues.into_iter().map(SpecIssue::from));
        let mut initial = None;
        // Unsound constraints would only repeat themselves through the initial value.
        if constraints_sound {
            match validate(&self.name, self.ty, &self.constraints, self.initial.clone()) {
                Ok(v) => initial = Some(v),
                Err(e) => issues.push(SpecIssue {
                    at: Field::Initial,
                    problem: SpecProblem::Initial(e),
                }),
            }
        }
        match initial {
            Some(v) if issues.is_empty() => Ok(v),
            _ => Err(SpecError {
                variable: self.name.clone(),
                issues,
            }),
        }
    }

    /// Validates a value against this declaration's type and constraints.
    pub fn validate(&self, value: Value) -> Result<Value, ValidationError> {
        validate(&self.name, self.ty, &self.constraints, value)
    }
}

/// Checks a variable name: 1 to [`MAX_NAME_LEN`] bytes, an ASCII letter or `_` first, then ASCII
/// letters, digits, `_`, `.` or `-`. Glob patterns in `list` rely on names never containing
/// `*`, `?` or `[`.
///
/// ```
/// assert!(dspex_core::check_name("max_tokens").is_ok());
/// assert_eq!(
///     dspex_core::check_name("2fast").unwrap_err(),
///     "a name must start with an ASCII letter or `_`"
/// );
/// ```
pub fn check_name(name: &str) -> Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("a name must not be empty".to_owned());
    };
    if name.len() > MAX_NAME_LEN {
        return Err(format!("a name must be at most {MAX_NAME_LEN} bytes long"));
    }
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err("a name must start with an ASCII letter or `_`".to_owned());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "a name may only contain ASCII letters, digits, `_`, `.` and `-`, found {c:?}"
        ));
    }
    Ok(())
}

/// Every problem with one variable declaration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct SpecError {
    /// The variable's name.
    pub variable: String,
    /// The problems, in declaration order.
    pub issues: Vec<SpecIssue>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid variable `{}`: ", self.variable)?;
        for (i, issue) in self.issues.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

/// One problem with a variable declaration, and where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{problem}")]
pub struct SpecIssue {
    /// The part of the declaration at fault.
    pub at: Field,
    /// What is wrong.
    pub problem: SpecProblem,
}

impl From<ConstraintIssue> for SpecIssue {
    fn from(issue: ConstraintIssue) -> Self {
        SpecIssue {
            at: issue.at,
            problem: SpecProblem::Constraint(issue.problem),
        }
    }
}

/// What is wrong with a variable declaration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecProblem {
    /// The name breaks [`check_name`].
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// The constraints themselves are unsound.
    #[error(transparent)]
    Constraint(ConstraintProblem),
    /// The initial value breaks the type or the constraints.
    #[error("initial value {}", .0.describe_value())]
    Initial(ValidationError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sound_spec_returns_the_canonical_initial_value() {
        let spec = VariableSpec::new("t", VarType::Float, 1);
        assert_eq!(spec.check(), Ok(Value::Float(1.0)));
    }

    #[test]
    fn constraint_issues_suppress_the_initial_value_check() {
        let spec =
            VariableSpec::new("n", VarType::Integer, 5).with_constraints(Constraints::range(10, 1));
        let err = spec.check().unwrap_err();
        assert_eq!(err.issues.len(), 1);
        assert_eq!(
            err.to_string(),
            "invalid variable `n`: `min` 10 is greater than `max` 1"
        );
    }

    #[test]
    fn every_issue_is_reported() {
        let spec = VariableSpec::new("", VarType::Choice, "x")
            .with_constraints(Constraints::choices(["a", "a"]));
        let err = spec.check().unwrap_err();
        let at: Vec<Field> = err.issues.iter().map(|i| i.at).collect();
        assert_eq!(at, [Field::Name, Field::Choice(1)]);
    }

    #[test]
    fn names() {
        for ok in ["a", "_x", "model.v2", "max-tokens", "A9"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "9a", "a b", "a*", "é", &"a".repeat(MAX_NAME_LEN + 1)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
