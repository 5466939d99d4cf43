//! The types a signature field declares (DSPy's `str`, `int`, `float`, `bool`, `list[str]`,
//! `list[int]`, `list[float]`, `dict`, `Literal["a", "b"]`): how they are written, and which
//! JSON values belong to each.
//!
//! Field values are [`serde_json::Value`]s. A field of type `str` holds a JSON string, `int` an
//! integer that fits `i64`, `float` any JSON number (integers are widened: see
//! [`SignatureField::conform`](crate::SignatureField::conform)), `bool` a boolean, `list[..]`
//! an array of those, `dict` a JSON object, `Literal[..]` one of its strings. Nothing else
//! crosses types: `"3"` is no `int`, `1` no `bool`.

use std::fmt;
use std::str::FromStr;

use serde_json::Value as JsonValue;

use crate::echo::excerpt;
use crate::literal_syntax::{QuoteError, Reader};
use crate::suggest::did_you_mean;

/// The type of a signature field.
///
/// ```
/// use dspex_core::FieldType;
///
/// let ty: FieldType = "Literal['positive', \"negative\"]".parse().unwrap();
/// assert_eq!(ty.to_string(), r#"Literal["positive", "negative"]"#);
/// assert!(ty.accepts(&serde_json::json!("negative")));
/// assert!(!ty.accepts(&serde_json::json!("neutral")));
///
/// let err = "List[str]".parse::<FieldType>().unwrap_err();
/// assert!(err.to_string().starts_with("unknown type `List[str]` (did you mean `list[str]`?); expected one of `str`, `int`"));
/// ```
#[derive(Debug, Clone, Eq)]
pub enum FieldType {
    /// `str`, the type of a field without annotation.
    Str,
    /// `int`: a 64-bit signed integer.
    Int,
    /// `float`: a finite 64-bit float.
    Float,
    /// `bool`.
    Bool,
    /// `list[str]`.
    ListStr,
    /// `list[int]`.
    ListInt,
    /// `list[float]`.
    ListFloat,
    /// `dict`: a JSON object.
    Dict,
    /// `Literal["a", "b"]`: one of these strings (at least one, no repeats). Two `Literal` types
    /// are the same type when they have the same values, in any order.
    Literal(Vec<String>),
}

/// How each field type is written, for error messages.
pub const FIELD_TYPE_NAMES: [&str; 9] = [
    "str",
    "int",
    "float",
    "bool",
    "list[str]",
    "list[int]",
    "list[float]",
    "dict",
    "Literal[\"a\", \"b\"]",
];

impl FieldType {
    /// Reads a type annotation as DSPy writes it. Whitespace is free (`list[ str ]`), `Literal`
    /// values take single or double quotes and JSON or Python escapes.
    pub fn parse(text: &str) -> Result<Self, FieldTypeError> {
        let written = text.trim();
        let error = |problem| FieldTypeError {
            written: written.to_owned(),
            field: None,
            problem,
        };
        if let Some(ty) = simple(written) {
            return Ok(ty);
        }
        if let Some(rest) = written.strip_prefix("Literal")
            && rest.trim_start().starts_with('[')
        {
            return literal_values(rest).map(FieldType::Literal).map_err(error);
        }
        Err(error(FieldTypeProblem::Unknown {
            suggestion: suggestion(written),
        }))
    }

    /// Whether `value` is a value of this type (an integer is a `float`).
    pub fn accepts(&self, value: &JsonValue) -> bool {
        let is_int = |v: &JsonValue| v.as_i64().is_some();
        let all = |v: &JsonValue, item: fn(&JsonValue) -> bool| {
            v.as_array().is_some_and(|items| items.iter().all(item))
        };
        match self {
            FieldType::Str => value.is_string(),
            FieldType::Int => is_int(value),
            FieldType::Float => value.is_number(),
            FieldType::Bool => value.is_boolean(),
            FieldType::ListStr => all(value, JsonValue::is_string),
            FieldType::ListInt => all(value, |v| v.as_i64().is_some()),
            FieldType::ListFloat => all(value, JsonValue::is_number),
            FieldType::Dict => value.is_object(),
            FieldType::Literal(values) => value
                .as_str()
                .is_some_and(|s| values.iter().any(|v| v == s)),
        }
    }

