//! The variables API of a [`Context`]: registering, reading, writing (validated, with
//! compare-and-set), atomic updates, history and rollback, and watching, by name or through a
//! typed handle ([`Var`]).

use std::collections::BTreeMap;

use dspex_core::{Constraints, Glob, Value, VariableSpec};

use super::handle::Context;
use super::var::Var;
use crate::data::VarValue;
use crate::error::{Error, Result};
use crate::state::{
    GetMany, HistoryEntry, Key, SetOptions, Source, VarRecord, WatchOptions, Watcher,
};

impl Context {
    // ---- registration -------------------------------------------------------------------

    /// Registers a variable of the Rust type `T` and returns its typed handle.
    ///
    /// ```
    /// use dspex::{Context, Constraints, Choice};
    ///
    /// let ctx = Context::new();
    /// let model = ctx.defvariable::<Choice>(
    ///     "model",
    ///     "gpt-4o-mini",
    ///     Constraints::choices(["gpt-4o-mini", "claude-3-haiku"]),
    /// )?;
    /// assert_eq!(model.get()?, "gpt-4o-mini");
    /// assert!(ctx.defvariable::<f64>("model", 1.0, Constraints::none()).is_err()); // AlreadyExists
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn defvariable<T: VarValue>(
        &self,
        name: &str,
        initial: impl Into<T>,
        constraints: Constraints,
    ) -> Result<Var<T>> {
        let spec = VariableSpec::new(name, T::TYPE, initial.into().into_value())
            .with_constraints(constraints);
        self.defvariable_with(spec)
    }

    /// Registers a full declaration (description, metadata) and returns its typed handle.
    /// Fails with `TypeMismatch` if `T` does not fit the declared type.
    pub fn defvariable_with<T: VarValue>(&self, spec: VariableSpec) -> Result<Var<T>> {
        if !T::fits(spec.ty) {
            return Err(Error::TypeMismatch {
                name: spec.name,
                expected: T::TYPE.name(),
                found: spec.ty.name(),
            });
        }
        let record = self.register(spec)?;
        self.var(&record.name)
    }

    /// Registers a variable and returns its record.
    pub fn register(&self, spec: VariableSpec) -> Result<VarRecord> {
        self.with_backend(|b| b.register(spec, Source::Rust))
    }

    /// A typed handle to an existing variable.
    pub fn var<T: VarValue>(&self, name: &str) -> Result<Var<T>> {
        let (vref, ty) = self.with_backend(|b| -> Result<_> {
            let vref = b.resolve(name)?;
            let mut ty = None;
            b.read(vref.into(), &mut |r| ty = Some(r.ty))?;
            Ok((vref, ty))
        })?;
        let ty = ty.ok_or_else(|| Error::not_found(name))?;
        if !T::fits(ty) {
            return Err(Error::TypeMismatch {
                name: name.to_owned(),
                expected: T::TYPE.name(),
                found: ty.name(),
            });
        }
        Ok(Var::new(self.clone(), name, vref))
    }

    // ---- reads --------------------------------------------------------------------------

    #[inline]
    pub(crate) fn read_typed<T: VarValue>(&self, key: Key<'_>, name: &str) -> Result<T> {
        let mut out: Option<std::result::Result<T, dspex_core::VarType>> = None;
        self.with_backend(|b| {
            b.read(key, &mut |r| {
                out = Some(T::from_value(&r.value).ok_or(r.ty));
            })
        })?;
        match out {
            Some(Ok(v)) => Ok(v),
            Some(Err(found)) => Err(Error::TypeMismatch {
                name: name.to_owned(),
                expected: T::TYPE.name(),
                found: found.name(),
            }),
            None => Err(Error::internal("read returned without a record")),
        }
    }

    /// The value of `name` as `T`.
    #[inline]
    pub fn get<T: VarValue>(&self, name: &str) -> Result<T> {
        self.read_typed(Key::Name(name), name)
    }

    /// The value of `name` as `T`, or `default` if there is no such variable. A variable of
    /// another type is still an error.
    pub fn get_or<T: VarValue>(&self, name: &str, default: T) -> Result<T> {
        match self.get(name) {
            Err(Error::NotFound { .. }) => Ok(default),
            other => other,
        }
    }

    /// The value of `name`, untyped.
    pub fn get_value(&self, name: &str) -> Result<Value> {
        let mut out = None;
        self.with_backend(|b| b.read(Key::Name(name), &mut |r| out = Some(r.value.clone())))?;
        out.ok_or_else(|| Error::not_found(name))
    }

