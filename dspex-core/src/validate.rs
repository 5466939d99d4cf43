//! Validation of a value against a variable's type and constraints: the rules of variables, in
//! one place for the macros, every backend and the bridge server.

use std::fmt;

use crate::constraints::{Constraints, Number};
use crate::dspy;
use crate::value::{Value, VarType};

/// A value that a variable refused, and why. Its message names the variable, the value and the
/// rule: `temperature: 2.5 is above max 2.0`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{variable}: {value} {rule}")]
pub struct ValidationError {
    /// The variable that refused the value.
    pub variable: String,
    /// The refused value.
    pub value: Value,
    /// The rule the value broke.
    pub rule: Rule,
}

impl ValidationError {
    /// Whether the value had the wrong type (as opposed to breaking a constraint). Python maps
    /// the first to `TypeError`, the second to `ValueError`.
    pub fn is_type_error(&self) -> bool {
        matches!(self.rule, Rule::WrongType { .. })
    }

    /// The message without the variable name: `2.5 is above max 2.0`.
    pub fn describe_value(&self) -> String {
        format!("{} {}", self.value, self.rule)
    }
}

/// A rule of a variable's type or constraints that a value broke. Displayed as the end of a
/// sentence whose subject is the value.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// The value is of another type.
    WrongType {
        /// The variable's type.
        expected: VarType,
        /// The kind of value that was given (`float`, `string`, ...).
        found: &'static str,
    },
    /// NaN or an infinity, in a float or an embedding.
    NotFinite,
    /// Below the inclusive lower bound.
    BelowMin {
        /// The bound.
        min: Number,
    },
    /// Above the inclusive upper bound.
    AboveMax {
        /// The bound.
        max: Number,
    },
    /// Fewer chars than `min_length`.
    TooShort {
        /// The bound.
        min_length: u64,
        /// The value's length in chars.
        length: u64,
    },
    /// More chars than `max_length`.
    TooLong {
        /// The bound.
        max_length: u64,
        /// The value's length in chars.
        length: u64,
    },
    /// The whole value does not match `pattern`.
    PatternMismatch {
        /// The pattern as written.
        pattern: String,
    },
    /// Not one of the allowed choices.
    NotAChoice {
        /// The allowed choices.
        choices: Vec<String>,
    },
    /// An embedding of the wrong length.
    WrongDimensions {
        /// The required length.
        expected: u64,
        /// The value's length.
        found: u64,
    },
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::WrongType { expected, found } => {
                let article = if found.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                write!(
                    f,
                    "is {article} {found}, expected {} {expected}",
                    expected.article()
                )
            }
            Rule::NotFinite => f.write_str("is not finite: NaN and infinities are rejected"),
            Rule::BelowMin { min } => write!(f, "is below min {min}"),
            Rule::AboveMax { max } => write!(f, "is above max {max}"),
            Rule::TooShort { min_length, length } => {
                write!(
                    f,
                    "is shorter than min_length {min_length} ({length} chars)"
                )
            }
            Rule::TooLong { max_length, length } => {
                write!(f, "is longer than max_length {max_length} ({length} chars)")
            }
            Rule::PatternMismatch { pattern } => {
                write!(
                    f,
                    "does not match pattern `{}`",
                    crate::echo_prefix(pattern)
                )
            }
            Rule::NotAChoice { choices } => {
                f.write_str("is not one of the choices ")?;
                for (i, c) in choices.iter().take(crate::MAX_ECHO_ITEMS).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", crate::Echo(c))?;
                }
                if choices.len() > crate::MAX_ECHO_ITEMS {
                    write!(f, ", ... ({} choices)", choices.len())?;
                }
                Ok(())
            }
            Rule::WrongDimensions { expected, found } => {
                write!(f, "has {found} dimensions, expected {expected}")
            }
        }
    }
}

/// Validates `value` for the variable `variable` of type `ty` with `constraints`, returning the
/// value in canonical form (integers widened to floats for `float` variables).
///
/// The constraints are assumed sound ([`Constraints::check`] returned nothing); keys that do not
/// apply to `ty` are ignored.
///
/// ```
/// use dspex_core::{validate, Constraints, Value, VarType};
///
/// let c = Constraints::range(0.0, 2.0);
/// assert_eq!(validate("temperature", VarType::Float, &c, Value::Integer(1)), Ok(Value::Float(1.0)));
/// let err = validate("temperature", VarType::Float, &c, Value::Float(2.5)).unwrap_err();
/// assert_eq!(err.to_string(), "temperature: 2.5 is above max 2.0");
/// ```
pub fn validate(
    variable: &str,
    ty: VarType,
    constraints: &Constraints,
    value: Value,
) -> Result<Value, ValidationError> {
    if !ty.accepts(&value) {
        let found = value.kind();
        return Err(ValidationError {
            variable: variable.to_owned(),
            value,
            rule: Rule::WrongType {
                expected: ty,
                found,
            },
        });
    }
    // An error quotes the value as given, not as widened.
    let given_integer = match (ty, &value) {
        (VarType::Float, Value::Integer(i)) => Some(*i),
        _ => None,
    };
    let value = ty.coerce(value);
    match check(ty, constraints, &value) {
        None => Ok(value),
        Some(rule) => Err(ValidationError {
            variable: variable.to_owned(),
            value: given_integer.map_or(value, Value::Integer),
            rule,
        }),
    }
}

