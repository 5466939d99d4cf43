//! Variables shared by many processes and hosts: [`SharedState`], a backend that keeps a
//! session's variables in Redis (7 or later), so that every process that opens the same
//! session name on the same Redis shares them.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> dspex::Result<()> {
//! use dspex::{BackendKind, Constraints, Context};
//!
//! // In every replica of a service:
//! let ctx = Context::builder()
//!     .shared("redis://127.0.0.1:6379/0")
//!     .session("qa-prod")
//!     .build()
//!     .await?;
//! // The first replica registers it; the others share it (same declaration).
//! let t = ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
//! t.set(0.9)?; // every replica's next read sees 0.9
//! assert_eq!(ctx.backend().kind, BackendKind::Shared);
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! - **Writes** are validated by `dspex-core` in the writing process, against its copy of the
//!   variable's record, then applied by one Lua script that checks the record is still at the
//!   version the write was computed from (its `ID:VERSION` head), writes the new record (value,
//!   version, metadata) and appends the change to the session's stream (trimmed to
//!   [`SharedConfig::stream_max_len`] entries), atomically. A
//!   write that lost the race reads the changes it missed and runs again, so `set` and
//!   `update` are compare-and-set loops, and `update_many` is one script: all or nothing.
//!   Scripts run by EVALSHA, falling back to EVAL when Redis does not know them yet.
//! - **Records** are stored as the wire contract's `dspex.v1.Variable` messages, values as
//!   `dspex.v1.Value` (prost), in the keys listed by [`SessionKeys`], which share a hash tag
//!   so that a session also works on Redis Cluster.
//! - **Ids** are unique in a session (a counter in Redis). Registering a name that the
//!   session holds with the same declaration (type, constraints and description) shares it:
//!   `register` returns the session's record, with its value, version and metadata (the
//!   initial value and metadata of the joining declaration are not applied). Another
//!   declaration is refused with [`Error::DeclarationMismatch`](crate::Error), naming the
//!   variable and what differs.
//! - **Watching** follows the session's changes in order: every change made by any process is
//!   delivered to this process's watchers in the session's order. Each write publishes its
//!   changes to every other process that has the session open (never to the writing process,
//!   which applies its own write itself), and the session's stream keeps them all: a process
//!   that misses a notice catches up from the stream. A process that fell behind
//!   further than the stream keeps (or that was cut off while the session expired and started
//!   again) reloads the session and tells each watcher how many changes it may have missed
//!   ([`WatchEvent::Lagged`](crate::WatchEvent)); a gap is never skipped silently.
//! - **The session's life**: every open process renews the TTL of the session's keys on a
//!   heartbeat (see [`SharedConfig::heartbeat`]), and a write that creates a key gives it the
//!   TTL; a session nobody has open expires [`SharedConfig::ttl`] after the last renewal,
//!   and opening it again starts it empty.
//!
//! # Consistency
//!
//! Reads (`get`, typed handles, `get_many`, `list`, `exists`) are served from a per-process
//! mirror of the session: a read lock and a lookup, the same speed class as the local backend,
//! never a network round trip. The mirror is fed by the session's stream and is:
//!
//! - **read-your-writes**: a write's result is in the writer's mirror when the write returns,
//!   so the writing process's next read (and its watchers) see it;
//! - **ordered**: every process applies the session's changes in the one order Redis gave
//!   them (the stream), and never shows a state older than one it showed before;
//! - **eventually up to date**: another process's write shows up in this process's reads once
//!   its reader has received it from the stream, typically within a network round trip; a
//!   write made here always starts from the session's latest state, whatever the mirror said
//!   (compare-and-set against Redis).
//!
//! # Faults
//!
//! - Redis unreachable when the session is opened: the error names the URL, nothing is
//!   created.
//! - Redis unreachable later: writes fail with an error naming the URL (at once when Redis
//!   refuses connections, after [`CONNECT_TIMEOUT`] when nothing answers; nothing changes in
//!   this process); reads keep serving the last state the mirror saw; the reader
//!   reconnects in the background, catches up (or reloads, telling watchers they missed
//!   changes) and writes work again.
//! - A failed write says whether it was applied. One that failed before its script reached
//!   Redis, or that Redis refused, is [`Error::Shared`](crate::Error) saying "the write was
//!   not applied". One whose script was sent but whose reply never came (the connection
//!   broke, or Redis did not answer within [`IO_TIMEOUT`]) is
//!   [`Error::OutcomeUnknown`](crate::Error): it may have been applied; if it was, the
//!   stream brings it to the mirror and the watchers. A write Redis applied is reported as
//!   applied even if this process's mirror cannot catch up right then (Redis lost just
//!   after): the reader brings it to this process's reads once it reaches Redis again.
//! - Every failed round trip drops the connection it used, a write connects again if it must,
//!   and the writer's connection is replaced as soon as the reader sees Redis go: once Redis
//!   is back, a process fails at most one write (one sent on a connection Redis closed, before
//!   the reader noticed).
//! - A write blocks its thread for one Redis round trip (and at most [`IO_TIMEOUT`] on a Redis
//!   that stopped answering), and the writes of one process are serialized: treat a write like
//!   taking a mutex. Opening a session connects and loads it: do it off the async runtime's
//!   threads (the context builder does).
//! - A process that dies, even in the middle of a write, leaves the session consistent: each
//!   write is one atomic script. With Redis's append-only file and `appendfsync always`,
//!   acknowledged writes survive a Redis restart.
//!
//! # History and read-only variables
//!
//! Every write also stores its history entry (version, value, source, the metadata given with
//! the write, time) in the session, under the variable's `ID:VERSION`, in the same script; the
//! entry `hlimit` versions older is dropped then, and a deletion drops the variable's entries.
//! `hlimit` is the history limit of the process that created the session
//! ([`SharedConfig::history_limit`]); [`MAX_HISTORY_BYTES`](crate::state::MAX_HISTORY_BYTES)
//! is applied when a history is read (a round trip to Redis), as on every backend. A read-only
//! variable is a flag of
//! its stored record: every process refuses Python writes to it.

