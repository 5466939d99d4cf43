//! Telemetry against a real OTLP/HTTP receiver in this process (`dspex-test-otlp`, decoding
//! with `opentelemetry-proto`): a native run's spans arrive with their names, GenAI attributes
//! and parent links, message contents stay out unless opted in, a failure is an error status,
//! and every span ended before the guard drops reaches the collector.

#![allow(clippy::unwrap_used)]

mod otel_common;

use std::time::Duration;

use dspex::prelude::*;
use dspex::telemetry::Telemetry;
use dspex_test_lm::{LmServer, Reply};
use dspex_test_otlp::OtlpReceiver;
use otel_common::{Thinker, children, only, question, scripted_lm};
use serde_json::json;

/// Runs after the first one, all exported at the guard's drop.
const MORE_RUNS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_traces_of_steps_and_lm_calls_with_their_attributes() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let guard = Telemetry::from_env()
        .unwrap()
        .endpoint(receiver.endpoint())
        .service_name("otel-export-test")
        .capture_message_content(false)
        .install()
        .unwrap();

    let ctx = Context::builder().lm(scripted_lm()).build().await.unwrap();
    let program = Thinker::attach(&ctx).await.unwrap();
    program.temperature().set(0.7).unwrap();
    let (out, trace) = program
        .run_traced(question("Where is Rome?"))
        .await
        .unwrap();
    assert_eq!(out.answer, "Italy");

    // A step that fails: the LM endpoint answers 500 and the client does not retry.
    let server = LmServer::start().await.unwrap();
    server.set_default(Reply::status(500));
    let failing_lm = LmConfig::openai(server.base_url(), "broken-model")
        .max_retries(0)
        .timeout(Duration::from_secs(10));
    let failing_ctx = Context::builder().lm(failing_lm).build().await.unwrap();
    let failing = Thinker::attach(&failing_ctx).await.unwrap();
    let error = failing.run(question("Where is Rome?")).await.unwrap_err();

    for _ in 0..MORE_RUNS {
        program.run(question("Where is Rome?")).await.unwrap();
    }
    guard.flush().unwrap();
    assert_eq!(guard.spans_lost(), 0);
    let exported = guard.spans_exported();
    drop(guard);
    let spans = receiver.spans();
    // Nothing lost: three spans (run, step, LM call) for each run.
    assert_eq!(spans.len() as u64, exported);
    assert_eq!(spans.len(), 3 * (MORE_RUNS + 2));

    let traces: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "invoke_workflow Thinker")
        .collect();
    assert_eq!(traces.len(), MORE_RUNS + 2);
    let ok_run = traces.iter().find(|s| !s.is_error).copied().unwrap();
    let failed_run = traces.iter().find(|s| s.is_error).copied().unwrap();
    assert_eq!(traces.iter().filter(|s| s.is_error).count(), 1);

    // The first run: run -> step -> chat, one trace, with the GenAI attributes.
    let first: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == traces[0].trace_id)
        .cloned()
        .collect();
    assert_eq!(first.len(), 3, "{first:#?}");
    let run = only(&first, "invoke_workflow Thinker");
    assert_eq!(run.parent_span_id, "");
    assert_eq!(run.service_name.as_deref(), Some("otel-export-test"));
    assert_eq!(
        run.attribute("gen_ai.operation.name"),
        Some(&json!("invoke_workflow"))
    );
    assert_eq!(run.attribute("dspex.program"), Some(&json!("Thinker")));
    // Only the attributes dspex gives (no code locations, threads or timings of tracing's).
    let keys: Vec<&str> = run.attributes.keys().map(String::as_str).collect();
    assert_eq!(keys, ["dspex.program", "gen_ai.operation.name"]);
    let step = only(&first, "step answer");
    assert_eq!(children(&first, run), [step]);
    assert_eq!(step.attribute("dspex.step"), Some(&json!("answer")));
    assert_eq!(step.attribute("dspex.param.temperature"), Some(&json!(0.7)));
    assert_eq!(step.attribute("dspex.param.max_tokens"), Some(&json!(64)));
    assert_eq!(step.attribute("dspex.param.model"), Some(&json!("small")));
    let chat = only(&first, "chat small");
    assert_eq!(children(&first, step), [chat]);
    let call = &trace.step("answer").unwrap().lm_calls[0];
    assert_eq!(
        chat.attribute("gen_ai.operation.name"),
        Some(&json!("chat"))
    );
    assert_eq!(
        chat.attribute("gen_ai.provider.name"),
        Some(&json!("dspex.scripted"))
    );
    assert_eq!(
        chat.attribute("gen_ai.request.model"),
        Some(&json!("small"))
    );
    assert_eq!(
        chat.attribute("gen_ai.request.temperature"),
        Some(&json!(0.7))
    );
    assert_eq!(
        chat.attribute("gen_ai.request.max_tokens"),
        Some(&json!(64))
    );
    assert_eq!(
        chat.attribute("gen_ai.usage.input_tokens"),
        Some(&json!(call.prompt_tokens.unwrap()))
    );
    assert_eq!(
        chat.attribute("gen_ai.usage.output_tokens"),
        Some(&json!(call.completion_tokens.unwrap()))
    );
    // Message contents were not opted in.
    for span in &spans {
        assert!(
            span.attribute("gen_ai.input.messages").is_none(),
            "{span:#?}"
        );
        assert!(
            span.attribute("gen_ai.output.messages").is_none(),
            "{span:#?}"
        );
    }
    assert!(ok_run.start_unix_nano <= step.start_unix_nano);
    assert!(step.end_unix_nano <= ok_run.end_unix_nano);

    // The failed run: the error is the status of the LM call, its step and the run.
    let failed: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == failed_run.trace_id)
        .cloned()
        .collect();
    let failed_step = only(&failed, "step answer");
    let failed_chat = only(&failed, "chat small");
    assert_eq!(
        failed_chat.attribute("gen_ai.provider.name"),
        Some(&json!("openai"))
    );
    for span in [failed_run, failed_step, failed_chat] {
        assert!(span.is_error, "{span:#?}");
        assert!(span.status_message.contains("500"), "{span:#?}");
    }
    assert!(error.report().contains("500"), "{error}");
    assert!(
        failed_run.status_message.contains("step `answer`"),
        "{failed_run:#?}"
    );
}
