//! dspex's native `Predict` and `ChainOfThought` in declared programs, against the scripted LM
//! and against a real OpenAI-compatible HTTP server on loopback (`dspex-test-lm`): the program
//! stays local, bound parameters set the call, the prompt is DSPy's, replies are read per type,
//! and the client retries (honouring `Retry-After`), times out, records usage, caches and limits
//! its concurrency.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use dspex::BackendKind;
use dspex::Signature;
use dspex::lm::{
    LmClient, LmRequest, MAX_REPLY_EXCERPT_CHARS, chat_messages, default_instructions,
    with_reasoning,
};
use dspex::prelude::*;
use dspex_test_lm::{LmServer, Reply};

dspex_program! {
    /// Reasons, then answers, natively.
    pub program Thinker: "question -> answer" {
        variables {
            temperature: float = 0.3 { min: 0.0, max: 2.0 },
            max_tokens: integer = 64 { min: 1, max: 4096 },
            model: choice = "small" { choices: ["small", "large"] },
        }
        chain {
            answer: native ChainOfThought("question -> answer") { temperature, max_tokens, model },
        }
    }
}

dspex_program! {
    /// Predicts a typed answer.
    pub program Counter: "question -> count: int" {
        variables {
            temperature: float = 0.0 { min: 0.0, max: 2.0 },
        }
        chain {
            count: native Predict("question -> count: int") { temperature },
        }
    }
}

dspex_program! {
    /// Binds a parameter Predict does not take.
    pub program Styled: "question -> answer" {
        variables {
            style: string = "terse",
        }
        chain {
            answer: native Predict("question -> answer") { style },
        }
    }
}

async fn context(lm: LmConfig) -> Context {
    Context::builder().lm(lm).build().await.unwrap()
}

fn quick(server: &LmServer) -> LmConfig {
    LmConfig::openai(server.base_url(), "default-model")
        .retry_backoff(Duration::from_millis(10))
        .timeout(Duration::from_secs(10))
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn question(q: &str) -> ThinkerInput {
    ThinkerInput {
        question: q.to_owned(),
    }
}

#[tokio::test]
async fn a_program_of_native_lm_steps_stays_local_and_its_trace_keeps_the_reasoning() {
    const { assert!(!<Thinker as Program>::REQUIRES_BRIDGE) };
    let lm = LmConfig::scripted().rule(
        "Rome",
        [("reasoning", "Rome is in Italy."), ("answer", "Italy")],
    );
    let ctx = context(lm).await;
    let program = Thinker::attach(&ctx).await.unwrap();
    let (out, trace) = program
        .run_traced(question("Where is Rome?"))
        .await
        .unwrap();
    assert_eq!(out.answer, "Italy");
    assert_eq!(ctx.backend().kind, BackendKind::Local);
    let step = trace.step("answer").unwrap();
    assert_eq!(
        step.outputs.get::<&str>("reasoning").unwrap(),
        "Rome is in Italy."
    );
    let call = &step.lm_calls[0];
    assert_eq!(call.model, "small");
    assert_eq!(call.temperature, Some(0.3));
    assert_eq!(call.max_tokens, Some(64));
    assert!(call.prompt_tokens.unwrap() > 50, "{call}");
    // The scripted LM counts words: those of its reply's two sections.
    let reply = "[[ ## reasoning ## ]]\nRome is in Italy.\n\n[[ ## answer ## ]]\nItaly";
    assert_eq!(call.completion_tokens, Some(words(reply)));

    // `start()` gets the default, scripted LM: generated answers of the right type.
    let counter = Counter::start().await.unwrap();
    let out = counter
        .run(CounterInput {
            question: "How many?".into(),
        })
        .await
        .unwrap();
    assert_eq!(out.count, 0);
}

#[tokio::test]
async fn bound_parameters_set_the_request_and_the_prompt_is_dspys() {
    let server = LmServer::start().await.unwrap();
    let reply = "[[ ## reasoning ## ]]\nStep by step.\n\n[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]";
    server.push(Reply::text(reply));
    let ctx = context(quick(&server).api_key_env("PATH")).await;
    let program = Thinker::attach(&ctx).await.unwrap();
    program.temperature().set(1.25).unwrap();
    program.max_tokens().set(300).unwrap();
    program.model().set(Choice::from("large")).unwrap();
    let (out, trace) = program
        .run_traced(question("Capital of France?"))
        .await
        .unwrap();
    assert_eq!(out.answer, "Paris");

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.body["model"], "large");
    assert_eq!(request.body["temperature"], 1.25);
    assert_eq!(request.body["max_tokens"], 300);
    let key = std::env::var("PATH").unwrap();
    assert_eq!(request.authorization, Some(format!("Bearer {key}")));
    let signature: Signature = "question -> answer".parse().unwrap();
    let expected = chat_messages(
        &with_reasoning(&signature),
        &default_instructions(&signature),
        &[],
        &Fields::from([("question", "Capital of France?")]),
    );
    assert_eq!(
        request.body["messages"],
        serde_json::to_value(&expected).unwrap()
    );

    let call = &trace.step("answer").unwrap().lm_calls[0];
    let prompt_words: u64 = expected.iter().map(|m| words(&m.content)).sum();
    assert_eq!(call.prompt_tokens, Some(prompt_words));
    assert_eq!(call.completion_tokens, Some(words(reply)));
    assert_eq!(call.model, "large");
}

