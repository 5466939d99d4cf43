//! The history of a variable: every accepted write (registration included, as version 1) kept
//! newest first, bounded in entries and in bytes, so that a variable can be audited
//! ([`StateProvider::history`](super::StateProvider::history)) and rolled back
//! ([`StateProvider::rollback`](super::StateProvider::rollback)).
//!
//! [`History`] holds the bounded entries and applies the bounds; the crate's backends keep one
//! per variable, and a backend written elsewhere can too.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use dspex_core::{Value, validate};

use super::{Source, VarRecord};
use crate::error::{Error, Result};

/// How many writes a variable's history keeps unless the context says otherwise
/// ([`ContextBuilder::history_limit`](crate::ContextBuilder::history_limit)).
pub const DEFAULT_HISTORY_LIMIT: usize = 100;

pub use crate::wire::limits::MAX_HISTORY_LIMIT;

/// The most bytes a variable's history holds, counted by [`HistoryEntry::size_bytes`]: past
/// that, the oldest entries are dropped even before the entry limit is reached (100 versions of
/// a 64 KiB string would otherwise hold 6.4 MiB). The newest entry, the current value, is
/// always kept.
pub const MAX_HISTORY_BYTES: usize = 256 * 1024;

/// The metadata key a rollback writes, with the version it restored as its value.
pub const ROLLED_BACK_FROM: &str = "rolled_back_from";

/// One accepted write of a variable, kept in its bounded history; registration is version 1.
///
/// `V` is the value's type: [`Value`] from a [`Context`](crate::Context) or a backend, the
/// Rust type of the handle from [`Var::history`](crate::Var::history).
///
/// `metadata` is the metadata given with that write: none for a plain `set`,
/// [`ROLLED_BACK_FROM`] for a rollback, `tuned_at`, `tuned_score` and `tuner` for a tuner's
/// `apply`, the declared metadata for the registration.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry<V = Value> {
    /// The version the write made.
    pub version: u64,
    /// The value it wrote.
    pub value: V,
    /// Who wrote it.
    pub source: Source,
    /// The metadata given with the write.
    pub metadata: BTreeMap<String, String>,
    /// When it was written.
    pub at: SystemTime,
}

impl HistoryEntry {
    /// The entry of the record's current version: its value, source and time, with the
    /// record's metadata. At registration that is the registration's entry (version 1, the
    /// declared metadata).
    pub fn of_record(record: &VarRecord) -> Self {
        Self {
            version: record.version,
            value: record.value.clone(),
            source: record.source,
            metadata: record.metadata.clone(),
            at: record.updated_at,
        }
    }

    /// What the entry counts against [`MAX_HISTORY_BYTES`]: the bytes of its value (8 for a
    /// number or a boolean, the UTF-8 length of a string, 4 per component of an embedding) and
    /// of its metadata's keys and values, plus the size of the entry itself.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use dspex::{HistoryEntry, Source};
    /// use dspex::Value;
    ///
    /// let entry = |value: Value| HistoryEntry {
    ///     version: 2,
    ///     value,
    ///     source: Source::Rust,
    ///     metadata: Default::default(),
    ///     at: SystemTime::now(),
    /// };
    /// let short = entry(Value::from("ab")).size_bytes();
    /// assert_eq!(entry(Value::from("abcd")).size_bytes(), short + 2);
    /// ```
    pub fn size_bytes(&self) -> usize {
        let value = match &self.value {
            Value::String(s) => s.len(),
            Value::Embedding(e) => e.len() * size_of::<f32>(),
            Value::Float(_) | Value::Integer(_) | Value::Boolean(_) => size_of::<u64>(),
        };
        let metadata: usize = self.metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
        size_of::<Self>() + value + metadata
    }

    /// The entry with its value converted by `f` (to the Rust type of a typed handle).
    pub fn try_map<T, E>(
        self,
        f: impl FnOnce(Value) -> Result<T, E>,
    ) -> Result<HistoryEntry<T>, E> {
        Ok(HistoryEntry {
            version: self.version,
            value: f(self.value)?,
            source: self.source,
            metadata: self.metadata,
            at: self.at,
        })
    }
}

/// The history of one variable: its entries newest first, at most `limit` of them and at most
/// [`MAX_HISTORY_BYTES`] (dropping the oldest first, always keeping the newest).
///
/// ```
/// use std::time::SystemTime;
/// use dspex::state::History;
/// use dspex::{HistoryEntry, Source};
/// use dspex::Value;
///
/// let mut history = History::new(3);
/// for version in 1..=5 {
///     history.push(HistoryEntry {
///         version,
///         value: Value::Integer(version as i64),
///         source: Source::Rust,
///         metadata: Default::default(),
///         at: SystemTime::now(),
///     });
/// }
/// let versions: Vec<u64> = history.latest(10).iter().map(|e| e.version).collect();
/// assert_eq!(versions, [5, 4, 3]);
/// assert!(history.get(2).is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    entries: VecDeque<HistoryEntry>,
    bytes: usize,
    limit: usize,
}

