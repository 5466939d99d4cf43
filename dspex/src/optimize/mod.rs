//! Improving python steps with DSPy's optimizers, and saving what a program learned.
//!
//! [`AnyProgram::compile_step`](crate::AnyProgram::compile_step) compiles one python step in
//! its worker with an [`Optimizer`] (`BootstrapFewShot`, `BootstrapFewShotWithRandomSearch`,
//! `MIPROv2`, `COPRO`, `GEPA`: the table of `dspex_core::optimizers`, which says the settings
//! each takes) on a train set of [`Example`](crate::eval::Example)s, scored by a
//! [`CompileMetric`] (for GEPA, best one with feedback text:
//! [`CompileMetric::rust_feedback`], reflected on by the step's LM). The
//! compiled state (DSPy's `dump_state()`: demos, instructions) comes back to Rust as a
//! [`CompiledState`], is loaded into the step's module in every worker process, and is loaded
//! again whenever a worker restarts. The [`CompileReport`] says what was learned.
//!
//! [`AnyProgram::compile`](crate::AnyProgram::compile) compiles a whole program as DSPy's
//! `teleprompter.compile(program, trainset=..)` does, on examples of the program's own inputs
//! and outputs, scored by a Rust or a Python metric: `LabeledFewShot`, `BootstrapFewShot` and
//! `BootstrapFewShotWithRandomSearch`, run in Rust on the program's run traces. Every LM step (native or python `Predict` and
//! `ChainOfThought`) gets its demos from the runs the metric accepts: native steps keep them
//! in Rust, python steps take them as DSPy state in their worker.
//!
//! A program's whole state, its variables' values and its steps' compiled states, saves to one
//! versioned JSON file ([`ProgramState`], [`AnyProgram::save_state`](crate::AnyProgram::save_state))
//! and loads back, all or nothing, into a program of the same declaration
//! ([`AnyProgram::load_state`](crate::AnyProgram::load_state)).
//!
//! A step's state also loads from, and saves to, the file DSPy itself saves
//! ([`AnyProgram::load_dspy_state`](crate::AnyProgram::load_dspy_state)): a program optimized in
//! Python with DSPy runs from Rust, natively when its LM steps are native.

mod bootstrap;
#[cfg(feature = "python")]
mod compile;
mod dspy;
pub(crate) mod ext;
mod optimizer;
mod program_compile;
mod score;
mod state;

pub use crate::program::compiled::{CompiledState, MAX_COMPILED_STATE_BYTES};
pub use crate::program::rollout::ROLLOUT_TEMPERATURE;
pub use bootstrap::{BOOTSTRAP_CONCURRENCY, DEFAULT_MAX_ERRORS};
pub use dspy::{DSPY_VERSION, MAX_DSPY_STATE_BYTES};
pub use optimizer::{
    CompileMetric, CompileReport, DEFAULT_COMPILE_TIMEOUT, FEEDBACK_METRIC_NAME, FeedbackFn,
    MAX_COMPILE_TIMEOUT, MAX_TRAIN_EXAMPLES, METRIC_CALLBACK_TIMEOUT, Optimizer,
};
pub use program_compile::CANDIDATE_CONCURRENCY;
pub use state::{PROGRAM_STATE_FORMAT, PROGRAM_STATE_VERSION, ProgramState};
