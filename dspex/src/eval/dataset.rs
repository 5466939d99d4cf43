//! Data sets: examples read from JSONL or CSV against a schema (which fields are inputs and
//! which are expected outputs, and their types when a signature gives them), or built from a
//! `Vec`; seeded shuffling and splitting.

use std::fmt;
use std::path::Path;

use dspex_core::program::ProgramSpec;
use dspex_core::{Signature, SignatureField};
use serde_json::{Map, Value as Json};

use super::example::Example;
use crate::error::{Error, Result};
use crate::rng::SeededRng;

/// The type a signature annotation gives a field, as far as data can be checked against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    /// `str`.
    Str,
    /// `int`.
    Int,
    /// `float` (an integer is accepted).
    Float,
    /// `bool`.
    Bool,
    /// `list[...]`.
    List,
    /// `dict[...]`.
    Dict,
    /// No annotation, or one data is not checked against.
    Any,
}

impl FieldKind {
    fn of(field: &SignatureField) -> Self {
        let Some(annotation) = field.annotation.as_deref() else {
            return FieldKind::Any;
        };
        let base = annotation.split('[').next().unwrap_or_default().trim();
        match base {
            "str" => FieldKind::Str,
            "int" => FieldKind::Int,
            "float" => FieldKind::Float,
            "bool" => FieldKind::Bool,
            "list" | "List" => FieldKind::List,
            "dict" | "Dict" => FieldKind::Dict,
            _ => FieldKind::Any,
        }
    }

    fn name(self) -> &'static str {
        match self {
            FieldKind::Str => "a string (`str`)",
            FieldKind::Int => "an integer (`int`)",
            FieldKind::Float => "a number (`float`)",
            FieldKind::Bool => "a boolean (`bool`)",
            FieldKind::List => "a list",
            FieldKind::Dict => "an object (`dict`)",
            FieldKind::Any => "any value",
        }
    }

    fn accepts(self, value: &Json) -> bool {
        match self {
            FieldKind::Str => value.is_string(),
            FieldKind::Int => value.is_i64() || value.is_u64(),
            FieldKind::Float => value.is_number(),
            FieldKind::Bool => value.is_boolean(),
            FieldKind::List => value.is_array(),
            FieldKind::Dict => value.is_object(),
            FieldKind::Any => true,
        }
    }

    /// Reads a CSV cell: text for strings, the value for numbers and booleans, JSON for lists
    /// and objects; untyped cells stay text.
    fn parse_cell(self, cell: &str) -> std::result::Result<Json, String> {
        let refuse = || format!("{cell:?} is not {}", self.name());
        match self {
            FieldKind::Str | FieldKind::Any => Ok(Json::from(cell)),
            FieldKind::Int => cell
                .trim()
                .parse::<i64>()
                .map(Json::from)
                .map_err(|_| refuse()),
            FieldKind::Float => cell
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(Json::from)
                .ok_or_else(refuse),
            FieldKind::Bool => match cell.trim() {
                "true" => Ok(Json::Bool(true)),
                "false" => Ok(Json::Bool(false)),
                _ => Err(refuse()),
            },
            FieldKind::List | FieldKind::Dict => serde_json::from_str::<Json>(cell)
                .ok()
                .filter(|v| self.accepts(v))
                .ok_or_else(refuse),
        }
    }
}

/// One named column of a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    kind: FieldKind,
}

/// Which fields of a record are the program's inputs and which are expected outputs, and, when
/// built from a signature, the type each must have.
///
/// ```
/// use dspex::eval::Schema;
///
/// let schema = Schema::new(["question"], ["answer"]);
/// assert_eq!(schema.to_string(), "question -> answer");
/// let typed = Schema::from_signature(&"question: str, k: int -> answer".parse().unwrap());
/// assert_eq!(typed.to_string(), "question: str, k: int -> answer");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    inputs: Vec<Column>,
    expected: Vec<Column>,
    /// The signature the types come from, for display.
    signature: Option<Signature>,
}

impl Schema {
    /// Untyped: these inputs and expected outputs, each of any JSON type.
    pub fn new<I, O>(inputs: I, expected: O) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
        O: IntoIterator,
        O::Item: Into<String>,
    {
        let untyped = |name: String| Column {
            name,
            kind: FieldKind::Any,
        };
        Self {
            inputs: inputs.into_iter().map(|n| untyped(n.into())).collect(),
            expected: expected.into_iter().map(|n| untyped(n.into())).collect(),
            signature: None,
        }
    }