impl History {
    /// An empty history keeping at most `limit` entries (`limit` is taken within
    /// `1..=`[`MAX_HISTORY_LIMIT`]).
    pub fn new(limit: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            bytes: 0,
            limit: limit.clamp(1, MAX_HISTORY_LIMIT),
        }
    }

    /// A history for a record that arrives from another backend with `entries` (newest
    /// first), keeping at most `limit`. The entries must be the record's: the newest is its
    /// current version and value, versions decrease strictly, and every value is one the
    /// variable can hold. Without entries, the history starts with the record's current value.
    pub fn import(record: &VarRecord, entries: Vec<HistoryEntry>, limit: usize) -> Result<Self> {
        let refuse = |why: String| {
            Error::Internal(format!(
                "cannot import the history of `{}`: {why}",
                record.name
            ))
        };
        let mut history = Self::new(limit);
        if entries.is_empty() {
            history.push(HistoryEntry::of_record(record));
            return Ok(history);
        }
        match entries.first() {
            Some(newest) if newest.version == record.version && newest.value == record.value => {}
            Some(newest) => {
                return Err(refuse(format!(
                    "its newest entry is version {} but the variable is at version {}",
                    newest.version, record.version
                )));
            }
            None => {}
        }
        if let Some(pair) = entries.windows(2).find(|w| w[0].version <= w[1].version) {
            return Err(refuse(format!(
                "version {} comes before version {}; entries go newest first",
                pair[0].version, pair[1].version
            )));
        }
        let mut checked = Vec::with_capacity(entries.len().min(history.limit));
        for entry in entries.into_iter().take(history.limit) {
            let value = validate(&record.name, record.ty, &record.constraints, entry.value)
                .map_err(|e| refuse(format!("version {}: {e}", entry.version)))?;
            checked.push(HistoryEntry { value, ..entry });
        }
        for entry in checked.into_iter().rev() {
            history.push(entry);
        }
        Ok(history)
    }

    /// Adds the newest entry, then drops the oldest ones while there are more than the limit
    /// or more than [`MAX_HISTORY_BYTES`] (never the newest).
    pub fn push(&mut self, entry: HistoryEntry) {
        self.bytes += entry.size_bytes();
        self.entries.push_front(entry);
        self.trim();
    }

    fn trim(&mut self) {
        while self.entries.len() > self.limit
            || (self.bytes > MAX_HISTORY_BYTES && self.entries.len() > 1)
        {
            if let Some(oldest) = self.entries.pop_back() {
                self.bytes -= oldest.size_bytes();
            }
        }
    }

    /// Keeps at most `limit` entries from now on (within `1..=`[`MAX_HISTORY_LIMIT`]),
    /// dropping the oldest ones beyond it.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.clamp(1, MAX_HISTORY_LIMIT);
        self.trim();
    }

    /// The most entries it keeps.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes it holds, counted by [`HistoryEntry::size_bytes`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The entries, newest first.
    pub fn iter(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.entries.iter()
    }

    /// Copies of at most `limit` entries, newest first.
    pub fn latest(&self, limit: usize) -> Vec<HistoryEntry> {
        self.entries.iter().take(limit).cloned().collect()
    }

    /// The entry of `version`, if it is still kept.
    pub fn get(&self, version: u64) -> Option<&HistoryEntry> {
        let newest = self.entries.front()?.version;
        // Versions are consecutive unless the history was imported with gaps: try the index
        // first, then search.
        let at = usize::try_from(newest.checked_sub(version)?).ok()?;
        match self.entries.get(at) {
            Some(entry) if entry.version == version => Some(entry),
            _ => self.entries.iter().find(|e| e.version == version),
        }
    }

    /// The value of `version` for a rollback of variable `name`; a version that is not kept is
    /// [`Error::VersionNotFound`], naming the versions that are.
    pub fn rollback_value(&self, name: &str, version: u64) -> Result<Value> {
        match self.get(version) {
            Some(entry) => Ok(entry.value.clone()),
            None => Err(Error::VersionNotFound {
                name: name.to_owned(),
                version,
                oldest: self.entries.back().map_or(0, |e| e.version),
                newest: self.entries.front().map_or(0, |e| e.version),
            }),
        }
    }
}

