//! A served run continues the trace its caller sends: the W3C `traceparent` of a request to
//! the run and stream routes is the parent of the run's span, exported to a real OTLP/HTTP
//! receiver; a request without one (or with text that is not one) starts a trace of its own.

#![allow(clippy::unwrap_used)]

mod otel_common;

use dspex::prelude::*;
use dspex::serve::Server;
use dspex::telemetry::Telemetry;
use dspex_test_otlp::OtlpReceiver;
use otel_common::{Thinker, scripted_lm};
use serde_json::json;

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const STREAM_CALLER_SPAN: &str = "b7ad6b7169203331";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_run_is_a_child_of_the_callers_span() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let guard = Telemetry::from_env()
        .unwrap()
        .endpoint(receiver.endpoint())
        .install()
        .unwrap();
    let ctx = Context::builder().lm(scripted_lm()).build().await.unwrap();
    let program = Thinker::attach(&ctx).await.unwrap();
    let handle = Server::builder()
        .program("thinker", program)
        .build()
        .unwrap()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("http://{}/v1/programs/thinker", handle.local_addr());
    let client = reqwest::Client::new();
    let body = json!({"inputs": {"question": "Where is Rome?"}});
    let post = |route: &str, traceparent: Option<String>| {
        let mut request = client.post(format!("{base}/{route}")).json(&body);
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        request.send()
    };
    let from = |span: &str| Some(format!("00-{CALLER_TRACE}-{span}-01"));

    let run = post("run", from(CALLER_SPAN)).await.unwrap();
    assert_eq!(run.status(), 200);
    let stream = post("stream", from(STREAM_CALLER_SPAN)).await.unwrap();
    assert_eq!(stream.status(), 200);
    assert!(stream.text().await.unwrap().contains("event: finished"));
    for traceparent in [None, Some("00-not-a-trace-01".to_owned())] {
        assert_eq!(post("run", traceparent).await.unwrap().status(), 200);
    }
    handle.shutdown().await.unwrap();
    guard.flush().unwrap();
    drop(guard);

    let runs: Vec<_> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.name == "invoke_workflow Thinker")
        .collect();
    assert_eq!(runs.len(), 4, "{runs:#?}");
    let continued: Vec<_> = runs.iter().filter(|s| s.trace_id == CALLER_TRACE).collect();
    let mut parents: Vec<_> = continued
        .iter()
        .map(|s| s.parent_span_id.as_str())
        .collect();
    parents.sort_unstable();
    assert_eq!(parents, [CALLER_SPAN, STREAM_CALLER_SPAN], "{runs:#?}");
    // The two requests without a usable traceparent started traces of their own.
    let own: Vec<_> = runs.iter().filter(|s| s.trace_id != CALLER_TRACE).collect();
    assert_eq!(own.len(), 2, "{runs:#?}");
    assert!(own.iter().all(|s| s.parent_span_id.is_empty()), "{own:#?}");
}
