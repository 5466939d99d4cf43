//! The variable table: the storage and write rules every backend shares. It holds records in
//! slots (so a resolved [`VarRef`] is an index), checks every write with `dspex-core`, bumps
//! versions, and publishes accepted changes to the context's [`WatchHub`].
//!
//! Each variable's [`History`] sits beside its record, in a slot of the same index; the table
//! records every accepted write there and enforces read-only variables.
//!
//! [`LockedTable`] puts the table behind one `RwLock`, which is what makes `update`,
//! `update_many`, `watch` and `migrate_out` atomic, and implements [`StateProvider`] over it; every
//! backend is a `LockedTable` plus what its kind needs around it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use dspex_core::{Glob, Value, VariableSpec, validate};
use parking_lot::RwLock;
use rustc_hash::{FxHashMap, FxHashSet};

use super::history::{DEFAULT_HISTORY_LIMIT, History, HistoryEntry, rollback_metadata};
use super::watch::{Change, WatchEvent, WatchHub, WatchOptions, Watcher};
use super::{
    BackendKind, Capabilities, ExportedVar, GetMany, Key, SetOptions, Source, StateProvider, VarId,
    VarRecord, VarRef,
};
use crate::error::{Error, Result};
use crate::wire::limits::{MAX_METADATA_BYTES_PER_VARIABLE, MAX_METADATA_ENTRIES_PER_VARIABLE};

/// The storage of one backend.
pub(crate) struct VariableTable {
    kind: BackendKind,
    slots: Vec<Option<VarRecord>>,
    free_slots: Vec<u32>,
    by_name: FxHashMap<String, u32>,
    by_id: FxHashMap<VarId, u32>,
    next_id: u64,
    hub: Arc<WatchHub>,
    /// Where the variables went after `migrate_out`; calls that reach this table afterwards
    /// (they loaded the old backend just before the switch) are forwarded there.
    successor: Option<Arc<dyn StateProvider>>,
    /// The history of the variable in each slot (empty for a free slot).
    histories: Vec<History>,
    /// How many entries each history keeps.
    history_limit: usize,
}

impl VariableTable {
    pub(crate) fn new(kind: BackendKind, hub: Arc<WatchHub>) -> Self {
        Self {
            kind,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_name: FxHashMap::default(),
            by_id: FxHashMap::default(),
            next_id: 1,
            hub,
            successor: None,
            histories: Vec::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
        }
    }

    #[inline]
    fn slot_of(&self, key: Key<'_>) -> Result<u32> {
        match key {
            Key::Name(name) => self
                .by_name
                .get(name)
                .copied()
                .ok_or_else(|| Error::not_found(name)),
            Key::Ref(r) => match self.slots.get(r.slot as usize) {
                Some(Some(rec)) if rec.id == r.id => Ok(r.slot),
                // The variable moved slots (after a migration) or is gone.
                _ => self
                    .by_id
                    .get(&r.id)
                    .copied()
                    .ok_or_else(|| Error::not_found(&r.id.to_string())),
            },
        }
    }

    #[inline]
    fn at(&self, slot: u32) -> Result<&VarRecord> {
        self.slots
            .get(slot as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::internal("variable table index points at an empty slot"))
    }

