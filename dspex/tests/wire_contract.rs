//! The contract both sides of the bridge read: the Rust constants (limits, metadata keys, the
//! readiness prefix) and the table of known DSPy modules of `dspex-core`, generated into
//! `python/dspex_bridge/contract.json`, which the Python package reads. This test rebuilds the
//! JSON from the Rust side and fails with a diff when the committed file differs;
//! `DSPEX_BLESS=1 cargo test -p dspex --test wire_contract` rewrites it. The Python test suite
//! (`python/tests/test_contract.py`, `python/tests/test_module_table.py`) checks the installed
//! DSPy and the worker against the same file.

#![allow(clippy::unwrap_used, clippy::print_stderr)]
#![recursion_limit = "256"]

use std::path::PathBuf;

use dspex::optimize as o;
use dspex::wire::limits as l;
use dspex::wire::{
    ACTUAL_VERSION_METADATA, ENV_SESSION_ID, ENV_SESSION_TOKEN, ENV_STORE_ADDR, ERROR_METADATA,
    EXCEPTION_TYPE_METADATA, EXPECTED_VERSION_METADATA, FIELD_METADATA, FIELD_TYPE_METADATA,
    FIELD_VALUE_METADATA, TOKEN_METADATA, TRACEPARENT_METADATA,
};
use dspex::worker as w;
use dspex_core::dspy::{self, ConfigKey, ConfigKind, DspyModule, Param};
use dspex_core::optimizers::{self, DspyOptimizer, Setting};
use serde_json::{Map, Value, json};

