//! Python steps: a DSPy module created in the context's Python workers, called with the values
//! of its bound variables for the run (read in one snapshot, or the run's overrides) and with
//! its inputs and outputs typed by its signature.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dspex_core::Signature;
use dspex_core::dspy::{ConfigKind, TOOLS_KEY};
use dspex_core::program::{
    Binding, ConfigEntry, ConfigValue, ModuleRef, ProgramSpec, StepKind, ToolRef,
};
use parking_lot::Mutex;

use super::compiled::CompiledState;
use super::stream::EventSink;
use crate::context::{Context, Overrides, StepParams};
use crate::data::spans;
use crate::data::{Fields, LmCall, LmExchange, LmMessage, ToolCall};
use crate::error::{Error, Result};
pub(crate) use crate::tools::ToolDef;
use crate::wire::convert::{
    extra_field_from_proto, field_from_proto, field_to_proto, module_config_to_proto,
    value_to_proto,
};
use crate::wire::proto as pb;
use crate::worker::{ModuleSpec, WorkerSupervisor};

/// A python step of a program: the handle to its DSPy module in the context's worker. Fields
/// of this type mark python steps in `#[derive(Program)]` structs.
///
/// Attaching a python step upgrades the context to the bridge (once) and starts its workers;
/// the module is created in every worker process with the step's signature, bindings and
/// `with` configuration. Each call carries the step's inputs, typed by its signature, and the
/// values of its bound variables for the run (read in one snapshot when the step runs, or the
/// run's overrides): the worker applies them to that call only. A step whose module comes
/// from a `module` variable (`@var`) creates one module per class the variable names (in the
/// context or in a run's overrides), when the variable first names it.
#[derive(Debug, Clone)]
pub struct PythonModule {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ctx: Context,
    step: String,
    source: ModuleRef,
    signature: Signature,
    bindings: BTreeMap<String, String>,
    /// The `with` configuration, passed to the module's constructor (but `tools`).
    config: Vec<ConfigEntry>,
    /// The module's tools, in declared order, for the wire.
    tools: Vec<pb::ToolSpec>,
    /// Module id prefix, unique in the process.
    id: String,
    /// Class -> (module id, resolved class) of the modules created so far.
    created: Mutex<BTreeMap<String, (String, String)>>,
    /// The step's bindings as declared, to read their values for a compilation.
    step_bindings: Vec<Binding>,
    /// The compiled state loaded into the step's module of its class, in every worker (and
    /// again in a restarted one: it is part of the module's spec).
    compiled: Mutex<Option<CompiledState>>,
}

impl Drop for Inner {
    /// The last handle of a python step releases its modules in the worker.
    fn drop(&mut self) {
        if let Some(worker) = self.ctx.running_worker() {
            for (module_id, _) in self.created.get_mut().values() {
                worker.drop_module(module_id);
            }
        }
    }
}

/// What compiling a python step's module needs ([`PythonModule::compile_target`]).
pub(crate) struct CompileTarget {
    /// The context's worker.
    pub(crate) worker: Arc<WorkerSupervisor>,
    /// The step's module of its class now, in the worker.
    pub(crate) module_id: String,
    /// That class.
    pub(crate) class: String,
    /// The values of the step's bound variables now, as a call carries them.
    pub(crate) bindings: Vec<pb::BoundValue>,
}

/// What a python step returned.
pub(crate) struct PythonOutput {
    pub(crate) outputs: Fields,
    pub(crate) lm_calls: Vec<LmCall>,
    /// How many of its LM calls' captured exchanges the worker left out, over the bounds it
    /// was given.
    pub(crate) captures_dropped: usize,
    pub(crate) tool_calls: Vec<ToolCall>,
    pub(crate) class: String,
}

