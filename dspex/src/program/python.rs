//! Python steps: a DSPy module created in the context's Python worker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dspex_core::dspy::TOOLS_KEY;
use dspex_core::program::{ConfigEntry, ConfigValue, ModuleRef, ProgramSpec, StepKind, ToolRef};
use dspex_core::{Signature, Value};
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
/// the module is created in the worker with the step's signature, bindings and `with`
/// configuration, and the worker reads the bound variables from the session before every
/// call. A step whose module comes
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
    signature: Signature,
    bindings: BTreeMap<String, String>,
    /// The `with` configuration, passed to the module's constructor.
    config: Vec<ConfigEntry>,
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
    /// bridging the context and starting its worker first if needed. Generated code reaches it
    /// as `dspex::__private::python_step`.
    pub(crate) async fn attach(ctx: &Context, spec: &ProgramSpec, index: usize) -> Result<Self> {
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
                signature: step.signature.clone(),
                bindings: step
                    .bindings
                    .iter()
                    .map(|b| (b.param.clone(), b.variable.clone()))
                    .collect(),
                config: step.config.clone(),
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
            signature: self.inner.signature.to_string(),
            bindings: self.inner.bindings.clone(),
            config: self.config_for(class)?,
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

    /// The step's `with` configuration as the constructor of `class` takes it: each value in
    /// the canonical form of its key's kind (`temperature: 1` is the float `1.0` for
    /// `Predict`).
    fn config_for(&self, class: &str) -> Result<BTreeMap<String, Value>> {
        self.inner
            .config
            .iter()
            .map(|entry| {
                Ok((
                    entry.key.clone(),
                    self.wire_value(entry, entry.canonical(class))?,
                ))
            })
            .collect()
    }

    /// A configuration value as `CreateModuleRequest.config` carries it. The request holds
    /// variable values, which have no list: the worker reads the tools as one comma-separated
    /// string of dotted paths, and other lists cannot be sent.
    fn wire_value(&self, entry: &ConfigEntry, value: ConfigValue) -> Result<Value> {
        Ok(match value {
            ConfigValue::Integer(i) => Value::Integer(i),
            ConfigValue::Float(x) => Value::Float(x),
            ConfigValue::String(s) => Value::String(s),
            ConfigValue::Boolean(b) => Value::Boolean(b),
            ConfigValue::Tools(tools) if entry.key == TOOLS_KEY => {
                let paths = tools
                    .iter()
                    .map(|tool| match tool {
                        ToolRef::Python(path) => Ok(path.as_str()),
                        // The check refuses Rust tools.
                        ToolRef::Rust(path) => Err(Error::Internal(format!(
                            "step `{}`: Rust tool `{path}` reached the worker",
                            self.inner.step
                        ))),
                    })
                    .collect::<Result<Vec<&str>>>()?;
                Value::String(paths.join(","))
            }
            ConfigValue::Strings(_) | ConfigValue::Tools(_) => {
                return Err(Error::worker(format!(
                    "step `{}`: the worker cannot receive the list value of `with` key `{}`",
                    self.inner.step, entry.key
                )));
            }
        })
    }

    /// Runs the module on `inputs`.
    pub(crate) async fn execute(&self, inputs: &Fields) -> Result<PythonOutput> {
        let worker = self.inner.ctx.worker().await?;
        let (module_id, class) = self.module_for(&worker, &self.class()?).await?;
        let inputs = text_inputs(inputs);
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
            outputs: typed_outputs(&self.inner.step, &self.inner.signature, reply.outputs)?,
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

// The worker takes and returns text for now: these two functions convert between typed fields
// and that text, and go once the wire carries typed values.

/// The step's typed inputs as the text the worker takes: strings as they are, any other value
/// as JSON (DSPy shows the LM either text the same way).
fn text_inputs(inputs: &Fields) -> BTreeMap<String, String> {
    inputs
        .iter()
        .map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (name.to_owned(), text)
        })
        .collect()
}

/// The worker's text outputs read as the types `signature` declares, as DSPy reads an LM's
/// text (a typed DSPy output arrives as its JSON); an output the signature does not declare
/// (DSPy's `reasoning`) stays text. A text that does not read as its type is an error naming
/// the step, the field, the type and the text.
fn typed_outputs(
    step: &str,
    signature: &Signature,
    outputs: impl IntoIterator<Item = (String, String)>,
) -> Result<Fields> {
    outputs
        .into_iter()
        .map(|(name, text)| {
            let value = match signature.outputs.iter().find(|f| f.name == name) {
                Some(field) => field.parse_text(&text).map_err(|error| Error::Field {
                    context: format!("the output of python step `{step}`"),
                    error: Box::new(error),
                })?,
                None => serde_json::Value::String(text),
            };
            Ok((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_values_travel_as_text_and_come_back_typed() {
        let inputs = Fields::from([
            ("question", json!("Why?")),
            ("facts", json!(["a", "b"])),
            ("k", json!(3)),
        ]);
        assert_eq!(
            text_inputs(&inputs),
            BTreeMap::from([
                ("facts".to_owned(), r#"["a","b"]"#.to_owned()),
                ("k".to_owned(), "3".to_owned()),
                ("question".to_owned(), "Why?".to_owned()),
            ])
        );
        let sig = Signature::parse("facts: list[str] -> score: float, label: Literal['yes', 'no']")
            .unwrap();
        let text = |pairs: [(&str, &str); 3]| pairs.map(|(k, v)| (k.to_owned(), v.to_owned()));
        let outputs = typed_outputs(
            "judge",
            &sig,
            text([("score", "0.75"), ("label", "yes"), ("reasoning", "[1]")]),
        )
        .unwrap();
        assert_eq!(outputs.value("score"), Some(&json!(0.75)));
        assert_eq!(outputs.value("label"), Some(&json!("yes")));
        assert_eq!(outputs.value("reasoning"), Some(&json!("[1]")));
        let err = typed_outputs(
            "judge",
            &sig,
            text([("score", "high"), ("label", "yes"), ("reasoning", "")]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the output of python step `judge`: field `score` is declared `float`, but the text `high` is not a number"
        );
    }
}
