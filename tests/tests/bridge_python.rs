//! Rust <-> Python end to end, against a real bridge server and real Python processes running
//! `dspex_bridge` (`tests/python/agent.py`): reads and writes both ways, cache invalidation,
//! the exception mapping, compare-and-set from both sides, authentication, and concurrent
//! increments.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::thread;

use dspex::bridge::{BridgeConfig, BridgeServer, SessionInfo};
use dspex::{BackendKind, Context, Error, SetOptions, Value};
use dspex::{Source, WatchEvent};
use dspex_tests::{PyAgent, register_fixtures};
use serde_json::json;

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A fresh server and a context bridged on it, holding the fixture variables.
fn setup() -> (BridgeServer, Context, SessionInfo) {
    let server = BridgeServer::start(BridgeConfig::default()).unwrap();
    let ctx = block_on(Context::builder().bridged().server(server.clone()).build()).unwrap();
    register_fixtures(&ctx).unwrap();
    let info = ctx.bridge_session().unwrap();
    (server, ctx, info)
}

#[test]
fn python_reads_what_rust_registered() {
    let (server, ctx, info) = setup();
    ctx.set("temperature", 1.25).unwrap();
    let mut py = PyAgent::start(&info);
    let cases = [
        ("temperature", json!(1.25), "float"),
        ("max_tokens", json!(256), "int"),
        ("model", json!("gpt-4o-mini"), "str"),
        ("reasoning", json!("Predict"), "str"),
        ("style", json!("concise"), "str"),
        ("verbose", json!(false), "bool"),
        ("embedding", json!([0.0, 0.5, 1.0]), "list"),
    ];
    for (name, value, ty) in cases {
        let got = py.ok(json!({"op": "get", "name": name}));
        assert_eq!(got, json!({"value": value, "type": ty}), "{name}");
    }
    let record = py.ok(json!({"op": "record", "name": "temperature"}));
    let rust = ctx.record("temperature").unwrap();
    assert_eq!(record["id"], json!(rust.id.0));
    assert_eq!(record["type"], "float");
    assert_eq!(record["version"], json!(2));
    assert_eq!(record["source"], "rust");
    assert_eq!(record["constraints"], json!({"min": 0.0, "max": 2.0}));
    assert_eq!(record["description"], "sampling temperature");
    assert_eq!(record["metadata"], json!({"owner": "rust"}));
    let record = py.ok(json!({"op": "record", "name": "max_tokens"}));
    assert_eq!(record["constraints"], json!({"min": 1, "max": 4096}));
    let record = py.ok(json!({"op": "record", "name": "model"}));
    assert_eq!(
        record["constraints"],
        json!({"choices": ["gpt-4o-mini", "claude-3-haiku"]})
    );
    // Several at once: missing names are reported, never dropped.
    let many = py.ok(json!({"op": "get_many", "names": ["verbose", "nope", "max_tokens"]}));
    assert_eq!(
        many,
        json!({"found": [["verbose", false], ["max_tokens", 256]], "missing": ["nope"]})
    );
    assert_eq!(
        py.ok(json!({"op": "list", "pattern": "m*"})),
        json!(["max_tokens", "model"])
    );
    let (error, message, _) = py.err(json!({"op": "get", "name": "nope"}));
    assert_eq!(
        (error.as_str(), message.as_str()),
        ("VariableNotFoundError", "variable `nope` not found")
    );
    let (_, _, mro) = py.err(json!({"op": "get", "name": "nope"}));
    assert!(mro.contains(&"KeyError".to_owned()), "{mro:?}");
    assert!(mro.contains(&"DspexError".to_owned()), "{mro:?}");
    py.finish();
    drop(ctx);
    server.shutdown_blocking();
}

