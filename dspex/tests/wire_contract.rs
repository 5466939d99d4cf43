//! The Rust <-> Python contract that is data, not proto: `python/dspex_bridge/contract.json`
//! is generated from the constants of `dspex-core`, and this test fails when the file and the
//! constants drift apart. `DSPEX_BLESS=1 cargo test -p dspex --test wire_contract` rewrites the
//! file. The Python test suite (`python/tests/test_module_table.py`) checks the installed DSPy
//! and the worker against the same file.

use std::path::PathBuf;

use dspex_core::dspy::{self, ConfigKey, ConfigKind, DspyModule, Param};
use serde_json::{Map, Value, json};

/// The file the Python package reads.
fn contract_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../python/dspex_bridge/contract.json")
}

/// The contract as `dspex-core` states it.
fn contract() -> Value {
    json!({ "modules": modules_json() })
}

/// The table of known DSPy modules: for each, the parameters a step may bind (their variable
/// types and how the worker applies them) and the constructor keys it takes (their kinds).
fn modules_json() -> Value {
    let param = |p: &Param| {
        let types: Vec<&str> = p.types.iter().map(|t| t.name()).collect();
        (
            p.name.to_owned(),
            json!({ "types": types, "applies": p.applies.name() }),
        )
    };
    let config_key = |k: &ConfigKey| {
        let mut kind = Map::new();
        kind.insert("kind".into(), json!(k.kind.name()));
        match k.kind {
            ConfigKind::Integer { min } => {
                kind.insert("min".into(), json!(min));
            }
            ConfigKind::Float { min, max } => {
                kind.insert("min".into(), json!(min));
                kind.insert("max".into(), json!(max));
            }
            ConfigKind::OneOf(options) => {
                kind.insert("options".into(), json!(options));
            }
            ConfigKind::Tools | ConfigKind::Literal => {}
        }
        (k.name.to_owned(), Value::Object(kind))
    };
    let module = |m: &DspyModule| {
        (
            m.name.to_owned(),
            json!({
                "params": m.params().map(param).collect::<Map<_, _>>(),
                "config": m.config.iter().map(config_key).collect::<Map<_, _>>(),
            }),
        )
    };
    Value::Object(dspy::MODULES.iter().map(module).collect())
}

#[test]
fn the_python_package_reads_the_contract_of_dspex_core() {
    let expected = contract();
    let path = contract_path();
    if std::env::var_os("DSPEX_BLESS").is_some_and(|v| v == "1") {
        let text = serde_json::to_string_pretty(&expected).expect("JSON") + "\n";
        std::fs::write(&path, text).expect("the contract file is writable");
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let found: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    assert!(
        found == expected,
        "{} drifted from dspex-core; regenerate it with `DSPEX_BLESS=1 cargo test -p dspex --test wire_contract`\nexpected:\n{}",
        path.display(),
        serde_json::to_string_pretty(&expected).unwrap_or_default()
    );
}

#[test]
fn the_module_table_says_what_each_module_takes() {
    let modules = modules_json();
    assert_eq!(
        modules["ReAct"]["params"]["max_iters"],
        json!({ "types": ["integer"], "applies": "call_argument" })
    );
    assert_eq!(
        modules["Predict"]["params"]["model"],
        json!({ "types": ["choice", "string"], "applies": "model" })
    );
    assert_eq!(
        modules["ProgramOfThought"]["config"]["interpreter"],
        json!({ "kind": "one_of", "options": ["deno", "local"] })
    );
    assert_eq!(
        modules["Predict"]["config"]["top_p"],
        json!({ "kind": "float", "min": 0.0, "max": 1.0 })
    );
    assert_eq!(
        modules["ReAct"]["config"]["tools"],
        json!({ "kind": "tools" })
    );
    let names: Vec<&String> = modules
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(names.len(), dspy::MODULES.len());
}
