//! Programs: a chain of native and python steps sharing a context's variables. The macros
//! generate [`Program`] implementations; [`ProgramBuilder`] builds the same kind of program at
//! run time. Both are checked by `dspex-core` (`ProgramSpec::check`), at compile time for the
//! macros and at build time for the builder. Every program is a [`BaseProgram`], the interface
//! the workflows above drive.
//!
//! - `module`: native steps, the [`Module`] trait; `predict`: dspex's own native LM steps,
//!   [`Predict`] and [`ChainOfThought`]; `python`: python steps, [`PythonModule`].
//! - `run`: one run of a chain ([`ChainRun`]), step after step, each step's parameters
//!   read in one snapshot with the run's overrides.
//! - `run_demos`: demos of native LM steps for one run only.
//! - `rollout`: a run whose LM requests are a rollout (DSPy's bootstrapping rounds after the
//!   first).
//! - `stream`: a run streamed as [`RunEvent`]s (`stream` on every program).
//! - `prepare`: a context for a program, its variables registered.
//! - `builder`: the runtime builder.

mod builder;
pub(crate) mod compiled;
pub(crate) mod declaration;
pub(crate) mod module;
mod predict;
pub(crate) mod prepare;
#[cfg(feature = "python")]
pub(crate) mod python;
#[cfg(not(feature = "python"))]
#[path = "python_off.rs"]
pub(crate) mod python;
pub(crate) mod rollout;
pub(crate) mod run;
pub(crate) mod run_demos;
mod stream;
mod traits;

pub use builder::{DynProgram, ProgramBuilder, RunningProgram, Step};
pub(crate) use compiled::CompiledState;
#[cfg(feature = "python")]
pub(crate) use compiled::check_state_size;
pub use module::{
    BoxFuture, DynModule, MAX_CALL_DEPTH, MAX_STEP_CALLS, Module, Predictor, StepContext,
};
pub use predict::{ChainOfThought, Predict};
pub use python::PythonModule;
#[cfg(feature = "python")]
pub(crate) use python::{CompileTarget, next_call_id};
pub use run::ChainRun;
pub use stream::{RunEvent, stream_run};
pub use traits::{BaseProgram, Program};
