//! The dashboard's HTTP side (feature `dashboard`), driven by a real HTTP client: signing in
//! and the cookie's scope, tokens never taken from a URL, writes needing an admin session and
//! a same-origin request (and changing nothing when refused), the ring of recent runs at and
//! over its bound, the live stream's bound and events, and a study's plots.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use dspex::eval::{Dataset, Example, metric_fn};
use dspex::prelude::*;
use dspex::serve::dashboard::{MAX_LIVE_STREAMS, MAX_RECENT_RUNS};
use dspex::serve::{Server, ServerHandle};
use dspex::tune::{SearchSpace, Study, Tuner};
use dspex::{Constraints, ProgramBuilder, RunningProgram, Step, VarType, VariableSpec};
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use serde_json::{Value as Json, json};

const READ: &str = "dash-read";
const ADMIN: &str = "dash-admin";
const SCRIPT: &str = "<script>window.pwned = 1</script>";

/// Answers with its parameter `times` as text; fails on `boom`.
struct Count;

impl Module for Count {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        if inputs.get::<&str>("text")? == "boom" {
            return Err(dspex::Error::InvalidOption {
                option: "text".into(),
                message: "boom is refused".into(),
            });
        }
        Ok(Fields::from([(
            "answer",
            params.get::<i64>("times")?.to_string(),
        )]))
    }
}

async fn counter() -> RunningProgram {
    ProgramBuilder::new("counter")
        .signature("text -> answer")
        .variable(
            VariableSpec::new("times", VarType::Integer, 1)
                .with_constraints(Constraints::range(1, 10)),
        )
        .variable(VariableSpec::new("note", VarType::String, SCRIPT))
        .step(Step::native("count", "text -> answer", Count).bind("times"))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap()
}

async fn serve(study: Option<Study>) -> (ServerHandle, String) {
    let mut builder = Server::builder()
        .program("counter", counter().await)
        .token(READ)
        .admin_token(ADMIN);
    if let Some(study) = study {
        builder = builder.study("counting", study);
    }
    let handle = builder.build().unwrap().bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", handle.local_addr());
    (handle, base)
}

