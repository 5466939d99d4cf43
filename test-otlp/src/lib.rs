//! An OTLP trace receiver on loopback, for the tests of dspex's telemetry: over HTTP,
//! `POST /v1/traces` takes an export request in protobuf (`application/x-protobuf`) or JSON
//! (`application/json`); over gRPC, on a port of its own, the `TraceService`'s `Export`
//! (`opentelemetry-proto`'s generated server). Both decode with `opentelemetry-proto` and keep
//! every span (at most [`MAX_RECEIVED_SPANS`]) in the order received.
//! [`OtlpReceiver::require_header`] makes its HTTP endpoint refuse, with 401, a request
//! without a given header (a collector that wants an API key). [`OtlpReceiver::hold`]
//! makes it a collector that has the requests but does not answer them until
//! [`OtlpReceiver::release`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let receiver = dspex_test_otlp::OtlpReceiver::start().await?;
//! assert!(receiver.endpoint().starts_with("http://127.0.0.1:"));
//! assert!(receiver.grpc_endpoint().starts_with("http://127.0.0.1:"));
//! assert!(receiver.spans().is_empty());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use dspex_test_lm::serve_http1;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtlpStatus;
use parking_lot::Mutex;
use prost::Message as _;
use serde_json::Value as JsonValue;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

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

/// What the HTTP and gRPC services share: the spans kept, and whether requests are held.
#[derive(Debug)]
struct Store {
    spans: Mutex<Vec<ReceivedSpan>>,
    /// Whether requests wait for [`OtlpReceiver::release`] before they are answered.
    held: watch::Sender<bool>,
    /// Spans in the requests waiting.
    spans_held: Mutex<usize>,
    /// The header (name, value) every HTTP request must carry, if any.
    required_header: Mutex<Option<(String, String)>>,
}

impl Store {
    /// Keeps the spans of `request` (after any hold); an error when the receiver is full.
    async fn keep(&self, request: ExportTraceServiceRequest) -> Result<(), String> {
        let received = decode(request);
        let mut held = self.held.subscribe();
        if *held.borrow_and_update() {
            *self.spans_held.lock() += received.len();
            let _ = held.wait_for(|held| !held).await;
            *self.spans_held.lock() -= received.len();
        }
        let mut kept = self.spans.lock();
        if kept.len() + received.len() > MAX_RECEIVED_SPANS {
            return Err(format!(
                "the receiver keeps at most {MAX_RECEIVED_SPANS} spans"
            ));
        }
        kept.extend(received);
        Ok(())
    }
}

/// The receiver: it listens until dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    grpc_addr: SocketAddr,
    store: Arc<Store>,
    accept: JoinHandle<()>,
    grpc: JoinHandle<()>,
}

impl OtlpReceiver {
    /// Starts a receiver on two free loopback ports (HTTP and gRPC).
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await?;
        let grpc_addr = grpc_listener.local_addr()?;
        let store = Arc::new(Store {
            spans: Mutex::new(Vec::new()),
            held: watch::Sender::new(false),
            spans_held: Mutex::new(0),
            required_header: Mutex::new(None),
        });
        let shared = Arc::clone(&store);
        let accept = serve_http1(listener, move |req| handle(Arc::clone(&shared), req));
        let service = TraceServiceServer::new(GrpcTraces(Arc::clone(&store)))
            .max_decoding_message_size(MAX_REQUEST_BYTES);
        let grpc = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpListenerStream::new(grpc_listener))
                .await;
        });
        Ok(Self {
            addr,
            grpc_addr,
            store,
            accept,
            grpc,
        })
    }

    /// The base URL an OTLP/HTTP exporter takes (`http://127.0.0.1:<port>`; traces go to its
    /// `/v1/traces`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address an OTLP/gRPC exporter takes (`http://127.0.0.1:<port>`).
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The spans received so far, in the order received (held requests' not among them).
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store.spans.lock().clone()
    }

    /// From now on, requests are read but not answered (nor their spans kept) until
    /// [`release`](Self::release): a collector that blocks its clients.
    pub fn hold(&self) {
        self.store.held.send_replace(true);
    }

    /// From now on, refuses with 401 every HTTP request that does not carry header `name` with
    /// `value` (gRPC requests are not checked).
    pub fn require_header(&self, name: &str, value: &str) {
        *self.store.required_header.lock() = Some((name.to_owned(), value.to_owned()));
    }

    /// Answers the held requests, keeping their spans, and every later one at once.
    pub fn release(&self) {
        self.store.held.send_replace(false);
    }

    /// The spans in the requests held now.
    pub fn spans_held(&self) -> usize {
        *self.store.spans_held.lock()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.accept.abort();
        self.grpc.abort();
    }
}

/// The gRPC `TraceService`.
struct GrpcTraces(Arc<Store>);

#[tonic::async_trait]
impl TraceService for GrpcTraces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0
            .keep(request.into_inner())
            .await
            .map_err(tonic::Status::resource_exhausted)?;
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

async fn handle(
    store: Arc<Store>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, text) = match receive(&store, req).await {
        Ok(()) => (StatusCode::OK, String::new()),
        Err((status, why)) => (status, why),
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    Ok(response)
}

async fn receive(store: &Store, req: Request<Incoming>) -> Result<(), (StatusCode, String)> {
    if req.method() != hyper::Method::POST || req.uri().path() != "/v1/traces" {
        return Err((StatusCode::NOT_FOUND, "only POST /v1/traces".to_owned()));
    }
    if let Some((name, value)) = store.required_header.lock().clone() {
        let given = req.headers().get(name.as_str()).map(|v| v.as_bytes());
        if given != Some(value.as_bytes()) {
            return Err((
                StatusCode::UNAUTHORIZED,
                format!("no `{name}` header, or not the one wanted"),
            ));
        }
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
    store
        .keep(request)
        .await
        .map_err(|why| (StatusCode::INSUFFICIENT_STORAGE, why))
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
