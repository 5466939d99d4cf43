//! The Python worker: cold start, the overhead of a python step, flat cost over many calls,
//! and concurrent calls (one worker and a pool), each against its baseline in the same run.
//!
//! `cargo bench -p dspex --bench worker` (the interpreter is `DSPEX_PYTHON`, which the
//! workspace's `.cargo/config.toml` points at `.venv`; run `scripts/python-env` first). Set
//! `DSPEX_BENCH_FIGURES_ONLY=1` to skip the criterion part.
//!
//! Criterion:
//! - `worker/cold start to ready`: a fresh bridged context's `worker()`: spawning
//!   `python -m dspex_bridge.worker`, importing DSPy, serving, the readiness line, connecting.
//! - `worker/python step (Predict)`: `run` of a one-step program, a `Predict` bound to two
//!   variables: the snapshot of the bound values, the gRPC call, DSPy, the scripted LM, the
//!   reply.
//!
//! Then the figures of the README, measured in one run against the baselines that
//! `python/benchmarks/worker_baselines.py` serves (same scripted LM, same module), in
//! interleaved blocks so that every ratio compares the same machine state:
//! - the python step's median after the worker served 100 and 10,000 calls, their ratio, and
//!   the worker's resident memory at both points;
//! - the same module called directly in Python, and the floor: a bare tonic -> grpc.aio unary
//!   round trip with an empty handler; the overhead is the step minus the direct call;
//! - 64 concurrent runs on a scripted LM that takes 200 ms per call, one worker: runs per second
//!   against the ideal 64 / 0.2 s;
//! - 64 concurrent runs on the instant scripted LM, one worker and a pool of 2, against the
//!   same module called from 64 Python threads in one process; with the CPU time per call of
//!   the worker, of this process, and of the floor's server (what bounds these figures).

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use dspex::LmConfig;
use dspex::wire::proto::HealthRequest;
use dspex::wire::proto::module_service_client::ModuleServiceClient;
use dspex::worker::{ENV_PYTHON, WorkerConfig};
use dspex::{
    Constraints, Context, Fields, ProgramBuilder, RunningProgram, Step, VarType, VariableSpec,
};
use serde_json::{Value as Json, json};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A one-step program: `Predict("question -> answer")` bound to `temperature` and
/// `max_tokens`, on a context whose workers are configured by `worker` and run `lm`.
async fn step_program(worker: WorkerConfig, lm: LmConfig) -> RunningProgram {
    let ctx = Context::builder()
        .bridged()
        .worker(worker)
        .lm(lm)
        .build()
        .await
        .unwrap();
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
        .attach(&ctx)
        .await
        .unwrap()
}

fn input(i: usize) -> Fields {
    Fields::from([("question", format!("What is DSPy? ({i})"))])
}

fn criterion_part(rt: &tokio::runtime::Runtime) {
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("worker");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.bench_function("cold start to ready", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let ctx = rt.block_on(Context::builder().bridged().build()).unwrap();
                let started = Instant::now();
                rt.block_on(ctx.start_worker()).unwrap();
                total += started.elapsed();
                rt.block_on(ctx.shutdown_worker());
            }
            total
        });
    });
    g.finish();

    let program = rt.block_on(step_program(WorkerConfig::default(), LmConfig::scripted()));
    let mut g = c.benchmark_group("worker");
    g.sample_size(50);
    let mut i = 0;
    g.bench_function("python step (Predict)", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(program.run(input(i))).unwrap()
        });
    });
    g.finish();
    c.final_summary();
}

/// The Python side of the baselines (see `python/benchmarks/worker_baselines.py`).
struct Baselines {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl Baselines {
    fn start() -> Self {
        let python = std::env::var_os(ENV_PYTHON).unwrap_or_else(|| "python3".into());
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../python/benchmarks/worker_baselines.py"
        );
        let mut child = Command::new(python)
            .arg(script)
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let ready: Json = serde_json::from_str(&line).unwrap();
        let port = u16::try_from(ready["port"].as_u64().unwrap()).unwrap();
        Self {
            child,
            stdin,
            stdout,
            port,
        }
    }

    fn ask(&mut self, command: &Json) -> Json {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }

