//! DSPy's saved state, against the real DSPy: DSPy (the pinned version) builds a `Predict` and
//! a `ChainOfThought` with custom instructions, field descriptions and complete, incomplete and
//! bootstrapped demos, saves them with `module.save` and calls them on the loopback LM server;
//! dspex loads each file into a native step and calls it on the same input, and the two recorded
//! requests carry the same messages, byte for byte. The files dspex then writes with
//! `save_dspy_state` load into DSPy (`module.load`) with the same state, and a python step loads
//! the file with DSPy's own `load_state` and sends the same messages from its worker.

#![allow(clippy::unwrap_used)]

use dspex::optimize::DSPY_VERSION;
use dspex::prelude::*;
use dspex::{JsonValue, json};
use dspex_test_lm::{LmServer, Reply};
use dspex_tests::{run_script, worker_config};

dspex_program! {
    /// A native `Predict` with typed fields.
    program Described: "question, context: list[str] -> answer, confidence: float" {
        chain {
            respond: native Predict("question, context: list[str] -> answer, confidence: float"),
        }
    }
}

dspex_program! {
    /// A native `ChainOfThought`.
    program Reasoned: "question -> answer: int" {
        chain { think: native ChainOfThought("question -> answer: int") }
    }
}

dspex_program! {
    /// The same `Predict` as a python step.
    program InPython: "question, context: list[str] -> answer, confidence: float" {
        chain {
            respond: python Predict("question, context: list[str] -> answer, confidence: float"),
        }
    }
}

const PREDICT_REPLY: &str =
    "[[ ## answer ## ]]\nParis\n\n[[ ## confidence ## ]]\n0.9\n\n[[ ## completed ## ]]";
const COT_REPLY: &str =
    "[[ ## reasoning ## ]]\nTwo and two.\n\n[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]";

fn cases(dir: &std::path::Path, suffix: &str) -> JsonValue {
    json!([
        {
            "module": "Predict",
            "signature": "question, context: list[str] -> answer, confidence: float",
            "instructions": "Answer from the context only.\n\n  Say how sure you are.",
            "descriptions": {"question": "A question about geography", "confidence": "Between 0 and 1"},
            "demos": [
                {"question": "Capital of Italy?", "context": ["Rome is Italy's capital."], "answer": "Rome", "confidence": 0.95},
                {"question": "Capital of Spain?", "answer": "Madrid"},
                {"augmented": true, "question": "Capital of Peru?", "context": [], "answer": "Lima", "confidence": 0.5},
            ],
            "inputs": {"question": "Capital of France?", "context": ["Paris is in France.", "«Lyon» too"]},
            "path": dir.join(format!("predict{suffix}.json")),
        },
        {
            "module": "ChainOfThought",
            "signature": "question -> answer: int",
            "instructions": null,
            "descriptions": {"answer": "The sum, as a number"},
            "demos": [
                {"question": "1 + 1?", "reasoning": "One and one.", "answer": 2},
                {"question": "3 + 3?", "answer": 6},
            ],
            "inputs": {"question": "2 + 2?"},
            "path": dir.join(format!("cot{suffix}.json")),
        },
    ])
}

/// A context with a python worker whose LM is the loopback server.
async fn bridged_context(server: &LmServer) -> Context {
    Context::builder()
        .worker(worker_config())
        .lm(LmConfig::openai(server.base_url(), "python-model"))
        .build()
        .await
        .unwrap()
}

