//! Several OS processes on one shared session: real `shared_peer` processes and this test
//! process, on a private redis-server. Writes are seen by the other processes' reads and
//! watchers, compare-and-set conflicts cross processes, 4 processes x 2,500 increments end at
//! exactly 10,000, a process killed mid-write leaves the session consistent, and a write from
//! Python through one process's bridge reaches another process's Rust watcher and Python side.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dspex::state::shared::SessionKeys;
use dspex::wire::proto;
use dspex::{
    BackendKind, Constraints, Context, Fields, ProgramBuilder, Step, Value, VarType, VariableSpec,
    WatchEvent,
};
use dspex_test_redis::RedisServer;
use dspex_tests::{PyAgent, SharedPeer, worker_config};
use prost::Message;
use serde_json::json;

/// One server for this test binary; each test has its own session.
static REDIS: LazyLock<RedisServer> =
    LazyLock::new(|| RedisServer::start().expect("a private redis-server starts"));

/// How long a test waits for an event another process causes (a liveness bound).
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

fn session(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{test}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn register_counter(peer: &mut SharedPeer, name: &str) {
    peer.ok(json!({"op": "register", "name": name, "type": "integer", "initial": 0}));
}

#[test]
fn writes_are_seen_by_the_other_processes_reads_and_watchers() {
    let s = session("seen");
    let mut peers: Vec<SharedPeer> = (0..3)
        .map(|_| SharedPeer::start(&REDIS.url(), &s))
        .collect();
    // Every process declares what it uses: the first registers, the others share it.
    for peer in &mut peers {
        register_counter(peer, "n");
        peer.ok(json!({"op": "watch", "name": "n"}));
    }
    for i in 1..=5 {
        peers[0].ok(json!({"op": "set", "name": "n", "value": i}));
    }
    peers[2].ok(json!({"op": "set", "name": "n", "value": 10}));
    for (p, peer) in peers.iter_mut().enumerate() {
        for want in [1, 2, 3, 4, 5, 10] {
            let event = peer.ok(json!({"op": "next_event"}));
            assert_eq!(
                (&event["kind"], &event["new"], &event["source"]),
                (&json!("updated"), &json!(want), &json!("rust")),
                "peer {p}: {event}"
            );
        }
        // Its watcher saw the last write, so its reads do too.
        let got = peer.ok(json!({"op": "get", "name": "n"}));
        assert_eq!((&got["value"], &got["version"]), (&json!(10), &json!(7)));
    }
    for peer in peers {
        peer.finish();
    }
}

#[test]
fn compare_and_set_conflicts_across_processes() {
    let s = session("cas");
    let mut a = SharedPeer::start(&REDIS.url(), &s);
    let mut b = SharedPeer::start(&REDIS.url(), &s);
    for peer in [&mut a, &mut b] {
        peer.ok(json!({"op": "register", "name": "t", "type": "float", "initial": 0.0, "min": 0.0, "max": 1.0}));
    }
    assert_eq!(a.ok(json!({"op": "get", "name": "t"}))["version"], json!(1));
    assert_eq!(
        b.ok(json!({"op": "cas", "name": "t", "value": 0.5, "version": 1})),
        json!(2)
    );
    // `a` still expects version 1: refused, whatever `a` had seen so far.
    let reply = a.call(json!({"op": "cas", "name": "t", "value": 0.9, "version": 1}));
    assert_eq!(reply["kind"], json!("conflict"), "{reply}");
    assert_eq!(
        reply["error"],
        json!("version conflict on `t`: expected version 1, found 2")
    );
    // The refused write caught `a` up.
    let got = a.ok(json!({"op": "get", "name": "t"}));
    assert_eq!((&got["value"], &got["version"]), (&json!(0.5), &json!(2)));
    assert_eq!(
        a.ok(json!({"op": "cas", "name": "t", "value": 0.9, "version": 2})),
        json!(3)
    );
    let reply = b.call(json!({"op": "cas", "name": "t", "value": 0.1, "version": 2}));
    assert_eq!(reply["kind"], json!("conflict"), "{reply}");
    a.finish();
    b.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_times_2500_updates_end_at_exactly_10000() {
    let s = session("count");
    let mut peers: Vec<SharedPeer> = (0..4)
        .map(|_| SharedPeer::start(&REDIS.url(), &s))
        .collect();
    for peer in &mut peers {
        register_counter(peer, "counter");
    }
    // All four run at once.
    for peer in &mut peers {
        peer.send(&json!({"op": "incr", "name": "counter", "times": 2500}));
    }
    for peer in &mut peers {
        let reply = peer.recv();
        assert!(reply.get("ok").is_some(), "{reply}");
    }
    // A process that opens the session now reads the exact count.
    let ctx = Context::builder()
        .shared(REDIS.url())
        .session(s)
        .build()
        .await
        .unwrap();
    assert_eq!(ctx.get::<i64>("counter").unwrap(), 10_000);
    assert_eq!(ctx.record("counter").unwrap().version, 10_001);
    for peer in peers {
        peer.finish();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_mid_write_leaves_the_session_consistent() {
    let s = session("killed");
    let names = ["x", "y", "z"];
    let mut writer = SharedPeer::start(&REDIS.url(), &s);
    for name in names {
        register_counter(&mut writer, name);
    }
    let ctx = Context::builder()
        .shared(REDIS.url())
        .session(s.clone())
        .build()
        .await
        .unwrap();
    for name in names {
        ctx.register(VariableSpec::new(name, VarType::Integer, 0))
            .unwrap();
    }
    let mut watcher = ctx.watch(&[]).unwrap();
    writer.ok(json!({"op": "churn", "names": names}));
    // Let it write a while (its changes reach this process), then kill it mid-loop.
    let mut seen = 0;
    while seen < 300 {
        match tokio::time::timeout(EVENT_TIMEOUT, watcher.recv()).await {
            Ok(Some(WatchEvent::Updated(_))) => seen += 1,
            Ok(Some(WatchEvent::Lagged { .. })) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    writer.kill();

    // Read the session as Redis holds it, independently of dspex's reader.
    let client = redis::Client::open(REDIS.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys = SessionKeys::new(&s);
    let vars: BTreeMap<String, Vec<u8>> = redis::cmd("HGETALL")
        .arg(&keys.vars)
        .query(&mut conn)
        .unwrap();
    let heads: BTreeMap<String, String> = redis::cmd("HGETALL")
        .arg(&keys.heads)
        .query(&mut conn)
        .unwrap();
    let seq: u64 = redis::cmd("HGET")
        .arg(&keys.meta)
        .arg("seq")
        .query(&mut conn)
        .unwrap();
    let stream: Vec<(String, BTreeMap<String, Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(&keys.changes)
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    assert_eq!(vars.keys().collect::<Vec<_>>(), names);
    // Every record decodes, and its head is its id and version.
    let records: BTreeMap<&str, proto::Variable> = vars
        .iter()
        .map(|(name, bytes)| {
            let record = proto::Variable::decode(bytes.as_slice())
                .unwrap_or_else(|e| panic!("`{name}` does not decode: {e}"));
            assert_eq!(heads[name], format!("{}:{}", record.id, record.version));
            (name.as_str(), record)
        })
        .collect();
    // The stream is the session's history in order, up to the last change, with no hole.
    let seqs: Vec<u64> = stream
        .iter()
        .map(|(id, _)| id.strip_prefix("0-").unwrap().parse().unwrap())
        .collect();
    assert_eq!(seqs.last(), Some(&seq));
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    // Each variable's last change in the stream is its record.
    for (name, record) in &records {
        let last = stream
            .iter()
            .rev()
            .map(|(_, fields)| proto::Variable::decode(fields["record"].as_slice()).unwrap())
            .find(|r| r.name == *name)
            .unwrap();
        assert_eq!((last.version, &last.value), (record.version, &record.value));
        assert!(record.version > 1, "`{name}` was never written");
    }
    // Another process carries on from there.
    let mut next = SharedPeer::start(&REDIS.url(), &s);
    let version = records["x"].version;
    assert_eq!(
        next.ok(json!({"op": "cas", "name": "x", "value": -1, "version": version})),
        json!(version + 1)
    );
    next.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_fell_behind_the_trimmed_stream_is_told_what_it_missed() {
    use rustix::process::{Pid, Signal, kill_process};

    let s = session("trimmed");
    let mut slow = SharedPeer::start(&REDIS.url(), &s);
    register_counter(&mut slow, "n");
    slow.ok(json!({"op": "watch", "name": "n"}));
    // This process keeps only 4 changes in the session's stream.
    let ctx = Context::builder()
        .shared_with(dspex::state::SharedConfig::new(REDIS.url(), &s).stream_max_len(4))
        .build()
        .await
        .unwrap();
    let n = ctx.defvariable::<i64>("n", 0, Constraints::none()).unwrap();
    // The slow process is frozen and cut off from Redis while 20 changes go by: the notices
    // of those writes have nobody to reach (a frozen process that keeps its connection gets
    // them all from its socket once it resumes, and misses nothing).
    let pid = Pid::from_raw(i32::try_from(slow.pid()).unwrap()).unwrap();
    kill_process(pid, Signal::STOP).unwrap();
    assert!(
        cut_redis_connections_of(slow.pid()) >= 1,
        "the slow process holds a connection"
    );
    for i in 1..=20 {
        n.set(i).unwrap();
    }
    kill_process(pid, Signal::CONT).unwrap();
    // It gets what it can, is told how many it missed, and ends on the latest value.
    let (mut updated, mut missed) = (0, 0);
    let mut last = 0;
    while updated + missed < 20 {
        let event = slow.ok(json!({"op": "next_event"}));
        match event["kind"].as_str() {
            Some("updated") => {
                let value = event["new"].as_i64().unwrap();
                assert!(value > last, "out of order: {event}");
                last = value;
                updated += 1;
            }
            Some("lagged") => missed += event["missed"].as_i64().unwrap(),
            _ => panic!("unexpected {event}"),
        }
    }
    assert_eq!(updated + missed, 20);
    assert!(missed >= 16, "the stream kept 4 changes: {missed} missed");
    let got = slow.ok(json!({"op": "get", "name": "n"}));
    assert_eq!((&got["value"], &got["version"]), (&json!(20), &json!(21)));
    slow.finish();
}

/// Closes, on the Redis server, every connection process `pid` holds to it (found by the
/// process's sockets in `/proc`): what a network cut does. Returns how many it closed.
fn cut_redis_connections_of(pid: u32) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_str()?.to_owned();
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    // `/proc/net/tcp` rows: sl, local address, remote address, state, queues, timer,
    // retransmits, uid, timeout, inode; addresses are HEX_IP:HEX_PORT.
    let hex_port_of = |address: &str| u16::from_str_radix(address.rsplit(':').next()?, 16).ok();
    let mut local_ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for row in text.lines().skip(1) {
            let cols: Vec<&str> = row.split_whitespace().collect();
            if cols.len() > 9
                && inodes.iter().any(|i| i == cols[9])
                && hex_port_of(cols[2]) == Some(REDIS.port())
            {
                local_ports.extend(hex_port_of(cols[1]));
            }
        }
    }
    let mut admin = redis::Client::open(REDIS.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    let mut closed = 0;
    for client in clients.lines() {
        let Some(addr) = client.split(' ').find_map(|f| f.strip_prefix("addr=")) else {
            continue;
        };
        let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        if port.is_some_and(|p| local_ports.contains(&p)) {
            let _: redis::Value = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ADDR")
                .arg(addr)
                .query(&mut admin)
                .unwrap();
            closed += 1;
        }
    }
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_python_write_through_one_process_reaches_another_process_rust_and_python() {
    let s = session("python");
    // Process A: a shared context serving its session to Python through its bridge.
    let mut a = SharedPeer::start(&REDIS.url(), &s);
    a.ok(json!({"op": "register", "name": "temperature", "type": "float", "initial": 0.7, "min": 0.0, "max": 2.0}));
    let bridge = a.ok(json!({"op": "bridge"}));
    let a_session = dspex::bridge::SessionInfo {
        address: bridge["address"].as_str().unwrap().to_owned(),
        session_id: bridge["session_id"].as_str().unwrap().to_owned(),
        token: bridge["token"].as_str().unwrap().to_owned(),
    };

    // Process B (this one): the same session, a Rust watcher, and Python of its own.
    let b = Context::builder()
        .shared(REDIS.url())
        .session(s)
        .worker(worker_config())
        .build()
        .await
        .unwrap();
    let temperature = b
        .defvariable_with::<f64>(
            VariableSpec::new("temperature", VarType::Float, 0.7)
                .with_constraints(Constraints::range(0.0, 2.0)),
        )
        .unwrap();
    let mut watcher = temperature.watch().unwrap();

    // Python on host A writes through A's gRPC server.
    let mut python_a = PyAgent::start(&a_session);
    python_a.ok(json!({"op": "set", "name": "temperature", "value": 1.3}));

    match tokio::time::timeout(EVENT_TIMEOUT, watcher.recv()).await {
        Ok(Some(WatchEvent::Updated(c))) => {
            assert_eq!(
                (c.new, c.source),
                (Value::Float(1.3), dspex::Source::Python)
            );
        }
        other => panic!("expected the python write, got {other:?}"),
    }
    assert_eq!(temperature.get().unwrap(), 1.3);

    // B's Python side: a SessionContext on B's bridge, and B's worker running a step.
    b.ensure_bridged().await.unwrap();
    assert_eq!(b.backend().kind, BackendKind::Shared);
    let mut python_b = PyAgent::start(&b.bridge_session().unwrap());
    assert_eq!(
        python_b.ok(json!({"op": "get", "name": "temperature", "bypass_cache": true}))["value"],
        json!(1.3)
    );
    let program = ProgramBuilder::new("Reads")
        .variable(
            VariableSpec::new("temperature", VarType::Float, 0.7)
                .with_constraints(Constraints::range(0.0, 2.0)),
        )
        .step(Step::python("answer", "Predict", "question -> answer").bind("temperature"))
        .build()
        .unwrap()
        .attach(&b)
        .await
        .unwrap();
    let (_, trace) = program
        .run_traced(Fields::from([("question", "How warm?")]))
        .await
        .unwrap();
    let calls = &trace.step("answer").unwrap().lm_calls;
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].temperature, Some(1.3));

    python_a.finish();
    python_b.finish();
    a.finish();
}
