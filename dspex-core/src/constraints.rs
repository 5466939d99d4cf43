//! Constraints a variable's values must satisfy, and which constraint applies to which type.

use std::fmt;
use std::str::FromStr;

use regex::Regex;

use crate::value::VarType;

/// A numeric bound (`min` or `max`): integer or float, as written.
///
/// A `float` variable accepts either (integers are widened); an `integer` variable only accepts
/// integer bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer bound.
    Int(i64),
    /// A float bound.
    Float(f64),
}

impl Number {
    /// The bound as a float (integers are widened).
    #[allow(clippy::cast_precision_loss)] // documented widening, as for values
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x:?}"),
        }
    }
}

impl From<i64> for Number {
    fn from(v: i64) -> Self {
        Number::Int(v)
    }
}
impl From<i32> for Number {
    fn from(v: i32) -> Self {
        Number::Int(i64::from(v))
    }
}
impl From<f64> for Number {
    fn from(v: f64) -> Self {
        Number::Float(v)
    }
}

/// A regular expression that must match a whole string value.
///
/// The source is kept as written; matching is anchored at both ends, so `pattern: "[a-z]+"`
/// rejects `"abc1"`.
///
/// ```
/// use dspex_core::Pattern;
///
/// let p = Pattern::new("[a-z]+").unwrap();
/// assert!(p.is_match("abc"));
/// assert!(!p.is_match("abc1"));
/// assert!(Pattern::new("[a-").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    anchored: Regex,
}

/// The error of compiling an invalid regular expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid regex `{source_text}`: {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub source_text: String,
    /// What the regex compiler said, on one line.
    pub reason: String,
}

