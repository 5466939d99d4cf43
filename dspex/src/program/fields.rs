//! The values that flow along a chain (`Fields`) and the bound variable values a step sees
//! (`Params`).

use std::collections::BTreeMap;
use std::fmt;

use dspex_core::Value;

use crate::context::VarValue;
use crate::error::{Error, Result};

/// Named text fields: a program's input and output, and what each step reads and writes.
/// DSPy fields are text on the wire; a step that needs structure parses its field.
///
/// ```
/// use dspex::Fields;
///
/// let mut f = Fields::from([("question", "What is DSPy?")]);
/// f.insert("category", "definition");
/// assert_eq!(f.get("question"), Some("What is DSPy?"));
/// assert_eq!(f.require("category").unwrap(), "definition");
/// assert!(f.require("answer").is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(BTreeMap<String, String>);

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of a field, or a `MissingField` error naming it.
    pub fn require(&self, name: &str) -> Result<&str> {
        self.get(name).ok_or_else(|| Error::MissingField {
            field: name.to_owned(),
            context: "the fields".to_owned(),
        })
    }

    /// Sets a field.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.insert(name.into(), value.into());
    }

    /// Removes a field and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// Whether a field is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The fields, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for Fields {
    fn from(items: [(K, V); N]) -> Self {
        items.into_iter().collect()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl IntoIterator for Fields {
    type Item = (String, String);
    type IntoIter = std::collections::btree_map::IntoIter<String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}: {v:?}")?;
        }
        f.write_str("}")
    }
}

/// The values of a step's bound variables, by module parameter name (`model as llm_model`
/// makes the value of `model` available as `llm_model`). Read when the step runs.
///
/// ```
/// use dspex::{Params, Value};
///
/// let p = Params::from_iter([("temperature".to_owned(), Value::Float(0.7))]);
/// assert_eq!(p.get::<f64>("temperature").unwrap(), 0.7);
/// assert!(p.get::<i64>("temperature").is_err());
/// assert!(p.get::<f64>("top_p").is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params(BTreeMap<String, Value>);

impl Params {
    /// The value of a parameter as `T`.
    pub fn get<T: VarValue>(&self, param: &str) -> Result<T> {
        let value = self.value(param).ok_or_else(|| Error::MissingField {
            field: param.to_owned(),
            context: "the step's bound parameters".to_owned(),
        })?;
        T::from_value(value).ok_or_else(|| Error::TypeMismatch {
            name: param.to_owned(),
            expected: T::TYPE.name(),
            found: value.kind(),
        })
    }

    /// The untyped value of a parameter.
    pub fn value(&self, param: &str) -> Option<&Value> {
        self.0.get(param)
    }

    /// The parameters, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, Value)> for Params {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}