/// The bounds, by the name of their Rust constant.
fn limits_json() -> Value {
    json!({
        "MAX_REQUEST_BYTES": l::MAX_REQUEST_BYTES,
        "MAX_RESPONSE_BYTES": l::MAX_RESPONSE_BYTES,
        "MAX_STATUS_MESSAGE_BYTES": l::MAX_STATUS_MESSAGE_BYTES,
        "MAX_ECHO_CHARS": l::MAX_ECHO_CHARS,
        "MAX_ECHO_ITEMS": l::MAX_ECHO_ITEMS,
        "MAX_NAME_LEN": l::MAX_NAME_LEN,
        "MAX_SESSION_ID_BYTES": l::MAX_SESSION_ID_BYTES,
        "MAX_NAMES_PER_REQUEST": l::MAX_NAMES_PER_REQUEST,
        "MAX_WRITES_PER_BATCH": l::MAX_WRITES_PER_BATCH,
        "MAX_REMOTE_SESSIONS": l::MAX_REMOTE_SESSIONS,
        "MAX_WATCHERS_PER_SESSION": l::MAX_WATCHERS_PER_SESSION,
        "MAX_VARIABLES_PER_SESSION": l::MAX_VARIABLES_PER_SESSION,
        "MAX_STRING_BYTES": l::MAX_STRING_BYTES,
        "MAX_EMBEDDING_DIMENSIONS": l::MAX_EMBEDDING_DIMENSIONS,
        "MAX_METADATA_ENTRIES": l::MAX_METADATA_ENTRIES,
        "MAX_METADATA_BYTES": l::MAX_METADATA_BYTES,
        "MAX_METADATA_ENTRIES_PER_VARIABLE": l::MAX_METADATA_ENTRIES_PER_VARIABLE,
        "MAX_METADATA_BYTES_PER_VARIABLE": l::MAX_METADATA_BYTES_PER_VARIABLE,
        "MAX_DESCRIPTION_BYTES": l::MAX_DESCRIPTION_BYTES,
        "MAX_CHOICES": l::MAX_CHOICES,
        "MAX_PATTERN_BYTES": l::MAX_PATTERN_BYTES,
        "MAX_HISTORY_ENTRIES_PER_REQUEST": l::MAX_HISTORY_ENTRIES_PER_REQUEST,
        "DEFAULT_LIST_PAGE_SIZE": l::DEFAULT_LIST_PAGE_SIZE,
        "MAX_LIST_PAGE_SIZE": l::MAX_LIST_PAGE_SIZE,
        "MAX_LIST_PAGE_BYTES": l::MAX_LIST_PAGE_BYTES,
        "WATCH_QUEUE_CAPACITY": l::WATCH_QUEUE_CAPACITY,
        "MAX_WATCH_QUEUE_BYTES": l::MAX_WATCH_QUEUE_BYTES,
        "MAX_CONCURRENT_STREAMS": l::MAX_CONCURRENT_STREAMS,
        "MAX_HEADER_LIST_BYTES": l::MAX_HEADER_LIST_BYTES,
        "DEFAULT_SESSION_TTL_SECONDS": l::DEFAULT_SESSION_TTL.as_secs(),
        "MAX_SESSION_TTL_SECONDS": l::MAX_SESSION_TTL.as_secs(),
        "TOKEN_BYTES": l::TOKEN_BYTES,
        "MAX_MODULE_MESSAGE_BYTES": l::MAX_MODULE_MESSAGE_BYTES,
        "MAX_WORKER_CONFIG_BYTES": l::MAX_WORKER_CONFIG_BYTES,
        "DEFAULT_MAX_CONCURRENT_CALLS": w::DEFAULT_MAX_CONCURRENT_CALLS,
        "MAX_CONCURRENT_CALLS": w::MAX_CONCURRENT_CALLS,
        "MAX_WORKER_PROCESSES": w::MAX_WORKER_PROCESSES,
        "MAX_CALLBACK_ARGUMENT_BYTES": l::MAX_CALLBACK_ARGUMENT_BYTES,
        "MAX_CALLBACK_RESULT_BYTES": l::MAX_CALLBACK_RESULT_BYTES,
        "DEFAULT_CALLBACK_TIMEOUT_MS": u64::try_from(l::DEFAULT_CALLBACK_TIMEOUT.as_millis()).unwrap(),
        "MAX_CALLBACK_TIMEOUT_MS": u64::try_from(l::MAX_CALLBACK_TIMEOUT.as_millis()).unwrap(),
        "MAX_CALLBACKS_PER_CALL": l::MAX_CALLBACKS_PER_CALL,
        "MAX_SCRIPTED_DELAY_MS": u64::try_from(dspex::lm::MAX_SCRIPTED_DELAY.as_millis()).unwrap(),
        "MAX_LM_TAPE_BYTES": dspex::lm::MAX_LM_TAPE_BYTES,
        "MAX_LM_TAPE_LINE_BYTES": dspex::lm::MAX_LM_TAPE_LINE_BYTES,
        "MAX_LM_TAPE_ENTRIES": dspex::lm::MAX_LM_TAPE_ENTRIES,
        "MAX_LM_CACHE_ENTRIES": dspex::lm::MAX_LM_CACHE_ENTRIES,
        "MAX_TRAIN_EXAMPLES": o::MAX_TRAIN_EXAMPLES,
        "MAX_COMPILED_STATE_BYTES": o::MAX_COMPILED_STATE_BYTES,
    })
}

/// The names both sides spell the same way: metadata keys, environment variables, the
/// readiness prefix.
fn wire_json() -> Value {
    json!({
        "TOKEN_METADATA": TOKEN_METADATA,
        "TRACEPARENT_METADATA": TRACEPARENT_METADATA,
        "ERROR_METADATA": ERROR_METADATA,
        "EXCEPTION_TYPE_METADATA": EXCEPTION_TYPE_METADATA,
        "EXPECTED_VERSION_METADATA": EXPECTED_VERSION_METADATA,
        "ACTUAL_VERSION_METADATA": ACTUAL_VERSION_METADATA,
        "FIELD_METADATA": FIELD_METADATA,
        "FIELD_TYPE_METADATA": FIELD_TYPE_METADATA,
        "FIELD_VALUE_METADATA": FIELD_VALUE_METADATA,
        "ENV_STORE_ADDR": ENV_STORE_ADDR,
        "ENV_SESSION_ID": ENV_SESSION_ID,
        "ENV_SESSION_TOKEN": ENV_SESSION_TOKEN,
        "READY_PREFIX": dspex::wire::READY_PREFIX,
    })
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
    let config_key = |k: &ConfigKey| (k.name.to_owned(), Value::Object(kind_json(k.kind)));
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

/// What a configuration kind accepts: `{"kind": "integer", "min": 1}`.
fn kind_json(kind: ConfigKind) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("kind".into(), json!(kind.name()));
    match kind {
        ConfigKind::Integer { min } => {
            out.insert("min".into(), json!(min));
        }
        ConfigKind::Float { min, max } => {
            out.insert("min".into(), json!(min));
            out.insert("max".into(), json!(max));
        }
        ConfigKind::OneOf(options) => {
            out.insert("options".into(), json!(options));
        }
        ConfigKind::Boolean | ConfigKind::Tools | ConfigKind::Literal => {}
    }
    out
}

