//! A process tuning on a shared Redis study, for the cross-process tests:
//! `study_peer URL NAME TRIALS LEASE_MS [block]` prints `{"ready": true, "pid": ...}`, waits
//! for one line on stdin (the go), runs a tuner with `trials(TRIALS)`, seed 7 and 2 trials at a
//! time on study `NAME` (lease `LEASE_MS`), then prints `{"ok": {"trials": n, "finished": f,
//! "failed": x, "ran": r}}` (the trials of its result, and the examples this process
//! evaluated) or `{"error": ...}`, and exits at the end of stdin or on `{"op": "exit"}`.
//!
//! With `block`, the first trial's step prints `{"started": true}` and never returns: the test
//! kills the process mid-trial.
//!
//! The program's step takes [`LM_LATENCY`] per example, as an LM call would, so that the
//! processes' trials overlap.

#![allow(clippy::print_stdout)]

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dspex::eval::{Dataset, ExactMatch, Example};
use dspex::prelude::*;
use dspex::tune::{SearchSpace, Study, TrialState, Tuner};
use serde_json::json;

/// How long the emulated LM takes per example.
const LM_LATENCY: Duration = Duration::from_millis(10);

static BLOCK: AtomicBool = AtomicBool::new(false);
static RAN: AtomicUsize = AtomicUsize::new(0);

#[derive(Default)]
struct PeerLm;

impl Module for PeerLm {
    async fn forward(&self, _: &Fields, params: &Params) -> Result<Fields> {
        if BLOCK.swap(false, Ordering::SeqCst) {
            println!("{}", json!({"started": true}));
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(LM_LATENCY).await;
        RAN.fetch_add(1, Ordering::SeqCst);
        let x = params.get::<f64>("x")?;
        let k = params.get::<i64>("k")?;
        let right = (x - 0.3).abs() < 0.1 && k == 4;
        Ok(Fields::from([("answer", if right { "yes" } else { "no" })]))
    }
}

dspex_program! {
    /// Right only near `x = 0.3` with `k = 4`.
    program Peer: "question -> answer" {
        variables {
            x: float = 0.5 { min: 0.0, max: 1.0 },
            k: integer = 0 { min: 0, max: 9 },
        }
        chain { answer: native PeerLm("question -> answer") { x, k } }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, name, trials, lease_ms, rest @ ..] = args.as_slice() else {
        return Err("usage: study_peer URL NAME TRIALS LEASE_MS [block]".into());
    };
    BLOCK.store(rest.first().is_some_and(|b| b == "block"), Ordering::SeqCst);
    let program = Peer::start().await?;
    let dev = Dataset::from_examples([Example::new()
        .with_input("question", "?")
        .with_expected("answer", "yes")]);
    let study = Study::redis(url, name).lease(Duration::from_millis(lease_ms.parse()?));
    println!("{}", json!({"ready": true, "pid": std::process::id()}));
    let mut lines = std::io::stdin().lock().lines();
    lines.next();
    let result = Tuner::new(SearchSpace::of(&program)?, ExactMatch::new("answer"))
        .trials(trials.parse()?)
        .seed(7)
        .trial_concurrency(2)
        .study(study)
        .run(&program, &dev)
        .await;
    let reply = match result {
        Ok(r) => {
            let count = |s: TrialState| r.trials.iter().filter(|t| t.state == s).count();
            json!({"ok": {
                "trials": r.trials.len(),
                "finished": count(TrialState::Finished),
                "failed": count(TrialState::Failed),
                "ran": RAN.load(Ordering::SeqCst),
            }})
        }
        Err(e) => json!({"error": e.to_string()}),
    };
    println!("{reply}");
    for line in lines.map_while(std::result::Result::ok) {
        if line.contains("\"exit\"") {
            break;
        }
    }
    Ok(())
}
