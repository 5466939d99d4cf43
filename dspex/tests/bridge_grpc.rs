//! The gRPC `SessionService` of a real bridge server, called with the generated tonic client:
//! authentication, status codes and error kinds, atomic batches, watch streams, remote sessions
//! with TTL and heartbeat, history and rollback, read-only variables, and the limits that
//! protect the server.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::time::Duration;

use dspex::wire::limits::{
    MAX_EMBEDDING_DIMENSIONS, MAX_HISTORY_ENTRIES_PER_REQUEST, MAX_METADATA_ENTRIES,
    MAX_NAMES_PER_REQUEST, MAX_REMOTE_SESSIONS, MAX_REQUEST_BYTES, MAX_STRING_BYTES,
    MAX_VARIABLES_PER_SESSION, MAX_WATCHERS_PER_SESSION, MAX_WRITES_PER_BATCH,
};
use dspex::wire::proto::{self as pb, ErrorKind};
use dspex::{Constraints, Context, Source, Value, WatchEvent};
use tokio_stream::StreamExt;
use tonic::{Code, Request};

mod bridge_common;
use bridge_common::*;

#[tokio::test]
async fn ping_needs_no_token_and_everything_else_does() {
    let server = server();
    let ctx = bridged(&server).await;
    ctx.defvariable::<f64>("t", 0.5, Constraints::range(0.0, 1.0))
        .unwrap();
    let info = ctx.bridge_session().unwrap();
    let mut c = client(&server).await;
    let pong = c.ping(pb::PingRequest {}).await.unwrap().into_inner();
    assert_eq!(pong.server_version, env!("CARGO_PKG_VERSION"));

    let get = |session_id: &str| pb::GetVariableRequest {
        session_id: session_id.to_owned(),
        name: "t".into(),
    };
    // No token.
    let err = c
        .get_variable(Request::new(get(&info.session_id)))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::Unauthenticated, ErrorKind::Unauthenticated);
    assert!(message.contains("x-dspex-token"), "{message}");
    // A wrong token.
    let err = c
        .get_variable(with_token(get(&info.session_id), &"0".repeat(64)))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, ErrorKind::Unauthenticated);
    // A valid token of another session.
    let other = bridged(&server).await;
    let other_info = other.bridge_session().unwrap();
    let err = c
        .get_variable(authed(get(&info.session_id), &other_info))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::PermissionDenied, ErrorKind::PermissionDenied);
    assert!(message.contains(&info.session_id), "{message}");
    // Every other call is refused the same way.
    let err = c
        .list_variables(authed(
            pb::ListVariablesRequest {
                session_id: info.session_id.clone(),
                ..Default::default()
            },
            &other_info,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = c
        .set_variable(Request::new(set_request(&info.session_id, "t", float(0.9))))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(ctx.get::<f64>("t").unwrap(), 0.5);
    // The right token works.
    let var = c
        .get_variable(authed(get(&info.session_id), &info))
        .await
        .unwrap()
        .into_inner()
        .variable
        .unwrap();
    assert_eq!(var.value, Some(float(0.5)));
    drop((ctx, other));
    server.shutdown().await;
}

#[tokio::test]
async fn variables_over_grpc_follow_the_rules_and_map_errors_to_codes() {
    let server = server();
    let ctx = bridged(&server).await;
    let info = ctx.bridge_session().unwrap();
    let sid = info.session_id.clone();
    let mut c = client(&server).await;
    let t = ctx
        .defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))
        .unwrap();

    // Register from Python's side: the record comes back, Rust sees it with source python.
    let registered = c
        .register_variable(authed(
            pb::RegisterVariableRequest {
                session_id: sid.clone(),
                name: "max_tokens".into(),
                r#type: pb::VariableType::Integer.into(),
                initial: Some(int(256)),
                constraints: Some(pb::Constraints {
                    min: Some(pb::Number {
                        kind: Some(pb::number::Kind::Integer(1)),
                    }),
                    max: Some(pb::Number {
                        kind: Some(pb::number::Kind::Integer(4096)),
                    }),
                    ..Default::default()
                }),
                description: Some("tokens".into()),
                metadata: [("owner".to_owned(), "py".to_owned())].into(),
            },
            &info,
        ))
        .await
        .unwrap()
        .into_inner()
        .variable
        .unwrap();
    assert_eq!(registered.version, 1);
    assert_eq!(registered.source, i32::from(pb::Source::Python));
    let rec = ctx.record("max_tokens").unwrap();
    assert_eq!(rec.id.0, registered.id);
    assert_eq!(rec.constraints, Constraints::range(1, 4096));
    assert_eq!(rec.description.as_deref(), Some("tokens"));
    assert_eq!(rec.source, Source::Python);

    // Registering a name twice.
    let err = c
        .register_variable(authed(
            register_request(&sid, "temperature", pb::VariableType::Float, float(1.0)),
            &info,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::AlreadyExists, ErrorKind::AlreadyExists),
        "variable `temperature` already exists"
    );
    // An invalid declaration, and an initial value of the wrong type.
    let err = c
        .register_variable(authed(
            register_request(&sid, "c", pb::VariableType::Choice, string("a")),
            &info,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, ErrorKind::Spec),
        "invalid variable `c`: a choice variable needs `choices`"
    );
    let err = c
        .register_variable(authed(
            register_request(&sid, "n", pb::VariableType::Integer, float(1.5)),
            &info,
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, ErrorKind::Type);
    let err = c
        .register_variable(authed(
            pb::RegisterVariableRequest {
                session_id: sid.clone(),
                name: "n".into(),
                initial: Some(int(1)),
                ..Default::default()
            },
            &info,
        ))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::InvalidArgument, ErrorKind::InvalidRequest);
    assert!(
        message.starts_with("`type`: the variable type is unspecified"),
        "{message}"
    );

    // Writes: wrong type vs constraint; nothing changes.
    let set = |name: &str, value: pb::Value| set_request(&sid, name, value);
    let before = t.record().unwrap();
    let err = c
        .set_variable(authed(set("temperature", string("hot")), &info))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, ErrorKind::Type),
        "temperature: \"hot\" is a string, expected a float"
    );
    let err = c
        .set_variable(authed(set("temperature", float(2.5)), &info))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, ErrorKind::Constraint),
        "temperature: 2.5 is above max 2.0"
    );
    let err = c
        .set_variable(authed(set("max_tokens", boolean(true)), &info))
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, ErrorKind::Type);
    let err = c
        .set_variable(authed(
            pb::SetVariableRequest {
                value: None,
                ..set("temperature", float(0.0))
            },
            &info,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, ErrorKind::InvalidRequest),
        "`value`: a value is required"
    );
    let err = c
        .set_variable(authed(set("nope", float(1.0)), &info))
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, ErrorKind::NotFound);
    assert_eq!(t.record().unwrap(), before);

    // An accepted write, with metadata and compare-and-set.
    let version = c
        .set_variable(authed(
            pb::SetVariableRequest {
                expected_version: Some(1),
                metadata: [("by".to_owned(), "python".to_owned())].into(),
                ..set("temperature", float(1.1))
            },
            &info,
        ))
        .await
        .unwrap()
        .into_inner()
        .version;
    assert_eq!(version, 2);
    let rec = t.record().unwrap();
    assert_eq!((rec.value, rec.source), (Value::Float(1.1), Source::Python));
    assert_eq!(rec.metadata["by"], "python");
    let err = c
        .set_variable(authed(
            pb::SetVariableRequest {
                expected_version: Some(1),
                ..set("temperature", float(1.2))
            },
            &info,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::Aborted, ErrorKind::Conflict),
        "version conflict on `temperature`: expected version 1, found 2"
    );
    assert_eq!(err.metadata().get("x-dspex-actual-version").unwrap(), "2");
    assert_eq!(t.get().unwrap(), 1.1);

    // Several reads: missing names are reported in order.
    let many = c
        .get_variables(authed(
            pb::GetVariablesRequest {
                session_id: sid.clone(),
                names: vec!["max_tokens".into(), "gone".into(), "temperature".into()],
            },
            &info,
        ))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = many.variables.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["max_tokens", "temperature"]);
    assert_eq!(many.missing, ["gone"]);

    // Atomic batches: one bad write and nothing applies; a duplicate is refused.
    let write = |name: &str, value: pb::Value| pb::VariableWrite {
        name: name.into(),
        value: Some(value),
    };
    let batch = |writes| pb::SetVariablesRequest {
        session_id: sid.clone(),
        writes,
    };
    let snapshot = ctx.list(None).unwrap();
    let err = c
        .set_variables(authed(
            batch(vec![
                write("temperature", float(0.1)),
                write("max_tokens", int(0)),
            ]),
            &info,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, ErrorKind::Constraint),
        "max_tokens: 0 is below min 1"
    );
    let err = c
        .set_variables(authed(
            batch(vec![
                write("temperature", float(0.1)),
                write("temperature", float(0.2)),
            ]),
            &info,
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::AlreadyExists, ErrorKind::DuplicateWrite);
    let err = c
        .set_variables(authed(
            batch(vec![pb::VariableWrite {
                name: "temperature".into(),
                value: None,
            }]),
            &info,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, ErrorKind::InvalidRequest),
        "`writes[0].value`: a value is required"
    );
    assert_eq!(ctx.list(None).unwrap(), snapshot);
    let versions = c
        .set_variables(authed(
            batch(vec![
                write("temperature", float(0.1)),
                write("max_tokens", int(8)),
            ]),
            &info,
        ))
        .await
        .unwrap()
        .into_inner()
        .versions;
    assert_eq!(versions, [3, 2]);
    assert_eq!(ctx.get::<i64>("max_tokens").unwrap(), 8);

    // Listing with a glob, and a malformed glob.
    let list = |pattern: &str| pb::ListVariablesRequest {
        session_id: sid.clone(),
        pattern: pattern.into(),
        ..Default::default()
    };
    let listed = c
        .list_variables(authed(list("m*"), &info))
        .await
        .unwrap()
        .into_inner()
        .variables;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].name, "max_tokens");
    assert_eq!(
        listed[0].r#type,
        i32::from(pb::VariableType::Integer),
        "{listed:?}"
    );
    let err = c
        .list_variables(authed(list("["), &info))
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, ErrorKind::Pattern);

    // Deleting.
    let gone = c
        .delete_variable(authed(
            pb::DeleteVariableRequest {
                session_id: sid.clone(),
                name: "max_tokens".into(),
            },
            &info,
        ))
        .await
        .unwrap()
        .into_inner()
        .variable
        .unwrap();
    assert_eq!(gone.value, Some(int(8)));
    assert!(!ctx.exists("max_tokens"));
    drop((t, ctx));
    server.shutdown().await;
}

