//! The runtime builder: the same kind of program as the macros declare, built from values and
//! checked at build time by the same `dspex-core` code the macros run at compile time.

use std::any::TypeId;
use std::fmt;
use std::sync::Arc;

use futures_util::stream::BoxStream;

use dspex_core::dspy::TOOLS_KEY;
use dspex_core::native;
use dspex_core::program::{
    Binding, ConfigEntry, ConfigValue, Location, ModuleRef, ProgramIssue, ProgramProblem,
    ProgramSpec, StepKind, StepSpec, ToolRef,
};
use dspex_core::{Signature, VariableSpec};

use super::module::{BoxFuture, DynModule, Module};
use super::predict::{ChainOfThought, Predict};
use super::prepare::{context_for, prepare_context};
use super::python::{PythonModule, ToolDef};
use super::run::ChainRun;
use super::stream::{RunEvent, stream_run};
use super::traits::BaseProgram;
use crate::context::{Context, Overrides};
use crate::data::{Fields, RunTrace};
use crate::error::{Error, Result};
#[cfg(feature = "python")]
use crate::tools::Tool;

/// One step for [`ProgramBuilder::step`] or [`RunningProgram::add_step`].
///
/// ```
/// use dspex::{Fields, Module, Params, Result, Step};
///
/// #[derive(Default)]
/// struct Classify;
/// impl Module for Classify {
///     async fn forward(&self, _: &Fields, _: &Params) -> Result<Fields> {
///         Ok(Fields::from([("category", "general")]))
///     }
/// }
///
/// let native = Step::native("classify", "question -> category", Classify).bind_as("model", "llm_model");
/// let python = Step::python("answer", "ChainOfThought", "question, category -> answer").bind("temperature");
/// let agent = Step::python("agent", "ReAct", "question -> answer")
///     .with("max_iters", 5)
///     .with("tools", ["my_pkg.tools.search"]);
/// ```
///
/// A step is checked when the program is built ([`ProgramBuilder::build`],
/// [`RunningProgram::add_step`]), with the rules and messages of the macros.
pub struct Step {
    name: String,
    signature: String,
    kind: StepDef,
    bindings: Vec<Binding>,
    config: Vec<ConfigEntry>,
    /// The Rust tools of `tools`, in the order it lists them.
    rust_tools: Vec<&'static ToolDef>,
    /// Run only when a native step calls it.
    called: bool,
}

enum StepDef {
    Native {
        type_name: String,
        module: Arc<dyn DynModule>,
        /// Whether the module is dspex's own `Predict` or `ChainOfThought`, which a type of
        /// the user's may be named like.
        dspex_lm: bool,
    },
    Python {
        module: ModuleRef,
    },
}

impl Step {
    /// A native step running `module`.
    pub fn native<M: Module>(name: &str, signature: &str, module: M) -> Self {
        let type_name = std::any::type_name::<M>();
        let dspex_lm =
            [TypeId::of::<Predict>(), TypeId::of::<ChainOfThought>()].contains(&TypeId::of::<M>());
        Self {
            name: name.to_owned(),
            signature: signature.to_owned(),
            kind: StepDef::Native {
                type_name: type_name
                    .rsplit("::")
                    .next()
                    .unwrap_or(type_name)
                    .to_owned(),
                module: Arc::new(module),
                dspex_lm,
            },
            bindings: Vec::new(),
            config: Vec::new(),
            rust_tools: Vec::new(),
            called: false,
        }
    }

    /// A python step running a DSPy module: a known name (`"ChainOfThought"`), a dotted path
    /// (`"my_pkg.mod.Class"`), or `"@var"` for the class held by a `module` variable.
    pub fn python(name: &str, module: &str, signature: &str) -> Self {
        Self {
            name: name.to_owned(),
            signature: signature.to_owned(),
            kind: StepDef::Python {
                module: ModuleRef::parse(module),
            },
            bindings: Vec::new(),
            config: Vec::new(),
            rust_tools: Vec::new(),
            called: false,
        }
    }

