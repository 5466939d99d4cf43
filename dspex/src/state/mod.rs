//! Variable state backends: the [`StateProvider`] trait, the records it stores, the
//! [`WatchHub`] that fans changes out to watchers, the in-process [`LocalState`], and
//! [`SharedState`], a session in Redis shared by many processes. The bridged backend, a
//! session of the bridge's store shared with Python, is
//! [`BridgedState`](crate::bridge::BridgedState).
//!
//! Every backend keeps each variable's [`History`] (the last [`DEFAULT_HISTORY_LIMIT`] writes
//! unless configured otherwise, bounded by [`MAX_HISTORY_BYTES`]) and honours read-only
//! variables ([`VarRecord::readonly`]): only [`Source::Rust`] may write them.
//!
//! The backends of this crate store their variables in the same table and check every write
//! with `dspex-core`, so the rules of variables (types, constraints, versions, compare-and-set,
//! atomic batches, watch order) hold on each of them by construction; the conformance suite
//! checks that they do. A backend written elsewhere implements [`StateProvider`] with the
//! same `dspex-core` checks and is installed with
//! [`ContextBuilder::state`](crate::ContextBuilder::state); see the trait for the contract.

pub(crate) mod history;
mod local;
pub(crate) mod provider;
#[cfg(feature = "proto")]
pub(crate) mod records;
#[cfg(feature = "redis")]
pub mod shared;
pub(crate) mod table;
pub(crate) mod watch;

pub use dspex_core::Glob;
pub use history::{
    DEFAULT_HISTORY_LIMIT, History, MAX_HISTORY_BYTES, MAX_HISTORY_LIMIT, ROLLED_BACK_FROM,
    rollback_metadata,
};
pub(crate) use history::{HistoryEntry, check_history_limit};
pub use local::LocalState;
pub(crate) use provider::{BackendKind, GetMany, SetOptions, Source, VarId, VarRecord};
pub use provider::{Capabilities, ExportedVar, Key, StateProvider, VarRef};
#[cfg(feature = "redis")]
pub use shared::{SharedConfig, SharedState};
pub use watch::{MAX_WATCH_CAPACITY, WatchHub};
pub(crate) use watch::{WatchOptions, Watcher};
