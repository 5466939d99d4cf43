//! Multi-hop retrieval, as DSPy's tutorials write it: a loop of `k` hops, each writing a search
//! query from what was found so far and retrieving passages for it, then an answer with its
//! reasoning. The loop is a native step calling two `called` steps of the program (a native
//! `Predict` and a retriever holding its corpus, given as a value); every call shows in the
//! trace. It runs on the offline scripted LM by default, and on any OpenAI-compatible endpoint
//! with flags:
//!
//! ```text
//! cargo run -p dspex-examples --bin multihop
//! cargo run -p dspex-examples --bin multihop -- \
//!     --base-url https://api.openai.com/v1 --model gpt-4o-mini --api-key-env OPENAI_API_KEY
//! ```

#![allow(clippy::print_stdout)]

use dspex::prelude::*;
use dspex::{StepContext, json};
use dspex_examples::endpoint_or_scripted;

/// Finds the passages sharing the most words with the query.
struct Retriever {
    corpus: Vec<String>,
    top: usize,
}

impl Retriever {
    fn words(text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 3)
            .map(str::to_lowercase)
            .collect()
    }
}

impl Module for Retriever {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        let query = Self::words(inputs.get::<&str>("query")?);
        let mut scored: Vec<(usize, &String)> = self
            .corpus
            .iter()
            .map(|p| {
                let words = Self::words(p);
                (query.iter().filter(|w| words.contains(w)).count(), p)
            })
            .filter(|(score, _)| *score > 0)
            .collect();
        scored.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
        let passages: Vec<&String> = scored.into_iter().take(self.top).map(|(_, p)| p).collect();
        Ok(Fields::from([("passages", json!(passages))]))
    }
}

/// `for hop in 0..k`: a query from the context so far, then its passages.
struct Hops {
    k: usize,
}

impl Module for Hops {
    async fn forward_in_step(
        &self,
        cx: &StepContext<'_>,
        inputs: &Fields,
        _: &Params,
    ) -> Result<Fields> {
        let question = inputs.get::<String>("question")?;
        let mut context: Vec<String> = Vec::new();
        for _hop in 0..self.k {
            let query = cx
                .call(
                    "generate_query",
                    Fields::from([("context", json!(context)), ("question", json!(question))]),
                )
                .await?;
            let found = cx.call("retrieve", query).await?;
            for passage in found.get::<Vec<String>>("passages")? {
                if !context.contains(&passage) {
                    context.push(passage);
                }
            }
        }
        Ok(Fields::from([("context", context)]))
    }
}

dspex_program! {
    /// Multi-hop question answering over a corpus.
    pub program MultiHop: "question -> answer" {
        variables {
            temperature: float = 0.0 { min: 0.0, max: 2.0 },
        }
        chain {
            generate_query: called native Predict("context: list[str], question -> query") { temperature },
            retrieve: called native Retriever("query -> passages: list[str]"),
            hops: native Hops("question -> context: list[str]"),
            answer: native ChainOfThought("context: list[str], question -> answer") { temperature },
        }
    }
}

/// The scripted LM of the example, used unless the command line names an endpoint.
fn scripted() -> LmConfig {
    LmConfig::scripted()
        // A rule answers the first call whose prompt contains its needle: the answer step
        // asks for reasoning; the second hop's prompt holds the passage naming the engineer.
        .rule(
            "`[[ ## reasoning ## ]]`",
            [
                (
                    "reasoning",
                    "The tower was designed by Gustave Eiffel's company; Gustave Eiffel was born in Dijon.",
                ),
                ("answer", "Dijon"),
            ],
        )
        .rule("designed by Gustave Eiffel", [("query", "Gustave Eiffel born")])
        .rule("`[[ ## query ## ]]`", [("query", "Eiffel Tower designed")])
}

#[tokio::main]
async fn main() -> Result<()> {
    let lm = endpoint_or_scripted("multihop", scripted());
    let corpus = [
        "The Eiffel Tower in Paris was designed by Gustave Eiffel's engineering company.",
        "Gustave Eiffel was born in Dijon, France, in 1832.",
        "The Colosseum in Rome was built under the Flavian emperors.",
        "Dijon is known for its mustard.",
    ];
    let ctx = Context::builder().lm(lm).build().await?;
    let program = MultiHop::builder()
        .retrieve(Retriever {
            corpus: corpus.map(str::to_owned).to_vec(),
            top: 1,
        })
        .hops(Hops { k: 2 })
        .attach(&ctx)
        .await?;
    let question = "Where was the engineer whose company designed the Eiffel Tower born?";
    println!("question: {question}");
    let (out, trace) = program
        .run_traced(MultiHopInput {
            question: question.into(),
        })
        .await?;
    println!("answer: {}", out.answer);
    println!("\nthe run, step by step (a called step before the step that called it):");
    for step in &trace.steps {
        match &step.called_by {
            Some(call) => println!(
                "  {} (hop {} of `{}`): {}",
                step.step, call.index, call.caller, step.outputs
            ),
            None => println!("  {}: {}", step.step, step.outputs),
        }
    }
    Ok(())
}
