//! `/readyz` of a served program whose variables live in a shared session: ready while its
//! Redis (a private redis-server) answers, 503 naming the program and the problem once Redis
//! is gone, and ready again when Redis is back.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use dspex::prelude::*;
use dspex::serve::Server;
use dspex_test_redis::{RedisOptions, RedisServer};
use reqwest::StatusCode;
use serde_json::{Value as Json, json};

dspex_program! {
    /// Answers with the scripted LM.
    pub program Qa: "question -> answer" {
        chain { answer: native Predict("question -> answer") }
    }
}

/// `GET /readyz`.
async fn readyz(base: &str) -> (StatusCode, Json) {
    let response = reqwest::get(format!("{base}/readyz")).await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Polls `/readyz` until it answers `status`, and returns that answer.
async fn readyz_until(base: &str, status: StatusCode) -> Json {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (now, body) = readyz(base).await;
        if now == status {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz never answered {status}; last {now} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_shared_session_is_unreachable_and_200_once_it_is_back() {
    let mut redis =
        tokio::task::spawn_blocking(|| RedisServer::start_with(RedisOptions { append_only: true }))
            .await
            .unwrap()
            .expect("a private redis-server starts");
    let ctx = Context::builder()
        .shared(redis.url())
        .session("serve-ready")
        .lm(LmConfig::scripted().answer([("answer", "Paris")]))
        .build()
        .await
        .unwrap();
    let qa = Qa::attach(&ctx).await.unwrap();
    let handle = Server::builder()
        .program("qa", qa)
        .build()
        .unwrap()
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let base = format!("http://{}", handle.local_addr());
    assert_eq!(
        readyz(&base).await,
        (StatusCode::OK, json!({"status": "ready"}))
    );

    redis = tokio::task::spawn_blocking(move || redis.kill().map(|()| redis))
        .await
        .unwrap()
        .unwrap();
    let body = readyz_until(&base, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(
        body,
        json!({
            "status": "not_ready",
            "problems": ["program `qa`: its Redis session is not connected"],
        })
    );
    // Alive all the same.
    let alive = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(alive.status(), StatusCode::OK);

    let _redis = tokio::task::spawn_blocking(move || redis.restart().map(|()| redis))
        .await
        .unwrap()
        .unwrap();
    let body = readyz_until(&base, StatusCode::OK).await;
    assert_eq!(body, json!({"status": "ready"}));
    // And it serves runs again.
    let run = reqwest::Client::new()
        .post(format!("{base}/v1/programs/qa/run"))
        .json(&json!({"inputs": {"question": "Capital of France?"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), StatusCode::OK);
    assert_eq!(
        run.json::<Json>().await.unwrap()["outputs"],
        json!({"answer": "Paris"})
    );
    handle.shutdown().await.unwrap();
}
