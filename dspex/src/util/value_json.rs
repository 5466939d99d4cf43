//! Variable values as JSON, for reports and saved tuning results: floats, integers, strings and
//! booleans as themselves, embeddings as arrays of numbers. Reading back is guided by the
//! variable's type, so `1` is an integer for an `integer` variable and `1.0` for a `float` one.

use dspex_core::{Value, VarType};
use serde_json::Value as Json;

/// `value` as JSON.
pub(crate) fn to_json(value: &Value) -> Json {
    match value {
        Value::Float(x) => serde_json::Number::from_f64(*x).map_or(Json::Null, Json::Number),
        Value::Integer(i) => Json::from(*i),
        Value::String(s) => Json::from(s.as_str()),
        Value::Boolean(b) => Json::from(*b),
        Value::Embedding(e) => Json::Array(
            e.iter()
                .map(|x| {
                    serde_json::Number::from_f64(f64::from(*x)).map_or(Json::Null, Json::Number)
                })
                .collect(),
        ),
    }
}

/// The value of a `ty` variable that `json` holds, or what is wrong with it. Validation against
/// the variable's constraints is the caller's (it writes or validates the value).
#[allow(clippy::cast_possible_truncation)] // embeddings are f32 by definition
pub(crate) fn from_json(ty: VarType, json: &Json) -> Result<Value, String> {
    let wrong = || format!("{json} is not {} {ty} value", ty.article());
    match ty {
        VarType::Float => json.as_f64().map(Value::Float).ok_or_else(wrong),
        VarType::Integer => json.as_i64().map(Value::Integer).ok_or_else(wrong),
        VarType::String | VarType::Choice | VarType::Module => json
            .as_str()
            .map(|s| Value::String(s.to_owned()))
            .ok_or_else(wrong),
        VarType::Boolean => json.as_bool().map(Value::Boolean).ok_or_else(wrong),
        VarType::Embedding => json
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .map(|x| x.as_f64().map(|x| x as f32))
                    .collect::<Option<Vec<f32>>>()
            })
            .map(Value::Embedding)
            .ok_or_else(wrong),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_json_by_type() {
        let cases = [
            (VarType::Float, Value::Float(1.0)),
            (VarType::Integer, Value::Integer(7)),
            (VarType::Choice, Value::from("a")),
            (VarType::Boolean, Value::Boolean(true)),
            (VarType::Embedding, Value::Embedding(vec![0.5, -1.0])),
        ];
        for (ty, value) in cases {
            assert_eq!(from_json(ty, &to_json(&value)), Ok(value));
        }
        assert!(from_json(VarType::Integer, &Json::from(1.5)).is_err());
        assert_eq!(
            from_json(VarType::Boolean, &Json::from("yes")).unwrap_err(),
            "\"yes\" is not a boolean value"
        );
    }
}
