//! Whole-program compile on the planted task, beside DSPy's own `BootstrapFewShot.compile` on
//! the same program, data and fake LM, in the same run (target: the same dev score, with no
//! more LM requests than DSPy).
//!
//! `cargo bench -p dspex --bench program_compile` (DSPy comes from the workspace's Python
//! environment, `DSPEX_PYTHON`, which `.cargo/config.toml` points at `.venv`; run
//! `scripts/python-env` first).
//!
//! The task (`tests/src/planted_qa.rs`): a two-step program, `question -> query` (`Predict`)
//! then `query -> answer` (`ChainOfThought`), against an LM on the loopback server that answers
//! a hard question right only when a demo in its prompt holds the planted keyword; 10 train
//! pairs (half easy, right zero-shot and holding the keyword), 20 hard dev questions (0
//! zero-shot). dspex compiles it all native and hybrid (the answer step in a worker running
//! DSPy), with DSPy's default `BootstrapFewShot` settings (`max_bootstrapped_demos` 4,
//! `max_labeled_demos` 16) and an exact-match metric, the dev set as its validation set; DSPy
//! compiles its original (`tests/python/bootstrap_like_dspy.py`) and evaluates it on the dev
//! set. Printed per row: the dev score after compiling, the LM requests of compiling alone
//! (not of scoring on the dev set), and the wall time of `compile` (dspex's includes scoring
//! the dev set before and after, 80 more LM requests; DSPy's is its `compile` alone).

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::print_stdout,
    clippy::expect_used
)]

#[path = "../../tests/src/planted_qa.rs"]
#[allow(dead_code, unreachable_pub)]
mod planted_qa;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use dspex::eval::{Dataset, ExactMatch};
use dspex::optimize::{CompileMetric, CompileReport, Optimizer};
use dspex::prelude::*;
use dspex::worker::WorkerConfig;
use dspex_test_lm::LmServer;
use planted_qa::{HybridQa, NativeQa, devset, pairs, planted_lm, trainset};
use serde_json::{Value as Json, json};

const TRAIN: usize = 10;
const DEV: usize = 20;
const MAX_BOOTSTRAPPED_DEMOS: i64 = 4;
const MAX_LABELED_DEMOS: i64 = 16;

/// One row of the table.
struct Row {
    name: &'static str,
    dev_score: f64,
    compile_requests: u64,
    seconds: f64,
}

async fn compile<P: AnyProgram>(
    name: &'static str,
    program: &P,
    train: &Dataset,
    dev: &Dataset,
) -> Row {
    let optimizer = Optimizer::bootstrap_few_shot()
        .set("max_bootstrapped_demos", MAX_BOOTSTRAPPED_DEMOS)
        .set("max_labeled_demos", MAX_LABELED_DEMOS)
        .valset(dev);
    let started = Instant::now();
    let report: CompileReport = program
        .compile(
            &optimizer,
            train,
            &CompileMetric::rust(ExactMatch::new("answer")),
        )
        .await
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    Row {
        name,
        dev_score: report.score_after.unwrap(),
        compile_requests: report.tokens.lm_calls,
        seconds,
    }
}

/// DSPy's `BootstrapFewShot.compile` of the original program, then its dev score.
fn dspy(base_url: &str, train: &Dataset, dev: &Dataset) -> Row {
    let python = std::env::var("DSPEX_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/python/bootstrap_like_dspy.py"
    );
    let mut child = Command::new(&python)
        .arg(script)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
    let input = json!({
        "base_url": base_url,
        "train": pairs(train),
        "dev": pairs(dev),
        "max_bootstrapped_demos": MAX_BOOTSTRAPPED_DEMOS,
        "max_labeled_demos": MAX_LABELED_DEMOS,
    });
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.to_string().as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the DSPy script failed");
    let answer: Json = serde_json::from_slice(&output.stdout).unwrap();
    Row {
        name: "DSPy BootstrapFewShot.compile",
        dev_score: answer["dev_score"].as_f64().unwrap(),
        compile_requests: answer["compile_requests"].as_u64().unwrap(),
        seconds: answer["compile_seconds"].as_f64().unwrap(),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (train, dev) = (trainset(TRAIN), devset(DEV));
    let rows = runtime.block_on(async {
        let server = LmServer::start().await.unwrap();
        server.respond_with(planted_lm);
        let ctx = Context::builder()
            .lm(LmConfig::openai(server.base_url(), "planted"))
            .worker(WorkerConfig::default())
            .build()
            .await
            .unwrap();
        ctx.start_worker().await.unwrap();
        let native = NativeQa::attach(&ctx).await.unwrap();
        let hybrid = HybridQa::attach(&ctx).await.unwrap();
        let rows = vec![
            compile("dspex compile, all native", &native, &train, &dev).await,
            compile("dspex compile, hybrid", &hybrid, &train, &dev).await,
            tokio::task::block_in_place(|| dspy(&server.base_url(), &train, &dev)),
        ];
        ctx.shutdown_worker().await;
        rows
    });
    println!(
        "program compile, planted task: {TRAIN} train, {DEV} dev, BootstrapFewShot(max_bootstrapped_demos={MAX_BOOTSTRAPPED_DEMOS}, max_labeled_demos={MAX_LABELED_DEMOS})"
    );
    println!(
        "{:<34} {:>9} {:>17} {:>12}",
        "", "dev score", "compile requests", "compile (s)"
    );
    for row in &rows {
        println!(
            "{:<34} {:>9.3} {:>17} {:>12.2}",
            row.name, row.dev_score, row.compile_requests, row.seconds
        );
    }
    let theirs = &rows[2];
    for ours in &rows[..2] {
        let met =
            ours.dev_score >= theirs.dev_score && ours.compile_requests <= theirs.compile_requests;
        println!(
            "{}: DSPy's dev score or more, with no more LM requests than DSPy: {}",
            ours.name,
            if met { "yes" } else { "NO" }
        );
    }
}
