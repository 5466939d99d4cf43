//! The events waiting for one gRPC watch stream, bounded in events and in bytes: a client that
//! stops reading holds at most [`WATCH_QUEUE_CAPACITY`](crate::wire::limits::WATCH_QUEUE_CAPACITY)
//! events and [`MAX_WATCH_QUEUE_BYTES`](crate::wire::limits::MAX_WATCH_QUEUE_BYTES) of them, however
//! large the values written; what does not fit is dropped for that stream only and counted, and
//! the client is told how many it missed.

use std::collections::VecDeque;

use prost::Message;

use crate::wire::proto::{self as pb, UpdateKind};

/// A bounded queue of watch updates for one stream.
#[derive(Debug)]
pub(crate) struct WatchQueue {
    events: VecDeque<pb::VariableUpdate>,
    bytes: usize,
    /// Events dropped since the last one queued.
    missed: u64,
    max_events: usize,
    max_bytes: usize,
}

impl WatchQueue {
    pub(crate) fn new(max_events: usize, max_bytes: usize) -> Self {
        Self {
            events: VecDeque::new(),
            bytes: 0,
            missed: 0,
            max_events: max_events.max(2),
            max_bytes,
        }
    }

    /// Queues an update, or counts it as missed when it does not fit in events or bytes (a
    /// queue with nothing waiting always takes one, so that a value larger than the byte budget
    /// still reaches a client that keeps up). A lag reported upstream adds to the count.
    pub(crate) fn push(&mut self, update: pb::VariableUpdate) {
        if update.kind == i32::from(UpdateKind::Lagged) {
            self.missed += update.missed;
            return;
        }
        let size = update.encoded_len();
        // A pending count needs room for its own `LAGGED` update in front of the event.
        let slots = if self.missed > 0 { 2 } else { 1 };
        let fits = self.events.len() + slots <= self.max_events
            && self.bytes + size + lag_size(self.missed) <= self.max_bytes;
        if !fits && !self.events.is_empty() {
            self.missed += 1;
            return;
        }
        if self.missed > 0 {
            let lag = lagged(std::mem::take(&mut self.missed));
            self.bytes += lag.encoded_len();
            self.events.push_back(lag);
        }
        self.bytes += size;
        self.events.push_back(update);
    }

    /// The next update to send: the oldest queued one, or, once the queue has drained while
    /// events were dropped, the `LAGGED` update that says how many.
    pub(crate) fn pop(&mut self) -> Option<pb::VariableUpdate> {
        match self.events.pop_front() {
            Some(update) => {
                self.bytes -= update.encoded_len();
                Some(update)
            }
            None if self.missed > 0 => Some(lagged(std::mem::take(&mut self.missed))),
            None => None,
        }
    }

    /// Whether [`pop`](Self::pop) has something.
    pub(crate) fn has_next(&self) -> bool {
        !self.events.is_empty() || self.missed > 0
    }

    /// Encoded bytes of the queued updates.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

fn lagged(missed: u64) -> pb::VariableUpdate {
    pb::VariableUpdate {
        kind: UpdateKind::Lagged.into(),
        missed,
        ..Default::default()
    }
}

fn lag_size(missed: u64) -> usize {
    if missed == 0 {
        0
    } else {
        lagged(missed).encoded_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(n: usize, value_bytes: usize) -> pb::VariableUpdate {
        pb::VariableUpdate {
            kind: UpdateKind::Updated.into(),
            name: "v".into(),
            version: n as u64,
            new_value: Some(pb::Value {
                kind: Some(pb::value::Kind::StringValue("x".repeat(value_bytes))),
            }),
            ..Default::default()
        }
    }

    fn drain(queue: &mut WatchQueue) -> Vec<pb::VariableUpdate> {
        std::iter::from_fn(|| queue.pop()).collect()
    }

    fn is_lag(u: &pb::VariableUpdate) -> Option<u64> {
        (u.kind == i32::from(UpdateKind::Lagged)).then_some(u.missed)
    }

    #[test]
    fn at_the_event_bound_nothing_is_missed_and_over_it_the_count_is_reported() {
        let mut q = WatchQueue::new(8, usize::MAX);
        for n in 0..8 {
            q.push(update(n, 1));
        }
        let got = drain(&mut q);
        assert_eq!(got.len(), 8);
        assert!(got.iter().all(|u| is_lag(u).is_none()));

        for n in 0..11 {
            q.push(update(n, 1));
        }
        let got = drain(&mut q);
        // Eight queued, then the three dropped ones reported.
        assert_eq!(got.len(), 9);
        assert_eq!(is_lag(&got[8]), Some(3));
        assert_eq!(got[7].version, 7);
        assert!(!q.has_next());
    }

    #[test]
    fn at_the_byte_bound_nothing_is_missed_and_over_it_the_queue_holds_no_more() {
        // Versions 1 to 100 all encode in one byte: every update has the same size.
        let one = update(1, 1000).encoded_len();
        let mut q = WatchQueue::new(usize::MAX, 4 * one);
        for n in 1..=4 {
            q.push(update(n, 1000));
        }
        assert_eq!(q.bytes(), 4 * one);
        assert!(drain(&mut q).iter().all(|u| is_lag(u).is_none()));

        for n in 1..=100 {
            q.push(update(n, 1000));
            assert!(q.bytes() <= 4 * one);
        }
        let got = drain(&mut q);
        let delivered = got.iter().filter(|u| is_lag(u).is_none()).count() as u64;
        let missed: u64 = got.iter().filter_map(is_lag).sum();
        assert_eq!(delivered + missed, 100);
        assert!(missed >= 96, "{missed}");
    }

    #[test]
    fn the_lag_is_reported_in_place_and_upstream_lags_add_up() {
        let mut q = WatchQueue::new(3, usize::MAX);
        for n in 1..=3 {
            q.push(update(n, 1));
        }
        q.push(update(4, 1)); // dropped: the queue is full
        assert_eq!(q.pop().unwrap().version, 1);
        assert_eq!(q.pop().unwrap().version, 2);
        q.push(lagged(5)); // five more dropped upstream, by the hub
        q.push(update(5, 1));
        let got = drain(&mut q);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].version, 3);
        assert_eq!(is_lag(&got[1]), Some(6));
        assert_eq!(got[2].version, 5);
    }

    #[test]
    fn an_event_larger_than_the_budget_still_reaches_a_client_that_keeps_up() {
        let mut q = WatchQueue::new(16, 10);
        q.push(update(1, 1000));
        assert_eq!(q.pop().unwrap().version, 1);
        q.push(update(2, 1000));
        q.push(update(3, 1000));
        let got = drain(&mut q);
        assert_eq!(got[0].version, 2);
        assert_eq!(is_lag(&got[1]), Some(1));
    }
}