    /// `calls` calls of the module, one after the other, in microseconds.
    fn direct(&mut self, calls: usize) -> Vec<f64> {
        let reply = self.ask(&json!({"op": "direct", "calls": calls}));
        reply["samples_us"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    }

    /// Calls per second of the module called from `threads` Python threads.
    fn threads(&mut self, threads: usize, calls: usize) -> f64 {
        let reply = self.ask(&json!({"op": "threads", "threads": threads, "calls": calls}));
        reply["calls"].as_f64().unwrap() / reply["seconds"].as_f64().unwrap()
    }
}

impl Drop for Baselines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// CPU time (user + system) a process has used, in microseconds.
fn cpu_micros(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // utime and stime, in clock ticks of 10 ms (USER_HZ on Linux).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 * 10_000.0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Interleaved blocks of the python step, the floor and the direct call; their medians in us.
fn interleaved(
    rt: &tokio::runtime::Runtime,
    program: &RunningProgram,
    baselines: &mut Baselines,
    served: &mut usize,
    rounds: usize,
) -> (f64, f64, f64) {
    let block = 50;
    let (mut step, mut floor, mut direct) = (Vec::new(), Vec::new(), Vec::new());
    let mut client = rt
        .block_on(ModuleServiceClient::connect(format!(
            "http://127.0.0.1:{}",
            baselines.port
        )))
        .unwrap();
    for _ in 0..rounds {
        rt.block_on(async {
            for _ in 0..block {
                *served += 1;
                let started = Instant::now();
                program.run(input(*served)).await.unwrap();
                step.push(started.elapsed().as_secs_f64() * 1e6);
            }
            for _ in 0..block {
                let started = Instant::now();
                client.health(HealthRequest {}).await.unwrap();
                floor.push(started.elapsed().as_secs_f64() * 1e6);
            }
        });
        direct.extend(baselines.direct(block));
    }
    (median(&mut step), median(&mut floor), median(&mut direct))
}

/// Runs per second of `runs` runs of `program` with `concurrency` in flight at once.
fn throughput(
    rt: &tokio::runtime::Runtime,
    program: &Arc<RunningProgram>,
    concurrency: usize,
    runs: usize,
) -> f64 {
    rt.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|t| {
                let program = Arc::clone(program);
                tokio::spawn(async move {
                    for i in (t..runs).step_by(concurrency) {
                        program.run(input(i)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        runs as f64 / started.elapsed().as_secs_f64()
    })
}

fn figures(rt: &tokio::runtime::Runtime) {
    let mut baselines = Baselines::start();

    // Flat cost: after 100 calls, after 10,000.
    let program = rt.block_on(step_program(WorkerConfig::default(), LmConfig::scripted()));
    let pid = program.context().worker_status().unwrap().pid.unwrap();
    let mut served = 0;
    while served < 100 {
        served += 1;
        rt.block_on(program.run(input(served))).unwrap();
    }
    let rss_100 = rss_kib(pid);
    let (step_100, floor_100, direct_100) =
        interleaved(rt, &program, &mut baselines, &mut served, 6);
    rt.block_on(async {
        while served < 10_000 {
            served += 1;
            program.run(input(served)).await.unwrap();
        }
    });
    let rss_10k = rss_kib(pid);
    let (step_10k, floor, direct) = interleaved(rt, &program, &mut baselines, &mut served, 6);
    println!("== python step, one worker (medians, us)");
    println!(
        "after 100 calls: step {step_100:.0}, direct {direct_100:.0}, floor {floor_100:.0}; worker RSS {rss_100} KiB"
    );
    println!(
        "after 10,000 calls: step {step_10k:.0}, direct {direct:.0}, floor {floor:.0}; worker RSS {rss_10k} KiB"
    );
    println!(
        "overhead (step - direct) after 10,000 calls: {:.0} us (target <= 1000); floor {floor:.0} us",
        step_10k - direct
    );
    println!(
        "step after 10,000 / after 100: {:.3} (target <= 1.1); RSS after 10,000 / after 100: {:.3}",
        step_10k / step_100,
        rss_10k as f64 / rss_100 as f64
    );
    drop(program);

    // 64 concurrent runs, a scripted LM that takes 200 ms per call, one worker.
    let slow = LmConfig::scripted().delay(Duration::from_millis(200));
    let program = Arc::new(rt.block_on(step_program(WorkerConfig::default(), slow)));
    throughput(rt, &program, 64, 64);
    let per_second = throughput(rt, &program, 64, 640);
    let ideal = 64.0 / 0.2;
    println!("== 64 concurrent runs, 200 ms scripted LM, one worker");
    println!(
        "{per_second:.0} runs/s = {:.2} x 64 / 0.2 s (target >= 0.8)",
        per_second / ideal
    );
    drop(program);

    // 64 concurrent runs, instant scripted LM: one worker, a pool of 2, 64 Python threads.
    let runs = 3200;
    let one = Arc::new(rt.block_on(step_program(WorkerConfig::default(), LmConfig::scripted())));
    let pool = Arc::new(rt.block_on(step_program(
        WorkerConfig::default().processes(2),
        LmConfig::scripted(),
    )));
    throughput(rt, &one, 64, 640);
    throughput(rt, &pool, 64, 640);
    baselines.threads(64, 640);
    let (mut r_one, mut r_pool, mut r_threads) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        r_one.push(throughput(rt, &one, 64, runs));
        r_pool.push(throughput(rt, &pool, 64, runs));
        r_threads.push(baselines.threads(64, runs));
    }
    let (one_ps, pool_ps, threads_ps) = (
        median(&mut r_one),
        median(&mut r_pool),
        median(&mut r_threads),
    );
    println!("== 64 concurrent runs, instant scripted LM (runs/s, medians of 3)");
    println!(
        "one worker {one_ps:.0} ({:.2} x, target >= 0.5); pool of 2 {pool_ps:.0} ({:.2} x, target >= 1.0); 64 Python threads in one process {threads_ps:.0}",
        one_ps / threads_ps,
        pool_ps / threads_ps
    );

    // Where the time goes: CPU per call of the worker and of this process, and of the floor's
    // server answering an empty call.
    let worker = one.context().worker_status().unwrap().pid.unwrap();
    let me = std::process::id();
    let (w0, r0) = (cpu_micros(worker), cpu_micros(me));
    throughput(rt, &one, 64, runs);
    let (w1, r1) = (cpu_micros(worker), cpu_micros(me));
    let server = baselines.child.id();
    let calls = 4000;
    let s0 = cpu_micros(server);
    rt.block_on(async {
        let client = ModuleServiceClient::connect(format!("http://127.0.0.1:{}", baselines.port))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let mut client = client.clone();
                tokio::spawn(async move {
                    for _ in 0..calls / 16 {
                        client.health(HealthRequest {}).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let s1 = cpu_micros(server);
    println!(
        "CPU per call: worker {:.0} us, Rust process {:.0} us; grpc.aio server with an empty handler {:.0} us",
        (w1 - w0) / runs as f64,
        (r1 - r0) / runs as f64,
        (s1 - s0) / f64::from(calls)
    );
}

fn main() {
    let rt = runtime();
    if std::env::var_os("DSPEX_BENCH_FIGURES_ONLY").is_none() {
        criterion_part(&rt);
    }
    figures(&rt);
}