    /// Makes the step one that runs only when a native step of the program calls it
    /// ([`StepContext::call`](crate::StepContext::call)), never in chain order: what `called`
    /// does in `dspex_program!`. Its inputs need not flow along the chain, and its outputs do
    /// not flow on.
    #[must_use]
    pub fn called(mut self) -> Self {
        self.called = true;
        self
    }

    /// Binds `variable` to the module parameter of the same name.
    #[must_use]
    pub fn bind(mut self, variable: &str) -> Self {
        self.bindings.push(Binding::same_name(variable));
        self
    }

    /// Binds `variable` to the module parameter `param`.
    #[must_use]
    pub fn bind_as(mut self, variable: &str, param: &str) -> Self {
        self.bindings.push(Binding::new(variable, param));
        self
    }

    /// Passes `key: value` to the constructor of a python step's DSPy module, as `with { key:
    /// value }` does in `dspex_program!`: `with("max_iters", 5)`, `with("interpreter",
    /// "local")`, `with("tools", ["my_pkg.tools.search"])`. The keys a known module takes and
    /// the values each accepts are those of [`dspy::MODULES`](crate::spec::dspy::MODULES);
    /// a module named by dotted path takes any key. A native [`Predict`] or [`ChainOfThought`]
    /// step takes the keys of [`native::CONFIG`](crate::spec::native::CONFIG):
    /// `with("adapter", "json")`, `with("json_fallback", false)`.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<ConfigValue>) -> Self {
        self.config.push(ConfigEntry::new(key, value));
        self
    }

    /// Gives the step's agent the Rust tool `T` (a `#[dspex::tool]` function), after the tools
    /// listed so far: what `tools: [search_docs]` does in `dspex_program!`.
    ///
    /// ```
    /// use dspex::Step;
    ///
    /// /// Adds two numbers.
    /// #[dspex::tool]
    /// fn add(a: i64, b: i64) -> dspex::Result<i64> {
    ///     Ok(a + b)
    /// }
    ///
    /// let agent = Step::python("agent", "ReAct", "question -> answer")
    ///     .tool::<add>()
    ///     .python_tool("my_pkg.tools.search");
    /// ```
    #[must_use]
    #[cfg(feature = "python")]
    pub fn tool<T: Tool>(mut self) -> Self {
        let def = T::def();
        self.push_tool(ToolRef::Rust(def.name.to_owned()));
        self.rust_tools.push(def);
        self
    }

    /// Gives the step's agent the Python callable at dotted path `path`, after the tools listed
    /// so far.
    #[must_use]
    pub fn python_tool(mut self, path: &str) -> Self {
        self.push_tool(ToolRef::Python(path.to_owned()));
        self
    }

    /// Appends `tool` to the step's `tools` entry (created first if needed).
    fn push_tool(&mut self, tool: ToolRef) {
        let entry = match self.config.iter().position(|e| e.key == TOOLS_KEY) {
            Some(i) => &mut self.config[i],
            None => {
                self.config
                    .push(ConfigEntry::new(TOOLS_KEY, ConfigValue::Tools(Vec::new())));
                let last = self.config.len() - 1;
                &mut self.config[last]
            }
        };
        entry.value = match std::mem::replace(&mut entry.value, ConfigValue::Tools(Vec::new())) {
            ConfigValue::Tools(mut tools) => {
                tools.push(tool);
                ConfigValue::Tools(tools)
            }
            ConfigValue::Strings(paths) => {
                let mut tools: Vec<ToolRef> = paths.into_iter().map(ToolRef::Python).collect();
                tools.push(tool);
                ConfigValue::Tools(tools)
            }
            // Not a list: kept as written, for the check to report.
            other => other,
        };
    }

    fn compile(&self) -> std::result::Result<(StepSpec, Option<Arc<dyn DynModule>>), String> {
        let signature =
            Signature::parse(&self.signature).map_err(|e| format!("step `{}`: {e}", self.name))?;
        let (kind, module) = match &self.kind {
            StepDef::Native {
                type_name,
                module,
                dspex_lm,
            } => {
                // Checked by type here, since a type of the user's may have the name.
                let lm_key = self.config.iter().find(|e| native::is_config_key(&e.key));
                if let Some(entry) = lm_key
                    && !dspex_lm
                {
                    let problem = ProgramProblem::NativeLmKeyElsewhere {
                        key: entry.key.clone(),
                        step: self.name.clone(),
                        python: false,
                    };
                    return Err(format!("step `{}`: {problem}", self.name));
                }
                (
                    StepKind::Native {
                        type_name: type_name.clone(),
                    },
                    Some(Arc::clone(module)),
                )
            }
            StepDef::Python { module } => (
                StepKind::Python {
                    module: module.clone(),
                },
                None,
            ),
        };
        let spec = StepSpec {
            name: self.name.clone(),
            kind,
            signature,
            bindings: self.bindings.clone(),
            config: self.config.clone(),
            called: self.called,
        };
        Ok((spec, module))
    }
}