    /// The JSON schema of the values of this type, as a tool's argument schema shows it to an
    /// agent.
    ///
    /// ```
    /// use dspex_core::FieldType;
    ///
    /// let ty: FieldType = "list[int]".parse().unwrap();
    /// assert_eq!(ty.json_schema(), serde_json::json!({"type": "array", "items": {"type": "integer"}}));
    /// ```
    pub fn json_schema(&self) -> JsonValue {
        use serde_json::json;
        let array = |items: &str| json!({"type": "array", "items": {"type": items}});
        match self {
            FieldType::Str => json!({"type": "string"}),
            FieldType::Int => json!({"type": "integer"}),
            FieldType::Float => json!({"type": "number"}),
            FieldType::Bool => json!({"type": "boolean"}),
            FieldType::ListStr => array("string"),
            FieldType::ListInt => array("integer"),
            FieldType::ListFloat => array("number"),
            FieldType::Dict => json!({"type": "object"}),
            FieldType::Literal(values) => json!({"type": "string", "enum": values}),
        }
    }

    /// The values of a `Literal` type.
    pub fn literal_values(&self) -> Option<&[String]> {
        match self {
            FieldType::Literal(values) => Some(values),
            _ => None,
        }
    }
}

/// The types without parameters, and `list[..]` (whitespace inside the brackets is free).
fn simple(written: &str) -> Option<FieldType> {
    Some(match written {
        "str" => FieldType::Str,
        "int" => FieldType::Int,
        "float" => FieldType::Float,
        "bool" => FieldType::Bool,
        "dict" => FieldType::Dict,
        _ => {
            let inner = written
                .strip_prefix("list")?
                .trim_start()
                .strip_prefix('[')?
                .strip_suffix(']')?
                .trim();
            match inner {
                "str" => FieldType::ListStr,
                "int" => FieldType::ListInt,
                "float" => FieldType::ListFloat,
                _ => return None,
            }
        }
    })
}

/// The quoted values of `[..]` after `Literal`.
fn literal_values(brackets: &str) -> Result<Vec<String>, FieldTypeProblem> {
    let mut reader = Reader::new(brackets);
    reader.skip_ws();
    reader.eat('[');
    let mut values: Vec<String> = Vec::new();
    loop {
        reader.skip_ws();
        if reader.eat(']') {
            break;
        }
        let value = match reader.peek() {
            Some('"' | '\'') => reader.quoted().map_err(|e| match e {
                QuoteError::Unterminated => FieldTypeProblem::UnterminatedString,
                QuoteError::BadEscape(escape) => FieldTypeProblem::BadEscape(escape),
            })?,
            _ => {
                let token = reader.token(&[',', ']']);
                return Err(if token.is_empty() {
                    FieldTypeProblem::Expected("a quoted value")
                } else {
                    FieldTypeProblem::UnquotedValue(token.to_owned())
                });
            }
        };
        if values.contains(&value) {
            return Err(FieldTypeProblem::DuplicateValue(value));
        }
        values.push(value);
        reader.skip_ws();
        if !reader.eat(',') && reader.peek() != Some(']') {
            return Err(FieldTypeProblem::Expected("`,` or `]` after a value"));
        }
    }
    reader.skip_ws();
    if !reader.at_end() {
        return Err(FieldTypeProblem::Expected("nothing after the closing `]`"));
    }
    if values.is_empty() {
        return Err(FieldTypeProblem::EmptyLiteral);
    }
    Ok(values)
}

