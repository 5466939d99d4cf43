//! Reading an LM's text for a field as its declared type, the way DSPy's `ChatAdapter` does
//! (`dspy.adapters.utils.parse_value`): `str` as is; `Literal` by its values, also when quoted
//! or wrapped (`'a'`, `Literal['a']`); the other types from JSON or Python literal syntax,
//! read leniently and converted as pydantic's lax mode converts (`"3"` and `3.0` are an `int`,
//! `yes` a `bool`, `[1, "2"]` a `list[int]`).
//!
//! Where DSPy and dspex part ways, dspex refuses what it cannot hold: non-finite floats
//! (`inf`, `nan`), integers beyond `i64`, and a few repairs of `json_repair` (a bare
//! comma-separated `1, 2` is not a list; a dict key must be a string, a word or a number).

use std::fmt;

use serde_json::{Map, Number, Value as JsonValue};

use crate::echo::{excerpt, value_excerpt};
use crate::field_type::{FieldType, write_quoted_list};
use crate::literal_syntax::{self, Lit, LitError, MAX_TEXT_NESTING};

impl FieldType {
    /// Reads `text`, an LM's answer for a field of this type, as a value of this type.
    ///
    /// ```
    /// use dspex_core::{FieldType, TextProblem};
    /// use serde_json::json;
    ///
    /// assert_eq!(FieldType::Float.parse_text("0.85"), Ok(json!(0.85)));
    /// assert_eq!(FieldType::Int.parse_text("\"3\""), Ok(json!(3)));
    /// assert_eq!(FieldType::Bool.parse_text("yes"), Ok(json!(true)));
    /// assert_eq!(FieldType::ListStr.parse_text("['a', b]"), Ok(json!(["a", "b"])));
    /// let label: FieldType = "Literal['positive', 'negative']".parse().unwrap();
    /// assert_eq!(label.parse_text(" 'negative'"), Ok(json!("negative")));
    /// assert_eq!(FieldType::Float.parse_text("very high"), Err(TextProblem::NotANumber));
    /// ```
    pub fn parse_text(&self, text: &str) -> Result<JsonValue, TextProblem> {
        // What DSPy hands to pydantic: the text read as a literal, or else the text itself as
        // a string (so that `yes` is a `bool` and `"3"` an `int`).
        let candidate = || match literal_syntax::parse(text) {
            Ok(lit) => Ok(lit),
            Err(LitError::TooDeep) => Err(TextProblem::TooDeep),
            Err(LitError::Syntax) => Ok(Lit::Str(text.to_owned())),
        };
        match self {
            FieldType::Str => Ok(JsonValue::String(text.to_owned())),
            FieldType::Literal(values) => literal(values, text),
            FieldType::Int => int(&candidate()?).map(JsonValue::from),
            FieldType::Float => float(&candidate()?).map(float_value),
            FieldType::Bool => boolean(&candidate()?).map(JsonValue::Bool),
            FieldType::ListStr => list(candidate()?, |item| match item {
                Lit::Str(s) => Ok(JsonValue::String(s.clone())),
                _ => Err(TextProblem::NotAString),
            }),
            FieldType::ListInt => list(candidate()?, |item| int(item).map(JsonValue::from)),
            FieldType::ListFloat => list(candidate()?, |item| float(item).map(float_value)),
            FieldType::Dict => match candidate()? {
                dict @ Lit::Dict(_) => json(dict),
                _ => Err(TextProblem::NotADict),
            },
        }
    }
}

/// A `Literal`'s value: the text itself, or the text trimmed, unwrapped from
/// `Literal[..]`/`str[..]` and unquoted (escapes are not read, as DSPy does not).
fn literal(values: &[String], text: &str) -> Result<JsonValue, TextProblem> {
    let known = |v: &str| values.iter().find(|known| *known == v).cloned();
    let mut v = text.trim();
    if (v.starts_with("Literal[") || v.starts_with("str[")) && v.ends_with(']') {
        let open = v.find('[').map_or(0, |i| i + 1);
        v = &v[open..v.len() - 1];
    }
    let unquoted = match v.as_bytes() {
        [q @ (b'"' | b'\''), .., last] if q == last => &v[1..v.len() - 1],
        _ => v,
    };
    known(text)
        .or_else(|| known(unquoted))
        .map(JsonValue::String)
        .ok_or_else(|| TextProblem::NotAValue(values.to_vec()))
}

