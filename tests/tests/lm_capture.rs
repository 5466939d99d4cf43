//! Captured LM messages in both lanes (`LmConfig::capture_messages`), against a real
//! OpenAI-compatible HTTP server on loopback (`dspex-test-lm`) and a real worker running real
//! DSPy: a python step's calls carry the messages the server received and the reply it sent,
//! as a native step's do, under one model name; nothing is captured by default; a run's bounds
//! hold at and over their limits for python steps' calls, in the worker and in the trace.

#![allow(clippy::unwrap_used)]

use dspex::prelude::*;
use dspex::{
    LmCall, LmExchange, MAX_CAPTURED_BYTES_PER_RUN, MAX_CAPTURED_CALLS_PER_RUN, Predict,
    ProgramBuilder, RunTrace, RunningProgram, Step,
};
use dspex_test_lm::{LmServer, Reply};
use dspex_tests::{context_with, worker_config};
use serde_json::{Value as JsonValue, json};

dspex_program! {
    /// A python and a native LM step on one endpoint, neither binding a model.
    program TwoLanes: "question -> answer, summary" {
        chain {
            answer: python Predict("question -> answer"),
            summary: native Predict("answer -> summary"),
        }
    }
}

const ANSWER: &str = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]";
const SUMMARY: &str = "[[ ## summary ## ]]\nIn France.\n\n[[ ## completed ## ]]";

/// A server answering `answer` requests with [`ANSWER`] and `summary` requests with
/// [`SUMMARY`], by the output field the system message asks for.
async fn server() -> LmServer {
    let server = LmServer::start().await.unwrap();
    server.respond_with(|body| {
        let system = body["messages"][0]["content"].as_str().unwrap_or_default();
        Reply::text(if system.contains("`summary`") {
            SUMMARY
        } else {
            ANSWER
        })
    });
    server
}

/// The exchange's messages as the JSON a request body carries them.
fn messages_json(exchange: &LmExchange) -> JsonValue {
    exchange
        .messages
        .iter()
        .map(|m| json!({"role": m.role, "content": m.content}))
        .collect()
}

