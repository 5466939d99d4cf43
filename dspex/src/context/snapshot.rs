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
#[cfg(feature = "python")]
pub(crate) fn read_run_values(
    backend: &dyn StateProvider,
    overrides: &Overrides,
    names: &[&str],
) -> Result<Vec<RunValue>> {
    let mut values = Vec::with_capacity(names.len());
    read_with(
        overrides,
        names,
        |rest, f| backend.read_many(rest, f),
        |_, value| values.push(value),
    )?;
    Ok(values)
}

/// The rule of [`read_run_values`]: `read_many` reads the names that are not overridden, in one
/// snapshot (it is not called when every name is), and `emit` receives each name's value with
/// its index in `names`, in order. A run without overrides reads straight through, with no
/// copy of the names.
pub(crate) fn read_with(
    overrides: &Overrides,
    names: &[&str],
    read_many: impl FnOnce(&[&str], &mut dyn FnMut(&str, Option<&VarRecord>)) -> Result<()>,
    mut emit: impl FnMut(usize, RunValue),
) -> Result<()> {
    if overrides.is_empty() {
        let (mut index, mut missing) = (0, None);
        read_many(names, &mut |name, record| {
            match record {
                Some(r) if missing.is_none() => emit(
                    index,
                    RunValue {
                        value: r.value.clone(),
                        version: Some(r.version),
                    },
                ),
                Some(_) => {}
                None => {
                    if missing.is_none() {
                        missing = Some(name.to_owned());
                    }
                }
            }
            index += 1;
        })?;
        return missing.map_or(Ok(()), |name| Err(Error::not_found(&name)));
    }
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
    for (index, name) in names.iter().enumerate() {
        let value = match overrides.get(name) {
            Some(value) => RunValue {
                value: value.clone(),
                version: None,
            },
            None => {
                let (value, version) = read
                    .next()
                    .flatten()
                    .ok_or_else(|| Error::not_found(name))?;
                RunValue {
                    value,
                    version: Some(version),
                }
            }
        };
        emit(index, value);
    }
    Ok(())
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
    /// The values of a step's `bindings` in a run (the rule of [`read_with`]).
    pub(crate) fn read(
        backend: &dyn StateProvider,
        overrides: &Overrides,
        bindings: &[Binding],
    ) -> Result<Self> {
        if bindings.is_empty() {
            return Ok(Self::default());
        }
        let names: Vec<&str> = bindings.iter().map(|b| b.variable.as_str()).collect();
        let mut params = Vec::with_capacity(bindings.len());
        read_with(
            overrides,
            &names,
            |rest, f| backend.read_many(rest, f),
            |index, read| {
                let binding = &bindings[index];
                params.push(BoundParam {
                    param: binding.param.clone(),
                    variable: binding.variable.clone(),
                    value: read.value,
                    version: read.version,
                });
            },
        )?;
        Ok(Self(params))
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