/// The field type that `written` most likely means: another spelling (`string`, `List[str]`,
/// `Dict[str, Any]`), another case, or a typo.
fn suggestion(written: &str) -> Option<String> {
    let compact: String = written.chars().filter(|c| !c.is_whitespace()).collect();
    let lower = compact.to_lowercase();
    let lower = lower.strip_prefix("typing.").unwrap_or(&lower);
    if lower
        .strip_prefix("literal")
        .is_some_and(|r| r.starts_with('['))
        && let Some(open) = written.find('[')
    {
        // `literal["a"]`: the values as written (their case matters), after `Literal`.
        return literal_values(&written[open..])
            .ok()
            .map(|v| FieldType::Literal(v).to_string());
    }
    let scalar = |name: &str| -> Option<&'static str> {
        Some(match name {
            "str" | "string" | "text" | "char" | "chars" => "str",
            "int" | "integer" | "i64" | "i32" | "u64" | "u32" | "usize" | "long" => "int",
            "float" | "double" | "f64" | "f32" | "number" | "decimal" | "real" => "float",
            "bool" | "boolean" => "bool",
            _ => return None,
        })
    };
    let inner = ["list[", "vec<", "array[", "sequence[", "tuple["]
        .iter()
        .find_map(|open| lower.strip_prefix(open))
        .map(|rest| rest.trim_end_matches([']', '>', '.']).trim_end_matches(','));
    let guess = match (inner, lower) {
        (Some(inner), _) => scalar(inner)
            .filter(|s| *s != "bool")
            .map(|s| format!("list[{s}]")),
        (None, "list" | "array" | "vec" | "sequence" | "tuple") => Some("list[str]".to_owned()),
        (None, l) if l == "dict" || l.starts_with("dict[") || l.starts_with("mapping") => {
            Some("dict".to_owned())
        }
        (None, "object" | "map" | "json" | "hashmap") => Some("dict".to_owned()),
        (None, l) => scalar(l).map(str::to_owned),
    };
    guess
        .filter(|g| g != written)
        .or_else(|| did_you_mean(written, FIELD_TYPE_NAMES[..8].iter().copied()))
}

impl PartialEq for FieldType {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (FieldType::Literal(a), FieldType::Literal(b)) => {
                a.len() == b.len() && a.iter().all(|v| b.contains(v))
            }
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

impl FromStr for FieldType {
    type Err = FieldTypeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldType::parse(s)
    }
}

impl fmt::Display for FieldType {
    /// The canonical form: `list[str]`, `Literal["a", "b"]` (values in double quotes, with JSON
    /// escapes that Python reads the same way).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            FieldType::Str => "str",
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::Bool => "bool",
            FieldType::ListStr => "list[str]",
            FieldType::ListInt => "list[int]",
            FieldType::ListFloat => "list[float]",
            FieldType::Dict => "dict",
            FieldType::Literal(values) => {
                f.write_str("Literal[")?;
                write_quoted_list(f, values)?;
                return f.write_str("]");
            }
        };
        f.write_str(name)
    }
}

/// `"a", "b"`: each value as [`write_quoted`] writes it, separated by commas.
pub(crate) fn write_quoted_list(f: &mut impl fmt::Write, values: &[String]) -> fmt::Result {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write_quoted(f, v)?;
    }
    Ok(())
}

/// `s` in double quotes with JSON escapes. A `>` after `-` is escaped too, so that a value
/// never puts a `->` into a signature (DSPy splits signatures on it before reading types).
pub(crate) fn write_quoted(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    let mut previous = '\0';
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '>' if previous == '-' => f.write_str("\\u003e")?,
            c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
        previous = c;
    }
    f.write_char('"')
}

/// A string that is not one of a `Literal` type's values: the error of `FromStr` on the enums
/// that the macros generate for `Literal` fields.
///
/// ```
/// use dspex_core::LiteralError;
///
/// let err = LiteralError::new("neutral", &["positive", "negative"]);
/// assert_eq!(err.to_string(), r#"`neutral` is not one of "positive", "negative""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralError {
    /// The string (an excerpt, see [`excerpt`]).
    pub value: String,
    /// The values it could have been.
    pub expected: Vec<String>,
}

impl LiteralError {
    /// `value` is none of `expected`.
    pub fn new(value: &str, expected: &[&str]) -> Self {
        Self {
            value: excerpt(value),
            expected: expected.iter().map(|v| (*v).to_owned()).collect(),
        }
    }
}

impl fmt::Display for LiteralError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not one of ", self.value)?;
        write_quoted_list(f, &self.expected)
    }
}