    /// The signature's inputs and outputs, typed by their annotations: `str`, `int`, `float`
    /// (integers accepted), `bool`, `list[..]`, `dict[..]`; other annotations and fields
    /// without one accept any value.
    pub fn from_signature(signature: &Signature) -> Self {
        let columns = |fields: &[SignatureField]| {
            fields
                .iter()
                .map(|f| Column {
                    name: f.name.clone(),
                    kind: FieldKind::of(f),
                })
                .collect()
        };
        Self {
            inputs: columns(&signature.inputs),
            expected: columns(&signature.outputs),
            signature: Some(signature.clone()),
        }
    }

    /// The schema of a program: its signature's, or (for a program without a signature) its
    /// input fields and the last step's outputs, untyped.
    pub fn of(spec: &ProgramSpec) -> Self {
        match &spec.signature {
            Some(signature) => Self::from_signature(signature),
            None => Self::new(spec.input_names(), spec.output_names()),
        }
    }

    /// Builds an example from a JSON object (one record), checking the schema's fields.
    fn example(&self, mut record: Map<String, Json>, at: &Location<'_>) -> Result<Example> {
        let mut example = Example::new();
        for (column, is_input) in self
            .inputs
            .iter()
            .map(|c| (c, true))
            .chain(self.expected.iter().map(|c| (c, false)))
        {
            let value = record.remove(&column.name).ok_or_else(|| {
                at.field(&column.name)
                    .error("the field is missing".to_owned())
            })?;
            if !column.kind.accepts(&value) {
                return Err(at
                    .field(&column.name)
                    .error(format!("{value} is not {}", column.kind.name())));
            }
            example = if is_input {
                example.with_input(&column.name, value)
            } else {
                example.with_expected(&column.name, value)
            };
        }
        for (name, value) in record {
            example = example.with_expected(name, value);
        }
        Ok(example)
    }

    fn kind_of(&self, name: &str) -> FieldKind {
        self.inputs
            .iter()
            .chain(&self.expected)
            .find(|c| c.name == name)
            .map_or(FieldKind::Any, |c| c.kind)
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(signature) = &self.signature {
            return write!(f, "{signature}");
        }
        let names = |columns: &[Column]| {
            columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "{} -> {}", names(&self.inputs), names(&self.expected))
    }
}

/// Where in a data source a problem is: the file, the line, the field.
struct Location<'a> {
    source: &'a str,
    line: Option<u64>,
    field: Option<&'a str>,
}

impl<'a> Location<'a> {
    fn new(source: &'a str) -> Self {
        Self {
            source,
            line: None,
            field: None,
        }
    }

    fn line(&self, line: u64) -> Location<'a> {
        Location {
            line: Some(line),
            ..*self
        }
    }

    fn field(&self, field: &'a str) -> Location<'a> {
        Location {
            field: Some(field),
            ..*self
        }
    }

    fn error(&self, message: String) -> Error {
        let mut location = self.source.to_owned();
        if let Some(line) = self.line {
            location.push_str(&format!(" line {line}"));
        }
        if let Some(field) = self.field {
            location.push_str(&format!(", field `{field}`"));
        }
        Error::Dataset { location, message }
    }
}

/// A list of examples, in order.
///
/// ```
/// use dspex::eval::{Dataset, Example, Schema};
///
/// let jsonl = "{\"question\": \"2+2?\", \"answer\": \"4\"}\n{\"question\": \"3+3?\"}\n";
/// let err = Dataset::from_jsonl_str("dev.jsonl", jsonl, &Schema::new(["question"], ["answer"])).unwrap_err();
/// assert_eq!(err.to_string(), "dev.jsonl line 2, field `answer`: the field is missing");
///
/// let data = Dataset::from_examples((0..10).map(|i| Example::new().with_input("n", i)));
/// let (train, dev) = data.shuffled(7).split(0.8)?;
/// assert_eq!((train.len(), dev.len()), (8, 2));
/// assert_eq!(data.shuffled(7), data.shuffled(7)); // same seed, same order
/// # Ok::<(), dspex::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    examples: Vec<Example>,
}

impl Dataset {
    /// A data set of these examples, in order.
    pub fn from_examples(examples: impl IntoIterator<Item = Example>) -> Self {
        Self {
            examples: examples.into_iter().collect(),
        }
    }

    /// Reads a JSONL file: one JSON object per line (blank lines are skipped). Each record must
    /// hold every field of `schema`, of the schema's type; its other fields are kept as
    /// expected values. An error names the file, the line and the field.
    pub fn from_jsonl(path: impl AsRef<Path>, schema: &Schema) -> Result<Self> {
        let (name, text) = read_source(path.as_ref())?;
        Self::from_jsonl_str(&name, &text, schema)
    }