    /// The full record of `name`.
    pub fn record(&self, name: &str) -> Result<VarRecord> {
        self.with_backend(|b| b.get(Key::Name(name)))
    }

    /// The values of several variables; names that do not exist are listed in `missing`.
    pub fn get_many(&self, names: &[&str]) -> Result<GetMany> {
        self.with_backend(|b| b.get_many(names))
    }

    /// Whether a variable named `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.with_backend(|b| b.read(Key::Name(name), &mut |_| {}))
            .is_ok()
    }

    /// The records sorted by name; with a pattern, only those whose whole name matches the glob
    /// (`*`, `?`, `[a-z]`).
    pub fn list(&self, pattern: Option<&str>) -> Result<Vec<VarRecord>> {
        let glob = pattern.map(Glob::new).transpose()?;
        self.with_backend(|b| b.list(glob.as_ref()))
    }

    // ---- writes -------------------------------------------------------------------------

    #[inline]
    pub(crate) fn set_key(&self, key: Key<'_>, value: Value, options: &SetOptions) -> Result<u64> {
        self.with_backend(|b| b.set(key, value, options, Source::Rust))
    }

    /// Validates and writes `value`; returns the new version. A rejected value changes nothing.
    #[inline]
    pub fn set(&self, name: &str, value: impl Into<Value>) -> Result<u64> {
        self.set_key(Key::Name(name), value.into(), &SetOptions::default())
    }

    /// Writes with options: compare-and-set (`expected_version`) and metadata.
    ///
    /// ```
    /// use dspex::{Context, Constraints, Error, SetOptions};
    ///
    /// let ctx = Context::new();
    /// ctx.defvariable::<i64>("n", 1, Constraints::none())?;
    /// let v = ctx.record("n")?.version;
    /// ctx.set_with("n", 2, &SetOptions::expect_version(v).with_metadata("by", "doc"))?;
    /// assert!(matches!(
    ///     ctx.set_with("n", 3, &SetOptions::expect_version(v)),
    ///     Err(Error::Conflict { .. })
    /// ));
    /// assert_eq!(ctx.record("n")?.metadata["by"], "doc");
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn set_with(
        &self,
        name: &str,
        value: impl Into<Value>,
        options: &SetOptions,
    ) -> Result<u64> {
        self.set_key(Key::Name(name), value.into(), options)
    }

    /// Compare-and-set loop: read the value and its version, compute `f` outside any lock, write
    /// it if the version is unchanged, else start again with the newer value.
    pub(crate) fn update_key<T: VarValue>(
        &self,
        key: Key<'_>,
        name: &str,
        mut f: impl FnMut(T) -> T,
    ) -> Result<T> {
        loop {
            let mut read = None;
            self.with_backend(|b| {
                b.read(key, &mut |r| {
                    read = Some((T::from_value(&r.value).ok_or(r.ty), r.version));
                })
            })?;
            let (current, version) =
                read.ok_or_else(|| Error::internal("read returned without a record"))?;
            let current = current.map_err(|found| Error::TypeMismatch {
                name: name.to_owned(),
                expected: T::TYPE.name(),
                found: found.name(),
            })?;
            let next = f(current);
            let options = SetOptions::expect_version(version);
            match self.set_key(key, next.clone().into_value(), &options) {
                Ok(_) => return Ok(next),
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Atomically replaces the value of `name` with `f(current)`; returns the new value. No
    /// concurrent write is lost between the read and the write: `f` runs outside any lock and
    /// the result is written only if the variable is still at the version `f` saw; otherwise
    /// `f` runs again on the newer value. So `f` may run more than once, and may itself read
    /// the context.
    ///
    /// ```
    /// use dspex::{Context, Constraints};
    ///
    /// let ctx = Context::new();
    /// ctx.defvariable::<f64>("scale", 2.0, Constraints::none())?;
    /// ctx.defvariable::<f64>("x", 1.5, Constraints::none())?;
    /// let scaled = ctx.update::<f64>("x", |x| x * ctx.get::<f64>("scale").unwrap_or(1.0))?;
    /// assert_eq!(scaled, 3.0);
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn update<T: VarValue>(&self, name: &str, f: impl FnMut(T) -> T) -> Result<T> {
        self.update_key(Key::Name(name), name, f)
    }

    /// Atomically writes several variables: all are validated first, then all apply or none.
    ///
    /// ```
    /// use dspex::{Context, Constraints, Value};
    ///
    /// let ctx = Context::new();
    /// ctx.defvariable::<i64>("a", 1, Constraints::range(0, 10))?;
    /// ctx.defvariable::<i64>("b", 1, Constraints::range(0, 10))?;
    /// assert!(ctx.update_many([("a", Value::from(5)), ("b", Value::from(50))]).is_err());
    /// assert_eq!(ctx.get::<i64>("a")?, 1); // nothing applied
    /// ctx.update_many([("a", Value::from(5)), ("b", Value::from(6))])?;
    /// assert_eq!(ctx.get::<i64>("b")?, 6);
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn update_many<'a>(
        &self,
        writes: impl IntoIterator<Item = (&'a str, Value)>,
    ) -> Result<Vec<u64>> {
        self.update_many_with(writes, &BTreeMap::new())
    }

    /// [`update_many`](Self::update_many) that also merges `metadata` into the metadata of
    /// every written variable, in the same atomic step (nothing changes if a write is refused).
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use dspex::{Context, Constraints, Value};
    ///
    /// let ctx = Context::new();
    /// ctx.defvariable::<i64>("a", 1, Constraints::range(0, 10))?;
    /// let metadata = BTreeMap::from([("tuner".to_owned(), "grid".to_owned())]);
    /// ctx.update_many_with([("a", Value::from(5))], &metadata)?;
    /// assert_eq!(ctx.record("a")?.metadata["tuner"], "grid");
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn update_many_with<'a>(
        &self,
        writes: impl IntoIterator<Item = (&'a str, Value)>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Vec<u64>> {
        let writes: Vec<(String, Value)> =
            writes.into_iter().map(|(n, v)| (n.to_owned(), v)).collect();
        self.with_backend(|b| b.update_many_with(writes, metadata, Source::Rust))
    }

    /// Deletes a variable, and its history, and returns its last record.
    pub fn delete(&self, name: &str) -> Result<VarRecord> {
        self.with_backend(|b| b.delete(Key::Name(name), Source::Rust))
    }

    // ---- history ------------------------------------------------------------------------

    /// The last writes of `name`, newest first, at most `limit` of them: version, value,
    /// source, the metadata given with the write, and time. Registration is version 1; the
    /// history keeps the last [`history_limit`](Self::history_limit) writes (and at most
    /// [`MAX_HISTORY_BYTES`](crate::state::MAX_HISTORY_BYTES)).
    ///
    /// ```
    /// use dspex::{Context, Constraints, Source, Value};
    ///
    /// let ctx = Context::new();
    /// ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
    /// ctx.set("temperature", 0.9)?;
    /// ctx.set("temperature", 1.4)?;
    /// let history = ctx.history("temperature", 10)?;
    /// let versions: Vec<(u64, Value)> = history.iter().map(|e| (e.version, e.value.clone())).collect();
    /// assert_eq!(versions, [(3, Value::Float(1.4)), (2, Value::Float(0.9)), (1, Value::Float(0.7))]);
    /// assert_eq!(history[0].source, Source::Rust);
    /// assert_eq!(ctx.history("temperature", 1)?.len(), 1);
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn history(&self, name: &str, limit: usize) -> Result<Vec<HistoryEntry>> {
        self.with_backend(|b| b.history(Key::Name(name), limit))
    }

    /// Writes the value `name` had at `version` again, as a new version with metadata
    /// `rolled_back_from = "<version>"`, and returns the new version. It is a write like any
    /// other: validated, the version goes up (a compare-and-set at the old version conflicts),
    /// and watchers see an ordinary update. A version the history no longer keeps is
    /// [`Error::VersionNotFound`], which names the versions it keeps.
    ///
    /// ```
    /// use dspex::{Context, Constraints, Error};
    ///
    /// let ctx = Context::new();
    /// let t = ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
    /// t.set(1.9)?; // a bad change
    /// assert_eq!(ctx.rollback("temperature", 1)?, 3);
    /// assert_eq!(t.get()?, 0.7);
    /// assert_eq!(t.record()?.metadata["rolled_back_from"], "1");
    /// assert!(matches!(ctx.rollback("temperature", 9), Err(Error::VersionNotFound { .. })));
    /// # Ok::<(), dspex::Error>(())
    /// ```
    pub fn rollback(&self, name: &str, version: u64) -> Result<u64> {
        self.with_backend(|b| b.rollback(Key::Name(name), version, Source::Rust))
    }

    // ---- watching -----------------------------------------------------------------------

    /// Watches the named variables (every variable when `names` is empty).
    pub fn watch(&self, names: &[&str]) -> Result<Watcher> {
        self.watch_with(names, WatchOptions::default())
    }

    /// Watches with options: queue capacity, initial values.
    pub fn watch_with(&self, names: &[&str], options: WatchOptions) -> Result<Watcher> {
        self.with_backend(|b| b.watch(names, options))
    }
}
