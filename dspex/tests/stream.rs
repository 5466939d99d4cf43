//! Streamed runs against the loopback OpenAI-compatible server (`dspex-test-lm`) and the
//! scripted LM: the order of events, chunks free of markers that join to the final typed
//! outputs, usage from the final chunk, retries before the first byte, broken streams as step
//! errors, and a dropped stream closing the LM's connection.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use dspex::lm::MAX_LM_REPLY_BYTES;
use dspex::prelude::*;
use dspex::{ProgramBuilder, RunTrace, Step};
use dspex_test_lm::{LmServer, Reply};
use futures_util::StreamExt;

mod stream_common;

use stream_common::{joined, shape};

dspex_program! {
    /// Reasons, then answers with a confidence, natively.
    pub program Thinker: "question -> answer, confidence: float" {
        variables {
            temperature: float = 0.3 { min: 0.0, max: 2.0 },
        }
        chain {
            answer: native ChainOfThought("question -> answer, confidence: float") { temperature },
        }
    }
}

const REPLY: &str = "[[ ## reasoning ## ]]\nRome is the [[ capital ]] of Italy.\n\n[[ ## answer ## ]]\nItaly\n\n[[ ## confidence ## ]]\n0.9\n\n[[ ## completed ## ]]";

fn endpoint(server: &LmServer) -> LmConfig {
    LmConfig::openai(server.base_url(), "m")
        .retry_backoff(Duration::from_millis(10))
        .timeout(Duration::from_secs(10))
}

async fn thinker(lm: LmConfig) -> Thinker {
    let ctx = Context::builder().lm(lm).build().await.unwrap();
    Thinker::attach(&ctx).await.unwrap()
}

fn question() -> ThinkerInput {
    ThinkerInput {
        question: "Where is Rome?".into(),
    }
}

/// Every event of a stream that ends well; the last is `Finished`.
async fn events<O>(
    stream: impl futures_util::Stream<Item = Result<RunEvent<O>>> + Unpin,
) -> Vec<RunEvent<O>> {
    stream.map(Result::unwrap).collect().await
}

/// The error a stream ends with.
async fn first_error<O: std::fmt::Debug>(
    mut stream: impl futures_util::Stream<Item = Result<RunEvent<O>>> + Unpin,
) -> Error {
    while let Some(item) = stream.next().await {
        if let Err(error) = item {
            return error;
        }
    }
    panic!("the stream ended without an error")
}

#[tokio::test]
async fn a_streamed_chain_of_thought_sends_its_fields_as_they_arrive_and_ends_typed() {
    let server = LmServer::start().await.unwrap();
    server.set_default(Reply::text(REPLY).deltas(3, Duration::ZERO));
    let program = thinker(endpoint(&server)).await;
    let events = events(program.stream(question())).await;
    assert_eq!(
        shape(&events),
        [
            "started answer",
            "chunk answer.reasoning",
            "chunk answer.answer",
            "finished answer",
            "done"
        ]
    );
    let chunks = events
        .iter()
        .filter(|e| matches!(e, RunEvent::Chunk { .. }))
        .count();
    assert!(chunks > 10, "{chunks} chunks");
    for event in &events {
        if let RunEvent::Chunk { text, .. } = event {
            assert!(!text.contains("##") && !text.is_empty(), "{text:?}");
        }
    }
    let Some(RunEvent::StepFinished { outputs, .. }) = events.iter().rev().nth(1) else {
        panic!("no StepFinished before Finished: {events:?}");
    };
    assert_eq!(
        joined(&events, "answer", "reasoning"),
        outputs.get::<&str>("reasoning").unwrap()
    );
    assert_eq!(joined(&events, "answer", "answer"), "Italy");
    let Some(RunEvent::Finished { output, trace }) = events.last() else {
        panic!("the stream did not finish: {events:?}");
    };
    assert_eq!(output.answer, "Italy");
    assert!((output.confidence - 0.9).abs() < 1e-12);
    // The request asked for a stream with usage, and the usage of the final chunk is kept.
    let request = &server.requests()[0].body;
    assert_eq!(request["stream"], true);
    assert_eq!(request["stream_options"]["include_usage"], true);
    let call = &trace.step("answer").unwrap().lm_calls[0];
    assert_eq!(
        call.completion_tokens,
        Some(REPLY.split_whitespace().count() as u64)
    );
    assert!(call.prompt_tokens.unwrap() > 20);
    // The same run, not streamed, has the same outputs.
    let run = program.run(question()).await.unwrap();
    assert_eq!(
        (run.answer, run.confidence),
        (output.answer.clone(), output.confidence)
    );
    assert_eq!(server.requests()[1].body.get("stream"), None);
}