#[tokio::test]
async fn no_key_is_sent_unless_a_variable_is_named() {
    let server = LmServer::start().await.unwrap();
    let ctx = context(quick(&server)).await;
    let lm = ctx.lm_client().unwrap();
    lm.complete(&LmRequest::default()).await.unwrap();
    assert_eq!(server.requests()[0].authorization, None);
}

#[tokio::test]
async fn a_reply_missing_a_field_is_a_step_error_naming_it_and_quoting_the_reply() {
    let server = LmServer::start().await.unwrap();
    let long = format!("[[ ## answer ## ]]\nParis {}", "blah ".repeat(500));
    server.push(Reply::text(long));
    let ctx = context(quick(&server)).await;
    let program = Thinker::attach(&ctx).await.unwrap();
    let err = program.run(question("q")).await.unwrap_err();
    let report = err.report();
    assert!(report.contains("step `answer` failed"), "{report}");
    assert!(
        report.contains("`reasoning` is missing from the LM's reply"),
        "{report}"
    );
    assert!(
        report.contains("[[ ## answer ## ]]\\nParis blah"),
        "{report}"
    );
    assert!(
        report.len() < MAX_REPLY_EXCERPT_CHARS + 400,
        "{}",
        report.len()
    );

    // A typed output that does not read as its type names the field and the text.
    server.push(Reply::text("[[ ## count ## ]]\nmany"));
    let counter = Counter::attach(&ctx).await.unwrap();
    let err = counter
        .run(CounterInput {
            question: "q".into(),
        })
        .await
        .unwrap_err();
    let report = err.report();
    assert!(
        report.contains("`count`") && report.contains("many"),
        "{report}"
    );
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_honouring_retry_after() {
    let server = LmServer::start().await.unwrap();
    server.push(Reply::status(429).retry_after("0.3"));
    server.push(Reply::status(503));
    // The backoff is far longer than the Retry-After the server asks for: the first wait is
    // the server's, the second (no header) the backoff's.
    let lm = LmClient::new(
        LmConfig::openai(server.base_url(), "m").retry_backoff(Duration::from_millis(50)),
    )
    .unwrap();
    let reply = lm.complete(&LmRequest::default()).await.unwrap();
    assert_eq!(reply.text, dspex_test_lm::DEFAULT_REPLY);
    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(lm.requests_sent(), 3);
    let first_wait = requests[1].at - requests[0].at;
    assert!(first_wait >= Duration::from_millis(300), "{first_wait:?}");
    let second_wait = requests[2].at - requests[1].at;
    assert!(second_wait >= Duration::from_millis(100), "{second_wait:?}");

    // Retries are bounded: max_retries + 1 attempts, then an error naming the status.
    server.clear_requests();
    server.set_default(Reply::status(500));
    let lm = LmClient::new(
        LmConfig::openai(server.base_url(), "m")
            .max_retries(2)
            .retry_backoff(Duration::from_millis(1)),
    )
    .unwrap();
    let err = lm.complete(&LmRequest::default()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("500 Internal Server Error after 3 attempts"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 3);

    // A client error is not retried.
    server.clear_requests();
    server.set_default(Reply::status(400));
    let err = lm.complete(&LmRequest::default()).await.unwrap_err();
    assert!(err.to_string().contains("400 Bad Request:"), "{err}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_slow_reply_times_out_without_a_retry() {
    let server = LmServer::start().await.unwrap();
    server.push(Reply::text("late").after(Duration::from_secs(5)));
    let lm =
        LmClient::new(LmConfig::openai(server.base_url(), "m").timeout(Duration::from_millis(200)))
            .unwrap();
    let err = lm.complete(&LmRequest::default()).await.unwrap_err();
    assert!(
        err.to_string().contains("did not reply within 200ms"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn identical_requests_are_answered_from_the_opt_in_cache() {
    let server = LmServer::start().await.unwrap();
    server.set_default(Reply::text("[[ ## count ## ]]\n7"));
    let ctx = context(quick(&server).cache(dspex::lm::Cache::memory(2))).await;
    let counter = Counter::attach(&ctx).await.unwrap();
    let ask = |q: &str| {
        counter.run(CounterInput {
            question: q.to_owned(),
        })
    };
    assert_eq!(ask("a").await.unwrap().count, 7);
    assert_eq!(ask("a").await.unwrap().count, 7);
    assert_eq!(server.requests().len(), 1);
    assert_eq!(ctx.lm_client().unwrap().cache_hits(), 1);
    // Another temperature is another request.
    counter.temperature().set(0.5).unwrap();
    ask("a").await.unwrap();
    assert_eq!(server.requests().len(), 2);
    // The cache keeps 2 entries: after two more, the first is gone.
    ask("b").await.unwrap();
    counter.temperature().set(0.0).unwrap();
    ask("a").await.unwrap();
    assert_eq!(server.requests().len(), 4);

    // Without `cache`, every request goes out.
    let uncached = context(quick(&server)).await;
    let counter = Counter::attach(&uncached).await.unwrap();
    for _ in 0..2 {
        counter
            .run(CounterInput {
                question: "a".into(),
            })
            .await
            .unwrap();
    }
    assert_eq!(server.requests().len(), 6);
}

#[tokio::test]
async fn requests_in_flight_never_exceed_the_concurrency_limit() {
    let server = LmServer::start().await.unwrap();
    server.set_default(Reply::text("[[ ## answer ## ]]\nok").after(Duration::from_millis(100)));
    let lm = Arc::new(
        LmClient::new(LmConfig::openai(server.base_url(), "m").max_concurrent_requests(2)).unwrap(),
    );
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let lm = Arc::clone(&lm);
            tokio::spawn(async move { lm.complete(&LmRequest::default()).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(server.requests().len(), 8);
    assert_eq!(server.max_in_flight(), 2);
}

#[tokio::test]
async fn native_lm_steps_refuse_what_they_cannot_do() {
    // A dspy.LM model string serves python steps only.
    let ctx = context(LmConfig::model("anthropic/claude-3-haiku")).await;
    let program = Thinker::attach(&ctx).await.unwrap();
    let err = program.run(question("q")).await.unwrap_err().report();
    assert!(
        err.contains("is a dspy.LM model string, for python steps only"),
        "{err}"
    );

    // A bound parameter Predict does not take.
    let styled = Styled::start().await.unwrap();
    let err = styled
        .run(StyledInput {
            question: "q".into(),
        })
        .await
        .unwrap_err()
        .report();
    assert!(
        err.contains("native Predict takes no parameter `style`"),
        "{err}"
    );
    assert!(err.contains("`temperature`"), "{err}");

    // Outside a chain, a default module has no signature.
    let err = Predict::default()
        .forward(&Fields::new(), &Params::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a signature"), "{err}");
}

#[tokio::test]
async fn captured_messages_and_reply_are_in_the_trace_only_when_asked() {
    let server = LmServer::start().await.unwrap();
    let reply = "[[ ## reasoning ## ]]\nStep by step.\n\n[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]";
    server.set_default(Reply::text(reply));

    // Off by default: nothing kept, nothing to print.
    let ctx = context(quick(&server)).await;
    let program = Thinker::attach(&ctx).await.unwrap();
    let (_, trace) = program.run_traced(question("Capital?")).await.unwrap();
    assert_eq!(trace.step("answer").unwrap().lm_calls[0].exchange, None);
    assert_eq!(trace.inspect_history(5), "");

    let ctx = context(quick(&server).capture_messages(true)).await;
    let program = Thinker::attach(&ctx).await.unwrap();
    let (out, trace) = program
        .run_traced(question("Capital of France?"))
        .await
        .unwrap();
    assert_eq!(out.answer, "Paris");
    let requests = server.requests();
    let sent = &requests.last().unwrap().body["messages"];
    let exchange = trace.step("answer").unwrap().lm_calls[0]
        .exchange
        .as_ref()
        .expect("captured");
    let captured: Vec<serde_json::Value> = exchange
        .messages
        .iter()
        .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
        .collect();
    assert_eq!(&serde_json::Value::Array(captured), sent);
    assert_eq!(exchange.reply, reply);
    assert_eq!(trace.captures_dropped, 0);
    let history = trace.inspect_history(1);
    assert!(
        history.starts_with("[step `answer`, model small]"),
        "{history}"
    );
    assert!(
        history.contains("System message:\n\nYour input fields are:"),
        "{history}"
    );
    assert!(
        history.contains("User message:\n\n[[ ## question ## ]]\nCapital of France?"),
        "{history}"
    );
    assert!(
        history.contains(&format!("Response:\n\n{reply}")),
        "{history}"
    );
}