/// Builds a program at run time.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::prelude::*;
/// use dspex::{Fields, Module, Params, ProgramBuilder, Step};
///
/// #[derive(Default)]
/// struct Echo;
/// impl Module for Echo {
///     async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
///         let times = params.get::<i64>("times")?;
///         let text = inputs.get::<&str>("text")?;
///         Ok(Fields::from([("echo", vec![text; times as usize].join(" "))]))
///     }
/// }
///
/// let program = ProgramBuilder::new("Echoer")
///     .signature("text -> echo")
///     .variable(VariableSpec::new("repeat", VarType::Integer, 2).with_constraints(Constraints::range(1, 5)))
///     .step(Step::native("echo", "text -> echo", Echo).bind_as("repeat", "times"))
///     .build()?
///     .start()
///     .await?;
/// let out = program.run(Fields::from([("text", "hi")])).await?;
/// assert_eq!(out.get::<&str>("echo")?, "hi hi");
///
/// // A bad declaration is an error naming the problem, as at compile time for the macros.
/// let err = ProgramBuilder::new("Broken")
///     .step(Step::native("echo", "text -> echo", Echo).bind("repaet"))
///     .build()
///     .unwrap_err();
/// assert!(err.to_string().contains("no variable named `repaet` is declared"));
/// # Ok(()) }
/// ```
pub struct ProgramBuilder {
    name: String,
    signature: Option<String>,
    variables: Vec<VariableSpec>,
    steps: Vec<Step>,
}

impl ProgramBuilder {
    /// A program named `name`, with no variables or steps yet.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            signature: None,
            variables: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// The program signature (`"question -> answer"`).
    #[must_use]
    pub fn signature(mut self, signature: &str) -> Self {
        self.signature = Some(signature.to_owned());
        self
    }

    /// Declares a variable.
    #[must_use]
    pub fn variable(mut self, spec: VariableSpec) -> Self {
        self.variables.push(spec);
        self
    }

    /// Appends a step to the chain.
    #[must_use]
    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// Checks the whole declaration and returns the program, or every problem at once.
    pub fn build(self) -> Result<DynProgram> {
        let mut issues = Vec::new();
        let signature = match self.signature.as_deref().map(Signature::parse).transpose() {
            Ok(sig) => sig,
            Err(e) => {
                issues.push(format!("program signature: {e}"));
                None
            }
        };
        let mut steps = Vec::new();
        let mut natives = Vec::new();
        let mut tools = Vec::new();
        for step in &self.steps {
            match step.compile() {
                Ok((spec, module)) => {
                    steps.push(spec);
                    natives.push(module);
                    tools.push(step.rust_tools.clone());
                }
                Err(e) => issues.push(e),
            }
        }
        let spec = ProgramSpec {
            name: self.name,
            signature,
            variables: self.variables,
            steps,
        };
        // A step with a malformed signature is left out of `spec`: what it would have produced
        // is unknown, so the flow of fields is not judged, and the chain is not empty (as the
        // macros do).
        let signatures_known = issues.is_empty();
        let consequence = |p: &ProgramProblem| {
            p.is_flow() || (*p == ProgramProblem::EmptyChain && !self.steps.is_empty())
        };
        issues.extend(
            spec.check()
                .iter()
                .filter(|i| signatures_known || !consequence(&i.problem))
                .map(|i| located(&spec, i)),
        );
        #[cfg(not(feature = "python"))]
        issues.extend(spec.steps.iter().filter(|s| s.is_python()).map(|s| {
            format!(
                "step `{}`: a python step needs dspex's `python` feature, which this build of dspex leaves out",
                s.name
            )
        }));
        if !issues.is_empty() {
            return Err(Error::InvalidProgram {
                program: spec.name,
                issues,
            });
        }
        Ok(DynProgram {
            spec,
            natives,
            tools,
        })
    }
}

