//! Programs served over HTTP (`dspex::serve`), driven by a real HTTP client (reqwest): every
//! route and every error status, the bounds at and over their limits, server-sent events,
//! graceful shutdown with a run in flight, and that a refused request changes nothing.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use dspex::prelude::*;
use dspex::serve::{
    MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_HISTORY_PAGE, RETRY_AFTER_SECONDS, Server, ServerHandle,
};
use dspex::{Constraints, ProgramBuilder, RunningProgram, Step, VarType, VariableSpec};
use reqwest::StatusCode;
use serde_json::{Value as Json, json};
use tokio::sync::Semaphore;

const READ: &str = "read-secret";
const ADMIN: &str = "admin-secret";

/// Repeats its text `times` times; fails on `boom`.
struct Echo;

impl Module for Echo {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let text = inputs.get::<&str>("text")?;
        if text == "boom" {
            return Err(dspex::Error::InvalidOption {
                option: "text".into(),
                message: "boom is refused".into(),
            });
        }
        let times = usize::try_from(params.get::<i64>("times")?).unwrap();
        Ok(Fields::from([("echo", vec![text; times].join(" "))]))
    }
}

/// Holds every run until the test lets it go: `entered` gets a permit when a run arrives,
/// a run goes on once it takes a permit of `release`.
#[derive(Clone)]
struct Gate {
    entered: Arc<Semaphore>,
    release: Arc<Semaphore>,
}

impl Gate {
    fn new() -> Self {
        Self {
            entered: Arc::new(Semaphore::new(0)),
            release: Arc::new(Semaphore::new(0)),
        }
    }

    /// Waits until `n` runs have reached the gate.
    async fn wait_entered(&self, n: u32) {
        tokio::time::timeout(Duration::from_secs(30), self.entered.acquire_many(n))
            .await
            .unwrap()
            .unwrap()
            .forget();
    }
}

impl Module for Gate {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        self.entered.add_permits(1);
        self.release.acquire().await.unwrap().forget();
        Ok(Fields::from([("done", inputs.get::<&str>("text")?)]))
    }
}