    #[inline]
    fn at_mut(&mut self, slot: u32) -> Result<&mut VarRecord> {
        self.slots
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| Error::internal("variable table index points at an empty slot"))
    }

    /// The history of the variable in `slot`.
    fn history_at(&self, slot: u32) -> Result<&History> {
        self.histories
            .get(slot as usize)
            .ok_or_else(|| Error::internal("variable table index points past the histories"))
    }

    #[inline]
    fn history_at_mut(&mut self, slot: u32) -> Result<&mut History> {
        self.histories
            .get_mut(slot as usize)
            .ok_or_else(|| Error::internal("variable table index points past the histories"))
    }

    /// The record behind `key`.
    #[inline]
    pub(crate) fn record(&self, key: Key<'_>) -> Result<&VarRecord> {
        self.at(self.slot_of(key)?)
    }

    pub(crate) fn resolve(&self, name: &str) -> Result<VarRef> {
        let this = self;
        let slot = this.slot_of(Key::Name(name))?;
        Ok(VarRef::new(this.at(slot)?.id, slot))
    }

    pub(crate) fn register(&mut self, spec: VariableSpec, source: Source) -> Result<VarRecord> {
        let this = &mut *self;
        if this.by_name.contains_key(&spec.name) {
            return Err(Error::AlreadyExists { name: spec.name });
        }
        let value = spec.check()?;
        check_metadata(&spec.name, &BTreeMap::new(), &spec.metadata)?;
        let now = SystemTime::now();
        let record = VarRecord {
            id: VarId(this.next_id),
            name: spec.name,
            ty: spec.ty,
            value,
            constraints: spec.constraints,
            description: spec.description,
            metadata: spec.metadata,
            version: 1,
            created_at: now,
            updated_at: now,
            source,
            readonly: spec.readonly,
        };
        this.next_id += 1;
        let mut history = History::new(this.history_limit);
        history.push(HistoryEntry::of_record(&record));
        this.insert(record.clone(), history);
        if this.hub.is_watched() {
            this.hub.publish(&WatchEvent::Registered {
                id: record.id,
                name: record.name.clone(),
                value: record.value.clone(),
                source,
            });
        }
        Ok(record)
    }

    fn insert(&mut self, record: VarRecord, history: History) {
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.histories.push(History::default());
                // A table never holds anywhere near 2^32 variables.
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.by_name.insert(record.name.clone(), slot);
        self.by_id.insert(record.id, slot);
        self.slots[slot as usize] = Some(record);
        self.histories[slot as usize] = history;
    }

    pub(crate) fn get_many(&self, names: &[&str]) -> Result<GetMany> {
        let this = self;
        let mut out = GetMany::default();
        for name in names {
            match this.by_name.get(*name) {
                Some(&slot) => out
                    .found
                    .push(((*name).to_owned(), this.at(slot)?.value.clone())),
                None => out.missing.push((*name).to_owned()),
            }
        }
        Ok(out)
    }

    pub(crate) fn set(
        &mut self,
        key: Key<'_>,
        value: Value,
        options: &SetOptions,
        source: Source,
    ) -> Result<u64> {
        let this = &mut *self;
        let slot = this.slot_of(key)?;
        let rec = this.at(slot)?;
        rec.check_writable(source)?;
        options.check_version(rec)?;
        let value = validate(&rec.name, rec.ty, &rec.constraints, value)?;
        check_metadata(&rec.name, &rec.metadata, &options.metadata)?;
        this.commit(slot, value, source, &options.metadata)
    }

    pub(crate) fn update(
        &mut self,
        key: Key<'_>,
        f: &mut dyn FnMut(&Value) -> Result<Value>,
        source: Source,
    ) -> Result<(Value, u64)> {
        let this = &mut *self;
        let slot = this.slot_of(key)?;
        let rec = this.at(slot)?;
        rec.check_writable(source)?;
        let next = f(&rec.value)?;
        let value = validate(&rec.name, rec.ty, &rec.constraints, next)?;
        let version = this.commit(slot, value.clone(), source, &BTreeMap::new())?;
        Ok((value, version))
    }

    pub(crate) fn update_many(
        &mut self,
        writes: Vec<(String, Value)>,
        metadata: &BTreeMap<String, String>,
        source: Source,
    ) -> Result<Vec<u64>> {
        let this = &mut *self;
        // Validate everything first; nothing is written unless everything passes.
        let mut seen = FxHashSet::default();
        let mut checked = Vec::with_capacity(writes.len());
        for (name, value) in writes {
            let slot = this.slot_of(Key::Name(&name))?;
            if !seen.insert(slot) {
                return Err(Error::DuplicateWrite { name });
            }
            let rec = this.at(slot)?;
            rec.check_writable(source)?;
            let value = validate(&rec.name, rec.ty, &rec.constraints, value)?;
            check_metadata(&rec.name, &rec.metadata, metadata)?;
            checked.push((slot, value));
        }
        checked
            .into_iter()
            .map(|(slot, value)| this.commit(slot, value, source, metadata))
            .collect()
    }

    /// Writes an already validated value: swaps it in, bumps the version, records it in the
    /// history, publishes.
    #[inline]
    fn commit(
        &mut self,
        slot: u32,
        value: Value,
        source: Source,
        metadata: &BTreeMap<String, String>,
    ) -> Result<u64> {
        let watched = self.hub.is_watched();
        let rec = self.at_mut(slot)?;
        let old = std::mem::replace(&mut rec.value, value);
        rec.version += 1;
        rec.updated_at = SystemTime::now();
        rec.source = source;
        for (k, v) in metadata {
            rec.metadata.insert(k.clone(), v.clone());
        }
        let version = rec.version;
        let entry = HistoryEntry {
            version,
            value: rec.value.clone(),
            source,
            metadata: metadata.clone(),
            at: rec.updated_at,
        };
        if watched {
            let event = WatchEvent::Updated(Change {
                id: rec.id,
                name: rec.name.clone(),
                old,
                new: rec.value.clone(),
                version,
                source,
                at: rec.updated_at,
            });
            self.hub.publish(&event);
        }
        self.history_at_mut(slot)?.push(entry);
        Ok(version)
    }

    /// At most `limit` entries of the variable's history, newest first.
    pub(crate) fn history(&self, key: Key<'_>, limit: usize) -> Result<Vec<HistoryEntry>> {
        Ok(self.history_at(self.slot_of(key)?)?.latest(limit))
    }

    /// Writes the value of `version` again, as a new version with `rolled_back_from` metadata.
    pub(crate) fn rollback(&mut self, key: Key<'_>, version: u64, source: Source) -> Result<u64> {
        let slot = self.slot_of(key)?;
        let rec = self.at(slot)?;
        rec.check_writable(source)?;
        let value = self.history_at(slot)?.rollback_value(&rec.name, version)?;
        // The constraints never change, so the value is still valid; checked like any write.
        let value = validate(&rec.name, rec.ty, &rec.constraints, value)?;
        let metadata = rollback_metadata(version);
        check_metadata(&rec.name, &rec.metadata, &metadata)?;
        self.commit(slot, value, source, &metadata)
    }

    /// Keeps at most `limit` entries in every history from now on.
    pub(crate) fn set_history_limit(&mut self, limit: usize) {
        self.history_limit = limit;
        for history in &mut self.histories {
            history.set_limit(limit);
        }
    }

    pub(crate) fn delete(&mut self, key: Key<'_>, source: Source) -> Result<VarRecord> {
        let this = &mut *self;
        let slot = this.slot_of(key)?;
        this.at(slot)?.check_writable(source)?;
        let record = this.slots[slot as usize]
            .take()
            .ok_or_else(|| Error::internal("variable table index points at an empty slot"))?;
        *this.history_at_mut(slot)? = History::default();
        this.by_name.remove(&record.name);
        this.by_id.remove(&record.id);
        this.free_slots.push(slot);
        if this.hub.is_watched() {
            this.hub.publish(&WatchEvent::Deleted {
                id: record.id,
                name: record.name.clone(),
                version: record.version,
                source,
            });
        }
        Ok(record)
    }

    pub(crate) fn list(&self, pattern: Option<&Glob>) -> Result<Vec<VarRecord>> {
        let this = self;
        let mut records: Vec<VarRecord> = this
            .slots
            .iter()
            .flatten()
            .filter(|r| pattern.is_none_or(|p| p.is_match(&r.name)))
            .cloned()
            .collect();
        records.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// Calls `f` with the record of each name (`None` when there is none), in order.
    pub(crate) fn read_many(
        &self,
        names: &[&str],
        f: &mut dyn FnMut(&str, Option<&VarRecord>),
    ) -> Result<()> {
        for name in names {
            f(
                name,
                self.by_name
                    .get(*name)
                    .map(|&slot| self.at(slot))
                    .transpose()?,
            );
        }
        Ok(())
    }

    #[cfg(feature = "python")]
    /// Calls `f` with the records whose names come after `after` (all when `None`) and match
    /// `pattern`, in name order, until `f` returns `false`.
    pub(crate) fn visit_sorted(
        &self,
        pattern: Option<&Glob>,
        after: Option<&str>,
        f: &mut dyn FnMut(&VarRecord) -> bool,
    ) -> Result<()> {
        let mut names: Vec<(&str, u32)> = self
            .by_name
            .iter()
            .filter(|(name, _)| after.is_none_or(|a| name.as_str() > a))
            .filter(|(name, _)| pattern.is_none_or(|p| p.is_match(name)))
            .map(|(name, slot)| (name.as_str(), *slot))
            .collect();
        names.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (_, slot) in names {
            if !f(self.at(slot)?) {
                break;
            }
        }
        Ok(())
    }

    /// Subscribes a watcher. The caller holds the table's lock (a read lock suffices: writers
    /// need the write lock), so no change falls between the initial values and the stream.
    pub(crate) fn watch(&self, names: &[&str], options: WatchOptions) -> Result<Watcher> {
        let this = self;
        let mut initial = Vec::new();
        for name in names {
            let rec = this.record(Key::Name(name))?;
            if options.include_initial {
                initial.push(WatchEvent::Initial {
                    id: rec.id,
                    name: rec.name.clone(),
                    value: rec.value.clone(),
                    version: rec.version,
                });
            }
        }
        if names.is_empty() && options.include_initial {
            initial = this
                .list(None)?
                .into_iter()
                .map(|rec| WatchEvent::Initial {
                    id: rec.id,
                    name: rec.name,
                    value: rec.value,
                    version: rec.version,
                })
                .collect();
        }
        Ok(this.hub.subscribe(names, options, initial))
    }

    /// Every variable with its history, in storage order: imported in that order, the records
    /// keep their slots (up to the first deleted one), so typed handles keep their fast path
    /// after a switch.
    pub(crate) fn export(&self) -> Result<Vec<ExportedVar>> {
        Ok(self
            .slots
            .iter()
            .zip(&self.histories)
            .filter_map(|(record, history)| {
                Some(ExportedVar {
                    record: record.clone()?,
                    history: history.iter().cloned().collect(),
                })
            })
            .collect())
    }

    /// Adds variables from another backend, all or nothing.
    pub(crate) fn import(&mut self, variables: Vec<ExportedVar>) -> Result<()> {
        let this = &mut *self;
        let mut names = FxHashSet::default();
        let mut ids = FxHashSet::default();
        let records: Vec<&VarRecord> = variables.iter().map(|v| &v.record).collect();
        // Names first: a taken name is the conflict a caller can act on.
        for rec in &records {
            if this.by_name.contains_key(&rec.name) || !names.insert(rec.name.as_str()) {
                return Err(Error::AlreadyExists {
                    name: rec.name.clone(),
                });
            }
        }
        for rec in &records {
            if this.by_id.contains_key(&rec.id) || !ids.insert(rec.id) {
                return Err(Error::Internal(format!(
                    "cannot import `{}`: id {} is already in use",
                    rec.name, rec.id
                )));
            }
            // Records come from a backend that enforced the same rules; check anyway, since
            // import is the one write path that bypasses `register` and `set`.
            let spec = VariableSpec {
                name: rec.name.clone(),
                ty: rec.ty,
                initial: rec.value.clone(),
                constraints: rec.constraints.clone(),
                description: None,
                metadata: BTreeMap::new(),
                readonly: rec.readonly,
            };
            spec.check()?;
        }
        let mut checked = Vec::with_capacity(variables.len());
        for ExportedVar { record, history } in variables {
            let history = History::import(&record, history, this.history_limit)?;
            checked.push((record, history));
        }
        for (rec, history) in checked {
            this.next_id = this.next_id.max(rec.id.0 + 1);
            this.insert(rec, history);
        }
        Ok(())
    }

    /// Hands every record to `f`; if it succeeds, empties the table and forwards every later
    /// call to the backend `f` returned. The caller holds the write lock throughout.
    fn migrate_out(
        &mut self,
        f: &mut dyn FnMut(Vec<ExportedVar>) -> Result<Arc<dyn StateProvider>>,
    ) -> Result<()> {
        let successor = f(self.export()?)?;
        self.slots = Vec::new();
        self.histories = Vec::new();
        self.free_slots = Vec::new();
        self.by_name = FxHashMap::default();
        self.by_id = FxHashMap::default();
        self.successor = Some(successor);
        Ok(())
    }

    /// Number of variables.
    pub(crate) fn len(&self) -> usize {
        self.by_name.len()
    }

    #[cfg(feature = "redis")]
    /// Stores `record` as it is, replacing the record of the same name: in its slot when the
    /// id is the same (resolved references stay on the fast path), else as a new variable.
    /// For a table that mirrors records checked, versioned and kept (with their histories)
    /// elsewhere (the shared backend); publishes nothing and keeps no history.
    pub(crate) fn put(&mut self, record: VarRecord) {
        if let Some(&slot) = self.by_name.get(&record.name) {
            if let Some(Some(current)) = self.slots.get_mut(slot as usize)
                && current.id == record.id
            {
                *current = record;
                return;
            }
            self.take(&record.name.clone());
        }
        self.next_id = self.next_id.max(record.id.0 + 1);
        self.insert(record, History::default());
    }

    #[cfg(feature = "redis")]
    /// Removes the record of `name` as it is (see [`put`](Self::put)); publishes nothing.
    pub(crate) fn take(&mut self, name: &str) -> Option<VarRecord> {
        let slot = self.by_name.remove(name)?;
        let record = self.slots.get_mut(slot as usize)?.take()?;
        self.by_id.remove(&record.id);
        if let Some(history) = self.histories.get_mut(slot as usize) {
            *history = History::default();
        }
        self.free_slots.push(slot);
        Some(record)
    }
}

