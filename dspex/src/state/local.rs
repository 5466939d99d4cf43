//! `LocalState`: variables in this process, behind one read-write lock.

use std::fmt;
use std::sync::Arc;

use super::table::{LockedTable, delegate_state_provider};
use super::watch::WatchHub;
use super::{BackendKind, Capabilities, check_history_limit};
use crate::error::Result;

/// In-process variable state: a read is a read lock plus a lookup (an index for a resolved
/// [`VarRef`](super::VarRef)), never a channel or an actor hop, and nothing is serialized.
///
/// ```
/// use dspex::state::{LocalState, Key, StateProvider};
/// use dspex::{SetOptions, Source};
/// use dspex::{Value, VariableSpec, VarType};
///
/// let state = LocalState::new();
/// state.register(VariableSpec::new("n", VarType::Integer, 1), Source::Rust).unwrap();
/// let version = state.set(Key::Name("n"), Value::Integer(2), &SetOptions::default(), Source::Rust).unwrap();
/// assert_eq!(version, 2);
/// assert_eq!(state.get(Key::Name("n")).unwrap().value, Value::Integer(2));
/// ```
pub struct LocalState {
    table: LockedTable,
}

impl LocalState {
    /// An empty local state with its own watch hub.
    pub fn new() -> Self {
        Self::with_hub(Arc::default())
    }

    /// An empty local state that publishes its changes to `hub`: the one a context hands to
    /// its backend (see [`ContextBuilder::state`](crate::ContextBuilder::state)), so that
    /// another backend can keep its variables in a `LocalState`.
    pub fn with_hub(hub: Arc<WatchHub>) -> Self {
        let capabilities = Capabilities {
            shared_with_python: false,
            session_ttl: false,
            in_process_reads: true,
        };
        Self {
            table: LockedTable::new(BackendKind::Local, capabilities, hub),
        }
    }

    /// Keeps the last `limit` writes of each variable (default
    /// [`DEFAULT_HISTORY_LIMIT`](super::DEFAULT_HISTORY_LIMIT)); a limit outside
    /// `1..=`[`MAX_HISTORY_LIMIT`](super::MAX_HISTORY_LIMIT) is
    /// [`Error::InvalidOption`](crate::Error::InvalidOption).
    ///
    /// ```
    /// use dspex::state::{Key, LocalState, StateProvider};
    /// use dspex::{SetOptions, Source};
    /// use dspex::{Value, VariableSpec, VarType};
    ///
    /// let state = LocalState::new().with_history_limit(2)?;
    /// state.register(VariableSpec::new("n", VarType::Integer, 1), Source::Rust)?;
    /// state.set(Key::Name("n"), Value::Integer(2), &SetOptions::default(), Source::Rust)?;
    /// state.set(Key::Name("n"), Value::Integer(3), &SetOptions::default(), Source::Rust)?;
    /// let versions: Vec<u64> = state.history(Key::Name("n"), 10)?.iter().map(|e| e.version).collect();
    /// assert_eq!(versions, [3, 2]);
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn with_history_limit(self, limit: usize) -> Result<Self> {
        self.table.set_history_limit(check_history_limit(limit)?);
        Ok(self)
    }
}

impl Default for LocalState {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LocalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalState")
            .field("variables", &self.table.len())
            .finish()
    }
}

delegate_state_provider!(LocalState, |this| this.table);
