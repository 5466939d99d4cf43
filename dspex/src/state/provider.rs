//! The vocabulary of state backends: the [`StateProvider`] trait every backend implements,
//! and the records, keys, options and results it speaks in.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use dspex_core::{Constraints, Glob, Value, VarType};

use super::history::HistoryEntry;
use super::watch::{WatchOptions, Watcher};
use crate::error::Result;

/// The stable id of a variable, unique within a context and kept across a backend switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarId(pub u64);

impl fmt::Display for VarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "var-{}", self.0)
    }
}

/// A resolved reference to a variable: its id plus where the backend keeps it, so that a read
/// through a typed handle skips the name lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarRef {
    /// The variable's id.
    pub id: VarId,
    pub(super) slot: u32,
}

impl VarRef {
    /// A reference to variable `id`, kept by the backend at `slot`: a number only the backend
    /// that resolved it interprets (an index, a hash bucket, ...). A backend given a `VarRef`
    /// whose slot no longer holds `id` looks the variable up by id.
    ///
    /// ```
    /// use dspex::VarId;
    /// use dspex::state::VarRef;
    ///
    /// let r = VarRef::new(VarId(7), 3);
    /// assert_eq!((r.id, r.slot()), (VarId(7), 3));
    /// ```
    pub fn new(id: VarId, slot: u32) -> Self {
        Self { id, slot }
    }

    /// Where the backend that resolved the reference keeps the variable.
    pub fn slot(&self) -> u32 {
        self.slot
    }
}

/// How an operation names its variable: by name, or by a [`VarRef`] resolved earlier.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// By name: a hash lookup.
    Name(&'a str),
    /// By resolved reference: an index, with a fallback to the id if the backend moved it.
    Ref(VarRef),
}

impl<'a> From<&'a str> for Key<'a> {
    fn from(name: &'a str) -> Self {
        Key::Name(name)
    }
}

impl From<VarRef> for Key<'_> {
    fn from(r: VarRef) -> Self {
        Key::Ref(r)
    }
}

/// Which side of the bridge made a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// Rust code (a `Context`, a native step, the runtime).
    Rust,
    /// Python code (a `SessionContext`, a worker).
    Python,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Rust => "rust",
            Source::Python => "python",
        })
    }
}

/// Everything a backend knows about one variable.
#[derive(Debug, Clone, PartialEq)]
pub struct VarRecord {
    /// Stable id, unique in the context.
    pub id: VarId,
    /// Name, unique in the context.
    pub name: String,
    /// Type.
    pub ty: VarType,
    /// Current value (always valid for `ty` and `constraints`).
    pub value: Value,
    /// Constraints.
    pub constraints: Constraints,
    /// Human description.
    pub description: Option<String>,
    /// String metadata.
    pub metadata: BTreeMap<String, String>,
    /// +1 on every accepted write; 1 at registration.
    pub version: u64,
    /// When the variable was registered.
    pub created_at: SystemTime,
    /// When the last accepted write happened.
    pub updated_at: SystemTime,
    /// Who made the last accepted write.
    pub source: Source,
    /// Only Rust code may write the variable: a write with [`Source::Python`] is
    /// [`Error::ReadOnly`](crate::Error::ReadOnly) and changes nothing.
    pub readonly: bool,
}

impl VarRecord {
    /// Refuses a write by `source` if the variable is read-only and `source` is not Rust.
    pub fn check_writable(&self, source: Source) -> Result<()> {
        if self.readonly && source != Source::Rust {
            return Err(crate::Error::ReadOnly {
                name: self.name.clone(),
            });
        }
        Ok(())
    }
}

/// A variable as one backend hands it to another ([`StateProvider::export`],
/// [`StateProvider::import`]): its record and its history, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedVar {
    /// The record.
    pub record: VarRecord,
    /// The history, newest first; its newest entry is the record's current version. Empty
    /// when the exporting backend keeps none: the importing one starts it with the current
    /// value.
    pub history: Vec<HistoryEntry>,
}

impl From<VarRecord> for ExportedVar {
    fn from(record: VarRecord) -> Self {
        Self {
            record,
            history: Vec::new(),
        }
    }
}

/// Options of a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// Compare-and-set: the write applies only if the variable is at this version.
    pub expected_version: Option<u64>,
    /// Metadata entries merged into the variable's metadata when the write applies.
    pub metadata: BTreeMap<String, String>,
}

impl SetOptions {
    /// Compare-and-set against `version`.
    pub fn expect_version(version: u64) -> Self {
        Self {
            expected_version: Some(version),
            ..Self::default()
        }
    }

    /// Adds a metadata entry.
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
    /// The compare-and-set rule: a `Conflict` if an expected version is set and `record` is
    /// at another one.
    pub(crate) fn check_version(&self, record: &VarRecord) -> Result<()> {
        match self.expected_version {
            Some(expected) if expected != record.version => Err(crate::Error::Conflict {
                name: record.name.clone(),
                expected,
                actual: record.version,
            }),
            _ => Ok(()),
        }
    }
}

