//! Both lanes against one real OpenAI-compatible HTTP server on loopback (`dspex-test-lm`), with
//! no network: a python step's worker reaches it through `dspy.LM("openai/<model>",
//! api_base=...)` from the same `LmConfig::openai` a native step calls it with from Rust, and the
//! requests the server received carry each call's bound temperature, max_tokens and model.

#![allow(clippy::unwrap_used)]

use dspex::prelude::*;
use dspex_test_lm::{LmServer, Reply};
use dspex_tests::worker_config;

dspex_program! {
    /// One python and one native LM step on the same endpoint.
    program BothLanes: "question -> answer, summary" {
        variables {
            temperature: float = 0.4 { min: 0.0, max: 2.0 },
            max_tokens: integer = 77 { min: 1, max: 4096 },
            model: choice = "python-model" { choices: ["python-model", "other-model"] },
        }
        chain {
            answer: python Predict("question -> answer") { temperature, max_tokens, model },
            summary: native Predict("answer -> summary") { temperature, max_tokens },
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_native_steps_reach_the_same_endpoint_with_their_bound_settings() {
    let server = LmServer::start().await.unwrap();
    server.push(Reply::text(
        "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]",
    ));
    server.push(Reply::text(
        "[[ ## summary ## ]]\nIn France.\n\n[[ ## completed ## ]]",
    ));
    let lm = LmConfig::openai(server.base_url(), "default-model");
    let ctx = Context::builder()
        .worker(worker_config())
        .lm(lm)
        .build()
        .await
        .unwrap();
    let program = BothLanes::attach(&ctx).await.unwrap();
    program.temperature().set(0.9).unwrap();
    program.max_tokens().set(123).unwrap();
    let (out, trace) = program
        .run_traced(BothLanesInput {
            question: "Capital of France?".into(),
        })
        .await
        .unwrap();
    assert_eq!(out.answer, "Paris");
    assert_eq!(out.summary, "In France.");

    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let (python, native) = (&requests[0].body, &requests[1].body);
    assert_eq!(python["model"], "python-model");
    assert_eq!(python["temperature"], 0.9);
    // DSPy's OpenAI engine sends the token limit under OpenAI's current name.
    assert_eq!(python["max_completion_tokens"], 123, "{python}");
    let user = python["messages"].as_array().unwrap().last().unwrap();
    assert!(
        user["content"]
            .as_str()
            .unwrap()
            .starts_with("[[ ## question ## ]]\nCapital of France?"),
        "{user}"
    );
    // No key variable is named: the native lane sends no key; DSPy's OpenAI engine needs one,
    // so the worker sends a placeholder.
    assert_eq!(
        requests[0].authorization.as_deref(),
        Some("Bearer dspex-no-key")
    );
    assert_eq!(requests[1].authorization, None);
    assert_eq!(native["model"], "default-model");
    assert_eq!(native["temperature"], 0.9);
    assert_eq!(native["max_tokens"], 123);

    let python_call = &trace.step("answer").unwrap().lm_calls[0];
    // One name for the model in both lanes: the worker's `openai/` prefix is LiteLLM's.
    assert_eq!(python_call.model, "python-model");
    assert_eq!(
        trace.step("summary").unwrap().lm_calls[0].model,
        "default-model"
    );
    assert_eq!(python_call.temperature, Some(0.9));
    assert_eq!(python_call.max_tokens, Some(123));
    let native_call = &trace.step("summary").unwrap().lm_calls[0];
    assert_eq!(native_call.max_tokens, Some(123));
    assert!(native_call.prompt_tokens.is_some());
}
