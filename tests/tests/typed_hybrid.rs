//! Typed fields across the Rust/Python boundary, with a real worker running real DSPy on the
//! scripted LM: a native step's `list[str]` reaches a DSPy step, whose LM answers DSPy reads as
//! the declared types (`float`, `Literal`, `list[int]`, `bool`) and dspex returns as Rust
//! values; DSPy's extra `reasoning` stays text in the trace; and a python output that does not
//! convert to its declared type is a step error naming the step, the field, the type and the
//! value.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use dspex::LmConfig;
use dspex::prelude::*;
use dspex::{ProgramBuilder, Step, json};
use dspex_tests::worker_config;

/// Splits the evidence into facts, one per sentence.
#[derive(Default)]
struct ExtractFacts;

impl Module for ExtractFacts {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        let evidence: &str = inputs.get("evidence")?;
        Ok(Fields::from([(
            "facts",
            evidence
                .split(". ")
                .map(|s| s.trim_end_matches('.'))
                .collect::<Vec<_>>(),
        )]))
    }
}

dspex_program! {
    /// A native `list[str]` into a DSPy step with typed outputs.
    program FactCheck: "claim, evidence -> facts: list[str], confidence: float, verdict: Literal['supported', 'refuted'], cited: list[int], certain: bool" {
        chain {
            extract: native ExtractFacts("evidence -> facts: list[str]"),
            judge: python ChainOfThought("claim, facts: list[str] -> confidence: float, verdict: Literal['supported', 'refuted'], cited: list[int], certain: bool"),
        }
    }
}

async fn context(lm: LmConfig) -> Context {
    Context::builder()
        .worker(worker_config())
        .lm(lm)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_step_reads_typed_inputs_and_returns_typed_outputs() {
    // The LM answers in text, as a real one would; DSPy reads each text as its field's type.
    let lm = LmConfig::scripted().rule(
        "Eiffel",
        [
            ("reasoning", "Both facts place it in Paris."),
            ("confidence", "0.92"),
            ("verdict", "'refuted'"),
            ("cited", "[1, \"2\"]"),
            ("certain", "yes"),
        ],
    );
    let ctx = context(lm).await;
    let program = FactCheck::attach(&ctx).await.unwrap();
    let (out, trace) = program
        .run_traced(FactCheckInput {
            claim: "The Eiffel Tower is in Rome.".into(),
            evidence: "The Eiffel Tower is on the Champ de Mars. The Champ de Mars is in Paris."
                .into(),
        })
        .await
        .unwrap();
    assert_eq!(
        out,
        FactCheckOutput {
            facts: vec![
                "The Eiffel Tower is on the Champ de Mars".into(),
                "The Champ de Mars is in Paris".into(),
            ],
            confidence: 0.92,
            verdict: FactCheckVerdict::Refuted,
            cited: vec![1, 2],
            certain: true,
        }
    );

    let judge = trace.step("judge").unwrap();
    // The python step read the native step's list as a list...
    assert_eq!(
        judge.inputs.value("facts"),
        Some(&json!([
            "The Eiffel Tower is on the Champ de Mars",
            "The Champ de Mars is in Paris"
        ]))
    );
    // ...returned typed values, and DSPy's extra output as text.
    assert_eq!(judge.outputs.value("confidence"), Some(&json!(0.92)));
    assert_eq!(judge.outputs.value("cited"), Some(&json!([1, 2])));
    assert_eq!(
        judge.outputs.value("reasoning"),
        Some(&json!("Both facts place it in Paris."))
    );

    // Without a scripted answer the LM generates one of each declared shape.
    let out = program
        .run(FactCheckInput {
            claim: "Honey never spoils.".into(),
            evidence: "Honey from old tombs was edible.".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        (out.confidence, out.verdict, out.cited, out.certain),
        (0.0, FactCheckVerdict::Supported, vec![0], false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_output_that_is_not_of_its_type_is_a_step_error() {
    let ctx = context(LmConfig::scripted()).await;
    // `Shouter` upper-cases its input into its output without an LM: typed values travel to
    // the worker typed (a list as a list) and come back as the declared type.
    let echo = ProgramBuilder::new("Echo")
        .step(Step::python(
            "shout",
            "sample_modules.Shouter",
            "words: list[str] -> loud: list[str]",
        ))
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap();
    let out = echo
        .run(Fields::from([("words", vec!["a", "b"])]))
        .await
        .unwrap();
    assert_eq!(out.get::<Vec<String>>("loud").unwrap(), ["A", "B"]);

    let score = ProgramBuilder::new("Score")
        .step(Step::python(
            "shout",
            "sample_modules.Shouter",
            "text -> score: float",
        ))
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap();
    let err = score
        .run(Fields::from([("text", "very high")]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the output of python step `shout`: field `score` is declared `float`, but its value is `\"VERY HIGH\"`"
    );
    // The worker is fine: the next call with a number works.
    let out = score.run(Fields::from([("text", "2.5")])).await.unwrap();
    assert_eq!(out.get::<f64>("score").unwrap(), 2.5);
}
