//! Native steps: the `Module` trait a Rust type implements to be a step of a chain, and the
//! [`StepContext`] it runs with, through which it can call the program's other steps.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use dspex_core::program::{ConfigEntry, ProgramSpec, StepKind, StepSpec};
use dspex_core::{Signature, SignatureField};
use parking_lot::Mutex;
use serde_json::Value as JsonValue;

use super::python::PythonModule;
use super::stream::{ChainEvent, EventSink, RunEvent};
use crate::context::{Context, Overrides, StepParams};
use crate::data::spans::{self, OpenSpan, SpanScope};
use crate::data::{Fields, LmCall, Params, StepCall, StepRunner, StepTrace};
use crate::error::{Error, Result};
use crate::lm::PredictorState;

/// How many steps one run may call ([`StepContext::call`]), at every depth together: a
/// loop that never ends is an error, not a run that never does.
pub const MAX_STEP_CALLS: usize = 1024;

/// How deep calls may nest: a chain step calling a step is depth 1, that step calling another
/// depth 2, ...; a step calling itself without end stops here.
pub const MAX_CALL_DEPTH: usize = 8;

/// A step's module, as a run reaches it.
#[derive(Clone, Copy)]
pub(crate) enum StepModule<'a> {
    Native(&'a dyn DynModule),
    Python(&'a PythonModule),
}

/// What every step of one run shares: the context, the declaration, the run's overrides, the
/// modules that [`StepContext::call`] reaches by name, and the calls made so far.
pub(crate) struct RunScope<'a> {
    pub(crate) ctx: &'a Context,
    pub(crate) spec: &'a ProgramSpec,
    pub(crate) overrides: &'a Overrides,
    /// Every step's module by name; empty when the run was started without them.
    pub(crate) modules: &'a [(&'a str, StepModule<'a>)],
    /// Calls made so far in the run, at every depth.
    pub(crate) calls_made: AtomicUsize,
    /// The traces of finished calls, in the order they finished.
    pub(crate) finished: Mutex<Vec<StepTrace>>,
    /// LM calls whose captured exchanges a python step's worker left out, over its bounds
    /// (the run's trace counts them with its own).
    pub(crate) captures_dropped: AtomicUsize,
    /// Where a streamed run reports its steps.
    pub(crate) events: Option<EventSink>,
}

impl RunScope<'_> {
    /// Reports an event of the run, when it is streamed.
    pub(crate) fn report(&self, event: impl FnOnce() -> ChainEvent) {
        if let Some(events) = &self.events {
            events.send(event());
        }
    }
}

/// What a native step knows of the chain it runs in: its name, its signature, the context
/// (whose LM dspex's own [`Predict`](crate::Predict) calls), where it records the LM calls it
/// makes for the run's trace, and the other steps of its program, which it can
/// [`call`](Self::call) (loops, branches).
pub struct StepContext<'a> {
    spec: &'a StepSpec,
    scope: &'a RunScope<'a>,
    /// 0 for a step run in chain order, the depth of its call otherwise.
    depth: usize,
    lm_calls: Mutex<Vec<LmCall>>,
    /// How many times this step called each step so far.
    calls_of: Mutex<Vec<(String, usize)>>,
}

impl<'a> StepContext<'a> {
    pub(crate) fn new(spec: &'a StepSpec, scope: &'a RunScope<'a>, depth: usize) -> Self {
        Self {
            spec,
            scope,
            depth,
            lm_calls: Mutex::new(Vec::new()),
            calls_of: Mutex::new(Vec::new()),
        }
    }

    /// Where the step's output text goes as it is written, in a streamed run.
    pub(crate) fn events(&self) -> Option<&EventSink> {
        self.scope.events.as_ref()
    }

    /// The step's name.
    pub fn step(&self) -> &str {
        &self.spec.name
    }

    /// The step's signature, as the program declares it.
    pub fn signature(&self) -> &Signature {
        &self.spec.signature
    }

    /// The step's `with` configuration, as the program declares it (checked): for a native
    /// `Predict` or `ChainOfThought`, its adapter settings.
    pub(crate) fn config(&self) -> &[ConfigEntry] {
        &self.spec.config
    }

    /// The context the program runs on.
    pub fn context(&self) -> &Context {
        self.scope.ctx
    }

    /// Records an LM call of the step in the run's trace.
    pub fn record_lm_call(&self, call: LmCall) {
        self.lm_calls.lock().push(call);
    }

    pub(crate) fn into_lm_calls(self) -> Vec<LmCall> {
        self.lm_calls.into_inner()
    }