impl std::error::Error for LiteralError {}

/// A type annotation that is not one of the field types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTypeError {
    /// The annotation as written (trimmed).
    pub written: String,
    /// The field it annotates, when read as part of a signature.
    pub field: Option<String>,
    /// What is wrong.
    pub problem: FieldTypeProblem,
}

/// What is wrong with a type annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldTypeProblem {
    /// Not a field type; the likely meant one, if any.
    Unknown {
        /// The field type it most likely means (`str` for `string`).
        suggestion: Option<String>,
    },
    /// `Literal[]`.
    EmptyLiteral,
    /// `Literal[a]`: a value without quotes.
    UnquotedValue(String),
    /// A quoted value without its closing quote.
    UnterminatedString,
    /// A `\u` or `\x` escape without its hex digits.
    BadEscape(String),
    /// The same value twice.
    DuplicateValue(String),
    /// Something else than what was expected.
    Expected(&'static str),
}

impl fmt::Display for FieldTypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let written = &self.written;
        let field = self
            .field
            .as_ref()
            .map(|name| format!(" for field `{name}`"))
            .unwrap_or_default();
        let problem = match &self.problem {
            FieldTypeProblem::Unknown { suggestion } => {
                let hint = suggestion
                    .as_ref()
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                let names: Vec<String> =
                    FIELD_TYPE_NAMES.iter().map(|n| format!("`{n}`")).collect();
                return write!(
                    f,
                    "unknown type `{written}`{field}{hint}; expected one of {}",
                    names.join(", ")
                );
            }
            FieldTypeProblem::EmptyLiteral => {
                "`Literal` needs at least one value, like `Literal[\"a\", \"b\"]`".to_owned()
            }
            FieldTypeProblem::UnquotedValue(token) => {
                let mut quoted = String::new();
                write_quoted(&mut quoted, token)?;
                format!("`Literal` values are quoted strings: write `{quoted}`, not `{token}`")
            }
            FieldTypeProblem::UnterminatedString => "a quoted value is not closed".to_owned(),
            FieldTypeProblem::BadEscape(escape) => {
                format!("invalid escape `{escape}` in a quoted value")
            }
            FieldTypeProblem::DuplicateValue(value) => {
                let mut quoted = String::new();
                write_quoted(&mut quoted, value)?;
                format!("value {quoted} appears twice")
            }
            FieldTypeProblem::Expected(what) => format!("expected {what}"),
        };
        write!(f, "malformed type `{written}`{field}: {problem}")
    }
}

impl std::error::Error for FieldTypeError {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ty(text: &str) -> FieldType {
        FieldType::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn problem(text: &str) -> FieldTypeProblem {
        FieldType::parse(text).unwrap_err().problem
    }

