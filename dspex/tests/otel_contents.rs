//! Telemetry with message contents opted in, over OTLP/HTTP in JSON (`http/json`), against a
//! real receiver in this process: the LM call span carries the messages sent and the reply.

#![allow(clippy::unwrap_used)]

mod otel_common;

use dspex::prelude::*;
use dspex::telemetry::{Protocol, Telemetry};
use dspex_test_otlp::OtlpReceiver;
use otel_common::{Thinker, only, question, scripted_lm};
use serde_json::Value as JsonValue;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_contents_are_on_the_lm_call_span_over_http_json() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let guard = Telemetry::from_env()
        .unwrap()
        .endpoint(receiver.endpoint())
        .protocol(Protocol::HttpJson)
        .capture_message_content(true)
        .install()
        .unwrap();
    let ctx = Context::builder().lm(scripted_lm()).build().await.unwrap();
    let program = Thinker::attach(&ctx).await.unwrap();
    program.run(question("Where is Rome?")).await.unwrap();
    drop(guard);

    let spans = receiver.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let chat = only(&spans, "chat small");
    let text = |key: &str| -> JsonValue {
        serde_json::from_str(chat.attribute(key).unwrap().as_str().unwrap()).unwrap()
    };
    let input = text("gen_ai.input.messages");
    let user = input
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user")
        .unwrap();
    assert!(
        user["content"].as_str().unwrap().contains("Where is Rome?"),
        "{input}"
    );
    let output = text("gen_ai.output.messages");
    assert_eq!(output[0]["role"], "assistant");
    assert!(
        output[0]["parts"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Rome is in Italy."),
        "{output}"
    );
    // Only the LM call carries contents.
    assert!(
        only(&spans, "step answer")
            .attribute("gen_ai.input.messages")
            .is_none()
    );
}