impl Pattern {
    /// Compiles `source`, anchored at both ends.
    pub fn new(source: &str) -> Result<Self, PatternError> {
        let error = |e: regex::Error| PatternError {
            source_text: source.to_owned(),
            reason: one_line_regex_error(&e),
        };
        // Compile the source alone first so that errors point into what the user wrote.
        Regex::new(source).map_err(error)?;
        let anchored = Regex::new(&format!("^(?:{source})$")).map_err(error)?;
        Ok(Pattern {
            source: source.to_owned(),
            anchored,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches the whole of `value`.
    pub fn is_match(&self, value: &str) -> bool {
        self.anchored.is_match(value)
    }
}

fn one_line_regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    // regex's messages are multi-line ascii art; the last line says what went wrong.
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map_or(text.clone(), |l| {
            l.trim().trim_start_matches("error: ").to_owned()
        })
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// The constraints of a variable. Every field is optional; which ones may be set depends on the
/// variable's type (see [`ConstraintKey::applies_to`]).
///
/// ```
/// use dspex_core::{Constraints, VarType};
///
/// let c = Constraints::range(0.0, 2.0);
/// assert!(c.check(VarType::Float).is_empty());
/// // `choices` does not apply to a float variable.
/// let c = c.with_choices(["a", "b"]);
/// assert_eq!(
///     c.check(VarType::Float)[0].to_string(),
///     "constraint `choices` does not apply to a float variable; expected one of `min`, `max`, `description`, `readonly`"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Constraints {
    /// Inclusive lower bound (`float`, `integer`).
    pub min: Option<Number>,
    /// Inclusive upper bound (`float`, `integer`).
    pub max: Option<Number>,
    /// Minimum length in chars (`string`).
    pub min_length: Option<u64>,
    /// Maximum length in chars (`string`).
    pub max_length: Option<u64>,
    /// Regex the whole value must match (`string`).
    pub pattern: Option<Pattern>,
    /// Allowed values (`choice`: required; `module`: defaults to the known DSPy modules).
    pub choices: Option<Vec<String>>,
    /// Exact length (`embedding`).
    pub dimensions: Option<u64>,
}

impl Constraints {
    /// No constraints.
    pub fn none() -> Self {
        Self::default()
    }

    /// An inclusive `min..=max` range.
    pub fn range(min: impl Into<Number>, max: impl Into<Number>) -> Self {
        Self::default().with_min(min).with_max(max)
    }

    /// A fixed set of choices.
    pub fn choices<S: Into<String>>(choices: impl IntoIterator<Item = S>) -> Self {
        Self::default().with_choices(choices)
    }

    /// Sets the inclusive lower bound.
    #[must_use]
    pub fn with_min(mut self, min: impl Into<Number>) -> Self {
        self.min = Some(min.into());
        self
    }

    /// Sets the inclusive upper bound.
    #[must_use]
    pub fn with_max(mut self, max: impl Into<Number>) -> Self {
        self.max = Some(max.into());
        self
    }

    /// Sets the minimum and maximum length, in chars.
    #[must_use]
    pub fn with_length(mut self, min_length: u64, max_length: u64) -> Self {
        self.min_length = Some(min_length);
        self.max_length = Some(max_length);
        self
    }

    /// Sets the regex the whole value must match.
    pub fn with_pattern(mut self, pattern: &str) -> Result<Self, PatternError> {
        self.pattern = Some(Pattern::new(pattern)?);
        Ok(self)
    }

    /// Sets the allowed values.
    #[must_use]
    pub fn with_choices<S: Into<String>>(mut self, choices: impl IntoIterator<Item = S>) -> Self {
        self.choices = Some(choices.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the exact embedding length.
    #[must_use]
    pub fn with_dimensions(mut self, dimensions: u64) -> Self {
        self.dimensions = Some(dimensions);
        self
    }

    /// The constraint keys that are set.
    pub fn keys(&self) -> Vec<ConstraintKey> {
        let set = [
            self.min.is_some(),
            self.max.is_some(),
            self.min_length.is_some(),
            self.max_length.is_some(),
            self.pattern.is_some(),
            self.choices.is_some(),
            self.dimensions.is_some(),
        ];
        ConstraintKey::ALL
            .into_iter()
            .zip(set)
            .filter_map(|(k, s)| s.then_some(k))
            .collect()
    }

    /// Checks the constraints themselves for a variable of type `ty`: keys that do not apply,
    /// non-integer bounds on integers, `min > max`, missing, empty or duplicate choices, zero
    /// dimensions. Returns every issue found (empty when the constraints are sound).
    pub fn check(&self, ty: VarType) -> Vec<ConstraintIssue> {
        let mut issues = Vec::new();
        for key in self.keys() {
            if !key.applies_to(ty) {
                issues.push(ConstraintIssue::new(
                    key.field(),
                    ConstraintProblem::NotApplicable { key, ty },
                ));
            }
        }
        if !issues.is_empty() {
            // A key on the wrong type makes every further rule meaningless.
            return issues;
        }
        match ty {
            VarType::Float | VarType::Integer => self.check_bounds(ty, &mut issues),
            VarType::String => {
                if let (Some(lo), Some(hi)) = (self.min_length, self.max_length)
                    && lo > hi
                {
                    issues.push(ConstraintIssue::new(
                        Field::MaxLength,
                        ConstraintProblem::MinLengthAboveMaxLength {
                            min_length: lo,
                            max_length: hi,
                        },
                    ));
                }
            }
            VarType::Choice | VarType::Module => self.check_choices(ty, &mut issues),
            VarType::Embedding => {
                if self.dimensions == Some(0) {
                    issues.push(ConstraintIssue::new(
                        Field::Dimensions,
                        ConstraintProblem::ZeroDimensions,
                    ));
                }
            }
            VarType::Boolean => {}
        }
        issues
    }

    fn check_bounds(&self, ty: VarType, issues: &mut Vec<ConstraintIssue>) {
        let mut sound = true;
        for (field, bound) in [(Field::Min, self.min), (Field::Max, self.max)] {
            let Some(bound) = bound else { continue };
            let key = if field == Field::Min { "min" } else { "max" };
            if ty == VarType::Integer && matches!(bound, Number::Float(_)) {
                sound = false;
                issues.push(ConstraintIssue::new(
                    field,
                    ConstraintProblem::BoundNotInteger { key, bound },
                ));
            } else if !bound.as_f64().is_finite() {
                sound = false;
                issues.push(ConstraintIssue::new(
                    field,
                    ConstraintProblem::BoundNotFinite { key, bound },
                ));
            }
        }
        if let (true, Some(min), Some(max)) = (sound, self.min, self.max) {
            let inverted = match (min, max) {
                (Number::Int(a), Number::Int(b)) => a > b,
                (a, b) => a.as_f64() > b.as_f64(),
            };
            if inverted {
                issues.push(ConstraintIssue::new(
                    Field::Max,
                    ConstraintProblem::MinAboveMax { min, max },
                ));
            }
        }
    }

    fn check_choices(&self, ty: VarType, issues: &mut Vec<ConstraintIssue>) {
        match &self.choices {
            None if ty == VarType::Choice => {
                issues.push(ConstraintIssue::new(
                    Field::Choices,
                    ConstraintProblem::ChoicesRequired,
                ));
            }
            None => {}
            Some(choices) if choices.is_empty() => {
                issues.push(ConstraintIssue::new(
                    Field::Choices,
                    ConstraintProblem::EmptyChoices,
                ));
            }
            Some(choices) => {
                for (i, choice) in choices.iter().enumerate() {
                    if choices[..i].contains(choice) {
                        issues.push(ConstraintIssue::new(
                            Field::Choice(i),
                            ConstraintProblem::DuplicateChoice {
                                choice: choice.clone(),
                            },
                        ));
                    }
                }
            }
        }
    }
}

impl fmt::Display for Constraints {
    /// Lists the set constraints: `min 0.0, max 2.0`, `choices ["a", "b"]`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(v) = self.min {
            parts.push(format!("min {v}"));
        }
        if let Some(v) = self.max {
            parts.push(format!("max {v}"));
        }
        if let Some(v) = self.min_length {
            parts.push(format!("min_length {v}"));
        }
        if let Some(v) = self.max_length {
            parts.push(format!("max_length {v}"));
        }
        if let Some(p) = &self.pattern {
            parts.push(format!("pattern `{}`", p.as_str()));
        }
        if let Some(c) = &self.choices {
            parts.push(format!("choices {c:?}"));
        }
        if let Some(v) = self.dimensions {
            parts.push(format!("dimensions {v}"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// A constraint key, as written in declarations and on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConstraintKey {
    /// `min`
    Min,
    /// `max`
    Max,
    /// `min_length`
    MinLength,
    /// `max_length`
    MaxLength,
    /// `pattern`
    Pattern,
    /// `choices`
    Choices,
    /// `dimensions`
    Dimensions,
}

impl ConstraintKey {
    /// Every constraint key.
    pub const ALL: [ConstraintKey; 7] = [
        ConstraintKey::Min,
        ConstraintKey::Max,
        ConstraintKey::MinLength,
        ConstraintKey::MaxLength,
        ConstraintKey::Pattern,
        ConstraintKey::Choices,
        ConstraintKey::Dimensions,
    ];

    /// The key as written (`min`, `max_length`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ConstraintKey::Min => "min",
            ConstraintKey::Max => "max",
            ConstraintKey::MinLength => "min_length",
            ConstraintKey::MaxLength => "max_length",
            ConstraintKey::Pattern => "pattern",
            ConstraintKey::Choices => "choices",
            ConstraintKey::Dimensions => "dimensions",
        }
    }

    /// Whether this constraint may be set on a variable of type `ty`.
    pub fn applies_to(self, ty: VarType) -> bool {
        use ConstraintKey as K;
        use VarType as T;
        matches!(
            (self, ty),
            (K::Min | K::Max, T::Float | T::Integer)
                | (K::MinLength | K::MaxLength | K::Pattern, T::String)
                | (K::Choices, T::Choice | T::Module)
                | (K::Dimensions, T::Embedding)
        )
    }

    /// The constraint keys that apply to `ty`.
    pub fn for_type(ty: VarType) -> Vec<ConstraintKey> {
        Self::ALL.into_iter().filter(|k| k.applies_to(ty)).collect()
    }

    /// Where an issue with this key is reported.
    pub fn field(self) -> Field {
        match self {
            ConstraintKey::Min => Field::Min,
            ConstraintKey::Max => Field::Max,
            ConstraintKey::MinLength => Field::MinLength,
            ConstraintKey::MaxLength => Field::MaxLength,
            ConstraintKey::Pattern => Field::Pattern,
            ConstraintKey::Choices => Field::Choices,
            ConstraintKey::Dimensions => Field::Dimensions,
        }
    }
}

impl fmt::Display for ConstraintKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ConstraintKey {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|k| k.name() == s).ok_or(())
    }
}

/// The keys a variable declaration of type `ty` accepts: its constraint keys plus
/// `description` and `readonly`, formatted for messages
/// (`` `min`, `max`, `description`, `readonly` ``).
pub fn declaration_keys_list(ty: VarType) -> String {
    ConstraintKey::for_type(ty)
        .into_iter()
        .map(ConstraintKey::name)
        .chain(["description", "readonly"])
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The part of a variable declaration an issue is about; tools map it to a source location
/// (the macros map it to the offending token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The variable's name.
    Name,
    /// Its initial value.
    Initial,
    /// The `min` constraint.
    Min,
    /// The `max` constraint.
    Max,
    /// The `min_length` constraint.
    MinLength,
    /// The `max_length` constraint.
    MaxLength,
    /// The `pattern` constraint.
    Pattern,
    /// The `choices` constraint as a whole.
    Choices,
    /// One entry of `choices`, by index.
    Choice(usize),
    /// The `dimensions` constraint.
    Dimensions,
}

/// One problem with a set of constraints, and where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{problem}")]
pub struct ConstraintIssue {
    /// The part of the declaration at fault.
    pub at: Field,
    /// What is wrong.
    pub problem: ConstraintProblem,
}

impl ConstraintIssue {
    fn new(at: Field, problem: ConstraintProblem) -> Self {
        Self { at, problem }
    }
}

/// What is wrong with a set of constraints.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConstraintProblem {
    /// A key that the variable's type does not have.
    #[error(
        "constraint `{key}` does not apply to {} {ty} variable; expected one of {}",
        ty.article(),
        declaration_keys_list(*ty)
    )]
    NotApplicable {
        /// The key that was set.
        key: ConstraintKey,
        /// The variable's type.
        ty: VarType,
    },
    /// A float bound on an integer variable.
    #[error("`{key}` of an integer variable must be an integer, found {bound}")]
    BoundNotInteger {
        /// `min` or `max`.
        key: &'static str,
        /// The bound as given.
        bound: Number,
    },
    /// A NaN or infinite bound.
    #[error("`{key}` must be a finite number, found {bound}")]
    BoundNotFinite {
        /// `min` or `max`.
        key: &'static str,
        /// The bound as given.
        bound: Number,
    },
    /// `min` greater than `max`.
    #[error("`min` {min} is greater than `max` {max}")]
    MinAboveMax {
        /// The lower bound.
        min: Number,
        /// The upper bound.
        max: Number,
    },
    /// `min_length` greater than `max_length`.
    #[error("`min_length` {min_length} is greater than `max_length` {max_length}")]
    MinLengthAboveMaxLength {
        /// The lower length bound.
        min_length: u64,
        /// The upper length bound.
        max_length: u64,
    },
    /// A `choice` variable without `choices`.
    #[error("a choice variable needs `choices`")]
    ChoicesRequired,
    /// `choices: []`.
    #[error("`choices` must not be empty")]
    EmptyChoices,
    /// The same choice listed twice.
    #[error("duplicate choice {choice:?}")]
    DuplicateChoice {
        /// The repeated choice.
        choice: String,
    },
    /// `dimensions: 0`.
    #[error("`dimensions` must be at least 1")]
    ZeroDimensions,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(c: &Constraints, ty: VarType) -> Vec<String> {
        c.check(ty).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn keys_apply_to_exactly_their_types() {
        let mut applying: Vec<(ConstraintKey, Vec<VarType>)> = ConstraintKey::ALL
            .into_iter()
            .map(|k| {
                (
                    k,
                    VarType::ALL
                        .into_iter()
                        .filter(|t| k.applies_to(*t))
                        .collect(),
                )
            })
            .collect();
        applying.sort_by_key(|(k, _)| k.name());
        assert_eq!(
            applying,
            vec![
                (
                    ConstraintKey::Choices,
                    vec![VarType::Choice, VarType::Module]
                ),
                (ConstraintKey::Dimensions, vec![VarType::Embedding]),
                (ConstraintKey::Max, vec![VarType::Float, VarType::Integer]),
                (ConstraintKey::MaxLength, vec![VarType::String]),
                (ConstraintKey::Min, vec![VarType::Float, VarType::Integer]),
                (ConstraintKey::MinLength, vec![VarType::String]),
                (ConstraintKey::Pattern, vec![VarType::String]),
            ]
        );
    }

    #[test]
    fn display_lists_what_is_set() {
        assert_eq!(Constraints::none().to_string(), "none");
        assert_eq!(Constraints::range(0.0, 2).to_string(), "min 0.0, max 2");
        assert_eq!(Constraints::choices(["a"]).to_string(), "choices [\"a\"]");
    }

    #[test]
    fn boolean_accepts_only_description() {
        let c = Constraints::default().with_min(1);
        assert_eq!(
            problems(&c, VarType::Boolean),
            [
                "constraint `min` does not apply to a boolean variable; expected one of `description`, `readonly`"
            ]
        );
    }

    #[test]
    fn inverted_bounds_are_reported_on_max() {
        let issues = Constraints::range(3, 1).check(VarType::Integer);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].at, Field::Max);
        assert_eq!(issues[0].to_string(), "`min` 3 is greater than `max` 1");
        assert!(
            Constraints::range(1.0, 1.0)
                .check(VarType::Float)
                .is_empty()
        );
    }

    #[test]
    fn integer_bounds_must_be_integers_and_float_bounds_finite() {
        assert_eq!(
            problems(&Constraints::range(0.5, 2), VarType::Integer),
            ["`min` of an integer variable must be an integer, found 0.5"]
        );
        assert_eq!(
            problems(&Constraints::range(0, f64::INFINITY), VarType::Float),
            ["`max` must be a finite number, found inf"]
        );
    }

    #[test]
    fn choices_are_required_non_empty_and_unique() {
        assert_eq!(
            problems(&Constraints::none(), VarType::Choice),
            ["a choice variable needs `choices`"]
        );
        assert!(Constraints::none().check(VarType::Module).is_empty());
        let empty: [&str; 0] = [];
        assert_eq!(
            problems(&Constraints::choices(empty), VarType::Module),
            ["`choices` must not be empty"]
        );
        let issues = Constraints::choices(["a", "b", "a"]).check(VarType::Choice);
        assert_eq!(issues[0].at, Field::Choice(2));
        assert_eq!(issues[0].to_string(), "duplicate choice \"a\"");
    }

    #[test]
    fn invalid_regex_is_one_readable_line() {
        let err = Pattern::new("[a-").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid regex `[a-`: unclosed character class"
        );
    }
}
