//! Watching variables: one hub per context fans every accepted change out to its watchers.
//!
//! Each watcher has a bounded queue. Publishing never blocks: when a watcher's queue is full
//! the event is dropped for that watcher only and counted, and the watcher receives
//! [`WatchEvent::Lagged`] with the count where the events were dropped: before its next event,
//! or, when nothing follows, as soon as it has read what was queued before. The hub belongs to
//! the context, not to a backend, so watchers keep receiving across a switch from local to
//! bridged.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::SystemTime;

use std::fmt;

use dspex_core::Value;
use parking_lot::Mutex;
use rustc_hash::FxHashSet;
use tokio::sync::mpsc;

use super::{Source, VarId};

/// An accepted write to a variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The variable's id.
    pub id: VarId,
    /// The variable's name.
    pub name: String,
    /// The value before the write.
    pub old: Value,
    /// The value after the write.
    pub new: Value,
    /// The version after the write.
    pub version: u64,
    /// Who wrote.
    pub source: Source,
    /// When.
    pub at: SystemTime,
}

/// What kind of event a [`WatchEvent`] is, for quick filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// [`WatchEvent::Initial`]
    Initial,
    /// [`WatchEvent::Registered`]
    Registered,
    /// [`WatchEvent::Updated`]
    Updated,
    /// [`WatchEvent::Deleted`]
    Deleted,
    /// [`WatchEvent::Lagged`]
    Lagged,
}

/// One event of a watch stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The value when the watch started (only with [`WatchOptions::include_initial`]).
    Initial {
        /// The variable's id.
        id: VarId,
        /// The variable's name.
        name: String,
        /// Its value.
        value: Value,
        /// Its version.
        version: u64,
    },
    /// A variable was registered (only for watchers of all variables).
    Registered {
        /// The variable's id.
        id: VarId,
        /// The variable's name.
        name: String,
        /// Its initial value.
        value: Value,
        /// Who registered it.
        source: Source,
    },
    /// An accepted write.
    Updated(Change),
    /// A variable was deleted.
    Deleted {
        /// The variable's id.
        id: VarId,
        /// The variable's name.
        name: String,
        /// Its last version.
        version: u64,
        /// Who deleted it.
        source: Source,
    },
    /// The watcher fell behind and this many events were dropped for it, just before this
    /// point of the stream.
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

impl WatchEvent {
    /// The kind of event.
    pub fn kind(&self) -> ChangeKind {
        match self {
            WatchEvent::Initial { .. } => ChangeKind::Initial,
            WatchEvent::Registered { .. } => ChangeKind::Registered,
            WatchEvent::Updated(_) => ChangeKind::Updated,
            WatchEvent::Deleted { .. } => ChangeKind::Deleted,
            WatchEvent::Lagged { .. } => ChangeKind::Lagged,
        }
    }

    /// The variable the event is about (none for `Lagged`).
    pub fn name(&self) -> Option<&str> {
        match self {
            WatchEvent::Initial { name, .. }
            | WatchEvent::Registered { name, .. }
            | WatchEvent::Deleted { name, .. }
            | WatchEvent::Updated(Change { name, .. }) => Some(name),
            WatchEvent::Lagged { .. } => None,
        }
    }
}

/// The largest queue a watcher can ask for; larger capacities are clamped to it.
pub const MAX_WATCH_CAPACITY: usize = 1 << 20;

/// Options of a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// How many events may wait in the watcher's queue before it lags (1 to
    /// [`MAX_WATCH_CAPACITY`]; other values are clamped).
    pub capacity: usize,
    /// Start with one [`WatchEvent::Initial`] per watched variable.
    pub include_initial: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            capacity: 1024,
            include_initial: false,
        }
    }
}

/// The receiving end of a watch: a [`Stream`](tokio_stream::Stream) of [`WatchEvent`]s, in
/// order, that ends (`None`) once the context is gone. Combine it with `StreamExt` (from
/// `tokio-stream` or `futures`), or call [`recv`](Self::recv). Dropping it ends the watch.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::{Constraints, Context};
/// use tokio_stream::StreamExt;
///
/// let ctx = Context::new();
/// let n = ctx.defvariable::<i64>("n", 0, Constraints::none())?;
/// let watcher = ctx.watch(&["n"])?;
/// for i in 1..=3 {
///     n.set(i)?;
/// }
/// let versions: Vec<u64> = watcher
///     .filter_map(|event| match event {
///         dspex::WatchEvent::Updated(change) => Some(change.version),
///         _ => None,
///     })
///     .take(3)
///     .collect()
///     .await;
/// assert_eq!(versions, [2, 3, 4]);
/// # Ok(()) }
/// ```
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::{Context, Constraints, WatchEvent};
///
/// let ctx = Context::new();
/// let t = ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
/// let mut watcher = ctx.watch(&["temperature"])?;
/// t.set(0.9)?;
/// match watcher.recv().await {
///     Some(WatchEvent::Updated(change)) => assert_eq!(change.new.as_f64(), Some(0.9)),
///     other => panic!("unexpected {other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Watcher {
    rx: mpsc::Receiver<WatchEvent>,
    /// Events dropped for this watcher and not reported yet, shared with its subscriber.
    missed: Arc<AtomicU64>,
}