#[tokio::test]
async fn watch_streams_share_the_contexts_hub_and_end_with_the_session() {
    let server = server();
    let ctx = bridged(&server).await;
    let info = ctx.bridge_session().unwrap();
    let n = ctx.defvariable::<i64>("n", 0, Constraints::none()).unwrap();
    let mut c = client(&server).await;
    let mut stream = c
        .watch_variables(authed(
            pb::WatchVariablesRequest {
                session_id: info.session_id.clone(),
                names: vec!["n".into()],
                include_initial: true,
            },
            &info,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut rust_watcher = ctx.watch(&["n"]).unwrap();
    let initial = stream.next().await.unwrap().unwrap();
    assert_eq!(initial.kind, i32::from(pb::UpdateKind::Initial));
    assert_eq!((initial.new_value, initial.version), (Some(int(0)), 1));
    // A Rust write reaches both the gRPC stream and the Rust watcher.
    for i in 1..=100 {
        n.set(i).unwrap();
    }
    for i in 1..=100 {
        let u = stream.next().await.unwrap().unwrap();
        assert_eq!(u.kind, i32::from(pb::UpdateKind::Updated));
        assert_eq!((u.old_value, u.new_value), (Some(int(i - 1)), Some(int(i))));
        assert_eq!(u.source, i32::from(pb::Source::Rust));
        assert!(u.at.is_some());
    }
    // A gRPC write reaches the Rust watcher with source python.
    for _ in 1..=100 {
        rust_watcher.recv().await.unwrap();
    }
    c.set_variable(authed(set_request(&info.session_id, "n", int(-1)), &info))
        .await
        .unwrap();
    match rust_watcher.recv().await.unwrap() {
        WatchEvent::Updated(change) => {
            assert_eq!(change.new, Value::Integer(-1));
            assert_eq!(change.source, Source::Python);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        stream.next().await.unwrap().unwrap().source,
        i32::from(pb::Source::Python)
    );
    // Watching a missing variable is an error, not an empty stream.
    let err = c
        .watch_variables(authed(
            pb::WatchVariablesRequest {
                session_id: info.session_id.clone(),
                names: vec!["nope".into()],
                include_initial: false,
            },
            &info,
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, ErrorKind::NotFound);
    // Dropping the context ends the stream.
    drop((n, rust_watcher, ctx));
    assert!(
        tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("the stream ends when its session does")
            .is_none()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn remote_sessions_live_by_ttl_and_heartbeat() {
    let server = server();
    let mut c = client(&server).await;
    let s = c
        .initialize_session(pb::InitializeSessionRequest {
            ttl_seconds: 0,
            metadata: [("worker".to_owned(), "1".to_owned())].into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.ttl_seconds, 300);
    assert_eq!(s.token.len(), 64);
    assert!(server.has_session(&s.session_id));
    let beat = c
        .heartbeat(with_token(
            pb::HeartbeatRequest {
                session_id: s.session_id.clone(),
            },
            &s.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(beat.expires_at.unwrap().seconds > 0);
    c.register_variable(with_token(
        register_request(&s.session_id, "x", pb::VariableType::Boolean, boolean(true)),
        &s.token,
    ))
    .await
    .unwrap();
    let dropped = c
        .cleanup_session(with_token(
            pb::CleanupSessionRequest {
                session_id: s.session_id.clone(),
            },
            &s.token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dropped.variables_dropped, 1);
    assert!(!server.has_session(&s.session_id));
    let err = c
        .heartbeat(with_token(
            pb::HeartbeatRequest {
                session_id: s.session_id.clone(),
            },
            &s.token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    // A context's session cannot be cleaned up over gRPC.
    let ctx = bridged(&server).await;
    let info = ctx.bridge_session().unwrap();
    let err = c
        .cleanup_session(authed(
            pb::CleanupSessionRequest {
                session_id: info.session_id.clone(),
            },
            &info,
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::FailedPrecondition, ErrorKind::SessionOwned);
    assert!(server.has_session(&info.session_id));

    // TTL bounds.
    let err = c
        .initialize_session(pb::InitializeSessionRequest {
            ttl_seconds: 1 << 40,
            metadata: Default::default(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, ErrorKind::Limit);

    // A session nobody heartbeats expires (liveness: within the 30 s bound of `eventually`).
    let short = c
        .initialize_session(pb::InitializeSessionRequest {
            ttl_seconds: 1,
            metadata: Default::default(),
        })
        .await
        .unwrap()
        .into_inner();
    eventually("the 1 s session expires and is reaped", async || {
        !server.has_session(&short.session_id)
    })
    .await;
    let err = c
        .heartbeat(with_token(
            pb::HeartbeatRequest {
                session_id: short.session_id.clone(),
            },
            &short.token,
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, ErrorKind::Unauthenticated);
    drop(ctx);
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_requests_are_refused_and_change_nothing() {
    let server = server();
    let ctx = bridged(&server).await;
    let info = ctx.bridge_session().unwrap();
    let sid = info.session_id.clone();
    ctx.defvariable::<String>("s", "x", Constraints::none())
        .unwrap();
    ctx.defvariable::<dspex::Embedding>("e", vec![0.0f32], Constraints::none())
        .unwrap();
    let before = ctx.list(None).unwrap();
    let mut c = client(&server).await;

    // A message over MAX_REQUEST_BYTES never reaches the store.
    let err = c
        .set_variable(authed(
            set_request(&sid, "s", string(&"x".repeat(MAX_REQUEST_BYTES + 1))),
            &info,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{err:?}");
    // A string over MAX_STRING_BYTES.
    let err = c
        .set_variable(authed(
            set_request(&sid, "s", string(&"x".repeat(MAX_STRING_BYTES + 1))),
            &info,
        ))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::InvalidArgument, ErrorKind::Limit);
    assert!(message.contains("MAX_STRING_BYTES"), "{message}");
    // An embedding over MAX_EMBEDDING_DIMENSIONS.
    let err = c
        .set_variable(authed(
            pb::SetVariableRequest {
                session_id: sid.clone(),
                name: "e".into(),
                value: Some(pb::Value {
                    kind: Some(pb::value::Kind::EmbeddingValue(pb::Embedding {
                        values: vec![0.5; MAX_EMBEDDING_DIMENSIONS + 1],
                    })),
                }),
                ..Default::default()
            },
            &info,
        ))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::InvalidArgument, ErrorKind::Limit);
    assert!(message.contains("MAX_EMBEDDING_DIMENSIONS"), "{message}");
    // Too many names, too many writes, too much metadata.
    let err = c
        .get_variables(authed(
            pb::GetVariablesRequest {
                session_id: sid.clone(),
                names: vec!["s".into(); MAX_NAMES_PER_REQUEST + 1],
            },
            &info,
        ))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::InvalidArgument, ErrorKind::Limit);
    assert!(message.contains("MAX_NAMES_PER_REQUEST"), "{message}");
    let err = c
        .set_variables(authed(
            pb::SetVariablesRequest {
                session_id: sid.clone(),
                writes: vec![
                    pb::VariableWrite {
                        name: "s".into(),
                        value: Some(string("y")),
                    };
                    MAX_WRITES_PER_BATCH + 1
                ],
            },
            &info,
        ))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::InvalidArgument, ErrorKind::Limit);
    assert!(message.contains("MAX_WRITES_PER_BATCH"), "{message}");
    let err = c
        .set_variable(authed(
            pb::SetVariableRequest {
                session_id: sid.clone(),
                name: "s".into(),
                value: Some(string("y")),
                metadata: (0..=MAX_METADATA_ENTRIES)
                    .map(|i| (format!("k{i}"), String::new()))
                    .collect(),
                ..Default::default()
            },
            &info,
        ))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::InvalidArgument, ErrorKind::Limit);
    assert!(message.contains("MAX_METADATA_ENTRIES"), "{message}");
    assert_eq!(ctx.list(None).unwrap(), before);
    drop(ctx);
    server.shutdown().await;
}

#[tokio::test]
async fn full_sessions_and_servers_are_refused() {
    let server = server();
    let ctx = bridged(&server).await;
    let info = ctx.bridge_session().unwrap();
    let mut c = client(&server).await;

    // Variables per session (gRPC registrations).
    for i in 0..MAX_VARIABLES_PER_SESSION {
        c.register_variable(authed(
            pb::RegisterVariableRequest {
                session_id: info.session_id.clone(),
                name: format!("v{i}"),
                r#type: pb::VariableType::Integer.into(),
                initial: Some(int(0)),
                ..Default::default()
            },
            &info,
        ))
        .await
        .unwrap();
    }
    let err = c
        .register_variable(authed(
            register_request(
                &info.session_id,
                "one_more",
                pb::VariableType::Integer,
                int(0),
            ),
            &info,
        ))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::ResourceExhausted, ErrorKind::Limit);
    assert!(message.contains("MAX_VARIABLES_PER_SESSION"), "{message}");
    assert!(!ctx.exists("one_more"));
    // Rust itself is not limited.
    ctx.defvariable::<i64>("rust_side", 0, Constraints::none())
        .unwrap();

    // Watch streams per session; a closed stream frees its slot.
    let watch = || {
        authed(
            pb::WatchVariablesRequest {
                session_id: info.session_id.clone(),
                names: vec![],
                include_initial: false,
            },
            &info,
        )
    };
    let mut streams = Vec::new();
    for _ in 0..MAX_WATCHERS_PER_SESSION {
        streams.push(c.watch_variables(watch()).await.unwrap().into_inner());
    }
    let err = c.watch_variables(watch()).await.unwrap_err();
    let message = assert_status(&err, Code::ResourceExhausted, ErrorKind::Limit);
    assert!(message.contains("MAX_WATCHERS_PER_SESSION"), "{message}");
    streams.pop();
    let mut again = None;
    eventually("a closed watch stream frees its slot", async || {
        again = c.watch_variables(watch()).await.ok();
        again.is_some()
    })
    .await;

    // Sessions created over gRPC.
    let mut remote = Vec::new();
    for _ in 0..MAX_REMOTE_SESSIONS {
        remote.push(
            c.initialize_session(pb::InitializeSessionRequest::default())
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let err = c
        .initialize_session(pb::InitializeSessionRequest::default())
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::ResourceExhausted, ErrorKind::Limit);
    assert!(message.contains("MAX_REMOTE_SESSIONS"), "{message}");
    // Contexts still get sessions.
    let another = bridged(&server).await;
    assert!(another.bridge_session().is_some());
    drop((streams, again, another, ctx));
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams_and_refuses_new_sessions() {
    let server = server();
    let ctx = bridged(&server).await;
    let info = ctx.bridge_session().unwrap();
    ctx.defvariable::<bool>("b", false, Constraints::none())
        .unwrap();
    let mut c = client(&server).await;
    let mut stream = c
        .watch_variables(authed(
            pb::WatchVariablesRequest {
                session_id: info.session_id.clone(),
                names: vec![],
                include_initial: false,
            },
            &info,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(server.is_running());
    server.shutdown().await;
    assert!(!server.is_running());
    // The stream ended (its end or an error, never a hang).
    let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("the stream ends with the server");
    assert!(!matches!(next, Some(Ok(_))), "{next:?}");
    assert!(c.ping(pb::PingRequest {}).await.is_err());
    // The context keeps its variables in-process; new sessions are refused.
    ctx.set("b", true).unwrap();
    let err = Context::builder()
        .bridged()
        .server(server.clone())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, dspex::Error::Bridge { message, .. } if message.contains("stopped")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_non_loopback_address_needs_an_explicit_opt_in() {
    let config = dspex::bridge::BridgeConfig::default().tcp("0.0.0.0:0".parse().unwrap());
    let err = dspex::bridge::BridgeServer::start(config).unwrap_err();
    assert!(err.to_string().contains("not a loopback address"), "{err}");
}

async fn bridged_with_history_limit(server: &dspex::bridge::BridgeServer, limit: usize) -> Context {
    Context::builder()
        .bridged()
        .server(server.clone())
        .history_limit(limit)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn history_and_rollback_over_grpc_refuse_hostile_requests() {
    let server = server();
    let ctx = bridged_with_history_limit(&server, 3).await;
    let info = ctx.bridge_session().unwrap();
    let sid = info.session_id.clone();
    let mut c = client(&server).await;
    let t = ctx
        .defvariable_with::<f64>(
            dspex::VariableSpec::new("t", dspex::VarType::Float, 0.1)
                .with_constraints(Constraints::range(0.0, 1.0))
                .with_metadata("owner", "rust"),
        )
        .unwrap();
    t.set(0.2).unwrap();
    c.set_variable(authed(
        pb::SetVariableRequest {
            metadata: [("by".to_owned(), "python".to_owned())].into(),
            ..set_request(&sid, "t", float(0.3))
        },
        &info,
    ))
    .await
    .unwrap();
    let history = |name: &str, limit: Option<u64>| pb::GetHistoryRequest {
        session_id: sid.clone(),
        name: name.into(),
        limit,
    };

    // Newest first, with source, the write's metadata and time; `limit` counts from the newest.
    let entries = c
        .get_history(authed(history("t", None), &info))
        .await
        .unwrap()
        .into_inner()
        .entries;
    let versions: Vec<u64> = entries.iter().map(|e| e.version).collect();
    assert_eq!(versions, [3, 2, 1]);
    assert_eq!(entries[0].value, Some(float(0.3)));
    assert_eq!(entries[0].source, i32::from(pb::Source::Python));
    assert_eq!(entries[0].metadata["by"], "python");
    assert_eq!(entries[1].source, i32::from(pb::Source::Rust));
    assert!(entries[1].metadata.is_empty());
    assert_eq!(entries[2].metadata["owner"], "rust");
    assert!(entries.iter().all(|e| e.at.is_some()));
    for (limit, expected) in [(0, 0), (2, 2), (MAX_HISTORY_ENTRIES_PER_REQUEST as u64, 3)] {
        let got = c
            .get_history(authed(history("t", Some(limit)), &info))
            .await
            .unwrap()
            .into_inner()
            .entries;
        assert_eq!(got.len(), expected, "limit {limit}");
    }
    // Huge limits, an unknown variable.
    for limit in [MAX_HISTORY_ENTRIES_PER_REQUEST as u64 + 1, u64::MAX] {
        let err = c
            .get_history(authed(history("t", Some(limit)), &info))
            .await
            .unwrap_err();
        let message = assert_status(&err, Code::InvalidArgument, ErrorKind::Limit);
        assert!(
            message.contains("MAX_HISTORY_ENTRIES_PER_REQUEST"),
            "{message}"
        );
    }
    let err = c
        .get_history(authed(history("nope", None), &info))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::NotFound, ErrorKind::NotFound),
        "variable `nope` not found"
    );

    // Rollback from Python: a new version, its metadata, seen by Rust as a Python write.
    let mut watcher = ctx.watch(&["t"]).unwrap();
    let rollback = |name: &str, version: u64| pb::RollbackRequest {
        session_id: sid.clone(),
        name: name.into(),
        version,
    };
    let version = c
        .rollback(authed(rollback("t", 1), &info))
        .await
        .unwrap()
        .into_inner()
        .version;
    assert_eq!(version, 4);
    let rec = t.record().unwrap();
    assert_eq!((rec.value, rec.source), (Value::Float(0.1), Source::Python));
    assert_eq!(rec.metadata["rolled_back_from"], "1");
    match watcher.recv().await.unwrap() {
        WatchEvent::Updated(change) => {
            assert_eq!(
                (change.old, change.new),
                (Value::Float(0.3), Value::Float(0.1))
            );
            assert_eq!((change.version, change.source), (4, Source::Python));
        }
        other => panic!("unexpected {other:?}"),
    }
    // Versions trimmed (the limit is 3: versions 2 to 4 are kept), never written, 0, huge.
    let before = (t.record().unwrap(), ctx.history("t", 10).unwrap());
    for version in [1, 0, 5, u64::MAX] {
        let err = c
            .rollback(authed(rollback("t", version), &info))
            .await
            .unwrap_err();
        assert_eq!(
            assert_status(&err, Code::NotFound, ErrorKind::VersionNotFound),
            format!(
                "variable `t` has no version {version} in its history, which keeps versions 2 to 4"
            )
        );
    }
    let err = c
        .rollback(authed(rollback("nope", 1), &info))
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, ErrorKind::NotFound);
    assert_eq!((t.record().unwrap(), ctx.history("t", 10).unwrap()), before);

    // Another session's token, or none, reaches neither RPC.
    let other = bridged(&server).await;
    let other_info = other.bridge_session().unwrap();
    let err = c
        .get_history(authed(history("t", None), &other_info))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, ErrorKind::PermissionDenied);
    let err = c
        .rollback(authed(rollback("t", 2), &other_info))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, ErrorKind::PermissionDenied);
    let err = c
        .rollback(Request::new(rollback("t", 2)))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, ErrorKind::Unauthenticated);
    let err = c
        .get_history(with_token(history("t", None), &"0".repeat(64)))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, ErrorKind::Unauthenticated);
    assert_eq!((t.record().unwrap(), ctx.history("t", 10).unwrap()), before);
    drop((t, watcher, ctx, other));
    server.shutdown().await;
}

#[tokio::test]
async fn read_only_variables_refuse_every_python_write_and_show_the_flag() {
    let server = server();
    let ctx = bridged(&server).await;
    let info = ctx.bridge_session().unwrap();
    let sid = info.session_id.clone();
    let mut c = client(&server).await;
    let locked = ctx
        .defvariable_with::<f64>(
            dspex::VariableSpec::new("locked", dspex::VarType::Float, 0.5).readonly(),
        )
        .unwrap();
    locked.set(0.6).unwrap();
    ctx.defvariable::<f64>("open", 0.5, Constraints::none())
        .unwrap();
    let snapshot = || {
        (
            ctx.list(None).unwrap(),
            ctx.history("locked", 10).unwrap(),
            ctx.history("open", 10).unwrap(),
        )
    };
    let before = snapshot();
    let message = "variable `locked` is read-only: only Rust code may write it";

    let err = c
        .set_variable(authed(set_request(&sid, "locked", float(0.9)), &info))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::PermissionDenied, ErrorKind::ReadOnly),
        message
    );
    // A batch with one read-only variable is refused as a whole.
    let write = |name: &str| pb::VariableWrite {
        name: name.into(),
        value: Some(float(0.9)),
    };
    let err = c
        .set_variables(authed(
            pb::SetVariablesRequest {
                session_id: sid.clone(),
                writes: vec![write("open"), write("locked")],
            },
            &info,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::PermissionDenied, ErrorKind::ReadOnly),
        message
    );
    let err = c
        .rollback(authed(
            pb::RollbackRequest {
                session_id: sid.clone(),
                name: "locked".into(),
                version: 1,
            },
            &info,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::PermissionDenied, ErrorKind::ReadOnly),
        message
    );
    let err = c
        .delete_variable(authed(
            pb::DeleteVariableRequest {
                session_id: sid.clone(),
                name: "locked".into(),
            },
            &info,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::PermissionDenied, ErrorKind::ReadOnly),
        message
    );
    assert_eq!(snapshot(), before);

    // Reads work, and show the flag.
    let var = c
        .get_variable(authed(
            pb::GetVariableRequest {
                session_id: sid.clone(),
                name: "locked".into(),
            },
            &info,
        ))
        .await
        .unwrap()
        .into_inner()
        .variable
        .unwrap();
    assert!(var.readonly);
    assert_eq!(var.value, Some(float(0.6)));
    let listed = c
        .list_variables(authed(
            pb::ListVariablesRequest {
                session_id: sid.clone(),
                ..Default::default()
            },
            &info,
        ))
        .await
        .unwrap()
        .into_inner()
        .variables;
    let flags: Vec<(&str, bool)> = listed
        .iter()
        .map(|v| (v.name.as_str(), v.readonly))
        .collect();
    assert_eq!(flags, [("locked", true), ("open", false)]);
    // Python writes the other variable; Rust writes the read-only one.
    c.set_variable(authed(set_request(&sid, "open", float(0.1)), &info))
        .await
        .unwrap();
    locked.rollback(1).unwrap();
    assert_eq!(locked.get().unwrap(), 0.5);
    drop((locked, ctx));
    server.shutdown().await;
}
