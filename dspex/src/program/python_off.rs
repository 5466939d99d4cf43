//! Python steps without dspex's `python` feature: [`PythonModule`] is a type with no values,
//! so that code naming it (a `#[derive(Program)]` field, `Program::python_steps`) reads the
//! same whatever the features, and no python step can exist. The macros refuse a python step
//! at compile time, and the runtime builder refuses one when it builds.

use dspex_core::program::ProgramSpec;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::program::compiled::CompiledState;

/// A python step of a program. This build of dspex leaves out the `python` feature, so there
/// are none: the type has no values.
#[derive(Debug, Clone)]
pub enum PythonModule {}

/// The definition of a Rust tool: none exist without the `python` feature.
#[derive(Debug)]
pub(crate) enum ToolDef {}

impl PythonModule {
    /// The step name.
    pub fn step(&self) -> &str {
        match *self {}
    }

    /// The context whose worker runs the module.
    pub fn context(&self) -> &Context {
        match *self {}
    }

    /// The compiled state the step's module runs with.
    pub fn compiled_state(&self) -> Option<CompiledState> {
        match *self {}
    }

    /// Refused: no python step can be attached without the `python` feature.
    pub(crate) async fn attach(
        _ctx: &Context,
        spec: &ProgramSpec,
        index: usize,
        _tools: &[&'static ToolDef],
    ) -> Result<Self> {
        let step = spec.steps.get(index).map_or("?", |s| s.name.as_str());
        Err(feature_error(&spec.name, step))
    }

    pub(crate) async fn check_state(&self, _state: &CompiledState) -> Result<()> {
        match *self {}
    }

    pub(crate) async fn set_compiled_state(&self, _state: Option<CompiledState>) -> Result<()> {
        match *self {}
    }
}

/// The error of a python step in a build without the `python` feature.
pub(crate) fn feature_error(program: &str, step: &str) -> Error {
    Error::InvalidProgram {
        program: program.to_owned(),
        issues: vec![format!(
            "step `{step}`: a python step needs dspex's `python` feature, which this build of dspex leaves out"
        )],
    }
}
