//! Transparent switching: `Context::ensure_bridged` on a real bridge server, the builder, the
//! session accessors, and the release of a context's session when its last handle drops.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::sync::{Arc, Mutex};
use std::thread;

use dspex::bridge::{BridgeConfig, BridgeServer};
use dspex::state::{Key, StateProvider};
use dspex::wire::proto::{self as pb, ErrorKind};
use dspex::{
    BackendKind, Constraints, Context, Error, Value, VarType, VariableSpec, WatchEvent,
    WatchOptions,
};
use dspex::{SetOptions, Source};
use tokio_stream::StreamExt;
use tonic::Code;

mod bridge_common;
use bridge_common::*;

fn ctx_on(server: &BridgeServer) -> Context {
    // A local context that will bridge through `server`.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(Context::builder().server(server.clone()).build())
        .unwrap()
}

#[tokio::test]
async fn ensure_bridged_migrates_everything_and_is_idempotent() {
    let server = server();
    let ctx = Context::builder()
        .server(server.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(ctx.backend().kind, BackendKind::Local);
    assert!(ctx.bridge_session().is_none());
    let t = ctx
        .defvariable_with::<f64>(
            VariableSpec::new("temperature", VarType::Float, 0.7)
                .with_constraints(Constraints::range(0.0, 2.0))
                .with_description("sampling temperature")
                .with_metadata("owner", "tests"),
        )
        .unwrap();
    let e = ctx
        .defvariable::<dspex::Embedding>(
            "e",
            vec![0.5f32, 0.25],
            Constraints::default().with_dimensions(2),
        )
        .unwrap();
    t.set(1.5).unwrap();
    let before = ctx.list(None).unwrap();

    ctx.ensure_bridged().await.unwrap();
    let info = ctx.backend();
    assert_eq!(info.kind, BackendKind::Bridged);
    assert!(info.capabilities.shared_with_python);
    assert_eq!(info.switches, 1);
    assert!(info.last_switch.is_some());
    assert!(info.to_string().starts_with("bridged backend (1 switch"));

    let after = ctx.list(None).unwrap();
    assert_eq!(after.len(), before.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (
                a.id,
                &a.name,
                a.ty,
                &a.value,
                a.version,
                &a.constraints,
                &a.description
            ),
            (
                b.id,
                &b.name,
                b.ty,
                &b.value,
                b.version,
                &b.constraints,
                &b.description
            )
        );
        assert_eq!(
            (a.created_at, a.updated_at, a.source),
            (b.created_at, b.updated_at, b.source)
        );
        for (k, v) in &b.metadata {
            assert_eq!(&a.metadata[k], v);
        }
        assert_eq!(a.metadata["migrated_from"], "local");
        assert!(a.metadata["migrated_at"].ends_with('Z'));
    }
    // Handles resolved before the switch keep working and keep validating.
    assert_eq!(t.get().unwrap(), 1.5);
    assert!(matches!(t.set(9.0), Err(Error::ConstraintViolation(_))));
    assert_eq!(e.get().unwrap().0, vec![0.5, 0.25]);

    // Idempotent: no second switch, same session.
    let session = ctx.bridge_session().unwrap();
    ctx.ensure_bridged().await.unwrap();
    assert_eq!(ctx.backend().switches, 1);
    assert_eq!(ctx.bridge_session().unwrap(), session);
    assert_eq!(session.address, server.address());
    assert!(server.has_session(&session.session_id));
    assert_eq!(ctx.bridge_server().unwrap().address(), server.address());

    // Python's side of the session sees the migrated variables.
    let mut c = client(&server).await;
    let var = c
        .get_variable(authed(
            pb::GetVariableRequest {
                session_id: session.session_id.clone(),
                name: "temperature".into(),
            },
            &session,
        ))
        .await
        .unwrap()
        .into_inner()
        .variable
        .unwrap();
    assert_eq!(var.value, Some(float(1.5)));
    assert_eq!(var.version, 2);
    assert_eq!(var.metadata["migrated_from"], "local");
    assert_eq!(var.description.as_deref(), Some("sampling temperature"));
    drop((t, e, ctx));
    server.shutdown().await;
}

#[test]
fn concurrent_ensure_bridged_calls_switch_once() {
    let server = server();
    let ctx = ctx_on(&server);
    ctx.defvariable::<i64>("n", 1, Constraints::none()).unwrap();
    // OS threads released together: the calls really overlap.
    let start = std::sync::Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (ctx, start) = (ctx.clone(), std::sync::Arc::clone(&start));
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                start.wait();
                rt.block_on(ctx.ensure_bridged())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap().unwrap();
    }
    assert_eq!(ctx.backend().switches, 1);
    assert_eq!(server.session_count(), 1);
    assert_eq!(ctx.get::<i64>("n").unwrap(), 1);
    drop(ctx);
    server.shutdown_blocking();
}