impl Watcher {
    /// The next event; `None` once the context is gone.
    pub async fn recv(&mut self) -> Option<WatchEvent> {
        match self.try_recv() {
            Some(event) => Some(event),
            None => self.rx.recv().await,
        }
    }

    /// The next event if one is waiting (a `Lagged` one when events were dropped after the
    /// last one queued).
    pub fn try_recv(&mut self) -> Option<WatchEvent> {
        self.rx.try_recv().ok().or_else(|| self.lag())
    }

    /// The next event, blocking the thread (not for use inside an async runtime).
    pub fn blocking_recv(&mut self) -> Option<WatchEvent> {
        match self.try_recv() {
            Some(event) => Some(event),
            None => self.rx.blocking_recv(),
        }
    }

    /// The drops not reported yet, once the queue is empty.
    fn lag(&self) -> Option<WatchEvent> {
        let missed = self.missed.swap(0, Ordering::AcqRel);
        (missed > 0).then_some(WatchEvent::Lagged { missed })
    }
}

impl tokio_stream::Stream for Watcher {
    type Item = WatchEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<WatchEvent>> {
        match self.try_recv() {
            Some(event) => Poll::Ready(Some(event)),
            None => self.rx.poll_recv(cx),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.rx.len(), None)
    }
}

struct Subscriber {
    /// Watched names; `None` watches everything.
    names: Option<FxHashSet<String>>,
    tx: mpsc::Sender<WatchEvent>,
    /// Events dropped since the last one delivered, reported by whichever comes first: the
    /// next delivery or the watcher finding its queue empty.
    missed: Arc<AtomicU64>,
}

impl Subscriber {
    fn wants(&self, name: &str) -> bool {
        self.names.as_ref().is_none_or(|n| n.contains(name))
    }

    /// Delivers without blocking: first any pending `Lagged`, then the event; counts the event
    /// as missed if there is no room.
    fn deliver(&mut self, event: &WatchEvent) {
        let missed = self.missed.swap(0, Ordering::AcqRel);
        if missed > 0 && self.tx.try_send(WatchEvent::Lagged { missed }).is_err() {
            self.missed.fetch_add(missed + 1, Ordering::AcqRel);
            return;
        }
        if self.tx.try_send(event.clone()).is_err() {
            self.missed.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// The fan-out point of a context's changes: every backend of a context publishes the changes
/// it accepts here, and every [`Watcher`] of the context is subscribed here.
///
/// A context creates its hub and hands it to its backend (see
/// [`ContextBuilder::state`](crate::ContextBuilder::state)); a backend written outside this
/// crate subscribes watchers with [`subscribe`](Self::subscribe) and publishes with
/// [`publish`](Self::publish), under the same lock as the write it reports, so that
/// watchers see changes in the order they were applied.
///
/// ```
/// use dspex::state::WatchHub;
/// use dspex::{Source, VarId, WatchOptions};
/// use dspex::{Value, WatchEvent};
///
/// let hub = WatchHub::new();
/// let mut all = hub.subscribe(&[], WatchOptions::default(), Vec::new());
/// let registered = WatchEvent::Registered {
///     id: VarId(1),
///     name: "n".into(),
///     value: Value::Integer(1),
///     source: Source::Rust,
/// };
/// hub.publish(&registered);
/// assert_eq!(all.try_recv(), Some(registered));
/// ```
#[derive(Default)]
pub struct WatchHub {
    /// Number of subscribers, read without the lock so that a write with no watcher costs one
    /// atomic load.
    count: AtomicUsize,
    subscribers: Mutex<Vec<Subscriber>>,
}

impl fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchHub")
            .field("watchers", &self.count.load(Ordering::Acquire))
            .finish()
    }
}

impl WatchHub {
    /// A hub with no watchers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a watcher of the named variables (every variable when `names` is empty) whose
    /// queue starts with `initial` (the [`WatchEvent::Initial`] values, when the watch asked
    /// for them). Call it under the backend's lock, so that no change falls between the
    /// initial values and the first event. The queue holds `options.capacity` events (clamped
    /// to 1..=[`MAX_WATCH_CAPACITY`]) on top of the initial ones.
    pub fn subscribe(
        &self,
        names: &[&str],
        options: WatchOptions,
        initial: Vec<WatchEvent>,
    ) -> Watcher {
        let names: Option<FxHashSet<String>> =
            (!names.is_empty()).then(|| names.iter().map(|n| (*n).to_owned()).collect());
        // Room for the initial values on top of the requested capacity.
        let capacity = options.capacity.clamp(1, MAX_WATCH_CAPACITY);
        let (tx, rx) = mpsc::channel(capacity.saturating_add(initial.len()));
        for event in initial {
            // Cannot fail: the channel is empty and large enough.
            let _ = tx.try_send(event);
        }
        let missed = Arc::new(AtomicU64::new(0));
        let mut subscribers = self.subscribers.lock();
        subscribers.push(Subscriber {
            names,
            tx,
            missed: Arc::clone(&missed),
        });
        self.count.store(subscribers.len(), Ordering::Release);
        Watcher { rx, missed }
    }

