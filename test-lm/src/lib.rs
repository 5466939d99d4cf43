//! An OpenAI-compatible chat completions server on loopback, for the tests, benchmarks and
//! examples of dspex: `POST /v1/chat/completions` answers with scripted replies (in order, then
//! the default reply), records every request it received, and can answer with an error status
//! (429 with `Retry-After`, 500) or take its time or hang, to test clients' retries and
//! timeouts. A request with `"stream": true` is answered with server-sent events, as OpenAI
//! streams: the reply in deltas of chosen sizes and pace ([`Reply::deltas`]) or cut at chosen
//! places ([`Reply::pieces`]), one event written at a time or all back to back
//! ([`Reply::together`]), a final usage chunk when `stream_options.include_usage` asks for it,
//! then `data: [DONE]`; or a raw event stream ([`Reply::sse`]) to test clients on broken ones. The server tells when a client
//! closed a stream before its end ([`LmServer::aborted_streams`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use dspex_test_lm::{LmServer, Reply};
//!
//! let server = LmServer::start().await?;
//! server.push(Reply::status(429).retry_after("0"));
//! server.push(Reply::text("[[ ## answer ## ]]\nParis"));
//! assert!(server.base_url().starts_with("http://127.0.0.1:"));
//! assert!(server.requests().is_empty());
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{Value as JsonValue, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The most requests the server keeps (the oldest are dropped first).
pub const MAX_RECORDED_REQUESTS: usize = 10_000;

/// The largest request body the server reads; a longer one gets 413.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// How long a [`Reply::hang`] waits before it answers: longer than any test waits.
pub const HANG: Duration = Duration::from_secs(3600);

/// The reply the server gives when no scripted one is left.
pub const DEFAULT_REPLY: &str = "[[ ## answer ## ]]\nok\n\n[[ ## completed ## ]]";

/// One scripted reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    status: u16,
    content: String,
    retry_after: Option<String>,
    delay: Duration,
    /// A streamed reply's delta size (characters) and the wait before each delta.
    deltas: Option<(usize, Duration)>,
    /// A streamed reply's deltas, exactly (their concatenation is `content`).
    pieces: Option<Vec<String>>,
    /// A streamed reply's events are written back to back (the whole stream handed to the
    /// connection at once), not one by one.
    together: bool,
    /// A streamed reply sent as these bytes, whatever the request.
    raw_sse: Option<String>,
}

impl Reply {
    /// A chat completion whose first choice's message is `content` (usage: words of the
    /// prompt and of the content).
    pub fn text(content: impl Into<String>) -> Self {
        Self {
            status: 200,
            content: content.into(),
            retry_after: None,
            delay: Duration::ZERO,
            deltas: None,
            pieces: None,
            together: false,
            raw_sse: None,
        }
    }

    /// A streamed reply that is exactly `events` (`text/event-stream`), to test clients on
    /// malformed or truncated streams.
    pub fn sse(events: impl Into<String>) -> Self {
        Self {
            raw_sse: Some(events.into()),
            ..Self::text(String::new())
        }
    }

    /// Streamed (to a request with `"stream": true`): the content in deltas of `chars`
    /// characters (at least one), each sent `gap` after the one before. By default a streamed
    /// reply is one delta.
    #[must_use]
    pub fn deltas(mut self, chars: usize, gap: Duration) -> Self {
        self.deltas = Some((chars.max(1), gap));
        self
    }

    /// Streamed (to a request with `"stream": true`) as exactly these deltas, one after the
    /// other without a pause (to cut a reply at chosen places); the content is their
    /// concatenation.
    pub fn pieces(pieces: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let pieces: Vec<String> = pieces.into_iter().map(Into::into).collect();
        Self {
            pieces: Some(pieces.clone()),
            ..Self::text(pieces.concat())
        }
    }

    /// Streamed with every event handed to the connection at once, before the response
    /// starts (as a server whose whole reply is ready writes it: the events back to back, in
    /// as few writes as the connection makes), instead of one event at a time, each written
    /// when the one before is (the default). The deltas' pauses are not waited.
    #[must_use]
    pub fn together(mut self) -> Self {
        self.together = true;
        self
    }

    /// An error status with an OpenAI-style error body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            ..Self::text(String::new())
        }
    }

    /// Sends a `Retry-After` header with this value (seconds).
    #[must_use]
    pub fn retry_after(mut self, value: impl Into<String>) -> Self {
        self.retry_after = Some(value.into());
        self
    }

    /// A reply that does not come: the server sends nothing for [`HANG`], as a hung endpoint
    /// does.
    pub fn hang() -> Self {
        Self::text(DEFAULT_REPLY).after(HANG)
    }

    /// Waits this long before replying.
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The path (`/v1/chat/completions`).
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body (`null` if it was no JSON).
    pub body: JsonValue,
    /// When it arrived, since the server started.
    pub at: Duration,
}

