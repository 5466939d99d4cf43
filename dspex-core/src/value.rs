//! Variable values and the seven variable types.

use std::fmt;
use std::str::FromStr;

/// The value of a variable.
///
/// `choice` and `module` variables hold a [`Value::String`]; their type, not their value,
/// says that the string must be one of the allowed choices.
///
/// ```
/// use dspex_core::{Value, VarType};
///
/// let v = Value::from(0.7);
/// assert_eq!(v.kind(), "float");
/// assert!(VarType::Float.accepts(&v));
/// assert_eq!(v.to_string(), "0.7");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A 64-bit float; variables only ever hold finite ones.
    Float(f64),
    /// A 64-bit signed integer.
    Integer(i64),
    /// A string (also the value of `choice` and `module` variables).
    String(String),
    /// A boolean.
    Boolean(bool),
    /// An embedding vector.
    Embedding(Vec<f32>),
}

impl Value {
    /// The name of the kind of value, as used in error messages (`float`, `integer`, `string`,
    /// `boolean`, `embedding`).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Float(_) => "float",
            Value::Integer(_) => "integer",
            Value::String(_) => "string",
            Value::Boolean(_) => "boolean",
            Value::Embedding(_) => "embedding",
        }
    }

    /// The float, if this is a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The integer, if this is an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The embedding, if this is an embedding.
    pub fn as_embedding(&self) -> Option<&[f32]> {
        match self {
            Value::Embedding(e) => Some(e),
            _ => None,
        }
    }
}

/// How many embedding components `Display` shows before eliding the rest.
const EMBEDDING_PREVIEW: usize = 6;

impl fmt::Display for Value {
    /// Formats the value the way error messages quote it: floats always with a decimal point
    /// (`2.0`), strings quoted and cut after [`MAX_ECHO_CHARS`](crate::MAX_ECHO_CHARS)
    /// characters, long embeddings shortened.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Integer(i) => write!(f, "{i}"),
            Value::String(s) => write!(f, "{}", crate::Echo(s)),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Embedding(e) => {
                f.write_str("[")?;
                for (i, x) in e.iter().take(EMBEDDING_PREVIEW).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{x:?}")?;
                }
                if e.len() > EMBEDDING_PREVIEW {
                    write!(f, ", ... ({} values)", e.len())?;
                }
                f.write_str("]")
            }
        }
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Integer(i64::from(v))
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}
impl From<Vec<f32>> for Value {
    fn from(v: Vec<f32>) -> Self {
        Value::Embedding(v)
    }
}

/// The type of a variable: one of seven (float, integer, string, boolean, choice, module,
/// embedding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VarType {
    /// `float`: a finite `f64`.
    Float,
    /// `integer`: an `i64` (floats and booleans are rejected).
    Integer,
    /// `string`: a `String`, optionally length-bounded and pattern-matched.
    String,
    /// `boolean`: a `bool`.
    Boolean,
    /// `choice`: a `String` that is one of a fixed, non-empty set of choices.
    Choice,
    /// `module`: a `String` naming a DSPy module class.
    Module,
    /// `embedding`: a `Vec<f32>`, optionally of a fixed dimension.
    Embedding,
}

impl VarType {
    /// Every variable type, in declaration order.
    pub const ALL: [VarType; 7] = [
        VarType::Float,
        VarType::Integer,
        VarType::String,
        VarType::Boolean,
        VarType::Choice,
        VarType::Module,
        VarType::Embedding,
    ];

    /// The wire name of the type (`float`, `integer`, `string`, `boolean`, `choice`, `module`,
    /// `embedding`).
    pub fn name(self) -> &'static str {
        match self {
            VarType::Float => "float",
            VarType::Integer => "integer",
            VarType::String => "string",
            VarType::Boolean => "boolean",
            VarType::Choice => "choice",
            VarType::Module => "module",
            VarType::Embedding => "embedding",
        }
    }

    /// The indefinite article for error messages ("a float", "an integer").
    pub fn article(self) -> &'static str {
        match self {
            VarType::Integer | VarType::Embedding => "an",
            _ => "a",
        }
    }

    /// Whether a value has the right shape for this type (before constraints are checked).
    ///
    /// An integer is accepted by `float` variables (it is widened by [`VarType::coerce`]);
    /// nothing else crosses types: a float is never an integer, a boolean never a number.
    pub fn accepts(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (VarType::Float, Value::Float(_) | Value::Integer(_))
                | (VarType::Integer, Value::Integer(_))
                | (
                    VarType::String | VarType::Choice | VarType::Module,
                    Value::String(_)
                )
                | (VarType::Boolean, Value::Boolean(_))
                | (VarType::Embedding, Value::Embedding(_))
        )
    }

    /// Converts a value this type accepts into its canonical form (integers become floats for
    /// `float` variables); returns the value unchanged otherwise.
    pub fn coerce(self, value: Value) -> Value {
        match (self, value) {
            // Widening is the documented rule; precision loss beyond 2^53 is accepted.
            #[allow(clippy::cast_precision_loss)]
            (VarType::Float, Value::Integer(i)) => Value::Float(i as f64),
            (_, v) => v,
        }
    }
}

impl fmt::Display for VarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown variable type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown variable type `{0}`; expected one of `float`, `integer`, `string`, `boolean`, `choice`, `module`, `embedding`"
)]
pub struct UnknownVarType(pub String);

impl FromStr for VarType {
    type Err = UnknownVarType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VarType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| UnknownVarType(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_always_show_a_decimal_point() {
        assert_eq!(Value::Float(2.0).to_string(), "2.0");
        assert_eq!(Value::Float(f64::NAN).to_string(), "NaN");
        assert_eq!(Value::Float(f64::NEG_INFINITY).to_string(), "-inf");
    }

    #[test]
    fn long_embeddings_are_elided() {
        let v = Value::Embedding(vec![0.5; 10]);
        assert_eq!(
            v.to_string(),
            "[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, ... (10 values)]"
        );
    }

    #[test]
    fn type_names_round_trip() {
        for t in VarType::ALL {
            assert_eq!(t.name().parse::<VarType>(), Ok(t));
        }
        assert!("double".parse::<VarType>().is_err());
    }

    #[test]
    fn integers_never_accept_floats_or_booleans() {
        assert!(!VarType::Integer.accepts(&Value::Float(2.0)));
        assert!(!VarType::Integer.accepts(&Value::Boolean(true)));
        assert!(!VarType::Float.accepts(&Value::Boolean(false)));
        assert_eq!(VarType::Float.coerce(Value::Integer(2)), Value::Float(2.0));
    }
}
