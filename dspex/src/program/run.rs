//! Running a chain: the fields available so far, each step's inputs and bound parameters, and
//! the checks that the program's input and every step's output are what their signatures
//! declare: present, and of the declared type.

use std::sync::atomic::AtomicUsize;

use dspex_core::program::{ProgramSpec, StepSpec};
use parking_lot::Mutex;
use tracing::debug;

use super::module::{DynModule, RunScope, StepModule, declared_outputs, execute, take_declared};
use super::python::PythonModule;
use super::stream::{EventSink, RunEvent};
use super::traits::BaseProgram;
use crate::context::{Context, Overrides};
use crate::data::spans::OpenSpan;
use crate::data::{Fields, RunTrace};
use crate::error::{Error, Result};

/// One execution of a program's chain. Generated `run_fields` methods and the runtime builder
/// drive it step by step, in chain order.
pub struct ChainRun<'p> {
    ctx: &'p Context,
    spec: &'p ProgramSpec,
    /// This run's values of some variables (validated), in place of the context's.
    overrides: Overrides,
    available: Fields,
    trace: RunTrace,
    /// Every step's module by name, for the calls of native steps.
    modules: Vec<(&'p str, StepModule<'p>)>,
    /// Calls made by native steps so far ([`MAX_STEP_CALLS`](super::module::MAX_STEP_CALLS)).
    calls_made: usize,
    /// The run's span (`invoke_workflow {program}`), parent of its steps' spans; it ends
    /// when the run does.
    span: OpenSpan,
    /// Where a streamed run reports its steps.
    events: Option<EventSink>,
}

impl<'p> ChainRun<'p> {
    /// Starts a run; fails if a program input is missing or not of its declared type.
    pub fn start(ctx: &'p Context, spec: &'p ProgramSpec, input: Fields) -> Result<Self> {
        Self::start_with(ctx, spec, &Overrides::new(), input)
    }

    /// Starts a run in which the variables of `overrides` take those values instead of the
    /// context's; fails, before any step runs, if an override is invalid or a program input is
    /// missing or not of its declared type.
    pub fn start_with(
        ctx: &'p Context,
        spec: &'p ProgramSpec,
        overrides: &Overrides,
        mut input: Fields,
    ) -> Result<Self> {
        let overrides = if overrides.is_empty() {
            Overrides::new()
        } else {
            overrides.validate(ctx, spec)?
        };
        let whose = format!("the input of program `{}`", spec.name);
        for field in spec.input_fields() {
            let value = take_declared(&mut input, field, &whose)?;
            input.insert(field.name.clone(), value);
        }
        Ok(Self {
            ctx,
            spec,
            overrides,
            available: input,
            trace: RunTrace::default(),
            modules: Vec::new(),
            calls_made: 0,
            span: OpenSpan::run(&spec.name),
            events: EventSink::take(),
        })
    }

    /// Gives the run the modules of `program`'s steps, which its native steps can then
    /// [`call`](crate::StepContext::call) by name.
    #[must_use]
    pub fn calling(mut self, program: &'p dyn BaseProgram) -> Self {
        let native = program
            .program_native_steps()
            .into_iter()
            .map(|(name, module)| (name, StepModule::Native(module)));
        let python = program
            .program_python_steps()
            .into_iter()
            .map(|module| (module.step(), StepModule::Python(module)));
        self.modules = native.chain(python).collect();
        self
    }

    fn step(&self, index: usize) -> Result<&'p StepSpec> {
        self.spec.steps.get(index).ok_or_else(|| {
            Error::Internal(format!("program `{}` has no step {index}", self.spec.name))
        })
    }

    /// The step's input fields, picked from what is available.
    fn inputs(&self, step: &StepSpec) -> Result<Fields> {
        step.signature
            .input_names()
            .map(|name| {
                let value = self
                    .available
                    .value(name)
                    .ok_or_else(|| Error::MissingField {
                        field: name.to_owned(),
                        context: format!("the input of step `{}`", step.name),
                    })?;
                Ok((name.to_owned(), value.clone()))
            })
            .collect()
    }

    /// Runs step `index` with `module` in chain order: its inputs from what is available, its
    /// declared outputs kept (fails if one is missing or not of its declared type), its record
    /// after those of the steps it called.
    async fn run_step(&mut self, index: usize, module: StepModule<'_>) -> Result<()> {
        let step = self.step(index)?;
        let inputs = self.inputs(step)?;
        let scope = RunScope {
            ctx: self.ctx,
            spec: self.spec,
            overrides: &self.overrides,
            modules: &self.modules,
            calls_made: AtomicUsize::new(self.calls_made),
            finished: Mutex::new(Vec::new()),
            captures_dropped: AtomicUsize::new(0),
            events: self.events.clone(),
        };
        let record = execute(&scope, step, module, inputs, 0, &self.span.scope()).await;
        self.calls_made = scope.calls_made.into_inner();
        for call in scope.finished.into_inner() {
            self.trace.push(call);
        }
        self.trace.captures_dropped += scope.captures_dropped.into_inner();
        let outputs = record
            .and_then(|mut record| Ok((declared_outputs(step, &mut record)?, record)))
            .inspect_err(|e| self.span.record_error(e));
        let (outputs, record) = outputs?;
        debug!(step = %step.name, inputs = %record.inputs, outputs = %record.outputs, "step done");
        if let Some(events) = &self.events {
            events.send(RunEvent::StepFinished {
                step: step.name.clone(),
                outputs: record.outputs.clone(),
            });
        }
        for (name, value) in outputs {
            self.available.insert(name, value);
        }
        self.trace.push(record);
        Ok(())
    }

    /// Runs native step `index` with `module`.
    pub async fn native(&mut self, index: usize, module: &dyn DynModule) -> Result<()> {
        self.run_step(index, StepModule::Native(module)).await
    }

    /// Runs python step `index` through its attached module.
    pub async fn python(&mut self, index: usize, module: &PythonModule) -> Result<()> {
        self.run_step(index, StepModule::Python(module)).await
    }

    /// Ends the run with the program's outputs.
    pub fn finish(self) -> Result<Fields> {
        self.finish_traced().map(|(outputs, _)| outputs)
    }

    /// Ends the run with the program's outputs and the trace of every step.
    pub fn finish_traced(mut self) -> Result<(Fields, RunTrace)> {
        let outputs = self
            .spec
            .output_names()
            .into_iter()
            .map(|name| {
                let value = self
                    .available
                    .remove(&name)
                    .ok_or_else(|| Error::MissingField {
                        field: name.clone(),
                        context: format!("the output of program `{}`", self.spec.name),
                    })?;
                Ok((name, value))
            })
            .collect::<Result<Fields>>()
            .inspect_err(|e| self.span.record_error(e))?;
        Ok((outputs, self.trace))
    }
}
