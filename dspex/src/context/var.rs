//! Typed variable handles: [`Var<T>`], resolved at registration so that reads and writes skip
//! the name lookup.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use super::handle::Context;
use crate::data::VarValue;
use crate::error::{Error, Result};
use crate::state::{
    HistoryEntry, Key, SetOptions, Source, VarId, VarRecord, VarRef, WatchOptions, Watcher,
};

/// A typed handle to one variable of a context. It was resolved at registration, so reads and
/// writes skip the name lookup. Cheap to clone; it keeps working across a backend switch.
///
/// ```
/// use dspex::{Context, Constraints};
///
/// let ctx = Context::new();
/// let max_tokens = ctx.defvariable::<i64>("max_tokens", 256, Constraints::range(1, 4096))?;
/// assert_eq!(max_tokens.get()?, 256);
/// max_tokens.set(512)?;
/// assert_eq!(max_tokens.update(|n| n * 2)?, 1024);
/// assert!(max_tokens.set(5000).is_err());
/// assert_eq!(ctx.get::<i64>("max_tokens")?, 1024);
/// # Ok::<(), dspex::Error>(())
/// ```
pub struct Var<T> {
    ctx: Context,
    name: Arc<str>,
    vref: VarRef,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Var<T> {
    fn clone(&self) -> Self {
        Self {
            ctx: self.ctx.clone(),
            name: Arc::clone(&self.name),
            vref: self.vref,
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Var<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Var")
            .field("name", &self.name)
            .field("id", &self.vref.id)
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: VarValue> Var<T> {
    pub(crate) fn new(ctx: Context, name: &str, vref: VarRef) -> Self {
        Self {
            ctx,
            name: name.into(),
            vref,
            _type: PhantomData,
        }
    }

    /// The variable's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The variable's id.
    pub fn id(&self) -> VarId {
        self.vref.id
    }

    /// The context the variable lives in.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// Names a `NotFound` after the variable rather than its id.
    fn named(&self, e: Error) -> Error {
        match e {
            Error::NotFound { .. } => Error::not_found(&self.name),
            e => e,
        }
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> Result<T> {
        self.ctx
            .read_typed::<T>(Key::Ref(self.vref), &self.name)
            .map_err(|e| self.named(e))
    }

    /// Validates and writes a value; returns the new version. A rejected value changes nothing.
    #[inline]
    pub fn set(&self, value: impl Into<T>) -> Result<u64> {
        self.set_with(value, &SetOptions::default())
    }

    /// Writes with options: compare-and-set and metadata.
    pub fn set_with(&self, value: impl Into<T>, options: &SetOptions) -> Result<u64> {
        self.ctx
            .set_key(Key::Ref(self.vref), value.into().into_value(), options)
            .map_err(|e| self.named(e))
    }

    /// Atomically replaces the value with `f(current)`; returns the new value. `f` runs
    /// outside any lock and runs again if another writer got in between (see
    /// [`Context::update`]).
    pub fn update(&self, f: impl FnMut(T) -> T) -> Result<T> {
        self.ctx
            .update_key(Key::Ref(self.vref), &self.name, f)
            .map_err(|e| self.named(e))
    }

    /// The full record: value, version, constraints, metadata, timestamps, source.
    pub fn record(&self) -> Result<VarRecord> {
        self.ctx
            .with_backend(|b| b.get(Key::Ref(self.vref)))
            .map_err(|e| self.named(e))
    }

    /// Watches this variable.
    pub fn watch(&self) -> Result<Watcher> {
        self.ctx.watch_with(&[&self.name], WatchOptions::default())
    }

    /// The last writes, newest first, at most `limit` of them, with typed values (see
    /// [`Context::history`]).
    ///
    /// ```
    /// use dspex::{Context, Constraints};
    ///
    /// let ctx = Context::new();
    /// let n = ctx.defvariable::<i64>("max_tokens", 256, Constraints::range(1, 4096))?;
    /// n.set(512)?;
    /// let values: Vec<(u64, i64)> = n.history(10)?.into_iter().map(|e| (e.version, e.value)).collect();
    /// assert_eq!(values, [(2, 512), (1, 256)]);
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn history(&self, limit: usize) -> Result<Vec<HistoryEntry<T>>> {
        let entries = self
            .ctx
            .with_backend(|b| b.history(Key::Ref(self.vref), limit))
            .map_err(|e| self.named(e))?;
        entries
            .into_iter()
            .map(|entry| {
                entry.try_map(|value| {
                    T::from_value(&value).ok_or_else(|| Error::TypeMismatch {
                        name: self.name.to_string(),
                        expected: T::TYPE.name(),
                        found: value.kind(),
                    })
                })
            })
            .collect()
    }

    /// Writes the value of `version` again as a new version, with metadata
    /// `rolled_back_from = "<version>"`; returns the new version (see [`Context::rollback`]).
    pub fn rollback(&self, version: u64) -> Result<u64> {
        self.ctx
            .with_backend(|b| b.rollback(Key::Ref(self.vref), version, Source::Rust))
            .map_err(|e| self.named(e))
    }
}
