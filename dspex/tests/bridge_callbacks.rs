//! The gRPC `CallbackService` of a real bridge server: a session's Python code calling the Rust
//! callables registered for it. Authentication, one session never reaching another's
//! callables, the argument and result bounds at and over their limits, arguments that are not
//! UTF-8 refused with a kind, errors, panics and timeouts answered as errors (an `inline`
//! tool's too), and calls running concurrently.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dspex::bridge::{BridgeServer, SessionInfo};
use dspex::tools::Callback;
use dspex::wire::limits::{
    MAX_CALLBACK_ARGUMENT_BYTES, MAX_CALLBACK_RESULT_BYTES, MAX_CALLBACK_TIMEOUT,
};
use dspex::wire::proto::callback_service_client::CallbackServiceClient;
use dspex::wire::proto::{self as pb, ErrorKind, callback_response::Outcome};
use dspex::{Constraints, Error, json};
use tokio::sync::Barrier;
use tonic::transport::Channel;
use tonic::{Code, Request};

mod bridge_common;
use bridge_common::*;

async fn callback_client(server: &BridgeServer) -> CallbackServiceClient<Channel> {
    CallbackServiceClient::connect(format!("http://{}", server.address()))
        .await
        .unwrap()
}

fn call(
    info: &SessionInfo,
    name: &str,
    arguments: impl AsRef<[u8]>,
) -> Request<pb::CallbackRequest> {
    authed(
        pb::CallbackRequest {
            session_id: info.session_id.clone(),
            name: name.to_owned(),
            arguments_json: arguments.as_ref().to_vec(),
            call_id: String::new(),
        },
        info,
    )
}

fn echo() -> Callback {
    Callback::new("echo", |call| async move {
        Ok::<_, String>(dspex::JsonValue::Object(call.arguments))
    })
}

