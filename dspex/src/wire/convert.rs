//! Conversions between the wire types of [`proto`](super::proto) and the Rust types: variable
//! values, constraints and records (with the request-size limits of [`limits`](super::limits)),
//! and the typed signature fields and module configuration of python steps (to and from JSON
//! values). An error names the request field at fault (`writes[2].value`) and the rule it
//! broke; the rules of variables themselves (types, constraints) are never checked here but by
//! dspex-core, through the session's table.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use dspex_core::{Constraints, Number, Value, VarType};

use super::proto;
#[cfg(feature = "python")]
use {
    super::limits::{
        MAX_CHOICES, MAX_DESCRIPTION_BYTES, MAX_EMBEDDING_DIMENSIONS, MAX_METADATA_BYTES,
        MAX_METADATA_ENTRIES, MAX_PATTERN_BYTES, MAX_STRING_BYTES,
    },
    dspex_core::program::{ConfigValue, ToolRef},
    dspex_core::{
        FieldError as DeclaredFieldError, FieldType, Found, Pattern, SignatureField, excerpt,
    },
    serde_json::Value as Json,
    std::collections::{BTreeMap, HashMap},
};

/// A request field that cannot be converted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    /// The field, as a path into the request (`writes[2].value`).
    pub(crate) field: String,
    /// What is wrong with it.
    pub(crate) problem: String,
    /// Whether the field breaks a size limit (as opposed to being malformed).
    pub(crate) limit: bool,
}

impl FieldError {
    pub(crate) fn malformed(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
            limit: false,
        }
    }

    #[cfg(feature = "python")]
    pub(crate) fn too_large(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
            limit: true,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.problem)
    }
}

type Result<T> = std::result::Result<T, FieldError>;

