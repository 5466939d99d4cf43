//! One trace across both lanes, against a real OTLP/HTTP receiver in this process
//! (`dspex-test-otlp`) and a real Python worker running DSPy's `ReAct`: the run, its native
//! and python steps, the LM calls the worker made and the Rust tool its agent called back are
//! spans of one trace, each a child of the span it happened in (the trace context crosses the
//! gRPC calls both ways as W3C `traceparent`).

#![allow(clippy::unwrap_used)]

use dspex::prelude::*;
use dspex::telemetry::Telemetry;
use dspex::{LmConfig, json};
use dspex_test_otlp::{OtlpReceiver, ReceivedSpan};
use dspex_tests::worker_config;
use researcher::{Researcher, ResearcherInput};

// The program of the telemetry example, shared with it.
#[allow(unreachable_pub, dead_code)]
#[path = "../../examples/src/researcher.rs"]
mod researcher;

fn only<'s>(spans: &'s [ReceivedSpan], name: &str) -> &'s ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    let names: Vec<_> = spans.iter().map(|s| &s.name).collect();
    assert_eq!(found.len(), 1, "spans named {name} among {names:?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hybrid_run_is_one_trace_across_the_python_worker() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let guard = Telemetry::from_env()
        .unwrap()
        .endpoint(receiver.endpoint())
        .install()
        .unwrap();
    let lm = LmConfig::scripted().agent_plan(
        [("search_docs", json!({"query": "tokio"}))],
        [("answer", "42")],
    );
    let ctx = Context::builder()
        .worker(worker_config())
        .lm(lm)
        .build()
        .await
        .unwrap();
    let researcher = Researcher::attach(&ctx).await.unwrap();
    let (out, trace) = researcher
        .run_traced(ResearcherInput {
            question: "What is tokio?".into(),
        })
        .await
        .unwrap();
    assert_eq!(out.answer, "42");
    drop(ctx);
    guard.flush().unwrap();
    assert_eq!(guard.spans_lost(), 0);
    drop(guard);

    let spans = receiver.spans();
    let run = only(&spans, "invoke_workflow Researcher");
    // Everything is in the run's trace.
    for span in &spans {
        assert_eq!(span.trace_id, run.trace_id, "{span:#?}");
    }
    let label = only(&spans, "step label");
    let agent = only(&spans, "step agent");
    assert_eq!(label.parent_span_id, run.span_id);
    assert_eq!(agent.parent_span_id, run.span_id);
    assert_eq!(
        agent.attribute("dspex.param.temperature"),
        Some(&json!(0.4))
    );

    // The worker's LM calls: children of the python step, with the GenAI attributes of the
    // calls the trace records, inside the step's time.
    let step = trace.step("agent").unwrap();
    assert!(!step.lm_calls.is_empty());
    let chats: Vec<_> = spans
        .iter()
        .filter(|s| s.attribute("gen_ai.operation.name") == Some(&json!("chat")))
        .collect();
    assert_eq!(chats.len(), step.lm_calls.len(), "{chats:#?}");
    for (span, call) in chats.iter().zip(&step.lm_calls) {
        assert_eq!(span.name, format!("chat {}", call.model));
        assert_eq!(span.parent_span_id, agent.span_id);
        assert_eq!(
            span.attribute("gen_ai.request.model"),
            Some(&json!(call.model))
        );
        assert_eq!(
            span.attribute("gen_ai.request.temperature"),
            Some(&json!(0.4))
        );
        assert_eq!(
            span.attribute("gen_ai.usage.input_tokens"),
            call.prompt_tokens.map(|t| json!(t)).as_ref()
        );
        assert!(agent.start_unix_nano <= span.start_unix_nano, "{span:#?}");
        assert!(span.start_unix_nano <= span.end_unix_nano, "{span:#?}");
        assert!(span.end_unix_nano <= agent.end_unix_nano, "{span:#?}");
        assert!(span.attribute("gen_ai.input.messages").is_none());
    }

    // The Rust tool the agent called back: a child of the step span the worker was given.
    let tool = only(&spans, "execute_tool search_docs");
    assert_eq!(tool.parent_span_id, agent.span_id);
    assert_eq!(
        tool.attribute("gen_ai.tool.name"),
        Some(&json!("search_docs"))
    );
    assert_eq!(spans.len(), 4 + chats.len(), "{spans:#?}");
}
