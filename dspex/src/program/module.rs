//! Native steps: the `Module` trait a Rust type implements to be a step of a chain.

use std::future::Future;
use std::pin::Pin;

use dspex_core::Signature;
use parking_lot::Mutex;

use super::stream::EventSink;
use crate::context::Context;
use crate::data::{Fields, LmCall, Params};
use crate::error::Result;
use crate::lm::PredictorState;

/// What a native step knows of the chain it runs in: its name, its signature, the context
/// (whose LM dspex's own [`Predict`](crate::Predict) calls), and where it records the LM
/// calls it makes for the run's trace.
pub struct StepContext<'a> {
    step: &'a str,
    signature: &'a Signature,
    ctx: &'a Context,
    lm_calls: Mutex<Vec<LmCall>>,
    events: Option<EventSink>,
}

impl<'a> StepContext<'a> {
    pub(crate) fn new(
        step: &'a str,
        signature: &'a Signature,
        ctx: &'a Context,
        events: Option<EventSink>,
    ) -> Self {
        Self {
            step,
            signature,
            ctx,
            lm_calls: Mutex::new(Vec::new()),
            events,
        }
    }

    /// Where the step's output text goes as it is written, in a streamed run.
    pub(crate) fn events(&self) -> Option<&EventSink> {
        self.events.as_ref()
    }

    /// The step's name.
    pub fn step(&self) -> &str {
        self.step
    }

    /// The step's signature, as the program declares it.
    pub fn signature(&self) -> &Signature {
        self.signature
    }

    /// The context the program runs on.
    pub fn context(&self) -> &Context {
        self.ctx
    }

    /// Records an LM call of the step in the run's trace.
    pub fn record_lm_call(&self, call: LmCall) {
        self.lm_calls.lock().push(call);
    }

    pub(crate) fn into_lm_calls(self) -> Vec<LmCall> {
        self.lm_calls.into_inner()
    }
}

/// A native (Rust) step. `forward` receives the step's input fields (those of its signature)
/// and the values of its bound variables under their parameter names, and returns its output
/// fields. The macros' programs take a native step's module as a value
/// (`X::builder().step(module).start()`) or build it with `Default`.
///
/// A chain calls [`forward_in_step`](Module::forward_in_step), which also gets the
/// [`StepContext`] (the step's signature, the context, the trace's LM calls); by default it
/// calls `forward`. dspex's own LM modules implement it to take the step's signature and the
/// context's LM.
///
/// ```
/// use dspex::{Fields, Module, Params, Result};
///
/// #[derive(Default)]
/// struct Shout;
///
/// impl Module for Shout {
///     async fn forward(&self, inputs: &Fields, _params: &Params) -> Result<Fields> {
///         Ok(Fields::from([("loud", inputs.get::<&str>("text")?.to_uppercase())]))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a dspex module",
    label = "a native step needs a type implementing `dspex::Module`",
    note = "implement `dspex::Module` for `{Self}`: `async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields>`"
)]
pub trait Module: Send + Sync + 'static {
    /// Runs the step.
    fn forward(
        &self,
        inputs: &Fields,
        params: &Params,
    ) -> impl Future<Output = Result<Fields>> + Send;

    /// Runs the step as a chain runs it, knowing its [`StepContext`]; `forward` unless
    /// overridden.
    fn forward_in_step(
        &self,
        step: &StepContext<'_>,
        inputs: &Fields,
        params: &Params,
    ) -> impl Future<Output = Result<Fields>> + Send {
        let _ = step;
        self.forward(inputs, params)
    }

    /// The DSPy predictor this module is, if it is one (dspex's
    /// [`Predict`](crate::Predict) and [`ChainOfThought`](crate::ChainOfThought)): what loading
    /// and saving DSPy's state reach. `None` unless overridden.
    fn predictor(&self) -> Option<&dyn Predictor> {
        None
    }
}

/// A native step that is a DSPy predictor: its kind, its own signature, and its learned
/// [`PredictorState`], read and replaced as a whole.
pub trait Predictor: Send + Sync {
    /// The DSPy module it stands for: `Predict` or `ChainOfThought`.
    fn module_kind(&self) -> &'static str;

    /// Whether its prompt asks for DSPy's `reasoning` before the outputs.
    fn reasoning(&self) -> bool;

    /// The signature it was built with, if any (in a chain, the step's is used otherwise).
    fn own_signature(&self) -> Option<&Signature>;

    /// Its learned state now.
    fn predictor_state(&self) -> PredictorState;

    /// Replaces its learned state; the next calls use it.
    fn set_predictor_state(&self, state: PredictorState);
}

/// A boxed future, as dynamic dispatch needs.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The object-safe form of [`Module`], implemented for every `Module`; the runtime builder
/// stores native steps as `Arc<dyn DynModule>`, and generated code hands them to the chain as
/// `&dyn DynModule` (through `dspex::__private`).
pub trait DynModule: Send + Sync + 'static {
    /// Runs the step ([`Module::forward_in_step`]).
    fn forward_boxed<'a>(
        &'a self,
        step: &'a StepContext<'a>,
        inputs: &'a Fields,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<Fields>>;

    /// [`Module::predictor`].
    fn dyn_predictor(&self) -> Option<&dyn Predictor>;
}

impl<M: Module> DynModule for M {
    fn forward_boxed<'a>(
        &'a self,
        step: &'a StepContext<'a>,
        inputs: &'a Fields,
        params: &'a Params,
    ) -> BoxFuture<'a, Result<Fields>> {
        Box::pin(self.forward_in_step(step, inputs, params))
    }

    fn dyn_predictor(&self) -> Option<&dyn Predictor> {
        self.predictor()
    }
}
