//! Streaming a native `ChainOfThought` to the terminal: the reasoning and the answer are printed
//! as the LM writes them, then the typed outputs. Offline by default (the scripted LM, writing a
//! few characters at a time), or from any OpenAI-compatible endpoint:
//!
//! ```text
//! cargo run -p dspex-examples --bin stream
//! cargo run -p dspex-examples --bin stream -- \
//!     --base-url https://api.openai.com/v1 --model gpt-4o-mini --api-key-env OPENAI_API_KEY
//! ```

#![allow(clippy::print_stdout)]

use std::io::Write;
use std::time::Duration;

use dspex::prelude::*;
use dspex_examples::{arg, endpoint_from_args};
use futures_util::StreamExt;

dspex_program! {
    /// Answers a question with its reasoning and a confidence.
    pub program Explain: "question -> answer, confidence: float" {
        variables {
            temperature: float = 0.2 { min: 0.0, max: 2.0 },
        }
        chain {
            answer: native ChainOfThought("question -> answer, confidence: float") { temperature },
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let lm = match (arg("--base-url"), arg("--model")) {
        (Some(url), Some(model)) => endpoint_from_args(url, model),
        _ => LmConfig::scripted()
            .answer([
                (
                    "reasoning",
                    "Rust checks ownership and lifetimes at compile time, so memory is freed when its owner goes out of scope.",
                ),
                ("answer", "Through ownership, checked by the compiler."),
                ("confidence", "0.9"),
            ])
            .scripted_deltas(6, Duration::from_millis(15)),
    };
    let ctx = Context::builder().lm(lm).build().await?;
    let program = Explain::attach(&ctx).await?;
    let mut events = program.stream(ExplainInput {
        question: "How does Rust manage memory without a garbage collector?".into(),
    });
    let mut field_now = String::new();
    let mut stdout = std::io::stdout();
    while let Some(event) = events.next().await {
        match event? {
            RunEvent::StepStarted { step } => println!("[step `{step}` started]"),
            RunEvent::Chunk { field, text, .. } => {
                if field != field_now {
                    print!("\n{field}: ");
                    field_now = field;
                }
                print!("{text}");
                let _ = stdout.flush();
            }
            RunEvent::StepFinished { step, .. } => println!("\n[step `{step}` finished]"),
            RunEvent::Finished { output, trace } => {
                println!("answer: {}", output.answer);
                println!("confidence: {}", output.confidence);
                println!("steps: {}", trace.steps.len());
            }
            _ => {}
        }
    }
    Ok(())
}
