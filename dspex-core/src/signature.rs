//! DSPy string signatures: `"question, context -> answer"`, with optional type annotations
//! (`"question: str, k: int -> answer: list[str]"`).

use std::fmt;
use std::str::FromStr;

use serde_json::Value as JsonValue;

use crate::field_text::FieldError;
use crate::field_type::{FieldType, FieldTypeError};

/// One field of a signature: its name and its type (`str` when not annotated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureField {
    /// The field name, a Python identifier.
    pub name: String,
    /// The declared type; `str` when the field has no annotation.
    pub ty: FieldType,
}

impl SignatureField {
    /// A field named `name` of type `ty`.
    pub fn new(name: impl Into<String>, ty: FieldType) -> Self {
        Self {
            name: name.into(),
            ty,
        }
    }

    /// Checks that `value` is of the field's type.
    ///
    /// ```
    /// use dspex_core::{FieldType, SignatureField};
    /// use serde_json::json;
    ///
    /// let field = SignatureField::new("score", FieldType::Float);
    /// assert!(field.check(&json!(1)).is_ok());
    /// assert_eq!(
    ///     field.check(&json!("high")).unwrap_err().to_string(),
    ///     "field `score` is declared `float`, but its value is `\"high\"`"
    /// );
    /// ```
    pub fn check(&self, value: &JsonValue) -> Result<(), FieldError> {
        if self.ty.accepts(value) {
            Ok(())
        } else {
            Err(FieldError::value(&self.name, &self.ty, value))
        }
    }

    /// Checks `value` and returns it in the field's canonical form: integers in a `float` or
    /// `list[float]` field become floats (`3` becomes `3.0`); nothing else changes.
    pub fn conform(&self, value: JsonValue) -> Result<JsonValue, FieldError> {
        self.check(&value)?;
        Ok(match (&self.ty, value) {
            (FieldType::Float, value) => widen(value),
            (FieldType::ListFloat, JsonValue::Array(items)) => {
                JsonValue::Array(items.into_iter().map(widen).collect())
            }
            (_, value) => value,
        })
    }

    /// Reads an LM's text for this field as its type, as DSPy does (see
    /// [`FieldType::parse_text`]); the error names the field, the type and the text.
    pub fn parse_text(&self, text: &str) -> Result<JsonValue, FieldError> {
        self.ty
            .parse_text(text)
            .map_err(|problem| FieldError::text(&self.name, &self.ty, text, problem))
    }
}

/// An integer as a float; any other value unchanged.
fn widen(value: JsonValue) -> JsonValue {
    match value.as_i64().map(|i| {
        #[allow(clippy::cast_precision_loss)]
        serde_json::Number::from_f64(i as f64)
    }) {
        Some(Some(n)) => JsonValue::Number(n),
        _ => value,
    }
}

/// A parsed DSPy string signature.
///
/// Field names are ASCII Python identifiers, unique across inputs and outputs; there is exactly
/// one `->`; there is at least one output. Inputs may be empty (`"-> answer"`). A field's type
/// is one of [`FieldType`]'s, `str` when not annotated; `Display` writes the canonical form
/// (`str` left out), which parses back to the same signature.
///
/// ```
/// use dspex_core::{FieldType, Signature};
///
/// let sig: Signature = "question, context: list[str] -> answer: str, score: float".parse().unwrap();
/// assert_eq!(sig.input_names().collect::<Vec<_>>(), ["question", "context"]);
/// assert_eq!(sig.output_names().collect::<Vec<_>>(), ["answer", "score"]);
/// assert_eq!(sig.inputs[1].ty, FieldType::ListStr);
/// assert_eq!(sig.to_string(), "question, context: list[str] -> answer, score: float");
///
/// let err = "question answer".parse::<Signature>().unwrap_err();
/// assert_eq!(err.to_string(), "malformed signature `question answer`: missing `->` between inputs and outputs");
/// let err = "question: string -> answer".parse::<Signature>().unwrap_err();
/// assert!(err.to_string().starts_with("unknown type `string` for field `question` (did you mean `str`?)"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Input fields, in order.
    pub inputs: Vec<SignatureField>,
    /// Output fields, in order.
    pub outputs: Vec<SignatureField>,
}

