//! Cancelled python calls give back their worker: a run whose future is dropped (or whose call
//! times out) cancels its call in the worker, whose thread returns, and the call's place is
//! freed once the worker says so. Under 64 concurrent runs on a pool with cancels mixed in, no
//! call is refused while capacity frees, no Python call is left running, and the workers'
//! threads and memory stay flat.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dspex::prelude::*;
use dspex::worker::WorkerHealth;
use dspex_test_lm::{LmServer, Reply};
use dspex_tests::{context_with, worker_config};

dspex_program! {
    /// One python LM step.
    program Slow: "question -> answer" {
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

/// Runs at once in the test.
const RUNS: usize = 64;
/// Calls each worker process runs at once.
const CALLS_PER_PROCESS: usize = 4;
/// Worker processes.
const PROCESSES: usize = 2;
/// Threads of a worker's gRPC pool beyond two per call (the worker's `CONTROL_THREADS`).
const CONTROL_THREADS: u32 = 4;
/// How much a worker's memory may grow between the first round and the last.
const MEMORY_SLACK: u64 = 16 * 1024 * 1024;

fn input(i: usize) -> SlowInput {
    SlowInput {
        question: format!("question {i}"),
    }
}

/// Waits (up to 20 s) until no worker process runs a call, as the workers count them and as
/// the supervisor does; the workers' reports then.
async fn settled(ctx: &Context) -> Vec<WorkerHealth> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = ctx.worker_health().await;
        let status = ctx.worker_status().unwrap();
        let idle = health.len() == status.processes.len()
            && health.iter().all(|h| h.calls_in_flight == 0)
            && status.processes.iter().all(|p| p.calls_in_flight == 0);
        if idle {
            return health;
        }
        assert!(
            Instant::now() < deadline,
            "calls still run: {health:?} {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One round: `RUNS` runs at once, every third dropped after `cancel_after`; returns how many
/// were dropped. Every other run must succeed.
async fn round(program: &Arc<Slow>, cancel_after: Duration) -> usize {
    let mut tasks = Vec::with_capacity(RUNS);
    for i in 0..RUNS {
        let program = Arc::clone(program);
        tasks.push(tokio::spawn(async move {
            let run = program.run(input(i));
            if i % 3 == 0 {
                // Dropping the run's future is what a caller that gives up does.
                match tokio::time::timeout(cancel_after, run).await {
                    Ok(out) => Some(out.map(|_| ())),
                    Err(_) => None,
                }
            } else {
                Some(run.await.map(|_| ()))
            }
        }));
    }
    let mut dropped = 0;
    for task in tasks {
        match task.await.unwrap() {
            None => dropped += 1,
            Some(out) => {
                out.unwrap();
            }
        }
    }
    dropped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_runs_cancel_their_python_calls_and_free_their_places_only_once_ended() {
    // Each call takes 200 ms of the scripted LM: 64 runs on 8 places take a while, and runs
    // dropped after 100 ms are dropped mid-call or while waiting for a place.
    let lm = LmConfig::scripted().delay(Duration::from_millis(200));
    let ctx = context_with(
        worker_config()
            .processes(PROCESSES)
            .max_concurrent_calls(CALLS_PER_PROCESS),
        lm,
    )
    .await;
    let program = Arc::new(Slow::attach(&ctx).await.unwrap());
    ctx.start_worker().await.unwrap();
    let idle = settled(&ctx).await;

    let mut dropped = 0;
    let mut first = Vec::new();
    for i in 0..4 {
        dropped += round(&program, Duration::from_millis(100)).await;
        let health = settled(&ctx).await;
        eprintln!("round {i}: {dropped} runs dropped so far; workers: {health:?}");
        for (h, before) in health.iter().zip(&idle) {
            // A thread per call, one per cancellation, the control threads: none left over.
            let bound = before.threads + 2 * CALLS_PER_PROCESS as u32 + CONTROL_THREADS;
            assert!(h.threads <= bound, "{h:?} (idle: {before:?})");
        }
        if i == 0 {
            first = health;
        } else {
            for (h, first) in health.iter().zip(&first) {
                assert!(
                    h.rss_bytes <= first.rss_bytes + MEMORY_SLACK,
                    "memory grew from {first:?} to {h:?}"
                );
            }
        }
    }
    assert!(dropped >= 4 * RUNS / 3 - 4, "{dropped} runs were dropped");
    let health = settled(&ctx).await;
    let cancelled: u64 = health.iter().map(|h| h.calls_cancelled).sum();
    // Runs dropped while waiting for a place never reached a worker; the others were
    // cancelled there.
    assert!(
        cancelled > 0 && cancelled <= dropped as u64,
        "{cancelled} calls cancelled, {dropped} runs dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_call_timeout_is_cancelled_and_its_place_waits_for_it() {
    let lm = LmConfig::scripted().delay(Duration::from_secs(30));
    let ctx = context_with(
        worker_config()
            .max_concurrent_calls(1)
            .call_timeout(Duration::from_millis(300)),
        lm,
    )
    .await;
    let program = Slow::attach(&ctx).await.unwrap();
    ctx.start_worker().await.unwrap();
    for i in 0..3 {
        let started = Instant::now();
        let err = program.run(input(i)).await.unwrap_err();
        assert!(err.to_string().contains("did not answer within"), "{err}");
        // The next call waited for the previous one to end, not for its 30 s delay.
        assert!(started.elapsed() < Duration::from_secs(10), "{err}");
    }
    let health = settled(&ctx).await;
    assert_eq!(health[0].calls_cancelled, 3, "{health:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_run_closes_its_lm_request() {
    let server = LmServer::start().await.unwrap();
    server.set_default(Reply::hang());
    let lm = LmConfig::openai(server.base_url(), "model").timeout(Duration::from_secs(60));
    let ctx = context_with(worker_config().max_concurrent_calls(2), lm).await;
    let program = Slow::attach(&ctx).await.unwrap();
    ctx.start_worker().await.unwrap();
    let started = Instant::now();
    let run = program.run(input(0));
    assert!(
        tokio::time::timeout(Duration::from_millis(500), run)
            .await
            .is_err()
    );
    // The call ends in the worker long before the endpoint or the LM timeout would end it.
    let health = settled(&ctx).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(health[0].calls_cancelled, 1, "{health:?}");
    assert_eq!(server.requests().len(), 1);
}