/// An integer, as pydantic converts one: integral floats, booleans and numeric strings too.
fn int(lit: &Lit) -> Result<i64, TextProblem> {
    match lit {
        Lit::Int(i) => Ok(*i),
        Lit::Bool(b) => Ok(i64::from(*b)),
        Lit::Float(f) => float_to_int(*f),
        Lit::Str(s) => int_from_str(s),
        _ => Err(TextProblem::NotANumber),
    }
}

// `i64::MIN` is exactly -2^63; 2^63 is the first float past `i64::MAX`.
#[allow(clippy::cast_precision_loss)]
const I64_BOUND: f64 = i64::MAX as f64;

#[allow(clippy::cast_possible_truncation)]
fn float_to_int(f: f64) -> Result<i64, TextProblem> {
    if !f.is_finite() || f.fract() != 0.0 {
        Err(TextProblem::NotAnInteger)
    } else if !(-I64_BOUND..I64_BOUND).contains(&f) {
        Err(TextProblem::OutOfRange)
    } else {
        Ok(f as i64)
    }
}

/// pydantic's `int("..")`: trimmed, `+`/`-`, `_` between digits, and a zero fraction (`3.0`).
fn int_from_str(s: &str) -> Result<i64, TextProblem> {
    let t = s.trim();
    let whole = match t.split_once('.') {
        Some((whole, zeros)) if !zeros.is_empty() && zeros.bytes().all(|b| b == b'0') => whole,
        _ => t,
    };
    let digits = whole.strip_prefix(['+', '-']).unwrap_or(whole);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return match literal_syntax::number(whole) {
            Some(Lit::Int(i)) => Ok(i),
            Some(_) => Err(TextProblem::OutOfRange),
            None => Err(TextProblem::NotANumber),
        };
    }
    match float_from_str(t) {
        Ok(_) | Err(TextProblem::NotFinite) => Err(TextProblem::NotAnInteger),
        Err(e) => Err(e),
    }
}

/// A finite float, as pydantic converts one: integers, booleans and numeric strings too.
fn float(lit: &Lit) -> Result<f64, TextProblem> {
    #[allow(clippy::cast_precision_loss)]
    let f = match lit {
        Lit::Int(i) => *i as f64,
        Lit::Float(f) => *f,
        Lit::Bool(b) => f64::from(u8::from(*b)),
        Lit::Str(s) => float_from_str(s)?,
        _ => return Err(TextProblem::NotANumber),
    };
    if f.is_finite() {
        Ok(f)
    } else {
        Err(TextProblem::NotFinite)
    }
}

/// Python's `float("..")`: trimmed, `_` between digits, `inf` and `nan` (refused: not finite).
fn float_from_str(s: &str) -> Result<f64, TextProblem> {
    let t = s.trim();
    let lower = t.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return Err(TextProblem::NotFinite);
    }
    match literal_syntax::number(t) {
        Some(Lit::Float(f)) if !t.contains(['x', 'X', 'o', 'O', 'b', 'B']) => Ok(f),
        #[allow(clippy::cast_precision_loss)]
        Some(Lit::Int(i)) if !t.contains(['x', 'X', 'o', 'O', 'b', 'B']) => Ok(i as f64),
        _ => Err(TextProblem::NotANumber),
    }
}

