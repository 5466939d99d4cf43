//! The one rule for the values a run sees: the run's overrides first, the other variables read
//! from the context's backend in one consistent snapshot, each with the version it was read at.
//! A step's parameters (native and python) and the variables a tool reads during the step both
//! come from [`read_run_values`].

use dspex_core::Value;
use dspex_core::program::Binding;

use super::overrides::Overrides;
use crate::data::Params;
use crate::error::{Error, Result};
use crate::state::{StateProvider, VarRecord};

/// A variable's value in a run, and the version it was read at (`None` for a value of the
/// run's overrides).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunValue {
    /// The value.
    pub(crate) value: Value,
    /// The version read; `None` for an override.
    pub(crate) version: Option<u64>,
}

/// The values of `names` in a run, in order: the override of each in `overrides`, else the
/// backend's current value, all read in one snapshot. A name that is neither is `NotFound`.
pub(crate) fn read_run_values(
    backend: &dyn StateProvider,
    overrides: &Overrides,
    names: &[&str],
) -> Result<Vec<RunValue>> {
    read_with(overrides, names, |rest, f| backend.read_many(rest, f))
}

/// [`read_run_values`] with `read_many` reading the names that are not overridden, in one
/// snapshot (it is not called when every name is).
pub(crate) fn read_with(
    overrides: &Overrides,
    names: &[&str],
    read_many: impl FnOnce(&[&str], &mut dyn FnMut(&str, Option<&VarRecord>)) -> Result<()>,
) -> Result<Vec<RunValue>> {
    let from_backend: Vec<&str> = names
        .iter()
        .copied()
        .filter(|name| overrides.get(name).is_none())
        .collect();
    let mut read = Vec::with_capacity(from_backend.len());
    if !from_backend.is_empty() {
        read_many(&from_backend, &mut |_, record| {
            read.push(record.map(|r| (r.value.clone(), r.version)));
        })?;
    }
    let mut read = read.into_iter();
    names
        .iter()
        .map(|name| match overrides.get(name) {
            Some(value) => Ok(RunValue {
                value: value.clone(),
                version: None,
            }),
            None => {
                let (value, version) = read
                    .next()
                    .flatten()
                    .ok_or_else(|| Error::not_found(name))?;
                Ok(RunValue {
                    value,
                    version: Some(version),
                })
            }
        })
        .collect()
}

/// The value one bound parameter of a step has in a run.
#[derive(Debug, Clone)]
pub(crate) struct BoundParam {
    /// The parameter.
    pub(crate) param: String,
    /// The variable it is bound to.
    #[cfg_attr(
        not(feature = "python"),
        allow(dead_code, reason = "a python call carries it")
    )]
    pub(crate) variable: String,
    /// Its value in this run.
    pub(crate) value: Value,
    /// The version it was read at; `None` for a value of the run's overrides.
    #[cfg_attr(
        not(feature = "python"),
        allow(dead_code, reason = "a python call carries it")
    )]
    pub(crate) version: Option<u64>,
}

/// The values of a step's bound parameters in a run, in the order of its bindings.
#[derive(Debug, Clone, Default)]
pub(crate) struct StepParams(Vec<BoundParam>);

impl StepParams {
    /// The values of a step's `bindings` in a run ([`read_run_values`]).
    pub(crate) fn read(
        backend: &dyn StateProvider,
        overrides: &Overrides,
        bindings: &[Binding],
    ) -> Result<Self> {
        if bindings.is_empty() {
            return Ok(Self::default());
        }
        let names: Vec<&str> = bindings.iter().map(|b| b.variable.as_str()).collect();
        let values = read_run_values(backend, overrides, &names)?;
        Ok(Self(
            bindings
                .iter()
                .zip(values)
                .map(|(b, read)| BoundParam {
                    param: b.param.clone(),
                    variable: b.variable.clone(),
                    value: read.value,
                    version: read.version,
                })
                .collect(),
        ))
    }

    #[cfg(feature = "python")]
    /// Each bound parameter's value.
    pub(crate) fn bound(&self) -> &[BoundParam] {
        &self.0
    }

    /// The values by parameter name, as a native step takes them and a trace shows them.
    pub(crate) fn params(&self) -> Params {
        self.0
            .iter()
            .map(|b| (b.param.clone(), b.value.clone()))
            .collect()
    }
}