/// Writers (handles and names, `update` and `set`) and watchers (Rust and gRPC) run while the
/// context switches: no write is lost or applied twice, and every watcher keeps receiving.
#[test]
fn writers_and_watchers_run_through_the_switch() {
    const WRITERS: i64 = 4;
    const PER_WRITER: i64 = 20_000;
    let server = server();
    let ctx = ctx_on(&server);
    let counter = ctx
        .defvariable::<i64>("counter", 0, Constraints::none())
        .unwrap();
    for w in 0..WRITERS {
        ctx.defvariable::<i64>(&format!("own_{w}"), 0, Constraints::none())
            .unwrap();
    }
    let mut watcher = ctx
        .watch_with(
            &["counter"],
            WatchOptions {
                capacity: 1 << 20,
                include_initial: false,
            },
        )
        .unwrap();
    let mut all = ctx
        .watch_with(
            &[],
            WatchOptions {
                capacity: 1 << 20,
                include_initial: false,
            },
        )
        .unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let counter = counter.clone();
            let ctx = ctx.clone();
            thread::spawn(move || {
                let own = format!("own_{w}");
                for i in 1..=PER_WRITER {
                    counter.update(|n| n + 1).unwrap();
                    // Plain sets by name, each a distinct value.
                    ctx.set(&own, i).unwrap();
                }
            })
        })
        .collect();
    while counter.get().unwrap() < 1_000 {
        thread::yield_now();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(ctx.ensure_bridged()).unwrap();
    // The switch happened while the writers were running.
    let at_switch = counter.get().unwrap();
    assert!(at_switch < WRITERS * PER_WRITER, "{at_switch}");
    assert_eq!(ctx.backend().kind, BackendKind::Bridged);

    // A gRPC watcher joins after the switch and follows the writes concurrently. It may fall
    // behind (its queue is bounded); then it is told exactly how many events it missed.
    let session = ctx.bridge_session().unwrap();
    let progress = Arc::new(Mutex::new(GrpcProgress::default()));
    // The consumer reports every value it has seen (the last one of each batch it drained).
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<i64>();
    let consumer = {
        let progress = Arc::clone(&progress);
        let server = server.clone();
        rt.spawn(async move {
            let mut c = client(&server).await;
            let mut stream = c
                .watch_variables(authed(
                    pb::WatchVariablesRequest {
                        session_id: session.session_id.clone(),
                        names: vec!["counter".into()],
                        include_initial: true,
                    },
                    &session,
                ))
                .await
                .unwrap()
                .into_inner();
            while let Some(u) = stream.next().await {
                let u = u.unwrap();
                let mut p = progress.lock().unwrap();
                if u.kind == i32::from(pb::UpdateKind::Lagged) {
                    p.missed += u.missed;
                    continue;
                }
                let Some(pb::Value {
                    kind: Some(pb::value::Kind::IntegerValue(n)),
                }) = u.new_value
                else {
                    panic!("unexpected {u:?}")
                };
                if u.kind == i32::from(pb::UpdateKind::Initial) {
                    assert!(p.initial.is_none());
                    p.initial = Some(n);
                } else {
                    assert!(p.last.is_none_or(|l| n > l), "{:?} then {n}", p.last);
                    p.delivered += 1;
                }
                p.last = Some(n);
                let _ = seen_tx.send(n);
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    let total = WRITERS * PER_WRITER;
    assert_eq!(counter.get().unwrap(), total);
    assert_eq!(
        counter.record().unwrap().version,
        u64::try_from(total).unwrap() + 1
    );
    for w in 0..WRITERS {
        let rec = ctx.record(&format!("own_{w}")).unwrap();
        assert_eq!(rec.value, Value::Integer(PER_WRITER));
        assert_eq!(rec.version, u64::try_from(PER_WRITER).unwrap() + 1);
    }
    // The Rust watcher saw every increment exactly once, in order, across the switch.
    let mut expected = 1;
    while let Some(event) = watcher.try_recv() {
        match event {
            WatchEvent::Updated(c) => {
                assert_eq!(c.new, Value::Integer(expected));
                expected += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(expected, total + 1);
    // The watcher of everything saw every write of every variable.
    let mut seen = 0;
    while let Some(event) = all.try_recv() {
        assert!(matches!(event, WatchEvent::Updated(_)), "{event:?}");
        seen += 1;
    }
    assert_eq!(seen, 2 * total);
    // The gRPC watcher accounted for every increment after it joined: delivered in order or
    // reported missed. A sentinel increment flushes a lag report that would otherwise wait for
    // the next change; the test waits for the consumer to report it. Only if the sentinel's
    // own event was dropped in a lag (nothing more arrives until the next change) does it
    // write another one.
    const QUIET: std::time::Duration = std::time::Duration::from_millis(200);
    let mut attempts = 0;
    let final_value = 'sentinels: loop {
        attempts += 1;
        assert!(attempts < 300, "the gRPC watcher stopped receiving");
        let sentinel = counter.update(|n| n + 1).unwrap();
        while let Ok(n) = seen_rx.recv_timeout(QUIET) {
            if n == sentinel {
                break 'sentinels sentinel;
            }
        }
    };
    {
        let p = progress.lock().unwrap();
        let initial = p.initial.unwrap();
        assert!(initial >= at_switch);
        assert_eq!(
            i64::try_from(p.delivered + p.missed).unwrap(),
            final_value - initial,
            "{p:?}"
        );
    }
    drop((counter, ctx));
    rt.block_on(consumer).unwrap();
    server.shutdown_blocking();
}

#[derive(Debug, Default)]
struct GrpcProgress {
    initial: Option<i64>,
    last: Option<i64>,
    delivered: u64,
    missed: u64,
}

#[tokio::test]
async fn a_bridge_that_cannot_start_leaves_the_context_local_and_intact() {
    let server = server();
    server.shutdown().await;
    let ctx = Context::builder()
        .server(server.clone())
        .build()
        .await
        .unwrap();
    let n = ctx
        .defvariable::<i64>("n", 1, Constraints::range(0, 10))
        .unwrap();
    n.set(2).unwrap();
    let before = ctx.list(None).unwrap();
    let err = ctx.ensure_bridged().await.unwrap_err();
    match &err {
        Error::Bridge { message, .. } => assert!(message.contains("has stopped"), "{message}"),
        other => panic!("expected a bridge error, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "python bridge: the bridge server at {} has stopped",
            server.address()
        )
    );
    let info = ctx.backend();
    assert_eq!((info.kind, info.switches), (BackendKind::Local, 0));
    assert!(ctx.bridge_session().is_none());
    assert_eq!(ctx.list(None).unwrap(), before);
    n.set(3).unwrap();
    assert_eq!(n.get().unwrap(), 3);

    // A bridged build on a server that cannot start is an error too.
    let taken = server_on_unix_socket_path_that_cannot_bind();
    let err = BridgeServer::start(taken).unwrap_err();
    match &err {
        Error::Bridge {
            message,
            source: Some(source),
        } => {
            assert!(message.starts_with("cannot bind"), "{message}");
            // The `io::Error` is the source, not part of the message.
            assert!(matches!(source, dspex::Cause::Io(_)), "{source:?}");
            assert!(!err.to_string().contains(&source.to_string()), "{err}");
        }
        other => panic!("expected a bridge error with its io::Error, got {other:?}"),
    }
}

fn server_on_unix_socket_path_that_cannot_bind() -> BridgeConfig {
    BridgeConfig::default().unix("/nonexistent-dspex-dir/bridge.sock")
}

#[tokio::test]
async fn dropping_the_last_handle_releases_the_session() {
    let server = server();
    let mut c = client(&server).await;

    // Built bridged.
    let ctx = Context::builder()
        .bridged()
        .server(server.clone())
        .build()
        .await
        .unwrap();
    let t = ctx
        .defvariable::<f64>("t", 0.5, Constraints::none())
        .unwrap();
    let info = ctx.bridge_session().unwrap();
    assert!(server.has_session(&info.session_id));
    let clone = ctx.clone();
    drop(ctx);
    // Handles and clones keep the context, and its session, alive.
    assert!(server.has_session(&info.session_id));
    drop(clone);
    assert!(server.has_session(&info.session_id));
    assert_eq!(t.get().unwrap(), 0.5);
    drop(t);
    assert!(!server.has_session(&info.session_id));
    assert_eq!(server.session_count(), 0);
    let err = c
        .get_variable(authed(
            pb::GetVariableRequest {
                session_id: info.session_id.clone(),
                name: "t".into(),
            },
            &info,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // Upgraded from local.
    let ctx = Context::builder()
        .server(server.clone())
        .build()
        .await
        .unwrap();
    ctx.defvariable::<i64>("n", 1, Constraints::none()).unwrap();
    ctx.ensure_bridged().await.unwrap();
    let info = ctx.bridge_session().unwrap();
    assert!(server.has_session(&info.session_id));
    drop(ctx);
    assert!(!server.has_session(&info.session_id));

    // A state opened directly.
    let state = server.open_session().unwrap();
    state
        .register(VariableSpec::new("x", VarType::Boolean, true), Source::Rust)
        .unwrap();
    state
        .set(
            Key::Name("x"),
            Value::Boolean(false),
            &SetOptions::default(),
            Source::Rust,
        )
        .unwrap();
    let id = state.session_id().to_owned();
    assert!(server.has_session(&id));
    drop(state);
    assert!(!server.has_session(&id));
    server.shutdown().await;
}

#[tokio::test]
async fn the_process_wide_server_serves_contexts_without_one() {
    let ctx = Context::new();
    ctx.defvariable::<bool>("b", true, Constraints::none())
        .unwrap();
    ctx.ensure_bridged().await.unwrap();
    let info = ctx.bridge_session().unwrap();
    let global = BridgeServer::global().unwrap();
    assert_eq!(info.address, global.address());
    assert!(global.has_session(&info.session_id));
    let built = Context::builder().bridged().build().await.unwrap();
    assert_eq!(built.bridge_session().unwrap().address, global.address());
    drop((ctx, built));
    assert!(!global.has_session(&info.session_id));
}

#[tokio::test]
async fn a_switch_keeps_histories_read_only_flags_and_the_history_limit() {
    let server = server();
    let ctx = Context::builder()
        .server(server.clone())
        .history_limit(3)
        .build()
        .await
        .unwrap();
    assert_eq!(ctx.history_limit(), 3);
    let t = ctx
        .defvariable::<f64>("temperature", 0.1, Constraints::range(0.0, 2.0))
        .unwrap();
    for x in [0.2, 0.3, 0.4, 0.5] {
        t.set(x).unwrap();
    }
    ctx.rollback("temperature", 4).unwrap();
    let locked = ctx
        .defvariable_with::<i64>(VariableSpec::new("locked", VarType::Integer, 1).readonly())
        .unwrap();
    locked.set(2).unwrap();
    let before = ctx.history("temperature", 10).unwrap();
    let versions = |h: &[dspex::HistoryEntry]| h.iter().map(|e| e.version).collect::<Vec<_>>();
    assert_eq!(versions(&before), [6, 5, 4]);

    ctx.ensure_bridged().await.unwrap();
    assert_eq!(ctx.backend().kind, BackendKind::Bridged);
    assert_eq!(ctx.history("temperature", 10).unwrap(), before);
    assert_eq!(ctx.history("locked", 10).unwrap().len(), 2);
    assert!(locked.record().unwrap().readonly);
    // The bridged session keeps the context's limit.
    t.set(1.0).unwrap();
    let typed: Vec<(u64, f64)> = t
        .history(10)
        .unwrap()
        .into_iter()
        .map(|e| (e.version, e.value))
        .collect();
    assert_eq!(typed, [(7, 1.0), (6, 0.4), (5, 0.5)]);
    assert_eq!(t.rollback(5).unwrap(), 8);
    assert_eq!(t.get().unwrap(), 0.5);

    // Python's writes to the read-only variable are refused; Rust's still apply.
    let info = ctx.bridge_session().unwrap();
    let mut c = client(&server).await;
    let err = c
        .set_variable(authed(
            set_request(&info.session_id, "locked", int(9)),
            &info,
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, ErrorKind::ReadOnly);
    locked.set(3).unwrap();
    assert_eq!(locked.get().unwrap(), 3);

    // Bridged from the start, with its own limit; limits out of bounds are refused.
    let bridged = Context::builder()
        .bridged()
        .server(server.clone())
        .history_limit(2)
        .build()
        .await
        .unwrap();
    let n = bridged
        .defvariable::<i64>("n", 0, Constraints::none())
        .unwrap();
    for i in 1..=5 {
        n.set(i).unwrap();
    }
    assert_eq!(bridged.history("n", 10).unwrap().len(), 2);
    for bad in [0, dspex::state::MAX_HISTORY_LIMIT + 1] {
        let err = Context::builder()
            .bridged()
            .server(server.clone())
            .history_limit(bad)
            .build()
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidOption { option, .. } if option == "history_limit"),
            "{err:?}"
        );
    }
    let most = Context::builder()
        .history_limit(dspex::state::MAX_HISTORY_LIMIT)
        .build()
        .await
        .unwrap();
    assert_eq!(most.history_limit(), dspex::state::MAX_HISTORY_LIMIT);
    drop((t, locked, n, ctx, bridged));
    server.shutdown().await;
}
