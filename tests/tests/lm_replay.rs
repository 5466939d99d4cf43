//! Record and replay across both lanes: a run against a real loopback LM server is recorded
//! (the python step's requests by the worker, the native step's by the Rust client, into one
//! file), then replayed with the server gone; a request the recording does not hold fails
//! naming the file and the request, and a corrupt recording fails the context's build naming
//! the line.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use dspex::RunTrace;
use dspex::prelude::*;
use dspex_test_lm::{LmServer, Reply};
use dspex_tests::worker_config;
use serde_json::Value;

dspex_program! {
    /// One python and one native LM step.
    program Recorded: "question -> answer, summary" {
        variables {
            temperature: float = 0.4 { min: 0.0, max: 2.0 },
        }
        chain {
            answer: python Predict("question -> answer") { temperature },
            summary: native Predict("answer -> summary") { temperature },
        }
    }
}

fn recording(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "dspex-lm-replay-{}-{name}.jsonl",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

async fn run(lm: LmConfig, question: &str) -> dspex::Result<(RecordedOutput, RunTrace)> {
    let ctx = Context::builder()
        .worker(worker_config())
        .lm(lm)
        .build()
        .await?;
    let program = Recorded::attach(&ctx).await?;
    program.temperature().set(0.7)?;
    program
        .run_traced(RecordedInput {
            question: question.into(),
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_hybrid_run_replays_with_the_server_gone() {
    let path = recording("hybrid");
    let server = LmServer::start().await.unwrap();
    server.push(Reply::text(
        "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]",
    ));
    server.push(Reply::text(
        "[[ ## summary ## ]]\nIn France.\n\n[[ ## completed ## ]]",
    ));
    let live = LmConfig::openai(server.base_url(), "live-model");
    let (out, live_trace) = run(LmConfig::record(live, &path), "Capital of France?")
        .await
        .unwrap();
    assert_eq!(
        (out.answer.as_str(), out.summary.as_str()),
        ("Paris", "In France.")
    );
    assert_eq!(server.requests().len(), 2);
    drop(server);

    let lines: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0]["lane"], "python");
    assert_eq!(lines[1]["lane"], "native");
    for line in &lines {
        // What the program asked for: no model bound, the bound temperature, not the
        // configuration's `cache` setting.
        assert_eq!(line["request"]["model"], Value::Null, "{line}");
        assert_eq!(line["request"]["settings"]["temperature"], 0.7, "{line}");
        assert!(line["request"]["settings"].get("cache").is_none(), "{line}");
    }
    assert!(
        lines[0]["reply"]["text"]
            .as_str()
            .unwrap()
            .contains("Paris")
    );

    // Replayed: same outputs and usage, no server.
    let (out, trace) = run(LmConfig::replay(&path), "Capital of France?")
        .await
        .unwrap();
    assert_eq!(
        (out.answer.as_str(), out.summary.as_str()),
        ("Paris", "In France.")
    );
    let usage = |t: &RunTrace, step: &str| {
        let call = &t.step(step).unwrap().lm_calls[0];
        (call.temperature, call.prompt_tokens, call.completion_tokens)
    };
    for step in ["answer", "summary"] {
        assert_eq!(usage(&trace, step), usage(&live_trace, step), "{step}");
    }

    // A question never recorded: the python step fails naming the file and the request.
    let err = run(LmConfig::replay(&path), "Capital of Spain?")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("holds no reply to the request"), "{err}");
    assert!(err.contains("Capital of Spain?"), "{err}");
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_missing_recording_fails_the_build_naming_it() {
    let path = recording("corrupt");
    std::fs::write(&path, "{\"lane\": \"native\"}\n{\"trunc").unwrap();
    let err = build_error(LmConfig::replay(&path)).await;
    assert!(
        err.contains(&format!("{} line 1: no recorded exchange", path.display())),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
    let err = build_error(LmConfig::replay(&path)).await;
    assert!(err.contains("cannot open the LM recording"), "{err}");
    let nested = LmConfig::record(LmConfig::replay(&path), &path);
    let err = Context::builder().lm(nested).build().await.unwrap_err();
    assert!(
        err.to_string().contains("itself recorded or replayed"),
        "{err}"
    );
}

async fn build_error(lm: LmConfig) -> String {
    Context::builder()
        .lm(lm)
        .build()
        .await
        .unwrap_err()
        .report()
}