/// A [`VariableTable`] behind one lock: the [`StateProvider`] every backend delegates to.
pub(crate) struct LockedTable {
    table: RwLock<VariableTable>,
    capabilities: Capabilities,
}

impl LockedTable {
    pub(crate) fn new(kind: BackendKind, capabilities: Capabilities, hub: Arc<WatchHub>) -> Self {
        Self {
            table: RwLock::new(VariableTable::new(kind, hub)),
            capabilities,
        }
    }

    /// Number of variables (of the successor's, once they migrated out).
    pub(crate) fn len(&self) -> usize {
        self.read_route(|r| match r {
            Route::Here(t) => t.len(),
            Route::There(next) => next.list(None).map_or(0, |records| records.len()),
        })
    }

    /// Keeps at most `limit` entries in every history of the table from now on.
    pub(crate) fn set_history_limit(&self, limit: usize) {
        self.table.write().set_history_limit(limit);
    }
}

/// Where a call to a [`LockedTable`] is served: here, or by the successor of a table whose
/// variables migrated out.
enum Route<'a, T> {
    Here(T),
    There(&'a dyn StateProvider),
}

impl LockedTable {
    #[inline]
    fn read_route<R>(&self, op: impl FnOnce(Route<'_, &VariableTable>) -> R) -> R {
        let table = self.table.read();
        match &table.successor {
            None => op(Route::Here(&table)),
            Some(next) => {
                let next = Arc::clone(next);
                drop(table);
                op(Route::There(next.as_ref()))
            }
        }
    }

    #[inline]
    fn write_route<R>(&self, op: impl FnOnce(Route<'_, &mut VariableTable>) -> R) -> R {
        let mut table = self.table.write();
        match &table.successor {
            None => op(Route::Here(&mut table)),
            Some(next) => {
                let next = Arc::clone(next);
                drop(table);
                op(Route::There(next.as_ref()))
            }
        }
    }
}

impl LockedTable {
    #[cfg(feature = "python")]
    /// Calls `f` with the records after `after` that match `pattern`, in name order, until `f`
    /// returns `false`, under one read lock: a page of `ListVariables` is one consistent
    /// snapshot, built without copying the records it leaves out.
    pub(crate) fn visit_sorted(
        &self,
        pattern: Option<&Glob>,
        after: Option<&str>,
        f: &mut dyn FnMut(&VarRecord) -> bool,
    ) -> Result<()> {
        self.read_route(|r| match r {
            Route::Here(t) => t.visit_sorted(pattern, after, f),
            Route::There(next) => {
                for record in next.list(pattern)? {
                    if after.is_none_or(|a| record.name.as_str() > a) && !f(&record) {
                        break;
                    }
                }
                Ok(())
            }
        })
    }
}

impl StateProvider for LockedTable {
    fn kind(&self) -> BackendKind {
        self.table.read().kind
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn register(&self, spec: VariableSpec, source: Source) -> Result<VarRecord> {
        self.write_route(|r| match r {
            Route::Here(t) => t.register(spec, source),
            Route::There(next) => next.register(spec, source),
        })
    }

    fn resolve(&self, name: &str) -> Result<VarRef> {
        self.read_route(|r| match r {
            Route::Here(t) => t.resolve(name),
            Route::There(next) => next.resolve(name),
        })
    }

    #[inline]
    fn read(&self, key: Key<'_>, f: &mut dyn FnMut(&VarRecord)) -> Result<()> {
        self.read_route(|r| match r {
            Route::Here(t) => {
                f(t.record(key)?);
                Ok(())
            }
            Route::There(next) => next.read(key, f),
        })
    }

    fn get_many(&self, names: &[&str]) -> Result<GetMany> {
        self.read_route(|r| match r {
            Route::Here(t) => t.get_many(names),
            Route::There(next) => next.get_many(names),
        })
    }

    fn read_many(&self, names: &[&str], f: &mut dyn FnMut(&str, Option<&VarRecord>)) -> Result<()> {
        self.read_route(|r| match r {
            Route::Here(t) => t.read_many(names, f),
            Route::There(next) => next.read_many(names, f),
        })
    }

    #[inline]
    fn set(&self, key: Key<'_>, value: Value, options: &SetOptions, source: Source) -> Result<u64> {
        self.write_route(|r| match r {
            Route::Here(t) => t.set(key, value, options, source),
            Route::There(next) => next.set(key, value, options, source),
        })
    }

    fn update(
        &self,
        key: Key<'_>,
        f: &mut dyn FnMut(&Value) -> Result<Value>,
        source: Source,
    ) -> Result<(Value, u64)> {
        self.write_route(|r| match r {
            Route::Here(t) => t.update(key, f, source),
            Route::There(next) => next.update(key, f, source),
        })
    }

    fn update_many_with(
        &self,
        writes: Vec<(String, Value)>,
        metadata: &BTreeMap<String, String>,
        source: Source,
    ) -> Result<Vec<u64>> {
        self.write_route(|r| match r {
            Route::Here(t) => t.update_many(writes, metadata, source),
            Route::There(next) => next.update_many_with(writes, metadata, source),
        })
    }

    fn delete(&self, key: Key<'_>, source: Source) -> Result<VarRecord> {
        self.write_route(|r| match r {
            Route::Here(t) => t.delete(key, source),
            Route::There(next) => next.delete(key, source),
        })
    }

    fn history(&self, key: Key<'_>, limit: usize) -> Result<Vec<HistoryEntry>> {
        self.read_route(|r| match r {
            Route::Here(t) => t.history(key, limit),
            Route::There(next) => next.history(key, limit),
        })
    }

    fn rollback(&self, key: Key<'_>, version: u64, source: Source) -> Result<u64> {
        self.write_route(|r| match r {
            Route::Here(t) => t.rollback(key, version, source),
            Route::There(next) => next.rollback(key, version, source),
        })
    }

    fn list(&self, pattern: Option<&Glob>) -> Result<Vec<VarRecord>> {
        self.read_route(|r| match r {
            Route::Here(t) => t.list(pattern),
            Route::There(next) => next.list(pattern),
        })
    }

    fn watch(&self, names: &[&str], options: WatchOptions) -> Result<Watcher> {
        self.read_route(|r| match r {
            Route::Here(t) => t.watch(names, options),
            Route::There(next) => next.watch(names, options),
        })
    }

    fn export(&self) -> Result<Vec<ExportedVar>> {
        self.read_route(|r| match r {
            Route::Here(t) => t.export(),
            Route::There(next) => next.export(),
        })
    }

    fn import(&self, variables: Vec<ExportedVar>) -> Result<()> {
        self.write_route(|r| match r {
            Route::Here(t) => t.import(variables),
            Route::There(next) => next.import(variables),
        })
    }

    fn migrate_out(
        &self,
        f: &mut dyn FnMut(Vec<ExportedVar>) -> Result<Arc<dyn StateProvider>>,
    ) -> Result<()> {
        self.write_route(|r| match r {
            Route::Here(t) => t.migrate_out(f),
            Route::There(next) => next.migrate_out(f),
        })
    }
}

/// Implements [`StateProvider`] for a backend type by delegating every method to the
/// `LockedTable` that `$table` (a closure-like `|self| expr`) returns.
macro_rules! delegate_state_provider {
    ($ty:ty, |$this:ident| $table:expr) => {
        impl $crate::state::StateProvider for $ty {
            fn kind(&self) -> $crate::state::BackendKind {
                let $this = self;
                $table.kind()
            }
            fn capabilities(&self) -> $crate::state::Capabilities {
                let $this = self;
                $table.capabilities()
            }
            fn register(
                &self,
                spec: ::dspex_core::VariableSpec,
                source: $crate::state::Source,
            ) -> $crate::Result<$crate::state::VarRecord> {
                let $this = self;
                $table.register(spec, source)
            }
            fn resolve(&self, name: &str) -> $crate::Result<$crate::state::VarRef> {
                let $this = self;
                $table.resolve(name)
            }
            #[inline]
            fn read(
                &self,
                key: $crate::state::Key<'_>,
                f: &mut dyn FnMut(&$crate::state::VarRecord),
            ) -> $crate::Result<()> {
                let $this = self;
                $table.read(key, f)
            }
            fn get_many(&self, names: &[&str]) -> $crate::Result<$crate::state::GetMany> {
                let $this = self;
                $table.get_many(names)
            }
            fn read_many(
                &self,
                names: &[&str],
                f: &mut dyn FnMut(&str, Option<&$crate::state::VarRecord>),
            ) -> $crate::Result<()> {
                let $this = self;
                $table.read_many(names, f)
            }
            #[inline]
            fn set(
                &self,
                key: $crate::state::Key<'_>,
                value: ::dspex_core::Value,
                options: &$crate::state::SetOptions,
                source: $crate::state::Source,
            ) -> $crate::Result<u64> {
                let $this = self;
                $table.set(key, value, options, source)
            }
            fn update(
                &self,
                key: $crate::state::Key<'_>,
                f: &mut dyn FnMut(&::dspex_core::Value) -> $crate::Result<::dspex_core::Value>,
                source: $crate::state::Source,
            ) -> $crate::Result<(::dspex_core::Value, u64)> {
                let $this = self;
                $table.update(key, f, source)
            }
            fn update_many_with(
                &self,
                writes: Vec<(String, ::dspex_core::Value)>,
                metadata: &::std::collections::BTreeMap<String, String>,
                source: $crate::state::Source,
            ) -> $crate::Result<Vec<u64>> {
                let $this = self;
                $table.update_many_with(writes, metadata, source)
            }
            fn delete(
                &self,
                key: $crate::state::Key<'_>,
                source: $crate::state::Source,
            ) -> $crate::Result<$crate::state::VarRecord> {
                let $this = self;
                $table.delete(key, source)
            }
            fn history(
                &self,
                key: $crate::state::Key<'_>,
                limit: usize,
            ) -> $crate::Result<Vec<$crate::state::HistoryEntry>> {
                let $this = self;
                $table.history(key, limit)
            }
            fn rollback(
                &self,
                key: $crate::state::Key<'_>,
                version: u64,
                source: $crate::state::Source,
            ) -> $crate::Result<u64> {
                let $this = self;
                $table.rollback(key, version, source)
            }
            fn list(
                &self,
                pattern: Option<&::dspex_core::Glob>,
            ) -> $crate::Result<Vec<$crate::state::VarRecord>> {
                let $this = self;
                $table.list(pattern)
            }
            fn watch(
                &self,
                names: &[&str],
                options: $crate::state::WatchOptions,
            ) -> $crate::Result<$crate::state::Watcher> {
                let $this = self;
                $table.watch(names, options)
            }
            fn export(&self) -> $crate::Result<Vec<$crate::state::ExportedVar>> {
                let $this = self;
                $table.export()
            }
            fn import(&self, variables: Vec<$crate::state::ExportedVar>) -> $crate::Result<()> {
                let $this = self;
                $table.import(variables)
            }
            fn migrate_out(
                &self,
                f: &mut dyn FnMut(
                    Vec<$crate::state::ExportedVar>,
                ) -> $crate::Result<
                    ::std::sync::Arc<dyn $crate::state::StateProvider>,
                >,
            ) -> $crate::Result<()> {
                let $this = self;
                $table.migrate_out(f)
            }
        }
    };
}
pub(crate) use delegate_state_provider;

/// Checks that merging `merge` into a variable's `current` metadata keeps it within
/// [`MAX_METADATA_ENTRIES_PER_VARIABLE`] entries and [`MAX_METADATA_BYTES_PER_VARIABLE`] bytes.
pub(crate) fn check_metadata(
    name: &str,
    current: &BTreeMap<String, String>,
    merge: &BTreeMap<String, String>,
) -> Result<()> {
    if merge.is_empty() {
        return Ok(());
    }
    let mut entries = current.len();
    let mut bytes: usize = current.iter().map(|(k, v)| k.len() + v.len()).sum();
    for (k, v) in merge {
        match current.get(k) {
            Some(old) => bytes = bytes - old.len() + v.len(),
            None => {
                entries += 1;
                bytes += k.len() + v.len();
            }
        }
    }
    if entries > MAX_METADATA_ENTRIES_PER_VARIABLE {
        return Err(Error::limit(
            "MAX_METADATA_ENTRIES_PER_VARIABLE",
            format!(
                "`{name}`: its metadata would hold {entries} entries, over the limit of {MAX_METADATA_ENTRIES_PER_VARIABLE} (MAX_METADATA_ENTRIES_PER_VARIABLE)"
            ),
        ));
    }
    if bytes > MAX_METADATA_BYTES_PER_VARIABLE {
        return Err(Error::limit(
            "MAX_METADATA_BYTES_PER_VARIABLE",
            format!(
                "`{name}`: its metadata would hold {bytes} bytes, over the limit of {MAX_METADATA_BYTES_PER_VARIABLE} (MAX_METADATA_BYTES_PER_VARIABLE)"
            ),
        ));
    }
    Ok(())
}
