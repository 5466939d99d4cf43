//! DSPy state files that do not fit a native step, or that are no state files at all, are
//! refused with an error naming the difference, and leave the step as it was; a file that fits
//! runs and saves back as it was loaded. (The comparison with real DSPy is `tests/tests/dspy_state.rs`.)

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use dspex::optimize::MAX_DSPY_STATE_BYTES;
use dspex::prelude::*;
use dspex::{JsonValue, json};

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            respond: native Predict("question -> answer"),
            explain: native ChainOfThought("answer -> why"),
            shout: native Shout("why -> loud"),
        }
    }
}

#[derive(Default)]
struct Shout;

impl Module for Shout {
    async fn forward(&self, inputs: &Fields, _params: &Params) -> Result<Fields> {
        Ok(Fields::from([(
            "loud",
            inputs.get::<&str>("why")?.to_uppercase(),
        )]))
    }
}

fn predict_state(fields: usize, demos: JsonValue) -> JsonValue {
    let field = json!({"prefix": "X:", "description": "${x}"});
    json!({
        "traces": [], "train": [], "demos": demos, "lm": null,
        "signature": {"instructions": "Be brief.", "fields": vec![field; fields]},
        "metadata": {"dependency_versions": {"python": "3.11", "dspy": "3.4.1", "cloudpickle": "3.1"}},
    })
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("dspex-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, value: &JsonValue) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn saved(program: &Qa, step: &str, dir: &Path) -> String {
    let path = dir.join(format!("{step}-saved.json"));
    program.save_dspy_state(step, &path).await.unwrap();
    std::fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn files_that_do_not_fit_are_refused_and_change_nothing() {
    let dir = Dir::new("dspy-files");
    let program = Qa::start().await.unwrap();
    let good = dir.write(
        "good.json",
        &predict_state(2, json!([{"question": "q", "answer": "a"}])),
    );
    program.load_dspy_state("respond", &good).await.unwrap();
    let before = (
        saved(&program, "respond", &dir.0).await,
        saved(&program, "explain", &dir.0).await,
    );
    assert!(before.0.contains("Be brief."), "{}", before.0);

    let cot = json!({"predict": predict_state(3, json!([]))});
    let too_large = dir.0.join("large.json");
    std::fs::write(&too_large, " ".repeat(MAX_DSPY_STATE_BYTES + 1)).unwrap();
    let pickle_dir = dir.0.join("saved_program");
    std::fs::create_dir_all(&pickle_dir).unwrap();
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        (
            "respond",
            dir.write("three-fields.json", &predict_state(3, json!([]))),
            "its signature has 3 fields; step `respond` (a Predict) has 2: `question`, `answer`",
        ),
        (
            "respond",
            dir.write(
                "other-field.json",
                &predict_state(2, json!([{"question": "q", "topic": "t"}])),
            ),
            "demo 1 has field `topic`, which step `respond` does not have",
        ),
        (
            "respond",
            dir.write("cot.json", &cot),
            "holds the predictors `predict` of a module; step `respond` is a Predict",
        ),
        (
            "explain",
            dir.write("predict.json", &predict_state(3, json!([]))),
            "step `explain` is a ChainOfThought",
        ),
        (
            "explain",
            dir.write(
                "unknown-predictor.json",
                &json!({"predict": predict_state(3, json!([])), "retrieve": {}}),
            ),
            "has predictor `retrieve`",
        ),
        (
            "respond",
            dir.write(
                "unknown-key.json",
                &json!({"demos": [], "signature": {}, "extended_signature": {}}),
            ),
            "has key `extended_signature`",
        ),
        ("respond", pickle_dir, "dspex never unpickles"),
        (
            "respond",
            dir.write("program.pkl", &json!({})),
            "dspex never unpickles",
        ),
        ("respond", too_large, "MAX_DSPY_STATE_BYTES"),
        (
            "respond",
            {
                let path = dir.0.join("broken.json");
                std::fs::write(&path, "{\"demos\": [").unwrap();
                path
            },
            "is not JSON",
        ),
        ("shout", good.clone(), "no Predict or ChainOfThought"),
        ("nowhere", good.clone(), "has no step `nowhere`"),
    ];
    for (step, path, expected) in cases {
        let err = program
            .load_dspy_state(step, &path)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(expected),
            "{}: {err}\nexpected: {expected}",
            path.display()
        );
    }
    let after = (
        saved(&program, "respond", &dir.0).await,
        saved(&program, "explain", &dir.0).await,
    );
    assert_eq!(after, before);

    // A file of another DSPy major version loads (with a warning), as DSPy's own `load` does.
    let mut older = predict_state(2, json!([{"question": "q2", "answer": "a2"}]));
    older["metadata"]["dependency_versions"]["dspy"] = json!("2.6.27");
    let older = dir.write("older.json", &older);
    program.load_dspy_state("respond", &older).await.unwrap();
    assert!(saved(&program, "respond", &dir.0).await.contains("q2"));
}

#[tokio::test]
async fn a_loaded_state_runs_and_saves_back_as_loaded() {
    let dir = Dir::new("dspy-prompt");
    let lm = LmConfig::scripted().answer([("answer", "a"), ("why", "w"), ("reasoning", "r")]);
    let ctx = Context::builder().lm(lm).build().await.unwrap();
    let program = Qa::attach(&ctx).await.unwrap();
    let mut state = predict_state(
        2,
        json!([{"question": "Demo question?", "answer": "Demo answer"}]),
    );
    state["signature"]["fields"][0]["description"] = json!("What the user asks");
    let path = dir.write("state.json", &state);
    program.load_dspy_state("respond", &path).await.unwrap();
    let (_, trace) = program
        .run_traced(QaInput {
            question: "Why?".into(),
        })
        .await
        .unwrap();
    let saved: JsonValue = serde_json::from_str(&saved(&program, "respond", &dir.0).await).unwrap();
    assert_eq!(saved["demos"], state["demos"]);
    assert_eq!(saved["signature"], state["signature"]);
    assert_eq!(
        saved["metadata"]["dependency_versions"]["dspy"],
        dspex::optimize::DSPY_VERSION
    );
    assert_eq!(trace.steps[0].outputs.get::<&str>("answer").unwrap(), "a");
}
