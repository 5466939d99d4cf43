//! The hybrid program of the telemetry example and of the test of one trace across both
//! lanes: a native step labels the question, then DSPy's `ReAct` in the Python worker answers
//! it, calling a Rust tool.

use dspex::prelude::*;

/// Labels a question before the agent sees it.
#[derive(Default)]
pub struct Label;

impl Module for Label {
    async fn forward(&self, inputs: &Fields, _params: &Params) -> Result<Fields> {
        let question = inputs.get::<&str>("question")?;
        Ok(Fields::from([(
            "topic",
            format!("a question about {question}"),
        )]))
    }
}

/// Searches the documentation index; returns the titles of the best passages.
#[dspex::tool(variables(top_k))]
pub async fn search_docs(query: String, top_k: i64) -> Result<Vec<String>> {
    Ok((1..=top_k).map(|i| format!("docs/{query}#{i}")).collect())
}

dspex_program! {
    /// A native step, then an agent in Python calling a Rust tool.
    pub program Researcher: "question -> answer" {
        variables {
            top_k: integer = 2 { min: 1, max: 5 },
            temperature: float = 0.4 { min: 0.0, max: 2.0 },
        }
        chain {
            label: native Label("question -> topic"),
            agent: python ReAct("question, topic -> answer") { temperature } with {
                max_iters: 4,
                tools: [search_docs],
            },
        }
    }
}
