//! Programs: a chain of native and python steps sharing a context's variables. The macros
//! generate [`Program`] implementations; [`ProgramBuilder`] builds the same kind of program at
//! run time. Both are checked by `dspex-core` (`ProgramSpec::check`), at compile time for the
//! macros and at build time for the builder.

use std::future::Future;

pub use dspex_core::dspy;
pub use dspex_core::program::{
    Binding, ConfigEntry, ConfigValue, ModuleRef, ProgramSpec, StepKind, StepSpec, ToolRef,
};

use crate::context::Context;
use crate::error::Result;

mod builder;
mod fields;
pub(crate) mod module;
pub(crate) mod prepare;
pub(crate) mod python;
pub(crate) mod run;
mod trace;

pub use builder::{DynProgram, ProgramBuilder, RunningProgram, Step};
pub(crate) use fields::read_error;
pub use fields::{Fields, Params};
pub use module::Module;
pub use python::PythonModule;
pub use trace::{LmCall, RunTrace, StepRunner, StepTrace};

/// A program declared with `dspex_program!` or `#[derive(Program)]`.
///
/// The macros also generate inherent `start`, `attach` and `run` methods and typed variable
/// accessors, so the trait is only needed for generic code.
pub trait Program: Sized + Send + Sync + 'static {
    /// Whether any step is python, decided at compile time: such a program starts on a bridged
    /// context.
    const REQUIRES_BRIDGE: bool;

    /// The program's declaration: variables, steps, signature.
    fn spec() -> &'static ProgramSpec;

    /// The context the program's variables live in.
    fn context(&self) -> &Context;

    /// Registers the program's variables into `ctx` (sharing identical declarations already
    /// there), upgrades `ctx` when a step needs the bridge, and builds the program.
    fn attach(ctx: &Context) -> impl Future<Output = Result<Self>> + Send;

    /// Creates a context on the backend the program needs and attaches to it.
    fn start() -> impl Future<Output = Result<Self>> + Send {
        async {
            let ctx = prepare::context_for(Self::spec()).await?;
            Self::attach(&ctx).await
        }
    }

    /// Runs the chain on named fields and returns the outputs with the trace of every step
    /// (what it read and wrote, its parameters, the LM settings its calls used).
    fn run_fields_traced(
        &self,
        input: Fields,
    ) -> impl Future<Output = Result<(Fields, RunTrace)>> + Send;

    /// Runs the chain on named fields.
    fn run_fields(&self, input: Fields) -> impl Future<Output = Result<Fields>> + Send {
        async move {
            self.run_fields_traced(input)
                .await
                .map(|(outputs, _)| outputs)
        }
    }
}