#[tokio::test]
async fn a_streamed_request_is_retried_only_before_its_first_byte() {
    let server = LmServer::start().await.unwrap();
    server.push(Reply::status(503).retry_after("0"));
    server.push(Reply::text(REPLY).deltas(7, Duration::ZERO));
    let program = thinker(endpoint(&server)).await;
    let events = events(program.stream(question())).await;
    assert_eq!(joined(&events, "answer", "answer"), "Italy");
    assert_eq!(server.requests().len(), 2);

    // A stream that breaks after its first delta is an error, not asked again.
    server.push(Reply::sse(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"[[ ## reasoning ## ]]\\nhalf\"}}]}\n\n",
    ));
    let mut stream = program.stream(question());
    let mut seen = Vec::new();
    let error = loop {
        match stream.next().await.unwrap() {
            Ok(event) => seen.push(event),
            Err(error) => break error,
        }
    };
    assert!(
        stream.next().await.is_none(),
        "the stream ends after an error"
    );
    assert_eq!(joined(&seen, "answer", "reasoning"), "half");
    let chain = error.report();
    assert!(error.to_string().contains("step `answer`"), "{error}");
    assert!(
        chain.contains("ended its stream before `data: [DONE]`"),
        "{chain}"
    );
    assert!(chain.contains("half"), "{chain}");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn malformed_and_oversized_streams_are_step_errors_quoting_a_bounded_excerpt() {
    let server = LmServer::start().await.unwrap();
    let program = thinker(endpoint(&server)).await;
    let long = "x".repeat(5_000);
    server.push(Reply::sse(format!(
        "data: {{not json {long}\n\ndata: [DONE]\n\n"
    )));
    let error = first_error(program.stream(question())).await;
    let chain = error.report();
    assert!(error.to_string().contains("step `answer`"), "{error}");
    assert!(chain.contains("no chat completion chunk"), "{chain}");
    assert!(chain.contains("{not json"), "{chain}");
    assert!(chain.len() < 1_500, "{} characters", chain.len());

    // A stream of exactly MAX_LM_REPLY_BYTES is read; one byte more is an error.
    let stream_of = |bytes: usize| {
        let content = serde_json::json!({"choices": [{"index": 0, "delta": {"content": REPLY}}]});
        let head = format!("data: {content}\n\n");
        let tail = "data: [DONE]\n\n";
        let padding = bytes - head.len() - tail.len() - 2;
        format!("{head}:{}\n{tail}", "p".repeat(padding))
    };
    server.push(Reply::sse(stream_of(MAX_LM_REPLY_BYTES)));
    let events = events(program.stream(question())).await;
    assert_eq!(joined(&events, "answer", "answer"), "Italy");
    server.push(Reply::sse(stream_of(MAX_LM_REPLY_BYTES + 1)));
    let error = first_error(program.stream(question())).await;
    let chain = error.report();
    assert!(chain.contains("MAX_LM_REPLY_BYTES"), "{chain}");
}

#[tokio::test]
async fn the_timeout_bounds_each_gap_of_a_stream_not_the_whole_stream() {
    let server = LmServer::start().await.unwrap();
    let timeout = Duration::from_secs(1);
    let lm = endpoint(&server).timeout(timeout).max_retries(0);
    let program = thinker(lm).await;
    // Gaps of a fifth of the timeout, the whole stream several timeouts long: read.
    let deltas = REPLY.chars().count().div_ceil(12);
    assert!(deltas as u32 * timeout / 5 > 2 * timeout);
    server.push(Reply::text(REPLY).deltas(12, timeout / 5));
    let events = events(program.stream(question())).await;
    assert_eq!(joined(&events, "answer", "answer"), "Italy");
    // A gap longer than the timeout: an error naming the bound.
    server.push(Reply::text(REPLY).deltas(24, timeout * 3));
    let error = first_error(program.stream(question())).await.report();
    assert!(
        error.contains("sent nothing in its stream within 1s (LmConfig::timeout)"),
        "{error}"
    );
    // No first byte within the timeout.
    server.push(
        Reply::text(REPLY)
            .deltas(24, Duration::ZERO)
            .after(timeout * 3),
    );
    let error = first_error(program.stream(question())).await.report();
    assert!(
        error.contains("did not reply within 1s (LmConfig::timeout)"),
        "{error}"
    );
}

#[tokio::test]
async fn the_deltas_of_one_read_come_as_one_chunk_per_field() {
    let server = LmServer::start().await.unwrap();
    let program = thinker(endpoint(&server)).await;
    let mut sse = String::new();
    for piece in REPLY.split_inclusive(' ') {
        let event = serde_json::json!({"choices": [{"index": 0, "delta": {"content": piece}}]});
        sse.push_str(&format!("data: {event}\n\n"));
    }
    sse.push_str("data: [DONE]\n\n");
    // Every event in one piece of the body.
    server.push(Reply::sse(sse));
    let events = events(program.stream(question())).await;
    let chunks: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Chunk { field, text, .. } => Some((field.as_str(), text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        chunks,
        [
            ("reasoning", "Rome is the [[ capital ]] of Italy."),
            ("answer", "Italy")
        ]
    );
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection_to_the_lm() {
    let server = LmServer::start().await.unwrap();
    server.set_default(Reply::text(REPLY).deltas(2, Duration::from_millis(20)));
    let program = thinker(endpoint(&server)).await;
    let mut stream = program.stream(question());
    loop {
        if let RunEvent::Chunk { .. } = stream.next().await.unwrap().unwrap() {
            break;
        }
    }
    assert_eq!(server.aborted_streams(), 0);
    drop(stream);
    tokio::time::timeout(Duration::from_secs(30), server.wait_aborted_streams(1))
        .await
        .expect("the server saw the stream closed");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_runtime_built_program_streams_its_steps_in_order_from_the_scripted_lm() {
    let lm = LmConfig::scripted()
        .rule(
            "Rome",
            [("reasoning", "It is the capital."), ("answer", "Italy")],
        )
        .rule("Italy", [("summary", "A country.")])
        .scripted_deltas(4, Duration::ZERO);
    let ctx = Context::builder().lm(lm).build().await.unwrap();
    let program = ProgramBuilder::new("Chain")
        .signature("question -> summary")
        .step(Step::native(
            "answer",
            "question -> answer",
            dspex::ChainOfThought::default(),
        ))
        .step(Step::native(
            "summary",
            "answer -> summary",
            dspex::Predict::default(),
        ))
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap();
    let input = Fields::from([("question", "Where is Rome?")]);
    let events = events(program.stream(input)).await;
    assert_eq!(
        shape(&events),
        [
            "started answer",
            "chunk answer.reasoning",
            "chunk answer.answer",
            "finished answer",
            "started summary",
            "chunk summary.summary",
            "finished summary",
            "done"
        ]
    );
    assert_eq!(joined(&events, "answer", "reasoning"), "It is the capital.");
    // Deltas of 4 characters: "Italy" arrives in more than one chunk.
    let answer_chunks = events
        .iter()
        .filter(|e| matches!(e, RunEvent::Chunk { field, .. } if field == "answer"))
        .count();
    assert!(answer_chunks > 1, "{events:?}");
    let Some(RunEvent::Finished { output, trace }) = events.last() else {
        panic!("{events:?}");
    };
    assert_eq!(output.get::<&str>("summary").unwrap(), "A country.");
    let _: &RunTrace = trace;

    // Overrides apply to a streamed run, and an invalid one is the stream's only item.
    let mut overrides = Overrides::new();
    overrides.insert("nope", 1.0);
    let mut stream = program.stream_with(&overrides, Fields::from([("question", "Where?")]));
    assert!(matches!(stream.next().await, Some(Err(_))));
    assert!(stream.next().await.is_none());
}

#[test]
fn scripted_deltas_are_bounded() {
    let err = dspex::lm::LmClient::new(LmConfig::scripted().scripted_deltas(0, Duration::ZERO))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("scripted_deltas") && err.contains("at least 1"),
        "{err}"
    );
    let over = dspex::lm::MAX_SCRIPTED_DELAY + Duration::from_millis(1);
    assert!(dspex::lm::LmClient::new(LmConfig::scripted().scripted_deltas(1, over)).is_err());
    assert!(
        dspex::lm::LmClient::new(
            LmConfig::scripted().scripted_deltas(1, dspex::lm::MAX_SCRIPTED_DELAY)
        )
        .is_ok()
    );
}
