//! Conversions between the wire types of [`proto`](super::proto) and the dspex-core types, with
//! the request-size limits of [`limits`](super::limits). An error names the request field at
//! fault (`writes[2].value`) and the rule it broke; the rules of variables themselves (types,
//! constraints) are never checked here but by dspex-core, through the session's table.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use dspex_core::{Constraints, Number, Pattern, Value, VarType};

use super::limits::{
    MAX_CHOICES, MAX_DESCRIPTION_BYTES, MAX_EMBEDDING_DIMENSIONS, MAX_METADATA_BYTES,
    MAX_METADATA_ENTRIES, MAX_PATTERN_BYTES, MAX_STRING_BYTES,
};
use super::proto;
use crate::state::{HistoryEntry, Source, VarRecord, WatchEvent};

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

/// A write's source for the wire.
pub(crate) fn source_to_proto(source: Source) -> proto::Source {
    match source {
        Source::Rust => proto::Source::Rust,
        Source::Python => proto::Source::Python,
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

/// A variable record for the wire.
pub(crate) fn variable_to_proto(r: &VarRecord) -> proto::Variable {
    proto::Variable {
        id: r.id.0,
        name: r.name.clone(),
        r#type: var_type_to_proto(r.ty).into(),
        value: Some(value_to_proto(&r.value)),
        constraints: Some(constraints_to_proto(&r.constraints)),
        description: r.description.clone(),
        metadata: r
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        version: r.version,
        created_at: Some(timestamp(r.created_at)),
        updated_at: Some(timestamp(r.updated_at)),
        source: source_to_proto(r.source).into(),
        readonly: r.readonly,
    }
}

/// A history entry for the wire.
pub(crate) fn history_entry_to_proto(e: &HistoryEntry) -> proto::HistoryEntry {
    proto::HistoryEntry {
        version: e.version,
        value: Some(value_to_proto(&e.value)),
        source: source_to_proto(e.source).into(),
        metadata: e
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        at: Some(timestamp(e.at)),
    }
}

/// A watch event for the wire.
pub(crate) fn update_to_proto(event: &WatchEvent) -> proto::VariableUpdate {
    use proto::UpdateKind;
    let mut u = proto::VariableUpdate::default();
    match event {
        WatchEvent::Initial {
            id,
            name,
            value,
            version,
        } => {
            u.kind = UpdateKind::Initial.into();
            u.id = id.0;
            u.name = name.clone();
            u.new_value = Some(value_to_proto(value));
            u.version = *version;
        }
        WatchEvent::Registered {
            id,
            name,
            value,
            source,
        } => {
            u.kind = UpdateKind::Registered.into();
            u.id = id.0;
            u.name = name.clone();
            u.new_value = Some(value_to_proto(value));
            u.version = 1;
            u.source = source_to_proto(*source).into();
        }
        WatchEvent::Updated(c) => {
            u.kind = UpdateKind::Updated.into();
            u.id = c.id.0;
            u.name = c.name.clone();
            u.old_value = Some(value_to_proto(&c.old));
            u.new_value = Some(value_to_proto(&c.new));
            u.version = c.version;
            u.source = source_to_proto(c.source).into();
            u.at = Some(timestamp(c.at));
        }
        WatchEvent::Deleted {
            id,
            name,
            version,
            source,
        } => {
            u.kind = UpdateKind::Deleted.into();
            u.id = id.0;
            u.name = name.clone();
            u.version = *version;
            u.source = source_to_proto(*source).into();
        }
        WatchEvent::Lagged { missed } => {
            u.kind = UpdateKind::Lagged.into();
            u.missed = *missed;
        }
    }
    u
}

#[cfg(test)]
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