/// The table of known DSPy optimizers: for each, its settings (their kinds, and whether they
/// go to the constructor or to `compile`) and whether it takes a validation set.
fn optimizers_json() -> Value {
    let setting = |s: &Setting| {
        let mut kind = kind_json(s.kind);
        kind.insert("stage".into(), json!(s.stage.name()));
        (s.name.to_owned(), Value::Object(kind))
    };
    let optimizer = |o: &DspyOptimizer| {
        (
            o.name.to_owned(),
            json!({
                "settings": o.settings.iter().map(setting).collect::<Map<_, _>>(),
                "takes_valset": o.takes_valset,
                "exactly_one_of": o.exactly_one_of,
                "reflective": o.reflective,
            }),
        )
    };
    Value::Object(optimizers::OPTIMIZERS.iter().map(optimizer).collect())
}

fn contract() -> String {
    let contract = json!({
        "limits": limits_json(),
        "modules": modules_json(),
        "optimizers": optimizers_json(),
        "wire": wire_json(),
    });
    serde_json::to_string_pretty(&contract).unwrap() + "\n"
}

fn contract_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../python/dspex_bridge/contract.json")
}

/// The lines of `new` that differ from `old`, as `-`/`+` pairs.
fn diff(old: &str, new: &str) -> String {
    let (old, new): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let mut out = String::new();
    for i in 0..old.len().max(new.len()) {
        let (a, b) = (old.get(i), new.get(i));
        if a != b {
            if let Some(a) = a {
                out.push_str(&format!("-{a}\n"));
            }
            if let Some(b) = b {
                out.push_str(&format!("+{b}\n"));
            }
        }
    }
    out
}

#[test]
fn the_python_contract_is_generated_from_the_rust_constants() {
    let expected = contract();
    let path = contract_path();
    if std::env::var_os("DSPEX_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &expected).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} is stale (run `DSPEX_BLESS=1 cargo test -p dspex --test wire_contract`); its lines that differ from the Rust side:\n{}",
        path.display(),
        diff(&committed, &expected)
    );
}

#[test]
fn every_limit_is_positive_and_the_sizes_are_consistent() {
    let limits = limits_json();
    for (name, value) in limits.as_object().unwrap() {
        assert!(value.as_u64().unwrap() > 0, "{name}");
    }
    // One record of the largest size a registration over gRPC can create fits in a response,
    // and a page of the listing too (checked at compile time).
    const {
        assert!(
            l::MAX_REQUEST_BYTES + l::MAX_METADATA_BYTES_PER_VARIABLE + l::MAX_STRING_BYTES
                < l::MAX_RESPONSE_BYTES
        );
        assert!(l::MAX_LIST_PAGE_BYTES <= l::MAX_RESPONSE_BYTES);
        // A status message stays far below the 16 KiB gRPC clients accept in headers, even
        // percent-encoded (three bytes per byte).
        assert!(3 * l::MAX_STATUS_MESSAGE_BYTES < 16 * 1024);
        // A message listing the most choices it quotes, in ASCII, is not cut.
        assert!((l::MAX_ECHO_CHARS + 4) * l::MAX_ECHO_ITEMS + 200 < l::MAX_STATUS_MESSAGE_BYTES);
    }
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