mod codec;
mod config;
mod link;
mod mirror;
mod scripts;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use dspex_core::{Glob, Value, VariableSpec, validate};
use rustc_hash::FxHashSet;

pub(crate) use config::check_key_name;
pub use config::{
    CONNECT_TIMEOUT, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_SESSION_TTL, DEFAULT_STREAM_MAX_LEN,
    IO_TIMEOUT, MAX_READ_BLOCK, MAX_SESSION_NAME_BYTES, MAX_STREAM_MAX_LEN, MAX_WRITE_ATTEMPTS,
    MEMBERSHIP_LAPSE_BEATS, MIN_SESSION_TTL, READ_BATCH, RECONNECT_DELAY, SessionKeys,
    SharedConfig,
};

use self::codec::{
    ChangeKind, Entry, decode_history_entry, encode_history_entry, encode_record, encode_value,
    head,
};
use self::link::Link;
use self::scripts::{Applied, Op, OpKind};
use super::table::{VariableTable, check_metadata};
use super::watch::{Change, WatchEvent};
use super::{
    BackendKind, Capabilities, ExportedVar, GetMany, History, HistoryEntry, Key, SetOptions,
    Source, StateProvider, VarId, VarRecord, VarRef, WatchHub, WatchOptions, Watcher,
    rollback_metadata,
};
use crate::error::{Error, Result};

/// What a shared backend can do: Python reaches its variables through the process's bridge,
/// its session expires unless renewed, and reads are served in-process from the mirror.
const SHARED_CAPABILITIES: Capabilities = Capabilities {
    shared_with_python: true,
    session_ttl: true,
    in_process_reads: true,
};

