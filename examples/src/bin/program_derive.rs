//! A program declared with `#[derive(Program)]`: a struct whose fields are the variables and
//! the native steps, in chain order, plus the context. It runs on a local context and prints
//! what each step did.
//!
//! `cargo run -p dspex-examples --bin program_derive`

#![allow(clippy::print_stdout)]

use dspex::prelude::*;

/// Splits a text into sentences.
#[derive(Default)]
struct Splitter;

impl Module for Splitter {
    async fn forward(&self, inputs: &Fields, _params: &Params) -> Result<Fields> {
        let sentences: Vec<&str> = inputs
            .get::<&str>("text")?
            .split_terminator(['.', '!', '?'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        println!("  split:     {} sentences", sentences.len());
        Ok(Fields::from([("sentences", sentences.join("\n"))]))
    }
}

/// Keeps the first sentences, as many as bound; shouts them in the `loud` style.
#[derive(Default)]
struct Summarizer;

impl Module for Summarizer {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let keep = usize::try_from(params.get::<i64>("sentences")?).unwrap_or(usize::MAX);
        let style = params.get::<String>("style")?;
        let kept: Vec<&str> = inputs
            .get::<&str>("sentences")?
            .lines()
            .take(keep)
            .collect();
        let mut summary = format!("{}.", kept.join(". "));
        if style == "loud" {
            summary = summary.to_uppercase();
        }
        println!(
            "  summarize: kept {} sentences, style {style:?}",
            kept.len()
        );
        Ok(Fields::from([("summary", summary)]))
    }
}

/// Summarizes a text in a few sentences.
#[derive(Program)]
#[program(signature = "text -> summary")]
pub struct Summary {
    /// How many sentences the summary keeps.
    #[variable(initial = 1, min = 1, max = 5)]
    max_sentences: Var<i64>,
    #[variable(initial = "plain", choices = ["plain", "loud"])]
    style: Var<Choice>,
    #[step(native, signature = "text -> sentences")]
    split: Splitter,
    #[step(native, signature = "sentences -> summary", bind(max_sentences as sentences, style))]
    summarize: Summarizer,
    ctx: Context,
}

const TEXT: &str = "DSPy programs are chains of modules. Variables tune them. \
                    dspex keeps the variables where they are cheapest!";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let summary = Summary::start().await?;
    println!(
        "Summary: {} steps, {} variables, on the {}",
        Summary::spec().steps.len(),
        Summary::spec().variables.len(),
        summary.context().backend()
    );

    println!("run 1:");
    let out = summary.run(SummaryInput { text: TEXT.into() }).await?;
    println!("summary: {}", out.summary);

    summary.max_sentences().set(2)?;
    summary.context().set("style", "loud")?;
    println!("run 2, after setting max_sentences = 2 and style = \"loud\":");
    let out = summary.run(SummaryInput { text: TEXT.into() }).await?;
    println!("summary: {}", out.summary);

    match summary.style().set("whisper") {
        Ok(_) => println!("style = \"whisper\" accepted?!"),
        Err(e) => println!("style = \"whisper\" refused: {e}"),
    }
    Ok(())
}
