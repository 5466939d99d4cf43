//! A study's trials held in this process (the memory study, and the file study's replay of its
//! journal), and the operations on them: the same rules the Redis study's scripts apply.

use std::collections::{BTreeSet, HashMap};

use super::record::{Ask, Asked, Assignment, MAX_ATTEMPTS, Outcome, Record, RecordState, key_of};

/// Every trial of a study, and what the operations need to be quick: the assignments held
/// (by any trial), the failed trials waiting to be proposed again, the count of finished
/// trials, and the log of changed trial numbers (what a reader has not seen yet).
#[derive(Debug, Default)]
pub(crate) struct StudyState {
    pub(crate) header: Option<String>,
    records: Vec<Record>,
    keys: HashMap<String, usize>,
    retry: BTreeSet<usize>,
    finished: usize,
    running: usize,
    log: Vec<usize>,
}

impl StudyState {
    /// Stores `record` (a new trial, or a new state of one), keeping the derived sets right.
    pub(crate) fn put(&mut self, record: Record) {
        let n = record.number;
        if let Some(old) = self.records.get(n) {
            match old.state {
                RecordState::Finished => self.finished -= 1,
                RecordState::Running => self.running -= 1,
                RecordState::Failed => {}
            }
            self.retry.remove(&n);
        }
        match record.state {
            RecordState::Finished => self.finished += 1,
            RecordState::Running => self.running += 1,
            RecordState::Failed => {
                if record.reproposed_as.is_none() && record.attempt < MAX_ATTEMPTS {
                    self.retry.insert(n);
                }
            }
        }
        let held = self.keys.entry(record.key()).or_insert(n);
        *held = (*held).max(n);
        if n < self.records.len() {
            self.records[n] = record;
        } else {
            // Numbers are dense: a journal holds every trial from 0.
            self.records.push(record);
        }
        self.log.push(n);
    }

    /// How many trials the study holds.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The trials changed since position `cursor` of the log, and the new position.
    pub(crate) fn since(&self, cursor: u64) -> (Vec<Record>, u64) {
        let from = usize::try_from(cursor)
            .unwrap_or(usize::MAX)
            .min(self.log.len());
        let changed: BTreeSet<usize> = self.log[from..].iter().copied().collect();
        let records = changed
            .into_iter()
            .map(|n| self.records[n].clone())
            .collect();
        (records, self.log.len() as u64)
    }

    /// Marks the running trials whose lease ran out (at or before `now_ms`) failed; returns
    /// them.
    fn expire(&mut self, now_ms: u64) -> Vec<usize> {
        let overdue: Vec<usize> = self
            .records
            .iter()
            .filter(|r| r.state == RecordState::Running && r.lease_until_ms <= now_ms)
            .map(|r| r.number)
            .collect();
        for &n in &overdue {
            let mut record = self.records[n].clone();
            record.state = RecordState::Failed;
            record.owner = String::new();
            self.put(record);
        }
        overdue
    }

    /// A new running trial of `assignment` leased to the asker; returns its number and the
    /// records written.
    fn create(
        &mut self,
        ask: &Ask,
        now_ms: u64,
        assignment: Assignment,
        origin: Option<usize>,
        attempt: u32,
    ) -> usize {
        let number = self.records.len();
        self.put(Record {
            number,
            state: RecordState::Running,
            assignment,
            owner: ask.owner.clone(),
            lease_until_ms: now_ms + ask.lease_ms,
            attempt,
            origin,
            reproposed_as: None,
            outcome: None,
        });
        number
    }

    /// Asks for a trial (see [`Asked`]); returns the answer and the numbers of the trials it
    /// changed.
    pub(crate) fn ask(&mut self, ask: &Ask, now_ms: u64) -> (Asked, Vec<usize>) {
        let mut changed = self.expire(now_ms);
        if self.finished >= ask.budget {
            return (Asked::Finished, changed);
        }
        let wait = |state: &Self| {
            let first = state
                .records
                .iter()
                .filter(|r| r.state == RecordState::Running)
                .map(|r| r.lease_until_ms)
                .min()
                .unwrap_or(now_ms);
            Asked::Wait(first.saturating_sub(now_ms))
        };
        if self.finished + self.running >= ask.budget {
            return (wait(self), changed);
        }
        if let Some(&old) = self.retry.first() {
            let original = self.records[old].clone();
            let number = self.create(
                ask,
                now_ms,
                original.assignment.clone(),
                Some(old),
                original.attempt + 1,
            );
            let mut failed = original;
            failed.reproposed_as = Some(number);
            let assignment = failed.assignment.clone();
            self.put(failed);
            changed.extend([number, old]);
            return (
                Asked::Retry {
                    number,
                    of: old,
                    assignment,
                },
                changed,
            );
        }
        let Some(proposal) = &ask.proposal else {
            let answer = if self.running > 0 {
                wait(self)
            } else {
                Asked::Exhausted
            };
            return (answer, changed);
        };
        if self.keys.contains_key(&key_of(proposal)) {
            return (Asked::Duplicate, changed);
        }
        let number = self.create(ask, now_ms, proposal.clone(), None, 1);
        changed.push(number);
        (Asked::Granted(number), changed)
    }

    /// Records the outcome of trial `number` if it is still running under `owner`'s lease;
    /// returns whether it was recorded.
    pub(crate) fn tell(&mut self, number: usize, owner: &str, outcome: &Outcome) -> bool {
        match self.records.get(number) {
            Some(r) if r.state == RecordState::Running && r.owner == owner => {
                let mut record = r.clone();
                record.state = RecordState::Finished;
                record.owner = String::new();
                record.outcome = Some(outcome.clone());
                self.put(record);
                true
            }
            _ => false,
        }
    }

    /// Extends the leases of the trials among `numbers` still running under `owner`'s lease;
    /// returns the numbers renewed.
    pub(crate) fn renew(&mut self, numbers: &[usize], owner: &str, until_ms: u64) -> Vec<usize> {
        let mut renewed = Vec::new();
        for &n in numbers {
            if let Some(r) = self.records.get(n)
                && r.state == RecordState::Running
                && r.owner == owner
            {
                let mut record = r.clone();
                record.lease_until_ms = until_ms;
                self.put(record);
                renewed.push(n);
            }
        }
        renewed
    }

    /// The record of trial `n`.
    pub(crate) fn record(&self, n: usize) -> Option<&Record> {
        self.records.get(n)
    }
}