/// A function choosing the reply from the request's JSON body.
type Responder = Arc<dyn Fn(&JsonValue) -> Reply + Send + Sync>;

#[derive(Default)]
struct ResponderSlot(Mutex<Option<Responder>>);

impl std::fmt::Debug for ResponderSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.lock().is_some() {
            "ResponderSlot(set)"
        } else {
            "ResponderSlot(none)"
        })
    }
}

#[derive(Debug)]
struct State {
    replies: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    responder: ResponderSlot,
    requests: Mutex<VecDeque<RecordedRequest>>,
    started: Instant,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Streams a client closed before their end.
    aborted: tokio::sync::watch::Sender<usize>,
    /// When the server last handed a stream's first content delta to the connection.
    first_delta_at: Mutex<Option<Instant>>,
    /// When each content delta of the latest stream was handed to its connection.
    deltas_at: Mutex<Vec<Instant>>,
}

/// The running server; dropping it stops it.
#[derive(Debug)]
pub struct LmServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl LmServer {
    /// Starts a server on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            replies: Mutex::new(VecDeque::new()),
            default: Mutex::new(Reply::text(DEFAULT_REPLY)),
            responder: ResponderSlot::default(),
            requests: Mutex::new(VecDeque::new()),
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            aborted: tokio::sync::watch::Sender::new(0),
            first_delta_at: Mutex::new(None),
            deltas_at: Mutex::new(Vec::new()),
        });
        let shared = Arc::clone(&state);
        let accept = serve_http1(listener, move |req| handle(Arc::clone(&shared), req));
        Ok(Self {
            addr,
            state,
            accept,
        })
    }

    /// The API root, as OpenAI clients take it: `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues a reply: replies are given in order, one per request, before the default one.
    pub fn push(&self, reply: Reply) {
        self.state.replies.lock().push_back(reply);
    }

    /// The reply given when no queued one is left (initially [`DEFAULT_REPLY`]).
    pub fn set_default(&self, reply: Reply) {
        *self.state.default.lock() = reply;
    }

    /// Answers each request for which no queued reply is left with `responder`'s reply for
    /// its JSON body (instead of the default one): an LM that answers by what the prompt
    /// holds.
    pub fn respond_with(&self, responder: impl Fn(&JsonValue) -> Reply + Send + Sync + 'static) {
        *self.state.responder.0.lock() = Some(Arc::new(responder));
    }

    /// The requests received so far (at most [`MAX_RECORDED_REQUESTS`], oldest first).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().iter().cloned().collect()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.state.requests.lock().clear();
    }

    /// How many streamed replies a client closed before their end.
    pub fn aborted_streams(&self) -> usize {
        *self.state.aborted.borrow()
    }

    /// Waits until `count` streamed replies were closed by their client before their end.
    pub async fn wait_aborted_streams(&self, count: usize) {
        let mut aborted = self.state.aborted.subscribe();
        let _ = aborted.wait_for(|n| *n >= count).await;
    }

    /// When the server last handed the first content delta of a streamed reply to its
    /// connection (what a client's first-chunk latency is measured from).
    pub fn first_delta_at(&self) -> Option<Instant> {
        *self.state.first_delta_at.lock()
    }

    /// When each content delta of the latest streamed reply was handed to its connection, in
    /// order (for benchmarks measuring from a later delta than the first).
    pub fn deltas_at(&self) -> Vec<Instant> {
        self.state.deltas_at.lock().clone()
    }

    /// The most requests that were being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for LmServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

type Body = Either<Full<Bytes>, Channel<Bytes>>;

/// Accepts connections on `listener` and serves each over HTTP/1.1 with `handle`, in a task
/// that runs until aborted (its connections' tasks with it): the accept loop of this server
/// and of the other loopback servers of dspex's tests.
pub fn serve_http1<H, F, B>(listener: TcpListener, handle: H) -> JoinHandle<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::spawn(async move {
        // Dropped (with every connection's task) when the accept task is aborted.
        let mut connections = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let handle = handle.clone();
            connections.spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(handle))
                    .await;
            });
            while connections.try_join_next().is_some() {}
        }
    })
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let response = answer(&state, req).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    Ok(response)
}

