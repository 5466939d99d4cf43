//! Typed fields end to end: a native Rust step produces a `list[str]`, a Python DSPy step
//! reads it and produces a `float` and a `Literal`, and the program returns them as Rust
//! values (`Vec<String>`, `f64` and a generated enum).
//!
//! `cargo run -p dspex-examples --bin typed` once `.venv` exists (`./scripts/python-env`).
//! The LM is the offline scripted one; `--model openai/gpt-4o-mini` (or any model string
//! `dspy.LM` accepts, with the provider's API key in the environment) uses a real LM instead.

#![allow(clippy::print_stdout)]

use dspex::LmConfig;
use dspex::RunTrace;
use dspex::prelude::*;

/// Splits the evidence into its sentences: one fact each.
#[derive(Default)]
struct ExtractFacts;

impl Module for ExtractFacts {
    async fn forward(&self, inputs: &Fields, _params: &Params) -> Result<Fields> {
        let evidence: &str = inputs.get("evidence")?;
        let facts: Vec<&str> = evidence
            .split(". ")
            .map(|s| s.trim().trim_end_matches('.'))
            .filter(|s| !s.is_empty())
            .collect();
        Ok(Fields::from([("facts", facts)]))
    }
}

dspex_program! {
    /// Checks a claim against evidence: Rust extracts the facts, DSPy judges the claim.
    pub program FactCheck: "claim, evidence -> facts: list[str], confidence: float, verdict: Literal['supported', 'refuted', 'unclear']" {
        variables {
            temperature: float = 0.2 { min: 0.0, max: 2.0 },
        }
        chain {
            extract: native ExtractFacts("evidence -> facts: list[str]"),
            judge: python ChainOfThought("claim, facts: list[str] -> confidence: float, verdict: Literal['supported', 'refuted', 'unclear']") { temperature },
        }
    }
}

async fn check(program: &FactCheck, claim: &str, evidence: &str) -> Result<()> {
    println!("\n>>> {claim}");
    let (out, trace): (FactCheckOutput, RunTrace) = program
        .run_traced(FactCheckInput {
            claim: claim.to_owned(),
            evidence: evidence.to_owned(),
        })
        .await?;
    println!("facts ({}): {:?}", out.facts.len(), out.facts);
    println!("confidence: {:.2}", out.confidence);
    let advice = match out.verdict {
        FactCheckVerdict::Supported => "keep the claim",
        FactCheckVerdict::Refuted => "correct the claim",
        FactCheckVerdict::Unclear => "find more evidence",
    };
    println!("verdict: {} ({advice})", out.verdict);
    // DSPy's extra output stays text, in the trace only.
    if let Some(reasoning) = trace
        .step("judge")
        .and_then(|s| s.outputs.value("reasoning"))
    {
        println!("reasoning (trace): {reasoning}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    // The scripted LM answers this claim with these texts; DSPy reads them as the declared
    // types, and dspex converts them into the Rust types.
    let lm = dspex_examples::lm_from_args(LmConfig::scripted().rule(
        "Eiffel",
        [
            ("reasoning", "Both facts place the tower in Paris."),
            ("confidence", "0.92"),
            ("verdict", "supported"),
        ],
    ));
    let ctx = Context::builder().bridged().lm(lm).build().await?;
    let program = FactCheck::attach(&ctx).await?;
    println!(
        "FactCheck: REQUIRES_BRIDGE = {}",
        FactCheck::REQUIRES_BRIDGE
    );
    println!(
        "signature: {}",
        FactCheck::spec()
            .signature
            .as_ref()
            .map_or_else(String::new, ToString::to_string)
    );

    check(
        &program,
        "The Eiffel Tower is in Paris.",
        "The Eiffel Tower stands on the Champ de Mars. The Champ de Mars is in Paris.",
    )
    .await?;
    // Without a scripted answer the LM generates one of the declared shape.
    check(
        &program,
        "Honey never spoils.",
        "Honey found in ancient tombs was still edible.",
    )
    .await?;
    Ok(())
}
