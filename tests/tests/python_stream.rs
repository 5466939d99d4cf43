//! Streamed python steps: DSPy's `streamify` in a real worker, against the loopback
//! OpenAI-compatible server streaming deltas (`dspex-test-lm`) and the scripted LM: the order
//! of events, chunks free of markers that join to the final values, one chunk per field from an
//! LM that does not stream, broken streams as errors naming the step, and a dropped stream that
//! cancels the call in the worker (its LM connection closed, its place free again).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use dspex::prelude::*;
use dspex_test_lm::{LmServer, Reply};
use dspex_tests::{context_with, worker_config};
use futures_util::StreamExt;

#[path = "../../dspex/tests/stream_common/mod.rs"]
mod stream_common;

use stream_common::{chunks, shape};

dspex_program! {
    /// Reasons, then answers with a confidence, in the worker.
    pub program Thinker: "question -> answer, confidence: float" {
        chain {
            answer: python ChainOfThought("question -> answer, confidence: float"),
        }
    }
}

const REPLY: &str = "[[ ## reasoning ## ]]\nRome is the capital of Italy, on the Tiber; it has been for a long time.\n\n[[ ## answer ## ]]\nItaly\n\n[[ ## confidence ## ]]\n0.9\n\n[[ ## completed ## ]]";

/// How long a test waits for what it polls (a liveness bound, not a timing assertion).
const DEADLINE: Duration = Duration::from_secs(60);

fn endpoint(server: &LmServer) -> LmConfig {
    LmConfig::openai(server.base_url(), "m")
        .retry_backoff(Duration::from_millis(10))
        .timeout(Duration::from_secs(30))
}

async fn thinker(lm: LmConfig) -> (Context, Thinker) {
    let ctx = context_with(worker_config(), lm).await;
    let program = Thinker::attach(&ctx).await.unwrap();
    (ctx, program)
}

fn question() -> ThinkerInput {
    ThinkerInput {
        question: "Where is Rome?".into(),
    }
}

async fn events<O: std::fmt::Debug>(
    stream: impl futures_util::Stream<Item = Result<RunEvent<O>>> + Unpin,
) -> Vec<RunEvent<O>> {
    stream.map(Result::unwrap).collect().await
}

fn step_outputs<O>(events: &[RunEvent<O>]) -> &Fields {
    events
        .iter()
        .find_map(|e| match e {
            RunEvent::StepFinished { outputs, .. } => Some(outputs),
            _ => None,
        })
        .expect("a StepFinished event")
}