impl Signature {
    /// Parses a DSPy string signature.
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let error = |problem| SignatureError {
            signature: text.to_owned(),
            problem,
        };
        let arrows = outside_quotes(text, "->");
        let (inputs, outputs) = match arrows[..] {
            [] => return Err(error(SignatureProblem::MissingArrow)),
            [at] => (&text[..at], &text[at + 2..]),
            _ => return Err(error(SignatureProblem::SeveralArrows)),
        };
        let inputs = parse_fields(inputs).map_err(error)?;
        let outputs = parse_fields(outputs).map_err(error)?;
        if outputs.is_empty() {
            return Err(error(SignatureProblem::NoOutputs));
        }
        let all: Vec<&SignatureField> = inputs.iter().chain(&outputs).collect();
        for (i, field) in all.iter().enumerate() {
            if all[..i].iter().any(|f| f.name == field.name) {
                return Err(error(SignatureProblem::DuplicateField(field.name.clone())));
            }
        }
        Ok(Signature { inputs, outputs })
    }

    /// The input field names.
    pub fn input_names(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().map(|f| f.name.as_str())
    }

    /// The output field names.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().map(|f| f.name.as_str())
    }
}

/// Splits one side of a signature into fields; an empty side has no fields.
fn parse_fields(side: &str) -> Result<Vec<SignatureField>, SignatureProblem> {
    if side.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut parts = Vec::new();
    let mut start = 0;
    for comma in outside_quotes(side, ",") {
        parts.push(&side[start..comma]);
        start = comma + 1;
    }
    parts.push(&side[start..]);
    parts
        .into_iter()
        .map(|part| {
            let (name, annotation) = match part.split_once(':') {
                Some((name, ty)) => (name.trim(), Some(ty.trim())),
                None => (part.trim(), None),
            };
            if name.is_empty() {
                return Err(SignatureProblem::EmptyField);
            }
            if !is_identifier(name) {
                return Err(SignatureProblem::InvalidFieldName(name.to_owned()));
            }
            let ty = match annotation {
                None => FieldType::Str,
                Some("") => return Err(SignatureProblem::EmptyAnnotation(name.to_owned())),
                Some(ty) => FieldType::parse(ty).map_err(|mut e| {
                    e.field = Some(name.to_owned());
                    SignatureProblem::FieldType(e)
                })?,
            };
            Ok(SignatureField::new(name, ty))
        })
        .collect()
}

/// The byte offsets of `pattern` in `text` outside quoted strings (`Literal["a, b"]`) and,
/// for a comma, outside brackets (`dict[str, int]` stays whole).
fn outside_quotes(text: &str, pattern: &str) -> Vec<usize> {
    let mut found = Vec::new();
    let (mut depth, mut quote, mut escaped) = (0i32, None, false);
    for (i, c) in text.char_indices() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' | '(' | '{' => depth += 1,
                ']' | ')' | '}' => depth -= 1,
                _ if text[i..].starts_with(pattern) && (pattern != "," || depth == 0) => {
                    found.push(i);
                }
                _ => {}
            },
        }
    }
    found
}

/// Whether `s` is an ASCII Python identifier (and so also a Rust field name, unless a keyword).
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl FromStr for Signature {
    type Err = SignatureError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Signature::parse(s)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |fields: &[SignatureField]| {
            fields
                .iter()
                .map(|fd| match &fd.ty {
                    FieldType::Str => fd.name.clone(),
                    ty => format!("{}: {ty}", fd.name),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (
            self.inputs.is_empty(),
            side(&self.inputs),
            side(&self.outputs),
        ) {
            (true, _, out) => write!(f, "-> {out}"),
            (false, inp, out) => write!(f, "{inp} -> {out}"),
        }
    }
}

/// A malformed signature: the text and what is wrong with it. A field type that cannot be read
/// is reported by its own message, which names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", match problem {
    SignatureProblem::FieldType(e) => e.to_string(),
    problem => format!("malformed signature `{signature}`: {problem}"),
})]
pub struct SignatureError {
    /// The signature as written.
    pub signature: String,
    /// What is wrong.
    pub problem: SignatureProblem,
}

