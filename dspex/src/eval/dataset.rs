//! Data sets: examples read from JSONL or CSV against a schema (which fields are inputs and
//! which are expected outputs, and their types when a signature gives them), or built from a
//! `Vec`; seeded shuffling and splitting.

use std::fmt;
use std::path::Path;

use dspex_core::program::ProgramSpec;
use dspex_core::{FieldType, Signature, SignatureField};
use serde_json::{Map, Value as Json};

use super::example::Example;
use crate::error::{Error, Result};
use crate::program::BaseProgram;
use crate::util::rng::SeededRng;

/// One named column of a schema, typed when the schema comes from a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    /// The declared field, `None` for a column of any JSON type.
    field: Option<SignatureField>,
}

impl Column {
    fn untyped(name: String) -> Self {
        Self { name, field: None }
    }

    /// Checks a JSON value against the column's type (integers are accepted for floats); the
    /// error names the field, its type and the value.
    fn check(&self, value: Json) -> std::result::Result<Json, String> {
        match &self.field {
            None => Ok(value),
            Some(field) => field.conform(value).map_err(|e| e.to_string()),
        }
    }

    /// Checks an expected value: a value of the column's type, or a non-empty list of them
    /// (several references, of which a metric takes the best match) when the type is not a
    /// list itself.
    fn check_expected(&self, value: Json) -> std::result::Result<Json, String> {
        let references = matches!(&value, Json::Array(items) if !items.is_empty())
            && self.field.as_ref().is_some_and(|f| {
                !matches!(
                    f.ty,
                    FieldType::ListStr | FieldType::ListInt | FieldType::ListFloat
                )
            });
        match value {
            Json::Array(items) if references => items
                .into_iter()
                .map(|item| self.check(item))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(Json::Array),
            value => self.check(value),
        }
    }

    /// Reads a CSV cell: text for `str`, `Literal` and untyped columns; for the other types the
    /// cell read as DSPy reads an LM's text for the type (numbers, booleans, JSON or Python
    /// lists and objects).
    fn parse_cell(&self, cell: &str) -> std::result::Result<Json, String> {
        match &self.field {
            None => Ok(Json::from(cell)),
            Some(field) if matches!(field.ty, FieldType::Str | FieldType::Literal(_)) => {
                self.check(Json::from(cell))
            }
            Some(field) => field.parse_text(cell).map_err(|e| e.to_string()),
        }
    }
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
/// assert_eq!(typed.to_string(), "question, k: int -> answer");
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
        Self {
            inputs: inputs
                .into_iter()
                .map(|n| Column::untyped(n.into()))
                .collect(),
            expected: expected
                .into_iter()
                .map(|n| Column::untyped(n.into()))
                .collect(),
            signature: None,
        }
    }

    /// The signature's inputs and outputs, typed as the signature declares them (a field
    /// without a type is `str`; integers are accepted, and widened, for floats).
    pub fn from_signature(signature: &Signature) -> Self {
        let columns = |fields: &[SignatureField]| {
            fields
                .iter()
                .map(|f| Column {
                    name: f.name.clone(),
                    field: Some(f.clone()),
                })
                .collect()
        };
        Self {
            inputs: columns(&signature.inputs),
            expected: columns(&signature.outputs),
            signature: Some(signature.clone()),
        }
    }

    /// The schema of `program` (generated or built at run time, like
    /// [`SearchSpace::of`](crate::tune::SearchSpace::of)): its signature's, or (for a program
    /// without a signature) its input fields and the last step's outputs, untyped.
    pub fn of<P: BaseProgram + ?Sized>(program: &P) -> Self {
        Self::of_spec(program.program_spec())
    }

    /// The schema of a program's declaration (see [`of`](Self::of)).
    pub fn of_spec(spec: &ProgramSpec) -> Self {
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
            let value = if is_input {
                column.check(value)
            } else {
                column.check_expected(value)
            }
            // The message names the field itself.
            .map_err(|message| at.error(message))?;
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

    /// The column `name`; an untyped one for a field the schema does not name (kept as the
    /// example's extra expected values).
    fn column(&self, name: &str) -> Column {
        self.inputs
            .iter()
            .chain(&self.expected)
            .find(|c| c.name == name)
            .cloned()
            .unwrap_or_else(|| Column::untyped(name.to_owned()))
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
                    .column(name)
                    .parse_cell(cell)
                    .map_err(|message| at.error(message))?;
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
