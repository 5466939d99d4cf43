//! A backend written outside the crate, with nothing but the public API: variables in a
//! `BTreeMap` behind a lock, checked by `dspex-core`, each with its bounded `History`, read-only
//! variables refused to Python, changes published to the context's `WatchHub`. It passes the very same conformance suite as the crate's own backends, a context
//! started on it upgrades to the bridge like a local one, and that upgrade leaves the caller's
//! runtime free to run other tasks.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, SystemTime};

use dspex::state::{
    Capabilities, DEFAULT_HISTORY_LIMIT, ExportedVar, Glob, History, Key, StateProvider, VarRef,
    WatchHub, rollback_metadata,
};
use dspex::{
    BackendKind, Change, GetMany, HistoryEntry, SetOptions, Source, VarId, VarRecord, WatchOptions,
    Watcher,
};
use dspex::{Constraints, Context, Error, Result, Value, VariableSpec, WatchEvent};

mod conformance;

/// The kind the backend reports.
const KIND: BackendKind = BackendKind::Custom("map");

/// Variables in a map, under one lock.
struct MapState {
    hub: Arc<WatchHub>,
    inner: RwLock<Inner>,
    /// Holds `migrate_out` until the test lets it go (see [`Gate`]).
    gate: Option<Arc<Gate>>,
}

#[derive(Default)]
struct Inner {
    records: BTreeMap<String, VarRecord>,
    /// The history of each variable, by name.
    histories: HashMap<String, History>,
    names: HashMap<VarId, String>,
    last_id: u64,
    /// Where the variables went after `migrate_out`; later calls go there.
    successor: Option<Arc<dyn StateProvider>>,
}

impl Inner {
    fn name_of<'k>(&'k self, key: Key<'k>) -> Result<&'k str> {
        match key {
            Key::Name(name) if self.records.contains_key(name) => Ok(name),
            Key::Name(name) => Err(Error::NotFound {
                name: name.to_owned(),
            }),
            Key::Ref(r) => self
                .names
                .get(&r.id)
                .map(String::as_str)
                .ok_or(Error::NotFound {
                    name: r.id.to_string(),
                }),
        }
    }

    fn record(&self, key: Key<'_>) -> Result<&VarRecord> {
        let name = self.name_of(key)?;
        Ok(&self.records[name])
    }

    /// Every variable with its history.
    fn export(&self) -> Vec<ExportedVar> {
        self.records
            .values()
            .map(|record| ExportedVar {
                record: record.clone(),
                history: self.histories[&record.name].iter().cloned().collect(),
            })
            .collect()
    }
}

impl MapState {
    fn new(hub: Arc<WatchHub>) -> Self {
        Self {
            hub,
            inner: RwLock::default(),
            gate: None,
        }
    }

    /// Writes a checked value and publishes the change.
    fn commit(
        &self,
        inner: &mut Inner,
        name: &str,
        value: Value,
        source: Source,
        metadata: &BTreeMap<String, String>,
    ) -> u64 {
        let rec = inner.records.get_mut(name).unwrap();
        let old = std::mem::replace(&mut rec.value, value);
        rec.version += 1;
        rec.updated_at = SystemTime::now();
        rec.source = source;
        rec.metadata
            .extend(metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        let entry = HistoryEntry {
            version: rec.version,
            value: rec.value.clone(),
            source,
            metadata: metadata.clone(),
            at: rec.updated_at,
        };
        self.hub.publish(&WatchEvent::Updated(Change {
            id: rec.id,
            name: rec.name.clone(),
            old,
            new: rec.value.clone(),
            version: rec.version,
            source,
            at: rec.updated_at,
        }));
        let version = rec.version;
        inner.histories.get_mut(name).unwrap().push(entry);
        version
    }
}

/// Calls `$next.$method(..)` instead when the variables migrated out.
macro_rules! forward {
    ($inner:expr, $method:ident($($arg:expr),*)) => {
        if let Some(next) = &$inner.successor {
            return next.$method($($arg),*);
        }
    };
}

impl StateProvider for MapState {
    fn kind(&self) -> BackendKind {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            shared_with_python: false,
            session_ttl: false,
            in_process_reads: true,
        }
    }