/// Variable state in a Redis session shared by every process that opens it (see the
/// [module docs](self) for how it works and the consistency it gives).
///
/// Usually opened by [`ContextBuilder::shared`](crate::ContextBuilder::shared) or
/// [`Context::ensure_shared`](crate::Context::ensure_shared); opened directly it is a
/// [`StateProvider`] like any other.
///
/// ```no_run
/// use dspex::state::{Key, SharedConfig, SharedState, StateProvider};
/// use dspex::{SetOptions, Source};
/// use dspex::{Value, VarType, VariableSpec};
///
/// let state = SharedState::open(SharedConfig::new("redis://127.0.0.1:6379/0", "qa-prod"))?;
/// state.register(VariableSpec::new("n", VarType::Integer, 1), Source::Rust)?;
/// state.set(Key::Name("n"), Value::Integer(2), &SetOptions::default(), Source::Rust)?;
/// # Ok::<(), dspex::Error>(())
/// ```
pub struct SharedState {
    link: Arc<Link>,
    reader: Option<JoinHandle<()>>,
}

impl fmt::Debug for SharedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.link.mirror.read();
        f.debug_struct("SharedState")
            .field("url", &self.link.url)
            .field("session", &self.link.config.session())
            .field("variables", &m.table.len())
            .field("applied", &m.applied)
            .field("connected", &self.link.is_connected())
            .finish()
    }
}

impl SharedState {
    /// Opens the session `config` names, with its own watch hub: connects to Redis, loads the
    /// session (creating it if it does not exist) and starts following its changes. Blocks for
    /// a few round trips.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] for a session name or setting out of bounds;
    /// [`Error::Shared`] naming the URL when Redis cannot be reached (or is older than 7) or
    /// the session holds data dspex cannot read. Nothing is created then.
    pub fn open(config: SharedConfig) -> Result<Self> {
        Self::open_with_hub(config, Arc::default())
    }