    /// Reads JSONL text; `source` names it in errors.
    pub fn from_jsonl_str(source: &str, text: &str, schema: &Schema) -> Result<Self> {
        let at = Location::new(source);
        let mut examples = Vec::new();
        for (index, line) in (1u64..).zip(text.lines()) {
            if line.trim().is_empty() {
                continue;
            }
            let at = at.line(index);
            let record = match serde_json::from_str::<Json>(line) {
                Ok(Json::Object(record)) => record,
                Ok(other) => {
                    return Err(at.error(format!("expected a JSON object, found {other}")));
                }
                Err(e) => return Err(at.error(format!("malformed JSON: {e}"))),
            };
            examples.push(schema.example(record, &at)?);
        }
        Ok(Self { examples })
    }

    /// Reads a CSV file with a header row naming the fields. Cells are text; a field the schema
    /// types is parsed as that type (`int`, `float`, `bool` as `true`/`false`, `list`/`dict` as
    /// JSON). An error names the file, the line and the field.
    pub fn from_csv(path: impl AsRef<Path>, schema: &Schema) -> Result<Self> {
        let (name, text) = read_source(path.as_ref())?;
        Self::from_csv_str(&name, &text, schema)
    }

    /// Reads CSV text; `source` names it in errors.
    pub fn from_csv_str(source: &str, text: &str, schema: &Schema) -> Result<Self> {
        let at = Location::new(source);
        let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| at.line(1).error(format!("malformed CSV header: {e}")))?
            .iter()
            .map(str::to_owned)
            .collect();
        for column in schema.inputs.iter().chain(&schema.expected) {
            if !header.contains(&column.name) {
                return Err(at
                    .line(1)
                    .field(&column.name)
                    .error("the header has no such column".to_owned()));
            }
        }
        let mut examples = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, csv::Position::line);
                at.line(line).error(format!("malformed CSV: {e}"))
            })?;
            let line = record.position().map_or(0, csv::Position::line);
            let at = at.line(line);
            let mut object = Map::new();
            for (name, cell) in header.iter().zip(record.iter()) {
                let value = schema
                    .kind_of(name)
                    .parse_cell(cell)
                    .map_err(|message| at.field(name).error(message))?;
                object.insert(name.clone(), value);
            }
            examples.push(schema.example(object, &at)?);
        }
        Ok(Self { examples })
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The examples, in order.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    /// The examples, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Example> {
        self.examples.iter()
    }

    /// The same examples in an order that only `seed` decides: the same on every run and
    /// every platform (a Fisher-Yates shuffle driven by xoshiro256** seeded through SplitMix64,
    /// both implemented in dspex).
    #[must_use]
    pub fn shuffled(&self, seed: u64) -> Self {
        let mut examples = self.examples.clone();
        SeededRng::new(seed).shuffle(&mut examples);
        Self { examples }
    }

    /// Splits in order: the first `fraction` of the examples (rounded to the nearest count)
    /// and the rest. Shuffle first for a random split. `fraction` must be in `[0, 1]`.
    pub fn split(&self, fraction: f64) -> Result<(Self, Self)> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(Error::InvalidOption {
                option: "split fraction".to_owned(),
                message: format!("{fraction} is not in [0, 1]"),
            });
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let at = ((self.examples.len() as f64) * fraction).round() as usize;
        let (first, rest) = self.examples.split_at(at.min(self.examples.len()));
        Ok((
            Self::from_examples(first.to_vec()),
            Self::from_examples(rest.to_vec()),
        ))
    }

    /// The first `n` examples (all of them if there are fewer).
    #[must_use]
    pub fn take(&self, n: usize) -> Self {
        Self::from_examples(self.examples.iter().take(n).cloned())
    }
}

/// The name errors give a file, and its text.
fn read_source(path: &Path) -> Result<(String, String)> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Location::new(&name).error(format!("cannot read the file: {e}")))?;
    Ok((name, text))
}

impl FromIterator<Example> for Dataset {
    fn from_iter<I: IntoIterator<Item = Example>>(iter: I) -> Self {
        Self::from_examples(iter)
    }
}

impl<'a> IntoIterator for &'a Dataset {
    type Item = &'a Example;
    type IntoIter = std::slice::Iter<'a, Example>;
    fn into_iter(self) -> Self::IntoIter {
        self.examples.iter()
    }
}
