//! The recent runs the dashboard shows: a ring of the last [`MAX_RECENT_RUNS`](super::MAX_RECENT_RUNS)
//! runs served, each with its inputs, outputs or error, and trace; filled by the run and
//! stream routes.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde_json::{Value as Json, json};
use tokio::sync::watch;

use crate::data::{Fields, RunTrace};
use crate::serve::error::ApiError;
use crate::serve::json;
use crate::util::time::rfc3339;

/// The last runs, newest last, at most `limit`; `changed` counts every run recorded.
pub(crate) struct RecentRuns {
    ring: Mutex<VecDeque<Json>>,
    limit: usize,
    changed: watch::Sender<u64>,
}

impl RecentRuns {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            ring: Mutex::new(VecDeque::with_capacity(limit)),
            limit,
            changed: watch::channel(0).0,
        }
    }

    /// Keeps `run`, dropping the oldest beyond the limit; numbers it.
    fn push(&self, mut run: Json) {
        let mut number = 0;
        self.changed.send_modify(|n| {
            *n += 1;
            number = *n;
        });
        run["number"] = json!(number);
        let mut ring = self.ring.lock();
        if ring.len() == self.limit {
            ring.pop_front();
        }
        ring.push_back(run);
    }

    /// The runs kept, newest first.
    pub(crate) fn newest_first(&self) -> Vec<Json> {
        self.ring.lock().iter().rev().cloned().collect()
    }

    /// Records a served run of `program` that took `duration`: its outputs and trace, or the
    /// error it ended with.
    pub(crate) fn record(
        &self,
        program: &str,
        inputs: &Fields,
        duration: Duration,
        outcome: Result<(&Fields, &RunTrace), &ApiError>,
    ) {
        let (outputs, trace, error) = match outcome {
            Ok((outputs, trace)) => (json::fields(outputs), json::trace(trace), Json::Null),
            Err(error) => {
                let mut body = error.body();
                if let Some(step) = &error.step {
                    body["step"] = json!(step);
                }
                (Json::Null, Json::Null, body)
            }
        };
        self.push(json!({
            "program": program,
            "at": rfc3339(SystemTime::now() - duration),
            "duration": duration.as_secs_f64(),
            "inputs": json::fields(inputs),
            "outputs": outputs,
            "trace": trace,
            "error": error,
        }));
    }

    /// Tells of every run recorded from now on.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::super::MAX_RECENT_RUNS;
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_runs_at_and_over_its_bound() {
        let runs = RecentRuns::new(MAX_RECENT_RUNS);
        let changed = runs.subscribe();
        for i in 0..MAX_RECENT_RUNS {
            runs.push(json!({"i": i}));
        }
        let kept = runs.newest_first();
        assert_eq!(kept.len(), MAX_RECENT_RUNS);
        assert_eq!(kept[0]["i"], MAX_RECENT_RUNS - 1);
        assert_eq!(kept[MAX_RECENT_RUNS - 1]["i"], 0);
        runs.push(json!({"i": MAX_RECENT_RUNS}));
        let kept = runs.newest_first();
        assert_eq!(kept.len(), MAX_RECENT_RUNS, "one more drops the oldest");
        assert_eq!(kept[0]["i"], MAX_RECENT_RUNS);
        assert_eq!(kept[0]["number"], MAX_RECENT_RUNS + 1);
        assert_eq!(kept[MAX_RECENT_RUNS - 1]["i"], 1);
        assert_eq!(*changed.borrow(), (MAX_RECENT_RUNS + 1) as u64);
    }
}
