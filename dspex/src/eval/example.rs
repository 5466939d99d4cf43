//! One example: the inputs a program runs on and the outputs it is expected to give, by field
//! name, as JSON values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::data::Fields;

/// An example: named inputs for the program and named expected outputs (labels) for the
/// metric. Values are JSON values, typed as the data had them (`"Paris"`, `3`, `["a", "b"]`).
///
/// The program receives the inputs only. A field that is neither an input of the program nor
/// one of its outputs (an id column, a source) is kept among the expected values, where a
/// metric can read it.
///
/// ```
/// use dspex::eval::Example;
///
/// let ex = Example::new()
///     .with_input("question", "What is the capital of France?")
///     .with_expected("answer", "Paris");
/// assert_eq!(ex.input("question").and_then(|v| v.as_str()), Some("What is the capital of France?"));
/// assert_eq!(ex.expected("answer").and_then(|v| v.as_str()), Some("Paris"));
/// assert_eq!(ex.input_fields().get::<&str>("question")?, "What is the capital of France?");
/// # Ok::<(), dspex::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Example {
    inputs: BTreeMap<String, Json>,
    expected: BTreeMap<String, Json>,
}

impl Example {
    /// An example with no fields yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an input field.
    #[must_use]
    pub fn with_input(mut self, name: impl Into<String>, value: impl Into<Json>) -> Self {
        self.inputs.insert(name.into(), value.into());
        self
    }

    /// Adds an expected output (a label).
    #[must_use]
    pub fn with_expected(mut self, name: impl Into<String>, value: impl Into<Json>) -> Self {
        self.expected.insert(name.into(), value.into());
        self
    }

    /// The input `name`.
    pub fn input(&self, name: &str) -> Option<&Json> {
        self.inputs.get(name)
    }

    /// The expected value `name`.
    pub fn expected(&self, name: &str) -> Option<&Json> {
        self.expected.get(name)
    }

    /// Every input, sorted by name.
    pub fn inputs(&self) -> &BTreeMap<String, Json> {
        &self.inputs
    }

    /// Every expected value, sorted by name.
    pub fn expected_values(&self) -> &BTreeMap<String, Json> {
        &self.expected
    }

    /// The inputs as the fields a program runs on (the run checks them against the program's
    /// declared types).
    pub fn input_fields(&self) -> Fields {
        self.inputs
            .iter()
            .map(|(name, value)| (name.as_str(), value.clone()))
            .collect()
    }
}

/// A JSON value as text, as the text metrics compare it: a string is itself, anything else its
/// JSON text.
pub(crate) fn json_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Fields as JSON, for reports.
pub(crate) fn fields_json(fields: &Fields) -> BTreeMap<String, Json> {
    fields
        .iter()
        .map(|(name, value)| (name.to_owned(), value.clone()))
        .collect()
}
