//! DSPy string signatures: `"question, context -> answer"`, with optional type annotations
//! (`"question: str, k: int -> answer: list[str]"`).

use std::fmt;
use std::str::FromStr;

/// One field of a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureField {
    /// The field name, a Python identifier.
    pub name: String,
    /// The type annotation as written (`list[str]`), if any.
    pub annotation: Option<String>,
}

/// A parsed DSPy string signature.
///
/// Field names are ASCII Python identifiers, unique across inputs and outputs; there is exactly
/// one `->`; there is at least one output. Inputs may be empty (`"-> answer"`).
///
/// ```
/// use dspex_core::Signature;
///
/// let sig: Signature = "question, context: list[str] -> answer".parse().unwrap();
/// assert_eq!(sig.input_names().collect::<Vec<_>>(), ["question", "context"]);
/// assert_eq!(sig.output_names().collect::<Vec<_>>(), ["answer"]);
/// assert_eq!(sig.to_string(), "question, context: list[str] -> answer");
///
/// let err = "question answer".parse::<Signature>().unwrap_err();
/// assert_eq!(err.to_string(), "malformed signature `question answer`: missing `->` between inputs and outputs");
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
        let mut sides = text.split("->");
        let (Some(inputs), Some(outputs)) = (sides.next(), sides.next()) else {
            return Err(error(SignatureProblem::MissingArrow));
        };
        if sides.next().is_some() {
            return Err(error(SignatureProblem::SeveralArrows));
        }
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
    split_top_level(side)
        .into_iter()
        .map(|part| {
            let (name, annotation) = match part.split_once(':') {
                Some((name, ty)) => {
                    let ty = ty.trim();
                    if ty.is_empty() {
                        return Err(SignatureProblem::EmptyAnnotation(name.trim().to_owned()));
                    }
                    (name.trim(), Some(ty.to_owned()))
                }
                None => (part.trim(), None),
            };
            if name.is_empty() {
                return Err(SignatureProblem::EmptyField);
            }
            if !is_identifier(name) {
                return Err(SignatureProblem::InvalidFieldName(name.to_owned()));
            }
            Ok(SignatureField {
                name: name.to_owned(),
                annotation,
            })
        })
        .collect()
}

/// Splits on commas that are not inside brackets (`dict[str, int]` stays whole).
fn split_top_level(side: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in side.char_indices() {
        match c {
            '[' | '(' | '{' => depth += 1,
            ']' | ')' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&side[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&side[start..]);
    parts
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
                .map(|fd| match &fd.annotation {
                    Some(a) => format!("{}: {a}", fd.name),
                    None => fd.name.clone(),
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

/// A malformed signature: the text and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed signature `{signature}`: {problem}")]
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(s: &str) -> SignatureProblem {
        Signature::parse(s).unwrap_err().problem
    }

    #[test]
    fn parses_fields_and_annotations() {
        let sig = Signature::parse(" a: dict[str, int] ,b->c: int ").unwrap();
        assert_eq!(sig.inputs[0].annotation.as_deref(), Some("dict[str, int]"));
        assert_eq!(sig.input_names().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(sig.to_string(), "a: dict[str, int], b -> c: int");
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
}
