//! The bounds of the bridge hold against a hostile client: status messages quote at most a
//! short prefix of what a request sent, a full session can always be listed and read, the
//! metadata of a variable stops growing at its bound (over gRPC and from Rust), and a watcher
//! that does not read holds a bounded queue and is told what it missed. Each bound is tested at
//! and over its constant, with the status code, the error kind and an unchanged store.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::collections::BTreeMap;

use dspex::wire::limits::{
    MAX_ECHO_CHARS, MAX_LIST_PAGE_BYTES, MAX_LIST_PAGE_SIZE, MAX_METADATA_BYTES,
    MAX_METADATA_BYTES_PER_VARIABLE, MAX_METADATA_ENTRIES_PER_VARIABLE, MAX_NAME_LEN,
    MAX_RESPONSE_BYTES, MAX_SESSION_ID_BYTES, MAX_STATUS_MESSAGE_BYTES, MAX_STRING_BYTES,
    MAX_VARIABLES_PER_SESSION, MAX_WATCH_QUEUE_BYTES, WATCH_QUEUE_CAPACITY,
};
use dspex::wire::proto::{self as pb, ErrorKind};
use dspex::{Constraints, Error, SetOptions, VarType, VariableSpec};
use prost::Message;
use tokio_stream::StreamExt;
use tonic::Code;

mod bridge_common;
use bridge_common::*;

fn get(session_id: &str, name: &str) -> pb::GetVariableRequest {
    pb::GetVariableRequest {
        session_id: session_id.to_owned(),
        name: name.to_owned(),
    }
}

#[tokio::test]
async fn status_messages_quote_only_a_short_prefix_of_the_input() {
    let server = server();
    let ctx = bridged(&server).await;
    let info = ctx.bridge_session().unwrap();
    let sid = info.session_id.clone();
    let choices: Vec<String> = (0..50).map(|i| format!("choice-{i}")).collect();
    ctx.register(
        VariableSpec::new("model", VarType::Choice, "choice-0")
            .with_constraints(Constraints::choices(choices)),
    )
    .unwrap();
    let before = ctx.list(None).unwrap();
    let mut c = client(&server).await;

    // A name at the bound is looked up; one over it is refused without being quoted.
    let at = "n".repeat(MAX_NAME_LEN);
    let err = c
        .get_variable(authed(get(&sid, &at), &info))
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, ErrorKind::NotFound);
    let huge = "n".repeat(1 << 20);
    for err in [
        c.get_variable(authed(get(&sid, &huge), &info))
            .await
            .unwrap_err(),
        c.set_variable(authed(set_request(&sid, &huge, string("x")), &info))
            .await
            .unwrap_err(),
        c.register_variable(authed(
            register_request(&sid, &huge, pb::VariableType::Boolean, boolean(true)),
            &info,
        ))
        .await
        .unwrap_err(),
    ] {
        let message = assert_status(&err, Code::InvalidArgument, ErrorKind::Limit);
        assert_eq!(
            message,
            format!(
                "`name`: 1048576 bytes is over the limit of {MAX_NAME_LEN} bytes (MAX_NAME_LEN)"
            )
        );
    }
    // A session id over its bound, likewise.
    let err = c
        .get_variable(authed(get(&"s".repeat(1 << 20), "model"), &info))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::InvalidArgument, ErrorKind::Limit);
    assert!(message.contains("MAX_SESSION_ID_BYTES"), "{message}");
    assert!(message.len() < 200, "{message}");
    let at = "s".repeat(MAX_SESSION_ID_BYTES);
    let err = c
        .get_variable(authed(get(&at, "model"), &info))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, ErrorKind::PermissionDenied);

    // The largest value a request may carry, refused by a constraint: the client gets the real
    // status, with the value quoted by its first characters and the choices elided.
    let value = "v".repeat(MAX_STRING_BYTES);
    let err = c
        .set_variable(authed(set_request(&sid, "model", string(&value)), &info))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::InvalidArgument, ErrorKind::Constraint);
    assert!(
        message.starts_with(&format!(
            "model: \"{}\"... ({MAX_STRING_BYTES} bytes) is not one of the choices \"choice-0\"",
            "v".repeat(MAX_ECHO_CHARS)
        )),
        "{message}"
    );
    assert!(message.ends_with(", ... (50 choices)"), "{message}");
    assert!(message.len() <= MAX_STATUS_MESSAGE_BYTES);
    assert_eq!(ctx.list(None).unwrap(), before);
    drop(ctx);
    server.shutdown().await;
}

