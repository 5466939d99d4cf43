//! Faults of a shared session, each against a private redis-server of its own: Redis
//! unreachable at start and in the middle of a run (errors name the URL, nothing changes,
//! reads keep the last state, the context recovers), acknowledged writes surviving a Redis
//! crash with an append-only file, a Redis that comes back empty (watchers are told they
//! missed changes), and sessions that expire unless a process renews them.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

mod bridge_common;

use std::time::Duration;

use bridge_common::eventually;
use dspex::state::SharedConfig;
use dspex::{BackendKind, Constraints, Context, Error, WatchEvent};
use dspex_test_redis::{RedisOptions, RedisServer};

async fn shared(url: &str, session: &str) -> dspex::Result<Context> {
    Context::builder()
        .shared(url)
        .session(session)
        .build()
        .await
}

fn free_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("redis://127.0.0.1:{port}/0")
}

/// Kills the server (SIGKILL) and starts it again on its port and directory.
async fn crash_and_restart(mut redis: RedisServer) -> RedisServer {
    tokio::task::spawn_blocking(move || {
        redis.kill()?;
        redis.restart().map(|()| redis)
    })
    .await
    .unwrap()
    .expect("the server restarts")
}

async fn start(options: RedisOptions) -> RedisServer {
    tokio::task::spawn_blocking(move || RedisServer::start_with(options))
        .await
        .unwrap()
        .expect("a private redis-server starts")
}

