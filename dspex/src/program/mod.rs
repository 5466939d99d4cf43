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
use crate::error::{Error, Result};

mod builder;
mod fields;
mod module;
mod python;
mod run;
mod trace;

pub use builder::{DynProgram, ProgramBuilder, RunningProgram, Step};
pub(crate) use fields::read_error;
pub use fields::{Fields, Params};
pub use module::{BoxFuture, DynModule, Module};
pub use python::PythonModule;
pub use run::ChainRun;
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
            let ctx = context_for(Self::spec()).await?;
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

/// A new context on the backend `spec` needs: local for a native program; bridged for one
/// with a python step, its worker starting at once (in the background: the first python
/// step's attach waits for it).
pub async fn context_for(spec: &ProgramSpec) -> Result<Context> {
    if !spec.requires_bridge() {
        return Ok(Context::new());
    }
    let ctx = Context::builder().bridged().build().await?;
    ctx.mark_requires_bridge();
    let warming = ctx.clone();
    crate::worker::runtime()?.spawn(async move {
        if let Err(e) = warming.worker().await {
            tracing::debug!(error = %e, "the worker did not start in the background; the first python step will report why");
        }
    });
    Ok(ctx)
}

/// Registers `spec`'s variables into `ctx`, all or nothing: a variable the context already
/// holds is shared if its type and constraints are the same, and an error otherwise.
pub async fn prepare_context(ctx: &Context, spec: &ProgramSpec) -> Result<()> {
    let mut fresh = Vec::new();
    for var in &spec.variables {
        match ctx.record(&var.name) {
            Ok(existing) if existing.ty == var.ty && existing.constraints == var.constraints => {}
            Ok(existing) => {
                return Err(Error::IncompatibleVariable {
                    name: var.name.clone(),
                    program: spec.name.clone(),
                    existing: describe(existing.ty, &existing.constraints),
                    declared: describe(var.ty, &var.constraints),
                });
            }
            Err(Error::NotFound { .. }) => fresh.push(var),
            Err(e) => return Err(e),
        }
    }
    for (i, var) in fresh.iter().enumerate() {
        if let Err(e) = ctx.register((*var).clone()) {
            // Undo this call's registrations so that a failed attach leaves nothing behind.
            for done in &fresh[..i] {
                let _ = ctx.delete(&done.name);
            }
            return Err(e);
        }
    }
    if spec.requires_bridge() {
        ctx.mark_requires_bridge();
    }
    Ok(())
}

fn describe(ty: dspex_core::VarType, c: &dspex_core::Constraints) -> String {
    format!("{} {ty} variable (constraints: {c})", ty.article())
}