/// The result of a `get_many`: the values found, in request order, and the names that are not
/// there. Missing names are never dropped silently.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GetMany {
    /// Found variables, in the order they were asked for.
    pub found: Vec<(String, Value)>,
    /// Names with no variable, in the order they were asked for.
    pub missing: Vec<String>,
}

impl GetMany {
    /// The value found for `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.found.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Which backend a context uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// In-process state; nothing crosses a process boundary.
    Local,
    /// A session in the bridge's store, shared with Python over gRPC.
    Bridged,
    /// A session in Redis, shared by every process that opens it ([`SharedState`](super::SharedState)).
    Shared,
    /// A backend implemented outside this crate, by the name it gives itself.
    Custom(&'static str),
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Local => "local",
            BackendKind::Bridged => "bridged",
            BackendKind::Shared => "shared",
            BackendKind::Custom(name) => name,
        })
    }
}

/// What a backend can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Python processes can read and write the variables.
    pub shared_with_python: bool,
    /// The variables expire when nobody renews them within a TTL (sessions created over gRPC);
    /// `false` for a context's own backends, which live exactly as long as the context.
    pub session_ttl: bool,
    /// Reads are lock-plus-lookup, with no serialization or channel hop.
    pub in_process_reads: bool,
}

/// A variable state backend. Every method is synchronous and short: local reads are a read lock
/// and a lookup, writes a write lock, validation and a fan-out to watchers that never blocks.
///
/// # The contract
///
/// Every implementation behaves the same, so that user code works unchanged on every
/// backend; the conformance suite of this crate's repository (`dspex/tests/conformance`,
/// driven by one small fixture per backend, `conformance_*.rs`) is the executable form of
/// these rules and every backend must pass it:
///
/// - **Checks come from `dspex-core`.** [`register`](Self::register) checks the declaration
///   with [`VariableSpec::check`](dspex_core::VariableSpec::check) (which also gives the
///   initial value as stored); every write checks its value with [`dspex_core::validate`],
///   which widens integers for float variables. A refused call changes nothing and returns
///   the matching [`Error`](crate::Error) (`AlreadyExists`, `NotFound`, `InvalidValue`,
///   `ConstraintViolation`, `InvalidSpec`, `Conflict`, `DuplicateWrite`, `ReadOnly`,
///   `VersionNotFound`).
/// - **Records.** Ids are unique and never reused within a backend; a variable starts at
///   version 1 and every accepted write adds 1 and records its [`Source`] and time; `set`
///   merges [`SetOptions::metadata`] and honours [`SetOptions::expected_version`].
/// - **Atomicity.** `update` runs its function and writes under one lock (a backend shared
///   between processes runs it as a compare-and-set loop instead, so the function may run
///   more than once; no write slips in between either way); `update_many`
///   validates every write (a name twice is `DuplicateWrite`) before applying any;
///   `import` is all or nothing; `migrate_out` is atomic with respect to every other call.
/// - **Watching.** Every accepted change is published, in the order changes were applied, to
///   the [`WatchHub`](super::WatchHub) the backend was created with (the context's own, handed over by
///   [`ContextBuilder::state`](crate::ContextBuilder::state)): `Updated` for writes,
///   `Deleted` for deletions, `Registered` for registrations. `watch` subscribes on that hub,
///   fails with `NotFound` for a name that does not exist, and adds the `Initial` values
///   under the same lock as the subscription, so that no change falls in between.
/// - **References.** [`resolve`](Self::resolve) returns a [`VarRef`] the backend can follow
///   quickly; a reference to a deleted variable is `NotFound`, never another variable.
/// - **History.** Every accepted write (registration as version 1, rollbacks included) is kept
///   in the variable's history with the metadata given with that write, bounded like a
///   [`History`](super::History): at most the configured number of entries ([`DEFAULT_HISTORY_LIMIT`](super::DEFAULT_HISTORY_LIMIT) by
///   default) and [`MAX_HISTORY_BYTES`](super::MAX_HISTORY_BYTES), oldest dropped first. Deleting a variable deletes its
///   history. [`rollback`](Self::rollback) is a write like any other (validated, +1 version,
///   an `Updated` event, [`ROLLED_BACK_FROM`](super::ROLLED_BACK_FROM) metadata merged); a version no longer kept is
///   `VersionNotFound`.
/// - **Read-only variables.** A variable registered from a [`VariableSpec`](dspex_core::VariableSpec)
///   marked `readonly` has [`VarRecord::readonly`]; every write with [`Source::Python`] to it
///   (`set`, `update`, `update_many` — the whole batch —, `rollback`, `delete`) is `ReadOnly`
///   and changes nothing ([`VarRecord::check_writable`]). Rust writes apply.
///
/// A context switches backend through [`migrate_out`](Self::migrate_out) and
/// [`import`](Self::import): from the one it started on to the bridged one, and from either
/// into a shared session ([`SharedState`](super::SharedState), which adopts the records instead of importing them,
/// and never migrates out).
///
/// One rule differs by design on a shared backend: registering a name the session holds with
/// the same declaration (type, constraints, description) shares the session's variable rather
/// than failing with `AlreadyExists` (every process of a service declares what it uses); another
/// declaration fails with `DeclarationMismatch`.
pub trait StateProvider: Send + Sync + 'static {
    /// Which kind of backend this is.
    fn kind(&self) -> BackendKind;

    /// What the backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Registers a variable; fails with `AlreadyExists` if the name is taken, `InvalidSpec` if
    /// the declaration is invalid.
    fn register(&self, spec: dspex_core::VariableSpec, source: Source) -> Result<VarRecord>;

    /// Resolves a name to a reference for fast repeated access.
    fn resolve(&self, name: &str) -> Result<VarRef>;

    /// Calls `f` with the record, under the backend's read lock.
    fn read(&self, key: Key<'_>, f: &mut dyn FnMut(&VarRecord)) -> Result<()>;

    /// A copy of the record.
    fn get(&self, key: Key<'_>) -> Result<VarRecord> {
        let mut out = None;
        self.read(key, &mut |r| out = Some(r.clone()))?;
        out.ok_or_else(|| crate::Error::internal("read returned without a record"))
    }

    /// Values of several variables, with the missing names reported.
    fn get_many(&self, names: &[&str]) -> Result<GetMany>;

    /// Calls `f` with the record of each name (`None` when there is none), in order, from one
    /// consistent snapshot (a batch written atomically is never seen half applied): what a
    /// python step sends its worker. `f` is called for every name or the call fails.
    fn read_many(&self, names: &[&str], f: &mut dyn FnMut(&str, Option<&VarRecord>)) -> Result<()>;

    /// Validates and writes a value; returns the new version.
    fn set(&self, key: Key<'_>, value: Value, options: &SetOptions, source: Source) -> Result<u64>;

    /// Atomically replaces the value with `f(current)`, validated; returns the new value and
    /// version. No write can slip in between the read and the write.
    fn update(
        &self,
        key: Key<'_>,
        f: &mut dyn FnMut(&Value) -> Result<Value>,
        source: Source,
    ) -> Result<(Value, u64)>;

    /// Atomically writes several variables: all are validated first, then either all apply or
    /// none does. Returns the new versions, in order.
    fn update_many(&self, writes: Vec<(String, Value)>, source: Source) -> Result<Vec<u64>> {
        self.update_many_with(writes, &BTreeMap::new(), source)
    }

    /// [`update_many`](Self::update_many) that also merges `metadata` into the metadata of
    /// every written variable, in the same atomic step.
    fn update_many_with(
        &self,
        writes: Vec<(String, Value)>,
        metadata: &BTreeMap<String, String>,
        source: Source,
    ) -> Result<Vec<u64>>;

    /// Removes a variable, and its history, and returns its last record.
    fn delete(&self, key: Key<'_>, source: Source) -> Result<VarRecord>;

    /// The variable's history: newest first, at most `limit` entries.
    fn history(&self, key: Key<'_>, limit: usize) -> Result<Vec<HistoryEntry>>;

    /// Writes version `version`'s value again as a new version with metadata
    /// `rolled_back_from = "<version>"`; returns the new version. A version no longer in the
    /// history is [`Error::VersionNotFound`](crate::Error::VersionNotFound).
    fn rollback(&self, key: Key<'_>, version: u64, source: Source) -> Result<u64>;

    /// The records sorted by name, optionally only those whose whole name matches `pattern`.
    fn list(&self, pattern: Option<&Glob>) -> Result<Vec<VarRecord>>;

    /// Streams every accepted change of the named variables (all variables when `names` is
    /// empty), in order. A watcher that falls behind is told how many events it missed.
    fn watch(&self, names: &[&str], options: WatchOptions) -> Result<Watcher>;

    /// A snapshot of every variable, record and history, for migration, in the backend's
    /// storage order.
    fn export(&self) -> Result<Vec<ExportedVar>>;

    /// Adds variables exported from another backend, keeping ids, values, versions,
    /// constraints, descriptions, metadata, read-only flags and histories (checked with
    /// [`History::import`](super::History::import), trimmed to this backend's limits). All or nothing: fails if any
    /// name or id is taken or any history is not its record's.
    fn import(&self, variables: Vec<ExportedVar>) -> Result<()>;

    /// Migrates every variable out: under the backend's write lock, exports every variable
    /// and hands them to `f`, which imports them elsewhere and returns that backend. If `f`
    /// succeeds this backend drops its variables and forwards every later call to the
    /// returned one (calls that picked this backend just before a switch still land in the
    /// right place); if `f` fails this backend stays exactly as it was. Concurrent calls wait
    /// for the lock rather than observe a half-migrated state.
    fn migrate_out(
        &self,
        f: &mut dyn FnMut(Vec<ExportedVar>) -> Result<Arc<dyn StateProvider>>,
    ) -> Result<()>;
}