    /// Runs step `step` of the program on `inputs` (the inputs of its signature, each of its
    /// declared type) and returns its declared outputs: what DSPy's `self.generate_query(..)`
    /// does inside a module's `forward`. The step runs as it would in the chain (a native
    /// module, or a python module in the worker), with the run's values of its bound
    /// variables, and shows in the run's trace as its own [`StepTrace`], whose
    /// [`called_by`](StepTrace::called_by) names this step, the call's index and depth.
    /// Steps declared `called` run only this way.
    ///
    /// Errors, before anything runs: [`Error::StepCall`] for a step the program does not have
    /// or an input field its signature does not take; [`Error::MissingField`] and
    /// [`Error::Field`] for a missing or mistyped input; [`Error::Limit`] past
    /// [`MAX_STEP_CALLS`] calls in one run or [`MAX_CALL_DEPTH`] nested calls. A called step's
    /// failure is [`Error::Step`] naming it (native), or the python step's error.
    pub async fn call(&self, step: &str, inputs: Fields) -> Result<Fields> {
        let scope = self.scope;
        let refuse = |message: String| Error::StepCall {
            caller: self.step().to_owned(),
            step: step.to_owned(),
            message,
        };
        let Some(spec) = scope.spec.steps.iter().find(|s| s.name == step) else {
            let names: Vec<String> = scope
                .spec
                .steps
                .iter()
                .map(|s| format!("`{}`", s.name))
                .collect();
            return Err(refuse(format!(
                "program `{}` has no such step; its steps are {}",
                scope.spec.name,
                names.join(", ")
            )));
        };
        let depth = self.depth + 1;
        if depth > MAX_CALL_DEPTH {
            return Err(Error::limit(
                "MAX_CALL_DEPTH",
                format!(
                    "step `{}` calling step `{step}` would nest calls {depth} deep, over MAX_CALL_DEPTH = {MAX_CALL_DEPTH}",
                    self.step()
                ),
            ));
        }
        let inputs = conform_inputs(spec, inputs, self.step())?;
        let Some(module) = scope
            .modules
            .iter()
            .find_map(|(name, module)| (*name == step).then_some(*module))
        else {
            return Err(refuse(
                "the run was started without its program's modules (`ChainRun::calling`)"
                    .to_owned(),
            ));
        };
        let made = scope.calls_made.fetch_add(1, Ordering::Relaxed);
        if made >= MAX_STEP_CALLS {
            return Err(Error::limit(
                "MAX_STEP_CALLS",
                format!(
                    "step `{}` calling step `{step}` would be call {} of the run, over MAX_STEP_CALLS = {MAX_STEP_CALLS}",
                    self.step(),
                    made + 1
                ),
            ));
        }
        let index = {
            let mut calls_of = self.calls_of.lock();
            match calls_of.iter_mut().find(|(name, _)| name == step) {
                Some((_, count)) => {
                    *count += 1;
                    *count - 1
                }
                None => {
                    calls_of.push((step.to_owned(), 1));
                    0
                }
            }
        };
        // The caller's forward runs in its step's span: the called step's span is its child.
        let parent = spans::current_scope();
        let mut record = execute(scope, spec, module, inputs, depth, &parent).await?;
        let outputs = declared_outputs(spec, &mut record)?;
        scope.report(|| RunEvent::StepFinished {
            step: spec.name.clone(),
            outputs: record.outputs.clone(),
        });
        record.called_by = Some(StepCall {
            caller: self.step().to_owned(),
            index,
            depth,
        });
        scope.finished.lock().push(record);
        Ok(outputs)
    }
}

/// The inputs of a call of `step` by `caller`: each input of its signature, in its canonical
/// form; a field the signature does not take is an error.
fn conform_inputs(step: &StepSpec, mut inputs: Fields, caller: &str) -> Result<Fields> {
    let whose = format!("the input of step `{}` called by `{caller}`", step.name);
    let mut conformed = Fields::new();
    for field in &step.signature.inputs {
        let value = take_declared(&mut inputs, field, &whose)?;
        conformed.insert(field.name.clone(), value);
    }
    if let Some((name, _)) = inputs.iter().next() {
        let names: Vec<String> = step
            .signature
            .input_names()
            .map(|n| format!("`{n}`"))
            .collect();
        return Err(Error::StepCall {
            caller: caller.to_owned(),
            step: step.name.clone(),
            message: format!(
                "its signature takes no input `{name}`; its inputs are {}",
                names.join(", ")
            ),
        });
    }
    Ok(conformed)
}

