//! A process that asks one question twice in each lane, for the LM cache tests:
//! `lm_cache_peer BASE_URL CACHE`, `CACHE` being `off`, `memory` or the directory of a disk
//! cache. It runs a program with a python `Predict` step and one with a native `Predict` step
//! against the OpenAI-compatible endpoint at `BASE_URL`, each twice on the same question, prints
//! `{"python": [..], "native": [..]}` (the answers) and exits.

#![allow(clippy::print_stdout)]

use dspex::lm::Cache;
use dspex::prelude::*;
use dspex_tests::worker_config;
use serde_json::json;

dspex_program! {
    /// The python lane.
    program PythonLane: "question -> answer" {
        chain { answer: python Predict("question -> answer") }
    }
}

dspex_program! {
    /// The native lane.
    program NativeLane: "question -> answer" {
        chain { answer: native Predict("question -> answer") }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base_url, cache] = args.as_slice() else {
        return Err(Error::InvalidOption {
            option: "lm_cache_peer".to_owned(),
            message: "usage: lm_cache_peer BASE_URL off|memory|DIR".to_owned(),
        });
    };
    let cache = match cache.as_str() {
        "off" => Cache::off(),
        "memory" => Cache::memory(100),
        dir => Cache::disk(dir),
    };
    let ctx = Context::builder()
        .worker(worker_config())
        .lm(LmConfig::openai(base_url.as_str(), "fake-qa").cache(cache))
        .build()
        .await?;
    let python = PythonLane::attach(&ctx).await?;
    let native = NativeLane::attach(&ctx).await?;
    let question = || "What is the capital of France?".to_owned();
    let (mut python_answers, mut native_answers) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let p = python
            .run(PythonLaneInput {
                question: question(),
            })
            .await?;
        let n = native
            .run(NativeLaneInput {
                question: question(),
            })
            .await?;
        python_answers.push(p.answer);
        native_answers.push(n.answer);
    }
    println!(
        "{}",
        json!({"python": python_answers, "native": native_answers})
    );
    Ok(())
}