impl PythonModule {
    /// Creates the DSPy module of python step `index` of `spec` in the context's worker,
    /// bridging the context and starting its worker first if needed. Generated code reaches it
    /// as `dspex::__private::python_step`.
    ///
    /// `rust_tools` are the Rust tools of the step's `tools`, in the order the step lists them:
    /// each is registered as a callback of the context's bridge session.
    pub(crate) async fn attach(
        ctx: &Context,
        spec: &ProgramSpec,
        index: usize,
        rust_tools: &[&'static ToolDef],
    ) -> Result<Self> {
        let step = spec.steps.get(index).ok_or_else(|| {
            Error::Internal(format!("program `{}` has no step {index}", spec.name))
        })?;
        let StepKind::Python { module } = &step.kind else {
            return Err(Error::Internal(format!(
                "step `{}` of program `{}` is not a python step",
                step.name, spec.name
            )));
        };
        ctx.mark_requires_bridge();
        // Starts the worker (bridging the context first) if it is not running.
        let worker = ctx.worker().await?;
        let tools = register_tools(ctx, &step.name, &step.config, rust_tools)?;
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let this = Self {
            inner: Arc::new(Inner {
                ctx: ctx.clone(),
                step: step.name.clone(),
                source: module.clone(),
                signature: step.signature.clone(),
                bindings: step
                    .bindings
                    .iter()
                    .map(|b| (b.param.clone(), b.variable.clone()))
                    .collect(),
                config: step
                    .config
                    .iter()
                    .filter(|entry| entry.key != TOOLS_KEY)
                    .cloned()
                    .collect(),
                tools,
                id: format!(
                    "{}.{}#{}",
                    spec.name,
                    step.name,
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ),
                created: Mutex::new(BTreeMap::new()),
                step_bindings: step.bindings.clone(),
                compiled: Mutex::new(None),
            }),
        };
        // Create the module now, so that a bad class or signature fails the attach.
        this.module_for(&worker, &this.class(&Overrides::new())?)
            .await?;
        Ok(this)
    }

    /// The step name.
    pub fn step(&self) -> &str {
        &self.inner.step
    }

    /// The context whose worker runs the module.
    pub fn context(&self) -> &Context {
        &self.inner.ctx
    }

    /// The DSPy class a call uses: fixed, or the value of the `module` variable (the run's
    /// override of it, else the context's current value).
    fn class(&self, overrides: &Overrides) -> Result<String> {
        match &self.inner.source {
            ModuleRef::Builtin(name) | ModuleRef::Path(name) => Ok(name.clone()),
            ModuleRef::Variable(var) => match overrides.get(var) {
                Some(value) => value.as_str().map(str::to_owned).ok_or_else(|| {
                    Error::Internal(format!(
                        "the override of module variable `{var}` is not a string"
                    ))
                }),
                None => self.inner.ctx.get::<String>(var),
            },
        }
    }

    /// The worker module for `class` in `worker`, created on first use (and again in a worker
    /// started after `shutdown_worker`).
    async fn module_for(&self, worker: &WorkerSupervisor, class: &str) -> Result<(String, String)> {
        if let Some(created) = self.inner.created.lock().get(class).cloned()
            && worker.has_module(&created.0)
        {
            return Ok(created);
        }
        let compiled = self.inner.compiled.lock().clone();
        let spec = self.module_spec(class, compiled.as_ref())?;
        let module_id = spec.module_id.clone();
        let resolved = worker
            .create_module(spec)
            .await
            .map_err(|e| self.named(e))?;
        let created = (module_id, resolved);
        self.inner
            .created
            .lock()
            .insert(class.to_owned(), created.clone());
        Ok(created)
    }

    /// The spec of the step's module for `class`, with `compiled` loaded into it when it is a
    /// state of that class.
    fn module_spec(&self, class: &str, compiled: Option<&CompiledState>) -> Result<ModuleSpec> {
        let state = match compiled {
            Some(compiled) if compiled.class == class => {
                Some(compiled.state_text(&self.inner.step)?)
            }
            _ => None,
        };
        Ok(ModuleSpec {
            module_id: format!("{}:{class}", self.inner.id),
            class: class.to_owned(),
            signature: self.inner.signature.to_string(),
            bindings: self.inner.bindings.clone(),
            config: self.config_for(class)?,
            tools: self.inner.tools.clone(),
            state,
        })
    }

    /// The module class the step runs now (with no overrides).
    pub(crate) fn current_class(&self) -> Result<String> {
        self.class(&Overrides::new())
    }

    /// The compiled state the step's module runs with, if any.
    pub fn compiled_state(&self) -> Option<CompiledState> {
        self.inner.compiled.lock().clone()
    }

    /// The module class a compiled state must be for: the step's class, or for a step whose
    /// class comes from a `module` variable, any class (the state is used when the variable
    /// names its class).
    fn check_state_class(&self, state: &CompiledState) -> Result<()> {
        match &self.inner.source {
            ModuleRef::Builtin(name) | ModuleRef::Path(name) if *name != state.class => {
                Err(Error::program_state(format!(
                    "step `{}` runs a `{name}`, but the compiled state is a `{}`'s",
                    self.inner.step, state.class
                )))
            }
            _ => Ok(()),
        }
    }

    /// Checks that `state` loads into the step's module (in a worker, into a module of its
    /// own), changing nothing.
    pub(crate) async fn check_state(&self, state: &CompiledState) -> Result<()> {
        self.check_state_class(state)?;
        let worker = self.inner.ctx.worker().await?;
        let spec = self.module_spec(&state.class, Some(state))?;
        worker.check_module(&spec).await.map_err(|e| match e {
            Error::Python { message, .. } | Error::Worker { message, .. } => {
                Error::program_state(format!(
                    "the compiled state of step `{}` does not load: {message}",
                    self.inner.step
                ))
            }
            e => e,
        })
    }

    /// The DSPy state of the step's module as created, without any compiled or loaded state
    /// (its signature's instructions and fields, no demos), from a worker.
    pub(crate) async fn initial_state(&self) -> Result<serde_json::Value> {
        let class = self.class(&Overrides::new())?;
        let worker = self.inner.ctx.worker().await?;
        let spec = self.module_spec(&class, None)?;
        let text = worker
            .probe_module(&spec)
            .await
            .map_err(|e| self.named(e))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::Internal(format!(
                "the worker returned a state of step `{}` that is not JSON: {e}",
                self.inner.step
            ))
        })
    }

    /// Makes `state` (checked by [`check_state`](Self::check_state)) the step's compiled
    /// state, or removes it (`None`): the step's module of that class is created again with
    /// it in every worker process, and a restarted worker gets it too.
    pub(crate) async fn set_compiled_state(&self, state: Option<CompiledState>) -> Result<()> {
        let previous = std::mem::replace(&mut *self.inner.compiled.lock(), state.clone());
        let classes: Vec<String> = [previous, state]
            .into_iter()
            .flatten()
            .map(|s| s.class)
            .collect();
        let worker = self.inner.ctx.worker().await?;
        for class in classes {
            if self.inner.created.lock().contains_key(&class) {
                self.inner.created.lock().remove(&class);
                self.module_for(&worker, &class).await?;
            }
        }
        Ok(())
    }

    /// What compiling the step's module needs: the worker, the module of the step's class now
    /// (created if needed), and the values of its bound variables now.
    pub(crate) async fn compile_target(&self) -> Result<CompileTarget> {
        let class = self.class(&Overrides::new())?;
        let worker = self.inner.ctx.worker().await?;
        let (module_id, _) = self.module_for(&worker, &class).await?;
        let params = self.inner.ctx.with_backend(|backend| {
            StepParams::read(backend, &Overrides::new(), &self.inner.step_bindings)
        })?;
        Ok(CompileTarget {
            worker,
            module_id,
            class,
            bindings: bound_to_proto(&params),
        })
    }

    /// The step's signature.
    pub(crate) fn signature(&self) -> &Signature {
        &self.inner.signature
    }

    /// The step's `with` configuration as the constructor of `class` takes it, for the wire:
    /// each value in the canonical form of its key's kind (`temperature: 1` is the float `1.0`
    /// for `Predict`), lists and Python tools as lists of strings.
    fn config_for(&self, class: &str) -> Result<BTreeMap<String, pb::ConfigValue>> {
        self.inner
            .config
            .iter()
            .map(|entry| {
                let value =
                    module_config_to_proto(&entry.key, &entry.canonical(class)).map_err(|e| {
                        Error::Internal(format!("step `{}`: `with` {e}", self.inner.step))
                    })?;
                Ok((entry.key.clone(), value))
            })
            .collect()
    }

    /// Runs the module on `inputs` with the bound values of `params`; the class of an `@var`
    /// step is the override's when `overrides` has one. With `events` (a streamed run), the
    /// call is streamed: the text of the step's `str` outputs and `reasoning` goes to `events`
    /// as the worker's LM writes it.
    pub(crate) async fn execute(
        &self,
        inputs: &Fields,
        params: &StepParams,
        overrides: &Overrides,
        events: Option<&EventSink>,
    ) -> Result<PythonOutput> {
        let worker = self.inner.ctx.worker().await?;
        let (module_id, class) = self.module_for(&worker, &self.class(overrides)?).await?;
        let request = pb::ExecuteModuleRequest {
            module_id,
            inputs: self.wire_inputs(inputs)?,
            bindings: bound_to_proto(params),
            call_id: next_call_id(),
            demos_json: super::run_demos::run_demos_json(&self.inner.step)?,
            rollout_id: super::rollout::rollout(),
        };
        // The run's tools see its values and are recorded in its trace while the call runs.
        let ctx = &self.inner.ctx;
        let scope = ctx
            .callbacks()
            .open_scope(&request.call_id, Arc::new(ctx.clone()), overrides);
        let step = &self.inner.step;
        let reply = match events {
            Some(events) => {
                let chunk = |c: pb::OutputChunk| events.chunk(step, c.field, c.text);
                worker.execute_stream(step, request, chunk).await?
            }
            None => worker.execute(step, request).await?,
        };
        let tool_calls = scope.take_calls();
        drop(scope);
        let provider = ctx.lm_config().kind.provider_name();
        let capture = ctx.lm_config().capture;
        let captures_dropped = reply
            .lm_calls
            .iter()
            .filter(|c| capture && c.exchange_left_out)
            .count();
        Ok(PythonOutput {
            outputs: self.typed_outputs(reply.outputs)?,
            lm_calls: reply
                .lm_calls
                .into_iter()
                .map(|c| {
                    let call = LmCall {
                        model: c.model,
                        temperature: c.temperature,
                        max_tokens: c.max_tokens,
                        top_p: c.top_p,
                        n: c.n,
                        prompt_tokens: c.prompt_tokens,
                        completion_tokens: c.completion_tokens,
                        exchange: None,
                    };
                    // The worker captures for the trace or for telemetry (contents); the trace
                    // keeps the exchange only when the LM captures messages.
                    let exchange = c.exchange.map(exchange_from_proto);
                    if let (Some(start), Some(end)) = (c.start_unix_nano, c.end_unix_nano) {
                        let contents = exchange
                            .as_ref()
                            .map(|e| (exchange_messages_json(e), e.reply.clone()));
                        spans::record_finished_lm_call(provider, &call, start, end, contents);
                    }
                    LmCall {
                        exchange: exchange.filter(|_| capture),
                        ..call
                    }
                })
                .collect(),
            captures_dropped,
            tool_calls,
            class,
        })
    }

    /// The step's inputs for the wire, each as its declared type carries it.
    fn wire_inputs(&self, inputs: &Fields) -> Result<HashMap<String, pb::FieldValue>> {
        self.inner
            .signature
            .inputs
            .iter()
            .filter_map(|field| inputs.value(&field.name).map(|value| (field, value)))
            .map(|(field, value)| {
                let wire = field_to_proto(field, value).map_err(|error| Error::Field {
                    context: format!("the input of python step `{}`", self.inner.step),
                    error: Box::new(error),
                })?;
                Ok((field.name.clone(), wire))
            })
            .collect()
    }

    /// The worker's outputs, the declared ones read as their declared types; an output the
    /// signature does not declare (DSPy's `reasoning`) stays text. An output not of its
    /// declared type is an error naming the step, the field, the type and the value.
    fn typed_outputs(
        &self,
        outputs: impl IntoIterator<Item = (String, pb::FieldValue)>,
    ) -> Result<Fields> {
        outputs
            .into_iter()
            .map(|(name, value)| {
                let value = match self.inner.signature.outputs.iter().find(|f| f.name == name) {
                    Some(field) => {
                        field_from_proto(field, value).map_err(|error| Error::Field {
                            context: format!("the output of python step `{}`", self.inner.step),
                            error: Box::new(error),
                        })?
                    }
                    None => extra_field_from_proto(value),
                };
                Ok((name, value))
            })
            .collect()
    }

    /// Errors about the worker module name the step.
    fn named(&self, e: Error) -> Error {
        match e {
            Error::Python {
                exception, message, ..
            } => Error::Python {
                step: self.inner.step.clone(),
                exception,
                message,
            },
            e => e,
        }
    }
}

