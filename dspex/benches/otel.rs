//! The cost of telemetry on a native run (target: <= 1.05x with the exporter on): the same
//! program (one `ChainOfThought` step), run without telemetry, then with `dspex::telemetry`
//! installed and exporting in batches over OTLP/HTTP to a real receiver (`dspex-test-otlp`).
//! Each run makes three spans (the run, its step, its LM call). Two LMs, each measured both
//! ways:
//!
//! - the scripted LM (in process: the run is little more than dspex's own work, the worst
//!   case for the ratio);
//! - an OpenAI-compatible LM over HTTP on loopback (`dspex-test-lm`), what users run.
//!
//! The receiver and the LM server each run on a runtime of their own (as a collector and an LM
//! run in other processes, though here on the same cores); the runs, on a two-thread runtime.
//!
//! `cargo bench -p dspex --features otel --bench otel`. The benches run in this order in one
//! process (installing telemetry cannot be undone while the guard lives); compare the medians
//! of the same LM.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

#[path = "../tests/otel_common/mod.rs"]
mod otel_common;

use criterion::{Criterion, criterion_group, criterion_main};
use dspex::prelude::*;
use dspex::telemetry::Telemetry;
use dspex_test_lm::{LmServer, Reply};
use dspex_test_otlp::OtlpReceiver;
use otel_common::{Thinker, question, scripted_lm};

/// What the LM over HTTP answers every request.
const REPLY: &str = "[[ ## reasoning ## ]]\nRome is in Italy.\n\n[[ ## answer ## ]]\nItaly\n\n[[ ## completed ## ]]";

fn runs(c: &mut Criterion) {
    let server_runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    };
    let (lm_runtime, collector_runtime) = (server_runtime(), server_runtime());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = lm_runtime.block_on(async {
        let server = LmServer::start().await.unwrap();
        server.set_default(Reply::text(REPLY));
        server
    });
    let receiver = collector_runtime.block_on(OtlpReceiver::start()).unwrap();
    let (scripted, http) = runtime.block_on(async {
        let scripted = Context::builder().lm(scripted_lm()).build().await.unwrap();
        let http_lm = LmConfig::openai(server.base_url(), "small");
        let http = Context::builder().lm(http_lm).build().await.unwrap();
        (
            Thinker::attach(&scripted).await.unwrap(),
            Thinker::attach(&http).await.unwrap(),
        )
    });
    let run = |program: &Thinker| {
        let out = runtime
            .block_on(program.run(question("Where is Rome?")))
            .unwrap();
        assert_eq!(out.answer, "Italy");
    };
    let mut group = c.benchmark_group("otel");
    group.bench_function("scripted LM, telemetry off", |b| b.iter(|| run(&scripted)));
    group.bench_function("LM over HTTP, telemetry off", |b| b.iter(|| run(&http)));
    let guard = runtime.block_on(async {
        Telemetry::from_env()
            .unwrap()
            .endpoint(receiver.endpoint())
            .install()
            .unwrap()
    });
    group.bench_function("scripted LM, exported over OTLP/HTTP", |b| {
        b.iter(|| run(&scripted))
    });
    group.bench_function("LM over HTTP, exported over OTLP/HTTP", |b| {
        b.iter(|| run(&http))
    });
    group.finish();
    // The receiver keeps at most `MAX_RECEIVED_SPANS` and refuses the rest (HTTP 507), and a
    // queue that a long bench fills faster than it drains drops spans: what is measured is the
    // cost to the run, which never waits on either.
    let flushed = guard.flush();
    assert!(guard.spans_exported() > 0, "{flushed:?}");
    println!(
        "spans exported {}, dropped {}, lost {}",
        guard.spans_exported(),
        guard.spans_dropped(),
        guard.spans_lost()
    );
    drop(guard);
}

criterion_group!(benches, runs);
criterion_main!(benches);
