//! Telemetry over OTLP/gRPC against a real gRPC receiver in this process (`dspex-test-otlp`'s
//! `TraceService`, `opentelemetry-proto`'s generated server): a native run's spans arrive with
//! their names, parent links and service name.

#![allow(clippy::unwrap_used)]

mod otel_common;

use dspex::prelude::*;
use dspex::telemetry::{Protocol, Telemetry};
use dspex_test_otlp::OtlpReceiver;
use otel_common::{Thinker, children, only, question, scripted_lm};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_exported_over_grpc() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let guard = Telemetry::from_env()
        .unwrap()
        .endpoint(receiver.grpc_endpoint())
        .protocol(Protocol::Grpc)
        .service_name("otel-grpc-test")
        .install()
        .unwrap();
    let ctx = Context::builder().lm(scripted_lm()).build().await.unwrap();
    let program = Thinker::attach(&ctx).await.unwrap();
    let out = program.run(question("Where is Rome?")).await.unwrap();
    assert_eq!(out.answer, "Italy");
    guard.flush().unwrap();
    assert_eq!(guard.spans_exported(), 3);
    assert_eq!(guard.spans_lost(), 0);
    drop(guard);

    let spans = receiver.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let run = only(&spans, "invoke_workflow Thinker");
    let step = only(&spans, "step answer");
    let chat = only(&spans, "chat small");
    assert_eq!(run.parent_span_id, "");
    assert_eq!(children(&spans, run), [step]);
    assert_eq!(children(&spans, step), [chat]);
    assert_eq!(run.service_name.as_deref(), Some("otel-grpc-test"));
    assert_eq!(
        chat.attribute("gen_ai.request.model"),
        Some(&json!("small"))
    );
}