/// The first rule a well-typed, coerced value breaks, if any.
fn check(ty: VarType, c: &Constraints, value: &Value) -> Option<Rule> {
    match (ty, value) {
        (VarType::Float, Value::Float(x)) => {
            if !x.is_finite() {
                return Some(Rule::NotFinite);
            }
            if let Some(min) = c.min
                && *x < min.as_f64()
            {
                return Some(Rule::BelowMin { min });
            }
            if let Some(max) = c.max
                && *x > max.as_f64()
            {
                return Some(Rule::AboveMax { max });
            }
            None
        }
        (VarType::Integer, Value::Integer(i)) => {
            if let Some(min @ Number::Int(lo)) = c.min
                && *i < lo
            {
                return Some(Rule::BelowMin { min });
            }
            if let Some(max @ Number::Int(hi)) = c.max
                && *i > hi
            {
                return Some(Rule::AboveMax { max });
            }
            None
        }
        (VarType::String, Value::String(s)) => {
            let length = s.chars().count() as u64;
            if let Some(min_length) = c.min_length
                && length < min_length
            {
                return Some(Rule::TooShort { min_length, length });
            }
            if let Some(max_length) = c.max_length
                && length > max_length
            {
                return Some(Rule::TooLong { max_length, length });
            }
            if let Some(p) = &c.pattern
                && !p.is_match(s)
            {
                return Some(Rule::PatternMismatch {
                    pattern: p.as_str().to_owned(),
                });
            }
            None
        }
        (VarType::Choice | VarType::Module, Value::String(s)) => {
            let allowed: Option<&[String]> = c.choices.as_deref();
            let ok = match allowed {
                Some(choices) => choices.iter().any(|c| c == s),
                None if ty == VarType::Module => dspy::module(s).is_some(),
                // A choice variable always has choices once its constraints are sound.
                None => false,
            };
            (!ok).then(|| Rule::NotAChoice {
                choices: allowed.map_or_else(
                    || dspy::module_names().map(str::to_owned).collect(),
                    <[String]>::to_vec,
                ),
            })
        }
        (VarType::Embedding, Value::Embedding(e)) => {
            if e.iter().any(|x| !x.is_finite()) {
                return Some(Rule::NotFinite);
            }
            match c.dimensions {
                Some(expected) if e.len() as u64 != expected => Some(Rule::WrongDimensions {
                    expected,
                    found: e.len() as u64,
                }),
                _ => None,
            }
        }
        (VarType::Boolean, Value::Boolean(_)) => None,
        // `ty.accepts` ran first, so no other pair reaches here.
        (expected, v) => Some(Rule::WrongType {
            expected,
            found: v.kind(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(ty: VarType, c: &Constraints, v: impl Into<Value>) -> String {
        validate("x", ty, c, v.into()).unwrap_err().to_string()
    }

    #[test]
    fn floats_must_be_finite_and_in_range() {
        let c = Constraints::range(0.0, 2.0);
        assert_eq!(
            err(VarType::Float, &c, f64::NAN),
            "x: NaN is not finite: NaN and infinities are rejected"
        );
        assert_eq!(
            err(VarType::Float, &c, f64::INFINITY),
            "x: inf is not finite: NaN and infinities are rejected"
        );
        assert_eq!(err(VarType::Float, &c, -0.1), "x: -0.1 is below min 0.0");
        assert_eq!(err(VarType::Float, &c, 2.5), "x: 2.5 is above max 2.0");
        assert!(validate("x", VarType::Float, &c, Value::Float(2.0)).is_ok());
        assert!(validate("x", VarType::Float, &c, Value::Float(0.0)).is_ok());
    }

    #[test]
    fn integers_reject_floats_and_booleans() {
        let c = Constraints::none();
        assert_eq!(
            err(VarType::Integer, &c, 2.0),
            "x: 2.0 is a float, expected an integer"
        );
        assert_eq!(
            err(VarType::Integer, &c, true),
            "x: true is a boolean, expected an integer"
        );
        assert_eq!(
            err(VarType::Integer, &Constraints::range(1, 10), 11),
            "x: 11 is above max 10"
        );
    }

    #[test]
    fn strings_count_chars_and_match_whole_patterns() {
        let c = Constraints::default().with_length(2, 3);
        // Four bytes, two chars.
        assert!(validate("x", VarType::String, &c, "éé".into()).is_ok());
        assert_eq!(
            err(VarType::String, &c, "a"),
            "x: \"a\" is shorter than min_length 2 (1 chars)"
        );
        assert_eq!(
            err(VarType::String, &c, "abcd"),
            "x: \"abcd\" is longer than max_length 3 (4 chars)"
        );
        let c = Constraints::default().with_pattern("[a-z]+").unwrap();
        assert_eq!(
            err(VarType::String, &c, "abc1"),
            "x: \"abc1\" does not match pattern `[a-z]+`"
        );
    }

    #[test]
    fn choices_and_modules() {
        let c = Constraints::choices(["a", "b"]);
        assert_eq!(
            err(VarType::Choice, &c, "c"),
            "x: \"c\" is not one of the choices \"a\", \"b\""
        );
        assert!(
            validate(
                "x",
                VarType::Module,
                &Constraints::none(),
                "ChainOfThought".into()
            )
            .is_ok()
        );
        assert!(err(VarType::Module, &Constraints::none(), "Nope").contains("\"Predict\""));
    }

    #[test]
    fn embeddings_have_exact_dimensions_and_finite_components() {
        let c = Constraints::default().with_dimensions(3);
        assert_eq!(
            err(VarType::Embedding, &c, vec![1.0f32, 2.0]),
            "x: [1.0, 2.0] has 2 dimensions, expected 3"
        );
        assert!(err(VarType::Embedding, &c, vec![1.0f32, f32::NAN, 0.0]).contains("not finite"));
        assert!(validate("x", VarType::Embedding, &c, vec![1.0f32, 2.0, 3.0].into()).is_ok());
    }
}
