//! Message contents across both lanes, opted in, against a real OTLP/HTTP receiver in this
//! process (`dspex-test-otlp`) and a real Python worker running DSPy: the LM call spans of the
//! worker carry the messages sent and the reply, under the same attribute names as the native
//! lane's; the step spans carry none.

#![allow(clippy::unwrap_used)]

use dspex::LmConfig;
use dspex::prelude::*;
use dspex::telemetry::Telemetry;
use dspex_test_otlp::{OtlpReceiver, ReceivedSpan};
use dspex_tests::worker_config;
use serde_json::Value as JsonValue;

dspex_program! {
    /// The same question in both lanes.
    program Twice: "question -> answer, native_answer" {
        chain {
            answer: python ChainOfThought("question -> answer"),
            native_answer: native Predict("question -> native_answer"),
        }
    }
}

/// The JSON text of attribute `key` of `span`, parsed.
fn json_attribute(span: &ReceivedSpan, key: &str) -> JsonValue {
    let text = span.attribute(key).and_then(JsonValue::as_str);
    serde_json::from_str(text.unwrap_or_else(|| panic!("no {key} on {span:#?}"))).unwrap()
}

/// The text of the user message of `input` (`gen_ai.input.messages`).
fn user_text(input: &JsonValue) -> String {
    let user = input
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "user");
    user.unwrap()["content"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_contents_are_on_the_lm_call_spans_of_both_lanes() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let guard = Telemetry::from_env()
        .unwrap()
        .endpoint(receiver.endpoint())
        .capture_message_content(true)
        .install()
        .unwrap();
    let lm = LmConfig::scripted().rule(
        "Rome",
        [
            ("reasoning", "Rome is in Italy."),
            ("answer", "Italy"),
            ("native_answer", "Italy"),
        ],
    );
    let ctx = Context::builder()
        .worker(worker_config())
        .lm(lm)
        .build()
        .await
        .unwrap();
    let program = Twice::attach(&ctx).await.unwrap();
    let (out, trace) = program
        .run_traced(TwiceInput {
            question: "Where is Rome?".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        (out.answer.as_str(), out.native_answer.as_str()),
        ("Italy", "Italy")
    );
    // Contents for telemetry do not put the messages in the trace: that is the LM's
    // `capture_messages`, off here.
    for step in &trace.steps {
        assert!(
            step.lm_calls.iter().all(|c| c.exchange.is_none()),
            "{step:?}"
        );
    }
    drop(ctx);
    guard.flush().unwrap();
    drop(guard);

    let spans = receiver.spans();
    let step = |name: &str| {
        let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(found.len(), 1, "{spans:#?}");
        found[0]
    };
    for step_name in ["step answer", "step native_answer"] {
        let step = step(step_name);
        assert!(
            step.attribute("gen_ai.input.messages").is_none(),
            "{step:#?}"
        );
        let chats: Vec<_> = spans
            .iter()
            .filter(|s| s.parent_span_id == step.span_id && s.name.starts_with("chat "))
            .collect();
        assert_eq!(chats.len(), 1, "{spans:#?}");
        let input = json_attribute(chats[0], "gen_ai.input.messages");
        assert!(user_text(&input).contains("Where is Rome?"), "{input}");
        let output = json_attribute(chats[0], "gen_ai.output.messages");
        assert_eq!(output[0]["role"], "assistant", "{output}");
        let reply = output[0]["parts"][0]["content"].as_str().unwrap();
        assert!(reply.contains("Italy"), "{reply}");
    }
}
