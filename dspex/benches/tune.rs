//! The tuning benchmark with a planted optimum: for each sampler configuration, over 200 seeds
//! with a budget of 60 trials, the share of seeds that reach the optimum and the median trials
//! until they first do; dspex's TPE against Optuna's `TPESampler` in the same configuration
//! (`tpe`: multivariate, Optuna 5's default; `tpe independent`: `multivariate=False`; both
//! with the constant liar; and, for reference, the independent one without the constant liar,
//! which was dspex's TPE before), one trial at a time and 4 at a time, all in the same run.
//!
//! `cargo bench -p dspex --bench tune` (Optuna comes from the workspace's Python environment,
//! `DSPEX_PYTHON`, which `.cargo/config.toml` points at `.venv`; run `scripts/python-env`
//! first). `DSPEX_TUNE_SEEDS` runs fewer seeds for a quick look. Writes the figures to
//! `target/tune-benchmark.json` as well.
//!
//! The program is `tests/planted/mod.rs`: a native step emulating an LM that answers every
//! example only with `model = large`, `reasoning = ChainOfThought`, `temperature <= 0.4` and
//! `max_tokens >= 256` (about 0.5% of the space, `max_tokens` on a log scale), and part of
//! them elsewhere. Each trial evaluates 20 examples with exact match; the target is the optimum
//! score, 1.0. "4 at a time" proposes 4 trials before any of them is told (dspex's
//! `trial_concurrency(4)`; Optuna asks 4 trials, then tells them), so the later proposals see
//! the earlier ones only as running. A seed that does not reach the optimum within the budget
//! counts as the budget plus one.
//!
//! Targets: dspex's default TPE (`Sampler::tpe()`) reaches the optimum in at least 95% of the seeds one
//! at a time and 90% 4 at a time; every dspex TPE median is at most 1.2x Optuna's in the same
//! configuration; TPE's median at most 0.5x random's.

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
use dspex::tune::{Domain, Sampler, SearchSpace, TpeConfig, Tuner};
use dspex::{BaseProgram, Overrides, Value};
use planted::{OPTIMUM, Planted, dev_set, metric, space};
use serde_json::{Value as Json, json};

const SEEDS: u64 = 200;
const BUDGET: usize = 60;
const EXAMPLES: usize = 20;

/// One configuration, run by dspex and (when `optuna` is set) by Optuna.
struct Config {
    name: &'static str,
    sampler: Sampler,
    concurrency: usize,
    /// Optuna's `multivariate` and `constant_liar`, if Optuna runs it too.
    optuna: Option<(bool, bool)>,
}

fn configs() -> Vec<Config> {
    // Before the constant liar, dspex's TPE was this one.
    let no_liar = TpeConfig {
        constant_liar: false,
        ..TpeConfig::independent()
    };
    let mut out = vec![Config {
        name: "random",
        sampler: Sampler::Random,
        concurrency: 1,
        optuna: None,
    }];
    for (name, sampler, multivariate) in [
        ("tpe", Sampler::tpe(), true),
        ("tpe independent", Sampler::tpe_independent(), false),
    ] {
        for concurrency in [1, 4] {
            out.push(Config {
                name: if concurrency == 1 {
                    name
                } else {
                    leak(format!("{name}, 4 at a time"))
                },
                sampler,
                concurrency,
                optuna: Some((multivariate, true)),
            });
        }
    }
    out.push(Config {
        name: "tpe independent, no constant liar, 4 at a time",
        sampler: Sampler::Tpe(no_liar),
        concurrency: 4,
        optuna: Some((false, false)),
    });
    out
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn median(values: &[usize]) -> f64 {
    let mut values = values.to_vec();
    values.sort_unstable();
    let n = values.len();
    #[allow(clippy::cast_precision_loss)]
    if n % 2 == 1 {
        values[n / 2] as f64
    } else {
        (values[n / 2 - 1] + values[n / 2]) as f64 / 2.0
    }
}

fn reached(trials: &[usize]) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let share = trials.iter().filter(|&&t| t <= BUDGET).count() as f64 / trials.len() as f64;
    share
}

