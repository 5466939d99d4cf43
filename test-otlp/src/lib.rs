//! An OTLP/HTTP trace receiver on loopback, for the tests of dspex's telemetry:
//! `POST /v1/traces` takes an export request in protobuf (`application/x-protobuf`) or JSON
//! (`application/json`), decodes it with `opentelemetry-proto` and keeps every span (at most
//! [`MAX_RECEIVED_SPANS`]) in the order received.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let receiver = dspex_test_otlp::OtlpReceiver::start().await?;
//! assert!(receiver.endpoint().starts_with("http://127.0.0.1:"));
//! assert!(receiver.spans().is_empty());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use parking_lot::Mutex;
use prost::Message as _;
use serde_json::Value as JsonValue;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The most spans the receiver keeps; later ones are refused with 507.
pub const MAX_RECEIVED_SPANS: usize = 100_000;
/// The largest export request the receiver reads.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// A span as the receiver got it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// Its name.
    pub name: String,
    /// The trace id, in lowercase hex.
    pub trace_id: String,
    /// The span id, in lowercase hex.
    pub span_id: String,
    /// The parent's span id in lowercase hex; empty for a root span.
    pub parent_span_id: String,
    /// Its attributes, as JSON values (strings, numbers, booleans).
    pub attributes: BTreeMap<String, JsonValue>,
    /// Whether its status is error.
    pub is_error: bool,
    /// The status message.
    pub status_message: String,
    /// The `service.name` of its resource.
    pub service_name: Option<String>,
    /// Start and end, in nanoseconds since the Unix epoch.
    pub start_unix_nano: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nano: u64,
}

impl ReceivedSpan {
    /// The attribute `key`, if the span has it.
    pub fn attribute(&self, key: &str) -> Option<&JsonValue> {
        self.attributes.get(key)
    }
}

/// The receiver: it listens until dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    accept: JoinHandle<()>,
}

impl OtlpReceiver {
    /// Starts a receiver on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let spans = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::clone(&spans);
        let accept = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let spans = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&spans), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            spans,
            accept,
        })
    }

    /// The base URL an OTLP/HTTP exporter takes (`http://127.0.0.1:<port>`; traces go to its
    /// `/v1/traces`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans received so far, in the order received.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().clone()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn handle(
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, text) = match receive(&spans, req).await {
        Ok(()) => (StatusCode::OK, String::new()),
        Err((status, why)) => (status, why),
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    Ok(response)
}

async fn receive(
    spans: &Mutex<Vec<ReceivedSpan>>,
    req: Request<Incoming>,
) -> Result<(), (StatusCode, String)> {
    if req.method() != hyper::Method::POST || req.uri().path() != "/v1/traces" {
        return Err((StatusCode::NOT_FOUND, "only POST /v1/traces".to_owned()));
    }
    let json = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = Limited::new(req.into_body(), MAX_REQUEST_BYTES)
        .collect()
        .await
        .map_err(|e| (StatusCode::PAYLOAD_TOO_LARGE, e.to_string()))?
        .to_bytes();
    let request = if json {
        serde_json::from_slice::<ExportTraceServiceRequest>(&body)
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?
    } else {
        ExportTraceServiceRequest::decode(body)
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?
    };
    let received = decode(request);
    let mut kept = spans.lock();
    if kept.len() + received.len() > MAX_RECEIVED_SPANS {
        return Err((
            StatusCode::INSUFFICIENT_STORAGE,
            format!("the receiver keeps at most {MAX_RECEIVED_SPANS} spans"),
        ));
    }
    kept.extend(received);
    Ok(())
}

fn decode(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let service_name = resource_spans.resource.as_ref().and_then(|r| {
            r.attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.as_ref())
                .and_then(|v| match v {
                    any_value::Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
        });
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                let status = span.status.unwrap_or_default();
                out.push(ReceivedSpan {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes: span
                        .attributes
                        .into_iter()
                        .map(|kv| {
                            let value =
                                kv.value.and_then(|v| v.value).map_or(JsonValue::Null, json);
                            (kv.key, value)
                        })
                        .collect(),
                    is_error: status.code == OtlpStatus::Error as i32,
                    status_message: status.message,
                    service_name: service_name.clone(),
                    start_unix_nano: span.start_time_unix_nano,
                    end_unix_nano: span.end_time_unix_nano,
                });
            }
        }
    }
    out
}

fn json(value: any_value::Value) -> JsonValue {
    match value {
        any_value::Value::StringValue(s) => JsonValue::from(s),
        any_value::Value::BoolValue(b) => JsonValue::from(b),
        any_value::Value::IntValue(i) => JsonValue::from(i),
        any_value::Value::DoubleValue(d) => JsonValue::from(d),
        any_value::Value::BytesValue(b) => JsonValue::from(hex(&b)),
        other => JsonValue::from(format!("{other:?}")),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