#[test]
fn python_writes_rust_reads_them_as_python_writes_and_rust_watchers_receive_them() {
    let (server, ctx, info) = setup();
    let mut watcher = ctx.watch(&[]).unwrap();
    let mut py = PyAgent::start(&info);
    assert_eq!(
        py.ok(json!({"op": "set", "name": "temperature", "value": 1.1, "metadata": {"by": "py"}})),
        json!(2)
    );
    // An int for a float variable is widened, like in Rust; a bool stays a bool.
    assert_eq!(
        py.ok(json!({"op": "set", "name": "temperature", "value": 1})),
        json!(3)
    );
    assert_eq!(
        py.ok(json!({"op": "set", "name": "verbose", "value": true})),
        json!(2)
    );
    assert_eq!(
        py.ok(json!({"op": "set", "name": "embedding", "value": [1.0, 2.0, 3.0]})),
        json!(2)
    );
    assert_eq!(
        py.ok(json!({"op": "set_many", "values": {"max_tokens": 512, "style": "terse"}})),
        json!({"max_tokens": 2, "style": 2})
    );
    let registered = py.ok(json!({
        "op": "register", "name": "top_p", "var_type": "float", "initial": 0.9,
        "constraints": {"min": 0.0, "max": 1.0}, "description": "nucleus"
    }));
    assert_eq!(registered["source"], "python");

    let t = ctx.record("temperature").unwrap();
    assert_eq!(
        (t.value, t.version, t.source),
        (Value::Float(1.0), 3, Source::Python)
    );
    assert_eq!(t.metadata["by"], "py");
    assert!(ctx.get::<bool>("verbose").unwrap());
    assert_eq!(ctx.get::<i64>("max_tokens").unwrap(), 512);
    assert_eq!(ctx.get::<String>("style").unwrap(), "terse");
    assert_eq!(
        ctx.get_value("embedding").unwrap(),
        Value::Embedding(vec![1.0, 2.0, 3.0])
    );
    let top_p = ctx.record("top_p").unwrap();
    assert_eq!(
        (top_p.value, top_p.source),
        (Value::Float(0.9), Source::Python)
    );
    assert_eq!(top_p.description.as_deref(), Some("nucleus"));

    // The Rust watcher received every write, in order, marked as Python's.
    let mut seen = Vec::new();
    while let Some(event) = watcher.try_recv() {
        match event {
            WatchEvent::Updated(c) => {
                assert_eq!(c.source, Source::Python);
                seen.push((c.name, c.new));
            }
            WatchEvent::Registered { name, source, .. } => {
                assert_eq!(source, Source::Python);
                seen.push((name, Value::Boolean(true)));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "temperature",
            "temperature",
            "verbose",
            "embedding",
            "max_tokens",
            "style",
            "top_p"
        ]
    );
    assert_eq!(seen[0].1, Value::Float(1.1));
    py.finish();
    drop(ctx);
    server.shutdown_blocking();
}

#[test]
fn a_rust_write_invalidates_pythons_cache() {
    let (server, ctx, info) = setup();
    // Cached reads stay valid for an hour: only the watch stream can refresh them.
    let mut py = PyAgent::start_with(&info, &[("AGENT_CACHE_TTL", "3600")]);
    assert_eq!(
        py.ok(json!({"op": "get", "name": "temperature"}))["value"],
        json!(0.7)
    );
    assert_eq!(
        py.ok(json!({"op": "get", "name": "temperature"}))["value"],
        json!(0.7)
    );
    let stats = py.ok(json!({"op": "stats"}));
    assert_eq!(
        (stats["hits"].as_u64(), stats["misses"].as_u64()),
        (Some(1), Some(1))
    );

    ctx.set("temperature", 1.5).unwrap();
    // Cached reads (no bypass) see the new value long before the TTL.
    py.ok(json!({"op": "poll_until", "name": "temperature", "value": 1.5}));
    let stats = py.ok(json!({"op": "stats"}));
    assert!(stats["invalidations"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["misses"].as_u64(), Some(2), "{stats}");
    // And the fresh value is cached again.
    py.ok(json!({"op": "get", "name": "temperature"}));
    let after = py.ok(json!({"op": "stats"}));
    assert_eq!(after["misses"], stats["misses"]);
    // Deletions invalidate too.
    ctx.delete("style").unwrap();
    py.ok(json!({"op": "get", "name": "max_tokens"}));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reply = py.call(json!({"op": "get", "name": "style"}));
        if reply.get("error").is_some() {
            assert_eq!(reply["error"], "VariableNotFoundError");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deletion never reached Python"
        );
        thread::sleep(std::time::Duration::from_millis(5));
    }
    py.finish();
    drop(ctx);
    server.shutdown_blocking();
}

#[test]
fn wrong_types_and_constraint_violations_raise_and_change_nothing() {
    let (server, ctx, info) = setup();
    let mut py = PyAgent::start(&info);
    let before = ctx.list(None).unwrap();
    let type_errors = [
        (
            "temperature",
            json!("hot"),
            "temperature: \"hot\" is a string, expected a float",
        ),
        (
            "max_tokens",
            json!(2.0),
            "max_tokens: 2.0 is a float, expected an integer",
        ),
        // A Python bool is never an integer.
        (
            "max_tokens",
            json!(true),
            "max_tokens: true is a boolean, expected an integer",
        ),
        (
            "verbose",
            json!(1),
            "verbose: 1 is an integer, expected a boolean",
        ),
        (
            "embedding",
            json!("x"),
            "embedding: \"x\" is a string, expected an embedding",
        ),
    ];
    for (name, value, message) in type_errors {
        let (error, got, mro) = py.err(json!({"op": "set", "name": name, "value": value}));
        assert_eq!((error.as_str(), got.as_str()), ("WrongTypeError", message));
        assert!(mro.contains(&"TypeError".to_owned()), "{mro:?}");
    }
    let value_errors = [
        (
            "temperature",
            json!(2.5),
            "temperature: 2.5 is above max 2.0",
        ),
        ("max_tokens", json!(0), "max_tokens: 0 is below min 1"),
        (
            "model",
            json!("gpt-5"),
            "model: \"gpt-5\" is not one of the choices \"gpt-4o-mini\", \"claude-3-haiku\"",
        ),
        (
            "style",
            json!(""),
            "style: \"\" is shorter than min_length 1 (0 chars)",
        ),
        (
            "embedding",
            json!([1.0]),
            "embedding: [1.0] has 1 dimensions, expected 3",
        ),
    ];
    for (name, value, message) in value_errors {
        let (error, got, mro) = py.err(json!({"op": "set", "name": name, "value": value}));
        assert_eq!(
            (error.as_str(), got.as_str()),
            ("InvalidValueError", message)
        );
        assert!(mro.contains(&"ValueError".to_owned()), "{mro:?}");
    }
    // An atomic batch with one bad write applies nothing.
    let (error, message, _) = py.err(json!({
        "op": "set_many", "values": {"temperature": 0.2, "max_tokens": 99999}
    }));
    assert_eq!(
        (error.as_str(), message.as_str()),
        ("InvalidValueError", "max_tokens: 99999 is above max 4096")
    );
    // A value no variable can hold never leaves Python.
    let (error, _, _) = py.err(json!({"op": "set", "name": "temperature", "value": {"a": 1}}));
    assert_eq!(error, "WrongTypeError");
    // A taken name.
    let (error, message, mro) = py.err(json!({
        "op": "register", "name": "temperature", "var_type": "float", "initial": 0.1
    }));
    assert_eq!(
        (error.as_str(), message.as_str()),
        (
            "AlreadyExistsError",
            "variable `temperature` already exists"
        )
    );
    assert!(mro.contains(&"ValueError".to_owned()));
    // Values, versions and metadata are exactly as before.
    assert_eq!(ctx.list(None).unwrap(), before);
    py.finish();
    drop(ctx);
    server.shutdown_blocking();
}

#[test]
fn compare_and_set_conflicts_from_both_sides() {
    let (server, ctx, info) = setup();
    let mut py = PyAgent::start(&info);
    let version = py.ok(json!({"op": "record", "name": "max_tokens"}))["version"]
        .as_u64()
        .unwrap();
    assert_eq!(version, 1);
    // Rust writes in between: Python's compare-and-set at the version it read conflicts.
    ctx.set("max_tokens", 300).unwrap();
    let conflict = py.ok(json!({
        "op": "stale_cas", "name": "max_tokens", "value": 400, "expected_version": version
    }));
    assert_eq!(conflict["expected"], json!(1));
    assert_eq!(conflict["actual"], json!(2));
    assert_eq!(
        conflict["message"],
        "version conflict on `max_tokens`: expected version 1, found 2"
    );
    assert_eq!(ctx.get::<i64>("max_tokens").unwrap(), 300);
    // Python writes in between: Rust's compare-and-set at the version it read conflicts.
    let rust_read = ctx.record("max_tokens").unwrap().version;
    py.ok(json!({"op": "set", "name": "max_tokens", "value": 500, "expected_version": rust_read}));
    let err = ctx
        .set_with("max_tokens", 600, &SetOptions::expect_version(rust_read))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Conflict {
                expected: 2,
                actual: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(ctx.get::<i64>("max_tokens").unwrap(), 500);
    py.finish();
    drop(ctx);
    server.shutdown_blocking();
}

#[test]
fn wrong_tokens_and_other_sessions_are_refused() {
    let (server, ctx, info) = setup();
    let other = block_on(Context::builder().bridged().server(server.clone()).build()).unwrap();
    let other_info = other.bridge_session().unwrap();

    // A token that opens no session.
    let forged = SessionInfo {
        token: "f".repeat(64),
        ..info.clone()
    };
    let mut py = PyAgent::start(&forged);
    let (error, message, _) = py.err(json!({"op": "get", "name": "temperature"}));
    assert_eq!(
        (error.as_str(), message.as_str()),
        ("NotAuthorizedError", "invalid or expired session token")
    );
    let (error, _, _) = py.err(json!({"op": "set", "name": "temperature", "value": 1.0}));
    assert_eq!(error, "NotAuthorizedError");
    py.finish();

    // A valid token, used for another session's id.
    let crossed = SessionInfo {
        session_id: info.session_id.clone(),
        ..other_info.clone()
    };
    let mut py = PyAgent::start(&crossed);
    let (error, message, _) = py.err(json!({"op": "get", "name": "temperature"}));
    assert_eq!(error, "NotAuthorizedError");
    assert_eq!(
        message,
        format!(
            "the session token does not grant access to session `{}`",
            info.session_id
        )
    );
    let (error, _, _) = py.err(json!({"op": "set", "name": "temperature", "value": 1.0}));
    assert_eq!(error, "NotAuthorizedError");
    py.finish();
    assert_eq!(ctx.get::<f64>("temperature").unwrap(), 0.7);
    assert_eq!(ctx.record("temperature").unwrap().version, 1);

    // The rightful owner of the other session sees its own (empty) session only.
    let mut py = PyAgent::start(&other_info);
    assert_eq!(py.ok(json!({"op": "list"})), json!([]));
    py.finish();

    // Once a context is dropped its session is gone: its token stops working.
    let mut py = PyAgent::start(&other_info);
    drop(other);
    let (error, _, _) = py.err(json!({"op": "list"}));
    assert_eq!(error, "NotAuthorizedError");
    py.finish();
    drop(ctx);
    server.shutdown_blocking();
}

#[test]
fn concurrent_python_and_rust_increments_lose_nothing() {
    const RUST_THREADS: i64 = 2;
    const RUST_EACH: i64 = 300;
    const PY_AGENTS: i64 = 2;
    const PY_EACH: i64 = 300;
    let (server, ctx, info) = setup();
    let mut agents: Vec<PyAgent> = (0..PY_AGENTS).map(|_| PyAgent::start(&info)).collect();
    for py in &mut agents {
        py.send(&json!({"op": "cas_increments", "name": "counter", "times": PY_EACH}));
    }
    let rust: Vec<_> = (0..RUST_THREADS)
        .map(|_| {
            let ctx = ctx.clone();
            thread::spawn(move || {
                let mut conflicts = 0;
                let mut done = 0;
                while done < RUST_EACH {
                    let r = ctx.record("counter").unwrap();
                    let next = r.value.as_i64().unwrap() + 1;
                    match ctx.set_with("counter", next, &SetOptions::expect_version(r.version)) {
                        Ok(_) => done += 1,
                        Err(Error::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                conflicts
            })
        })
        .collect();
    for t in rust {
        t.join().unwrap();
    }
    for py in &mut agents {
        let reply = py.recv();
        assert!(reply.get("ok").is_some(), "{reply}");
    }
    let total = RUST_THREADS * RUST_EACH + PY_AGENTS * PY_EACH;
    let record = ctx.record("counter").unwrap();
    assert_eq!(record.value, Value::Integer(total));
    assert_eq!(record.version, u64::try_from(total).unwrap() + 1);
    for py in agents {
        py.finish();
    }
    drop(ctx);
    server.shutdown_blocking();
}

#[test]
fn python_sees_a_context_that_upgraded_from_local() {
    let server = BridgeServer::start(BridgeConfig::default()).unwrap();
    let ctx = block_on(Context::builder().server(server.clone()).build()).unwrap();
    register_fixtures(&ctx).unwrap();
    ctx.set("max_tokens", 1024).unwrap();
    assert_eq!(ctx.backend().kind, BackendKind::Local);
    block_on(ctx.ensure_bridged()).unwrap();
    let mut py = PyAgent::start(&ctx.bridge_session().unwrap());
    let record = py.ok(json!({"op": "record", "name": "max_tokens"}));
    assert_eq!(record["value"], json!(1024));
    assert_eq!(record["version"], json!(2));
    assert_eq!(record["metadata"]["migrated_from"], "local");
    assert!(
        record["metadata"]["migrated_at"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    py.ok(json!({"op": "set", "name": "max_tokens", "value": 2048}));
    assert_eq!(ctx.get::<i64>("max_tokens").unwrap(), 2048);
    py.finish();
    drop(ctx);
    server.shutdown_blocking();
}

#[cfg(unix)]
#[test]
fn python_reaches_a_server_on_a_unix_socket() {
    let dir = std::env::temp_dir().join(format!("dspex-uds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bridge.sock");
    let server = BridgeServer::start(BridgeConfig::default().unix(&path)).unwrap();
    assert_eq!(server.address(), format!("unix:{}", path.display()));
    let ctx = block_on(Context::builder().bridged().server(server.clone()).build()).unwrap();
    register_fixtures(&ctx).unwrap();
    let mut py = PyAgent::start(&ctx.bridge_session().unwrap());
    assert_eq!(
        py.ok(json!({"op": "get", "name": "max_tokens"}))["value"],
        json!(256)
    );
    py.ok(json!({"op": "set", "name": "max_tokens", "value": 8}));
    assert_eq!(ctx.get::<i64>("max_tokens").unwrap(), 8);
    py.finish();
    drop(ctx);
    server.shutdown_blocking();
    assert!(!path.exists(), "the socket file is removed on shutdown");
    let _ = std::fs::remove_dir(&dir);
}

#[test]
fn python_watchers_follow_rust_writes() {
    let (server, ctx, info) = setup();
    let mut py = PyAgent::start(&info);
    py.ok(json!({"op": "watch", "names": ["max_tokens"], "include_initial": true}));
    for n in [10, 20, 30] {
        ctx.set("max_tokens", n).unwrap();
    }
    let updates = py.ok(json!({"op": "take", "count": 4}));
    assert_eq!(
        updates,
        json!([
            {"kind": "initial", "name": "max_tokens", "old": null, "new": 256, "version": 1, "source": null, "missed": 0},
            {"kind": "updated", "name": "max_tokens", "old": 256, "new": 10, "version": 2, "source": "rust", "missed": 0},
            {"kind": "updated", "name": "max_tokens", "old": 10, "new": 20, "version": 3, "source": "rust", "missed": 0},
            {"kind": "updated", "name": "max_tokens", "old": 20, "new": 30, "version": 4, "source": "rust", "missed": 0},
        ])
    );
    py.finish();
    drop(ctx);
    server.shutdown_blocking();
}
