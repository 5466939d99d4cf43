//! Faults of a shared session, each against a private redis-server of its own: Redis
//! unreachable at start and in the middle of a run (errors name the URL, nothing changes,
//! reads keep the last state, the context recovers), acknowledged writes surviving a Redis
//! crash with an append-only file, a Redis that comes back empty (watchers are told they
//! missed changes), sessions that expire unless a process renews them, a Redis restart under
//! four writers (each failed write says whether it may have been applied, and is right), and
//! a Redis that stops answering (a write of unknown outcome that was applied after all).

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

    // Every write fails, names the URL, says whether it was applied, and changes nothing
    // here. Only the first one can have been sent (on the connection Redis had, if this
    // process had not noticed yet); the others know they were not applied.
    for attempt in 0..3 {
        let err = n.set(2).unwrap_err();
        let message = err.to_string();
        match &err {
            Error::OutcomeUnknown { .. } if attempt == 0 => {
                assert!(message.contains("may have been applied"), "{message}");
            }
            Error::Shared { .. } => {
                assert!(message.contains("the write was not applied"), "{message}");
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
        assert!(message.contains(&url), "attempt {attempt}: {message}");
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

/// The remaining TTL of each of a session's keys (`-2`: the key does not exist, `-1`: it has
/// no TTL).
fn ttls(client: &redis::Client, keys: &dspex::state::shared::SessionKeys) -> Vec<(String, i64)> {
    let mut conn = client.get_connection().unwrap();
    [
        &keys.vars,
        &keys.heads,
        &keys.meta,
        &keys.history,
        &keys.changes,
    ]
    .into_iter()
    .map(|k| {
        let ttl: i64 = redis::cmd("PTTL").arg(k).query(&mut conn).unwrap();
        (k.clone(), ttl)
    })
    .collect()
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
    let n = ctx.defvariable::<i64>("n", 5, Constraints::none()).unwrap();
    let client = redis::Client::open(url.as_str()).unwrap();
    let keys = ctx.shared_state().unwrap().keys().clone();
    let all_alive = |ttls: &[(String, i64)]| {
        let ms = i64::try_from(ttl.as_millis()).unwrap();
        ttls.iter().all(|(_, t)| (1..=ms).contains(t))
    };
    // Three TTLs pass with writes (which renew no TTL themselves), then three without: the
    // open context's heartbeat keeps every key, each with a TTL.
    let writing_until = std::time::Instant::now() + ttl * 3;
    while std::time::Instant::now() < writing_until {
        n.update(|v| v + 1).unwrap();
        let now = ttls(&client, &keys);
        assert!(all_alive(&now), "{now:?}");
    }
    tokio::time::sleep(ttl * 3).await;
    let now = ttls(&client, &keys);
    assert!(all_alive(&now), "{now:?}");
    // Keys a write creates get the TTL: deleting the only variable empties (removes) the
    // records, heads and history; a registration creates them again.
    ctx.delete("n").unwrap();
    ctx.defvariable::<i64>("m", 1, Constraints::none()).unwrap();
    let now = ttls(&client, &keys);
    assert!(all_alive(&now), "{now:?}");
    let other = Context::builder()
        .shared_with(config.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(other.get::<i64>("m").unwrap(), 1);
    drop(other);
    // Nobody renews it any more: every key expires, and opening it again starts it empty.
    drop((n, ctx));
    eventually("the session expires", async || {
        ttls(&client, &keys).iter().all(|(_, t)| *t == -2)
    })
    .await;
    let fresh = Context::builder()
        .shared_with(config.clone())
        .build()
        .await
        .unwrap();
    assert!(!fresh.exists("m"));
    // A process that dies right after its first writes leaves nothing behind either.
    fresh
        .defvariable::<i64>("k", 1, Constraints::none())
        .unwrap();
    fresh.set("k", 2).unwrap();
    drop(fresh);
    eventually("the new life expires", async || {
        ttls(&client, &keys).iter().all(|(_, t)| *t == -2)
    })
    .await;
}

/// What one writer saw of one write: when it started, and how it ended.
#[derive(Debug)]
enum Outcome {
    Applied,
    NotApplied(String),
    Unknown(String),
}

/// Each writer (a context of its own, as a process would have) increments `n` until `stop`,
/// recording each write's start and outcome.
fn increment_until(
    n: &dspex::Var<i64>,
    stop: &std::sync::atomic::AtomicBool,
    log: &std::sync::Mutex<Vec<(std::time::Instant, Outcome)>>,
) {
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        let started = std::time::Instant::now();
        let outcome = match n.update(|v| v + 1) {
            Ok(_) => Outcome::Applied,
            Err(Error::OutcomeUnknown { message, .. }) => Outcome::Unknown(message),
            Err(Error::Shared { message, .. }) => Outcome::NotApplied(message),
            Err(other) => panic!("a write failed with neither kind: {other:?}"),
        };
        let failed = !matches!(outcome, Outcome::Applied);
        log.lock().unwrap().push((started, outcome));
        if failed {
            // Redis is away: do not spin on it.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_four_writers_fails_at_most_one_write_each_and_says_if_it_applied() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    const WRITERS: usize = 4;
    let mut redis = start(RedisOptions { append_only: true }).await;
    let url = redis.url();
    let mut writers = Vec::new();
    for _ in 0..WRITERS {
        let ctx = shared(&url, "restart").await.unwrap();
        let n = ctx.defvariable::<i64>("n", 0, Constraints::none()).unwrap();
        writers.push((ctx, n, Arc::new(Mutex::new(Vec::new()))));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = writers
        .iter()
        .map(|(_, n, log)| {
            let (n, log, stop) = (n.clone(), Arc::clone(log), Arc::clone(&stop));
            std::thread::spawn(move || increment_until(&n, &stop, &log))
        })
        .collect();
    let applied_since = |log: &Mutex<Vec<(std::time::Instant, Outcome)>>, t: std::time::Instant| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|(at, o)| *at >= t && matches!(o, Outcome::Applied))
            .count()
    };
    let began = std::time::Instant::now();
    eventually("every writer wrote", async || {
        writers
            .iter()
            .all(|(_, _, log)| applied_since(log, began) >= 20)
    })
    .await;

    // SIGKILL under load, then the same server again on its port and append-only file.
    let mut redis = tokio::task::spawn_blocking(move || redis.kill().map(|()| redis))
        .await
        .unwrap()
        .unwrap();
    let killed = std::time::Instant::now();
    eventually("every writer saw Redis go", async || {
        writers.iter().all(|(_, _, log)| {
            log.lock()
                .unwrap()
                .iter()
                .any(|(at, o)| *at >= killed && !matches!(o, Outcome::Applied))
        })
    })
    .await;
    let redis = tokio::task::spawn_blocking(move || redis.restart().map(|()| redis))
        .await
        .unwrap()
        .unwrap();
    let back = std::time::Instant::now();
    eventually("every writer writes again", async || {
        writers
            .iter()
            .all(|(_, _, log)| applied_since(log, back) >= 20)
    })
    .await;
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }

    let (mut applied, mut unknown, mut not_applied) = (0, 0, 0);
    let mut failed_after = Vec::new();
    for (i, (_, _, log)) in writers.iter().enumerate() {
        let log = log.lock().unwrap();
        let failed_after_back: Vec<_> = log
            .iter()
            .filter(|(at, o)| *at >= back && !matches!(o, Outcome::Applied))
            .collect();
        assert!(
            failed_after_back.len() <= 1,
            "writer {i} failed {} writes after Redis was back: {failed_after_back:?}",
            failed_after_back.len()
        );
        failed_after.push(failed_after_back.len());
        for (_, outcome) in log.iter() {
            match outcome {
                Outcome::Applied => applied += 1,
                Outcome::Unknown(message) => {
                    unknown += 1;
                    assert!(message.contains("may have been applied"), "{message}");
                    assert!(message.contains(&url), "{message}");
                }
                Outcome::NotApplied(message) => {
                    not_applied += 1;
                    assert!(message.contains("not applied"), "{message}");
                    assert!(message.contains(&url), "{message}");
                }
            }
        }
    }
    // Every acknowledged write is in Redis; no write reported as not applied is.
    let total = shared(&url, "restart")
        .await
        .unwrap()
        .get::<i64>("n")
        .unwrap();
    eprintln!(
        "{applied} writes applied, {unknown} of unknown outcome, {not_applied} not applied; n = {total}; failed writes after Redis was back, per writer: {failed_after:?}"
    );
    assert!(
        (applied..=applied + unknown).contains(&total),
        "n = {total}, {applied} writes acknowledged, {unknown} of unknown outcome"
    );
    // Each writer's mirror caught up with the session.
    for (ctx, _, _) in &writers {
        eventually("the mirror catches up", async || {
            ctx.get::<i64>("n").ok() == Some(total)
        })
        .await;
    }
    drop(writers);
    drop(redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_redis_that_stopped_answering_may_have_been_applied() {
    let redis = start(RedisOptions::default()).await;
    let url = redis.url();
    let ctx = shared(&url, "frozen").await.unwrap();
    let n = ctx.defvariable::<i64>("n", 0, Constraints::none()).unwrap();
    n.set(1).unwrap();
    // Redis keeps the connection but answers nothing: the write is sent, its reply never
    // comes within the I/O timeout.
    redis.pause().unwrap();
    let writer = n.clone();
    let err = tokio::task::spawn_blocking(move || writer.set(2))
        .await
        .unwrap()
        .unwrap_err();
    let Error::OutcomeUnknown { message, .. } = &err else {
        panic!("expected an unknown outcome, got {err:?}");
    };
    assert!(message.contains("may have been applied"), "{message}");
    assert!(message.contains(&url), "{message}");
    // Nothing changed here yet.
    assert_eq!(n.get().unwrap(), 1);
    // Redis wakes up and runs the write it had received: it was applied after all, and
    // the stream brings it to the mirror.
    redis.resume().unwrap();
    eventually("the write shows up", async || n.get().ok() == Some(2)).await;
    assert_eq!(n.set(3).unwrap(), 4);
}
