//! One `LmConfig` means the same in both lanes: against a real loopback endpoint that hangs,
//! rate-limits or fails, a python step (DSPy in the worker) and a native step (Rust) time out
//! after the same time with one request, and retry 429 and 5xx the same number of times,
//! honouring `Retry-After`.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use dspex::prelude::*;
use dspex_test_lm::{LmServer, Reply};
use dspex_tests::{context_with, worker_config};

dspex_program! {
    /// A python LM step.
    program PythonAsk: "question -> answer" {
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

dspex_program! {
    /// A native LM step.
    program NativeAsk: "question -> answer" {
        chain {
            answer: native Predict("question -> answer"),
        }
    }
}

const ANSWER: &str = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]";

/// The LM of both lanes: a short backoff (the response cache is off by default: every call
/// reaches the server).
fn endpoint(server: &LmServer) -> LmConfig {
    LmConfig::openai(server.base_url(), "model").retry_backoff(Duration::from_millis(10))
}

/// Runs one question through the lane `python` names, on a context of its own; the outcome
/// and how long it took.
async fn ask(lm: LmConfig, python: bool, question: &str) -> (Result<String>, Duration) {
    let ctx = context_with(worker_config(), lm).await;
    let question = question.to_owned();
    if python {
        let program = PythonAsk::attach(&ctx).await.unwrap();
        // The worker starts before the clock does.
        ctx.start_worker().await.unwrap();
        let started = Instant::now();
        let out = program.run(PythonAskInput { question }).await;
        (out.map(|o| o.answer), started.elapsed())
    } else {
        let program = NativeAsk::attach(&ctx).await.unwrap();
        let started = Instant::now();
        let out = program.run(NativeAskInput { question }).await;
        (out.map(|o| o.answer), started.elapsed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_endpoint_fails_within_the_timeout_after_one_request_in_both_lanes() {
    let timeout = Duration::from_secs(2);
    for python in [false, true] {
        let server = LmServer::start().await.unwrap();
        server.set_default(Reply::hang());
        let lm = endpoint(&server).timeout(timeout);
        let (out, took) = ask(lm, python, "Capital of France?").await;
        let lane = if python { "python" } else { "native" };
        let err = out.unwrap_err();
        let requests = server.requests().len();
        eprintln!("{lane} lane, hung endpoint: failed after {took:?}, {requests} request(s)");
        assert!(
            took >= timeout && took < timeout + Duration::from_secs(1),
            "{lane}: failed after {took:?}: {err}"
        );
        assert_eq!(requests, 1, "{lane}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_the_same_number_of_times_in_both_lanes() {
    for status in [429, 500, 503] {
        for python in [false, true] {
            let server = LmServer::start().await.unwrap();
            server.set_default(Reply::status(status).retry_after("0"));
            let lm = endpoint(&server).max_retries(2);
            let (out, _) = ask(lm, python, "Capital of France?").await;
            let lane = if python { "python" } else { "native" };
            let err = out.unwrap_err();
            assert_eq!(
                server.requests().len(),
                3,
                "{lane}, status {status}: one request and two retries: {err}"
            );
        }
    }
    // Other statuses are not retried.
    for python in [false, true] {
        let server = LmServer::start().await.unwrap();
        server.set_default(Reply::status(400));
        let (out, _) = ask(endpoint(&server), python, "Capital of France?").await;
        assert!(out.is_err());
        assert_eq!(server.requests().len(), 1, "python lane: {python}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_in_both_lanes() {
    for python in [false, true] {
        let server = LmServer::start().await.unwrap();
        server.push(Reply::status(429).retry_after("0.4"));
        server.push(Reply::text(ANSWER));
        let (out, _) = ask(endpoint(&server), python, "Capital of France?").await;
        assert_eq!(out.unwrap(), "Paris", "python lane: {python}");
        let requests = server.requests();
        assert_eq!(requests.len(), 2, "python lane: {python}");
        let waited = requests[1].at - requests[0].at;
        assert!(
            waited >= Duration::from_millis(400),
            "python lane: {python}: the retry came {waited:?} after the 429"
        );
    }
}