/// The tools of a step for the wire, in the order its `tools` lists them, pairing each Rust
/// path with its definition (`rust_tools`, in the same order) and registering each Rust tool as
/// a callback of the context's session. A Rust tool that reads a variable the context does not
/// hold is an error naming both.
fn register_tools(
    ctx: &Context,
    step: &str,
    config: &[ConfigEntry],
    rust_tools: &[&'static ToolDef],
) -> Result<Vec<pb::ToolSpec>> {
    use pb::tool_spec::Kind;
    // The checked value of `tools`: a list of tools (a list of strings is Python tools).
    let listed: Vec<ToolRef> = config
        .iter()
        .filter(|entry| entry.key == TOOLS_KEY)
        .filter_map(|entry| match ConfigKind::Tools.check(&entry.value) {
            Ok(ConfigValue::Tools(tools)) => Some(tools),
            _ => None,
        })
        .flatten()
        .collect();
    let rust_listed = listed
        .iter()
        .filter(|t| matches!(t, ToolRef::Rust(_)))
        .count();
    if rust_listed != rust_tools.len() {
        return Err(Error::Internal(format!(
            "step `{step}` lists {rust_listed} Rust tools but {} were given",
            rust_tools.len()
        )));
    }
    let mut rust = rust_tools.iter();
    let mut specs = Vec::new();
    for tool in &listed {
        let kind = match tool {
            ToolRef::Python(path) => Kind::Python(path.clone()),
            ToolRef::Rust(_) => {
                let def = *rust
                    .next()
                    .ok_or_else(|| Error::internal("a Rust tool without its definition"))?;
                for variable in def.variables {
                    if !ctx.exists(variable) {
                        return Err(Error::InvalidOption {
                            option: format!("tool `{}` of step `{step}`", def.name),
                            message: format!(
                                "it reads variable `{variable}`, which the context does not hold; declare it in the program"
                            ),
                        });
                    }
                }
                ctx.register_callback_now(def.callback())?;
                Kind::Rust(def.spec()?)
            }
        };
        specs.push(pb::ToolSpec { kind: Some(kind) });
    }
    Ok(specs)
}

/// An LM call's captured messages and reply, as the worker sent them.
fn exchange_from_proto(exchange: pb::LmExchange) -> LmExchange {
    LmExchange {
        messages: exchange
            .messages
            .into_iter()
            .map(|m| LmMessage {
                role: m.role,
                content: m.content,
            })
            .collect(),
        reply: exchange.reply,
    }
}

/// An exchange's messages as the JSON list of `{"role", "content"}` objects that LM call spans
/// carry (the form the native lane sends).
fn exchange_messages_json(exchange: &LmExchange) -> String {
    let messages: Vec<_> = exchange
        .messages
        .iter()
        .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
        .collect();
    serde_json::Value::Array(messages).to_string()
}

/// The values of a step's bound parameters, as a call carries them.
fn bound_to_proto(params: &StepParams) -> Vec<pb::BoundValue> {
    params
        .bound()
        .iter()
        .map(|b| pb::BoundValue {
            param: b.param.clone(),
            variable: b.variable.clone(),
            version: b.version.unwrap_or(0),
            value: Some(value_to_proto(&b.value)),
        })
        .collect()
}

/// A call id unique in this process: the process id and a counter, in hex.
pub(crate) fn next_call_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{:x}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