/// Formats an issue with the part of the program it is about.
fn located(spec: &ProgramSpec, issue: &ProgramIssue) -> String {
    let place = match issue.at {
        Location::Variable { index, .. } => spec
            .variables
            .get(index)
            .map(|v| format!("variable `{}`", v.name)),
        Location::Step { index, .. } => spec.steps.get(index).map(|s| format!("step `{}`", s.name)),
        Location::ProgramOutput(_) => Some("program signature".to_owned()),
        Location::Chain => Some("chain".to_owned()),
    };
    match place {
        Some(place) => format!("{place}: {}", issue.problem),
        None => issue.problem.to_string(),
    }
}

/// A checked program that is not attached to a context yet.
pub struct DynProgram {
    spec: ProgramSpec,
    natives: Vec<Option<Arc<dyn DynModule>>>,
    /// Each step's Rust tools.
    tools: Vec<Vec<&'static ToolDef>>,
}

impl DynProgram {
    /// The declaration.
    pub fn spec(&self) -> &ProgramSpec {
        &self.spec
    }

    /// Creates a context on the backend the program needs and attaches to it.
    pub async fn start(self) -> Result<RunningProgram> {
        let ctx = context_for(&self.spec).await?;
        self.attach(&ctx).await
    }

    /// Registers the variables into `ctx` and attaches the steps, upgrading `ctx` when a step
    /// is python. If a python step cannot be attached (its worker cannot start, or cannot
    /// create the module) the error says why, and the context keeps the variables and stays
    /// bridged, ready for another attempt.
    pub async fn attach(self, ctx: &Context) -> Result<RunningProgram> {
        prepare_context(ctx, &self.spec).await?;
        let mut steps = Vec::with_capacity(self.natives.len());
        for (index, (native, tools)) in self.natives.into_iter().zip(self.tools).enumerate() {
            steps.push(match native {
                Some(module) => Attached::Native(module),
                None => {
                    Attached::Python(PythonModule::attach(ctx, &self.spec, index, &tools).await?)
                }
            });
        }
        Ok(RunningProgram {
            ctx: ctx.clone(),
            spec: self.spec,
            steps,
        })
    }
}

impl fmt::Debug for DynProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynProgram")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

enum Attached {
    Native(Arc<dyn DynModule>),
    Python(PythonModule),
}

/// A program built at run time and attached to a context.
pub struct RunningProgram {
    ctx: Context,
    spec: ProgramSpec,
    steps: Vec<Attached>,
}