    /// Whether anyone is watching; when not, a backend may skip building events.
    #[inline]
    pub fn is_watched(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Tells every watcher that it may have missed `missed` changes: each receives
    /// [`WatchEvent::Lagged`] now if its queue has room, else before its next event. For a
    /// backend that learns it missed changes without knowing which (a shared backend that
    /// reloads its session after losing track of it).
    ///
    /// ```
    /// use dspex::state::WatchHub;
    /// use dspex::WatchOptions;
    /// use dspex::WatchEvent;
    ///
    /// let hub = WatchHub::new();
    /// let mut one = hub.subscribe(&["n"], WatchOptions::default(), Vec::new());
    /// hub.publish_missed(3);
    /// assert_eq!(one.try_recv(), Some(WatchEvent::Lagged { missed: 3 }));
    /// ```
    pub fn publish_missed(&self, missed: u64) {
        let mut subscribers = self.subscribers.lock();
        subscribers.retain(|s| !s.tx.is_closed());
        for s in subscribers.iter() {
            let total = s.missed.swap(0, Ordering::AcqRel) + missed;
            if s.tx.try_send(WatchEvent::Lagged { missed: total }).is_err() {
                // Told before its next event, or as soon as it has read what is queued.
                s.missed.fetch_add(total, Ordering::AcqRel);
            }
        }
        self.count.store(subscribers.len(), Ordering::Release);
    }

    /// Delivers `event` to every watcher it concerns, never blocking: a
    /// [`Registered`](WatchEvent::Registered) event to the watchers of every variable, any
    /// other to the watchers of its variable and of every variable. A watcher whose queue is
    /// full misses the event and is told how many it missed before its next one.
    pub fn publish(&self, event: &WatchEvent) {
        let name = event.name().unwrap_or_default();
        let registration = matches!(event, WatchEvent::Registered { .. });
        let mut subscribers = self.subscribers.lock();
        subscribers.retain(|s| !s.tx.is_closed());
        for s in subscribers.iter_mut().filter(|s| {
            if registration {
                s.names.is_none()
            } else {
                s.wants(name)
            }
        }) {
            s.deliver(event);
        }
        self.count.store(subscribers.len(), Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(n: u64) -> WatchEvent {
        WatchEvent::Updated(Change {
            id: VarId(1),
            name: "x".into(),
            old: Value::Integer(0),
            new: Value::Integer(i64::try_from(n).unwrap()),
            version: n,
            source: Source::Rust,
            at: SystemTime::UNIX_EPOCH,
        })
    }

    #[test]
    fn a_full_queue_drops_and_reports_the_count() {
        let hub = WatchHub::default();
        let options = WatchOptions {
            capacity: 2,
            include_initial: false,
        };
        let mut w = hub.subscribe(&[], options, vec![]);
        for n in 1..=5 {
            hub.publish(&update(n));
        }
        assert_eq!(w.try_recv(), Some(update(1)));
        assert_eq!(w.try_recv(), Some(update(2)));
        // Nothing follows the drops: the count comes once the queue is read.
        assert_eq!(w.try_recv(), Some(WatchEvent::Lagged { missed: 3 }));
        assert_eq!(w.try_recv(), None);
        hub.publish(&update(6));
        assert_eq!(w.try_recv(), Some(update(6)));
        // Drops followed by a delivery: the count comes in its place, once.
        for n in 7..=10 {
            hub.publish(&update(n));
        }
        assert_eq!(w.try_recv(), Some(update(7)));
        assert_eq!(w.try_recv(), Some(update(8)));
        hub.publish(&update(11));
        assert_eq!(w.try_recv(), Some(WatchEvent::Lagged { missed: 2 }));
        assert_eq!(w.try_recv(), Some(update(11)));
        assert_eq!(w.try_recv(), None);
    }

    #[test]
    fn dropped_watchers_are_forgotten() {
        let hub = WatchHub::default();
        let w = hub.subscribe(&[], WatchOptions::default(), vec![]);
        assert!(hub.is_watched());
        drop(w);
        hub.publish(&update(1));
        assert!(!hub.is_watched());
    }
}