/// Every page of the listing of `info`'s session, in order.
async fn list_all(
    c: &mut Client,
    info: &dspex::bridge::SessionInfo,
    page_size: u32,
) -> Vec<pb::ListVariablesResponse> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list_variables(authed(
                pb::ListVariablesRequest {
                    session_id: info.session_id.clone(),
                    page_size,
                    page_token: token,
                    ..Default::default()
                },
                info,
            ))
            .await
            .unwrap()
            .into_inner();
        token = page.next_page_token.clone();
        pages.push(page);
        if token.is_empty() {
            return pages;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_session_can_always_be_listed_and_read_whole() {
    let server = server();
    let ctx = bridged(&server).await;
    let info = ctx.bridge_session().unwrap();
    // The largest records the limits allow: a value of MAX_STRING_BYTES and metadata up to
    // MAX_METADATA_BYTES_PER_VARIABLE, MAX_VARIABLES_PER_SESSION of them (128 MiB in all, twice
    // the largest response).
    let value_len = MAX_METADATA_BYTES_PER_VARIABLE / MAX_METADATA_ENTRIES_PER_VARIABLE - 4;
    let metadata: BTreeMap<String, String> = (0..MAX_METADATA_ENTRIES_PER_VARIABLE)
        .map(|i| (format!("k{i:03}"), "m".repeat(value_len)))
        .collect();
    for i in 0..MAX_VARIABLES_PER_SESSION {
        let mut spec = VariableSpec::new(
            format!("v{i:04}"),
            VarType::String,
            "x".repeat(MAX_STRING_BYTES),
        );
        spec.metadata = metadata.clone();
        ctx.register(spec).unwrap();
    }
    let mut c = client(&server).await;
    let pages = list_all(&mut c, &info, 0).await;
    let names: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.variables.iter().map(|v| v.name.as_str()))
        .collect();
    let expected: Vec<String> = (0..MAX_VARIABLES_PER_SESSION)
        .map(|i| format!("v{i:04}"))
        .collect();
    assert_eq!(names, expected);
    for page in &pages {
        assert!(
            page.encoded_len() <= MAX_LIST_PAGE_BYTES + 1024,
            "{}",
            page.encoded_len()
        );
        assert!(
            page.variables
                .iter()
                .all(|v| v.metadata.len() == MAX_METADATA_ENTRIES_PER_VARIABLE)
        );
    }
    assert!(pages.len() > 1);
    // Pages at and over the largest page size.
    let pages = list_all(&mut c, &info, u32::try_from(MAX_LIST_PAGE_SIZE).unwrap()).await;
    assert_eq!(
        pages.iter().map(|p| p.variables.len()).sum::<usize>(),
        MAX_VARIABLES_PER_SESSION
    );
    let err = c
        .list_variables(authed(
            pb::ListVariablesRequest {
                session_id: info.session_id.clone(),
                page_size: u32::try_from(MAX_LIST_PAGE_SIZE + 1).unwrap(),
                ..Default::default()
            },
            &info,
        ))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::InvalidArgument, ErrorKind::Limit);
    assert!(message.contains("MAX_LIST_PAGE_SIZE"), "{message}");
    // Every record reads whole on its own; asking for all of them at once would not fit in a
    // response and is refused, while as many as fit are answered.
    let one = c
        .get_variable(authed(get(&info.session_id, "v1023"), &info))
        .await
        .unwrap()
        .into_inner()
        .variable
        .unwrap();
    let record_bytes = one.encoded_len() + 8;
    let fitting = MAX_RESPONSE_BYTES / record_bytes;
    let names = |n: usize| pb::GetVariablesRequest {
        session_id: info.session_id.clone(),
        names: expected[..n].to_vec(),
    };
    let many = c
        .get_variables(authed(names(fitting), &info))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(many.variables.len(), fitting);
    let err = c
        .get_variables(authed(names(MAX_VARIABLES_PER_SESSION), &info))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::ResourceExhausted, ErrorKind::Limit);
    assert!(message.contains("MAX_RESPONSE_BYTES"), "{message}");
    drop(ctx);
    server.shutdown().await;
}

