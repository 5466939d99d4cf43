//! The Python worker: cold start to ready (target <= 1.5 s), and the
//! overhead of a python step over calling the same DSPy module directly in Python with the
//! same scripted LM.
//!
//! `cargo bench -p dspex --bench worker` (the interpreter is `DSPEX_PYTHON`, which the
//! workspace's `.cargo/config.toml` points at `.venv`; run `scripts/python-env` first).
//!
//! - `worker/cold start to ready`: a fresh bridged context's `worker()`: spawning
//!   `python -m dspex_bridge.worker`, importing DSPy, serving, the readiness line, connecting.
//! - `worker/python step (Predict)`: `run` of a one-step program, a `Predict` bound to two
//!   variables: the Rust chain, the gRPC call, the worker reading the bound variables from the
//!   store, DSPy, the scripted LM, the reply.
//! - After criterion, the same step is timed in one loop beside
//!   `python/benchmarks/direct_step.py` (the module called in-process), and the ratio of the
//!   medians is printed.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use dspex::worker::ENV_PYTHON;
use dspex::{
    Constraints, Context, Fields, ProgramBuilder, RunningProgram, Step, VarType, VariableSpec,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn step_program() -> RunningProgram {
    ProgramBuilder::new("Bench")
        .variable(
            VariableSpec::new("temperature", VarType::Float, 0.7)
                .with_constraints(Constraints::range(0.0, 2.0)),
        )
        .variable(VariableSpec::new("max_tokens", VarType::Integer, 256))
        .step(
            Step::python("answer", "Predict", "question -> answer")
                .bind("temperature")
                .bind("max_tokens"),
        )
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

fn worker(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("worker");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.bench_function("cold start to ready", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let ctx = rt.block_on(Context::builder().bridged().build()).unwrap();
                let started = Instant::now();
                rt.block_on(ctx.worker()).unwrap();
                total += started.elapsed();
                rt.block_on(ctx.shutdown_worker());
            }
            total
        });
    });
    g.finish();

    let program = rt.block_on(step_program());
    let input = Fields::from([("question", "What is DSPy?")]);
    let mut g = c.benchmark_group("worker");
    g.sample_size(50);
    g.bench_function("python step (Predict)", |b| {
        b.iter(|| rt.block_on(program.run(input.clone())).unwrap());
    });
    g.finish();

    // The ratio, from one loop of each measured back to back.
    let calls = 300;
    let mut samples: Vec<f64> = rt.block_on(async {
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            let started = Instant::now();
            program.run(input.clone()).await.unwrap();
            samples.push(started.elapsed().as_secs_f64() * 1e6);
        }
        samples
    });
    samples.sort_by(f64::total_cmp);
    let step = samples[samples.len() / 2];
    let python = std::env::var_os(ENV_PYTHON).unwrap_or_else(|| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../python/benchmarks/direct_step.py"
    );
    let out = Command::new(&python)
        .args([script, "--calls", &calls.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let direct: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let direct = direct["median_us"].as_f64().unwrap();
    println!(
        "python step through dspex: median {step:.0} us; the same Predict called directly in Python: median {direct:.0} us; ratio {:.2} (overhead {:.0} us per step)",
        step / direct,
        step - direct
    );
}

criterion_group!(benches, worker);
criterion_main!(benches);