#[cfg(feature = "python")]
/// Checks a string field against a byte limit named `limit_name`.
pub(crate) fn check_len(field: &str, s: &str, max: usize, limit_name: &str) -> Result<()> {
    if s.len() > max {
        return Err(FieldError::too_large(
            field,
            format!(
                "{} bytes is over the limit of {max} bytes ({limit_name})",
                s.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(feature = "python")]
/// Checks a count against a limit named `limit_name`.
pub(crate) fn check_count(
    field: &str,
    count: usize,
    max: usize,
    what: &str,
    limit_name: &str,
) -> Result<()> {
    if count > max {
        return Err(FieldError::too_large(
            field,
            format!("{count} {what} is over the limit of {max} ({limit_name})"),
        ));
    }
    Ok(())
}

// ---- values -------------------------------------------------------------------------------

/// A value for the wire.
pub(crate) fn value_to_proto(value: &Value) -> proto::Value {
    use proto::value::Kind;
    let kind = match value {
        Value::Float(x) => Kind::FloatValue(*x),
        Value::Integer(i) => Kind::IntegerValue(*i),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Boolean(b) => Kind::BooleanValue(*b),
        Value::Embedding(e) => Kind::EmbeddingValue(proto::Embedding { values: e.clone() }),
    };
    proto::Value { kind: Some(kind) }
}

#[cfg(feature = "python")]
/// A value from the wire; `field` names it in errors. Sizes are limited here; the type and the
/// constraints are the variable's business.
pub(crate) fn value_from_proto(field: &str, value: Option<proto::Value>) -> Result<Value> {
    use proto::value::Kind;
    let kind = value
        .and_then(|v| v.kind)
        .ok_or_else(|| FieldError::malformed(field, "a value is required"))?;
    Ok(match kind {
        Kind::FloatValue(x) => Value::Float(x),
        Kind::IntegerValue(i) => Value::Integer(i),
        Kind::StringValue(s) => {
            check_len(field, &s, MAX_STRING_BYTES, "MAX_STRING_BYTES")?;
            Value::String(s)
        }
        Kind::BooleanValue(b) => Value::Boolean(b),
        Kind::EmbeddingValue(e) => {
            check_count(
                field,
                e.values.len(),
                MAX_EMBEDDING_DIMENSIONS,
                "dimensions",
                "MAX_EMBEDDING_DIMENSIONS",
            )?;
            Value::Embedding(e.values)
        }
    })
}

// ---- signature fields and module configuration -------------------------------------------

#[cfg(feature = "python")]
/// A signature field's value for the wire, as its declared type carries it: `str` and
/// `Literal[...]` as `text`, `int` as `integer`, `float` as `float` (an integer widened),
/// `bool` as `boolean`, `list[str]`, `list[int]` and `list[float]` as `strings`, `integers`
/// and `floats`, `dict` as `json_object` (the object's JSON text, so that integers stay
/// integers). A value not of the declared type is an error naming the field, the type and the
/// value.
pub(crate) fn field_to_proto(
    field: &SignatureField,
    value: &Json,
) -> std::result::Result<proto::FieldValue, DeclaredFieldError> {
    use proto::field_value::Kind;
    field.check(value)?;
    let wrong = || DeclaredFieldError::value(&field.name, &field.ty, value);
    let items = value.as_array().map(Vec::as_slice).unwrap_or_default();
    let kind = match &field.ty {
        FieldType::Str | FieldType::Literal(_) => {
            Kind::Text(value.as_str().ok_or_else(wrong)?.to_owned())
        }
        FieldType::Int => Kind::Integer(value.as_i64().ok_or_else(wrong)?),
        FieldType::Float => Kind::Float(value.as_f64().ok_or_else(wrong)?),
        FieldType::Bool => Kind::Boolean(value.as_bool().ok_or_else(wrong)?),
        FieldType::ListStr => Kind::Strings(proto::StringList {
            values: items
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(wrong)?,
        }),
        FieldType::ListInt => Kind::Integers(proto::IntegerList {
            values: items
                .iter()
                .map(Json::as_i64)
                .collect::<Option<_>>()
                .ok_or_else(wrong)?,
        }),
        FieldType::ListFloat => Kind::Floats(proto::FloatList {
            values: items
                .iter()
                .map(Json::as_f64)
                .collect::<Option<_>>()
                .ok_or_else(wrong)?,
        }),
        FieldType::Dict => Kind::JsonObject(value.to_string()),
    };
    Ok(proto::FieldValue { kind: Some(kind) })
}

#[cfg(feature = "python")]
/// A declared field's value from the wire, read as its declared type and in the field's
/// canonical form (see [`SignatureField::conform`]). A value of another kind, or a malformed
/// one (a `json_object` that is not a JSON object, a float that is not finite), is an error
/// naming the field, the type and the value.
pub(crate) fn field_from_proto(
    field: &SignatureField,
    value: proto::FieldValue,
) -> std::result::Result<Json, DeclaredFieldError> {
    let json = wire_json(value).map_err(|raw| DeclaredFieldError {
        field: field.name.clone(),
        expected: field.ty.clone(),
        found: Found::Value(excerpt(&raw)),
    })?;
    field.conform(json)
}

#[cfg(feature = "python")]
/// A field a signature does not declare (DSPy's `reasoning`), as text: a `text` as it is, any
/// other kind as its JSON.
pub(crate) fn extra_field_from_proto(value: proto::FieldValue) -> Json {
    match wire_json(value) {
        Ok(Json::String(text)) | Err(text) => Json::String(text),
        Ok(other) => Json::String(other.to_string()),
    }
}

#[cfg(feature = "python")]
/// The JSON form of a wire field value, whatever its kind; for a malformed one, its raw text.
fn wire_json(value: proto::FieldValue) -> std::result::Result<Json, String> {
    use proto::field_value::Kind;
    let finite = |x: f64| {
        serde_json::Number::from_f64(x)
            .map(Json::Number)
            .ok_or(x.to_string())
    };
    Ok(match value.kind.ok_or_else(|| "no value".to_owned())? {
        Kind::Text(s) => Json::String(s),
        Kind::Integer(i) => Json::from(i),
        Kind::Float(x) => finite(x)?,
        Kind::Boolean(b) => Json::Bool(b),
        Kind::Strings(list) => Json::from(list.values),
        Kind::Integers(list) => Json::from(list.values),
        Kind::Floats(list) => Json::Array(
            list.values
                .into_iter()
                .map(finite)
                .collect::<std::result::Result<_, _>>()?,
        ),
        Kind::JsonObject(text) => match serde_json::from_str::<Json>(&text) {
            Ok(object @ Json::Object(_)) => object,
            Ok(_) | Err(_) => return Err(text),
        },
    })
}

#[cfg(feature = "python")]
/// A python step's `with` value for the wire (`CreateModuleRequest.config`): a list of
/// strings, and a list of Python tools (their dotted paths), as `strings`. A Rust tool has no
/// wire form (the program check refuses it before anything reaches a worker).
pub(crate) fn module_config_to_proto(key: &str, value: &ConfigValue) -> Result<proto::ConfigValue> {
    use proto::config_value::Kind;
    let kind = match value {
        ConfigValue::Integer(i) => Kind::Integer(*i),
        ConfigValue::Float(x) => Kind::Float(*x),
        ConfigValue::String(s) => Kind::String(s.clone()),
        ConfigValue::Boolean(b) => Kind::Boolean(*b),
        ConfigValue::Strings(values) => Kind::Strings(proto::StringList {
            values: values.clone(),
        }),
        ConfigValue::Tools(tools) => Kind::Strings(proto::StringList {
            values: tools
                .iter()
                .map(|tool| match tool {
                    ToolRef::Python(path) => Ok(path.clone()),
                    ToolRef::Rust(path) => Err(FieldError::malformed(
                        key,
                        format!("the Rust tool `{path}` cannot be sent to a python worker"),
                    )),
                })
                .collect::<Result<_>>()?,
        }),
    };
    Ok(proto::ConfigValue { kind: Some(kind) })
}

#[cfg(feature = "python")]
/// A module configuration value or an LM setting for the wire: a float, an integer, a string, a
/// boolean or a list of strings; anything else has no wire form.
pub(crate) fn config_to_proto(key: &str, value: &Json) -> Result<proto::ConfigValue> {
    use proto::config_value::Kind;
    let kind = match value {
        Json::String(s) => Kind::String(s.clone()),
        Json::Bool(b) => Kind::Boolean(*b),
        Json::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Kind::Integer(i),
            (None, Some(x)) => Kind::Float(x),
            (None, None) => {
                return Err(FieldError::malformed(key, format!("{n} is out of range")));
            }
        },
        Json::Array(items) => match items.iter().map(Json::as_str).collect::<Option<Vec<_>>>() {
            Some(strings) => Kind::Strings(proto::StringList {
                values: strings.into_iter().map(str::to_owned).collect(),
            }),
            None => {
                return Err(FieldError::malformed(
                    key,
                    "a list setting holds only strings",
                ));
            }
        },
        Json::Null | Json::Object(_) => {
            return Err(FieldError::malformed(
                key,
                "a setting is a float, an integer, a string, a boolean or a list of strings",
            ));
        }
    };
    Ok(proto::ConfigValue { kind: Some(kind) })
}

// ---- types and sources --------------------------------------------------------------------

/// A variable type for the wire.
pub(crate) fn var_type_to_proto(ty: VarType) -> proto::VariableType {
    match ty {
        VarType::Float => proto::VariableType::Float,
        VarType::Integer => proto::VariableType::Integer,
        VarType::String => proto::VariableType::String,
        VarType::Boolean => proto::VariableType::Boolean,
        VarType::Choice => proto::VariableType::Choice,
        VarType::Module => proto::VariableType::Module,
        VarType::Embedding => proto::VariableType::Embedding,
    }
}

/// A variable type from the wire.
pub(crate) fn var_type_from_proto(field: &str, ty: i32) -> Result<VarType> {
    let expected = "expected one of VARIABLE_TYPE_FLOAT, VARIABLE_TYPE_INTEGER, VARIABLE_TYPE_STRING, VARIABLE_TYPE_BOOLEAN, VARIABLE_TYPE_CHOICE, VARIABLE_TYPE_MODULE, VARIABLE_TYPE_EMBEDDING";
    match proto::VariableType::try_from(ty) {
        Ok(proto::VariableType::Float) => Ok(VarType::Float),
        Ok(proto::VariableType::Integer) => Ok(VarType::Integer),
        Ok(proto::VariableType::String) => Ok(VarType::String),
        Ok(proto::VariableType::Boolean) => Ok(VarType::Boolean),
        Ok(proto::VariableType::Choice) => Ok(VarType::Choice),
        Ok(proto::VariableType::Module) => Ok(VarType::Module),
        Ok(proto::VariableType::Embedding) => Ok(VarType::Embedding),
        Ok(proto::VariableType::Unspecified) => Err(FieldError::malformed(
            field,
            format!("the variable type is unspecified; {expected}"),
        )),
        Err(_) => Err(FieldError::malformed(
            field,
            format!("unknown variable type {ty}; {expected}"),
        )),
    }
}

// ---- constraints --------------------------------------------------------------------------

fn number_to_proto(n: Number) -> proto::Number {
    use proto::number::Kind;
    proto::Number {
        kind: Some(match n {
            Number::Int(i) => Kind::Integer(i),
            Number::Float(x) => Kind::Float(x),
        }),
    }
}

#[cfg(feature = "python")]
fn number_from_proto(field: &str, n: proto::Number) -> Result<Number> {
    use proto::number::Kind;
    match n.kind {
        Some(Kind::Integer(i)) => Ok(Number::Int(i)),
        Some(Kind::Float(x)) => Ok(Number::Float(x)),
        None => Err(FieldError::malformed(
            field,
            "a bound must be an integer or a float",
        )),
    }
}

/// Constraints for the wire.
pub(crate) fn constraints_to_proto(c: &Constraints) -> proto::Constraints {
    proto::Constraints {
        min: c.min.map(number_to_proto),
        max: c.max.map(number_to_proto),
        min_length: c.min_length,
        max_length: c.max_length,
        pattern: c.pattern.as_ref().map(|p| p.as_str().to_owned()),
        choices: c.choices.as_ref().map(|values| proto::StringList {
            values: values.clone(),
        }),
        dimensions: c.dimensions,
    }
}

#[cfg(feature = "python")]
/// Constraints from the wire (`field` is where they are in the request). Whether they suit the
/// variable's type is checked at registration, by dspex-core.
pub(crate) fn constraints_from_proto(
    field: &str,
    c: Option<proto::Constraints>,
) -> Result<Constraints> {
    let Some(c) = c else {
        return Ok(Constraints::none());
    };
    let pattern = match c.pattern {
        Some(source) => {
            let field = format!("{field}.pattern");
            check_len(&field, &source, MAX_PATTERN_BYTES, "MAX_PATTERN_BYTES")?;
            Some(Pattern::new(&source).map_err(|e| FieldError::malformed(field, e.to_string()))?)
        }
        None => None,
    };
    let choices = match c.choices {
        Some(list) => {
            let field = format!("{field}.choices");
            check_count(
                &field,
                list.values.len(),
                MAX_CHOICES,
                "choices",
                "MAX_CHOICES",
            )?;
            for (i, choice) in list.values.iter().enumerate() {
                check_len(
                    &format!("{field}[{i}]"),
                    choice,
                    MAX_STRING_BYTES,
                    "MAX_STRING_BYTES",
                )?;
            }
            Some(list.values)
        }
        None => None,
    };
    Ok(Constraints {
        min: c
            .min
            .map(|n| number_from_proto(&format!("{field}.min"), n))
            .transpose()?,
        max: c
            .max
            .map(|n| number_from_proto(&format!("{field}.max"), n))
            .transpose()?,
        min_length: c.min_length,
        max_length: c.max_length,
        pattern,
        choices,
        dimensions: c.dimensions,
    })
}

// ---- metadata and descriptions ------------------------------------------------------------

#[cfg(feature = "python")]
/// Metadata from the wire, within the size limits.
pub(crate) fn metadata_from_proto(
    field: &str,
    metadata: HashMap<String, String>,
) -> Result<BTreeMap<String, String>> {
    check_count(
        field,
        metadata.len(),
        MAX_METADATA_ENTRIES,
        "entries",
        "MAX_METADATA_ENTRIES",
    )?;
    for (k, v) in &metadata {
        check_len(
            &format!("{field} key {k:.32?}"),
            k,
            MAX_METADATA_BYTES,
            "MAX_METADATA_BYTES",
        )?;
        check_len(
            &format!("{field}[{k:.32?}]"),
            v,
            MAX_METADATA_BYTES,
            "MAX_METADATA_BYTES",
        )?;
    }
    Ok(metadata.into_iter().collect())
}

#[cfg(feature = "python")]
/// A description from the wire, within the size limit.
pub(crate) fn description_from_proto(field: &str, d: Option<String>) -> Result<Option<String>> {
    if let Some(d) = &d {
        check_len(field, d, MAX_DESCRIPTION_BYTES, "MAX_DESCRIPTION_BYTES")?;
    }
    Ok(d)
}

// ---- records and events -------------------------------------------------------------------

/// A time for the wire.
pub(crate) fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let (seconds, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            i32::try_from(d.subsec_nanos()).unwrap_or(0),
        ),
        Err(e) => {
            // Before 1970: a negative second count with non-negative nanos.
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (-secs, 0),
                n => (-secs - 1, i32::try_from(1_000_000_000 - n).unwrap_or(0)),
            }
        }
    };
    prost_types::Timestamp { seconds, nanos }
}

