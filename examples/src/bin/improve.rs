//! Improve a hybrid program end to end: evaluate it, tune its declared variables, apply the
//! result, compile its python step with DSPy's BootstrapFewShot (scored by a Rust metric called
//! back from Python), save everything it learned to one file, and load that file into a fresh
//! program whose evaluation matches.
//!
//! `cargo run -p dspex-examples --bin improve` once `.venv` exists (`scripts/python-env`), with
//! `DSPEX_PYTHON=.venv/bin/python`. The LM is the offline scripted one.

#![allow(clippy::print_stdout)]

use dspex::LmConfig;
use dspex::eval::{Dataset, EvalReport, Evaluate, ExactMatch, Example};
use dspex::optimize::{CompileMetric, Optimizer};
use dspex::prelude::*;
use dspex::tune::{Sampler, SearchSpace, Tuner};
use dspex::{AnyProgram, JsonValue};

/// Turns a question into the query the LM step answers: `strict` finds the country and asks
/// about it in the form the LM knows; `loose` passes the question on, lower-cased.
#[derive(Default)]
struct Rewrite;

impl Module for Rewrite {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let question = inputs.get::<&str>("question")?;
        let query = if params.get::<Choice>("rewrite")?.as_str() == "strict" {
            let country = question
                .trim_end_matches('?')
                .rsplit(' ')
                .next()
                .unwrap_or_default();
            format!("capital of {country}")
        } else {
            question.to_lowercase()
        };
        Ok(Fields::from([("query", query)]))
    }
}

dspex_program! {
    /// Answers capital questions: a Rust rewriter, then DSPy's ChainOfThought in Python.
    pub program Capitals: "question -> answer" {
        variables {
            rewrite: choice = "loose" { choices: ["loose", "strict"] },
            temperature: float = 1.0 { min: 0.0, max: 2.0 },
        }
        chain {
            rewrite: native Rewrite("question -> query") { rewrite },
            answer: python ChainOfThought("query -> answer") { temperature },
        }
    }
}

const CAPITALS: [(&str, &str); 6] = [
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Egypt", "Cairo"),
    ("Peru", "Lima"),
];

/// The scripted LM answers a query it knows ("capital of France"), and makes something up
/// otherwise.
fn lm() -> LmConfig {
    CAPITALS
        .iter()
        .fold(LmConfig::scripted(), |lm, (country, city)| {
            lm.rule(
                format!("capital of {country}"),
                [
                    ("reasoning", format!("{city} is {country}'s capital.")),
                    ("answer", (*city).to_owned()),
                ],
            )
        })
}

async fn start() -> Result<Capitals> {
    let ctx = Context::builder().bridged().lm(lm()).build().await?;
    Capitals::attach(&ctx).await
}

fn show(label: &str, report: &EvalReport) {
    println!(
        "{label}: {} (LM prompt tokens {})",
        report.summary(),
        report.tokens.prompt_tokens
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let dev: Dataset = CAPITALS
        .iter()
        .map(|(country, city)| {
            Example::new()
                .with_input("question", format!("What is the capital of {country}?"))
                .with_expected("answer", *city)
        })
        .collect();
    let evaluate = Evaluate::new(ExactMatch::new("answer"));
    let program = start().await?;
    show("before", &evaluate.run(&program, &dev).await?);

    // Tune: the rewrite mode is searched over a grid; the temperature is held.
    let space = SearchSpace::of(&program)?.fix("temperature", 0.3)?;
    let result = Tuner::new(space, ExactMatch::new("answer"))
        .sampler(Sampler::grid(2))
        .trials(2)
        .seed(1)
        .run(&program, &dev)
        .await?;
    println!(
        "tuned: best score {:.3} with rewrite={}",
        result.best_score.unwrap_or_default(),
        result
            .best
            .as_ref()
            .and_then(|b| b.get("rewrite"))
            .map_or_else(|| "?".to_owned(), ToString::to_string)
    );
    result.apply(&program)?;
    show("after tuning", &evaluate.run(&program, &dev).await?);

    // Compile the python step: its train set holds the step's own fields (query -> answer),
    // and the metric is Rust's exact match, called back from the worker for each trace.
    let trainset: Dataset = CAPITALS
        .iter()
        .map(|(country, city)| {
            Example::new()
                .with_input("query", format!("capital of {country}"))
                .with_expected("answer", *city)
        })
        .collect();
    let optimizer = Optimizer::bootstrap_few_shot()
        .set("max_bootstrapped_demos", 2)
        .set("max_labeled_demos", 0);
    let report = program
        .compile_step(
            "answer",
            &optimizer,
            &trainset,
            &CompileMetric::rust(ExactMatch::new("answer")),
        )
        .await?;
    println!("{report}");
    let compiled = evaluate.run(&program, &dev).await?;
    show("after compiling", &compiled);

    // Save what the program learned: the variables' values and the compiled demos.
    let path = std::env::temp_dir().join(format!("dspex-improve-{}.json", std::process::id()));
    program.save_state(&path)?;
    println!("saved the program's state to {}", path.display());

    // A fresh program (its own context and worker) starts from the declared defaults...
    let fresh = start().await?;
    show("fresh program", &evaluate.run(&fresh, &dev).await?);
    // ...and after loading the file it is the improved program.
    fresh.load_state(&path).await?;
    let loaded = evaluate.run(&fresh, &dev).await?;
    show("loaded program", &loaded);
    let demos = fresh
        .python_step("answer")?
        .compiled_state()
        .map(|s| s.demos().values().map(Vec::len).sum::<usize>())
        .unwrap_or_default();
    println!(
        "loaded: rewrite={}, temperature={}, {demos} demos",
        fresh.rewrite().get()?,
        fresh.temperature().get()?
    );
    let same = |r: &EvalReport| -> Vec<(f64, Option<JsonValue>)> {
        r.examples
            .iter()
            .map(|e| {
                (
                    e.score,
                    e.prediction.as_ref().and_then(|p| p.get("answer").cloned()),
                )
            })
            .collect()
    };
    println!(
        "evaluation matches: {}",
        same(&loaded) == same(&compiled)
            && loaded.tokens.prompt_tokens == compiled.tokens.prompt_tokens
    );
    let _ = std::fs::remove_file(&path);
    Ok(())
}