/// A boolean, as pydantic converts one: `0`/`1` and the words `true`, `yes`, `on`, ... in any
/// case.
fn boolean(lit: &Lit) -> Result<bool, TextProblem> {
    match lit {
        Lit::Bool(b) => Ok(*b),
        Lit::Int(0) => Ok(false),
        Lit::Int(1) => Ok(true),
        Lit::Float(f) if *f == 0.0 => Ok(false),
        Lit::Float(f) if *f == 1.0 => Ok(true),
        Lit::Str(s) => match s.to_ascii_lowercase().as_str() {
            "1" | "on" | "t" | "true" | "y" | "yes" => Ok(true),
            "0" | "off" | "f" | "false" | "n" | "no" => Ok(false),
            _ => Err(TextProblem::NotABool),
        },
        _ => Err(TextProblem::NotABool),
    }
}

/// A list whose items each convert with `item`.
fn list(
    lit: Lit,
    item: impl Fn(&Lit) -> Result<JsonValue, TextProblem>,
) -> Result<JsonValue, TextProblem> {
    let Lit::List(items) = lit else {
        return Err(TextProblem::NotAList);
    };
    items
        .iter()
        .enumerate()
        .map(|(index, lit)| {
            item(lit).map_err(|problem| TextProblem::Item {
                index,
                item: json(lit.clone()).map_or_else(|_| "?".to_owned(), |v| value_excerpt(&v)),
                problem: Box::new(problem),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(JsonValue::Array)
}

/// A literal as JSON; a non-finite float (only from an overflowing literal) has no JSON form.
fn json(lit: Lit) -> Result<JsonValue, TextProblem> {
    Ok(match lit {
        Lit::Null => JsonValue::Null,
        Lit::Bool(b) => JsonValue::Bool(b),
        Lit::Int(i) => JsonValue::from(i),
        Lit::Float(f) => Number::from_f64(f)
            .map(JsonValue::Number)
            .ok_or(TextProblem::NotFinite)?,
        Lit::Str(s) => JsonValue::String(s),
        Lit::List(items) => {
            JsonValue::Array(items.into_iter().map(json).collect::<Result<_, _>>()?)
        }
        Lit::Dict(entries) => JsonValue::Object(
            entries
                .into_iter()
                .map(|(k, v)| Ok((k, json(v)?)))
                .collect::<Result<Map<_, _>, _>>()?,
        ),
    })
}

/// A finite float as a JSON number (always a float, `3.0` rather than `3`).
fn float_value(f: f64) -> JsonValue {
    Number::from_f64(f).map_or(JsonValue::Null, JsonValue::Number)
}

/// Why a text does not read as a field's declared type; each reads as the end of a sentence
/// about the text ("`very high` is not a number").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextProblem {
    /// Not a number at all.
    NotANumber,
    /// A number, but not an integer.
    NotAnInteger,
    /// An integer beyond `i64`.
    OutOfRange,
    /// `inf` or `nan`.
    NotFinite,
    /// Not a boolean.
    NotABool,
    /// Not a string (a list item of a `list[str]`).
    NotAString,
    /// Not a list.
    NotAList,
    /// Not a dict.
    NotADict,
    /// Not one of a `Literal`'s values.
    NotAValue(Vec<String>),
    /// A list item (0-based `index`) that does not convert.
    Item {
        /// Its position, from 0.
        index: usize,
        /// The item, as JSON (an excerpt).
        item: String,
        /// Why it does not convert.
        problem: Box<TextProblem>,
    },
    /// Lists or dicts nested deeper than [`MAX_TEXT_NESTING`].
    TooDeep,
}

impl fmt::Display for TextProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextProblem::NotANumber => f.write_str("is not a number"),
            TextProblem::NotAnInteger => f.write_str("is not an integer"),
            TextProblem::OutOfRange => f.write_str("is out of the range of a 64-bit integer"),
            TextProblem::NotFinite => f.write_str("is not a finite number"),
            TextProblem::NotABool => {
                f.write_str("is not a boolean (`true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`)")
            }
            TextProblem::NotAString => f.write_str("is not a string"),
            TextProblem::NotAList => f.write_str("is not a list like `[\"a\", \"b\"]`"),
            TextProblem::NotADict => f.write_str("is not a dict like `{\"key\": \"value\"}`"),
            TextProblem::NotAValue(values) => {
                f.write_str("is not one of ")?;
                write_quoted_list(f, values)
            }
            TextProblem::Item {
                index,
                item,
                problem,
            } => write!(f, "has an item that {problem}: `{item}` (index {index})"),
            TextProblem::TooDeep => write!(f, "nests deeper than {MAX_TEXT_NESTING} levels"),
        }
    }
}

