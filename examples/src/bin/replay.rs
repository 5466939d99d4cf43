//! Regression-testing a program offline: its LM traffic, recorded once against an endpoint, is
//! replayed with no network and no LM. By default it replays the recording shipped with the
//! examples (`examples/data/triage.jsonl`); it can record a new one against any
//! OpenAI-compatible endpoint, and replay that:
//!
//! ```text
//! cargo run -p dspex-examples --bin replay
//! cargo run -p dspex-examples --bin replay -- --record lm.jsonl \
//!     --base-url https://api.openai.com/v1 --model gpt-4o-mini --api-key-env OPENAI_API_KEY
//! cargo run -p dspex-examples --bin replay -- --replay lm.jsonl
//! ```
//!
//! It prints the outputs of the run, then what a question the recording does not hold gives.

#![allow(clippy::print_stdout)]

use std::path::PathBuf;

use dspex::prelude::*;
use dspex_examples::{arg, endpoint_from_args};

dspex_program! {
    /// Sorts a support ticket, then drafts a reply.
    pub program Triage: "ticket -> category, reply" {
        variables {
            temperature: float = 0.0 { min: 0.0, max: 2.0 },
        }
        chain {
            sort: native Predict("ticket -> category") { temperature },
            draft: native Predict("ticket, category -> reply") { temperature },
        }
    }
}

/// `--record FILE --base-url URL --model M [--api-key-env VAR]`, else a replay of
/// `--replay FILE` or of the shipped recording.
fn lm_from_args() -> std::result::Result<(LmConfig, String), String> {
    match (arg("--record"), arg("--base-url"), arg("--model")) {
        (Some(file), Some(url), Some(model)) => {
            let endpoint = endpoint_from_args(url, model);
            Ok((
                LmConfig::record(endpoint, &file),
                format!("recording to {file}"),
            ))
        }
        (None, None, None) => {
            let file = arg("--replay").map_or_else(
                || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/triage.jsonl"),
                PathBuf::from,
            );
            let name = file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            Ok((
                LmConfig::replay(file),
                format!("replaying {name}, no network"),
            ))
        }
        _ => Err("--record, --base-url and --model go together".to_owned()),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let (lm, what) = match lm_from_args() {
        Ok(lm) => lm,
        Err(message) => {
            eprintln!("replay: {message}");
            std::process::exit(2);
        }
    };
    println!("LM: {what}");
    let replaying = what.starts_with("replaying");
    let ctx = Context::builder().lm(lm).build().await?;
    let program = Triage::attach(&ctx).await?;
    let out = program
        .run(TriageInput {
            ticket: "I was charged twice for my subscription this month.".into(),
        })
        .await?;
    println!("category: {}", out.category);
    println!("reply: {}", out.reply);
    if replaying {
        let refused = program
            .run(TriageInput {
                ticket: "My parcel never arrived.".into(),
            })
            .await;
        match refused {
            Ok(out) => println!("unrecorded ticket answered?! {}", out.category),
            Err(e) => println!("unrecorded ticket refused: {}", e.report()),
        }
    }
    Ok(())
}
