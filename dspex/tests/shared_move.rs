//! Moving a local or bridged context into a shared session (`Context::ensure_shared`): values,
//! versions and typed handles kept; the session's record wins for the same declaration;
//! another declaration refuses and leaves the context as it was; a bridged context keeps
//! serving its Python side (over gRPC) from the shared session.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

mod bridge_common;

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use bridge_common::{authed, client, eventually, float, set_request};
use dspex::BackendKind;
use dspex::{Constraints, Context, Error, VarType, VariableSpec, WatchEvent};
use dspex_test_redis::RedisServer;

static REDIS: LazyLock<RedisServer> =
    LazyLock::new(|| RedisServer::start().expect("a private redis-server starts"));

fn session(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{test}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Another process's view of the session.
async fn other(session: &str) -> Context {
    Context::builder()
        .shared(REDIS.url())
        .session(session)
        .build()
        .await
        .unwrap()
}

fn temperature(max: f64) -> VariableSpec {
    VariableSpec::new("temperature", VarType::Float, 0.7)
        .with_constraints(Constraints::range(0.0, max))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_context_moves_in_keeping_values_versions_and_handles() {
    let s = session("local");
    let ctx = Context::new();
    let t = ctx.defvariable_with::<f64>(temperature(2.0)).unwrap();
    let n = ctx.defvariable::<i64>("n", 0, Constraints::none()).unwrap();
    t.set(0.9).unwrap();
    t.set(1.1).unwrap();
    ctx.ensure_shared(REDIS.url(), &s).await.unwrap();
    ctx.ensure_shared(REDIS.url(), &s).await.unwrap(); // idempotent
    let info = ctx.backend();
    assert_eq!((info.kind, info.switches), (BackendKind::Shared, 1));
    let rec = t.record().unwrap();
    assert_eq!((rec.value.as_f64(), rec.version), (Some(1.1), 3));
    assert_eq!(rec.metadata["migrated_from"], "local");
    // The handles taken before the move still work, now on the session.
    n.set(5).unwrap();
    let b = other(&s).await;
    assert_eq!(b.get::<f64>("temperature").unwrap(), 1.1);
    assert_eq!(b.record("temperature").unwrap().version, 3);
    assert_eq!(b.get::<i64>("n").unwrap(), 5);
    // Another session is refused: a context lives in one.
    let err = ctx
        .ensure_shared(REDIS.url(), "elsewhere")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("shared session: the context is in shared session"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_record_wins_for_the_same_declaration() {
    let s = session("wins");
    let b = other(&s).await;
    let theirs = b.defvariable_with::<f64>(temperature(2.0)).unwrap();
    theirs.set(1.5).unwrap();
    theirs.set(1.6).unwrap();

    let ctx = Context::new();
    let t = ctx.defvariable_with::<f64>(temperature(2.0)).unwrap();
    ctx.defvariable::<bool>("verbose", true, Constraints::none())
        .unwrap();
    let mut watcher = t.watch().unwrap();
    ctx.ensure_shared(REDIS.url(), &s).await.unwrap();

    // The session's value, version and id; the handle follows.
    let rec = t.record().unwrap();
    assert_eq!((rec.value.as_f64(), rec.version), (Some(1.6), 3));
    assert_eq!(rec.id, theirs.id());
    match watcher.try_recv() {
        Some(WatchEvent::Updated(c)) => {
            assert_eq!((c.old.as_f64(), c.new.as_f64()), (Some(0.7), Some(1.6)));
        }
        other => panic!("expected the adopted value, got {other:?}"),
    }
    // What the session did not hold moved in.
    eventually("the other process sees `verbose`", async || {
        b.get::<bool>("verbose").ok() == Some(true)
    })
    .await;
    t.set(0.2).unwrap();
    eventually("the other process sees the write", async || {
        theirs.get().ok() == Some(0.2)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_declaration_refuses_and_the_context_stays_as_it_was() {
    let s = session("refuses");
    let b = other(&s).await;
    b.defvariable_with::<f64>(temperature(1.0)).unwrap();

    let ctx = Context::new();
    let t = ctx.defvariable_with::<f64>(temperature(2.0)).unwrap();
    ctx.defvariable::<i64>("n", 3, Constraints::none()).unwrap();
    t.set(1.8).unwrap();
    let before = ctx.list(None).unwrap();
    let err = ctx.ensure_shared(REDIS.url(), &s).await.unwrap_err();
    assert!(
        matches!(err, Error::DeclarationMismatch { ref name, .. } if name == "temperature"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "variable `temperature` is declared differently in shared session `{s}`: constraints min 0.0, max 1.0 in the session, min 0.0, max 2.0 here"
        )
    );
    let info = ctx.backend();
    assert_eq!((info.kind, info.switches), (BackendKind::Local, 0));
    assert_eq!(ctx.list(None).unwrap(), before);
    assert_eq!(t.get().unwrap(), 1.8);
    t.set(1.9).unwrap();
    // Nothing reached the session.
    let fresh = other(&s).await;
    let names: Vec<String> = fresh
        .list(None)
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["temperature"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_refuses_the_move_and_changes_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let ctx = Context::new();
    ctx.defvariable::<i64>("n", 3, Constraints::none()).unwrap();
    let err = ctx.ensure_shared(&url, "nowhere").await.unwrap_err();
    assert!(matches!(err, Error::Shared { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("shared state: cannot reach Redis at {url}")
    );
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(ctx.backend().kind, BackendKind::Local);
    assert_eq!(ctx.get::<i64>("n").unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridged_context_moves_in_and_its_python_side_follows() {
    let s = session("bridged");
    let server = bridge_common::server();
    // Local, then bridged, then shared: two switches.
    let ctx = Context::builder()
        .server(server.clone())
        .build()
        .await
        .unwrap();
    let t = ctx.defvariable_with::<f64>(temperature(2.0)).unwrap();
    ctx.ensure_bridged().await.unwrap();
    let info = ctx.bridge_session().unwrap();
    let mut grpc = client(&server).await;
    ctx.ensure_shared(REDIS.url(), &s).await.unwrap();
    let backend = ctx.backend();
    assert_eq!((backend.kind, backend.switches), (BackendKind::Shared, 2));
    assert_eq!(t.record().unwrap().metadata["migrated_from"], "bridged");

    // Python's session (gRPC) now reads and writes the shared session.
    grpc.set_variable(authed(
        set_request(&info.session_id, "temperature", float(1.4)),
        &info,
    ))
    .await
    .unwrap();
    assert_eq!(t.get().unwrap(), 1.4);
    let b = other(&s).await;
    assert_eq!(b.get::<f64>("temperature").unwrap(), 1.4);
    assert_eq!(
        b.record("temperature").unwrap().source,
        dspex::Source::Python
    );
    drop(ctx);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_context_serves_its_session_to_python_without_switching() {
    let s = session("served");
    let server = bridge_common::server();
    let ctx = Context::builder()
        .shared(REDIS.url())
        .session(&s)
        .server(server.clone())
        .build()
        .await
        .unwrap();
    ctx.defvariable_with::<f64>(temperature(2.0)).unwrap();
    ctx.ensure_bridged().await.unwrap();
    let backend = ctx.backend();
    assert_eq!((backend.kind, backend.switches), (BackendKind::Shared, 0));
    let info = ctx.bridge_session().unwrap();
    let mut grpc = client(&server).await;
    grpc.set_variable(authed(
        set_request(&info.session_id, "temperature", float(0.3)),
        &info,
    ))
    .await
    .unwrap();
    // Seen by a process that opens the session now: the write went to Redis.
    let b = other(&s).await;
    assert_eq!(b.get::<f64>("temperature").unwrap(), 0.3);
    drop(ctx);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_move_in_and_every_process_reads_and_rolls_back_the_same() {
    let s = session("history");
    let ctx = Context::new();
    let t = ctx.defvariable_with::<f64>(temperature(2.0)).unwrap();
    t.set(0.9).unwrap();
    t.set(1.1).unwrap();
    ctx.ensure_shared(REDIS.url(), &s).await.unwrap();
    let versions = |ctx: &Context| -> Vec<u64> {
        ctx.history("temperature", 10)
            .unwrap()
            .iter()
            .map(|e| e.version)
            .collect()
    };
    assert_eq!(versions(&ctx), [3, 2, 1]);
    // Another process reads the same history, and its rollback is a write every process sees.
    let b = other(&s).await;
    assert_eq!(versions(&b), [3, 2, 1]);
    assert_eq!(b.rollback("temperature", 2).unwrap(), 4);
    eventually("the first process sees the rollback", async || {
        t.get().ok() == Some(0.9)
    })
    .await;
    let history = ctx.history("temperature", 1).unwrap();
    assert_eq!(
        (history[0].version, history[0].value.as_f64()),
        (4, Some(0.9))
    );
    assert_eq!(history[0].metadata["rolled_back_from"], "2");
}
