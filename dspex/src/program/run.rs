//! Running a chain: the fields available so far, each step's inputs and bound parameters, and
//! the checks that the program's input and every step's output are what their signatures
//! declare: present, and of the declared type.

use std::time::Instant;

use dspex_core::SignatureField;
use dspex_core::program::{ProgramSpec, StepKind, StepSpec};
use serde_json::Value as JsonValue;
use tracing::{Instrument, debug, debug_span};

use super::module::{DynModule, StepContext};
use super::python::PythonModule;
use super::stream::{EventSink, RunEvent};
use crate::context::{Context, Overrides, StepParams};
use crate::data::{Fields, RunTrace, StepRunner, StepTrace};
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
            events: EventSink::take(),
        })
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

    /// The values of the step's bound variables for this run: the run's overrides, and the
    /// context's current values of the others, read in one consistent snapshot (with their
    /// versions). Every step's parameters come from here: a native step's [`Params`], and what
    /// a python step's call carries to its worker.
    pub(crate) fn step_params(&self, step: &StepSpec) -> Result<StepParams> {
        self.ctx
            .with_backend(|backend| StepParams::read(backend, &self.overrides, &step.bindings))
    }

    /// Keeps the step's declared outputs, in their canonical form (fails if one is missing or
    /// not of its declared type), and records the step.
    fn absorb(&mut self, step: &StepSpec, mut record: StepTrace) -> Result<()> {
        let whose = format!("the output of step `{}`", step.name);
        for field in &step.signature.outputs {
            let value = take_declared(&mut record.outputs, field, &whose)?;
            record.outputs.insert(field.name.clone(), value.clone());
            self.available.insert(field.name.clone(), value);
        }
        debug!(step = %step.name, inputs = %record.inputs, outputs = %record.outputs, "step done");
        if let Some(events) = &self.events {
            events.send(RunEvent::StepFinished {
                step: step.name.clone(),
                outputs: record.outputs.clone(),
            });
        }
        self.trace.steps.push(record);
        Ok(())
    }

    /// Reports that `step` begins, in a streamed run.
    fn started(&self, step: &StepSpec) {
        if let Some(events) = &self.events {
            events.send(RunEvent::StepStarted {
                step: step.name.clone(),
            });
        }
    }

    /// Runs native step `index` with `module`.
    pub async fn native(&mut self, index: usize, module: &dyn DynModule) -> Result<()> {
        let step = self.step(index)?;
        let inputs = self.inputs(step)?;
        let params = self.step_params(step)?.params();
        self.started(step);
        let started = Instant::now();
        let step_context =
            StepContext::new(&step.name, &step.signature, self.ctx, self.events.clone());
        let outputs = module
            .forward_boxed(&step_context, &inputs, &params)
            .instrument(debug_span!("native step", step = %step.name))
            .await
            .map_err(|e| Error::Step {
                step: step.name.clone(),
                source: Box::new(e),
            })?;
        let lm_calls = step_context.into_lm_calls();
        let type_name = match &step.kind {
            StepKind::Native { type_name } => type_name.clone(),
            StepKind::Python { module } => module.to_string(),
        };
        let record = StepTrace {
            step: step.name.clone(),
            runner: StepRunner::Native(type_name),
            inputs,
            outputs,
            params,
            lm_calls,
            tool_calls: Vec::new(),
            duration: started.elapsed(),
        };
        self.absorb(step, record)
    }

    /// Runs python step `index` through its attached module.
    pub async fn python(&mut self, index: usize, module: &PythonModule) -> Result<()> {
        #[cfg(feature = "python")]
        {
            self.python_step(index, module).await
        }
        #[cfg(not(feature = "python"))]
        {
            let _ = index;
            match *module {}
        }
    }

    #[cfg(feature = "python")]
    async fn python_step(&mut self, index: usize, module: &PythonModule) -> Result<()> {
        let step = self.step(index)?;
        let inputs = self.inputs(step)?;
        // The values of the bound variables for this run: the call sends exactly these to the
        // worker, and the trace shows exactly them.
        let bound = self.step_params(step)?;
        self.started(step);
        let started = Instant::now();
        let output = module
            .execute(&inputs, &bound, &self.overrides)
            .instrument(debug_span!("python step", step = %step.name))
            .await?;
        let params = bound.params();
        if let Some(events) = &self.events {
            events.whole_fields(&step.name, &step.signature, &output.outputs);
        }
        let record = StepTrace {
            step: step.name.clone(),
            runner: StepRunner::Python(output.class),
            inputs,
            outputs: output.outputs,
            params,
            lm_calls: output.lm_calls,
            tool_calls: output.tool_calls,
            duration: started.elapsed(),
        };
        self.absorb(step, record)
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
            .collect::<Result<Fields>>()?;
        Ok((outputs, self.trace))
    }
}

/// Takes `field` out of `fields`, in its canonical form: a `MissingField` error if it is absent,
/// a `Field` error if it is not of its declared type. `whose` says whose fields they are ("the
/// output of step `rate`").
fn take_declared(fields: &mut Fields, field: &SignatureField, whose: &str) -> Result<JsonValue> {
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