/// A field whose value is not of its declared type: a typed value of another type, or a text
/// that does not read as the type. Quotes at most [`MAX_ECHO_CHARS`](crate::MAX_ECHO_CHARS)
/// chars of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field.
    pub field: String,
    /// Its declared type.
    pub expected: FieldType,
    /// What it held instead.
    pub found: Found,
}

/// What a field held instead of a value of its declared type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A value of another type, as JSON (an excerpt).
    Value(String),
    /// A text that does not read as the type (an excerpt), and why.
    Text {
        /// The text.
        text: String,
        /// Why it does not read as the type.
        problem: TextProblem,
    },
}

impl FieldError {
    /// `value` is not of `expected`.
    pub fn value(field: &str, expected: &FieldType, value: &JsonValue) -> Self {
        Self {
            field: field.to_owned(),
            expected: expected.clone(),
            found: Found::Value(value_excerpt(value)),
        }
    }

    /// `text` does not read as `expected`.
    pub fn text(field: &str, expected: &FieldType, text: &str, problem: TextProblem) -> Self {
        Self {
            field: field.to_owned(),
            expected: expected.clone(),
            found: Found::Text {
                text: excerpt(text),
                problem,
            },
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (field, expected) = (&self.field, &self.expected);
        write!(f, "field `{field}` is declared `{expected}`, but ")?;
        match &self.found {
            Found::Value(value) => write!(f, "its value is `{value}`"),
            Found::Text { text, problem } => write!(f, "the text `{text}` {problem}"),
        }
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(ty: &str, text: &str) -> Result<JsonValue, TextProblem> {
        FieldType::parse(ty).unwrap().parse_text(text)
    }

    #[test]
    fn str_is_the_text_as_is() {
        assert_eq!(read("str", " [1] "), Ok(json!(" [1] ")));
    }

    #[test]
    fn numbers() {
        let ok: [(&str, &str, JsonValue); 14] = [
            ("int", "3", json!(3)),
            ("int", " 3 ", json!(3)),
            ("int", "3.0", json!(3)),
            ("int", "1e3", json!(1000)),
            ("int", "true", json!(1)),
            ("int", "'3'", json!(3)),
            ("int", "\" -1_000.00 \"", json!(-1000)),
            ("int", "0x10", json!(16)),
            ("float", "3", json!(3.0)),
            ("float", ".5", json!(0.5)),
            ("float", "\"2.5\"", json!(2.5)),
            ("float", "'1_0e-1'", json!(1.0)),
            ("float", "false", json!(0.0)),
            ("float", "-0.0", json!(-0.0)),
        ];
        for (ty, text, expected) in ok {
            assert_eq!(read(ty, text), Ok(expected), "{ty} {text:?}");
        }
        let refused = [
            ("int", "3.5", TextProblem::NotAnInteger),
            ("int", "'1e3'", TextProblem::NotAnInteger),
            ("int", "five", TextProblem::NotANumber),
            ("int", "[3]", TextProblem::NotANumber),
            ("int", "", TextProblem::NotANumber),
            ("int", "9223372036854775808", TextProblem::OutOfRange),
            ("int", "'9223372036854775808'", TextProblem::OutOfRange),
            ("float", "2.5%", TextProblem::NotANumber),
            ("float", "inf", TextProblem::NotFinite),
            ("float", "'-NaN'", TextProblem::NotFinite),
            ("float", "1e999", TextProblem::NotFinite),
            ("float", "'0x10'", TextProblem::NotANumber),
        ];
        for (ty, text, expected) in refused {
            assert_eq!(read(ty, text), Err(expected), "{ty} {text:?}");
        }
        assert_eq!(read("int", "9223372036854775807"), Ok(json!(i64::MAX)));
        assert_eq!(read("int", "-9223372036854775808"), Ok(json!(i64::MIN)));
    }

    #[test]
    fn booleans() {
        for yes in ["true", "True", "TRUE", "yes", "on", "1", "1.0", "'t'", "y"] {
            assert_eq!(read("bool", yes), Ok(json!(true)), "{yes}");
        }
        for no in ["false", "no", "OFF", "0", "f", "\"n\""] {
            assert_eq!(read("bool", no), Ok(json!(false)), "{no}");
        }
        for bad in ["2", "maybe", "True.", " yes", "null"] {
            assert_eq!(read("bool", bad), Err(TextProblem::NotABool), "{bad}");
        }
    }

    #[test]
    fn lists_and_dicts() {
        assert_eq!(
            read("list[str]", "['a', \"b\", c]"),
            Ok(json!(["a", "b", "c"]))
        );
        assert_eq!(read("list[str]", "()"), Ok(json!([])));
        assert_eq!(
            read("list[int]", "[1, '2', 3.0, true]"),
            Ok(json!([1, 2, 3, 1]))
        );
        assert_eq!(read("list[float]", "[1, '2.5']"), Ok(json!([1.0, 2.5])));
        assert_eq!(read("list[str]", "a, b"), Err(TextProblem::NotAList));
        assert_eq!(
            read("list[str]", "[\"a\", 1]"),
            Err(TextProblem::Item {
                index: 1,
                item: "1".into(),
                problem: Box::new(TextProblem::NotAString)
            })
        );
        assert_eq!(
            read("dict", "{'a': [1, None], b: {'c': True}, 2: 'x'}"),
            Ok(json!({"a": [1, null], "b": {"c": true}, "2": "x"}))
        );
        assert_eq!(read("dict", "[]"), Err(TextProblem::NotADict));
        assert_eq!(read("dict", "{'a': 1e999}"), Err(TextProblem::NotFinite));
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_TEXT_NESTING + 1),
            "]".repeat(MAX_TEXT_NESTING + 1)
        );
        assert_eq!(read("list[int]", &deep), Err(TextProblem::TooDeep));
    }