    fn hint(text: &str) -> Option<String> {
        match problem(text) {
            FieldTypeProblem::Unknown { suggestion } => suggestion,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn reads_every_type() {
        assert_eq!(ty("str"), FieldType::Str);
        assert_eq!(ty(" int "), FieldType::Int);
        assert_eq!(ty("float"), FieldType::Float);
        assert_eq!(ty("bool"), FieldType::Bool);
        assert_eq!(ty("list [ str ]"), FieldType::ListStr);
        assert_eq!(ty("list[int]"), FieldType::ListInt);
        assert_eq!(ty("list[float]"), FieldType::ListFloat);
        assert_eq!(ty("dict"), FieldType::Dict);
        assert_eq!(
            ty(r#"Literal [ 'a', "b\"c", 'd\n', ]"#),
            FieldType::Literal(vec!["a".into(), "b\"c".into(), "d\n".into()])
        );
        assert_eq!(
            ty(r#"Literal["a", "b\"c", "d\n"]"#).to_string(),
            r#"Literal["a", "b\"c", "d\n"]"#
        );
    }

    #[test]
    fn literal_types_are_equal_in_any_order() {
        assert_eq!(ty("Literal['a', 'b']"), ty("Literal['b', 'a']"));
        assert_ne!(ty("Literal['a', 'b']"), ty("Literal['a']"));
        assert_ne!(ty("Literal['a']"), FieldType::Str);
    }

    #[test]
    fn a_value_never_writes_an_arrow() {
        let t = FieldType::Literal(vec!["a->b".into(), "\u{1}".into()]);
        assert_eq!(t.to_string(), r#"Literal["a-\u003eb", "\u0001"]"#);
        assert_eq!(ty(&t.to_string()), t);
    }

    #[test]
    fn malformed_literals() {
        assert_eq!(problem("Literal[]"), FieldTypeProblem::EmptyLiteral);
        assert_eq!(
            problem("Literal[a, b]"),
            FieldTypeProblem::UnquotedValue("a".into())
        );
        assert_eq!(problem("Literal['a"), FieldTypeProblem::UnterminatedString);
        assert_eq!(
            problem("Literal['a', 'a']"),
            FieldTypeProblem::DuplicateValue("a".into())
        );
        assert_eq!(
            problem("Literal['a' 'b']"),
            FieldTypeProblem::Expected("`,` or `]` after a value")
        );
        assert_eq!(
            problem("Literal['a'] x"),
            FieldTypeProblem::Expected("nothing after the closing `]`")
        );
        assert_eq!(
            problem("Literal['a',,]"),
            FieldTypeProblem::Expected("a quoted value")
        );
        assert_eq!(
            problem(r"Literal['\u12']"),
            FieldTypeProblem::BadEscape(r"\u12".into())
        );
        assert_eq!(
            FieldType::parse("Literal[a]").unwrap_err().to_string(),
            "malformed type `Literal[a]`: `Literal` values are quoted strings: write `\"a\"`, not `a`"
        );
    }

    #[test]
    fn unknown_types_suggest_the_meant_one() {
        assert_eq!(hint("string").as_deref(), Some("str"));
        assert_eq!(hint("Str").as_deref(), Some("str"));
        assert_eq!(hint("integer").as_deref(), Some("int"));
        assert_eq!(hint("f64").as_deref(), Some("float"));
        assert_eq!(hint("boolean").as_deref(), Some("bool"));
        assert_eq!(hint("List[str]").as_deref(), Some("list[str]"));
        assert_eq!(hint("list[string]").as_deref(), Some("list[str]"));
        assert_eq!(hint("Vec<i64>").as_deref(), Some("list[int]"));
        assert_eq!(hint("list").as_deref(), Some("list[str]"));
        assert_eq!(hint("Dict[str, Any]").as_deref(), Some("dict"));
        assert_eq!(hint("object").as_deref(), Some("dict"));
        assert_eq!(hint("flaot").as_deref(), Some("float"));
        assert_eq!(
            hint("typing.literal['a b', 'B']").as_deref(),
            Some(r#"Literal["a b", "B"]"#)
        );
        assert_eq!(hint("list[bool]"), None);
        assert_eq!(hint("Optional[str]"), None);
        assert_eq!(
            FieldType::parse("string").unwrap_err().to_string(),
            "unknown type `string` (did you mean `str`?); expected one of `str`, `int`, `float`, `bool`, `list[str]`, `list[int]`, `list[float]`, `dict`, `Literal[\"a\", \"b\"]`"
        );
    }

    #[test]
    fn values_belong_to_types() {
        let cases: [(&str, JsonValue, bool); 16] = [
            ("str", json!("x"), true),
            ("str", json!(1), false),
            ("int", json!(-3), true),
            ("int", json!(3.0), false),
            ("int", json!(u64::MAX), false),
            ("float", json!(3), true),
            ("float", json!("3"), false),
            ("bool", json!(true), true),
            ("bool", json!(1), false),
            ("list[str]", json!(["a", "b"]), true),
            ("list[str]", json!(["a", 1]), false),
            ("list[int]", json!([1, 2.5]), false),
            ("list[float]", json!([1, 2.5]), true),
            ("dict", json!({"a": [1]}), true),
            ("dict", json!([]), false),
            ("Literal['a']", json!("b"), false),
        ];
        for (t, value, expected) in cases {
            assert_eq!(ty(t).accepts(&value), expected, "{t} {value}");
        }
    }
}
