//! Python steps: a DSPy module created in the context's Python worker.

use dspex_core::program::{ProgramSpec, StepSpec};

use super::fields::Fields;
use crate::context::Context;
use crate::error::{Error, Result};

/// A python step of a program: the handle to its DSPy module in the context's worker. Fields
/// of this type mark python steps in `#[derive(Program)]` structs.
#[derive(Debug, Clone)]
pub struct PythonModule {
    ctx: Context,
    step: String,
}

impl PythonModule {
    /// Creates the DSPy module of python step `index` of `spec` in the context's worker.
    pub async fn attach(_ctx: &Context, spec: &ProgramSpec, index: usize) -> Result<Self> {
        let step = spec.steps.get(index).ok_or_else(|| {
            Error::Internal(format!("program `{}` has no step {index}", spec.name))
        })?;
        Err(Error::Bridge(format!(
            "python step `{}` of program `{}` needs the Python bridge, which this build of dspex does not provide yet",
            step.name, spec.name
        )))
    }

    /// The step name.
    pub fn step(&self) -> &str {
        &self.step
    }

    /// The context whose worker runs the module.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    pub(crate) async fn execute(
        &self,
        _ctx: &Context,
        step: &StepSpec,
        _inputs: Fields,
    ) -> Result<Fields> {
        Err(Error::Bridge(format!(
            "python step `{}` needs the Python bridge",
            step.name
        )))
    }
}