impl fmt::Debug for RunningProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningProgram")
            .field("ctx", &self.ctx)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl RunningProgram {
    /// The context the program's variables live in.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The program's python steps, in chain order.
    pub fn python_steps(&self) -> Vec<&PythonModule> {
        self.steps
            .iter()
            .filter_map(|step| match step {
                Attached::Python(module) => Some(module),
                _ => None,
            })
            .collect()
    }

    /// The declaration, including steps added since the start.
    pub fn spec(&self) -> &ProgramSpec {
        &self.spec
    }

    /// Streams a run on `input`: each step's [`RunEvent`]s as it goes (the text of LM output
    /// fields as it is written), then `Finished` with the outputs and the trace. Dropping the
    /// stream cancels the run.
    pub fn stream(&self, input: Fields) -> BoxStream<'_, Result<RunEvent<Fields>>> {
        stream_run(self.run_traced(input), Ok)
    }

    /// `stream` with the variables of `overrides` taking those values for this run only.
    pub fn stream_with<'a>(
        &'a self,
        overrides: &'a Overrides,
        input: Fields,
    ) -> BoxStream<'a, Result<RunEvent<Fields>>> {
        stream_run(self.run_with_traced(overrides, input), Ok)
    }

    /// Runs the chain.
    pub async fn run(&self, input: Fields) -> Result<Fields> {
        self.run_traced(input).await.map(|(outputs, _)| outputs)
    }

    /// Runs the chain and returns the outputs with the trace of every step.
    pub async fn run_traced(&self, input: Fields) -> Result<(Fields, RunTrace)> {
        self.run_with_traced(&Overrides::new(), input).await
    }

    /// Runs the chain with the variables of `overrides` taking those values for this run only
    /// (validated first; the context is untouched), in native and python steps alike.
    pub async fn run_with(&self, overrides: &Overrides, input: Fields) -> Result<Fields> {
        self.run_with_traced(overrides, input)
            .await
            .map(|(outputs, _)| outputs)
    }

    /// [`run_with`](Self::run_with), returning the trace of every step too.
    pub async fn run_with_traced(
        &self,
        overrides: &Overrides,
        input: Fields,
    ) -> Result<(Fields, RunTrace)> {
        let mut run = ChainRun::start_with(&self.ctx, &self.spec, overrides, input)?.calling(self);
        let steps = self.spec.steps.iter().zip(&self.steps).enumerate();
        for (index, (_, step)) in steps.filter(|(_, (spec, _))| spec.is_chained()) {
            match step {
                Attached::Native(module) => run.native(index, module.as_ref()).await?,
                Attached::Python(module) => run.python(index, module).await?,
            }
        }
        run.finish_traced()
    }

    /// Appends a step to the running program, checked like the rest of the chain. A python step
    /// upgrades a local context to the bridge (once), keeping every variable, and starts the
    /// context's worker. On error the program is unchanged; when the error is the worker's (it
    /// could not start, or could not create the module), the context stays bridged.
    pub async fn add_step(&mut self, step: Step) -> Result<()> {
        let tools = step.rust_tools.clone();
        let (step_spec, module) = step.compile().map_err(|issue| Error::InvalidProgram {
            program: self.spec.name.clone(),
            issues: vec![issue],
        })?;
        let mut spec = self.spec.clone();
        spec.steps.push(step_spec);
        let issues: Vec<String> = spec.check().iter().map(|i| located(&spec, i)).collect();
        if !issues.is_empty() {
            return Err(Error::InvalidProgram {
                program: spec.name,
                issues,
            });
        }
        let index = spec.steps.len() - 1;
        let attached = match module {
            Some(module) => Attached::Native(module),
            None => Attached::Python(PythonModule::attach(&self.ctx, &spec, index, &tools).await?),
        };
        self.spec = spec;
        self.steps.push(attached);
        Ok(())
    }
}

impl BaseProgram for RunningProgram {
    fn program_spec(&self) -> &ProgramSpec {
        self.spec()
    }

    fn program_context(&self) -> &Context {
        self.context()
    }

    fn run_boxed<'a>(
        &'a self,
        overrides: &'a Overrides,
        input: Fields,
    ) -> BoxFuture<'a, Result<(Fields, RunTrace)>> {
        Box::pin(self.run_with_traced(overrides, input))
    }

    fn program_python_steps(&self) -> Vec<&PythonModule> {
        RunningProgram::python_steps(self)
    }

    fn program_native_steps(&self) -> Vec<(&str, &dyn DynModule)> {
        self.spec
            .steps
            .iter()
            .zip(&self.steps)
            .filter_map(|(spec, step)| match step {
                Attached::Native(module) => Some((spec.name.as_str(), module.as_ref())),
                Attached::Python(_) => None,
            })
            .collect()
    }
}