/// Checks the chunks of a streamed step: free of markers, joined equal to the final text.
fn check_chunks<O>(events: &[RunEvent<O>], field: &str) -> usize {
    let texts = chunks(events, "answer", field);
    for text in &texts {
        assert!(
            !text.is_empty() && !text.contains("[[") && !text.contains("##"),
            "{field}: {text:?}"
        );
    }
    let outputs = step_outputs(events);
    assert_eq!(
        texts.concat(),
        outputs.get::<&str>(field).unwrap(),
        "{field}"
    );
    texts.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_chain_of_thought_streams_its_text_fields_through_dspy_as_the_lm_writes_them() {
    let server = LmServer::start().await.unwrap();
    server.set_default(Reply::text(REPLY).deltas(4, Duration::ZERO));
    let (_ctx, program) = thinker(endpoint(&server)).await;
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
    assert!(check_chunks(&events, "reasoning") > 5, "{events:?}");
    check_chunks(&events, "answer");
    assert!(chunks(&events, "answer", "confidence").is_empty());
    let Some(RunEvent::Finished { output, trace }) = events.last() else {
        panic!("the stream did not finish: {events:?}");
    };
    assert_eq!(output.answer, "Italy");
    assert!((output.confidence - 0.9).abs() < 1e-12);
    assert_eq!(trace.step("answer").unwrap().lm_calls.len(), 1);
    assert_eq!(server.requests()[0].body["stream"], true);
    // The same run, not streamed, has the same outputs.
    let run = program.run(question()).await.unwrap();
    assert_eq!(run.answer, "Italy");
    assert_eq!(server.requests()[1].body.get("stream"), None);
}

/// The field markers of [`REPLY`], in order.
const MARKERS: [&str; 4] = [
    "[[ ## reasoning ## ]]",
    "[[ ## answer ## ]]",
    "[[ ## confidence ## ]]",
    "[[ ## completed ## ]]",
];

/// [`REPLY`] in deltas: every marker cut `at` characters into it (whole if it is shorter), the
/// text between the markers in deltas of 4 characters (as an LM's tokens come).
fn cut_markers(at: usize) -> Vec<String> {
    let mut deltas = Vec::new();
    let mut rest = REPLY;
    for marker in MARKERS {
        let start = rest.find(marker).unwrap();
        let text: Vec<char> = rest[..start].chars().collect();
        deltas.extend(text.chunks(4).map(|piece| piece.iter().collect::<String>()));
        let (head, tail) = marker.split_at(at.min(marker.len()));
        deltas.extend(
            [head, tail]
                .into_iter()
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
        );
        rest = &rest[start + marker.len()..];
    }
    assert!(rest.is_empty(), "the reply ends with its last marker");
    deltas
}

/// Every split position of every field marker across two deltas: DSPy's `StreamListener` in
/// the worker hands out no marker text, and the chunks of each field join to its final text.
/// One worker serves every split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_split_of_a_field_marker_leaks_into_a_python_chunk() {
    let server = LmServer::start().await.unwrap();
    let (_ctx, program) = thinker(endpoint(&server)).await;
    let longest = MARKERS.iter().map(|m| m.len()).max().unwrap();
    for at in 0..=longest {
        let deltas = cut_markers(at);
        assert_eq!(deltas.concat(), REPLY);
        server.push(Reply::pieces(deltas));
        let events = events(program.stream(question())).await;
        for event in &events {
            if let RunEvent::Chunk { field, text, .. } = event {
                assert!(
                    !text.contains(['[', ']', '#']),
                    "markers cut at {at}: {field} chunk {text:?}"
                );
            }
        }
        assert!(
            check_chunks(&events, "reasoning") > 1,
            "markers cut at {at}"
        );
        check_chunks(&events, "answer");
        assert!(chunks(&events, "answer", "confidence").is_empty());
        let Some(RunEvent::Finished { output, .. }) = events.last() else {
            panic!("markers cut at {at}: the stream did not finish: {events:?}");
        };
        assert_eq!(output.answer, "Italy", "markers cut at {at}");
    }
    assert_eq!(server.requests().len(), longest + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_step_on_the_scripted_lm_streams_one_chunk_per_text_field() {
    let lm = LmConfig::scripted().answer([
        ("reasoning", "Rome is in Italy."),
        ("answer", "Italy"),
        ("confidence", "0.5"),
    ]);
    let (_ctx, program) = thinker(lm).await;
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
    assert_eq!(
        chunks(&events, "answer", "reasoning"),
        ["Rome is in Italy."]
    );
    assert_eq!(chunks(&events, "answer", "answer"), ["Italy"]);
    assert!(chunks(&events, "answer", "confidence").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_python_streams_are_errors_naming_the_step() {
    let server = LmServer::start().await.unwrap();
    let (_ctx, program) = thinker(endpoint(&server)).await;
    let broken = [
        // Malformed JSON.
        (
            "data: {not json\n\ndata: [DONE]\n\n",
            "Expecting property name",
        ),
        // An early end: one delta, then the connection closes.
        (
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"[[ ## reasoning ## ]]\\nhalf\"}}]}\n\n",
            "stream ended without a completion event",
        ),
    ];
    for (sse, why) in broken {
        server.push(Reply::sse(sse));
        let mut stream = program.stream(question());
        let error = loop {
            match stream.next().await.expect("an error before the end") {
                Ok(RunEvent::Finished { output, .. }) => panic!("{sse}: finished with {output:?}"),
                Ok(_) => {}
                Err(error) => break error,
            }
        };
        assert!(
            stream.next().await.is_none(),
            "the stream ends after an error"
        );
        assert!(
            error.to_string().contains("step `answer`"),
            "{sse}: {error}"
        );
        assert!(error.to_string().contains(why), "{sse}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_python_stream_cancels_the_call_in_the_worker() {
    let server = LmServer::start().await.unwrap();
    // Slow: the whole reply would take minutes.
    server.push(Reply::text(REPLY).deltas(1, Duration::from_millis(500)));
    let (ctx, program) = thinker(endpoint(&server)).await;
    let mut stream = program.stream(question());
    loop {
        match stream.next().await.unwrap().unwrap() {
            RunEvent::Chunk { .. } => break,
            RunEvent::Finished { .. } => panic!("finished before it was dropped"),
            _ => {}
        }
    }
    assert_eq!(server.aborted_streams(), 0);
    drop(stream);
    tokio::time::timeout(DEADLINE, server.wait_aborted_streams(1))
        .await
        .expect("the LM server saw the stream closed");
    // The worker's call ended: no call in flight, one cancelled, as the worker counts them.
    let started = Instant::now();
    loop {
        let health = ctx.worker_health().await;
        let status = ctx.worker_status().unwrap();
        if health
            .iter()
            .all(|h| h.calls_in_flight == 0 && h.calls_cancelled == 1)
            && status.processes.iter().all(|p| p.calls_in_flight == 0)
        {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "{health:?} {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Its place is free: the next call runs.
    server.set_default(Reply::text(REPLY).deltas(16, Duration::ZERO));
    let events = events(program.stream(question())).await;
    check_chunks(&events, "answer");
    assert_eq!(server.requests().len(), 2);
}