    fn register(&self, spec: VariableSpec, source: Source) -> Result<VarRecord> {
        let mut inner = self.inner.write().unwrap();
        forward!(inner, register(spec, source));
        if inner.records.contains_key(&spec.name) {
            return Err(Error::AlreadyExists { name: spec.name });
        }
        let value = spec.check()?;
        inner.last_id += 1;
        let now = SystemTime::now();
        let record = VarRecord {
            id: VarId(inner.last_id),
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
        let mut history = History::new(DEFAULT_HISTORY_LIMIT);
        history.push(HistoryEntry::of_record(&record));
        inner.histories.insert(record.name.clone(), history);
        inner.names.insert(record.id, record.name.clone());
        inner.records.insert(record.name.clone(), record.clone());
        self.hub.publish(&WatchEvent::Registered {
            id: record.id,
            name: record.name.clone(),
            value: record.value.clone(),
            source,
        });
        Ok(record)
    }

    fn resolve(&self, name: &str) -> Result<VarRef> {
        let inner = self.inner.read().unwrap();
        forward!(inner, resolve(name));
        // Looked up by id every time: the slot means nothing to this backend.
        Ok(VarRef::new(inner.record(Key::Name(name))?.id, 0))
    }

    fn read(&self, key: Key<'_>, f: &mut dyn FnMut(&VarRecord)) -> Result<()> {
        let inner = self.inner.read().unwrap();
        forward!(inner, read(key, f));
        f(inner.record(key)?);
        Ok(())
    }

    fn get_many(&self, names: &[&str]) -> Result<GetMany> {
        let inner = self.inner.read().unwrap();
        forward!(inner, get_many(names));
        let mut out = GetMany::default();
        for name in names {
            match inner.records.get(*name) {
                Some(rec) => out.found.push(((*name).to_owned(), rec.value.clone())),
                None => out.missing.push((*name).to_owned()),
            }
        }
        Ok(out)
    }

    fn read_many(&self, names: &[&str], f: &mut dyn FnMut(&str, Option<&VarRecord>)) -> Result<()> {
        let inner = self.inner.read().unwrap();
        forward!(inner, read_many(names, f));
        for name in names {
            f(name, inner.records.get(*name));
        }
        Ok(())
    }

    fn set(&self, key: Key<'_>, value: Value, options: &SetOptions, source: Source) -> Result<u64> {
        let mut inner = self.inner.write().unwrap();
        forward!(inner, set(key, value, options, source));
        let rec = inner.record(key)?;
        rec.check_writable(source)?;
        if let Some(expected) = options.expected_version
            && expected != rec.version
        {
            return Err(Error::Conflict {
                name: rec.name.clone(),
                expected,
                actual: rec.version,
            });
        }
        let value = dspex_core::validate(&rec.name, rec.ty, &rec.constraints, value)?;
        let name = rec.name.clone();
        Ok(self.commit(&mut inner, &name, value, source, &options.metadata))
    }

    fn update(
        &self,
        key: Key<'_>,
        f: &mut dyn FnMut(&Value) -> Result<Value>,
        source: Source,
    ) -> Result<(Value, u64)> {
        let mut inner = self.inner.write().unwrap();
        forward!(inner, update(key, f, source));
        let rec = inner.record(key)?;
        rec.check_writable(source)?;
        let next = f(&rec.value)?;
        let value = dspex_core::validate(&rec.name, rec.ty, &rec.constraints, next)?;
        let name = rec.name.clone();
        let version = self.commit(&mut inner, &name, value.clone(), source, &BTreeMap::new());
        Ok((value, version))
    }

    fn update_many_with(
        &self,
        writes: Vec<(String, Value)>,
        metadata: &BTreeMap<String, String>,
        source: Source,
    ) -> Result<Vec<u64>> {
        let mut inner = self.inner.write().unwrap();
        forward!(inner, update_many_with(writes, metadata, source));
        // Everything is checked before anything is written.
        let mut seen = HashSet::new();
        let mut checked = Vec::with_capacity(writes.len());
        for (name, value) in writes {
            let rec = inner.record(Key::Name(&name))?;
            if !seen.insert(name.clone()) {
                return Err(Error::DuplicateWrite { name });
            }
            rec.check_writable(source)?;
            checked.push((
                name,
                dspex_core::validate(&rec.name, rec.ty, &rec.constraints, value)?,
            ));
        }
        Ok(checked
            .into_iter()
            .map(|(name, value)| self.commit(&mut inner, &name, value, source, metadata))
            .collect())
    }

    fn delete(&self, key: Key<'_>, source: Source) -> Result<VarRecord> {
        let mut inner = self.inner.write().unwrap();
        forward!(inner, delete(key, source));
        let name = inner.name_of(key)?.to_owned();
        inner.records[&name].check_writable(source)?;
        let record = inner.records.remove(&name).unwrap();
        inner.histories.remove(&name);
        inner.names.remove(&record.id);
        self.hub.publish(&WatchEvent::Deleted {
            id: record.id,
            name: record.name.clone(),
            version: record.version,
            source,
        });
        Ok(record)
    }

    fn history(&self, key: Key<'_>, limit: usize) -> Result<Vec<HistoryEntry>> {
        let inner = self.inner.read().unwrap();
        forward!(inner, history(key, limit));
        Ok(inner.histories[inner.name_of(key)?].latest(limit))
    }

    fn rollback(&self, key: Key<'_>, version: u64, source: Source) -> Result<u64> {
        let mut inner = self.inner.write().unwrap();
        forward!(inner, rollback(key, version, source));
        let rec = inner.record(key)?;
        rec.check_writable(source)?;
        let value = inner.histories[&rec.name].rollback_value(&rec.name, version)?;
        let value = dspex_core::validate(&rec.name, rec.ty, &rec.constraints, value)?;
        let name = rec.name.clone();
        Ok(self.commit(
            &mut inner,
            &name,
            value,
            source,
            &rollback_metadata(version),
        ))
    }

    fn list(&self, pattern: Option<&Glob>) -> Result<Vec<VarRecord>> {
        let inner = self.inner.read().unwrap();
        forward!(inner, list(pattern));
        Ok(inner
            .records
            .values()
            .filter(|r| pattern.is_none_or(|p| p.is_match(&r.name)))
            .cloned()
            .collect())
    }

    fn watch(&self, names: &[&str], options: WatchOptions) -> Result<Watcher> {
        // Writers take the write lock: no change falls between the initial values and the
        // subscription.
        let inner = self.inner.read().unwrap();
        forward!(inner, watch(names, options));
        let mut watched = Vec::new();
        for name in names {
            watched.push(inner.record(Key::Name(name))?);
        }
        if names.is_empty() {
            watched = inner.records.values().collect();
        }
        let initial = if options.include_initial {
            watched
                .into_iter()
                .map(|r| WatchEvent::Initial {
                    id: r.id,
                    name: r.name.clone(),
                    value: r.value.clone(),
                    version: r.version,
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(self.hub.subscribe(names, options, initial))
    }

    fn export(&self) -> Result<Vec<ExportedVar>> {
        let inner = self.inner.read().unwrap();
        forward!(inner, export());
        Ok(inner.export())
    }

    fn import(&self, variables: Vec<ExportedVar>) -> Result<()> {
        let mut inner = self.inner.write().unwrap();
        forward!(inner, import(variables));
        let (mut names, mut ids) = (HashSet::new(), HashSet::new());
        let records: Vec<&VarRecord> = variables.iter().map(|v| &v.record).collect();
        for rec in &records {
            if inner.records.contains_key(&rec.name) || !names.insert(rec.name.as_str()) {
                return Err(Error::AlreadyExists {
                    name: rec.name.clone(),
                });
            }
        }
        for rec in &records {
            if inner.names.contains_key(&rec.id) || !ids.insert(rec.id) {
                return Err(Error::Internal(format!("id {} is already in use", rec.id)));
            }
            VariableSpec::new(&rec.name, rec.ty, rec.value.clone())
                .with_constraints(rec.constraints.clone())
                .check()?;
        }
        let mut checked = Vec::with_capacity(variables.len());
        for ExportedVar { record, history } in variables {
            let history = History::import(&record, history, DEFAULT_HISTORY_LIMIT)?;
            checked.push((record, history));
        }
        for (rec, history) in checked {
            inner.last_id = inner.last_id.max(rec.id.0);
            inner.names.insert(rec.id, rec.name.clone());
            inner.histories.insert(rec.name.clone(), history);
            inner.records.insert(rec.name.clone(), rec);
        }
        Ok(())
    }

    fn migrate_out(
        &self,
        f: &mut dyn FnMut(Vec<ExportedVar>) -> Result<Arc<dyn StateProvider>>,
    ) -> Result<()> {
        let mut inner = self.inner.write().unwrap();
        forward!(inner, migrate_out(f));
        if let Some(gate) = &self.gate {
            gate.pass()?;
        }
        let successor = f(inner.export())?;
        *inner = Inner {
            successor: Some(successor),
            ..Inner::default()
        };
        Ok(())
    }
}

/// A context on a fresh `MapState`.
async fn map_context() -> Context {
    let ctx = Context::builder()
        .state(|hub| Ok(Arc::new(MapState::new(hub)) as Arc<dyn StateProvider>))
        .build()
        .await
        .unwrap();
    assert_eq!(ctx.backend().kind, KIND);
    ctx
}

struct Map;

impl conformance::Fixture for Map {
    async fn provider(&self) -> Arc<dyn StateProvider> {
        Arc::new(MapState::new(Arc::new(WatchHub::new())))
    }

    async fn context(&self) -> Context {
        map_context().await
    }
}

conformance_suite!(Map);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_on_a_custom_backend_upgrades_to_the_bridge() {
    let ctx = map_context().await;
    let t = ctx
        .defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))
        .unwrap();
    t.set(0.9).unwrap();
    let mut watcher = ctx.watch(&["temperature"]).unwrap();
    ctx.ensure_bridged().await.unwrap();
    let info = ctx.backend();
    assert_eq!((info.kind, info.switches), (BackendKind::Bridged, 1));
    let record = t.record().unwrap();
    assert_eq!((record.value, record.version), (Value::Float(0.9), 2));
    assert_eq!(record.metadata["migrated_from"], "map");
    // Watchers subscribed on the custom backend keep receiving from the bridged one.
    t.set(1.1).unwrap();
    match watcher.recv().await {
        Some(WatchEvent::Updated(change)) => assert_eq!(change.new, Value::Float(1.1)),
        other => panic!("unexpected {other:?}"),
    }
}

/// Holds a switch inside `migrate_out` until the test lets it go: it reports that the switch
/// is under way, then waits for the go.
struct Gate {
    entered: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    go: Mutex<mpsc::Receiver<()>>,
}

impl Gate {
    /// A liveness bound, not a timing assertion: a switch that blocks the runtime never gets
    /// its go, and the test fails with this error instead of hanging.
    const LIVENESS: Duration = Duration::from_secs(60);

    fn pass(&self) -> Result<()> {
        if let Some(entered) = self.entered.lock().unwrap().take() {
            let _ = entered.send(());
        }
        self.go
            .lock()
            .unwrap()
            .recv_timeout(Self::LIVENESS)
            .map_err(|_| {
                Error::Internal(
                    "no other task of the runtime ran while the switch was under way".into(),
                )
            })
    }
}

#[test]
fn ensure_bridged_lets_a_current_thread_runtime_run_other_tasks() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
        let (go_tx, go_rx) = mpsc::channel();
        let gate = Arc::new(Gate {
            entered: Mutex::new(Some(entered_tx)),
            go: Mutex::new(go_rx),
        });
        let ctx = Context::builder()
            .state(move |hub| {
                let mut state = MapState::new(hub);
                state.gate = Some(Arc::clone(&gate));
                Ok(Arc::new(state) as Arc<dyn StateProvider>)
            })
            .build()
            .await
            .unwrap();
        ctx.defvariable::<i64>("n", 1, Constraints::none()).unwrap();
        // Runs on the same (only) thread as the switch's caller: it can only let the switch
        // finish if the switch does not occupy that thread.
        let other = tokio::spawn(async move {
            entered_rx.await.unwrap();
            go_tx.send(()).unwrap();
        });
        ctx.ensure_bridged().await.unwrap();
        other.await.unwrap();
        assert_eq!(ctx.backend().kind, BackendKind::Bridged);
        assert_eq!(ctx.get::<i64>("n").unwrap(), 1);
    });
}