async fn answer(state: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_completion = req.method() == hyper::Method::POST && path.ends_with("/chat/completions");
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return plain(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    if body.len() > MAX_REQUEST_BYTES {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    if !is_completion {
        return plain(
            StatusCode::NOT_FOUND,
            "only POST /v1/chat/completions is served",
        );
    }
    let body: JsonValue = serde_json::from_slice(&body).unwrap_or(JsonValue::Null);
    let queued = state.replies.lock().pop_front();
    let responder = state.responder.0.lock().clone();
    let reply = match (queued, responder) {
        (Some(reply), _) => reply,
        (None, Some(responder)) => responder(&body),
        (None, None) => state.default.lock().clone(),
    };
    {
        let mut requests = state.requests.lock();
        if requests.len() == MAX_RECORDED_REQUESTS {
            requests.pop_front();
        }
        requests.push_back(RecordedRequest {
            path,
            authorization,
            body: body.clone(),
            at: state.started.elapsed(),
        });
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_success() && (body["stream"] == json!(true) || reply.raw_sse.is_some()) {
        return streamed(state, &body, reply);
    }
    let payload = if status.is_success() {
        completion(&body, &reply.content)
    } else {
        json!({"error": {"message": format!("scripted status {}", reply.status), "type": "scripted", "code": reply.status}})
    };
    let mut response = Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(after) = &reply.retry_after {
        response = response.header(hyper::header::RETRY_AFTER, after.as_str());
    }
    response
        .body(Either::Left(Full::new(Bytes::from(payload.to_string()))))
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "bad scripted reply"))
}

/// A streamed answer to `request`: the events are written by a task of their own, which
/// counts the stream as aborted if the client goes away before the end.
fn streamed(state: &Arc<State>, request: &JsonValue, reply: Reply) -> Response<Body> {
    let events = match &reply.raw_sse {
        Some(raw) => vec![(Duration::ZERO, raw.clone(), None)],
        None => stream_events(request, &reply),
    };
    let (mut sender, body) = Channel::new(if reply.together { events.len() } else { 1 });
    let state = Arc::clone(state);
    if reply.together {
        let now = Instant::now();
        let deltas = events
            .iter()
            .filter(|(_, _, delta)| delta.is_some())
            .count();
        *state.first_delta_at.lock() = Some(now);
        *state.deltas_at.lock() = vec![now; deltas];
        for (_, event, _) in events {
            // The channel holds every event: this cannot fail.
            let _ = sender.try_send(Frame::data(Bytes::from(event)));
        }
        return event_stream(Either::Right(body));
    }
    tokio::spawn(async move {
        for (gap, event, delta) in events {
            if !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            if let Some(index) = delta {
                let now = Instant::now();
                let mut deltas_at = state.deltas_at.lock();
                if index == 0 {
                    *state.first_delta_at.lock() = Some(now);
                    deltas_at.clear();
                }
                deltas_at.push(now);
            }
            if sender.send_data(Bytes::from(event)).await.is_err() {
                state.aborted.send_modify(|n| *n += 1);
                return;
            }
        }
    });
    event_stream(Either::Right(body))
}

fn event_stream(body: Body) -> Response<Body> {
    Response::builder()
        .header(hyper::header::CONTENT_TYPE, "text/event-stream")
        .header(hyper::header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "bad scripted reply"))
}

/// The events of a streamed reply, each with the wait before it and, for a content delta, its
/// index: a role chunk, the content deltas, the usage chunk if asked for, `[DONE]`.
fn stream_events(request: &JsonValue, reply: &Reply) -> Vec<(Duration, String, Option<usize>)> {
    let chunk = |delta: JsonValue, finish: JsonValue| {
        let chunk = json!({
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": request["model"],
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        format!("data: {chunk}\n\n")
    };
    let (chars, gap) = reply.deltas.unwrap_or((usize::MAX, Duration::ZERO));
    let mut events = vec![(
        Duration::ZERO,
        chunk(json!({"role": "assistant", "content": ""}), JsonValue::Null),
        None,
    )];
    let pieces = match &reply.pieces {
        Some(pieces) => pieces.clone(),
        None => {
            let content: Vec<char> = reply.content.chars().collect();
            let size = chars.min(content.len().max(1));
            content.chunks(size).map(|p| p.iter().collect()).collect()
        }
    };
    for (i, text) in pieces.into_iter().enumerate() {
        events.push((
            gap,
            chunk(json!({"content": text}), JsonValue::Null),
            Some(i),
        ));
    }
    events.push((Duration::ZERO, chunk(json!({}), json!("stop")), None));
    if request["stream_options"]["include_usage"] == json!(true) {
        let usage = completion(request, &reply.content)["usage"].clone();
        let last = json!({
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": request["model"],
            "choices": [],
            "usage": usage,
        });
        events.push((Duration::ZERO, format!("data: {last}\n\n"), None));
    }
    events.push((Duration::ZERO, "data: [DONE]\n\n".to_owned(), None));
    events
}

/// A chat completion answering `request` with `content`.
fn completion(request: &JsonValue, content: &str) -> JsonValue {
    let words = |s: &str| s.split_whitespace().count();
    let prompt: usize = request["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| words(m["content"].as_str().unwrap_or("")))
                .sum()
        })
        .unwrap_or(0);
    let completion = words(content);
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": request["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
        }],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    })
}

fn plain(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(message.to_owned()))));
    *response.status_mut() = status;
    response
}
