//! The plain data of a run: the typed fields that flow along a chain ([`Fields`]), the values a
//! step's parameters take ([`Params`]) and the Rust types of variable values ([`VarValue`]),
//! and the trace of what each step did ([`RunTrace`]).
//! Every layer above speaks in these types; they hold values and import nothing but the
//! error type.

mod fields;
#[cfg(feature = "otel")]
pub(crate) mod span_queue;
pub(crate) mod spans;
mod trace;
mod values;

pub(crate) use fields::read_error;
pub use fields::{Fields, Params};
pub use trace::{
    LmCall, LmExchange, LmMessage, MAX_CAPTURED_BYTES_PER_RUN, MAX_CAPTURED_CALLS_PER_RUN,
    RunTrace, StepCall, StepRunner, StepTrace, ToolCall, VariableRead,
};
pub use values::{Choice, Embedding, ModuleName, VarValue};
