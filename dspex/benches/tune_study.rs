//! The shared study benchmark, on a private redis-server the bench starts:
//!
//! - **Processes**: a tuning budget of 96 trials whose objective takes 200 ms (an emulated LM
//!   call), run by one process, then by 4 processes sharing the Redis study; each process runs
//!   the tuner's default 4 trials at a time. Wall time from spawning the processes until the
//!   last one exits. Target: 4 processes <= 0.3x one.
//! - **Ask/tell overhead**: 400 trials of an instant objective, one at a time, on a Redis study
//!   and on a memory study, alternately, 5 times each; the overhead per trial is the
//!   difference of the medians (what the Redis study adds: reading its changes, asking,
//!   telling). Target: <= 2 ms per trial.
//!
//! `cargo bench -p dspex --bench tune_study`. The bench starts itself again as the tuning
//! processes (`--peer URL NAME TRIALS`).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::expect_used
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dspex::eval::{Dataset, ExactMatch, Example};
use dspex::prelude::*;
use dspex::tune::{Sampler, SearchSpace, Study, Tuner};
use dspex_test_redis::RedisServer;

/// How long the emulated LM of the process benchmark takes per trial.
const OBJECTIVE: Duration = Duration::from_millis(200);
const PROCESS_BUDGET: usize = 96;
const PROCESSES: usize = 4;
const OVERHEAD_TRIALS: usize = 400;
const OVERHEAD_ROUNDS: usize = 5;

#[derive(Default)]
struct Lm;

impl Module for Lm {
    async fn forward(&self, _: &Fields, params: &Params) -> Result<Fields> {
        let latency = params.get::<i64>("latency_ms")?;
        // No timer for an instant objective: a timer fires on the next millisecond tick.
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency.unsigned_abs())).await;
        }
        let right = (params.get::<f64>("x")? - 0.3).abs() < 0.01;
        Ok(Fields::from([("answer", if right { "yes" } else { "no" })]))
    }
}

dspex_program! {
    /// An objective over `x` that takes `latency_ms` per example.
    program Timed: "question -> answer" {
        variables {
            x: float = 0.5 { min: 0.0, max: 1.0 },
            k: integer = 0 { min: 0, max: 9 },
            latency_ms: integer = 0 { min: 0, max: 1000 },
        }
        chain { answer: native Lm("question -> answer") { x, k, latency_ms } }
    }
}

fn dev() -> Dataset {
    Dataset::from_examples([Example::new()
        .with_input("question", "?")
        .with_expected("answer", "yes")])
}

#[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
fn tuner(program: &Timed, latency: Duration, study: Study) -> Tuner {
    let space = SearchSpace::of(program)
        .unwrap()
        .fix("latency_ms", latency.as_millis() as i64)
        .unwrap();
    Tuner::new(space, ExactMatch::new("answer"))
        .seed(3)
        .study(study)
}

/// One tuning process of the process benchmark.
async fn peer(url: &str, name: &str, trials: usize) {
    let program = Timed::start().await.unwrap();
    tuner(&program, OBJECTIVE, Study::redis(url, name))
        .trials(trials)
        .run(&program, &dev())
        .await
        .unwrap();
}

/// Wall time of `processes` processes tuning one fresh study with the process budget.
fn processes(url: &str, name: &str, processes: usize) -> Duration {
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(&exe)
                .args(["--peer", url, name, &PROCESS_BUDGET.to_string()])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    started.elapsed()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort_unstable();
    values[values.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Some(at) = args.iter().position(|a| a == "--peer") {
        let [url, name, trials] = [&args[at + 1], &args[at + 2], &args[at + 3]];
        runtime.block_on(peer(url, name, trials.parse().unwrap()));
        return;
    }
    let redis = RedisServer::start().expect("a private redis-server starts");
    let url = redis.url();

    let one = processes(&url, "one", 1);
    let four = processes(&url, "four", PROCESSES);
    let finished = runtime.block_on(async {
        let study = Study::redis(&url, "four");
        study.trials().await.unwrap().len()
    });
    assert_eq!(finished, PROCESS_BUDGET);
    let ratio = four.as_secs_f64() / one.as_secs_f64();
    println!(
        "{PROCESS_BUDGET} trials of {OBJECTIVE:?}, 4 at a time per process: 1 process {one:.2?}, {PROCESSES} processes {four:.2?}: {ratio:.3}x (target <= 0.3: {})",
        if ratio <= 0.3 { "met" } else { "MISSED" }
    );

    let (memory, shared) = runtime.block_on(async {
        let program = Timed::start().await.unwrap();
        let (mut memory, mut shared) = (Vec::new(), Vec::new());
        for round in 0..OVERHEAD_ROUNDS {
            for redis_study in [false, true] {
                let study = if redis_study {
                    Study::redis(&url, format!("overhead-{round}"))
                } else {
                    Study::memory()
                };
                let started = Instant::now();
                tuner(&program, Duration::ZERO, study)
                    .sampler(Sampler::Random)
                    .trials(OVERHEAD_TRIALS)
                    .trial_concurrency(1)
                    .run(&program, &dev())
                    .await
                    .unwrap();
                #[allow(clippy::cast_possible_truncation)]
                let per_trial = started.elapsed() / OVERHEAD_TRIALS as u32;
                if redis_study {
                    shared.push(per_trial);
                } else {
                    memory.push(per_trial);
                }
            }
        }
        (median(memory), median(shared))
    });
    let overhead = shared.saturating_sub(memory);
    println!(
        "per trial, instant objective, one at a time: memory study {memory:.2?}, Redis study {shared:.2?}: ask/tell overhead {overhead:.2?} (target <= 2 ms: {})",
        if overhead <= Duration::from_millis(2) {
            "met"
        } else {
            "MISSED"
        }
    );
    drop(redis);
}
