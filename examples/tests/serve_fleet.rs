//! The `serve` example as a fleet: two server processes attached to one shared Redis session
//! (the project's test Redis) serve the same variables, so a PUT on one is what the other's
//! next run uses; SIGTERM stops each gracefully.

mod support;

use std::time::Duration;

use dspex_test_redis::RedisServer;
use serde_json::{Value as Json, json};
use support::{ADMIN, READ, start, terminate};

/// The temperature the next run of the server at `base` uses, as its trace shows it.
async fn temperature_of_a_run(client: &reqwest::Client, base: &str) -> Json {
    let url = format!("{base}/v1/programs/qa/run?trace=true");
    let body = support::run(client, url, READ, json!({"question": "Why Rust?"})).await;
    body["trace"]["steps"][0]["params"]["temperature"].clone()
}

#[tokio::test]
async fn a_put_on_one_server_is_what_the_others_next_run_uses() {
    let redis = RedisServer::start().expect("redis-server starts");
    let session = format!("serve-fleet-{}", std::process::id());
    let (first, a) = start(&redis.url(), &session).await;
    let (second, b) = start(&redis.url(), &session).await;
    let client = reqwest::Client::new();
    assert_eq!(temperature_of_a_run(&client, &b).await, json!(0.2));

    let response = client
        .put(format!("{a}/v1/programs/qa/variables/temperature"))
        .bearer_auth(ADMIN)
        .json(&json!({"value": 1.5}))
        .send()
        .await
        .expect("the PUT answers");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(
        response.json::<Json>().await.expect("JSON"),
        json!({"version": 2})
    );

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while temperature_of_a_run(&client, &b).await != json!(1.5) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the second server never used the write"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let variables: Json = client
        .get(format!("{b}/v1/programs/qa/variables"))
        .bearer_auth(READ)
        .send()
        .await
        .expect("the variables answer")
        .json()
        .await
        .expect("JSON");
    assert_eq!(variables["temperature"]["version"], 2);

    terminate(first).await;
    terminate(second).await;
}