#[tokio::test]
async fn the_metadata_of_a_variable_is_bounded_in_entries_and_bytes() {
    let server = server();
    let ctx = bridged(&server).await;
    let info = ctx.bridge_session().unwrap();
    let sid = info.session_id.clone();
    let t = ctx
        .defvariable::<f64>("t", 0.5, Constraints::range(0.0, 1.0))
        .unwrap();
    let mut c = client(&server).await;
    let write = |metadata: BTreeMap<String, String>| pb::SetVariableRequest {
        metadata: metadata.into_iter().collect(),
        ..set_request(&sid, "t", float(0.5))
    };
    // Writes merge metadata up to the bound of entries...
    for i in 0..MAX_METADATA_ENTRIES_PER_VARIABLE {
        c.set_variable(authed(write([(format!("k{i}"), "v".into())].into()), &info))
            .await
            .unwrap();
    }
    // ...overwriting an entry is fine at the bound; one more entry is refused.
    c.set_variable(authed(write([("k0".into(), "w".into())].into()), &info))
        .await
        .unwrap();
    let before = t.record().unwrap();
    let err = c
        .set_variable(authed(
            write([("one_more".into(), "v".into())].into()),
            &info,
        ))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::ResourceExhausted, ErrorKind::Limit);
    assert!(
        message.contains("MAX_METADATA_ENTRIES_PER_VARIABLE"),
        "{message}"
    );
    assert_eq!(t.record().unwrap(), before);
    // The same bound for Rust writes.
    let err = ctx
        .set_with("t", 0.7, &SetOptions::default().with_metadata("rust", "x"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Limit { limit, .. } if limit == "MAX_METADATA_ENTRIES_PER_VARIABLE"),
        "{err}"
    );
    assert_eq!(t.record().unwrap(), before);
    // And for the other writes that carry metadata: an atomic batch (as the tuner's `apply`
    // writes) and a rollback (`rolled_back_from`).
    let metadata = BTreeMap::from([("tuned_at".to_owned(), "now".to_owned())]);
    let err = ctx
        .update_many_with([("t", dspex::Value::from(0.7))], &metadata)
        .unwrap_err();
    assert!(matches!(&err, Error::Limit { .. }), "{err}");
    let err = ctx.rollback("t", 1).unwrap_err();
    assert!(
        matches!(&err, Error::Limit { limit, .. } if limit == "MAX_METADATA_ENTRIES_PER_VARIABLE"),
        "{err}"
    );
    assert_eq!(t.record().unwrap(), before);

    // Bytes: large values reach the bound exactly, one byte more is refused.
    let u = ctx.defvariable::<i64>("u", 0, Constraints::none()).unwrap();
    let entries = MAX_METADATA_BYTES_PER_VARIABLE / MAX_METADATA_BYTES;
    let key_len = 4;
    let value_len = MAX_METADATA_BYTES_PER_VARIABLE / entries - key_len;
    let full: BTreeMap<String, String> = (0..entries)
        .map(|i| (format!("b{i:03}"), "x".repeat(value_len)))
        .collect();
    assert_eq!(
        full.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>(),
        MAX_METADATA_BYTES_PER_VARIABLE
    );
    for chunk in full.iter().collect::<Vec<_>>().chunks(32) {
        let metadata = chunk
            .iter()
            .map(|(k, v)| ((*k).clone(), (*v).clone()))
            .collect();
        c.set_variable(authed(
            pb::SetVariableRequest {
                metadata,
                ..set_request(&sid, "u", int(1))
            },
            &info,
        ))
        .await
        .unwrap();
    }
    let before = u.record().unwrap();
    let err = c
        .set_variable(authed(
            pb::SetVariableRequest {
                metadata: [("b000".to_owned(), "x".repeat(value_len + 1))].into(),
                ..set_request(&sid, "u", int(2))
            },
            &info,
        ))
        .await
        .unwrap_err();
    let message = assert_status(&err, Code::ResourceExhausted, ErrorKind::Limit);
    assert!(
        message.contains("MAX_METADATA_BYTES_PER_VARIABLE"),
        "{message}"
    );
    assert_eq!(u.record().unwrap(), before);
    // A registration over the bound is refused as a whole.
    let mut spec = VariableSpec::new("w", VarType::Boolean, true);
    spec.metadata = (0..=MAX_METADATA_ENTRIES_PER_VARIABLE)
        .map(|i| (format!("k{i}"), String::new()))
        .collect();
    assert!(matches!(ctx.register(spec), Err(Error::Limit { .. })));
    assert!(!ctx.exists("w"));
    drop((t, u, ctx));
    server.shutdown().await;
}

