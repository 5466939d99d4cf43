//! A DSPy multi-step program ported with its program-level compile: query generation, a
//! retriever (a native step holding its corpus, run but not compiled), and a reasoned answer,
//! compiled from question/answer pairs with `BootstrapFewShot` as
//! `dspy.BootstrapFewShot(...).compile(program, trainset=qa_pairs)` compiles the DSPy original
//! (shown in the README beside this port).
//!
//! ```text
//! cargo run -p dspex-examples --bin compile_program
//! cargo run -p dspex-examples --bin compile_program -- \
//!     --base-url https://api.openai.com/v1 --model gpt-4o-mini --api-key-env OPENAI_API_KEY
//! ```
//!
//! Offline, it answers on a loopback LM server that knows a capital only when the prompt holds a
//! demo (a model that needs the right few-shot examples): the validation score goes from 0 to 1.
//! It prints the compile report (each step's demos, the scores, LM requests and tokens) and a
//! compiled run.

#![allow(clippy::print_stdout)]

use dspex::JsonValue;
use dspex::eval::{Dataset, ExactMatch, Example};
use dspex::optimize::{CompileMetric, Optimizer};
use dspex::prelude::*;
use dspex_examples::{arg, endpoint_from_args};
use dspex_test_lm::{LmServer, Reply};

/// A retriever over a tiny corpus: the passages that share a word with the query.
struct Search {
    corpus: Vec<&'static str>,
}

impl Module for Search {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        let query = inputs.get::<&str>("query")?.to_lowercase();
        let hits: Vec<&str> = self
            .corpus
            .iter()
            .copied()
            .filter(|p| {
                query
                    .split_whitespace()
                    .any(|w| w.len() > 3 && p.to_lowercase().contains(w))
            })
            .collect();
        Ok(Fields::from([("context", hits)]))
    }
}

dspex_program! {
    /// Multi-hop question answering: generate a query, retrieve, answer with reasoning.
    pub program MultiHop: "question -> answer" {
        chain {
            generate_query: native Predict("question -> query"),
            search: native Search("query -> context: list[str]"),
            answer: native ChainOfThought("question, context: list[str] -> answer"),
        }
    }
}

const CORPUS: [&str; 4] = [
    "Paris is the capital of France.",
    "Rome is the capital of Italy.",
    "Lima is the capital of Peru.",
    "Tokyo is the capital of Japan.",
];

fn pair(country: &str, city: &str) -> Example {
    Example::new()
        .with_input("question", format!("What is the capital of {country}?"))
        .with_expected("answer", city)
}

/// The value of `field` in a ChatAdapter user message.
fn field_value<'a>(message: &'a str, field: &str) -> &'a str {
    let marker = format!("[[ ## {field} ## ]]\n");
    let start = message.find(&marker).map_or(0, |i| i + marker.len());
    message[start..].split("\n\n").next().unwrap_or_default()
}

/// The offline LM: a query is the question's last word (the country); an answer is the city of the first
/// passage, but only when the prompt holds a demo (a message between the system message and
/// the question).
fn offline_lm(body: &JsonValue) -> Reply {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages
        .last()
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default();
    if last.contains("`[[ ## query ## ]]`") {
        let question = field_value(last, "question");
        let country = question
            .trim_end_matches('?')
            .rsplit(' ')
            .next()
            .unwrap_or_default();
        return Reply::text(format!(
            "[[ ## query ## ]]\n{country}\n\n[[ ## completed ## ]]"
        ));
    }
    let context = field_value(last, "context");
    let city = context
        .split('"')
        .nth(1)
        .and_then(|p| p.split(' ').next())
        .unwrap_or("unknown");
    let answer = if messages.len() > 2 {
        city
    } else {
        "I am not sure"
    };
    Reply::text(format!(
        "[[ ## reasoning ## ]]\nThe passage names it.\n\n[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"
    ))
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut offline = None;
    let lm = match (arg("--base-url"), arg("--model")) {
        (Some(url), Some(model)) => endpoint_from_args(url, model),
        _ => {
            let server = LmServer::start()
                .await
                .map_err(|e| dspex::Error::Internal(e.to_string()))?;
            server.respond_with(offline_lm);
            let lm = LmConfig::openai(server.base_url(), "offline");
            offline = Some(server);
            lm
        }
    };
    let ctx = Context::builder().lm(lm).build().await?;
    let program = MultiHop::builder()
        .search(Search {
            corpus: CORPUS.to_vec(),
        })
        .attach(&ctx)
        .await?;
    let trainset = Dataset::from_examples([pair("France", "Paris"), pair("Italy", "Rome")]);
    let devset = Dataset::from_examples([pair("Peru", "Lima"), pair("Japan", "Tokyo")]);
    let optimizer = Optimizer::bootstrap_few_shot()
        .set("max_bootstrapped_demos", 2)
        .set("max_labeled_demos", 2)
        .valset(&devset);
    let metric = CompileMetric::rust(ExactMatch::new("answer"));
    let report = program.compile(&optimizer, &trainset, &metric).await?;
    println!("{report}");
    for (step, demos) in &report.step_demos {
        for demo in demos {
            println!("demo of {step}: {demo}");
        }
    }
    let out = program
        .run(MultiHopInput {
            question: "What is the capital of Japan?".into(),
        })
        .await?;
    println!("compiled answer: {}", out.answer);
    drop(offline);
    Ok(())
}