#[cfg(all(test, feature = "python"))]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn values_round_trip() {
        for v in [
            Value::Float(0.5),
            Value::Integer(-3),
            Value::String("é".into()),
            Value::Boolean(true),
            Value::Embedding(vec![1.0, -2.5]),
        ] {
            assert_eq!(value_from_proto("value", Some(value_to_proto(&v))), Ok(v));
        }
    }

    #[test]
    fn missing_and_oversized_values_name_the_field() {
        let err = value_from_proto("writes[1].value", None).unwrap_err();
        assert_eq!(err.to_string(), "`writes[1].value`: a value is required");
        assert!(!err.limit);
        let big = value_to_proto(&Value::String("x".repeat(MAX_STRING_BYTES + 1)));
        let err = value_from_proto("value", Some(big)).unwrap_err();
        assert!(err.limit);
        assert_eq!(
            err.to_string(),
            format!(
                "`value`: {} bytes is over the limit of {MAX_STRING_BYTES} bytes (MAX_STRING_BYTES)",
                MAX_STRING_BYTES + 1
            )
        );
        let big = value_to_proto(&Value::Embedding(vec![0.0; MAX_EMBEDDING_DIMENSIONS + 1]));
        let err = value_from_proto("value", Some(big)).unwrap_err();
        assert!(
            err.to_string().contains("MAX_EMBEDDING_DIMENSIONS"),
            "{err}"
        );
    }

    #[test]
    fn fields_travel_as_their_declared_types_and_come_back_typed() {
        use proto::field_value::Kind;
        use serde_json::json;
        let field = |ty: &str| SignatureField::new("f", ty.parse().unwrap());
        for (ty, value, kind) in [
            ("str", json!("text"), Kind::Text("text".into())),
            ("Literal['a', 'b']", json!("b"), Kind::Text("b".into())),
            ("int", json!(3), Kind::Integer(3)),
            ("float", json!(0.5), Kind::Float(0.5)),
            ("bool", json!(true), Kind::Boolean(true)),
            (
                "list[str]",
                json!(["a", "b"]),
                Kind::Strings(proto::StringList {
                    values: vec!["a".into(), "b".into()],
                }),
            ),
            (
                "list[int]",
                json!([1, 2]),
                Kind::Integers(proto::IntegerList { values: vec![1, 2] }),
            ),
            (
                "list[float]",
                json!([1.5, 2.0]),
                Kind::Floats(proto::FloatList {
                    values: vec![1.5, 2.0],
                }),
            ),
            (
                "dict",
                json!({"a": 1, "b": [true]}),
                Kind::JsonObject(r#"{"a":1,"b":[true]}"#.into()),
            ),
        ] {
            let wire = field_to_proto(&field(ty), &value).unwrap();
            assert_eq!(wire.kind.as_ref(), Some(&kind), "{ty}");
            assert_eq!(field_from_proto(&field(ty), wire).unwrap(), value, "{ty}");
        }
        // An integer is widened where a float is declared, both ways.
        let float = field("float");
        let wire = field_to_proto(&float, &json!(3)).unwrap();
        assert_eq!(wire.kind, Some(Kind::Float(3.0)));
        let back = proto::FieldValue {
            kind: Some(Kind::Integer(3)),
        };
        assert_eq!(field_from_proto(&float, back).unwrap(), json!(3.0));
        // Nothing else crosses types, and the error names the field, the type and the value.
        let err = field_to_proto(&field("int"), &json!("3")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `f` is declared `int`, but its value is `\"3\"`"
        );
        let text = proto::FieldValue {
            kind: Some(Kind::Text("high".into())),
        };
        let err = field_from_proto(&float, text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `f` is declared `float`, but its value is `\"high\"`"
        );
        let not_an_object = proto::FieldValue {
            kind: Some(Kind::JsonObject("[1]".into())),
        };
        let err = field_from_proto(&field("dict"), not_an_object).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `f` is declared `dict`, but its value is `[1]`"
        );
        let literal = proto::FieldValue {
            kind: Some(Kind::Text("c".into())),
        };
        assert!(field_from_proto(&field("Literal['a', 'b']"), literal).is_err());
        let nan = proto::FieldValue {
            kind: Some(Kind::Float(f64::NAN)),
        };
        assert!(field_from_proto(&float, nan).is_err());
        // Extra outputs are text, whatever their kind.
        assert_eq!(extra_field_from_proto(text_value("why")), json!("why"));
        let list = proto::FieldValue {
            kind: Some(Kind::Integers(proto::IntegerList { values: vec![1] })),
        };
        assert_eq!(extra_field_from_proto(list), json!("[1]"));
    }

    fn text_value(text: &str) -> proto::FieldValue {
        proto::FieldValue {
            kind: Some(proto::field_value::Kind::Text(text.into())),
        }
    }

    #[test]
    fn module_config_lists_and_python_tools_travel_as_strings() {
        use proto::config_value::Kind;
        let strings = |values: &[&str]| {
            Kind::Strings(proto::StringList {
                values: values.iter().map(ToString::to_string).collect(),
            })
        };
        for (value, kind) in [
            (ConfigValue::Integer(5), Kind::Integer(5)),
            (ConfigValue::Float(0.5), Kind::Float(0.5)),
            (
                ConfigValue::String("local".into()),
                Kind::String("local".into()),
            ),
            (ConfigValue::Boolean(true), Kind::Boolean(true)),
            (
                ConfigValue::Strings(vec!["a".into(), "b".into()]),
                strings(&["a", "b"]),
            ),
            (
                ConfigValue::Tools(vec![
                    ToolRef::Python("pkg.tools.search".into()),
                    ToolRef::Python("pkg.tools.calc".into()),
                ]),
                strings(&["pkg.tools.search", "pkg.tools.calc"]),
            ),
        ] {
            let wire = module_config_to_proto("k", &value).unwrap();
            assert_eq!(wire.kind, Some(kind), "{value:?}");
        }
        let rust = ConfigValue::Tools(vec![ToolRef::Rust("search_docs".into())]);
        let err = module_config_to_proto("tools", &rust).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`tools`: the Rust tool `search_docs` cannot be sent to a python worker"
        );
    }

    #[test]
    fn config_values_have_five_wire_kinds() {
        use proto::config_value::Kind;
        use serde_json::json;
        let kinds: Vec<_> = [
            json!(5),
            json!(0.5),
            json!("local"),
            json!(false),
            json!(["pkg.mod.fn"]),
        ]
        .iter()
        .map(|v| config_to_proto("k", v).unwrap().kind.unwrap())
        .collect();
        assert_eq!(
            kinds,
            [
                Kind::Integer(5),
                Kind::Float(0.5),
                Kind::String("local".into()),
                Kind::Boolean(false),
                Kind::Strings(proto::StringList {
                    values: vec!["pkg.mod.fn".into()]
                }),
            ]
        );
        assert!(config_to_proto("k", &json!({"a": 1})).is_err());
        assert!(config_to_proto("k", &json!([1])).is_err());
    }

    #[test]
    fn constraints_round_trip() {
        let c = Constraints::range(0, 10)
            .with_length(1, 4)
            .with_pattern("[a-z]+")
            .unwrap()
            .with_choices(["a", "b"])
            .with_dimensions(3);
        assert_eq!(
            constraints_from_proto("constraints", Some(constraints_to_proto(&c))),
            Ok(c)
        );
        let c = Constraints::range(0.5, 1.5);
        assert_eq!(
            constraints_from_proto("constraints", Some(constraints_to_proto(&c))),
            Ok(c)
        );
        assert_eq!(
            constraints_from_proto("constraints", None),
            Ok(Constraints::none())
        );
    }

    #[test]
    fn bad_constraints_name_the_field() {
        let c = proto::Constraints {
            pattern: Some("[a-".into()),
            ..Default::default()
        };
        let err = constraints_from_proto("constraints", Some(c)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`constraints.pattern`: invalid regex `[a-`"),
            "{err}"
        );
        let c = proto::Constraints {
            min: Some(proto::Number { kind: None }),
            ..Default::default()
        };
        let err = constraints_from_proto("constraints", Some(c)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`constraints.min`: a bound must be an integer or a float"
        );
    }

    #[test]
    fn unspecified_types_are_refused() {
        let err = var_type_from_proto("type", 0).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("`type`: the variable type is unspecified")
        );
        assert!(var_type_from_proto("type", 99).is_err());
        for ty in VarType::ALL {
            assert_eq!(
                var_type_from_proto("type", var_type_to_proto(ty).into()),
                Ok(ty)
            );
        }
    }

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::new(5, 7);
        assert_eq!(
            timestamp(t),
            prost_types::Timestamp {
                seconds: 5,
                nanos: 7
            }
        );
        let t = UNIX_EPOCH - Duration::new(1, 250_000_000);
        assert_eq!(
            timestamp(t),
            prost_types::Timestamp {
                seconds: -2,
                nanos: 750_000_000
            }
        );
    }
}
