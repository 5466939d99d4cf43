//! Helpers of the bridge tests: a gRPC client of a test server's `SessionService`, requests
//! carrying a token, and readers of the error kind a status carries.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::time::Duration;

use dspex::bridge::{BridgeConfig, BridgeServer, SessionInfo};
use dspex::wire::proto::session_service_client::SessionServiceClient;
use dspex::wire::proto::{self as pb, ErrorKind};
use dspex::wire::{ERROR_METADATA, TOKEN_METADATA};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

pub type Client = SessionServiceClient<Channel>;

/// A fresh server on `127.0.0.1:0`.
pub fn server() -> BridgeServer {
    let server = BridgeServer::start(BridgeConfig::default()).unwrap();
    assert!(server.local_addr().unwrap().ip().is_loopback());
    assert_ne!(server.local_addr().unwrap().port(), 0);
    server
}

/// A context bridged on `server`.
pub async fn bridged(server: &BridgeServer) -> dspex::Context {
    dspex::Context::builder()
        .bridged()
        .server(server.clone())
        .build()
        .await
        .unwrap()
}

/// A client of `server`, accepting responses as large as the server sends.
pub async fn client(server: &BridgeServer) -> Client {
    SessionServiceClient::connect(format!("http://{}", server.address()))
        .await
        .unwrap()
        .max_decoding_message_size(dspex::wire::limits::MAX_RESPONSE_BYTES)
}

/// A request carrying `token`.
pub fn with_token<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert(TOKEN_METADATA, token.parse().unwrap());
    request
}

/// A request for `info`'s session.
pub fn authed<T>(message: T, info: &SessionInfo) -> Request<T> {
    with_token(message, &info.token)
}

/// The `x-dspex-error` kind of a status (`Unspecified` when it carries none).
pub fn kind(status: &Status) -> ErrorKind {
    status
        .metadata()
        .get(ERROR_METADATA)
        .map_or(ErrorKind::Unspecified, |v| {
            ErrorKind::from_str_name(v.to_str().unwrap()).unwrap()
        })
}

/// Asserts a status's code and kind, and returns its message.
pub fn assert_status(status: &Status, code: Code, expected_kind: ErrorKind) -> String {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(kind(status), expected_kind, "{status:?}");
    status.message().to_owned()
}

pub fn float(x: f64) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::FloatValue(x)),
    }
}

pub fn int(i: i64) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::IntegerValue(i)),
    }
}

pub fn string(s: &str) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::StringValue(s.to_owned())),
    }
}

pub fn boolean(b: bool) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::BooleanValue(b)),
    }
}

/// Polls `check` every 10 ms until it holds; panics with `what` after 30 s (a liveness bound,
/// not a timing assertion).
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A `RegisterVariableRequest` with a type and an initial value, nothing else.
pub fn register_request(
    session_id: &str,
    name: &str,
    ty: pb::VariableType,
    initial: pb::Value,
) -> pb::RegisterVariableRequest {
    pb::RegisterVariableRequest {
        session_id: session_id.to_owned(),
        name: name.to_owned(),
        r#type: ty.into(),
        initial: Some(initial),
        ..Default::default()
    }
}

/// A plain `SetVariableRequest`: no compare-and-set, no metadata.
pub fn set_request(session_id: &str, name: &str, value: pb::Value) -> pb::SetVariableRequest {
    pb::SetVariableRequest {
        session_id: session_id.to_owned(),
        name: name.to_owned(),
        value: Some(value),
        ..Default::default()
    }
}
