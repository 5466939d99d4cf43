//! The conformance suite on `SharedState` (each test on its own session of a private
//! redis-server this test binary starts) and on contexts built shared: the very same tests as
//! `conformance_local.rs` and `conformance_bridged.rs`; then how the processes of a session are
//! notified of each other's writes.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use dspex::state::{Key, SharedConfig, SharedState, StateProvider};
use dspex::{
    BackendKind, Context, SetOptions, Source, Value, VarType, VariableSpec, WatchEvent,
    WatchOptions, Watcher,
};
use dspex_test_redis::RedisServer;

mod conformance;

/// One server for this test binary (stopped when the binary exits); sessions keep tests apart.
static REDIS: LazyLock<RedisServer> =
    LazyLock::new(|| RedisServer::start().expect("a private redis-server starts"));

/// A session name no other test of this binary uses.
fn session() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("conformance-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

struct Shared;

impl conformance::Fixture for Shared {
    async fn provider(&self) -> Arc<dyn StateProvider> {
        let config = SharedConfig::new(REDIS.url(), session());
        let state = tokio::task::spawn_blocking(move || SharedState::open(config))
            .await
            .expect("the open does not panic")
            .expect("a shared session opens");
        assert_eq!(state.kind(), BackendKind::Shared);
        Arc::new(state)
    }

    /// Separate `SharedState`s on one session: separate connections, mirrors and readers, as
    /// separate processes have.
    async fn handles(&self, n: usize) -> Vec<Arc<dyn StateProvider>> {
        let name = session();
        let mut handles: Vec<Arc<dyn StateProvider>> = Vec::new();
        for _ in 0..n {
            let config = SharedConfig::new(REDIS.url(), name.clone());
            let state = tokio::task::spawn_blocking(move || SharedState::open(config))
                .await
                .expect("the open does not panic")
                .expect("a shared session opens");
            handles.push(Arc::new(state));
        }
        handles
    }

    async fn context(&self) -> Context {
        let ctx = Context::builder()
            .shared(REDIS.url())
            .session(session())
            .build()
            .await
            .expect("a shared context builds");
        assert_eq!(ctx.backend().kind, BackendKind::Shared);
        ctx
    }
}

conformance_suite!(Shared);

// Notices: how the processes of a session learn of each other's writes.

/// Opens `n` `SharedState`s on one new session (separate processes as far as Redis can tell)
/// and waits until each is a member of it (notified of the others' writes).
fn members(n: usize) -> Vec<SharedState> {
    let name = session();
    let states: Vec<SharedState> = (0..n)
        .map(|_| SharedState::open(SharedConfig::new(REDIS.url(), name.clone())).unwrap())
        .collect();
    let client = redis::Client::open(REDIS.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let meta = states[0].keys().meta.clone();
    poll(|| {
        let fields: Vec<String> = redis::cmd("HKEYS").arg(&meta).query(&mut conn).unwrap();
        fields.iter().filter(|f| f.starts_with("m:")).count() == n
    });
    states
}

/// Polls `done` until it holds (at most 20 s).
fn poll(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "the condition never held");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The watcher's next event (at most 20 s).
fn next_event(watcher: &mut Watcher) -> Option<WatchEvent> {
    let mut event = None;
    poll(|| {
        event = watcher.try_recv();
        event.is_some()
    });
    event
}

fn version(state: &SharedState, name: &str) -> u64 {
    let mut version = 0;
    let _ = state.read(Key::Name(name), &mut |r| version = r.version);
    version
}

#[test]
fn a_write_notifies_every_other_process_and_never_the_writer() {
    let states = members(3);
    let (a, b, c) = (&states[0], &states[1], &states[2]);
    a.register(VariableSpec::new("n", VarType::Integer, 0), Source::Rust)
        .unwrap();
    poll(|| version(b, "n") == 1 && version(c, "n") == 1);
    let before: Vec<u64> = states.iter().map(SharedState::notices_received).collect();
    for i in 1..=50 {
        a.set(
            Key::Name("n"),
            Value::Integer(i),
            &SetOptions::default(),
            Source::Rust,
        )
        .unwrap();
    }
    poll(|| version(b, "n") == 51 && version(c, "n") == 51);
    // One notice per write to each other process; none to the writer.
    assert_eq!(a.notices_received(), before[0]);
    assert_eq!(b.notices_received(), before[1] + 50);
    assert_eq!(c.notices_received(), before[2] + 50);
    for _ in 0..10 {
        b.update(
            Key::Name("n"),
            &mut |v: &Value| Ok(Value::Integer(v.as_i64().unwrap() + 1)),
            Source::Rust,
        )
        .unwrap();
    }
    poll(|| version(a, "n") == 61 && version(c, "n") == 61);
    assert_eq!(a.notices_received(), before[0] + 10);
    assert_eq!(b.notices_received(), before[1] + 50);
    assert_eq!(c.notices_received(), before[2] + 60);
    // A process that closes the session is no longer a member.
    let meta = a.keys().meta.clone();
    drop(states);
    let mut conn = redis::Client::open(REDIS.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let fields: Vec<String> = redis::cmd("HKEYS").arg(&meta).query(&mut conn).unwrap();
    assert!(!fields.iter().any(|f| f.starts_with("m:")), "{fields:?}");
    assert!(!fields.iter().any(|f| f == "members"), "{fields:?}");
}

/// The members a write notifies: the heartbeat drops those that lapsed and lists the others,
/// and each listed member but the writer gets every write's changes on its channel.
#[test]
fn the_heartbeat_drops_lapsed_members_and_writes_notify_the_listed_ones() {
    let a = SharedState::open(
        SharedConfig::new(REDIS.url(), session()).heartbeat(Duration::from_millis(50)),
    )
    .unwrap();
    let client = redis::Client::open(REDIS.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let meta = a.keys().meta.clone();
    let tag = meta.strip_suffix("meta").unwrap().to_owned();
    // One member that lapsed long ago, one that lapses far in the future (Unix ms).
    let _: () = redis::cmd("HSET")
        .arg(&meta)
        .arg("m:gone")
        .arg(1)
        .arg("m:far")
        .arg(u64::MAX / 4)
        .query(&mut conn)
        .unwrap();
    let mut listed = Vec::new();
    poll(|| {
        let members: Option<String> = redis::cmd("HGET")
            .arg(&meta)
            .arg("members")
            .query(&mut conn)
            .unwrap();
        listed = members
            .unwrap_or_default()
            .split(' ')
            .map(str::to_owned)
            .collect();
        listed.len() == 2 && listed.iter().any(|m| m == "far")
    });
    assert!(!listed.iter().any(|m| m == "gone"), "{listed:?}");
    let fields: Vec<String> = redis::cmd("HKEYS").arg(&meta).query(&mut conn).unwrap();
    assert!(!fields.iter().any(|f| f == "m:gone"), "{fields:?}");
    assert!(fields.iter().any(|f| f == "m:far"), "{fields:?}");
    // `far` is sent the write's changes: the epoch, the first change's number, the change.
    let mut sub = client.get_connection().unwrap();
    sub.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut pubsub = sub.as_pubsub();
    pubsub.subscribe(format!("{tag}to:far")).unwrap();
    a.register(VariableSpec::new("n", VarType::Integer, 0), Source::Rust)
        .unwrap();
    let payload: Vec<u8> = pubsub.get_message().unwrap().get_payload().unwrap();
    let text = String::from_utf8_lossy(&payload);
    let mut lines = text.splitn(3, '\n');
    let epoch: String = redis::cmd("HGET")
        .arg(&meta)
        .arg("epoch")
        .query(&mut conn)
        .unwrap();
    assert_eq!(lines.next(), Some(epoch.as_str()));
    let seq: u64 = redis::cmd("HGET")
        .arg(&meta)
        .arg("seq")
        .query(&mut conn)
        .unwrap();
    assert_eq!(lines.next(), Some(seq.to_string().as_str()));
    assert!(lines.next().unwrap().starts_with("registered "), "{text}");
    // The writer itself was not notified.
    assert_eq!(a.notices_received(), 0);
}

#[test]
fn every_process_sees_every_write_in_the_sessions_order() {
    const WRITES: i64 = 200;
    let states = Arc::new(members(3));
    states[0]
        .register(VariableSpec::new("x", VarType::Integer, 0), Source::Rust)
        .unwrap();
    poll(|| states.iter().all(|s| version(s, "x") == 1));
    let mut watchers: Vec<_> = states
        .iter()
        .map(|s| s.watch(&["x"], WatchOptions::default()).unwrap())
        .collect();
    // Two processes increment at once (their own writes and the other's interleave, and a
    // notice often comes while the process's own write is in flight); the third only watches.
    let writers: Vec<_> = (0..2)
        .map(|i| {
            let states = Arc::clone(&states);
            std::thread::spawn(move || {
                for _ in 0..WRITES {
                    states[i]
                        .update(
                            Key::Name("x"),
                            &mut |v: &Value| Ok(Value::Integer(v.as_i64().unwrap() + 1)),
                            Source::Rust,
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let last = 1 + 2 * WRITES as u64;
    for (i, watcher) in watchers.iter_mut().enumerate() {
        let mut expected = 2;
        while expected <= last {
            match next_event(watcher) {
                Some(WatchEvent::Updated(c)) => {
                    assert_eq!(
                        c.version, expected,
                        "process {i}: versions in the session's order"
                    );
                    assert_eq!(c.new, Value::Integer(expected as i64 - 1));
                    assert_eq!(c.old, Value::Integer(expected as i64 - 2));
                    expected += 1;
                }
                other => panic!("process {i}: {other:?}"),
            }
        }
    }
    assert!(states.iter().all(|s| version(s, "x") == last));
}
