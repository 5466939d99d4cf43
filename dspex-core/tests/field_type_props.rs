//! Property tests of field types: reading a type annotation, a signature or an LM's text never
//! panics; a type and a signature written out read back the same; what a text reads as is
//! always a value of the type; and the JSON text of any value of a type reads back as it.

use dspex_core::{FieldType, Signature, SignatureField};
use proptest::prelude::*;
use serde_json::Value as JsonValue;

fn any_type() -> impl Strategy<Value = FieldType> {
    prop_oneof![
        Just(FieldType::Str),
        Just(FieldType::Int),
        Just(FieldType::Float),
        Just(FieldType::Bool),
        Just(FieldType::ListStr),
        Just(FieldType::ListInt),
        Just(FieldType::ListFloat),
        Just(FieldType::Dict),
        // Any chars: quotes, backslashes, control chars, `->`, commas, brackets.
        prop::collection::btree_set(".{0,6}|[\"'\\\\,\\[\\]>-]{0,4}|\\PC{0,4}", 1..4)
            .prop_map(|values| FieldType::Literal(values.into_iter().collect())),
    ]
}

/// Text shaped like annotations, so that the parser's deeper paths are reached.
fn annotation_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("Literal"),
            Just("list"),
            Just("str"),
            Just("int"),
            Just("dict"),
            Just("["),
            Just("]"),
            Just("'"),
            Just("\""),
            Just(","),
            Just(" "),
            Just("\\"),
            Just("\\u"),
            Just("a"),
            Just("->"),
            Just(":"),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// A JSON value of `ty`.
fn value_of(ty: &FieldType) -> BoxedStrategy<JsonValue> {
    let finite = prop_oneof![
        -1e12f64..1e12,
        any::<f64>().prop_filter("finite", |f| f.is_finite())
    ];
    match ty {
        FieldType::Str => ".{0,10}".prop_map(JsonValue::from).boxed(),
        FieldType::Int => any::<i64>().prop_map(JsonValue::from).boxed(),
        FieldType::Float => finite.prop_map(JsonValue::from).boxed(),
        FieldType::Bool => any::<bool>().prop_map(JsonValue::from).boxed(),
        FieldType::ListStr => prop::collection::vec("\\PC{0,5}", 0..4)
            .prop_map(JsonValue::from)
            .boxed(),
        FieldType::ListInt => prop::collection::vec(any::<i64>(), 0..4)
            .prop_map(JsonValue::from)
            .boxed(),
        FieldType::ListFloat => prop::collection::vec(finite, 0..4)
            .prop_map(JsonValue::from)
            .boxed(),
        FieldType::Dict => prop::collection::btree_map(
            "\\PC{0,4}",
            prop_oneof![
                any::<i64>().prop_map(JsonValue::from),
                "\\PC{0,4}".prop_map(JsonValue::from),
                any::<bool>().prop_map(JsonValue::from),
                Just(JsonValue::Null),
                prop::collection::vec(-5i64..5, 0..3).prop_map(JsonValue::from),
            ],
            0..4,
        )
        .prop_map(|m| JsonValue::Object(m.into_iter().collect()))
        .boxed(),
        FieldType::Literal(values) => prop::sample::select(values.clone())
            .prop_map(JsonValue::from)
            .boxed(),
    }
}

fn typed_value() -> impl Strategy<Value = (FieldType, JsonValue)> {
    any_type().prop_flat_map(|ty| {
        let values = value_of(&ty);
        (Just(ty), values)
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn reading_a_type_never_panics(text in "\\PC{0,24}|.{0,24}", shaped in annotation_like()) {
        for text in [text, shaped] {
            if let Ok(ty) = FieldType::parse(&text) {
                prop_assert_eq!(FieldType::parse(&ty.to_string()), Ok(ty));
            } else {
                prop_assert!(!FieldType::parse(&text).unwrap_err().to_string().is_empty());
            }
        }
    }

    #[test]
    fn a_type_written_out_reads_back(ty in any_type()) {
        let written = ty.to_string();
        prop_assert!(!written.contains("->"), "{written}");
        prop_assert_eq!(FieldType::parse(&written), Ok(ty));
    }

    #[test]
    fn a_signature_written_out_reads_back(
        inputs in prop::collection::vec(any_type(), 0..3),
        outputs in prop::collection::vec(any_type(), 1..3),
    ) {
        let field = |(i, ty): (usize, FieldType)| SignatureField::new(format!("f{i}"), ty);
        let sig = Signature {
            inputs: inputs.into_iter().enumerate().map(field).collect(),
            outputs: outputs
                .into_iter()
                .enumerate()
                .map(|(i, ty)| field((i + 10, ty)))
                .collect(),
        };
        prop_assert_eq!(Signature::parse(&sig.to_string()), Ok(sig));
    }

    #[test]
    fn reading_a_signature_never_panics(text in "\\PC{0,30}", shaped in annotation_like()) {
        for text in [text, format!("a: {shaped} -> b"), format!("a -> {shaped}")] {
            if let Ok(sig) = Signature::parse(&text) {
                prop_assert_eq!(Signature::parse(&sig.to_string()), Ok(sig));
            }
        }
    }

    #[test]
    fn a_text_reads_as_a_value_of_the_type_or_a_clear_error(
        ty in any_type(),
        text in "\\PC{0,20}|[\\[\\]{}()'\", :0-9a-z.eE+_-]{0,20}",
    ) {
        let field = SignatureField::new("x", ty.clone());
        match field.parse_text(&text) {
            Ok(value) => prop_assert!(ty.accepts(&value), "{ty} {text:?} -> {value}"),
            Err(e) => prop_assert!(e.to_string().starts_with("field `x` is declared"), "{e}"),
        }
    }

    #[test]
    fn the_json_text_of_a_value_reads_back_as_it((ty, value) in typed_value()) {
        let field = SignatureField::new("x", ty.clone());
        prop_assert!(field.check(&value).is_ok());
        let text = match &value {
            // A `str` or `Literal` text is the string itself, not its JSON.
            JsonValue::String(s) => s.clone(),
            other => other.to_string(),
        };
        let read = field.parse_text(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(read, field.conform(value).unwrap());
    }
}