/// The only LM call of step `step`.
fn only_call<'t>(trace: &'t RunTrace, step: &str) -> &'t LmCall {
    let calls = &trace.step(step).unwrap().lm_calls;
    assert_eq!(calls.len(), 1, "{calls:?}");
    &calls[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_steps_capture_what_the_lm_server_received_as_native_steps_do() {
    let server = server().await;
    let lm = LmConfig::openai(server.base_url(), "fake-qa");
    let question = || TwoLanesInput {
        question: "Capital of France?".into(),
    };

    // Off by default: nothing kept in either lane, nothing to print.
    let ctx = context_with(worker_config(), lm.clone()).await;
    let program = TwoLanes::attach(&ctx).await.unwrap();
    let (_, trace) = program.run_traced(question()).await.unwrap();
    assert_eq!(only_call(&trace, "answer").exchange, None);
    assert_eq!(only_call(&trace, "summary").exchange, None);
    assert_eq!(
        (trace.inspect_history(5).as_str(), trace.captures_dropped),
        ("", 0)
    );

    server.clear_requests();
    let ctx = context_with(worker_config(), lm.capture_messages(true)).await;
    let program = TwoLanes::attach(&ctx).await.unwrap();
    let (out, trace) = program.run_traced(question()).await.unwrap();
    assert_eq!(
        (out.answer.as_str(), out.summary.as_str()),
        ("Paris", "In France.")
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for (step, request, reply) in [
        ("answer", &requests[0], ANSWER),
        ("summary", &requests[1], SUMMARY),
    ] {
        let call = only_call(&trace, step);
        let exchange = call.exchange.as_ref().expect("captured");
        // What the server received, message for message, and what it sent back.
        assert_eq!(messages_json(exchange), request.body["messages"], "{step}");
        assert_eq!(exchange.reply, reply, "{step}");
        // One name for the one model, in both lanes.
        assert_eq!(call.model, "fake-qa", "{step}");
    }
    assert_eq!(trace.captures_dropped, 0);

    let history = trace.inspect_history(2);
    let python = history
        .find("[step `answer`, model fake-qa]")
        .expect(&history);
    let native = history
        .find("[step `summary`, model fake-qa]")
        .expect(&history);
    assert!(python < native, "{history}");
    assert!(
        history[python..native]
            .contains("User message:\n\n[[ ## question ## ]]\nCapital of France?"),
        "{history}"
    );
    assert!(
        history[python..native].contains(&format!("Response:\n\n{ANSWER}")),
        "{history}"
    );
    assert!(
        history[native..].contains(&format!("Response:\n\n{SUMMARY}")),
        "{history}"
    );
}

/// A python step asking its question `times` times (one call, many LM requests), then a
/// native step.
async fn repeater(ctx: &Context) -> RunningProgram {
    ProgramBuilder::new("Repeated")
        .step(Step::python(
            "many",
            "sample_modules.Repeater",
            "question, times: int -> answer",
        ))
        .step(Step::native(
            "summary",
            "answer -> summary",
            Predict::default(),
        ))
        .build()
        .unwrap()
        .attach(ctx)
        .await
        .unwrap()
}

/// A run of the repeater: its python step's calls with their exchange or not, the native
/// step's call, and the count of exchanges left out.
async fn run(program: &RunningProgram, question: &str, times: usize) -> (Vec<bool>, bool, usize) {
    let input = Fields::from([("question", json!(question)), ("times", json!(times))]);
    let (_, trace) = program.run_traced(input).await.unwrap();
    let python = &trace.step("many").unwrap().lm_calls;
    assert_eq!(python.len(), times);
    let kept = python.iter().map(|c| c.exchange.is_some()).collect();
    let native = only_call(&trace, "summary").exchange.is_some();
    (kept, native, trace.captures_dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_steps_captures_are_bounded_at_and_over_the_limits() {
    let server = server().await;
    let lm = LmConfig::openai(server.base_url(), "fake-qa").capture_messages(true);
    let ctx = context_with(worker_config(), lm).await;
    let program = repeater(&ctx).await;

    // Calls: the python step's first MAX_CAPTURED_CALLS_PER_RUN fill the run; the native
    // step's is left out (counted) ...
    let (kept, native, dropped) = run(&program, "q", MAX_CAPTURED_CALLS_PER_RUN).await;
    assert!(kept.iter().all(|&k| k));
    assert_eq!((native, dropped), (false, 1));
    // ... and one more call of the python step is left out by the worker (counted too).
    let (kept, native, dropped) = run(&program, "q", MAX_CAPTURED_CALLS_PER_RUN + 1).await;
    assert_eq!(
        kept.iter().filter(|&&k| k).count(),
        MAX_CAPTURED_CALLS_PER_RUN
    );
    assert!(!kept[MAX_CAPTURED_CALLS_PER_RUN]);
    assert_eq!((native, dropped), (false, 2));

    // Bytes: the question goes once in the request, so its length sets the exchange's size.
    let input = Fields::from([("question", json!("q")), ("times", json!(1))]);
    let (_, trace) = program.run_traced(input).await.unwrap();
    let base = only_call(&trace, "many").exchange.as_ref().unwrap().size() - 1;
    // An exchange of exactly MAX_CAPTURED_BYTES_PER_RUN bytes is kept, and fills the run ...
    let at = "a".repeat(MAX_CAPTURED_BYTES_PER_RUN - base);
    let (kept, native, dropped) = run(&program, &at, 1).await;
    assert_eq!((kept, native, dropped), (vec![true], false, 1));
    // ... one byte more and the worker leaves it out: the native step's then fits.
    let over = "a".repeat(MAX_CAPTURED_BYTES_PER_RUN - base + 1);
    let (kept, native, dropped) = run(&program, &over, 1).await;
    assert_eq!((kept, native, dropped), (vec![false], true, 1));
}