async fn echoer() -> RunningProgram {
    ProgramBuilder::new("echoer")
        .signature("text -> echo")
        .variable(
            VariableSpec::new("repeat", VarType::Integer, 1)
                .with_constraints(Constraints::range(1, 3)),
        )
        .variable(VariableSpec::new("locked", VarType::String, "v1").readonly())
        .step(Step::native("echo", "text -> echo", Echo).bind_as("repeat", "times"))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

async fn gated(gate: &Gate) -> RunningProgram {
    ProgramBuilder::new("gated")
        .signature("text -> done")
        .step(Step::native("wait", "text -> done", gate.clone()))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

dspex_program! {
    /// Answers with the scripted LM.
    pub program Qa: "question -> answer" {
        chain { answer: native Predict("question -> answer") }
    }
}

async fn qa() -> Qa {
    let lm = LmConfig::scripted().answer([("answer", "Paris")]);
    Qa::attach(&Context::builder().lm(lm).build().await.unwrap())
        .await
        .unwrap()
}

/// A server with the echoer, the tokens, and `gate`'s program.
async fn serve(
    gate: &Gate,
    build: impl FnOnce(dspex::serve::ServerBuilder) -> dspex::serve::ServerBuilder,
) -> (ServerHandle, String) {
    let builder = Server::builder()
        .program("echoer", echoer().await)
        .program("gated", gated(gate).await)
        .program("qa", qa().await)
        .token(READ)
        .admin_token(ADMIN);
    let handle = build(builder)
        .build()
        .unwrap()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("http://{}", handle.local_addr());
    (handle, base)
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(base: &str, path: &str, token: &str, body: Json) -> (StatusCode, Json) {
    let response = client()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn put(base: &str, path: &str, token: &str, body: Json) -> (StatusCode, Json) {
    let response = client()
        .put(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn get(base: &str, path: &str, token: &str) -> (StatusCode, Json) {
    let response = client()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Asserts an error answer: its status, kind and field.
fn assert_error(answer: &(StatusCode, Json), status: StatusCode, kind: &str, field: Option<&str>) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["kind"], kind, "{}", answer.1);
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(
        answer.1["error"].get("field").and_then(Json::as_str),
        field,
        "{}",
        answer.1
    );
}

/// The echoer's variables as GET shows them.
async fn variables(base: &str) -> Json {
    let (status, body) = get(base, "/v1/programs/echoer/variables", READ).await;
    assert_eq!(status, StatusCode::OK);
    body
}

#[tokio::test]
async fn run_answers_outputs_with_overrides_and_trace() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    let run = "/v1/programs/echoer/run";
    let answer = post(&base, run, READ, json!({"inputs": {"text": "hi"}})).await;
    assert_eq!(answer, (StatusCode::OK, json!({"outputs": {"echo": "hi"}})));

    let answer = post(
        &base,
        run,
        READ,
        json!({"inputs": {"text": "hi"}, "overrides": {"repeat": 3}}),
    )
    .await;
    assert_eq!(answer.1, json!({"outputs": {"echo": "hi hi hi"}}));
    assert_eq!(
        variables(&base).await["repeat"]["value"],
        1,
        "an override is for one run only"
    );

    let (status, body) = post(
        &base,
        &format!("{run}?trace=true"),
        READ,
        json!({"inputs": {"text": "hi"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let step = &body["trace"]["steps"][0];
    assert_eq!(step["step"], "echo");
    assert_eq!(step["inputs"], json!({"text": "hi"}));
    assert_eq!(step["outputs"], json!({"echo": "hi"}));
    assert_eq!(step["params"], json!({"times": 1}));

    // A program generated by the macros is served the same way.
    let answer = post(
        &base,
        "/v1/programs/qa/run",
        READ,
        json!({"inputs": {"question": "Capital of France?"}}),
    )
    .await;
    assert_eq!(
        answer,
        (StatusCode::OK, json!({"outputs": {"answer": "Paris"}}))
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    let response = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!generated.is_empty());
    let response = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_ne!(
        response.headers()["x-request-id"].to_str().unwrap(),
        generated
    );
    let response = client()
        .post(format!("{base}/v1/programs/nope/run"))
        .header("x-request-id", "abc-123")
        .bearer_auth(READ)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["x-request-id"], "abc-123");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn run_errors_have_their_status_kind_and_field_and_change_nothing() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    let before = variables(&base).await;
    let run = "/v1/programs/echoer/run";

    let response = client()
        .post(format!("{base}{run}"))
        .bearer_auth(READ)
        .body("{\"inputs\": ")
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_error(
        &(status, response.json().await.unwrap()),
        StatusCode::BAD_REQUEST,
        "invalid_json",
        None,
    );

    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    assert_error(
        &post(&base, run, READ, json!({"inputs": {}})).await,
        unprocessable,
        "invalid_input",
        Some("text"),
    );
    assert_error(
        &post(&base, run, READ, json!({"inputs": {"text": 1}})).await,
        unprocessable,
        "invalid_input",
        Some("text"),
    );
    assert_error(
        &post(
            &base,
            run,
            READ,
            json!({"inputs": {"text": "a", "extra": 1}}),
        )
        .await,
        unprocessable,
        "invalid_input",
        Some("extra"),
    );
    assert_error(
        &post(
            &base,
            run,
            READ,
            json!({"inputs": {"text": "a"}, "trace": true}),
        )
        .await,
        unprocessable,
        "invalid_input",
        Some("trace"),
    );
    assert_error(
        &post(&base, run, READ, json!([1])).await,
        unprocessable,
        "invalid_input",
        None,
    );
    assert_error(
        &post(
            &base,
            run,
            READ,
            json!({"inputs": {"text": "a"}, "overrides": {"repeat": 9}}),
        )
        .await,
        unprocessable,
        "constraint",
        Some("repeat"),
    );
    assert_error(
        &post(
            &base,
            run,
            READ,
            json!({"inputs": {"text": "a"}, "overrides": {"repeat": "x"}}),
        )
        .await,
        unprocessable,
        "invalid_input",
        Some("repeat"),
    );
    assert_error(
        &post(
            &base,
            run,
            READ,
            json!({"inputs": {"text": "a"}, "overrides": {"nope": 1}}),
        )
        .await,
        unprocessable,
        "invalid_input",
        Some("nope"),
    );
    assert_error(
        &post(
            &base,
            &format!("{run}?trace=maybe"),
            READ,
            json!({"inputs": {"text": "a"}}),
        )
        .await,
        unprocessable,
        "invalid_input",
        Some("trace"),
    );
    assert_error(
        &post(
            &base,
            &format!("{run}?verbose=1"),
            READ,
            json!({"inputs": {"text": "a"}}),
        )
        .await,
        unprocessable,
        "invalid_input",
        Some("verbose"),
    );
    assert_error(
        &post(&base, "/v1/programs/nope/run", READ, json!({"inputs": {}})).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );

    let failed = post(&base, run, READ, json!({"inputs": {"text": "boom"}})).await;
    assert_error(
        &failed,
        StatusCode::INTERNAL_SERVER_ERROR,
        "step_failed",
        None,
    );
    assert!(
        failed.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("step `echo`"),
        "{}",
        failed.1
    );

    assert_eq!(variables(&base).await, before);
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn tokens_guard_reads_and_writes() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    let before = variables(&base).await;
    let unauthorized = StatusCode::UNAUTHORIZED;

    let response = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "healthz needs no token");
    for path in [
        "/v1/programs",
        "/metrics",
        "/readyz",
        "/openapi.json",
        "/v1/programs/echoer/variables",
    ] {
        let response = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), unauthorized, "{path}");
        let body: Json = response.json().await.unwrap();
        assert_eq!(body["error"]["kind"], "unauthorized");
        assert_error(
            &get(&base, path, "wrong").await,
            unauthorized,
            "unauthorized",
            None,
        );
    }
    assert_error(
        &post(
            &base,
            "/v1/programs/echoer/run",
            "wrong",
            json!({"inputs": {"text": "a"}}),
        )
        .await,
        unauthorized,
        "unauthorized",
        None,
    );
    assert_eq!(
        get(&base, "/v1/programs", ADMIN).await.0,
        StatusCode::OK,
        "the admin token reads too"
    );

    let var = "/v1/programs/echoer/variables/repeat";
    let response = client()
        .put(format!("{base}{var}"))
        .json(&json!({"value": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        unauthorized,
        "a write with no token at all"
    );
    assert_error(
        &put(&base, var, "wrong", json!({"value": 2})).await,
        unauthorized,
        "unauthorized",
        None,
    );
    assert_error(
        &put(&base, var, READ, json!({"value": 2})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    assert_error(
        &post(
            &base,
            &format!("{var}/rollback"),
            READ,
            json!({"version": 1}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    assert_eq!(variables(&base).await, before);
    assert_eq!(
        put(&base, var, ADMIN, json!({"value": 2})).await,
        (StatusCode::OK, json!({"version": 2}))
    );
    handle.shutdown().await.unwrap();

    // Without an admin token a server takes no writes.
    let server = Server::builder()
        .program("echoer", echoer().await)
        .build()
        .unwrap();
    let handle = server.bind("127.0.0.1:0").await.unwrap();
    let open = format!("http://{}", handle.local_addr());
    assert_eq!(
        get(&open, "/v1/programs", "").await.0,
        StatusCode::OK,
        "no token: reads are open"
    );
    assert_error(
        &put(&open, var, "anything", json!({"value": 2})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        None,
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn variables_are_read_written_with_versions_and_rolled_back() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    assert_eq!(
        variables(&base).await,
        json!({
            "repeat": {"value": 1, "version": 1, "type": "integer", "constraints": {"min": 1, "max": 3}, "readonly": false},
            "locked": {"value": "v1", "version": 1, "type": "string", "constraints": {}, "readonly": true},
        })
    );
    let var = "/v1/programs/echoer/variables/repeat";
    assert_eq!(
        put(&base, var, ADMIN, json!({"value": 2})).await,
        (StatusCode::OK, json!({"version": 2}))
    );
    let answer = post(
        &base,
        "/v1/programs/echoer/run",
        READ,
        json!({"inputs": {"text": "hi"}}),
    )
    .await;
    assert_eq!(
        answer.1,
        json!({"outputs": {"echo": "hi hi"}}),
        "the next run uses the write"
    );

    // Refused writes change nothing.
    let before = variables(&base).await;
    assert_error(
        &put(
            &base,
            var,
            ADMIN,
            json!({"value": 3, "expected_version": 1}),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
        Some("repeat"),
    );
    assert_error(
        &put(&base, var, ADMIN, json!({"value": 7})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "constraint",
        Some("repeat"),
    );
    assert_error(
        &put(&base, var, ADMIN, json!({"value": "two"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("repeat"),
    );
    assert_error(
        &put(&base, var, ADMIN, json!({"value": 2, "why": "x"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("why"),
    );
    assert_error(
        &put(&base, var, ADMIN, json!({})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("repeat"),
    );
    assert_error(
        &put(
            &base,
            "/v1/programs/echoer/variables/locked",
            ADMIN,
            json!({"value": "v2"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
        Some("locked"),
    );
    assert_error(
        &put(
            &base,
            "/v1/programs/echoer/variables/nope",
            ADMIN,
            json!({"value": 1}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        Some("nope"),
    );
    assert_error(
        &put(
            &base,
            "/v1/programs/nope/variables/repeat",
            ADMIN,
            json!({"value": 1}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let response = client()
        .put(format!("{base}{var}"))
        .bearer_auth(ADMIN)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_error(
        &post(
            &base,
            &format!("{var}/rollback"),
            ADMIN,
            json!({"version": 99}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        Some("repeat"),
    );
    assert_error(
        &post(&base, &format!("{var}/rollback"), ADMIN, json!({"to": 1})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("to"),
    );
    assert_eq!(variables(&base).await, before);

    assert_eq!(
        put(
            &base,
            var,
            ADMIN,
            json!({"value": 3, "expected_version": 2})
        )
        .await,
        (StatusCode::OK, json!({"version": 3}))
    );
    let (status, history) = get(&base, &format!("{var}/history?limit=2"), READ).await;
    assert_eq!(status, StatusCode::OK);
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[0]["version"].clone(), history[0]["value"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(history[0]["source"], "rust");
    assert_eq!(history[0]["metadata"]["written_by"], "http");
    assert!(history[0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(history[1]["version"], 2);

    assert_eq!(
        post(
            &base,
            &format!("{var}/rollback"),
            ADMIN,
            json!({"version": 1})
        )
        .await,
        (StatusCode::OK, json!({"version": 4}))
    );
    assert_eq!(variables(&base).await["repeat"]["value"], 1);

    // The history page, at and over its bound.
    let (status, all) = get(
        &base,
        &format!("{var}/history?limit={MAX_HISTORY_PAGE}"),
        READ,
    )
    .await;
    assert_eq!((status, all.as_array().unwrap().len()), (StatusCode::OK, 4));
    for limit in [
        "0".to_owned(),
        (MAX_HISTORY_PAGE + 1).to_string(),
        "x".to_owned(),
    ] {
        assert_error(
            &get(&base, &format!("{var}/history?limit={limit}"), READ).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("limit"),
        );
    }
    assert_error(
        &get(&base, "/v1/programs/echoer/variables/nope/history", READ).await,
        StatusCode::NOT_FOUND,
        "not_found",
        Some("nope"),
    );
    handle.shutdown().await.unwrap();
}

/// A run body of exactly `size` bytes.
fn body_of(size: usize) -> String {
    let frame = r#"{"inputs": {"text": ""}}"#;
    let text = "a".repeat(size - frame.len());
    let body = format!(r#"{{"inputs": {{"text": "{text}"}}}}"#);
    assert_eq!(body.len(), size);
    body
}

#[tokio::test]
async fn bodies_and_headers_are_bounded() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    let send = |body: String| {
        client()
            .post(format!("{base}/v1/programs/echoer/run"))
            .bearer_auth(READ)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(
        send(body_of(MAX_BODY_BYTES)).await.unwrap().status(),
        StatusCode::OK
    );
    let over = send(body_of(MAX_BODY_BYTES + 1)).await.unwrap();
    assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Json = over.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "too_large");

    // Headers: `authorization`, `host`, `accept` and one padding header, counted by name and value.
    let host = handle.local_addr().to_string();
    let fixed = "authorization".len()
        + format!("Bearer {READ}").len()
        + "host".len()
        + host.len()
        + "accept".len()
        + "*/*".len()
        + "x-pad".len();
    let with_pad = |pad: usize| {
        client()
            .get(format!("{base}/v1/programs"))
            .bearer_auth(READ)
            .header("x-pad", "p".repeat(pad))
            .send()
    };
    assert_eq!(
        with_pad(MAX_HEADER_BYTES - fixed).await.unwrap().status(),
        StatusCode::OK
    );
    let over = with_pad(MAX_HEADER_BYTES - fixed + 1).await.unwrap();
    assert_eq!(over.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let body: Json = over.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "too_large");
    handle.shutdown().await.unwrap();
}

/// The value of a metric line (`name{labels} value`) of `/metrics`.
async fn metric(base: &str, line_start: &str) -> Option<f64> {
    let text = client()
        .get(format!("{base}/metrics"))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Polls `/metrics` until `line_start` shows `value`.
async fn wait_metric(base: &str, line_start: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metric(base, line_start).await != Some(value) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line_start} never reached {value}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn runs_beyond_the_places_and_the_queue_get_429() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b.max_concurrent_runs(1).max_queued_runs(1)).await;
    let run = |text: &'static str| {
        let base = base.clone();
        tokio::spawn(async move {
            post(
                &base,
                "/v1/programs/gated/run",
                READ,
                json!({"inputs": {"text": text}}),
            )
            .await
        })
    };
    let first = run("first");
    gate.wait_entered(1).await;
    let second = run("second"); // the queue's one place: at the limit
    wait_metric(&base, "dspex_runs_queued ", 1.0).await;
    let response = client()
        .post(format!("{base}/v1/programs/gated/run"))
        .bearer_auth(READ)
        .json(&json!({"inputs": {"text": "third"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response.headers()["retry-after"],
        RETRY_AFTER_SECONDS.to_string().as_str()
    );
    let body: Json = response.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "busy");

    gate.release.add_permits(2);
    assert_eq!(
        first.await.unwrap(),
        (StatusCode::OK, json!({"outputs": {"done": "first"}}))
    );
    assert_eq!(
        second.await.unwrap(),
        (StatusCode::OK, json!({"outputs": {"done": "second"}}))
    );
    assert_eq!(
        metric(
            &base,
            "dspex_run_errors_total{program=\"gated\",kind=\"busy\"}"
        )
        .await,
        Some(1.0)
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_run_over_the_request_timeout_gets_504() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b.request_timeout(Duration::from_millis(300))).await;
    let answer = post(
        &base,
        "/v1/programs/gated/run",
        READ,
        json!({"inputs": {"text": "slow"}}),
    )
    .await;
    assert_error(&answer, StatusCode::GATEWAY_TIMEOUT, "timeout", None);
    // The run was dropped: its place is free again.
    gate.release.add_permits(1);
    let answer = post(
        &base,
        "/v1/programs/gated/run",
        READ,
        json!({"inputs": {"text": "next"}}),
    )
    .await;
    assert_eq!(
        answer,
        (StatusCode::OK, json!({"outputs": {"done": "next"}}))
    );
    handle.shutdown().await.unwrap();
}

/// The events of a server-sent event stream: (event, data).
fn parse_sse(text: &str) -> Vec<(String, Json)> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_owned();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            (event, serde_json::from_str(&data).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn stream_sends_server_sent_events() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    let response = client()
        .post(format!("{base}/v1/programs/qa/stream"))
        .bearer_auth(READ)
        .json(&json!({"inputs": {"question": "Capital of France?"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = parse_sse(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        ["step_started", "chunk", "step_finished", "finished"]
    );
    assert_eq!(events[0].1, json!({"step": "answer"}));
    assert_eq!(
        events[1].1,
        json!({"step": "answer", "field": "answer", "text": "Paris"})
    );
    assert_eq!(
        events[2].1,
        json!({"step": "answer", "outputs": {"answer": "Paris"}})
    );
    assert_eq!(events[3].1["output"], json!({"answer": "Paris"}));
    assert_eq!(events[3].1["trace"]["steps"][0]["step"], "answer");

    // A failing step ends the stream with an `error` event.
    let response = client()
        .post(format!("{base}/v1/programs/echoer/stream"))
        .bearer_auth(READ)
        .json(&json!({"inputs": {"text": "boom"}}))
        .send()
        .await
        .unwrap();
    let events = parse_sse(&response.text().await.unwrap());
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "error");
    assert_eq!(data["error"]["kind"], "step_failed");
    assert!(
        data["error"]["message"]
            .as_str()
            .unwrap()
            .contains("step `echo`")
    );

    // Input errors are answered with a status before any stream opens.
    let answer = post(
        &base,
        "/v1/programs/echoer/stream",
        READ,
        json!({"inputs": {"text": 5}}),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("text"),
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn programs_are_listed_with_json_schemas_and_an_openapi_document() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    let (status, programs) = get(&base, "/v1/programs", READ).await;
    assert_eq!(status, StatusCode::OK);
    let echoer = programs
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "echoer")
        .unwrap();
    assert_eq!(echoer["signature"], "text: str -> echo: str");
    assert_eq!(
        echoer["input_schema"],
        json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"], "additionalProperties": false})
    );
    assert_eq!(
        echoer["output_schema"]["properties"]["echo"],
        json!({"type": "string"})
    );

    let (status, openapi) = get(&base, "/openapi.json", READ).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(openapi["openapi"], "3.1.0");
    let run = &openapi["paths"]["/v1/programs/echoer/run"]["post"];
    assert_eq!(
        run["requestBody"]["content"]["application/json"]["schema"]["properties"]["inputs"],
        echoer["input_schema"]
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    assert_eq!(
        get(&base, "/healthz", "").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        get(&base, "/readyz", READ).await,
        (StatusCode::OK, json!({"status": "ready"}))
    );
    post(
        &base,
        "/v1/programs/echoer/run",
        READ,
        json!({"inputs": {"text": "a"}}),
    )
    .await;
    post(
        &base,
        "/v1/programs/echoer/run",
        READ,
        json!({"inputs": {"text": "boom"}}),
    )
    .await;
    assert_eq!(
        metric(&base, "dspex_runs_total{program=\"echoer\"}").await,
        Some(1.0)
    );
    assert_eq!(
        metric(
            &base,
            "dspex_run_errors_total{program=\"echoer\",kind=\"step_failed\"}"
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        metric(&base, "dspex_steps_total{program=\"echoer\",step=\"echo\"}").await,
        Some(1.0)
    );
    assert_eq!(
        metric(
            &base,
            "dspex_run_duration_seconds_count{program=\"echoer\"}"
        )
        .await,
        Some(1.0)
    );
    assert_eq!(metric(&base, "dspex_runs_in_flight ").await, Some(0.0));
    assert_error(
        &get(&base, "/nope", READ).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    handle.shutdown().await.unwrap();
}

/// One series of the Prometheus text: its name, labels and value.
#[derive(Debug)]
struct Series {
    name: String,
    labels: std::collections::BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format: every line is a `# ...` comment or `name{k="v",...} value`.
fn parse_metrics(text: &str) -> Vec<Series> {
    let mut series = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (head, value) = line
            .rsplit_once(' ')
            .expect("a series line ends with its value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of `{line}`"));
        let (name, labels) = match head.split_once('{') {
            None => (head, ""),
            Some((name, rest)) => (name, rest.strip_suffix('}').expect("labels end with }")),
        };
        let labels = if labels.is_empty() {
            Default::default()
        } else {
            labels
                .split(',')
                .map(|pair| {
                    let (key, quoted) = pair.split_once('=').expect("a label is key=\"value\"");
                    let value = quoted
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .expect("a label value is quoted");
                    (key.to_owned(), value.to_owned())
                })
                .collect()
        };
        series.push(Series {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    series
}

/// The value of the series `name` with exactly `labels`, if the server shows it.
async fn series(base: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let response = client()
        .get(format!("{base}/metrics"))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let wanted: std::collections::BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    parse_metrics(&text)
        .into_iter()
        .find(|s| s.name == name && s.labels == wanted)
        .map(|s| s.value)
}

#[tokio::test]
async fn metrics_count_runs_errors_and_latency_per_program_and_step() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    let run = "/v1/programs/echoer/run";
    assert_eq!(
        post(&base, run, READ, json!({"inputs": {"text": "a"}}))
            .await
            .0,
        StatusCode::OK
    );
    let failed = post(&base, run, READ, json!({"inputs": {"text": "boom"}})).await;
    assert_eq!(failed.0, StatusCode::INTERNAL_SERVER_ERROR);
    // A refused request is an error of the program, in no step.
    let refused = post(&base, run, READ, json!({"inputs": {}})).await;
    assert_eq!(refused.0, StatusCode::UNPROCESSABLE_ENTITY);

    let step = [("program", "echoer"), ("step", "echo")];
    let step_failed = [
        ("program", "echoer"),
        ("step", "echo"),
        ("kind", "step_failed"),
    ];
    assert_eq!(
        series(&base, "dspex_step_errors_total", &step_failed).await,
        Some(1.0)
    );
    assert_eq!(
        series(
            &base,
            "dspex_run_errors_total",
            &[("program", "echoer"), ("kind", "step_failed")]
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        series(
            &base,
            "dspex_run_errors_total",
            &[("program", "echoer"), ("kind", "invalid_input")]
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        series(
            &base,
            "dspex_step_errors_total",
            &[
                ("program", "echoer"),
                ("step", "echo"),
                ("kind", "invalid_input")
            ]
        )
        .await,
        None
    );
    assert_eq!(series(&base, "dspex_steps_total", &step).await, Some(1.0));
    assert_eq!(
        series(&base, "dspex_step_duration_seconds_count", &step).await,
        Some(1.0)
    );
    let mut bucket = step.to_vec();
    bucket.push(("le", "+Inf"));
    assert_eq!(
        series(&base, "dspex_step_duration_seconds_bucket", &bucket).await,
        Some(1.0)
    );
    assert_eq!(
        series(
            &base,
            "dspex_run_duration_seconds_count",
            &[("program", "echoer")]
        )
        .await,
        Some(1.0)
    );

    // A step failing in a stream counts the same way.
    let response = client()
        .post(format!("{base}/v1/programs/echoer/stream"))
        .bearer_auth(READ)
        .json(&json!({"inputs": {"text": "boom"}}))
        .send()
        .await
        .unwrap();
    let events = parse_sse(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap().0, "error");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while series(&base, "dspex_step_errors_total", &step_failed).await != Some(2.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream's step error is never counted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn query_strings_that_do_not_read_are_refused() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    let before = variables(&base).await;
    let run = "/v1/programs/echoer/run";
    let body = json!({"inputs": {"text": "a"}});
    for query in [
        "trace=%ZZ",
        "trace=%FF",
        "trace",
        "trace=true&trace=false",
        "trace=true&trace=true",
    ] {
        assert_error(
            &post(&base, &format!("{run}?{query}"), READ, body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            Some("trace"),
        );
    }
    let repeated = post(
        &base,
        &format!("{run}?trace=true&trace=false"),
        READ,
        body.clone(),
    )
    .await;
    assert!(
        repeated.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than once"),
        "{}",
        repeated.1
    );
    assert_error(
        &post(&base, &format!("{run}?%ZZ=1"), READ, body.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("%ZZ"),
    );
    let history = "/v1/programs/echoer/variables/repeat/history";
    for query in ["limit=5&limit=6", "limit=%ZZ", "limit=1&x=2"] {
        let answer = get(&base, &format!("{history}?{query}"), READ).await;
        assert_eq!(
            answer.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            answer.1
        );
        assert_eq!(answer.1["error"]["kind"], "invalid_input", "{}", answer.1);
    }
    assert_error(
        &get(&base, "/v1/programs/echoer/variables?limit=1", READ).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
        Some("limit"),
    );
    // Nothing ran and nothing changed.
    assert_eq!(
        series(&base, "dspex_runs_total", &[("program", "echoer")]).await,
        None
    );
    assert_eq!(variables(&base).await, before);
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_refuses_new_requests_and_lets_running_ones_finish() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    let running = {
        let base = base.clone();
        tokio::spawn(async move {
            post(
                &base,
                "/v1/programs/gated/run",
                READ,
                json!({"inputs": {"text": "in flight"}}),
            )
            .await
        })
    };
    gate.wait_entered(1).await;
    let shutdown = tokio::spawn(handle.shutdown());
    // New requests get 503 once the shutdown has begun.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = post(
            &base,
            "/v1/programs/echoer/run",
            READ,
            json!({"inputs": {"text": "late"}}),
        )
        .await;
        if answer.0 == StatusCode::SERVICE_UNAVAILABLE {
            assert_error(
                &answer,
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                None,
            );
            break;
        }
        assert_eq!(answer.0, StatusCode::OK);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shutdown never began"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !shutdown.is_finished(),
        "the shutdown waits for the running request"
    );
    gate.release.add_permits(1);
    assert_eq!(
        running.await.unwrap(),
        (StatusCode::OK, json!({"outputs": {"done": "in flight"}}))
    );
    shutdown.await.unwrap().unwrap();
    assert!(
        client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err(),
        "stopped listening"
    );
}

#[tokio::test]
async fn a_server_without_token_binds_to_loopback_only() {
    let refused = Server::builder()
        .program("echoer", echoer().await)
        .build()
        .unwrap()
        .bind("0.0.0.0:0")
        .await;
    let message = refused.unwrap_err().to_string();
    assert!(
        message.contains("0.0.0.0") && message.contains("token"),
        "{message}"
    );
    let with_token = Server::builder()
        .program("echoer", echoer().await)
        .token(READ)
        .build()
        .unwrap();
    with_token
        .bind("0.0.0.0:0")
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_builder_refuses_bad_options() {
    let message = |r: Result<Server>| r.err().unwrap().to_string();
    assert!(message(Server::builder().build()).contains("at least one program"));
    assert!(
        message(
            Server::builder()
                .program("a", echoer().await)
                .program("a", echoer().await)
                .build()
        )
        .contains("served twice")
    );
    assert!(message(Server::builder().program("a b", echoer().await).build()).contains("`a b`"));
    assert!(
        message(
            Server::builder()
                .program("a", echoer().await)
                .max_concurrent_runs(0)
                .build()
        )
        .contains("max_concurrent_runs")
    );
    assert!(
        message(
            Server::builder()
                .program("a", echoer().await)
                .token("t")
                .admin_token("t")
                .build()
        )
        .contains("admin_token")
    );
}

/// The OpenAPI document passes `openapi-spec-validator` (pinned in `python/requirements.lock`),
/// run by the project's interpreter (`DSPEX_PYTHON`, else `python3`).
#[tokio::test]
async fn the_openapi_document_is_valid_openapi_3_1() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b).await;
    let (status, openapi) = get(&base, "/openapi.json", READ).await;
    assert_eq!(status, StatusCode::OK);
    handle.shutdown().await.unwrap();

    let python = std::env::var("DSPEX_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = "import json, sys\n\
                  from openapi_spec_validator import OpenAPIV31SpecValidator, validate\n\
                  validate(json.load(sys.stdin), cls=OpenAPIV31SpecValidator)\n\
                  print('valid')";
    let mut child = tokio::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{python} does not start: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, openapi.to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success() && output.stdout.starts_with(b"valid"),
        "openapi-spec-validator refused the document (run ./scripts/python-env and set DSPEX_PYTHON):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_stream_over_the_request_timeout_ends_with_a_timeout_event() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b.request_timeout(Duration::from_millis(300))).await;
    let response = client()
        .post(format!("{base}/v1/programs/gated/stream"))
        .bearer_auth(READ)
        .json(&json!({"inputs": {"text": "slow"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = parse_sse(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names, ["step_started", "error"]);
    assert_eq!(events[1].1["error"]["kind"], "timeout");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_shutdown_stops_at_the_drain_timeout_when_a_run_hangs() {
    let gate = Gate::new();
    let (handle, base) = serve(&gate, |b| b.drain_timeout(Duration::from_millis(200))).await;
    let hanging = {
        let base = base.clone();
        tokio::spawn(async move {
            client()
                .post(format!("{base}/v1/programs/gated/run"))
                .bearer_auth(READ)
                .json(&json!({"inputs": {"text": "never released"}}))
                .send()
                .await
        })
    };
    gate.wait_entered(1).await;
    handle.shutdown().await.unwrap();
    assert!(
        client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err(),
        "stopped listening"
    );
    let hanging = hanging.await.unwrap().unwrap();
    assert_eq!(
        hanging.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "answered at the drain timeout"
    );
    let body: Json = hanging.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "shutting_down");
}