#[tokio::test]
async fn unreachable_at_start_names_the_url_and_creates_nothing() {
    let url = free_url();
    let err = shared(&url, "s").await.unwrap_err();
    assert!(matches!(err, Error::Shared { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("shared state: cannot reach Redis at {url}")
    );
    // A password never shows in a message.
    let secret = url.replace("redis://", "redis://app:hunter2@");
    let err = shared(&secret, "s").await.unwrap_err();
    assert!(!err.report().contains("hunter2"), "{}", err.report());
    assert!(
        err.to_string().contains("redis://app:***@127.0.0.1:"),
        "{err}"
    );
    // A malformed URL, and settings out of bounds, are refused before any connection.
    let err = shared("http://nowhere", "s").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("shared state: invalid Redis URL `http://nowhere`"),
        "{err}"
    );
    let err = shared(&url, "bad name").await.unwrap_err();
    assert!(err.to_string().starts_with("session name: "), "{err}");
    let err = Context::builder().shared(&url).build().await.unwrap_err();
    assert!(err.to_string().contains("add `.session(name)`"), "{err}");
    let err = Context::builder().session("s").build().await.unwrap_err();
    assert!(err.to_string().contains("add `.shared(url)`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_mid_run_fails_writes_keeps_reads_and_recovers() {
    let mut redis = start(RedisOptions { append_only: true }).await;
    let url = redis.url();
    let ctx = shared(&url, "mid-run").await.unwrap();
    let n = ctx.defvariable::<i64>("n", 0, Constraints::none()).unwrap();
    n.set(1).unwrap();
    let mut watcher = n.watch().unwrap();
    redis.kill().unwrap();

    // Every write fails, names the URL, and changes nothing here.
    for attempt in 0..3 {
        let err = n.set(2).unwrap_err();
        assert!(matches!(err, Error::Shared { .. }), "{err:?}");
        assert!(err.to_string().contains(&url), "attempt {attempt}: {err}");
        assert_eq!(n.get().unwrap(), 1);
        assert_eq!(n.record().unwrap().version, 2);
    }
    assert!(
        ctx.register(dspex::VariableSpec::new("m", dspex::VarType::Integer, 0))
            .is_err()
    );
    assert!(!ctx.exists("m"));
    let state = ctx.shared_state().unwrap();
    eventually("the reader notices", async || !state.is_connected()).await;
    // Reads keep serving the last state seen.
    assert_eq!(ctx.get::<i64>("n").unwrap(), 1);

    // Redis comes back with its data: the context reconnects and writes work again.
    let mut redis = tokio::task::spawn_blocking(move || redis.restart().map(|()| redis))
        .await
        .unwrap()
        .unwrap();
    eventually("the reader reconnects", async || state.is_connected()).await;
    assert_eq!(n.set(3).unwrap(), 3);
    // Another process writes; this one sees it, in order, and missed nothing.
    let other = shared(&url, "mid-run").await.unwrap();
    other.set("n", 4).unwrap();
    for want in [3, 4] {
        match tokio::time::timeout(Duration::from_secs(30), watcher.recv()).await {
            Ok(Some(WatchEvent::Updated(c))) => assert_eq!(c.new.as_i64(), Some(want)),
            other => panic!("expected {want}, got {other:?}"),
        }
    }
    eventually("the read sees 4", async || n.get().ok() == Some(4)).await;
    drop((other, ctx));
    tokio::task::spawn_blocking(move || redis.kill())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_comes_back_empty_tells_watchers_they_missed_changes() {
    let redis = start(RedisOptions::default()).await;
    let url = redis.url();
    let ctx = shared(&url, "lost").await.unwrap();
    let n = ctx.defvariable::<i64>("n", 0, Constraints::none()).unwrap();
    n.set(1).unwrap();
    let mut watcher = ctx.watch(&[]).unwrap();
    let state = ctx.shared_state().unwrap();
    // No persistence: the restart loses the session.
    let redis = crash_and_restart(redis).await;
    match tokio::time::timeout(Duration::from_secs(30), watcher.recv()).await {
        Ok(Some(WatchEvent::Lagged { missed })) => assert!(missed >= 1),
        other => panic!("expected a lag report, got {other:?}"),
    }
    // The mirror reloaded the session as Redis holds it now: empty.
    assert!(!ctx.exists("n"));
    assert!(state.is_connected());
    assert!(matches!(n.get(), Err(Error::NotFound { .. })));
    // The context works on the session's new life.
    ctx.defvariable::<i64>("n", 7, Constraints::none()).unwrap();
    assert_eq!(
        shared(&url, "lost").await.unwrap().get::<i64>("n").unwrap(),
        7
    );
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_redis_crash_with_an_append_only_file() {
    let redis = start(RedisOptions { append_only: true }).await;
    let url = redis.url();
    let ctx = shared(&url, "durable").await.unwrap();
    let n = ctx.defvariable::<i64>("n", 0, Constraints::none()).unwrap();
    for i in 1..=100 {
        n.set(i).unwrap();
    }
    ctx.update_many([("n", dspex::Value::from(101))]).unwrap();
    drop((n, ctx));
    // SIGKILL right after the last acknowledged write: no shutdown, no final save.
    let redis = crash_and_restart(redis).await;
    let ctx = shared(&url, "durable").await.unwrap();
    assert_eq!(ctx.get::<i64>("n").unwrap(), 101);
    assert_eq!(ctx.record("n").unwrap().version, 102);
    assert_eq!(ctx.backend().kind, BackendKind::Shared);
    // Its stream survived too: a new write continues it.
    assert_eq!(ctx.set("n", 102).unwrap(), 103);
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_unless_a_process_renews_them() {
    let redis = start(RedisOptions::default()).await;
    let url = redis.url();
    let ttl = Duration::from_secs(1);
    let config = SharedConfig::new(&url, "short").ttl(ttl);
    assert_eq!(config.heartbeat_interval(), ttl / 3);
    let ctx = Context::builder()
        .shared_with(config.clone())
        .build()
        .await
        .unwrap();
    ctx.defvariable::<i64>("n", 5, Constraints::none()).unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let keys = ctx.shared_state().unwrap().keys().clone();
    let exists = move || -> bool {
        let mut conn = client.get_connection().unwrap();
        redis::cmd("EXISTS")
            .arg(&keys.vars)
            .query::<i64>(&mut conn)
            .unwrap()
            == 1
    };
    // Three TTLs pass without a write: the open context's heartbeat keeps the session.
    tokio::time::sleep(ttl * 3).await;
    assert!(exists());
    let other = Context::builder()
        .shared_with(config.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(other.get::<i64>("n").unwrap(), 5);
    drop(other);
    // Nobody renews it any more: it expires, and opening it again starts it empty.
    drop(ctx);
    let check = exists.clone();
    eventually("the session expires", async || !check()).await;
    let fresh = Context::builder()
        .shared_with(config)
        .build()
        .await
        .unwrap();
    assert!(!fresh.exists("n"));
}
