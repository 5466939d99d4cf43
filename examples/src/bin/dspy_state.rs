//! A program optimized in Python with DSPy, run from Rust with no Python: DSPy saved a
//! `ChainOfThought`'s state (`module.save("qa_dspy_state.json")`: its instructions, a field
//! description and few-shot demos); this program loads that file into a native
//! `ChainOfThought` step and runs it natively (the program stays local). It runs on the offline
//! scripted LM by default, and on any OpenAI-compatible endpoint with flags:
//!
//! ```text
//! cargo run -p dspex-examples --bin dspy_state
//! cargo run -p dspex-examples --bin dspy_state -- --state my_program.json \
//!     --base-url https://api.openai.com/v1 --model gpt-4o-mini --api-key-env OPENAI_API_KEY
//! ```
//!
//! It prints where the state came from, the answer with its reasoning, and the state saved back
//! in DSPy's format.

#![allow(clippy::print_stdout)]

use dspex::JsonValue;
use dspex::prelude::*;
use dspex_examples::{arg, endpoint_from_args};

dspex_program! {
    /// Answers a question, thinking first.
    pub program Qa: "question -> answer" {
        chain { answer: native ChainOfThought("question -> answer") }
    }
}

/// The file DSPy 3.4.1 saved for `dspy.ChainOfThought("question -> answer")` after giving it
/// instructions, a description of `answer` and two demos.
const SAVED_BY_DSPY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/qa_dspy_state.json");

/// `--base-url URL --model M [--api-key-env VAR]`, else the scripted LM.
fn lm_from_args() -> std::result::Result<LmConfig, String> {
    match (arg("--base-url"), arg("--model")) {
        (Some(url), Some(model)) => Ok(endpoint_from_args(url, model)),
        // The scripted LM answers the question with a rule (a real LM reads the loaded
        // instructions and demos, which the prompt carries as DSPy writes them).
        (None, None) => Ok(LmConfig::scripted().rule(
            "capital of France",
            [
                ("reasoning", "The demos answer with a capital city's name."),
                ("answer", "Paris"),
            ],
        )),
        _ => Err("give both --base-url and --model, or neither".to_owned()),
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let lm = lm_from_args()?;
    let state = arg("--state").unwrap_or_else(|| SAVED_BY_DSPY.to_owned());
    println!("Qa needs the Python bridge: {}", Qa::REQUIRES_BRIDGE);
    let ctx = Context::builder().lm(lm).build().await?;
    let qa = Qa::attach(&ctx).await?;
    qa.load_dspy_state("answer", &state).await?;
    println!("loaded the DSPy state of step `answer` from {state}");

    let (out, trace) = qa
        .run_traced(QaInput {
            question: "What is the capital of France?".into(),
        })
        .await?;
    let reasoning = trace.steps[0].outputs.get::<&str>("reasoning")?;
    println!("reasoning: {reasoning}");
    println!("answer: {}", out.answer);

    let again = std::env::temp_dir().join(format!("dspy-state-{}.json", std::process::id()));
    qa.save_dspy_state("answer", &again).await?;
    let saved: JsonValue = serde_json::from_str(&std::fs::read_to_string(&again)?)?;
    println!(
        "saved back for DSPy's module.load: {} demos, instructions {}",
        saved["predict"]["demos"].as_array().map_or(0, Vec::len),
        saved["predict"]["signature"]["instructions"]
    );
    std::fs::remove_file(&again).ok();
    Ok(())
}
