//! Telemetry whose collector blocks: against a real OTLP/HTTP receiver in this process
//! (`dspex-test-otlp`) holding the first export unanswered, the queue fills up to
//! `MAX_QUEUED_SPANS` with nothing dropped, every span over it is dropped and counted exactly,
//! and no run fails or waits on the collector; once the collector answers, every queued span
//! arrives.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use dspex::prelude::*;
use dspex::telemetry::{MAX_QUEUED_SPANS, Telemetry};
use dspex_test_otlp::OtlpReceiver;

/// Spans of one run: the run and its step.
const SPANS_PER_RUN: usize = 2;
/// Runs after the queue is full.
const RUNS_OVER: usize = 5;
/// How long an export may wait for the held collector: longer than the test.
const HELD_EXPORT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the test waits for the exporter to reach the collector.
const DEADLINE: Duration = Duration::from_secs(60);

/// Echoes its text.
#[derive(Default)]
struct Echo;

impl Module for Echo {
    async fn forward(&self, inputs: &Fields, _params: &Params) -> Result<Fields> {
        Ok(Fields::from([(
            "echo",
            inputs.get::<&str>("text")?.to_owned(),
        )]))
    }
}

dspex_program! {
    /// One native step.
    program Echoer: "text -> echo" {
        chain {
            echo: native Echo("text -> echo"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_collector_drops_and_counts_the_spans_over_the_queue_bound() {
    let receiver = OtlpReceiver::start().await.unwrap();
    receiver.hold();
    let guard = Telemetry::from_env()
        .unwrap()
        .endpoint(receiver.endpoint())
        .export_timeout(HELD_EXPORT_TIMEOUT)
        .install()
        .unwrap();
    let ctx = Context::builder().build().await.unwrap();
    let program = Echoer::attach(&ctx).await.unwrap();
    let run = || async {
        let out = program
            .run(EchoerInput { text: "hi".into() })
            .await
            .unwrap();
        assert_eq!(out.echo, "hi");
    };

    // The first run's spans go out in the first export, which the collector holds.
    run().await;
    let deadline = Instant::now() + DEADLINE;
    while receiver.spans_held() < SPANS_PER_RUN {
        assert!(Instant::now() < deadline, "no export reached the collector");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(receiver.spans_held(), SPANS_PER_RUN);

    // While it is held, the queue fills to its bound: nothing dropped...
    for _ in 0..MAX_QUEUED_SPANS / SPANS_PER_RUN {
        run().await;
    }
    assert_eq!(guard.spans_dropped(), 0);
    // ... and every span over it is dropped and counted; the runs still succeed.
    for _ in 0..RUNS_OVER {
        run().await;
    }
    let over = (RUNS_OVER * SPANS_PER_RUN) as u64;
    assert_eq!(guard.spans_dropped(), over);
    assert!(receiver.spans().is_empty());

    // The collector answers: the held export and the whole queue arrive.
    receiver.release();
    guard.flush().unwrap();
    let kept = SPANS_PER_RUN + MAX_QUEUED_SPANS;
    assert_eq!(guard.spans_exported(), kept as u64);
    assert_eq!(guard.spans_lost(), over);
    drop(guard);
    assert_eq!(receiver.spans().len(), kept);
}
