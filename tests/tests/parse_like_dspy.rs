//! dspex reads an LM's text for a typed field as DSPy does: a table of texts for every field
//! type goes through DSPy's own reader (`parse_value`, run by the installed DSPy in
//! `tests/python/parse_values.py`) and through `FieldType::parse_text`, and the two agree:
//! the same value, or both refuse. The few texts DSPy accepts and dspex refuses on purpose
//! (values a typed Rust field cannot hold, repairs of `json_repair` dspex does not make) are
//! listed, and checked to still be refused.

#![allow(clippy::unwrap_used)]

use dspex::{FieldType, JsonValue};
use dspex_tests::run_script;
use serde_json::json;

/// Texts for each type: what LMs answer, and the edge cases of DSPy's reader.
const CASES: &[(&str, &[&str])] = &[
    (
        "str",
        &["plain text", " padded ", "[1, 2]", "", "\"quoted\""],
    ),
    (
        "int",
        &[
            "3",
            " 3 ",
            "-7",
            "+7",
            "007",
            "1_000",
            "0x10",
            "3.0",
            "3.",
            "1e3",
            "3.5",
            "true",
            "True",
            "\"3\"",
            "'3'",
            "\" 4 \"",
            "'3.0'",
            "'1e3'",
            "'3.5'",
            "42 apples",
            "five",
            "[3]",
            "",
            "null",
            "9223372036854775807",
            "-9223372036854775808",
            "1e30",
        ],
    ),
    (
        "float",
        &[
            "3", "3.5", " 2.5 ", ".5", "5.", "-0.0", "1e3", "1E-2", "true", "false", "\"2.5\"",
            "'1_0.5'", "2.5%", "abc", "1,5", "[1.5]", "", "null",
        ],
    ),
    (
        "bool",
        &[
            "true", "True", "TRUE", "false", "False", "yes", "no", "Yes", "on", "off", "t", "f",
            "y", "n", "1", "0", "1.0", "0.0", "\"true\"", "'no'", "2", "maybe", "True.", "null",
            "[true]",
        ],
    ),
    (
        "list[str]",
        &[
            "[\"a\", \"b\"]",
            "['a', 'b']",
            "[a, b]",
            "[\"a\",]",
            "[]",
            "(\"a\", \"b\")",
            "{\"a\"}",
            "[\"x\\n\"]",
            "['it\\'s']",
            "[1, 2]",
            "[\"a\", 1]",
            "a",
            "null",
            "{}",
        ],
    ),
    (
        "list[int]",
        &[
            "[1, 2]",
            "[\"1\", \"2\"]",
            "[1.0, 2]",
            "[true]",
            "[]",
            "[1.5]",
            "[1, null]",
            "[a]",
            "7",
            "\"[1]\"",
        ],
    ),
    (
        "list[float]",
        &[
            "[1, 2.5]",
            "[\"1.5\"]",
            "[1e3]",
            "[true]",
            "[]",
            "[x]",
            "2.5",
        ],
    ),
    (
        "dict",
        &[
            "{\"a\": 1}",
            "{'a': 1}",
            "{a: 1}",
            "{}",
            "{\"a\": [1, {\"b\": null}]}",
            "{'a': True, 'b': None}",
            "{'a': (1, 2)}",
            "[]",
            "a=1",
            "null",
            "\"{}\"",
        ],
    ),
    (
        "Literal['positive', 'negative', 'it\\'s']",
        &[
            "positive",
            " positive ",
            "'positive'",
            "\"positive\"",
            "Literal['positive']",
            "Literal[positive]",
            "str[negative]",
            "'it\\'s'",
            "it's",
            "Positive",
            "neutral",
            "positive.",
            "[\"positive\"]",
            "'positive",
            "",
        ],
    ),
];

/// Texts DSPy accepts and dspex refuses on purpose, and why.
const REFUSED_ON_PURPOSE: &[(&str, &str, &str)] = &[
    (
        "float",
        "inf",
        "not finite: JSON and a typed field hold only finite floats",
    ),
    ("float", "nan", "not finite"),
    ("int", "9223372036854775808", "beyond i64"),
    (
        "list[int]",
        "1, 2",
        "a bare comma-separated text is not a list",
    ),
];

/// What the installed DSPy makes of each `(annotation, text)`.
fn dspy_reads(cases: &[(&str, &str)]) -> Vec<JsonValue> {
    let answer = run_script(
        "tests/python/parse_values.py",
        &serde_json::to_value(cases).unwrap(),
    );
    serde_json::from_value(answer).unwrap()
}

/// dspex's reading in the shape of the script's answers.
fn dspex_reads(annotation: &str, text: &str) -> JsonValue {
    let ty = FieldType::parse(annotation).unwrap();
    match ty.parse_text(text) {
        Ok(value) => json!({ "ok": value }),
        Err(problem) => json!({ "error": problem.to_string() }),
    }
}

/// Whether two answers agree: both refuse, or both read the same value (numbers compared as
/// numbers, so that DSPy's `3.0` for a float is dspex's `3.0`).
fn agree(dspy: &JsonValue, dspex: &JsonValue) -> bool {
    match (dspy.get("ok"), dspex.get("ok")) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

fn same(a: &JsonValue, b: &JsonValue) -> bool {
    match (a, b) {
        (JsonValue::Number(x), JsonValue::Number(y)) => x.as_f64() == y.as_f64(),
        (JsonValue::Array(x), JsonValue::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (JsonValue::Object(x), JsonValue::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn dspex_reads_lm_text_as_dspy_does() {
    let cases: Vec<(&str, &str)> = CASES
        .iter()
        .flat_map(|(ty, texts)| texts.iter().map(move |text| (*ty, *text)))
        .chain(REFUSED_ON_PURPOSE.iter().map(|(ty, text, _)| (*ty, *text)))
        .collect();
    let dspy = dspy_reads(&cases);
    assert_eq!(dspy.len(), cases.len());
    let mut disagreements = Vec::new();
    for ((ty, text), dspy) in cases.iter().zip(&dspy) {
        let dspex = dspex_reads(ty, text);
        let on_purpose = REFUSED_ON_PURPOSE
            .iter()
            .any(|(t, x, _)| t == ty && x == text);
        let expected = if on_purpose {
            // DSPy accepts, dspex refuses.
            dspy.get("error").is_none() && dspex.get("error").is_some()
        } else {
            agree(dspy, &dspex)
        };
        if !expected {
            disagreements.push(format!("{ty} {text:?}: DSPy {dspy}, dspex {dspex}"));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements.join("\n")
    );
}
