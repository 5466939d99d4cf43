//! The tuning benchmark with a planted optimum: trials until the optimum is first reached,
//! for the grid, random and TPE samplers over 20 seeds each (medians), and for Optuna's
//! `TPESampler` on the same objective in the same run.
//!
//! `cargo bench -p dspex --bench tune` (Optuna comes from the workspace's Python environment,
//! `DSPEX_PYTHON`, which `.cargo/config.toml` points at `.venv`; run `scripts/python-env`
//! first). Writes the figures to `target/tune-benchmark.json` as well.
//!
//! The program is `tests/planted/mod.rs`: a native step emulating an LM that answers every
//! example only with `model = large`, `reasoning = ChainOfThought`, `temperature <= 0.4` and
//! `max_tokens >= 256` (about 0.5% of the space, `max_tokens` on a log scale), and part of
//! them elsewhere. Each trial evaluates 20 examples with exact match; the target is the optimum
//! score, 1.0. Trials run one at a time (`trial_concurrency(1)`), as Optuna's do here, so the
//! samplers are compared on sample efficiency alone. A seed that does not reach the optimum
//! within the budget counts as the budget plus one.
//!
//! Targets: TPE's median <= 0.5 x random's, and <= Optuna's.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::expect_used
)]

#[path = "../tests/planted/mod.rs"]
#[allow(dead_code, unreachable_pub)]
mod planted;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use dspex::eval::{Dataset, Evaluate};
use dspex::tune::{Domain, Sampler, SearchSpace, Tuner};
use dspex::{BaseProgram, Overrides, Value};
use planted::{OPTIMUM, Planted, dev_set, metric, space};
use serde_json::{Value as Json, json};

const SEEDS: u64 = 20;
const BUDGET: usize = 1000;
const EXAMPLES: usize = 20;

fn median(values: &mut [usize]) -> f64 {
    values.sort_unstable();
    let n = values.len();
    #[allow(clippy::cast_precision_loss)]
    if n % 2 == 1 {
        values[n / 2] as f64
    } else {
        (values[n / 2 - 1] + values[n / 2]) as f64 / 2.0
    }
}

async fn rust_sampler(program: &Planted, dev: &Dataset, sampler: Sampler) -> Vec<usize> {
    let mut out = Vec::new();
    for seed in 0..SEEDS {
        let result = Tuner::new(space(program).unwrap(), metric())
            .sampler(sampler)
            .trials(BUDGET)
            .seed(seed)
            .trial_concurrency(1)
            .stop_at(OPTIMUM)
            .run(program, dev)
            .await
            .unwrap();
        out.push(result.trials_to_reach(OPTIMUM).unwrap_or(BUDGET + 1));
    }
    out
}

/// The space as the Optuna script reads it.
fn space_json(space: &SearchSpace) -> Json {
    let mut out = serde_json::Map::new();
    for d in space.dimensions() {
        let spec = match &d.domain {
            Domain::Float { low, high, log } => {
                json!({"type": "float", "low": low, "high": high, "log": log})
            }
            Domain::Int { low, high, log } => {
                json!({"type": "int", "low": low, "high": high, "log": log})
            }
            Domain::Categorical(values) => {
                let choices: Vec<Json> = values
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => json!(s),
                        Value::Boolean(b) => json!(b),
                        other => json!(other.to_string()),
                    })
                    .collect();
                json!({"type": "categorical", "choices": choices})
            }
        };
        out.insert(d.name.clone(), spec);
    }
    Json::Object(out)
}

/// Optuna's trial parameters as overrides of the program's variables.
fn overrides(program: &Planted, params: &serde_json::Map<String, Json>) -> Overrides {
    let spec = program.program_spec();
    params
        .iter()
        .map(|(name, v)| {
            let ty = spec.variable(name).unwrap().ty;
            let value = match (ty, v) {
                (dspex::VarType::Float, v) => Value::Float(v.as_f64().unwrap()),
                (dspex::VarType::Integer, v) => Value::Integer(v.as_i64().unwrap()),
                (dspex::VarType::Boolean, v) => Value::Boolean(v.as_bool().unwrap()),
                (_, v) => Value::from(v.as_str().unwrap()),
            };
            (name.clone(), value)
        })
        .collect()
}

async fn optuna(program: &Planted, dev: &Dataset) -> Vec<usize> {
    let python = std::env::var("DSPEX_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../python/benchmarks/optuna_tpe.py"
    );
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let seeds: Vec<u64> = (0..SEEDS).collect();
    let setup = json!({
        "space": space_json(&space(program).unwrap()),
        "seeds": seeds,
        "budget": BUDGET,
        "target": OPTIMUM,
    });
    writeln!(stdin, "{setup}").unwrap();
    let evaluate = Evaluate::new(metric());
    let mut out = Vec::new();
    loop {
        let line = lines
            .next()
            .expect("the Optuna script ended early (is optuna installed? run scripts/python-env)")
            .unwrap();
        let message: Json = serde_json::from_str(&line).unwrap();
        if message.get("end").is_some() {
            break;
        }
        if let Some(done) = message.get("done") {
            #[allow(clippy::cast_possible_truncation)]
            out.push(done.as_u64().map_or(BUDGET + 1, |n| n as usize));
            continue;
        }
        let params = message["params"].as_object().unwrap();
        let report = evaluate
            .clone()
            .overrides(overrides(program, params))
            .run(program, dev)
            .await
            .unwrap();
        writeln!(stdin, "{}", json!({"score": report.mean})).unwrap();
    }
    assert!(child.wait().unwrap().success());
    out
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let program = Planted::start().await.unwrap();
        let dev = dev_set(EXAMPLES);
        let started = std::time::Instant::now();
        let mut rows = Vec::new();
        for (name, sampler) in [
            ("grid (5 points per range)", Sampler::grid(5)),
            ("random", Sampler::Random),
            ("tpe (dspex)", Sampler::tpe()),
        ] {
            let mut trials = rust_sampler(&program, &dev, sampler).await;
            rows.push((name, median(&mut trials), trials));
        }
        let mut trials = optuna(&program, &dev).await;
        rows.push(("tpe (Optuna 5 TPESampler)", median(&mut trials), trials));
        println!(
            "trials to reach the planted optimum, {SEEDS} seeds, budget {BUDGET} ({:.1?}):",
            started.elapsed()
        );
        for (name, median, trials) in &rows {
            let missed = trials.iter().filter(|&&t| t > BUDGET).count();
            println!("  {name:<28} median {median:>6.1}   missed {missed}   {trials:?}");
        }
        let (random, tpe, optuna) = (rows[1].1, rows[2].1, rows[3].1);
        println!(
            "TPE / random = {:.2} (target <= 0.5); TPE / Optuna TPE = {:.2} (target <= 1.0)",
            tpe / random,
            tpe / optuna
        );
        let figures: Vec<Json> = rows
            .iter()
            .map(|(name, median, trials)| json!({"sampler": name, "median": median, "trials": trials}))
            .collect();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/tune-benchmark.json");
        std::fs::write(path, serde_json::to_string_pretty(&figures).unwrap()).unwrap();
    });
}