    #[test]
    fn literals() {
        let ty = "Literal['positive', 'negative', 'it\\'s']";
        for text in [
            "positive",
            " positive\n",
            "'positive'",
            "\"positive\"",
            "Literal['positive']",
            "Literal[positive]",
            "str[positive]",
        ] {
            assert_eq!(read(ty, text), Ok(json!("positive")), "{text:?}");
        }
        assert_eq!(read(ty, " it's "), Ok(json!("it's")));
        for bad in [
            "'it\\'s'",
            "Positive",
            "neutral",
            "positive.",
            "[\"positive\"]",
            "'positive",
        ] {
            assert!(
                matches!(read(ty, bad), Err(TextProblem::NotAValue(v)) if v.len() == 3),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn errors_name_the_field_the_type_and_the_text() {
        let err = FieldError::text(
            "confidence",
            &FieldType::Float,
            "very high",
            TextProblem::NotANumber,
        );
        assert_eq!(
            err.to_string(),
            "field `confidence` is declared `float`, but the text `very high` is not a number"
        );
        let label = FieldType::parse("Literal['a', 'b']").unwrap();
        let problem = label.parse_text("c").unwrap_err();
        assert_eq!(
            FieldError::text("label", &label, "c", problem).to_string(),
            "field `label` is declared `Literal[\"a\", \"b\"]`, but the text `c` is not one of \"a\", \"b\""
        );
        let problem = read("list[int]", "[1, 'x']").unwrap_err();
        assert_eq!(
            problem.to_string(),
            "has an item that is not a number: `\"x\"` (index 1)"
        );
        let err = FieldError::value("tags", &FieldType::ListStr, &json!("a".repeat(200)));
        assert_eq!(
            err.to_string(),
            format!(
                "field `tags` is declared `list[str]`, but its value is `\"{}... (202 chars)`",
                "a".repeat(crate::MAX_ECHO_CHARS - 1)
            )
        );
    }
}
