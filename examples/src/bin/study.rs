//! One tuning study shared by two processes, with two objectives: the best answers and the
//! fewest tokens. The first process starts the second one (itself, with `--second`); both run
//! the same tuner on the Redis study `example-study-<pid>` and share its budget of 40 trials.
//! The first then prints the Pareto front, picks the cheapest trial that is good enough and
//! applies it.
//!
//! `cargo run -p dspex-examples --bin study` (uses the Redis at `DSPEX_REDIS_URL` if set, else
//! starts a private `redis-server` from `PATH` on a free port, and stops it at the end).

#![allow(clippy::print_stdout)]

use std::future::Future;
use std::process::Command;

use dspex::LmCall;
use dspex::StepContext;
use dspex::eval::{Dataset, ExactMatch, Example};
use dspex::prelude::*;
use dspex::tune::{Cost, Objective, SearchSpace, Study, TrialState, TuneResult, Tuner};
use dspex_test_redis::RedisServer;

/// The environment variable naming the Redis to use.
const ENV_REDIS_URL: &str = "DSPEX_REDIS_URL";

/// A stand-in for an LM: a bigger model and more reasoning steps answer harder questions and
/// cost more tokens (recorded in the run's trace, as a real LM call's usage would be).
#[derive(Default)]
struct ScriptedLm;

fn answer(inputs: &Fields, params: &Params) -> Result<(Fields, u64)> {
    let question = inputs.get::<&str>("question")?;
    let difficulty: f64 = question
        .strip_prefix("level ")
        .and_then(|d| d.parse().ok())
        .unwrap_or(1.0);
    let (skill, tokens_per_step) = match params.get::<Choice>("model")?.as_str() {
        "small" => (0.2, 120),
        "medium" => (0.4, 300),
        _ => (0.6, 900),
    };
    let steps = params.get::<i64>("steps")?;
    let temperature = params.get::<f64>("temperature")?;
    #[allow(clippy::cast_precision_loss)]
    let quality = skill + 0.1 * steps as f64 - 0.1 * temperature;
    let text = if quality >= difficulty {
        "right"
    } else {
        "wrong"
    };
    Ok((
        Fields::from([("answer", text)]),
        tokens_per_step * steps.unsigned_abs(),
    ))
}

impl Module for ScriptedLm {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        answer(inputs, params).map(|(fields, _)| fields)
    }

    fn forward_in_step(
        &self,
        step: &StepContext<'_>,
        inputs: &Fields,
        params: &Params,
    ) -> impl Future<Output = Result<Fields>> + Send {
        std::future::ready(answer(inputs, params).map(|(fields, tokens)| {
            step.record_lm_call(LmCall {
                model: "scripted".to_owned(),
                temperature: params.get::<f64>("temperature").ok(),
                max_tokens: None,
                top_p: None,
                n: None,
                prompt_tokens: Some(tokens),
                completion_tokens: Some(0),
                exchange: None,
            });
            fields
        }))
    }
}

dspex_program! {
    /// Answers questions of a level; better settings cost more tokens.
    pub program Solver: "question -> answer" {
        variables {
            model: choice = "small" { choices: ["small", "medium", "large"] },
            steps: integer = 1 { min: 1, max: 5 },
            temperature: float = 0.7 { min: 0.0, max: 1.0 },
        }
        chain { solve: native ScriptedLm("question -> answer") { model, steps, temperature } }
    }
}

fn dev() -> Dataset {
    (1..=20)
        .map(|i| {
            Example::new()
                .with_input("question", format!("level {}", f64::from(i) * 0.05))
                .with_expected("answer", "right")
        })
        .collect()
}

/// Both processes run this tuner on the study.
async fn tune(solver: &Solver, url: &str, study: &str) -> Result<TuneResult> {
    Tuner::new(SearchSpace::of(solver)?, ExactMatch::new("answer"))
        .objectives([
            Objective::maximize(ExactMatch::new("answer")),
            Objective::minimize(Cost::tokens()),
        ])
        .trials(40)
        .seed(11)
        .study(Study::redis(url, study))
        .run(solver, &dev())
        .await
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let solver = Solver::start().await?;
    if let [_, flag, url, study] = args.as_slice()
        && flag == "--second"
    {
        let result = tune(&solver, url, study).await?;
        println!(
            "second process (pid {}): the study has {} finished trials",
            std::process::id(),
            result
                .trials
                .iter()
                .filter(|t| t.state == TrialState::Finished)
                .count()
        );
        return Ok(());
    }

    let (url, _private) = match std::env::var(ENV_REDIS_URL) {
        Ok(url) => (url, None),
        Err(_) => {
            let server = RedisServer::start()
                .map_err(|e| Error::shared_with("cannot start a private redis-server", e))?;
            (server.url(), Some(server))
        }
    };
    let study = format!("example-study-{}", std::process::id());
    let exe = std::env::current_exe().map_err(|e| Error::shared_with("no executable", e))?;
    let mut second = Command::new(exe)
        .args(["--second", &url, &study])
        .spawn()
        .map_err(|e| Error::shared_with("cannot start the second process", e))?;
    let result = tune(&solver, &url, &study).await?;
    let status = second
        .wait()
        .map_err(|e| Error::shared_with("cannot wait for the second process", e))?;
    assert!(status.success(), "the second process failed: {status}");

    println!(
        "first process (pid {}): {} trials in the study; Pareto front (accuracy up, tokens down):",
        std::process::id(),
        result.trials.len()
    );
    // Trials with the same values are one point of the front: print each point once.
    let mut front = result.pareto_front();
    front.sort_by(|a, b| a.values[1].total_cmp(&b.values[1]));
    front.dedup_by(|a, b| a.values == b.values);
    for t in front {
        println!(
            "  accuracy {:.2}  tokens/example {:>5.0}  e.g. trial #{:<3} model={} steps={} temperature={:.2}",
            t.values[0],
            t.values[1],
            t.index,
            t.assignment["model"],
            t.assignment["steps"],
            t.assignment["temperature"].as_f64().unwrap_or(f64::NAN)
        );
    }
    let Some(chosen) = result.best_where(|t| t.score >= 0.8) else {
        println!("no trial reached accuracy 0.8");
        return Ok(());
    };
    println!(
        "cheapest trial with accuracy >= 0.8: #{} ({:.0} tokens per example)",
        chosen.index, chosen.values[1]
    );
    result.apply_trial(&solver, chosen)?;
    println!(
        "applied: model={} steps={}",
        solver.model().get()?,
        solver.steps().get()?
    );
    Ok(())
}
