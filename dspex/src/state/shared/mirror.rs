//! A process's copy of a shared session: the records as of one point of the session's stream
//! of changes (`applied`), kept in the same table every backend uses, so that a read is a read
//! lock and a lookup. Changes are applied strictly in stream order, each published to the
//! context's watchers as it is applied; a gap in the order (changes trimmed from the stream
//! before this process read them) stops the application, and the caller reloads the whole
//! session, telling the watchers how many changes they missed.

use std::sync::Arc;

use rustc_hash::FxHashSet;

use super::codec::{ChangeKind, Entry};
use crate::state::table::VariableTable;
use crate::state::watch::{Change, WatchEvent, WatchHub};
use crate::state::{BackendKind, VarRecord};

/// The records of a session as of change `applied` of its life `epoch`.
pub(crate) struct Mirror {
    pub(crate) table: VariableTable,
    pub(crate) applied: u64,
    pub(crate) epoch: String,
}

/// The next change to apply is not the next in the session's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    pub(crate) expected: u64,
    pub(crate) found: u64,
}

impl Mirror {
    /// A mirror of a session loaded at change `seq`.
    pub(crate) fn loaded(
        hub: Arc<WatchHub>,
        seq: u64,
        epoch: String,
        records: Vec<VarRecord>,
    ) -> Self {
        let mut table = VariableTable::new(BackendKind::Shared, hub);
        for record in records {
            table.put(record);
        }
        Self {
            table,
            applied: seq,
            epoch,
        }
    }

    /// Applies `entries` in order, skipping those applied already and publishing each change
    /// to `hub`; stops at the first gap.
    pub(crate) fn apply(
        &mut self,
        hub: &WatchHub,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<(), Gap> {
        for entry in entries {
            if entry.seq <= self.applied {
                continue;
            }
            if entry.seq != self.applied + 1 {
                return Err(Gap {
                    expected: self.applied + 1,
                    found: entry.seq,
                });
            }
            let event = hub.is_watched().then(|| event(&entry));
            match entry.kind {
                ChangeKind::Registered | ChangeKind::Updated => self.table.put(entry.record),
                ChangeKind::Deleted => {
                    self.table.take(&entry.record.name);
                }
            }
            self.applied = entry.seq;
            if let Some(event) = event {
                hub.publish(&event);
            }
        }
        Ok(())
    }

    /// Replaces every record with those of a snapshot taken at change `seq` of life `epoch`,
    /// and tells every watcher how many changes it may have missed (at least one if the
    /// session started a new life). Returns that number.
    pub(crate) fn reload(
        &mut self,
        hub: &WatchHub,
        seq: u64,
        epoch: String,
        records: Vec<VarRecord>,
    ) -> u64 {
        let missed = if epoch != self.epoch || seq < self.applied {
            seq.max(1)
        } else {
            seq - self.applied
        };
        let keep: FxHashSet<&str> = records.iter().map(|r| r.name.as_str()).collect();
        let gone: Vec<String> = self
            .table
            .export()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.record.name)
            .filter(|name| !keep.contains(name.as_str()))
            .collect();
        for name in gone {
            self.table.take(&name);
        }
        for record in records {
            self.table.put(record);
        }
        self.applied = seq;
        self.epoch = epoch;
        if missed > 0 {
            hub.publish_missed(missed);
        }
        missed
    }
}

/// The watch event of a change.
fn event(entry: &Entry) -> WatchEvent {
    let r = &entry.record;
    match entry.kind {
        ChangeKind::Registered => WatchEvent::Registered {
            id: r.id,
            name: r.name.clone(),
            value: r.value.clone(),
            source: r.source,
        },
        ChangeKind::Updated => WatchEvent::Updated(Change {
            id: r.id,
            name: r.name.clone(),
            old: entry.old.clone().unwrap_or_else(|| r.value.clone()),
            new: r.value.clone(),
            version: r.version,
            source: r.source,
            at: r.updated_at,
        }),
        ChangeKind::Deleted => WatchEvent::Deleted {
            id: r.id,
            name: r.name.clone(),
            version: r.version,
            source: r.source,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use dspex_core::{Constraints, Value, VarType};

    use super::*;
    use crate::state::{Key, Source, VarId, WatchOptions};

    fn record(id: u64, name: &str, n: i64, version: u64) -> VarRecord {
        VarRecord {
            id: VarId(id),
            name: name.into(),
            ty: VarType::Integer,
            value: Value::Integer(n),
            constraints: Constraints::none(),
            description: None,
            metadata: BTreeMap::new(),
            version,
            created_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
            source: Source::Rust,
            readonly: false,
        }
    }

    fn entry(seq: u64, kind: ChangeKind, record: VarRecord) -> Entry {
        Entry {
            seq,
            kind,
            record,
            old: None,
        }
    }

    #[test]
    fn changes_apply_in_order_once_and_stop_at_a_gap() {
        let hub = Arc::new(WatchHub::new());
        let mut m = Mirror::loaded(Arc::clone(&hub), 0, "e".into(), Vec::new());
        let mut w = hub.subscribe(&[], WatchOptions::default(), Vec::new());
        m.apply(
            &hub,
            [
                entry(1, ChangeKind::Registered, record(1, "n", 0, 1)),
                entry(2, ChangeKind::Updated, record(1, "n", 5, 2)),
            ],
        )
        .unwrap();
        // Applied already: skipped, not published twice.
        m.apply(&hub, [entry(2, ChangeKind::Updated, record(1, "n", 5, 2))])
            .unwrap();
        assert_eq!(m.applied, 2);
        assert_eq!(m.table.record(Key::Name("n")).unwrap().version, 2);
        assert!(matches!(w.try_recv(), Some(WatchEvent::Registered { .. })));
        assert!(matches!(w.try_recv(), Some(WatchEvent::Updated(c)) if c.version == 2));
        assert_eq!(w.try_recv(), None);
        let gap = m
            .apply(&hub, [entry(5, ChangeKind::Deleted, record(1, "n", 5, 2))])
            .unwrap_err();
        assert_eq!(
            gap,
            Gap {
                expected: 3,
                found: 5
            }
        );
        assert!(m.table.record(Key::Name("n")).is_ok());
        assert_eq!(w.try_recv(), None);
    }

    #[test]
    fn a_reload_replaces_everything_and_reports_what_was_missed() {
        let hub = Arc::new(WatchHub::new());
        let mut m = Mirror::loaded(
            Arc::clone(&hub),
            3,
            "e".into(),
            vec![record(1, "a", 1, 1), record(2, "b", 2, 3)],
        );
        let r = m.table.resolve("b").unwrap();
        let mut w = hub.subscribe(&["a"], WatchOptions::default(), Vec::new());
        let missed = m.reload(
            &hub,
            10,
            "e".into(),
            vec![record(2, "b", 9, 8), record(3, "c", 0, 1)],
        );
        assert_eq!(missed, 7);
        assert_eq!(w.try_recv(), Some(WatchEvent::Lagged { missed: 7 }));
        assert!(m.table.record(Key::Name("a")).is_err());
        // Same id: the resolved reference still reaches it.
        assert_eq!(
            m.table.record(Key::Ref(r)).unwrap().value,
            Value::Integer(9)
        );
        // A new life of the session: at least one change missed.
        assert_eq!(m.reload(&hub, 0, "f".into(), Vec::new()), 1);
        assert_eq!((m.applied, m.epoch.as_str()), (0, "f"));
        assert!(m.table.export().unwrap().is_empty());
    }
}
