//! The values that flow along a chain (`Fields`) and the bound variable values a step sees
//! (`Params`).

use std::collections::BTreeMap;
use std::fmt;

use dspex_core::{Value, value_excerpt};
use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;

use super::values::VarValue;
use crate::error::{Error, Result};

/// Named, typed fields: a program's input and output, and what each step reads and writes.
///
/// A field holds a JSON value ([`JsonValue`](crate::JsonValue)) of the type its signature
/// declares: `str` a string, `int` an integer, `float` a number, `bool` a boolean, `list[..]`
/// an array, `dict` an object ([`JsonObject`](crate::JsonObject)), `Literal[..]` one of its
/// strings. [`get`](Fields::get) reads a field as any type serde can deserialize (`&str`,
/// `String`, `i64`, `f64`, `bool`, `Vec<String>`, a struct of your own...);
/// [`insert`](Fields::insert) takes anything that converts to a JSON value (strings, numbers,
/// booleans, vectors of them, `json!(..)`), [`insert_serialized`](Fields::insert_serialized)
/// anything serde can serialize. The chain checks every program input and every step output
/// against its declared type (integers are accepted, and widened, where floats are declared;
/// nothing else crosses types).
///
/// ```
/// use dspex::{Fields, json};
///
/// let mut f = Fields::from([("question", "What is DSPy?")]);
/// f.insert("confidence", 0.9);
/// f.insert("sources", vec!["docs", "paper"]);
/// f.insert("meta", json!({"lang": "en"}));
/// assert_eq!(f.get::<&str>("question")?, "What is DSPy?");
/// assert_eq!(f.get::<f64>("confidence")?, 0.9);
/// assert_eq!(f.get::<Vec<String>>("sources")?, ["docs", "paper"]);
/// assert_eq!(f.value("meta"), Some(&json!({"lang": "en"})));
///
/// let err = f.get::<i64>("question").unwrap_err();
/// assert_eq!(err.to_string(), "field `question` holds `\"What is DSPy?\"`, which cannot be read as `i64`");
/// assert!(f.get::<String>("answer").is_err()); // missing
/// # Ok::<(), dspex::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(BTreeMap<String, JsonValue>);

impl Fields {
    /// No fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of a field as `T`: a `MissingField` error if it is absent, a `FieldRead`
    /// error if it does not deserialize as `T`. Borrows where `T` does (`&str`).
    pub fn get<'a, T: Deserialize<'a>>(&'a self, name: &str) -> Result<T> {
        let value = self.0.get(name).ok_or_else(|| Error::MissingField {
            field: name.to_owned(),
            context: "the fields".to_owned(),
        })?;
        T::deserialize(value).map_err(|source| read_error::<T>(name, value, source))
    }

    /// The JSON value of a field.
    pub fn value(&self, name: &str) -> Option<&JsonValue> {
        self.0.get(name)
    }

    /// Sets a field to anything that converts to a JSON value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<JsonValue>) {
        self.0.insert(name.into(), value.into());
    }

    /// Sets a field to the JSON form of `value`; a `FieldWrite` error, and no change, if serde
    /// cannot write it as JSON (a map whose keys are not strings).
    pub fn insert_serialized<T: Serialize + ?Sized>(
        &mut self,
        name: impl Into<String>,
        value: &T,
    ) -> Result<()> {
        let name = name.into();
        let value = serde_json::to_value(value).map_err(|source| Error::FieldWrite {
            field: name.clone(),
            source,
        })?;
        self.0.insert(name, value);
        Ok(())
    }

    /// Removes a field and returns its value.
    pub fn remove(&mut self, name: &str) -> Option<JsonValue> {
        self.0.remove(name)
    }

    /// Whether a field is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The fields, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &JsonValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
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

/// Field `name` holds `value`, which does not deserialize as `T`.
pub(crate) fn read_error<T>(name: &str, value: &JsonValue, source: serde_json::Error) -> Error {
    Error::FieldRead {
        field: name.to_owned(),
        found: value_excerpt(value),
        expected: short_type_name(std::any::type_name::<T>()),
        source,
    }
}

/// `alloc::vec::Vec<alloc::string::String>` as `Vec<String>`: every path segment but the last
/// left out.
fn short_type_name(full: &str) -> String {
    let mut short = String::new();
    for (i, segment) in full.split("::").enumerate() {
        if i > 0 {
            let kept = short
                .trim_end_matches(|c: char| c.is_alphanumeric() || c == '_')
                .len();
            short.truncate(kept);
        }
        short.push_str(segment);
    }
    short
}

impl<K: Into<String>, V: Into<JsonValue>, const N: usize> From<[(K, V); N]> for Fields {
    fn from(items: [(K, V); N]) -> Self {
        items.into_iter().collect()
    }
}

impl<K: Into<String>, V: Into<JsonValue>> FromIterator<(K, V)> for Fields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl IntoIterator for Fields {
    type Item = (String, JsonValue);
    type IntoIter = std::collections::btree_map::IntoIter<String, JsonValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl fmt::Display for Fields {
    /// `{confidence: 0.9, question: "What is DSPy?"}`: names, then values as JSON.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}: {v}")?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_lose_their_paths() {
        assert_eq!(
            short_type_name("alloc::vec::Vec<alloc::string::String>"),
            "Vec<String>"
        );
        assert_eq!(
            short_type_name("core::option::Option<(i64, &str)>"),
            "Option<(i64, &str)>"
        );
        assert_eq!(short_type_name("f64"), "f64");
    }

    #[test]
    fn a_map_without_string_keys_cannot_be_a_field() {
        let mut f = Fields::new();
        let err = f
            .insert_serialized("m", &BTreeMap::from([((1, 2), 3)]))
            .unwrap_err();
        assert!(
            matches!(&err, Error::FieldWrite { field, .. } if field == "m"),
            "{err}"
        );
        assert!(f.is_empty());
        f.insert_serialized("xs", &[1, 2]).unwrap();
        assert_eq!(f.get::<Vec<i64>>("xs").unwrap(), [1, 2]);
    }
}