/// Reads a watch stream until it has accounted for `total` updates; returns (updates
/// delivered, missed in all).
async fn drain(stream: &mut tonic::Streaming<pb::VariableUpdate>, total: u64) -> (u64, u64) {
    let (mut delivered, mut missed) = (0, 0);
    while delivered + missed < total {
        let update = stream.next().await.unwrap().unwrap();
        if update.kind == i32::from(pb::UpdateKind::Lagged) {
            missed += update.missed;
        } else {
            delivered += 1;
        }
    }
    (delivered, missed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_does_not_read_holds_a_bounded_queue_and_is_told_what_it_missed() {
    let server = server();
    let ctx = bridged(&server).await;
    let info = ctx.bridge_session().unwrap();
    let big = ctx
        .defvariable::<String>("big", String::new(), Constraints::none())
        .unwrap();
    let small = ctx
        .defvariable::<i64>("small", 0, Constraints::none())
        .unwrap();
    let mut c = client(&server).await;
    let watch = |name: &str| {
        authed(
            pb::WatchVariablesRequest {
                session_id: info.session_id.clone(),
                names: vec![name.to_owned()],
                include_initial: false,
            },
            &info,
        )
    };

    // Events: at the bound nothing is missed; over it the count is reported. The watcher does
    // not read while the writes happen (and writers never wait for it).
    let mut stream = c
        .watch_variables(watch("small"))
        .await
        .unwrap()
        .into_inner();
    let at = u64::try_from(WATCH_QUEUE_CAPACITY).unwrap();
    for i in 1..=at {
        small.set(i64::try_from(i).unwrap()).unwrap();
    }
    assert_eq!(drain(&mut stream, at).await, (at, 0));
    let over = at + 20_000;
    for i in 1..=over {
        small.set(i64::try_from(i).unwrap()).unwrap();
    }
    let (delivered, missed) = drain(&mut stream, over).await;
    assert!(missed > 0, "{delivered} delivered");

    // Bytes: values of MAX_STRING_BYTES (each update carries the old and the new value). Under
    // the byte budget nothing is missed; far over it the queue holds no more than the budget.
    let value = |i: u64| format!("{i:08}{}", "x".repeat(MAX_STRING_BYTES - 8));
    let mut stream = c.watch_variables(watch("big")).await.unwrap().into_inner();
    let update_bytes = u64::try_from(2 * MAX_STRING_BYTES + 64).unwrap();
    let fit = u64::try_from(MAX_WATCH_QUEUE_BYTES).unwrap() / update_bytes;
    for i in 1..=fit {
        big.set(value(i)).unwrap();
    }
    assert_eq!(drain(&mut stream, fit).await, (fit, 0));
    let over = 10 * fit;
    for i in 1..=over {
        big.set(value(i)).unwrap();
    }
    let (delivered, missed) = drain(&mut stream, over).await;
    assert!(missed > 0, "{delivered} delivered");
    assert_eq!(delivered + missed, over);
    drop((big, small, ctx));
    server.shutdown().await;
}
