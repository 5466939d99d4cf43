//! Evaluation throughput (target: >= 50,000 examples/s on 2 cores): `Evaluate` over 1,000
//! examples of the planted-optimum program (`tests/planted/mod.rs`), a native program whose
//! scripted "LM" is a native step, scored by exact match, at the default concurrency.
//!
//! `cargo bench -p dspex --bench eval`. Criterion reports the time per evaluation of the
//! 1,000 examples and the throughput in examples per second (`thrpt`), after its warm-up
//! (steady state). The evaluation runs all its examples on one task; a second bench runs two
//! evaluations of 500 examples at once on a 2-thread runtime, one per core.

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/planted/mod.rs"]
#[allow(dead_code, unreachable_pub)]
mod planted;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dspex::eval::Evaluate;
use planted::{Planted, dev_set, metric};

fn evaluate(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let program = std::sync::Arc::new(runtime.block_on(Planted::start()).unwrap());
    let data = dev_set(1000);
    let (first, second) = data.split(0.5).unwrap();
    let evaluate = Evaluate::new(metric());
    let mut group = c.benchmark_group("eval");
    group.throughput(Throughput::Elements(1000));
    group.bench_function("evaluate 1000 examples (one task)", |b| {
        b.iter(|| {
            let report = runtime
                .block_on(evaluate.run(program.as_ref(), &data))
                .unwrap();
            assert_eq!(report.examples.len(), 1000);
        });
    });
    group.bench_function("evaluate 2 x 500 examples (two tasks)", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let halves = [first.clone(), second.clone()].map(|half| {
                    let (program, evaluate) = (std::sync::Arc::clone(&program), evaluate.clone());
                    tokio::spawn(async move { evaluate.run(program.as_ref(), &half).await })
                });
                for half in halves {
                    assert_eq!(half.await.unwrap().unwrap().examples.len(), 500);
                }
            });
        });
    });
    group.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