/// The metadata of a rollback to `version`: [`ROLLED_BACK_FROM`] = `"<version>"`.
pub fn rollback_metadata(version: u64) -> BTreeMap<String, String> {
    BTreeMap::from([(ROLLED_BACK_FROM.to_owned(), version.to_string())])
}

/// Checks a history limit a user configured: `1..=`[`MAX_HISTORY_LIMIT`].
pub(crate) fn check_history_limit(limit: usize) -> Result<usize> {
    if (1..=MAX_HISTORY_LIMIT).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::InvalidOption {
            option: "history_limit".to_owned(),
            message: format!(
                "{limit} is outside 1..={MAX_HISTORY_LIMIT} (MAX_HISTORY_LIMIT): a history keeps at least the current value"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: u64, value: impl Into<Value>) -> HistoryEntry {
        HistoryEntry {
            version,
            value: value.into(),
            source: Source::Rust,
            metadata: BTreeMap::new(),
            at: SystemTime::UNIX_EPOCH,
        }
    }

    fn versions(history: &History) -> Vec<u64> {
        history.iter().map(|e| e.version).collect()
    }

    #[test]
    fn the_entry_limit_keeps_the_newest_at_and_over_the_limit() {
        let mut h = History::new(3);
        for v in 1..=3 {
            h.push(entry(v, 0.5));
        }
        assert_eq!(versions(&h), [3, 2, 1]);
        h.push(entry(4, 0.5));
        assert_eq!(versions(&h), [4, 3, 2]);
        assert_eq!(
            h.bytes(),
            h.iter().map(HistoryEntry::size_bytes).sum::<usize>()
        );
        h.set_limit(1);
        assert_eq!(versions(&h), [4]);
        assert_eq!(History::new(0).limit(), 1);
        assert_eq!(History::new(usize::MAX).limit(), MAX_HISTORY_LIMIT);
    }

    #[test]
    fn the_byte_bound_drops_the_oldest_at_and_over_the_bound() {
        let size = |len: usize| entry(1, "x".repeat(len)).size_bytes();
        // Four entries of a quarter of the bound each fit exactly.
        let overhead = size(0);
        let len = MAX_HISTORY_BYTES / 4 - overhead;
        assert_eq!(size(len) * 4, MAX_HISTORY_BYTES);
        let mut h = History::new(MAX_HISTORY_LIMIT);
        for v in 1..=4 {
            h.push(entry(v, "x".repeat(len)));
        }
        assert_eq!(h.bytes(), MAX_HISTORY_BYTES);
        assert_eq!(versions(&h), [4, 3, 2, 1]);
        // One byte more and the oldest goes.
        h.push(entry(5, "x"));
        assert_eq!(versions(&h), [5, 4, 3, 2]);
        assert!(h.bytes() <= MAX_HISTORY_BYTES);
        // 100 versions of a 64 KiB string stay within the bound.
        let mut h = History::new(DEFAULT_HISTORY_LIMIT);
        for v in 1..=100 {
            h.push(entry(v, "y".repeat(64 * 1024)));
        }
        assert!(h.bytes() <= MAX_HISTORY_BYTES, "{}", h.bytes());
        assert_eq!(versions(&h), [100, 99, 98]);
        // A value larger than the bound on its own is still the current one.
        h.push(entry(101, "z".repeat(MAX_HISTORY_BYTES)));
        assert_eq!(versions(&h), [101]);
    }

    #[test]
    fn versions_are_found_and_missing_ones_named() {
        let mut h = History::new(2);
        for v in 1..=4 {
            h.push(entry(v, i64::try_from(v).unwrap()));
        }
        assert_eq!(h.get(3).map(|e| &e.value), Some(&Value::Integer(3)));
        assert!(h.get(2).is_none());
        assert!(h.get(9).is_none());
        assert_eq!(h.rollback_value("n", 4).unwrap(), Value::Integer(4));
        let err = h.rollback_value("n", 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "variable `n` has no version 1 in its history, which keeps versions 3 to 4"
        );
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(check_history_limit(1).unwrap(), 1);
        assert_eq!(
            check_history_limit(MAX_HISTORY_LIMIT).unwrap(),
            MAX_HISTORY_LIMIT
        );
        for bad in [0, MAX_HISTORY_LIMIT + 1] {
            let err = check_history_limit(bad).unwrap_err();
            assert!(err.to_string().starts_with("history_limit: "), "{err}");
            assert!(err.to_string().contains("MAX_HISTORY_LIMIT"), "{err}");
        }
    }
}
