//! A hybrid run exported as one OpenTelemetry trace: a native step, then DSPy's `ReAct` in the
//! Python worker calling a Rust tool. The run, both steps, the LM calls the worker made and the
//! tool call are spans of one trace, sent over OTLP to the collector given on the command line:
//!
//! ```text
//! docker run --rm -p 16686:16686 -p 4318:4318 jaegertracing/all-in-one
//! cargo run -p dspex-examples --bin otel -- --otlp-endpoint http://localhost:4318
//! ```
//!
//! then open <http://localhost:16686> and find service `dspex-example`. Without
//! `--otlp-endpoint` the standard `OTEL_EXPORTER_OTLP_*` variables apply. `--protocol grpc`
//! (port 4317) or `http/json` picks another OTLP protocol; `--capture-content` records the
//! messages on the LM call spans.

#![allow(clippy::print_stdout)]

use dspex::prelude::*;
use dspex::telemetry::{Protocol, Telemetry};
use dspex::{LmConfig, json};
use dspex_examples::arg;
use dspex_examples::researcher::{Researcher, ResearcherInput};

#[tokio::main]
async fn main() -> Result<()> {
    let mut telemetry = Telemetry::from_env()?.service_name("dspex-example");
    if let Some(endpoint) = arg("--otlp-endpoint") {
        telemetry = telemetry.endpoint(endpoint);
    }
    if let Some(protocol) = arg("--protocol") {
        telemetry = telemetry.protocol(Protocol::parse(&protocol)?);
    }
    if std::env::args().any(|a| a == "--capture-content") {
        telemetry = telemetry.capture_message_content(true);
    }
    let guard = telemetry.install()?;

    let lm = dspex_examples::lm_from_args(LmConfig::scripted().agent_plan(
        [("search_docs", json!({"query": "tokio"}))],
        [("answer", "tokio is an async runtime for Rust")],
    ));
    let ctx = Context::builder().lm(lm).build().await?;
    let researcher = Researcher::attach(&ctx).await?;
    let (out, trace) = researcher
        .run_traced(ResearcherInput {
            question: "What is tokio?".into(),
        })
        .await?;
    print!("{trace}");
    println!("answer: {}", out.answer);
    drop(ctx);
    guard.flush()?;
    println!(
        "spans exported: {}, lost: {}",
        guard.spans_exported(),
        guard.spans_lost()
    );
    Ok(())
}
