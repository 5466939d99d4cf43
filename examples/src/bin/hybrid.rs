//! The main demo: a declared program with a native Rust step and a Python DSPy step sharing
//! bound variables. It runs twice, with the temperature changed from Rust in between, and
//! prints what each step did, the LM settings the Python call really used, and the backend.
//!
//! `./scripts/demo` (sets up the Python environment when it is missing), or
//! `cargo run -p dspex-examples --bin hybrid` once `.venv` exists. The LM is the offline
//! scripted one; `--model openai/gpt-4o-mini` (or any model string `dspy.LM` accepts, with the
//! provider's API key in the environment) uses a real LM instead.

#![allow(clippy::print_stdout)]

use dspex::LmConfig;
use dspex::prelude::*;

/// Classifies a question before the Python step answers it.
#[derive(Default)]
struct QueryClassifier;

impl Module for QueryClassifier {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let question = inputs.get::<&str>("question")?.to_lowercase();
        let category = if question.starts_with("why") || question.starts_with("how") {
            "explanation"
        } else if question.contains("compare") || question.contains(" vs ") {
            "comparison"
        } else {
            "fact"
        };
        let model = params.get::<String>("llm_model")?;
        Ok(Fields::from([(
            "category",
            format!("{category} (routed to {model})"),
        )]))
    }
}

dspex_program! {
    /// Answers questions: a Rust classifier, then DSPy's ChainOfThought in Python.
    pub program QaPipeline: "question -> answer" {
        variables {
            temperature: float = 0.7 { min: 0.0, max: 2.0, description: "sampling temperature" },
            max_tokens: integer = 256 { min: 1, max: 4096 },
            model: choice = "gpt-4o-mini" { choices: ["gpt-4o-mini", "claude-3-haiku"] },
        }
        chain {
            classify: native QueryClassifier("question -> category") { model as llm_model },
            answer: python ChainOfThought("question, category -> answer") { temperature, max_tokens, model },
        }
    }
}

async fn run(qa: &QaPipeline, question: &str) -> Result<()> {
    println!("\n>>> {question}");
    let (output, trace) = qa
        .run_traced(QaPipelineInput {
            question: question.to_owned(),
        })
        .await?;
    print!("{trace}");
    println!("answer: {}", output.answer);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let lm = dspex_examples::lm_from_args(LmConfig::scripted().rule(
        "capital of France",
        [
            ("reasoning", "France's capital city hosts its government."),
            ("answer", "Paris"),
        ],
    ));

    // The program has a python step, so `start` would pick a bridged context by itself;
    // building the context here only chooses the LM.
    println!(
        "QaPipeline: REQUIRES_BRIDGE = {} (decided at compile time)",
        QaPipeline::REQUIRES_BRIDGE
    );
    let ctx = Context::builder().bridged().lm(lm).build().await?;
    let qa = QaPipeline::attach(&ctx).await?;
    if let Some(worker) = ctx.worker_status() {
        let pid = worker
            .pid
            .map_or_else(|| "restarting".to_owned(), |p| p.to_string());
        println!(
            "context on the {}; python worker pid {pid} ({})",
            ctx.backend(),
            worker.python
        );
    }

    run(&qa, "What is the capital of France?").await?;

    qa.temperature().set(1.2)?;
    qa.model().set("claude-3-haiku")?;
    println!("\nset from Rust: temperature = 1.2, model = claude-3-haiku");
    if let Err(e) = qa.max_tokens().set(10_000) {
        println!("refused: {e} (max_tokens stays {})", qa.max_tokens().get()?);
    }

    run(&qa, "Why is the sky blue?").await?;

    println!("\nbackend: {}", ctx.backend());
    for var in ctx.list(None)? {
        println!(
            "  {:<12} = {:<18} v{} (last written by {})",
            var.name,
            var.value.to_string(),
            var.version,
            var.source
        );
    }
    Ok(())
}