    /// [`open`](Self::open), publishing changes to `hub` (the one a context hands to its
    /// backend, see [`ContextBuilder::state`](crate::ContextBuilder::state)).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_with_hub(config: SharedConfig, hub: Arc<WatchHub>) -> Result<Self> {
        let (link, reader) = Link::open(config, hub)?;
        Ok(Self {
            link,
            reader: Some(reader),
        })
    }

    /// The session's settings.
    pub fn config(&self) -> &SharedConfig {
        &self.link.config
    }

    /// The session's name.
    pub fn session(&self) -> &str {
        self.link.config.session()
    }

    /// The Redis keys the session lives in.
    pub fn keys(&self) -> &SessionKeys {
        &self.link.keys
    }

    /// Whether this process's last contact with Redis worked (writes fail while it does not).
    pub fn is_connected(&self) -> bool {
        self.link.is_connected()
    }

    /// How many notices of other processes' writes this process has received (one per write,
    /// or per `update_many`). A process is never notified of its own writes: it applies them
    /// itself before the write returns.
    pub fn notices_received(&self) -> u64 {
        self.link.notices()
    }

    /// The record behind `key` in `table`, following the ids of variables that moved in.
    fn record_in<'t>(&self, table: &'t VariableTable, key: Key<'_>) -> Result<&'t VarRecord> {
        match table.record(key) {
            Err(Error::NotFound { name }) => {
                let Key::Ref(r) = key else {
                    return Err(Error::NotFound { name });
                };
                let alias = self.link.aliases.read().get(&r.id).copied();
                match alias {
                    Some(id) => table.record(Key::Ref(VarRef::new(id, r.slot()))),
                    None => Err(Error::NotFound { name }),
                }
            }
            found => found,
        }
    }

    /// Runs a write: `prepare` builds the batch from the mirror, a script applies it if every
    /// record is still where the batch started from; if not, the mirror catches up and
    /// `prepare` runs again. A `NotFound` or `Conflict` from `prepare` is confirmed against the
    /// latest state first.
    fn commit<T>(
        &self,
        import: bool,
        prepare: &mut dyn FnMut(&VariableTable) -> Result<Batch<T>>,
    ) -> Result<T> {
        let mut writer = self.link.writer().map_err(|e| self.link.not_applied(e))?;
        let mut latest = false;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let prepared = prepare(&self.link.mirror.read().table);
            let batch = match prepared {
                Ok(batch) => batch,
                Err(Error::NotFound { .. } | Error::Conflict { .. }) if !latest => {
                    self.link
                        .catch_up(writer.conn())
                        .map_err(|e| self.link.failed_before_write(&mut writer, e))?;
                    latest = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if batch.ops.is_empty() {
                return Ok(batch.output);
            }
            let reply = scripts::apply(
                writer.conn(),
                &self.link.session(),
                &batch.ops,
                batch.id_floor,
                import,
            );
            match reply {
                Ok(Applied::Ok { first_seq, epoch }) => {
                    // Redis applied it: whatever happens next, the write is done.
                    let own =
                        self.link
                            .applied_own(writer.conn(), first_seq, &epoch, batch.entries);
                    if let Err(e) = own {
                        // The mirror was behind and could not catch up: the reader brings
                        // the write (and those before it) once it reaches Redis again.
                        writer.drop_connection();
                        tracing::warn!(error = %e.report(), session = self.session(), "shared state: a write was applied, but this process's reads show it only once the reader catches up");
                    }
                    return Ok(batch.output);
                }
                Ok(Applied::Conflict {
                    index, seq, epoch, ..
                }) => {
                    self.link
                        .sync_to(writer.conn(), seq, &epoch)
                        .map_err(|e| self.link.failed_before_write(&mut writer, e))?;
                    // The mirror caught up but still holds what the script refused: the
                    // stream and the records disagree; reload.
                    if let Some(op) = batch.ops.get(index) {
                        let stale = self.mirror_head(&op.name) == op.expected;
                        if stale {
                            self.link
                                .reload(writer.conn())
                                .map_err(|e| self.link.failed_before_write(&mut writer, e))?;
                        }
                    }
                    latest = true;
                }
                Ok(Applied::IdTaken { index }) => {
                    let name = batch.ops.get(index).map_or("", |op| op.name.as_str());
                    return Err(Error::Internal(format!(
                        "cannot import `{name}` into shared session `{}`: its id is already in use",
                        self.session()
                    )));
                }
                Err(failed) => return Err(self.link.write_failed(&mut writer, failed)),
            }
        }
        Err(Error::shared(format!(
            "gave up a write to session `{}` after {MAX_WRITE_ATTEMPTS} attempts (MAX_WRITE_ATTEMPTS) that all lost a compare-and-set race",
            self.session()
        )))
    }

    /// `DeclarationMismatch` unless `existing` has this declaration.
    fn same_declaration(&self, existing: &VarRecord, declared: &Declaration<'_>) -> Result<()> {
        match Declaration::of_record(existing).difference(declared) {
            None => Ok(()),
            Some(difference) => Err(Error::DeclarationMismatch {
                name: existing.name.clone(),
                session: self.session().to_owned(),
                difference,
            }),
        }
    }

    /// The head of `name` in the mirror (`""` when absent).
    fn mirror_head(&self, name: &str) -> String {
        self.link
            .mirror
            .read()
            .table
            .record(Key::Name(name))
            .map(head)
            .unwrap_or_default()
    }

    /// A write of `value` over `current`, validated by `dspex-core` against the variable's
    /// type and constraints.
    fn update_op(
        current: &VarRecord,
        value: Value,
        metadata: &BTreeMap<String, String>,
        source: Source,
    ) -> Result<(Op, Entry)> {
        let value = validate(&current.name, current.ty, &current.constraints, value)?;
        check_metadata(&current.name, &current.metadata, metadata)?;
        let mut next = current.clone();
        next.value = value;
        next.version += 1;
        next.updated_at = SystemTime::now();
        next.source = source;
        for (k, v) in metadata {
            next.metadata.insert(k.clone(), v.clone());
        }
        // The record's own entry, but with the metadata given with this write.
        let entry = HistoryEntry {
            version: next.version,
            value: next.value.clone(),
            source,
            metadata: metadata.clone(),
            at: next.updated_at,
        };
        let op = Op {
            kind: OpKind::Change(ChangeKind::Updated),
            name: current.name.clone(),
            expected: head(current),
            new_head: head(&next),
            record: encode_record(&next),
            old: encode_value(&current.value),
            entry: encode_history_entry(&entry),
        };
        let entry = Entry {
            seq: 0,
            kind: ChangeKind::Updated,
            record: next,
            old: Some(current.value.clone()),
        };
        Ok((op, entry))
    }

    /// Registering `record` where no variable of its name exists, with `history` (newest
    /// first; the record's own entry when empty).
    fn register_ops(record: VarRecord, history: &[HistoryEntry]) -> (Vec<Op>, Entry) {
        let mut ops = vec![Op {
            kind: OpKind::Change(ChangeKind::Registered),
            name: record.name.clone(),
            expected: String::new(),
            new_head: head(&record),
            record: encode_record(&record),
            ..Op::default()
        }];
        if history.is_empty() {
            ops[0].entry = encode_history_entry(&HistoryEntry::of_record(&record));
        }
        ops.extend(history.iter().map(|e| Op {
            kind: OpKind::History,
            name: record.name.clone(),
            new_head: format!("{}:{}", record.id.0, e.version),
            record: encode_history_entry(e),
            ..Op::default()
        }));
        let entry = Entry {
            seq: 0,
            kind: ChangeKind::Registered,
            record,
            old: None,
        };
        (ops, entry)
    }

    /// The stored history of `record` (the session's entries from its version down), newest
    /// first, at most `limit` entries, bounded like every [`History`].
    fn read_history(&self, record: &VarRecord, limit: usize) -> Result<History> {
        let mut writer = self.link.writer()?;
        let (session_limit, stored) = scripts::history(
            writer.conn(),
            &self.link.session(),
            record.id.0,
            record.version,
            limit,
        )
        .map_err(|e| self.link.failed(&mut writer, "reading a history", e))?;
        let mut history = History::new(session_limit.max(1));
        for bytes in stored.iter().rev().flatten() {
            let entry = decode_history_entry(bytes).map_err(|problem| {
                Error::shared(format!(
                    "session `{}` holds a history entry of `{}` dspex cannot read: {problem}",
                    self.session(),
                    record.name
                ))
            })?;
            history.push(entry);
        }
        Ok(history)
    }

    /// The record behind `key` in the mirror, copied.
    fn mirror_record(&self, key: Key<'_>) -> Result<VarRecord> {
        let mirror = self.link.mirror.read();
        self.record_in(&mirror.table, key).cloned()
    }

    /// Moves `records` (from a context's previous backend) into the session, all or nothing:
    /// a variable the session holds with the same declaration is adopted with the session's
    /// record (value, version, metadata); one it does not hold is created with its value,
    /// version, metadata and times, and a new id of the session. A variable the session holds
    /// with another declaration refuses the whole move. Typed handles taken before keep
    /// working (the old ids are mapped to the session's). Watchers are told of every adopted
    /// variable whose value differs from the one it had.
    pub(crate) fn adopt(&self, variables: Vec<ExportedVar>) -> Result<()> {
        // Histories are checked (and trimmed to this session's limit) before anything is sent.
        let mut records = Vec::with_capacity(variables.len());
        let mut histories = Vec::with_capacity(variables.len());
        for v in variables {
            let history = History::import(&v.record, v.history, self.config().history_len())?;
            histories.push(history.latest(usize::MAX));
            records.push(v.record);
        }
        let mut writer = self.link.writer().map_err(|e| self.link.not_applied(e))?;
        let first_id = if records.is_empty() {
            0
        } else {
            let count = u64::try_from(records.len()).unwrap_or(u64::MAX);
            scripts::reserve_ids(writer.conn(), &self.link.session(), count).map_err(|e| {
                let e = self.link.failed(&mut writer, "handing out ids", e);
                self.link.not_applied(e)
            })?
        };
        drop(writer);
        let mut adopted = Vec::new();
        let mut aliases = Vec::new();
        self.commit(false, &mut |table| {
            adopted.clear();
            aliases.clear();
            let mut batch = Batch::new(());
            for ((offset, local), history) in (0u64..).zip(&records).zip(&histories) {
                match table.record(Key::Name(&local.name)) {
                    Ok(existing) => {
                        self.same_declaration(existing, &Declaration::of_record(local))?;
                        batch.ops.push(Op {
                            kind: OpKind::Expect,
                            name: existing.name.clone(),
                            expected: format!("{}:*", existing.id.0),
                            ..Op::default()
                        });
                        aliases.push((local.id, existing.id));
                        adopted.push((local.clone(), existing.clone()));
                    }
                    Err(Error::NotFound { .. }) => {
                        let mut record = local.clone();
                        record.id = VarId(first_id + offset);
                        aliases.push((local.id, record.id));
                        batch.push_ops(Self::register_ops(record, history));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(batch)
        })?;
        self.link
            .aliases
            .write()
            .extend(aliases.iter().filter(|(from, to)| from != to).copied());
        if self.link.hub.is_watched() {
            for (local, session) in adopted {
                if local.value != session.value {
                    self.link.hub.publish(&WatchEvent::Updated(Change {
                        id: session.id,
                        name: session.name.clone(),
                        old: local.value,
                        new: session.value.clone(),
                        version: session.version,
                        source: session.source,
                        at: session.updated_at,
                    }));
                }
            }
        }
        Ok(())
    }
}

impl Drop for SharedState {
    fn drop(&mut self) {
        self.link.stop();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// What one [`SharedState::commit`] attempt writes: the script's operations, the stream
/// entries they produce (applied to the mirror once accepted), and the caller's result.
struct Batch<T> {
    ops: Vec<Op>,
    entries: Vec<Entry>,
    output: T,
    /// For an import: the id counter is raised to at least this.
    id_floor: u64,
}

impl<T> Batch<T> {
    fn new(output: T) -> Self {
        Self {
            ops: Vec::new(),
            entries: Vec::new(),
            output,
            id_floor: 0,
        }
    }

    fn push(&mut self, (op, entry): (Op, Entry)) {
        self.ops.push(op);
        self.entries.push(entry);
    }

    fn push_ops(&mut self, (ops, entry): (Vec<Op>, Entry)) {
        self.ops.extend(ops);
        self.entries.push(entry);
    }
}

/// What a process declares of a variable: what must be the same for two processes to share
/// it.
struct Declaration<'a> {
    ty: dspex_core::VarType,
    constraints: &'a dspex_core::Constraints,
    description: Option<&'a str>,
    readonly: bool,
}

impl<'a> Declaration<'a> {
    fn of_record(r: &'a VarRecord) -> Self {
        Self {
            ty: r.ty,
            constraints: &r.constraints,
            description: r.description.as_deref(),
            readonly: r.readonly,
        }
    }

    fn of_spec(s: &'a VariableSpec) -> Self {
        Self {
            ty: s.ty,
            constraints: &s.constraints,
            description: s.description.as_deref(),
            readonly: s.readonly,
        }
    }

    /// What differs from `other` (this one is the session's); `None` when they are the same.
    fn difference(&self, other: &Declaration<'_>) -> Option<String> {
        let mut differences = Vec::new();
        if self.ty != other.ty {
            differences.push(format!(
                "type {} in the session, {} here",
                self.ty.name(),
                other.ty.name()
            ));
        }
        if self.constraints != other.constraints {
            differences.push(format!(
                "constraints {} in the session, {} here",
                self.constraints, other.constraints
            ));
        }
        if self.description != other.description {
            let show = |d: Option<&str>| d.map_or_else(|| "none".to_owned(), |d| format!("{d:?}"));
            differences.push(format!(
                "description {} in the session, {} here",
                show(self.description),
                show(other.description)
            ));
        }
        if self.readonly != other.readonly {
            differences.push(format!(
                "readonly {} in the session, {} here",
                self.readonly, other.readonly
            ));
        }
        (!differences.is_empty()).then(|| differences.join("; "))
    }
}

impl StateProvider for SharedState {
    fn kind(&self) -> BackendKind {
        BackendKind::Shared
    }

    fn capabilities(&self) -> Capabilities {
        SHARED_CAPABILITIES
    }

    fn register(&self, spec: VariableSpec, source: Source) -> Result<VarRecord> {
        let value = spec.check()?;
        check_metadata(&spec.name, &BTreeMap::new(), &spec.metadata)?;
        let mut writer = self.link.writer().map_err(|e| self.link.not_applied(e))?;
        let id = scripts::reserve_ids(writer.conn(), &self.link.session(), 1).map_err(|e| {
            let e = self.link.failed(&mut writer, "handing out an id", e);
            self.link.not_applied(e)
        })?;
        drop(writer);
        let now = SystemTime::now();
        let record = VarRecord {
            id: VarId(id),
            name: spec.name.clone(),
            ty: spec.ty,
            value,
            constraints: spec.constraints.clone(),
            description: spec.description.clone(),
            metadata: spec.metadata.clone(),
            version: 1,
            created_at: now,
            updated_at: now,
            source,
            readonly: spec.readonly,
        };
        let mut joined = None;
        self.commit(false, &mut |table| {
            joined = None;
            // The session holds the name: share it if the declaration is the same.
            if let Ok(existing) = table.record(Key::Name(&spec.name)) {
                self.same_declaration(existing, &Declaration::of_spec(&spec))?;
                joined = Some(existing.clone());
                return Ok(Batch::new(()));
            }
            let mut batch = Batch::new(());
            batch.push_ops(Self::register_ops(record.clone(), &[]));
            Ok(batch)
        })?;
        Ok(joined.unwrap_or(record))
    }

    fn resolve(&self, name: &str) -> Result<VarRef> {
        self.link.mirror.read().table.resolve(name)
    }

    #[inline]
    fn read(&self, key: Key<'_>, f: &mut dyn FnMut(&VarRecord)) -> Result<()> {
        let mirror = self.link.mirror.read();
        f(self.record_in(&mirror.table, key)?);
        Ok(())
    }

    fn get_many(&self, names: &[&str]) -> Result<GetMany> {
        self.link.mirror.read().table.get_many(names)
    }

    fn read_many(&self, names: &[&str], f: &mut dyn FnMut(&str, Option<&VarRecord>)) -> Result<()> {
        self.link.mirror.read().table.read_many(names, f)
    }

    fn set(&self, key: Key<'_>, value: Value, options: &SetOptions, source: Source) -> Result<u64> {
        self.commit(false, &mut |table| {
            let current = self.record_in(table, key)?;
            current.check_writable(source)?;
            options.check_version(current)?;
            let mut batch = Batch::new(current.version + 1);
            batch.push(Self::update_op(
                current,
                value.clone(),
                &options.metadata,
                source,
            )?);
            Ok(batch)
        })
    }

    fn update(
        &self,
        key: Key<'_>,
        f: &mut dyn FnMut(&Value) -> Result<Value>,
        source: Source,
    ) -> Result<(Value, u64)> {
        self.commit(false, &mut |table| {
            let current = self.record_in(table, key)?;
            current.check_writable(source)?;
            let next = f(&current.value)?;
            let (op, entry) = Self::update_op(current, next, &BTreeMap::new(), source)?;
            let mut batch = Batch::new((entry.record.value.clone(), current.version + 1));
            batch.push((op, entry));
            Ok(batch)
        })
    }

    fn update_many_with(
        &self,
        writes: Vec<(String, Value)>,
        metadata: &BTreeMap<String, String>,
        source: Source,
    ) -> Result<Vec<u64>> {
        self.commit(false, &mut |table| {
            let mut seen = FxHashSet::default();
            let mut batch = Batch::new(Vec::with_capacity(writes.len()));
            for (name, value) in &writes {
                let current = table.record(Key::Name(name))?;
                if !seen.insert(name.as_str()) {
                    return Err(Error::DuplicateWrite { name: name.clone() });
                }
                current.check_writable(source)?;
                batch.output.push(current.version + 1);
                batch.push(Self::update_op(current, value.clone(), metadata, source)?);
            }
            Ok(batch)
        })
    }

    fn delete(&self, key: Key<'_>, source: Source) -> Result<VarRecord> {
        self.commit(false, &mut |table| {
            let current = self.record_in(table, key)?;
            current.check_writable(source)?;
            // The stream's copy names who deleted it and when.
            let mut last = current.clone();
            last.source = source;
            last.updated_at = SystemTime::now();
            let mut batch = Batch::new(current.clone());
            batch.ops.push(Op {
                kind: OpKind::Change(ChangeKind::Deleted),
                name: current.name.clone(),
                expected: head(current),
                record: encode_record(&last),
                ..Op::default()
            });
            batch.entries.push(Entry {
                seq: 0,
                kind: ChangeKind::Deleted,
                record: last,
                old: None,
            });
            Ok(batch)
        })
    }

    fn history(&self, key: Key<'_>, limit: usize) -> Result<Vec<HistoryEntry>> {
        let record = self.mirror_record(key)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        Ok(self.read_history(&record, limit)?.latest(limit))
    }

    fn rollback(&self, key: Key<'_>, version: u64, source: Source) -> Result<u64> {
        let record = self.mirror_record(key)?;
        record.check_writable(source)?;
        let value = self
            .read_history(&record, usize::MAX)?
            .rollback_value(&record.name, version)?;
        let metadata = rollback_metadata(version);
        self.commit(false, &mut |table| {
            let current = self.record_in(table, key)?;
            if current.id != record.id {
                return Err(Error::not_found(&record.name));
            }
            current.check_writable(source)?;
            let mut batch = Batch::new(current.version + 1);
            batch.push(Self::update_op(current, value.clone(), &metadata, source)?);
            Ok(batch)
        })
    }

    fn list(&self, pattern: Option<&Glob>) -> Result<Vec<VarRecord>> {
        self.link.mirror.read().table.list(pattern)
    }

    fn watch(&self, names: &[&str], options: WatchOptions) -> Result<Watcher> {
        // Changes are applied (and published) under the mirror's write lock: none can fall
        // between the initial values and the subscription.
        self.link.mirror.read().table.watch(names, options)
    }

    fn export(&self) -> Result<Vec<ExportedVar>> {
        let records: Vec<VarRecord> = self
            .link
            .mirror
            .read()
            .table
            .export()?
            .into_iter()
            .map(|v| v.record)
            .collect();
        records
            .into_iter()
            .map(|record| {
                let history = self.read_history(&record, usize::MAX)?.latest(usize::MAX);
                Ok(ExportedVar { record, history })
            })
            .collect()
    }

    fn import(&self, variables: Vec<ExportedVar>) -> Result<()> {
        let mut names = FxHashSet::default();
        let mut ids = FxHashSet::default();
        let mut checked = Vec::with_capacity(variables.len());
        for v in variables {
            let rec = &v.record;
            if !names.insert(rec.name.clone()) {
                return Err(Error::AlreadyExists {
                    name: rec.name.clone(),
                });
            }
            if !ids.insert(rec.id) {
                return Err(Error::Internal(format!(
                    "cannot import `{}`: id {} is already in use",
                    rec.name, rec.id
                )));
            }
            // The one write path that bypasses `register` and `set`: check anyway.
            VariableSpec {
                name: rec.name.clone(),
                ty: rec.ty,
                initial: rec.value.clone(),
                constraints: rec.constraints.clone(),
                description: None,
                metadata: BTreeMap::new(),
                readonly: rec.readonly,
            }
            .check()?;
            let history = History::import(rec, v.history, self.config().history_len())?;
            checked.push((v.record, history.latest(usize::MAX)));
        }
        let floor = checked.iter().map(|(r, _)| r.id.0).max().unwrap_or(0);
        self.commit(true, &mut |table| {
            let mut batch = Batch::new(());
            batch.id_floor = floor;
            for (rec, history) in &checked {
                if table.record(Key::Name(&rec.name)).is_ok() {
                    return Err(Error::AlreadyExists {
                        name: rec.name.clone(),
                    });
                }
                batch.push_ops(Self::register_ops(rec.clone(), history));
            }
            Ok(batch)
        })
    }

    fn migrate_out(
        &self,
        _f: &mut dyn FnMut(Vec<ExportedVar>) -> Result<Arc<dyn StateProvider>>,
    ) -> Result<()> {
        Err(Error::shared(format!(
            "the variables of shared session `{}` stay in it: a shared backend does not move to another backend",
            self.session()
        )))
    }
}