/// What is wrong with a signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureProblem {
    /// No `->`.
    #[error("missing `->` between inputs and outputs")]
    MissingArrow,
    /// More than one `->`.
    #[error("expected exactly one `->`")]
    SeveralArrows,
    /// Nothing after `->`.
    #[error("no output fields after `->`")]
    NoOutputs,
    /// `a,,b` or a trailing comma.
    #[error("empty field name (a doubled or trailing comma?)")]
    EmptyField,
    /// `name:` with nothing after the colon.
    #[error("field `{0}` has an empty type annotation")]
    EmptyAnnotation(String),
    /// Not a Python identifier.
    #[error("`{0}` is not a valid field name; expected an identifier like `question`")]
    InvalidFieldName(String),
    /// The same name twice (inputs and outputs share one namespace).
    #[error("field `{0}` appears more than once")]
    DuplicateField(String),
    /// A type annotation that is not a field type (the error names the field).
    #[error(transparent)]
    FieldType(FieldTypeError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problem(s: &str) -> SignatureProblem {
        Signature::parse(s).unwrap_err().problem
    }

    #[test]
    fn parses_fields_and_types() {
        let sig =
            Signature::parse(" a: dict ,b: str->c: int, d: Literal['x, y', \"->\"] ").unwrap();
        assert_eq!(sig.inputs[0].ty, FieldType::Dict);
        assert_eq!(sig.input_names().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            sig.outputs[1].ty,
            FieldType::Literal(vec!["x, y".into(), "->".into()])
        );
        assert_eq!(
            sig.to_string(),
            "a: dict, b -> c: int, d: Literal[\"x, y\", \"-\\u003e\"]"
        );
        assert_eq!(Signature::parse(&sig.to_string()).unwrap(), sig);
        assert_eq!(
            Signature::parse("-> answer").unwrap().to_string(),
            "-> answer"
        );
    }

    #[test]
    fn rejects_malformed_signatures() {
        assert_eq!(problem("a b"), SignatureProblem::MissingArrow);
        assert_eq!(problem("a -> b -> c"), SignatureProblem::SeveralArrows);
        assert_eq!(problem("a ->"), SignatureProblem::NoOutputs);
        assert_eq!(problem("a,,b -> c"), SignatureProblem::EmptyField);
        assert_eq!(problem("a -> b,"), SignatureProblem::EmptyField);
        assert_eq!(
            problem("a: -> b"),
            SignatureProblem::EmptyAnnotation("a".into())
        );
        assert_eq!(
            problem("a b -> c"),
            SignatureProblem::InvalidFieldName("a b".into())
        );
        assert_eq!(
            problem("2a -> c"),
            SignatureProblem::InvalidFieldName("2a".into())
        );
        assert_eq!(
            problem("q -> q"),
            SignatureProblem::DuplicateField("q".into())
        );
        assert_eq!(
            problem("q, q -> a"),
            SignatureProblem::DuplicateField("q".into())
        );
    }

    #[test]
    fn unknown_types_name_the_field() {
        let err = Signature::parse("q: dict[str, int] -> a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown type `dict[str, int]` for field `q` (did you mean `dict`?); expected one of `str`, `int`, `float`, `bool`, `list[str]`, `list[int]`, `list[float]`, `dict`, `Literal[\"a\", \"b\"]`"
        );
        assert_eq!(
            Signature::parse("q -> a: Literal[x]")
                .unwrap_err()
                .to_string(),
            "malformed type `Literal[x]` for field `a`: `Literal` values are quoted strings: write `\"x\"`, not `x`"
        );
    }

    #[test]
    fn fields_check_conform_and_read_values() {
        let sig = Signature::parse("-> n: int, x: float, xs: list[float]").unwrap();
        let [n, x, xs] = [&sig.outputs[0], &sig.outputs[1], &sig.outputs[2]];
        assert!(n.check(&json!(2)).is_ok());
        assert_eq!(
            n.check(&json!(2.5)).unwrap_err().to_string(),
            "field `n` is declared `int`, but its value is `2.5`"
        );
        assert_eq!(x.conform(json!(3)).unwrap(), json!(3.0));
        assert_eq!(xs.conform(json!([1, 2.5])).unwrap(), json!([1.0, 2.5]));
        assert_eq!(n.conform(json!(3)).unwrap(), json!(3));
        assert!(xs.conform(json!(["a"])).is_err());
        assert_eq!(x.parse_text("0.5").unwrap(), json!(0.5));
        assert_eq!(
            n.parse_text("lots").unwrap_err().to_string(),
            "field `n` is declared `int`, but the text `lots` is not a number"
        );
    }
}
