//! The bounded queue of ended spans between the runs that record them and the telemetry
//! thread that exports them (feature `otel`): a run pushes a span in one short lock and never
//! waits; a span that finds the queue full ([`MAX_QUEUED_SPANS`]) is dropped and counted. The
//! telemetry thread takes batches ([`MAX_SPANS_PER_EXPORT`]) when one is full, when
//! [`EXPORT_DELAY`] passed, or when a flush asks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// The most spans waiting for export; a span ended while the queue is full is dropped and
/// counted, so a slow or absent collector costs a run no memory beyond this and no wait.
pub const MAX_QUEUED_SPANS: usize = 2048;
/// The most spans in one export request.
pub const MAX_SPANS_PER_EXPORT: usize = 512;
/// How long spans may wait before the telemetry thread exports them.
pub const EXPORT_DELAY: Duration = Duration::from_millis(500);

/// Ended spans (`T`) waiting for export, and what became of the others.
pub(crate) struct SpanQueue<T> {
    /// Whether telemetry is installed (spans are recorded only then).
    enabled: AtomicBool,
    state: Mutex<QueueState<T>>,
    /// Wakes the telemetry thread: a full batch, a flush, a stop.
    wake: Condvar,
    /// Wakes flushes: the spans queued before them were exported (or failed).
    flushed: Condvar,
    dropped: AtomicU64,
}

struct QueueState<T> {
    spans: Vec<T>,
    /// Flushes asked for, and flushes done (the queue as it was when asked is exported).
    flushes_asked: u64,
    flushes_done: u64,
    stopping: bool,
}

/// A batch to export, and the flush it completes when it is the last of the queue.
pub(crate) struct Batch<T> {
    /// The spans, oldest first.
    pub(crate) spans: Vec<T>,
    /// The flush this batch completes once exported, when it emptied the queue.
    completes_flush: Option<u64>,
    /// Whether the queue is stopping and this was its last batch.
    pub(crate) last: bool,
}

impl<T> SpanQueue<T> {
    /// An empty queue, recording nothing until [`enable`](Self::enable)d.
    pub(crate) const fn new() -> Self {
        Self {
            enabled: AtomicBool::new(false),
            state: Mutex::new(QueueState {
                spans: Vec::new(),
                flushes_asked: 0,
                flushes_done: 0,
                stopping: false,
            }),
            wake: Condvar::new(),
            flushed: Condvar::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether spans are recorded (telemetry is installed).
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Starts recording spans; false if telemetry is installed already.
    pub(crate) fn enable(&self) -> bool {
        let mut state = self.state.lock();
        if self.enabled.swap(true, Ordering::Relaxed) {
            return false;
        }
        state.stopping = false;
        self.dropped.store(0, Ordering::Relaxed);
        true
    }

    /// Queues an ended span; drops and counts it when the queue is full.
    pub(crate) fn push(&self, span: T) {
        let mut state = self.state.lock();
        if state.spans.len() >= MAX_QUEUED_SPANS || state.stopping {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.spans.push(span);
        if state.spans.len() == MAX_SPANS_PER_EXPORT {
            self.wake.notify_one();
        }
    }

    /// Spans dropped because the queue was full since telemetry was installed.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The next batch, for the telemetry thread: waits until a batch is full, [`EXPORT_DELAY`]
    /// passed since `since`, a flush asks, or the queue stops. `spare`, an empty vector (the
    /// last batch's, its capacity kept), takes the queue's place when the whole queue is the
    /// batch: the lock is held for a swap, not a copy of the spans.
    pub(crate) fn next_batch(&self, since: Instant, spare: Vec<T>) -> Batch<T> {
        let deadline = since + EXPORT_DELAY;
        let mut state = self.state.lock();
        while state.spans.len() < MAX_SPANS_PER_EXPORT
            && state.flushes_asked == state.flushes_done
            && !state.stopping
            && !self.wake.wait_until(&mut state, deadline).timed_out()
        {}
        let spans = if state.spans.len() <= MAX_SPANS_PER_EXPORT {
            std::mem::replace(&mut state.spans, spare)
        } else {
            state.spans.drain(..MAX_SPANS_PER_EXPORT).collect()
        };
        let emptied = state.spans.is_empty();
        Batch {
            spans,
            completes_flush: emptied.then_some(state.flushes_asked),
            last: emptied && state.stopping,
        }
    }

    /// Marks `batch` exported (or failed): a flush waiting for it returns.
    pub(crate) fn done(&self, batch: &Batch<T>) {
        if let Some(flush) = batch.completes_flush {
            let mut state = self.state.lock();
            if flush > state.flushes_done {
                state.flushes_done = flush;
                self.flushed.notify_all();
            }
        }
    }

    /// Waits until every span queued now is exported (or failed).
    pub(crate) fn flush(&self) {
        let mut state = self.state.lock();
        state.flushes_asked += 1;
        let asked = state.flushes_asked;
        self.wake.notify_one();
        while state.flushes_done < asked {
            self.flushed.wait(&mut state);
        }
    }

    /// Stops recording spans; the telemetry thread exports what is queued, then ends.
    pub(crate) fn stop(&self) {
        let mut state = self.state.lock();
        self.enabled.store(false, Ordering::Relaxed);
        state.stopping = true;
        self.wake.notify_one();
    }
}