#[tokio::test]
async fn a_registered_callable_answers_its_session_only() {
    let server = server();
    let a = bridged(&server).await;
    let b = bridged(&server).await;
    a.register_callback(echo()).await.unwrap();
    b.register_callback(Callback::new("b_only", |_| async {
        Ok::<_, String>(json!("b"))
    }))
    .await
    .unwrap();
    let info_a = a.bridge_session().unwrap();
    let info_b = b.bridge_session().unwrap();
    let mut c = callback_client(&server).await;

    let reply = c
        .call(call(&info_a, "echo", r#"{"x": 1}"#))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.outcome,
        Some(Outcome::ResultJson(r#"{"x":1}"#.into()))
    );

    // Session A's token cannot open session B, nor reach B's callable through A.
    let mut other = call(&info_a, "b_only", "{}");
    other.get_mut().session_id = info_b.session_id.clone();
    let err = c.call(other).await.unwrap_err();
    assert_status(&err, Code::PermissionDenied, ErrorKind::PermissionDenied);
    let err = c.call(call(&info_a, "b_only", "{}")).await.unwrap_err();
    let message = assert_status(&err, Code::NotFound, ErrorKind::NotFound);
    assert!(
        message.contains("has no callable `b_only`; it has: `echo`"),
        "{message}"
    );

    // No token, a wrong token.
    let mut no_token = call(&info_a, "echo", "{}");
    no_token.metadata_mut().remove(dspex::wire::TOKEN_METADATA);
    let err = c.call(no_token).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, ErrorKind::Unauthenticated);
    let err = c
        .call(with_token(
            call(&info_a, "echo", "{}").into_inner(),
            &"0".repeat(64),
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, ErrorKind::Unauthenticated);

    // Arguments that are not a JSON object.
    for bad in ["[1]", "not json", ""] {
        let err = c.call(call(&info_a, "echo", bad)).await.unwrap_err();
        assert_status(&err, Code::InvalidArgument, ErrorKind::InvalidRequest);
    }

    // Unregistered, it is gone.
    assert!(a.unregister_callback("echo"));
    assert!(!a.unregister_callback("echo"));
    let err = c.call(call(&info_a, "echo", "{}")).await.unwrap_err();
    assert_status(&err, Code::NotFound, ErrorKind::NotFound);
}

#[tokio::test]
async fn arguments_that_are_not_utf8_are_refused_with_a_kind_and_never_run() {
    let server = server();
    let ctx = bridged(&server).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    ctx.register_callback(Callback::new("counted", move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, String>(json!("ran")) }
    }))
    .await
    .unwrap();
    let info = ctx.bridge_session().unwrap();
    let mut c = callback_client(&server).await;

    // A lone continuation byte, a truncated sequence, an overlong encoding, a surrogate: the
    // bytes go on the wire as they are, as any client's may.
    let bad: [&[u8]; 4] = [
        b"{\"s\": \"\x80\"}",
        b"{\"s\": \"\xe2\x82\"}",
        b"{\"s\": \"\xc0\xaf\"}",
        b"{\"s\": \"\xed\xa0\x80\"}",
    ];
    for arguments in bad {
        let err = c.call(call(&info, "counted", arguments)).await.unwrap_err();
        let message = assert_status(&err, Code::InvalidArgument, ErrorKind::InvalidRequest);
        assert_eq!(
            message,
            "the arguments of `counted` must be UTF-8 text; byte 7 is not"
        );
    }
    assert_eq!(runs.load(Ordering::SeqCst), 0, "a refused call never runs");

    // The same call in UTF-8 runs.
    let reply = c
        .call(call(&info, "counted", "{\"s\": \"\u{20ac}\"}"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.outcome, Some(Outcome::ResultJson("\"ran\"".into())));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn arguments_and_results_are_bounded() {
    let server = server();
    let ctx = bridged(&server).await;
    ctx.register_callback(echo()).await.unwrap();
    ctx.register_callback(Callback::new("sized", |call| async move {
        let n = call.arguments["n"].as_u64().unwrap();
        // A JSON string of n bytes in all: its quotes and n - 2 letters.
        Ok::<_, String>(json!("x".repeat(usize::try_from(n).unwrap() - 2)))
    }))
    .await
    .unwrap();
    let info = ctx.bridge_session().unwrap();
    let mut c = callback_client(&server).await;

    // `{"s":"..."}` takes 8 bytes besides the string.
    let at_limit = format!(
        r#"{{"s":"{}"}}"#,
        "a".repeat(MAX_CALLBACK_ARGUMENT_BYTES - 8)
    );
    assert_eq!(at_limit.len(), MAX_CALLBACK_ARGUMENT_BYTES);
    let reply = c
        .call(call(&info, "echo", &at_limit))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(reply.outcome, Some(Outcome::ResultJson(_))));
    let over = format!(
        r#"{{"s":"{}"}}"#,
        "a".repeat(MAX_CALLBACK_ARGUMENT_BYTES - 7)
    );
    let err = c.call(call(&info, "echo", &over)).await.unwrap_err();
    let message = assert_status(&err, Code::InvalidArgument, ErrorKind::Limit);
    assert!(message.contains("MAX_CALLBACK_ARGUMENT_BYTES"), "{message}");

    let sized = |n: usize| format!(r#"{{"n":{n}}}"#);
    let reply = c
        .call(call(&info, "sized", sized(MAX_CALLBACK_RESULT_BYTES)))
        .await
        .unwrap()
        .into_inner();
    match reply.outcome {
        Some(Outcome::ResultJson(json)) => assert_eq!(json.len(), MAX_CALLBACK_RESULT_BYTES),
        other => panic!("expected a result, got {other:?}"),
    }
    let reply = c
        .call(call(&info, "sized", sized(MAX_CALLBACK_RESULT_BYTES + 1)))
        .await
        .unwrap()
        .into_inner();
    match reply.outcome {
        Some(Outcome::Error(e)) => assert!(e.contains("MAX_CALLBACK_RESULT_BYTES"), "{e}"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn errors_panics_and_timeouts_are_answers() {
    let server = server();
    let ctx = bridged(&server).await;
    ctx.register_callback(Callback::new("fails", |_| async {
        Err::<dspex::JsonValue, _>("no such document")
    }))
    .await
    .unwrap();
    ctx.register_callback(Callback::new("panics", |_| async {
        let v: Vec<u8> = Vec::new();
        Ok::<_, String>(json!(v[3]))
    }))
    .await
    .unwrap();
    ctx.register_callback(
        Callback::new("slow", |_| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, String>(json!("late"))
        })
        .timeout(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let info = ctx.bridge_session().unwrap();
    let mut c = callback_client(&server).await;
    let error_of = |reply: pb::CallbackResponse| match reply.outcome {
        Some(Outcome::Error(e)) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    let e = error_of(
        c.call(call(&info, "fails", "{}"))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(e, "no such document");
    let e = error_of(
        c.call(call(&info, "panics", "{}"))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(e.starts_with("panicked: index out of bounds"), "{e}");
    let reply = c
        .call(call(&info, "slow", "{}"))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.duration_micros >= 100_000);
    assert_eq!(
        error_of(reply),
        "`slow` timed out after 100ms (its timeout)"
    );
    // The server is still fine.
    ctx.register_callback(echo()).await.unwrap();
    let reply = c
        .call(call(&info, "echo", "{}"))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(reply.outcome, Some(Outcome::ResultJson(_))));
}

/// Halves `n`; refuses odd numbers and panics on zero.
#[dspex::tool(inline, timeout_ms = 200)]
fn halve(n: i64, slow: Option<bool>) -> std::result::Result<i64, String> {
    if slow == Some(true) {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(n != 0, "zero has no half worth computing");
    if n % 2 == 0 {
        Ok(n / 2)
    } else {
        Err(format!("{n} is odd"))
    }
}

#[tokio::test]
async fn an_inline_tool_answers_errors_panics_and_overruns_like_any_tool() {
    let server = server();
    let ctx = bridged(&server).await;
    let def = <halve as dspex::tools::Tool>::def();
    assert!(def.inline);
    ctx.register_callback(def.callback()).await.unwrap();
    let info = ctx.bridge_session().unwrap();
    let mut c = callback_client(&server).await;
    let mut outcome = async |arguments: &str| {
        c.call(call(&info, "halve", arguments))
            .await
            .unwrap()
            .into_inner()
            .outcome
            .unwrap()
    };
    assert_eq!(
        outcome(r#"{"n": 8}"#).await,
        Outcome::ResultJson("4".into())
    );
    assert_eq!(
        outcome(r#"{"n": 7}"#).await,
        Outcome::Error("7 is odd".into())
    );
    let Outcome::Error(panicked) = outcome(r#"{"n": 0}"#).await else {
        panic!("a panic is an error");
    };
    assert!(
        panicked.starts_with("panicked: zero has no half"),
        "{panicked}"
    );
    // Its arguments are checked as any tool's.
    assert_eq!(
        outcome(r#"{"n": "eight"}"#).await,
        Outcome::Error("argument `n` of `halve` must be int, found \"eight\"".into())
    );
    // Nothing stops it midway: a result that came after its timeout is answered with the
    // timeout error.
    assert_eq!(
        outcome(r#"{"n": 8, "slow": true}"#).await,
        Outcome::Error("`halve` timed out after 200ms (its timeout)".into())
    );
    assert_eq!(
        outcome(r#"{"n": 2}"#).await,
        Outcome::ResultJson("1".into())
    );
}

#[tokio::test]
async fn registrations_are_checked() {
    let server = server();
    let ctx = bridged(&server).await;
    let too_long = echo().timeout(MAX_CALLBACK_TIMEOUT + Duration::from_millis(1));
    let err = ctx.register_callback(too_long).await.unwrap_err();
    assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
    assert!(err.to_string().contains("MAX_CALLBACK_TIMEOUT"), "{err}");
    ctx.register_callback(echo().timeout(MAX_CALLBACK_TIMEOUT))
        .await
        .unwrap();
    let err = ctx
        .register_callback(Callback::new("", |_| async { Ok::<_, String>(json!(1)) }))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("name is empty"), "{err}");
}

#[tokio::test]
async fn a_callable_reads_the_context_s_variables() {
    let server = server();
    let ctx = bridged(&server).await;
    ctx.defvariable::<i64>("top_k", 3, Constraints::range(1, 10))
        .unwrap();
    ctx.register_callback(Callback::new("k", |call| async move {
        let k = call.variable("top_k").map_err(|e| e.to_string())?;
        Ok::<_, String>(json!(k.as_i64()))
    }))
    .await
    .unwrap();
    let info = ctx.bridge_session().unwrap();
    let mut c = callback_client(&server).await;
    let reply = c.call(call(&info, "k", "{}")).await.unwrap().into_inner();
    assert_eq!(reply.outcome, Some(Outcome::ResultJson("3".into())));
    ctx.set("top_k", 7).unwrap();
    let reply = c.call(call(&info, "k", "{}")).await.unwrap().into_inner();
    assert_eq!(reply.outcome, Some(Outcome::ResultJson("7".into())));
    // A call id naming no module call in flight is refused.
    let mut stale = call(&info, "k", "{}");
    stale.get_mut().call_id = "nope".into();
    let err = c.call(stale).await.unwrap_err();
    assert_status(&err, Code::NotFound, ErrorKind::NotFound);
}

#[tokio::test]
async fn calls_run_concurrently() {
    const CALLS: usize = 8;
    let server = server();
    let ctx = bridged(&server).await;
    // Every call waits for all the others: they finish only if they run at once.
    let barrier = Arc::new(Barrier::new(CALLS));
    let entered = Arc::new(AtomicUsize::new(0));
    {
        let (barrier, entered) = (Arc::clone(&barrier), Arc::clone(&entered));
        ctx.register_callback(
            Callback::new("meet", move |_| {
                let (barrier, entered) = (Arc::clone(&barrier), Arc::clone(&entered));
                async move {
                    entered.fetch_add(1, Ordering::SeqCst);
                    barrier.wait().await;
                    Ok::<_, String>(json!("met"))
                }
            })
            .timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap();
    }
    let info = ctx.bridge_session().unwrap();
    let c = callback_client(&server).await;
    let calls = (0..CALLS).map(|_| {
        let mut c = c.clone();
        let request = call(&info, "meet", "{}");
        async move { c.call(request).await.unwrap().into_inner() }
    });
    let replies = futures_util::future::join_all(calls).await;
    assert_eq!(entered.load(Ordering::SeqCst), CALLS);
    for reply in replies {
        assert_eq!(reply.outcome, Some(Outcome::ResultJson(r#""met""#.into())));
    }
}