/// Checks a finished step's declared outputs (present, of their declared type), keeping them
/// in canonical form in its record, and returns them.
pub(crate) fn declared_outputs(step: &StepSpec, record: &mut StepTrace) -> Result<Fields> {
    let whose = format!("the output of step `{}`", step.name);
    let mut outputs = Fields::new();
    for field in &step.signature.outputs {
        let value = take_declared(&mut record.outputs, field, &whose)?;
        record.outputs.insert(field.name.clone(), value.clone());
        outputs.insert(field.name.clone(), value);
    }
    Ok(outputs)
}

/// Runs one step on its inputs (already checked) with the run's values of its bound
/// variables (the run's overrides, and the context's current values of the others, read in
/// one consistent snapshot with their versions): a native module with a [`StepContext`] at `depth`, a python module through its
/// worker, in a span of its own under `parent`. Returns its record, its outputs not yet
/// checked, and no caller.
pub(crate) async fn execute(
    scope: &RunScope<'_>,
    step: &StepSpec,
    module: StepModule<'_>,
    inputs: Fields,
    depth: usize,
    parent: &SpanScope,
) -> Result<StepTrace> {
    let mut span = OpenSpan::step(parent, &step.name);
    execute_in(scope, step, module, inputs, depth, &mut span)
        .await
        .inspect_err(|e| span.record_error(e))
}

async fn execute_in(
    scope: &RunScope<'_>,
    step: &StepSpec,
    module: StepModule<'_>,
    inputs: Fields,
    depth: usize,
    span: &mut OpenSpan,
) -> Result<StepTrace> {
    let bound = scope
        .ctx
        .with_backend(|backend| StepParams::read(backend, scope.overrides, &step.bindings))?;
    let params = bound.params();
    span.record_params(&params);
    scope.report(|| RunEvent::StepStarted {
        step: step.name.clone(),
    });
    let started = Instant::now();
    match module {
        StepModule::Native(module) => {
            let step_context = StepContext::new(step, scope, depth);
            let forward = module.forward_boxed(&step_context, &inputs, &params);
            let outputs =
                spans::in_scope(span.scope(), forward)
                    .await
                    .map_err(|e| Error::Step {
                        step: step.name.clone(),
                        source: Box::new(e),
                    })?;
            let type_name = match &step.kind {
                StepKind::Native { type_name } => type_name.clone(),
                StepKind::Python { module } => module.to_string(),
            };
            Ok(StepTrace {
                step: step.name.clone(),
                runner: StepRunner::Native(type_name),
                inputs,
                outputs,
                params,
                lm_calls: step_context.into_lm_calls(),
                tool_calls: Vec::new(),
                duration: started.elapsed(),
                called_by: None,
            })
        }
        #[cfg(feature = "python")]
        StepModule::Python(module) => {
            // The call sends exactly these values to the worker, and the trace shows them.
            // Boxed: the worker call's future is large, and a run's future, moved as a whole
            // as it is started, would be as large for native steps too.
            let call =
                Box::pin(module.execute(&inputs, &bound, scope.overrides, scope.events.as_ref()));
            let output = spans::in_scope(span.scope(), call).await?;
            scope
                .captures_dropped
                .fetch_add(output.captures_dropped, Ordering::Relaxed);
            Ok(StepTrace {
                step: step.name.clone(),
                runner: StepRunner::Python(output.class),
                inputs,
                outputs: output.outputs,
                params,
                lm_calls: output.lm_calls,
                tool_calls: output.tool_calls,
                duration: started.elapsed(),
                called_by: None,
            })
        }
        #[cfg(not(feature = "python"))]
        StepModule::Python(module) => match *module {},
    }
}

/// Takes `field` out of `fields`, in its canonical form: a `MissingField` error if it is absent,
/// a `Field` error if it is not of its declared type. `whose` says whose fields they are ("the
/// output of step `rate`").
pub(crate) fn take_declared(
    fields: &mut Fields,
    field: &SignatureField,
    whose: &str,
) -> Result<JsonValue> {
    let value = fields
        .remove(&field.name)
        .ok_or_else(|| Error::MissingField {
            field: field.name.clone(),
            context: whose.to_owned(),
        })?;
    field.conform(value).map_err(|error| Error::Field {
        context: whose.to_owned(),
        error: Box::new(error),
    })
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
    /// Runs the step. A module that runs only in its program, because it calls other steps
    /// through its [`StepContext`], implements [`forward_in_step`](Module::forward_in_step)
    /// alone: this default then fails, naming the type.
    fn forward(
        &self,
        inputs: &Fields,
        params: &Params,
    ) -> impl Future<Output = Result<Fields>> + Send {
        let _ = (inputs, params);
        std::future::ready(Err(Error::Internal(format!(
            "`{}` implements only `forward_in_step`: it runs as a step of a program",
            std::any::type_name::<Self>()
        ))))
    }

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
