//! Telemetry whose collector is unreachable: runs succeed as they would without telemetry,
//! and the spans that could not be exported are counted as lost.

#![allow(clippy::unwrap_used)]

mod otel_common;

use dspex::prelude::*;
use dspex::telemetry::Telemetry;
use otel_common::{Thinker, question, scripted_lm};

const RUNS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_fails_no_run_and_its_spans_are_counted_lost() {
    // A port nobody listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let guard = Telemetry::from_env()
        .unwrap()
        .endpoint(endpoint)
        .install()
        .unwrap();
    let ctx = Context::builder().lm(scripted_lm()).build().await.unwrap();
    let program = Thinker::attach(&ctx).await.unwrap();
    for _ in 0..RUNS {
        let out = program.run(question("Where is Rome?")).await.unwrap();
        assert_eq!(out.answer, "Italy");
    }
    // The flush waits for the last export; it fails, as any earlier one did.
    if let Err(e) = guard.flush() {
        assert!(e.to_string().starts_with("telemetry: "), "{e}");
    }
    assert_eq!(guard.spans_exported(), 0);
    assert_eq!(guard.spans_lost(), 3 * RUNS as u64);
    drop(guard);
}
