//! Python steps: a DSPy module created in the context's Python worker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dspex_core::program::{ModuleRef, ProgramSpec, StepKind};
use parking_lot::Mutex;

use super::fields::Fields;
use super::trace::LmCall;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::worker::{ModuleSpec, WorkerSupervisor};

/// A python step of a program: the handle to its DSPy module in the context's worker. Fields
/// of this type mark python steps in `#[derive(Program)]` structs.
///
/// Attaching a python step upgrades the context to the bridge (once) and starts its worker;
/// the module is created in the worker with the step's signature and bindings, and the worker
/// reads the bound variables from the session before every call. A step whose module comes
/// from a `module` variable (`@var`) creates one module per class the variable names, when the
/// variable first names it.
#[derive(Debug, Clone)]
pub struct PythonModule {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ctx: Context,
    step: String,
    source: ModuleRef,
    signature: String,
    bindings: BTreeMap<String, String>,
    /// Module id prefix, unique in the process.
    id: String,
    /// Class -> (module id, resolved class) of the modules created so far.
    created: Mutex<BTreeMap<String, (String, String)>>,
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

/// What a python step returned.
pub(crate) struct PythonOutput {
    pub(crate) outputs: Fields,
    pub(crate) lm_calls: Vec<LmCall>,
    pub(crate) class: String,
}

impl PythonModule {
    /// Creates the DSPy module of python step `index` of `spec` in the context's worker,
    /// bridging the context and starting its worker first if needed.
    pub async fn attach(ctx: &Context, spec: &ProgramSpec, index: usize) -> Result<Self> {
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
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let this = Self {
            inner: Arc::new(Inner {
                ctx: ctx.clone(),
                step: step.name.clone(),
                source: module.clone(),
                signature: step.signature.to_string(),
                bindings: step
                    .bindings
                    .iter()
                    .map(|b| (b.param.clone(), b.variable.clone()))
                    .collect(),
                id: format!(
                    "{}.{}#{}",
                    spec.name,
                    step.name,
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ),
                created: Mutex::new(BTreeMap::new()),
            }),
        };
        // Create the module now, so that a bad class or signature fails the attach.
        this.module_for(&worker, &this.class()?).await?;
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

    /// The DSPy class the next call uses: fixed, or the current value of the `module` variable.
    fn class(&self) -> Result<String> {
        match &self.inner.source {
            ModuleRef::Builtin(name) | ModuleRef::Path(name) => Ok(name.clone()),
            ModuleRef::Variable(var) => self.inner.ctx.get::<String>(var),
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
        let module_id = format!("{}:{class}", self.inner.id);
        let spec = ModuleSpec {
            module_id: module_id.clone(),
            class: class.to_owned(),
            signature: self.inner.signature.clone(),
            bindings: self.inner.bindings.clone(),
            config: BTreeMap::new(),
        };
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

    /// Runs the module on `inputs`.
    pub(crate) async fn execute(&self, inputs: &Fields) -> Result<PythonOutput> {
        let worker = self.inner.ctx.worker().await?;
        let (module_id, class) = self.module_for(&worker, &self.class()?).await?;
        let inputs: BTreeMap<String, String> = inputs
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        // The versions of the bound variables as of now: the worker reads values at least
        // this new, from its watch-invalidated cache when it has them.
        let min_versions = self
            .inner
            .bindings
            .values()
            .map(|var| Ok((var.clone(), self.inner.ctx.record(var)?.version)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let reply = worker
            .execute(&self.inner.step, &module_id, inputs, min_versions)
            .await?;
        Ok(PythonOutput {
            outputs: reply.outputs.into_iter().collect(),
            lm_calls: reply
                .lm_calls
                .into_iter()
                .map(|c| LmCall {
                    model: c.model,
                    temperature: c.temperature,
                    max_tokens: c.max_tokens,
                    top_p: c.top_p,
                    n: c.n,
                    prompt_tokens: None,
                    completion_tokens: None,
                })
                .collect(),
            class,
        })
    }

    /// Errors about the worker module name the step.
    fn named(&self, e: Error) -> Error {
        match e {
            Error::Python { message, .. } => Error::Python {
                step: self.inner.step.clone(),
                message,
            },
            e => e,
        }
    }
}