fn script(action: &str, server: &LmServer, cases: JsonValue) -> Vec<JsonValue> {
    let input = json!({"action": action, "base_url": server.base_url(), "cases": cases});
    let out = run_script("tests/python/dspy_state.py", &input);
    out.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_steps_loaded_from_dspy_files_send_dspys_messages_and_save_files_dspy_loads() {
    let server = LmServer::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("dspex-dspy-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for reply in [PREDICT_REPLY, COT_REPLY, PREDICT_REPLY, COT_REPLY] {
        server.push(Reply::text(reply));
    }
    let saved = tokio::task::block_in_place(|| script("save_and_call", &server, cases(&dir, "")));
    assert_eq!(server.requests().len(), 2);

    let ctx = Context::builder()
        .lm(LmConfig::openai(server.base_url(), "native-model"))
        .build()
        .await
        .unwrap();
    let described = Described::attach(&ctx).await.unwrap();
    described
        .load_dspy_state("respond", dir.join("predict.json"))
        .await
        .unwrap();
    let out = described
        .run(DescribedInput {
            question: "Capital of France?".into(),
            context: vec!["Paris is in France.".into(), "«Lyon» too".into()],
        })
        .await
        .unwrap();
    assert_eq!(out.answer, "Paris");
    let reasoned = Reasoned::attach(&ctx).await.unwrap();
    reasoned
        .load_dspy_state("think", dir.join("cot.json"))
        .await
        .unwrap();
    let out = reasoned
        .run(ReasonedInput {
            question: "2 + 2?".into(),
        })
        .await
        .unwrap();
    assert_eq!(out.answer, 4);
    const { assert!(!Described::REQUIRES_BRIDGE && !Reasoned::REQUIRES_BRIDGE) };

    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    for (dspy, native) in [(&requests[0], &requests[2]), (&requests[1], &requests[3])] {
        let (theirs, ours) = (&dspy.body["messages"], &native.body["messages"]);
        assert_eq!(
            serde_json::to_string_pretty(ours).unwrap(),
            serde_json::to_string_pretty(theirs).unwrap()
        );
    }
    // The incomplete demo comes first, the bootstrapped one's `augmented` key is not shown.
    let first = requests[2].body["messages"][1]["content"].as_str().unwrap();
    assert!(
        first.starts_with("This is an example of the task"),
        "{first}"
    );

    described
        .save_dspy_state("respond", dir.join("predict-dspex.json"))
        .await
        .unwrap();
    reasoned
        .save_dspy_state("think", dir.join("cot-dspex.json"))
        .await
        .unwrap();
    let loaded = tokio::task::block_in_place(|| script("load", &server, cases(&dir, "-dspex")));
    assert_eq!(loaded, saved);

    // A python step loads the same file with DSPy's own `load_state`, and sends the same
    // messages from its worker.
    server.push(Reply::text(PREDICT_REPLY));
    let bridged = bridged_context(&server).await;
    let in_python = InPython::attach(&bridged).await.unwrap();
    in_python
        .load_dspy_state("respond", dir.join("predict.json"))
        .await
        .unwrap();
    let out = in_python
        .run(InPythonInput {
            question: "Capital of France?".into(),
            context: vec!["Paris is in France.".into(), "«Lyon» too".into()],
        })
        .await
        .unwrap();
    assert_eq!(out.answer, "Paris");
    let requests = server.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(
        serde_json::to_string_pretty(&requests[4].body["messages"]).unwrap(),
        serde_json::to_string_pretty(&requests[0].body["messages"]).unwrap()
    );
    in_python
        .save_dspy_state("respond", dir.join("python-step.json"))
        .await
        .unwrap();
    let again: JsonValue =
        serde_json::from_str(&std::fs::read_to_string(dir.join("python-step.json")).unwrap())
            .unwrap();
    assert_eq!(again["demos"], saved[0]["demos"]);
    assert_eq!(again["signature"], saved[0]["signature"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_step_never_compiled_saves_its_modules_initial_state_and_dspy_loads_it() {
    let server = LmServer::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("dspex-dspy-fresh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bridged = bridged_context(&server).await;
    let fresh = InPython::attach(&bridged).await.unwrap();
    let path = dir.join("fresh.json");
    fresh.save_dspy_state("respond", &path).await.unwrap();
    // The state of the module as the worker created it: no demos, DSPy's default instructions.
    let file: JsonValue = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(file["demos"], json!([]));
    assert_eq!(
        file["signature"]["instructions"],
        "Given the fields `question`, `context`, produce the fields `answer`, `confidence`."
    );
    assert_eq!(
        file["metadata"]["dependency_versions"]["dspy"],
        DSPY_VERSION
    );
    assert!(server.requests().is_empty());
    // The step itself is unchanged: still no compiled state.
    assert!(
        fresh
            .python_step("respond")
            .unwrap()
            .compiled_state()
            .is_none()
    );

    // DSPy's `module.load` reads it into a fresh `Predict` of the signature, which then holds
    // exactly that state.
    let case = json!([{
        "module": "Predict",
        "signature": "question, context: list[str] -> answer, confidence: float",
        "instructions": null,
        "descriptions": {},
        "demos": [],
        "inputs": {},
        "path": path,
    }]);
    let loaded = tokio::task::block_in_place(|| script("load", &server, case));
    assert_eq!(loaded[0]["demos"], file["demos"]);
    assert_eq!(loaded[0]["signature"], file["signature"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_step_refuses_a_dspy_file_of_another_module_and_keeps_its_state() {
    let server = LmServer::start().await.unwrap();
    let dir = std::env::temp_dir().join(format!("dspex-dspy-misfit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bridged = bridged_context(&server).await;
    let in_python = InPython::attach(&bridged).await.unwrap();
    // A ChainOfThought's state (one predictor `predict`) for the step's Predict.
    let field = json!({"prefix": "X:", "description": "${x}"});
    let cot = json!({
        "predict": {
            "traces": [], "train": [], "demos": [], "lm": null,
            "signature": {"instructions": "Think.", "fields": vec![field; 5]},
        },
        "metadata": {"dependency_versions": {"dspy": DSPY_VERSION}},
    });
    let path = dir.join("cot.json");
    std::fs::write(&path, cot.to_string()).unwrap();
    let err = in_python
        .load_dspy_state("respond", &path)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.contains(
            "holds the predictors `predict` of a module; step `respond` is a Predict, which takes a single `dspy.Predict`'s state"
        ),
        "{err}"
    );
    assert!(
        in_python
            .python_step("respond")
            .unwrap()
            .compiled_state()
            .is_none()
    );
    assert!(server.requests().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
