//! `GET /dashboard/events`: server-sent events that tell the page what to read again —
//! `variables` (any program's watch stream: a write by this process or, for a shared session,
//! by any process of the fleet), `runs` (a run finished) and `studies` (a trial changed). The
//! stream ends when the server shuts down; at most [`MAX_LIVE_STREAMS`] are open at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{FutureExt, StreamExt};
use tokio_stream::wrappers::ReceiverStream;

use super::auth::require_viewer;
use super::studies::fingerprint;
use super::{LIVE_POLL, MAX_LIVE_STREAMS};
use crate::serve::error::ApiError;
use crate::serve::state::ServerState;
use crate::state::watch::Watcher;
use crate::tune::TrialState;

/// How often an idle live stream sends a comment, so that a page that went away is noticed.
const LIVE_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Events waiting for a slow page before the stream waits for it.
const LIVE_BUFFER: usize = 8;

/// One open live stream; dropping it frees its place.
struct LiveStream(Arc<ServerState>);

impl LiveStream {
    /// A place among [`MAX_LIVE_STREAMS`], or `None` when they are all taken.
    fn open(state: &Arc<ServerState>) -> Option<Self> {
        let count = &state.dashboard.live_streams;
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_LIVE_STREAMS).then_some(n + 1)
            })
            .ok()?;
        Some(Self(Arc::clone(state)))
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.0.dashboard.live_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `GET /dashboard/events`.
pub(crate) async fn events(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Err(error) = require_viewer(&state, &headers) {
        return error.into_response();
    }
    let Some(place) = LiveStream::open(&state) else {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            format!("{MAX_LIVE_STREAMS} live dashboard streams are open already"),
        );
        error.retry_after = Some(crate::serve::RETRY_AFTER_SECONDS);
        return error.into_response();
    };
    let mut watchers = Vec::with_capacity(state.programs.len());
    for served in state.programs.values() {
        match served.program.program_context().watch(&[]) {
            Ok(watcher) => watchers.push(watcher),
            Err(e) => return ApiError::from_variables(&e).into_response(),
        }
    }
    // Everything from here on is told: what is seen now is taken before the stream opens.
    let runs = state.dashboard.runs.subscribe();
    let seen_trials = fingerprint(&state.dashboard.studies).await;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Event>(LIVE_BUFFER);
    tokio::spawn(relay(place, watchers, runs, seen_trials, sender));
    Sse::new(ReceiverStream::new(receiver).map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::new().interval(LIVE_KEEP_ALIVE))
        .into_response()
}

/// Sends an event for each change until the page goes away or the server shuts down.
async fn relay(
    place: LiveStream,
    watchers: Vec<Watcher>,
    mut runs: tokio::sync::watch::Receiver<u64>,
    mut seen_trials: Vec<Vec<TrialState>>,
    sender: tokio::sync::mpsc::Sender<Event>,
) {
    let state = Arc::clone(&place.0);
    let mut changes = futures_util::stream::select_all(watchers);
    let studies = &state.dashboard.studies;
    let mut poll = tokio::time::interval(LIVE_POLL);
    let event = |name: &str| Event::default().event(name).data("{}");
    loop {
        let next = tokio::select! {
            change = changes.next(), if !changes.is_empty() => {
                if change.is_none() {
                    break; // the contexts are gone
                }
                // One event for a burst of writes.
                while let Some(Some(_)) = changes.next().now_or_never() {}
                event("variables")
            }
            changed = runs.changed() => {
                if changed.is_err() {
                    break;
                }
                event("runs")
            }
            _ = poll.tick(), if !studies.is_empty() => {
                let trials = fingerprint(studies).await;
                if trials == seen_trials {
                    continue;
                }
                seen_trials = trials;
                event("studies")
            }
            () = state.stopped() => break,
            () = sender.closed() => break, // the page went away
        };
        if sender.send(next).await.is_err() {
            break; // the page went away
        }
    }
}