/// A client that follows no redirect (the tests read the 303 of signing in).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Posts the sign-in form `fields` with `origin` as the `Origin` header.
async fn post_login(
    client: &reqwest::Client,
    base: &str,
    origin: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    client
        .post(format!("{base}/dashboard/login"))
        .header(ORIGIN, origin)
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// Signs in with `token`; the `Cookie` header value of the session.
async fn login(client: &reqwest::Client, base: &str, token: &str) -> String {
    let response = post_login(client, base, base, &[("token", token)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/dashboard");
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

/// The JSON the dashboard answers at `path` to the session `cookie`.
async fn dashboard_json(client: &reqwest::Client, base: &str, path: &str, cookie: &str) -> Json {
    client
        .get(format!("{base}{path}"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn value_of(client: &reqwest::Client, base: &str, var: &str) -> Json {
    let body: Json = client
        .get(format!("{base}/v1/programs/counter/variables"))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body[var].clone()
}

#[tokio::test]
async fn signing_in_sets_an_http_only_strict_cookie_that_only_the_dashboard_takes() {
    let (handle, base) = serve(None).await;
    let client = client();
    let response = post_login(&client, &base, &base, &[("token", ADMIN)]).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains(ADMIN),
        "the cookie is a session id, not the token"
    );
    let cookie = set_cookie.split(';').next().unwrap();

    let page = client
        .get(format!("{base}/dashboard"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(page.text().await.unwrap().contains("dashboard.js"));
    let overview: Json = dashboard_json(&client, &base, "/dashboard/api/overview", cookie).await;
    assert_eq!(overview["role"], "admin");
    assert_eq!(
        overview["programs"][0]["signature"],
        "text: str -> answer: str"
    );
    let note = &overview["programs"][0]["variables"][1];
    assert_eq!(note["name"], "note");
    assert_eq!(
        note["value"], SCRIPT,
        "the JSON carries the value; the page shows it as text"
    );

    // The /v1 routes take bearer tokens only, never the dashboard's cookie.
    let v1 = client
        .get(format!("{base}/v1/programs"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(v1.status(), StatusCode::UNAUTHORIZED);
    let write = client
        .put(format!("{base}/v1/programs/counter/variables/times"))
        .header(COOKIE, cookie)
        .header(ORIGIN, &base)
        .json(&json!({"value": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::UNAUTHORIZED);

    // A wrong token signs nobody in; the read token signs in a reader.
    let wrong = post_login(&client, &base, &base, &[("token", "guess")]).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("not this server&#39;s")
    );
    let reader = login(&client, &base, READ).await;
    let overview: Json = dashboard_json(&client, &base, "/dashboard/api/overview", &reader).await;
    assert_eq!(overview["role"], "read");
    assert_eq!(overview["can_write"], false);

    // Signing out ends the session.
    let out = client
        .post(format!("{base}/dashboard/logout"))
        .header(COOKIE, cookie)
        .header(ORIGIN, &base)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = client
        .get(format!("{base}/dashboard/api/overview"))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_token_is_never_taken_from_a_url_or_a_bearer_header() {
    let (handle, base) = serve(None).await;
    let client = client();
    let page = client
        .get(format!("{base}/dashboard?token={ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    let text = page.text().await.unwrap();
    assert!(text.contains("takes no query string"), "{text}");
    assert!(
        !text.contains("dashboard.js"),
        "no dashboard for a token in a URL"
    );
    for url in [
        format!("{base}/dashboard/api/overview?token={ADMIN}"),
        format!("{base}/dashboard/api/runs?token={READ}"),
    ] {
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{url}");
    }
    let bearer = client
        .get(format!("{base}/dashboard/api/overview"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::UNAUTHORIZED);
    let page = client
        .get(format!("{base}/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("action=\"/dashboard/login\"")
    );
    let unknown = post_login(
        &client,
        &base,
        &base,
        &[("token", ADMIN), ("next", "/elsewhere")],
    )
    .await;
    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown.headers().get(SET_COOKIE).is_none());
    let cross_site = post_login(&client, &base, "http://evil.example", &[("token", ADMIN)]).await;
    assert_eq!(cross_site.status(), StatusCode::FORBIDDEN);
    assert!(cross_site.headers().get(SET_COOKIE).is_none());
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn writes_need_an_admin_session_and_the_same_origin_and_refused_ones_change_nothing() {
    let (handle, base) = serve(None).await;
    let client = client();
    let admin = login(&client, &base, ADMIN).await;
    let reader = login(&client, &base, READ).await;
    let edit = |cookie: &str, origin: Option<&str>, body: Json| {
        let mut request = client
            .put(format!(
                "{base}/dashboard/api/programs/counter/variables/times"
            ))
            .header(COOKIE, cookie)
            .json(&body);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        request.send()
    };
    let refused = [
        (
            &reader,
            Some(base.as_str()),
            json!({"text": "2"}),
            StatusCode::FORBIDDEN,
        ),
        (&admin, None, json!({"text": "2"}), StatusCode::FORBIDDEN),
        (
            &admin,
            Some("http://evil.example"),
            json!({"text": "2"}),
            StatusCode::FORBIDDEN,
        ),
        (
            &admin,
            Some(base.as_str()),
            json!({"text": "11"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &admin,
            Some(base.as_str()),
            json!({"text": "two"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &admin,
            Some(base.as_str()),
            json!({"text": "2", "expected_version": 7}),
            StatusCode::CONFLICT,
        ),
        (
            &admin,
            Some(base.as_str()),
            json!({"text": "2", "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &admin,
            Some(base.as_str()),
            json!({"expected_version": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &admin,
            Some(base.as_str()),
            json!({"text": 2}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (cookie, origin, body, status) in refused {
        let response = edit(cookie, origin, body.clone()).await.unwrap();
        assert_eq!(response.status(), status, "{body} from {origin:?}");
        let error: Json = response.json().await.unwrap();
        assert!(error["error"]["message"].is_string(), "{error}");
        let times = value_of(&client, &base, "times").await;
        assert_eq!(
            (times["value"].clone(), times["version"].clone()),
            (json!(1), json!(1))
        );
    }
    let over = edit(&admin, Some(&base), json!({"text": "11"}))
        .await
        .unwrap();
    let error: Json = over.json().await.unwrap();
    assert_eq!(
        error["error"]["field"], "times",
        "the error names the field: {error}"
    );

    let saved = edit(
        &admin,
        Some(&base),
        json!({"text": "3", "expected_version": 1}),
    )
    .await
    .unwrap();
    assert_eq!(saved.status(), StatusCode::OK);
    assert_eq!(saved.json::<Json>().await.unwrap()["version"], 2);
    assert_eq!(value_of(&client, &base, "times").await["value"], 3);
    // A text variable takes the text as it is.
    let note = client
        .put(format!(
            "{base}/dashboard/api/programs/counter/variables/note"
        ))
        .header(COOKIE, &admin)
        .header(ORIGIN, &base)
        .json(&json!({"text": "<b>bold</b>"}))
        .send()
        .await
        .unwrap();
    assert_eq!(note.status(), StatusCode::OK);
    assert_eq!(
        value_of(&client, &base, "note").await["value"],
        "<b>bold</b>"
    );

    let rollback = |cookie: &str, origin: &str| {
        client
            .post(format!(
                "{base}/dashboard/api/programs/counter/variables/times/rollback"
            ))
            .header(COOKIE, cookie)
            .header(ORIGIN, origin)
            .json(&json!({"version": 1}))
            .send()
    };
    assert_eq!(
        rollback(&reader, &base).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        rollback(&admin, "http://evil.example")
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(value_of(&client, &base, "times").await["value"], 3);
    let back = rollback(&admin, &base).await.unwrap();
    assert_eq!(back.status(), StatusCode::OK);
    assert_eq!(value_of(&client, &base, "times").await["value"], 1);
    let history: Json = client
        .get(format!(
            "{base}/v1/programs/counter/variables/times/history"
        ))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history[1]["metadata"]["written_by"], "http", "{history}");
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_recent_runs_ring_keeps_the_last_runs_at_and_over_its_bound() {
    let (handle, base) = serve(None).await;
    let client = client();
    let admin = login(&client, &base, ADMIN).await;
    let run = |text: String| {
        client
            .post(format!("{base}/v1/programs/counter/run"))
            .bearer_auth(READ)
            .json(&json!({"inputs": {"text": text}}))
            .send()
    };
    let runs = || async {
        let runs = dashboard_json(&client, &base, "/dashboard/api/runs", &admin).await;
        runs.as_array().unwrap().clone()
    };
    assert_eq!(
        run("boom".into()).await.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let failed = runs().await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["error"]["kind"], "step_failed");
    assert!(
        failed[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("boom is refused")
    );
    for i in 1..MAX_RECENT_RUNS {
        assert_eq!(
            run(format!("run {i}")).await.unwrap().status(),
            StatusCode::OK
        );
    }
    let kept = runs().await;
    assert_eq!(
        kept.len(),
        MAX_RECENT_RUNS,
        "at the bound every run is kept"
    );
    assert_eq!(kept[MAX_RECENT_RUNS - 1]["error"]["kind"], "step_failed");
    assert_eq!(
        run("one more".into()).await.unwrap().status(),
        StatusCode::OK
    );
    let kept = runs().await;
    assert_eq!(
        kept.len(),
        MAX_RECENT_RUNS,
        "over the bound the oldest goes"
    );
    assert!(kept.iter().all(|r| r["error"].is_null()));
    let newest = &kept[0];
    assert_eq!(newest["inputs"]["text"], "one more");
    assert_eq!(newest["outputs"]["answer"], "1");
    assert_eq!(newest["trace"]["steps"][0]["params"]["times"], 1);
    assert!(newest["duration"].as_f64().unwrap() >= 0.0);
    // A streamed run is kept too.
    let stream = client
        .post(format!("{base}/v1/programs/counter/stream"))
        .bearer_auth(READ)
        .json(&json!({"inputs": {"text": "streamed"}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stream.contains("event: finished"), "{stream}");
    assert_eq!(runs().await[0]["inputs"]["text"], "streamed");
    handle.shutdown().await.unwrap();
}

/// Reads `response`'s event stream until an event named `name`, for at most 30 s.
async fn next_event_named(response: reqwest::Response, name: &str) -> bool {
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    let wanted = format!("event: {name}");
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(chunk)) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(&wanted) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

#[tokio::test]
async fn the_live_stream_tells_of_writes_and_runs_and_is_bounded() {
    let (handle, base) = serve(None).await;
    let client = client();
    let admin = login(&client, &base, ADMIN).await;
    let open = || {
        client
            .get(format!("{base}/dashboard/events"))
            .header(COOKIE, &admin)
            .send()
    };
    assert_eq!(
        client
            .get(format!("{base}/dashboard/events"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let mut streams = Vec::new();
    for _ in 0..MAX_LIVE_STREAMS {
        let stream = open().await.unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        streams.push(stream);
    }
    let over = open().await.unwrap();
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.json::<Json>().await.unwrap()["error"]["kind"], "busy");
    drop(streams);
    // The places come back once the streams are gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let stream = loop {
        let stream = open().await.unwrap();
        if stream.status() == StatusCode::OK {
            break stream;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the places were not freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let write = client
        .put(format!("{base}/v1/programs/counter/variables/times"))
        .bearer_auth(ADMIN)
        .json(&json!({"value": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::OK);
    assert!(
        next_event_named(stream, "variables").await,
        "a write is told"
    );
    let stream = open().await.unwrap();
    let ran = client
        .post(format!("{base}/v1/programs/counter/run"))
        .bearer_auth(READ)
        .json(&json!({"inputs": {"text": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(ran.status(), StatusCode::OK);
    assert!(next_event_named(stream, "runs").await, "a run is told");
    // A shutdown ends the open streams rather than waiting for them.
    let stream = open().await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), handle.shutdown())
        .await
        .expect("the shutdown does not wait for the live stream")
        .unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(30), stream.text()).await;
    assert!(rest.is_ok(), "the stream ended with the server");
}

/// Scores small answers best.
fn small(_: &Example, prediction: &Fields) -> f64 {
    1.0 / prediction
        .get::<&str>("answer")
        .unwrap()
        .parse::<f64>()
        .unwrap()
}

/// Tunes `program` in `study` until it has `trials` trials.
async fn tune(program: &RunningProgram, study: &Study, trials: usize) {
    let dev = Dataset::from_examples([Example::new().with_input("text", "t")]);
    Tuner::new(SearchSpace::of(program).unwrap(), metric_fn("small", small))
        .trials(trials)
        .seed(7)
        .study(study.clone())
        .run(program, &dev)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_study_shows_its_trials_the_best_and_one_point_per_trial() {
    const TRIALS: usize = 5;
    let program = counter().await;
    let tuned = Study::memory();
    tune(&program, &tuned, TRIALS).await;
    let (handle, base) = serve(Some(tuned.clone())).await;
    let client = client();
    let reader = login(&client, &base, READ).await;
    let studies = dashboard_json(&client, &base, "/dashboard/api/studies", &reader).await;
    let study = &studies[0];
    assert_eq!(study["name"], "counting");
    assert_eq!(study["direction"], "maximize");
    let trials = study["trials"].as_array().unwrap();
    assert_eq!(trials.len(), TRIALS);
    let best = study["best"].as_u64().unwrap() as usize;
    let top = trials
        .iter()
        .map(|t| t["score"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(
        trials[best]["score"].as_f64().unwrap(),
        top,
        "the best scores highest"
    );
    let score = study["plots"]["score"].as_str().unwrap();
    assert_eq!(
        score.matches("<circle").count(),
        TRIALS,
        "one point per trial"
    );
    let variables = study["plots"]["variables"].as_array().unwrap();
    assert_eq!(variables[0]["name"], "times");
    assert_eq!(
        variables[0]["svg"]
            .as_str()
            .unwrap()
            .matches("<circle")
            .count(),
        TRIALS
    );
    // A trial added while the page is open is told to it.
    let stream = client
        .get(format!("{base}/dashboard/events"))
        .header(COOKIE, &reader)
        .send()
        .await
        .unwrap();
    tune(&program, &tuned, TRIALS + 1).await;
    assert!(
        next_event_named(stream, "studies").await,
        "a new trial is told"
    );
    handle.shutdown().await.unwrap();
}
