//! The cost of telemetry on a native run (target: <= 1.05x with the exporter on): the same
//! program (one `ChainOfThought` step on the scripted LM), run without a telemetry subscriber,
//! then with `dspex::telemetry` installed and exporting in batches over OTLP/HTTP to a real
//! receiver in this process (`dspex-test-otlp`). Each run makes three spans (the run, its step,
//! its LM call).
//!
//! `cargo bench -p dspex --features otel --bench otel`. The two benches run in this order in
//! one process (installing telemetry cannot be undone); compare their medians.

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/otel_common/mod.rs"]
mod otel_common;

use criterion::{Criterion, criterion_group, criterion_main};
use dspex::prelude::*;
use dspex::telemetry::Telemetry;
use dspex_test_otlp::OtlpReceiver;
use otel_common::{Thinker, question, scripted_lm};

fn runs(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let program = runtime.block_on(async {
        let ctx = Context::builder().lm(scripted_lm()).build().await.unwrap();
        Thinker::attach(&ctx).await.unwrap()
    });
    let run = || {
        let out = runtime
            .block_on(program.run(question("Where is Rome?")))
            .unwrap();
        assert_eq!(out.answer, "Italy");
    };
    let mut group = c.benchmark_group("otel");
    group.bench_function("native run, telemetry off", |b| b.iter(run));
    let receiver = runtime.block_on(OtlpReceiver::start()).unwrap();
    let guard = runtime.block_on(async {
        Telemetry::from_env()
            .unwrap()
            .endpoint(receiver.endpoint())
            .install()
            .unwrap()
    });
    group.bench_function("native run, exported over OTLP/HTTP", |b| b.iter(run));
    group.finish();
    // The receiver keeps at most `MAX_RECEIVED_SPANS` and refuses the rest (HTTP 507); a
    // bench this long sends more, so the last flush may fail for them. What is measured is
    // the cost of exporting, which does not wait on the receiver's answer.
    let flushed = guard.flush();
    assert!(guard.spans_exported() > 0, "{flushed:?}");
    drop(guard);
}

criterion_group!(benches, runs);
criterion_main!(benches);
