//! A pure-Rust LM program: a native `ChainOfThought` step, then a typed native `Predict`, with
//! no Python at all (the program stays local). It runs on the offline scripted LM by default,
//! and on any OpenAI-compatible endpoint with flags:
//!
//! ```text
//! cargo run -p dspex-examples --bin native_cot
//! cargo run -p dspex-examples --bin native_cot -- \
//!     --base-url https://api.openai.com/v1 --model gpt-4o-mini --api-key-env OPENAI_API_KEY
//! ```
//!
//! It prints each step's outputs, the reasoning kept in the trace, and each LM call's settings
//! and token usage.

#![allow(clippy::print_stdout)]

use dspex::BackendKind;
use dspex::prelude::*;
use dspex_examples::endpoint_or_scripted;

dspex_program! {
    /// Answers a question with its reasoning, then rates its own confidence.
    pub program ThinkThenRate: "question -> answer, confidence: float" {
        variables {
            temperature: float = 0.2 { min: 0.0, max: 2.0 },
            max_tokens: integer = 512 { min: 16, max: 4096 },
        }
        chain {
            answer: native ChainOfThought("question -> answer") { temperature, max_tokens },
            rate: native Predict("question, answer -> confidence: float") { max_tokens },
        }
    }
}

/// The scripted LM of the example, used unless the command line names an endpoint.
fn scripted() -> LmConfig {
    LmConfig::scripted()
        // A rule answers any call whose prompt contains its needle: here, the output each
        // step asks for.
        .rule("`[[ ## confidence ## ]]`", [("confidence", "0.8")])
        .rule(
            "`[[ ## reasoning ## ]]`",
            [
                (
                    "reasoning",
                    "Rust checks ownership and lifetimes at compile time, so no garbage collector is needed.",
                ),
                ("answer", "It frees memory when its owner goes out of scope."),
            ],
        )
}

#[tokio::main]
async fn main() -> Result<()> {
    let lm = endpoint_or_scripted("native_cot", scripted());
    println!(
        "ThinkThenRate needs the Python bridge: {}",
        <ThinkThenRate as Program>::REQUIRES_BRIDGE
    );
    println!(
        "LM: {} ({})",
        lm.model_name(),
        if lm.model_name() == "scripted" {
            "offline"
        } else {
            "endpoint"
        }
    );
    let ctx = Context::builder().lm(lm).build().await?;
    let program = ThinkThenRate::attach(&ctx).await?;
    let (out, trace) = program
        .run_traced(ThinkThenRateInput {
            question: "How does Rust manage memory without a garbage collector?".into(),
        })
        .await?;
    println!("answer: {}", out.answer);
    println!("confidence: {}", out.confidence);
    if let Some(step) = trace.step("answer") {
        println!(
            "reasoning (kept in the trace): {}",
            step.outputs.get::<&str>("reasoning")?
        );
    }
    for step in &trace.steps {
        for call in &step.lm_calls {
            println!("lm call of `{}`: {call}", step.step);
        }
    }
    let local = ctx.backend().kind == BackendKind::Local;
    println!("still on the local backend: {local}");
    Ok(())
}
