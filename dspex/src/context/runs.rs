//! What a run reads from its context: per-run overrides checked against the context's records,
//! and the context as the source of a run's variable values (for its steps and the callbacks
//! they make).

use std::collections::BTreeMap;

use dspex_core::program::ProgramSpec;
use dspex_core::{did_you_mean, validate};

use super::handle::Context;
use super::overrides::Overrides;
use crate::error::{Error, Result};
use crate::state::Key;
#[cfg(feature = "python")]
use {
    super::callbacks::{Invocation, VariableSource},
    super::handle::WeakContext,
    super::snapshot::RunValue,
    crate::state::StateProvider,
    serde_json::{Map, Value as JsonValue},
    std::sync::Arc,
};

impl Overrides {
    /// Checks every override against `spec` (the variable must be declared) and against the
    /// context's record of the variable (type and constraints, as a write would be), and
    /// returns the values in canonical form (integers widened for `float` variables).
    pub fn validate(&self, ctx: &Context, spec: &ProgramSpec) -> Result<Overrides> {
        let mut checked = BTreeMap::new();
        for (name, value) in &self.values {
            if spec.variable(name).is_none() {
                let hint = did_you_mean(name, spec.variables.iter().map(|v| v.name.as_str()))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(Error::UnknownOverride {
                    name: name.clone(),
                    program: spec.name.clone(),
                    hint,
                });
            }
            let mut outcome = None;
            ctx.with_backend(|b| {
                b.read(Key::Name(name), &mut |r| {
                    outcome = Some(validate(&r.name, r.ty, &r.constraints, value.clone()));
                })
            })?;
            let value = outcome.ok_or_else(|| Error::not_found(name))??;
            checked.insert(name.clone(), value);
        }
        Ok(Overrides { values: checked })
    }
}

#[cfg(feature = "python")]
impl VariableSource for Context {
    fn with_state(
        &self,
        read: &mut dyn FnMut(&dyn StateProvider) -> Result<Vec<RunValue>>,
    ) -> Result<Vec<RunValue>> {
        self.with_backend(|backend| read(backend))
    }
}

#[cfg(feature = "python")]
impl VariableSource for WeakContext {
    fn with_state(
        &self,
        read: &mut dyn FnMut(&dyn StateProvider) -> Result<Vec<RunValue>>,
    ) -> Result<Vec<RunValue>> {
        let ctx = self
            .upgrade()
            .ok_or_else(|| Error::bridge("a callback reads variables, but its context is gone"))?;
        ctx.with_backend(|backend| read(backend))
    }
}

#[cfg(feature = "python")]
impl Invocation {
    /// An invocation outside any session, for calling a tool directly (tests, examples):
    /// `ctx` supplies the variables, `overrides` win over its values.
    pub fn new(
        name: impl Into<String>,
        arguments: Map<String, JsonValue>,
        ctx: Option<Context>,
        overrides: Overrides,
    ) -> Self {
        Self {
            name: name.into(),
            arguments,
            call_id: String::new(),
            source: ctx.map(|ctx| Arc::new(ctx) as Arc<dyn VariableSource>),
            overrides: Arc::new(overrides),
            reads: Arc::default(),
        }
    }
}