async fn dspex_runs(program: &Planted, dev: &Dataset, config: &Config, seeds: u64) -> Vec<usize> {
    let mut out = Vec::new();
    for seed in 0..seeds {
        let result = Tuner::new(space(program).unwrap(), metric())
            .sampler(config.sampler)
            .trials(BUDGET)
            .seed(seed)
            .trial_concurrency(config.concurrency)
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

/// Trials-to-optimum per seed for each configuration Optuna runs, by configuration name.
async fn optuna_runs(
    program: &Planted,
    dev: &Dataset,
    configs: &[Config],
    seeds: u64,
) -> std::collections::BTreeMap<String, Vec<usize>> {
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
    let optuna_configs: Vec<Json> = configs
        .iter()
        .filter_map(|c| {
            let (multivariate, constant_liar) = c.optuna?;
            Some(json!({"name": c.name, "multivariate": multivariate, "constant_liar": constant_liar, "batch": c.concurrency}))
        })
        .collect();
    let setup = json!({
        "space": space_json(&space(program).unwrap()),
        "seeds": (0..seeds).collect::<Vec<u64>>(),
        "budget": BUDGET,
        "target": OPTIMUM,
        "configs": optuna_configs,
    });
    writeln!(stdin, "{setup}").unwrap();
    let evaluate = Evaluate::new(metric());
    let mut out: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    loop {
        let line = lines
            .next()
            .expect("the Optuna script ended early (is optuna installed? run scripts/python-env)")
            .unwrap();
        let message: Json = serde_json::from_str(&line).unwrap();
        if message.get("end").is_some() {
            break;
        }
        let config = message["config"].as_str().unwrap().to_owned();
        if let Some(done) = message.get("done") {
            #[allow(clippy::cast_possible_truncation)]
            let trials = done.as_u64().map_or(BUDGET + 1, |n| n as usize);
            out.entry(config).or_default().push(trials);
            continue;
        }
        let mut scores = Vec::new();
        for params in message["batch"].as_array().unwrap() {
            let report = evaluate
                .clone()
                .overrides(overrides(program, params.as_object().unwrap()))
                .run(program, dev)
                .await
                .unwrap();
            scores.push(report.mean);
        }
        writeln!(stdin, "{}", json!({"scores": scores})).unwrap();
    }
    assert!(child.wait().unwrap().success());
    out
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let seeds = std::env::var("DSPEX_TUNE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let program = Planted::start().await.unwrap();
        let dev = dev_set(EXAMPLES);
        let configs = configs();
        let started = std::time::Instant::now();
        let mut rows: Vec<(String, &'static str, Vec<usize>)> = Vec::new();
        for config in &configs {
            rows.push(("dspex".to_owned(), config.name, dspex_runs(&program, &dev, config, seeds).await));
        }
        let dspex_time = started.elapsed();
        let optuna = optuna_runs(&program, &dev, &configs, seeds).await;
        for config in &configs {
            if let Some(trials) = optuna.get(config.name) {
                rows.push(("Optuna 5".to_owned(), config.name, trials.clone()));
            }
        }
        println!(
            "trials to reach the planted optimum, {seeds} seeds, budget {BUDGET} (dspex {dspex_time:.1?}, all {:.1?}):",
            started.elapsed()
        );
        for (who, name, trials) in &rows {
            println!(
                "  {who:<9} {name:<48} reached {:>5.1}%   median {:>5.1}",
                100.0 * reached(trials),
                median(trials)
            );
        }
        let find = |who: &str, name: &str| {
            rows.iter()
                .find(|(w, n, _)| w == who && *n == name)
                .map(|(_, _, t)| t.clone())
                .unwrap_or_default()
        };
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let tpe = find("dspex", "tpe");
        let tpe4 = find("dspex", "tpe, 4 at a time");
        println!(
            "dspex tpe reached: one at a time {:.1}% (target >= 95%: {}), 4 at a time {:.1}% (target >= 90%: {})",
            100.0 * reached(&tpe),
            verdict(reached(&tpe) >= 0.95),
            100.0 * reached(&tpe4),
            verdict(reached(&tpe4) >= 0.90)
        );
        for config in configs.iter().filter(|c| c.optuna.is_some()) {
            let (ours, theirs) = (median(&find("dspex", config.name)), median(&find("Optuna 5", config.name)));
            println!(
                "median dspex / Optuna, {:<48} {ours:>5.1} / {theirs:>5.1} = {:.2} (target <= 1.2: {})",
                config.name,
                ours / theirs,
                verdict(ours / theirs <= 1.2)
            );
        }
        let random = median(&find("dspex", "random"));
        println!(
            "median tpe / random = {:.1} / {random:.1} = {:.2} (target <= 0.5: {})",
            median(&tpe),
            median(&tpe) / random,
            verdict(median(&tpe) / random <= 0.5)
        );
        let figures: Vec<Json> = rows
            .iter()
            .map(|(who, name, trials)| {
                json!({"who": who, "config": name, "reached": reached(trials), "median": median(trials), "trials": trials})
            })
            .collect();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/tune-benchmark.json");
        std::fs::write(path, serde_json::to_string_pretty(&figures).unwrap()).unwrap();
    });
}
