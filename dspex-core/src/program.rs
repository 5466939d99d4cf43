//! The program model shared by both macro front ends and the runtime builder, and the one check
//! pass that validates it. Issues carry a [`Location`] so that the macros can point at the
//! offending token and the builder can name the offending part.

use std::fmt;

use crate::constraints::Field;
use crate::dspy::{self, ConfigKind, DspyModule, Param, TOOLS_KEY};
use crate::field_type::FieldType;
use crate::native;
use crate::signature::{Signature, SignatureField, is_identifier};
use crate::spec::{SpecProblem, VariableSpec};
use crate::suggest::did_you_mean;
use crate::value::VarType;

pub use crate::dspy::{ConfigEntry, ConfigValue, ToolRef};

/// A whole program: variables and a chain of steps.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramSpec {
    /// The program's name (the Rust type name for macro programs).
    pub name: String,
    /// The program signature, if declared; it fixes the program's inputs and outputs.
    pub signature: Option<Signature>,
    /// The variables, in declaration order.
    pub variables: Vec<VariableSpec>,
    /// The steps, in execution order.
    pub steps: Vec<StepSpec>,
}

/// One step of the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSpec {
    /// The step name, unique in the program.
    pub name: String,
    /// Native Rust or Python DSPy.
    pub kind: StepKind,
    /// The step's DSPy signature.
    pub signature: Signature,
    /// Variables bound to module parameters.
    pub bindings: Vec<Binding>,
    /// The constructor configuration of a python step's module (`with { max_iters: 5 }`), or
    /// the adapter settings of a native `Predict` or `ChainOfThought` (`with { adapter:
    /// "json" }`, [`native::CONFIG`]), in source order.
    pub config: Vec<ConfigEntry>,
    /// Whether the step runs only when a native step calls it (`name: called native ..`),
    /// never in chain order: its inputs need not flow along the chain, and its outputs do not
    /// flow on.
    pub called: bool,
}

/// Where a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// A Rust type implementing `dspex::Module`.
    Native {
        /// The Rust type, as written.
        type_name: String,
    },
    /// A DSPy module run by the Python worker.
    Python {
        /// Which DSPy module class.
        module: ModuleRef,
    },
}

/// How a python step names its DSPy module class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRef {
    /// A known DSPy module (`ChainOfThought`), one of [`dspy::MODULES`].
    Builtin(String),
    /// A dotted Python path to a class (`"my_pkg.mod.Class"`).
    Path(String),
    /// `@var`: the value of a `module` variable, read at run time.
    Variable(String),
}

impl ModuleRef {
    /// Reads the string form used by `#[step(python = "...")]` and the runtime builder:
    /// `"@var"` is a module variable, a dotted `"pkg.mod.Class"` a path, anything else a
    /// DSPy module name.
    ///
    /// ```
    /// use dspex_core::program::ModuleRef;
    ///
    /// assert_eq!(ModuleRef::parse("@reasoning"), ModuleRef::Variable("reasoning".into()));
    /// assert_eq!(ModuleRef::parse("my_pkg.mod.Class"), ModuleRef::Path("my_pkg.mod.Class".into()));
    /// assert_eq!(ModuleRef::parse("Predict"), ModuleRef::Builtin("Predict".into()));
    /// ```
    pub fn parse(text: &str) -> Self {
        if let Some(var) = text.strip_prefix('@') {
            ModuleRef::Variable(var.to_owned())
        } else if text.contains('.') {
            ModuleRef::Path(text.to_owned())
        } else {
            ModuleRef::Builtin(text.to_owned())
        }
    }
}

impl fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleRef::Builtin(m) | ModuleRef::Path(m) => f.write_str(m),
            ModuleRef::Variable(v) => write!(f, "@{v}"),
        }
    }
}

/// A variable bound to a module parameter: `var` or `var as param`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The bound variable.
    pub variable: String,
    /// The module parameter it sets.
    pub param: String,
}

impl Binding {
    /// `var as param`.
    pub fn new(variable: impl Into<String>, param: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
            param: param.into(),
        }
    }

    /// `var`: the parameter has the variable's name.
    pub fn same_name(variable: impl Into<String>) -> Self {
        let variable = variable.into();
        Self {
            param: variable.clone(),
            variable,
        }
    }
}

impl StepSpec {
    /// Whether the step runs in the Python worker.
    pub fn is_python(&self) -> bool {
        matches!(self.kind, StepKind::Python { .. })
    }

    /// Whether the step runs in chain order (it is not only `called`).
    pub fn is_chained(&self) -> bool {
        !self.called
    }
}

impl ProgramSpec {
    /// Whether any step is python, so that the program needs the bridge.
    pub fn requires_bridge(&self) -> bool {
        self.steps.iter().any(StepSpec::is_python)
    }

    /// The steps run in chain order (every step but those only `called`).
    pub fn chain(&self) -> impl DoubleEndedIterator<Item = &StepSpec> {
        self.steps.iter().filter(|s| s.is_chained())
    }

    /// The variable declared under `name`.
    pub fn variable(&self, name: &str) -> Option<&VariableSpec> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// The program's input fields: the signature's inputs, or else every step input that no
    /// earlier step produces, typed as the first step that reads it declares.
    pub fn input_fields(&self) -> Vec<&SignatureField> {
        if let Some(sig) = &self.signature {
            return sig.inputs.iter().collect();
        }
        let mut produced: Vec<&str> = Vec::new();
        let mut inputs: Vec<&SignatureField> = Vec::new();
        for step in self.chain() {
            for input in &step.signature.inputs {
                if !produced.contains(&input.name.as_str())
                    && !inputs.iter().any(|i| i.name == input.name)
                {
                    inputs.push(input);
                }
            }
            produced.extend(step.signature.output_names());
        }
        inputs
    }

    /// The program's output fields: the signature's outputs, or else the last step's.
    pub fn output_fields(&self) -> Vec<&SignatureField> {
        match (&self.signature, self.chain().last()) {
            (Some(sig), _) => sig.outputs.iter().collect(),
            (None, Some(last)) => last.signature.outputs.iter().collect(),
            (None, None) => Vec::new(),
        }
    }

    /// The program's input field names (see [`ProgramSpec::input_fields`]).
    pub fn input_names(&self) -> Vec<String> {
        self.input_fields().iter().map(|f| f.name.clone()).collect()
    }

    /// The program's output field names (see [`ProgramSpec::output_fields`]).
    pub fn output_names(&self) -> Vec<String> {
        self.output_fields()
            .iter()
            .map(|f| f.name.clone())
            .collect()
    }

    /// Runs every check of a declaration that needs no compiler: each variable declaration,
    /// duplicate names, bindings (declared variables, parameters the module takes, of the
    /// right type), module names, `@var`, `with` configuration (keys the module takes, values
    /// of their kind, tools), the flow and types of fields along the chain, and an empty chain.
    /// Returns every issue, in source order.
    pub fn check(&self) -> Vec<ProgramIssue> {
        let mut issues = Vec::new();
        self.check_variables(&mut issues);
        if self.chain().next().is_none() {
            issues.push(ProgramIssue::new(
                Location::Chain,
                ProgramProblem::EmptyChain,
            ));
        }
        for (index, step) in self.steps.iter().enumerate() {
            self.check_step(index, step, &mut issues);
        }
        self.check_flow(&mut issues);
        issues
    }

    fn check_variables(&self, issues: &mut Vec<ProgramIssue>) {
        for (index, var) in self.variables.iter().enumerate() {
            if self.variables[..index].iter().any(|v| v.name == var.name) {
                issues.push(ProgramIssue::new(
                    Location::Variable {
                        index,
                        field: Field::Name,
                    },
                    ProgramProblem::DuplicateVariable(var.name.clone()),
                ));
                continue;
            }
            if let Err(e) = var.check() {
                issues.extend(e.issues.into_iter().map(|issue| {
                    ProgramIssue::new(
                        Location::Variable {
                            index,
                            field: issue.at,
                        },
                        ProgramProblem::Variable {
                            variable: var.name.clone(),
                            problem: issue.problem,
                        },
                    )
                }));
            }
        }
    }

    fn check_step(&self, index: usize, step: &StepSpec, issues: &mut Vec<ProgramIssue>) {
        let at = |part| Location::Step { index, part };
        if !is_identifier(&step.name) {
            issues.push(ProgramIssue::new(
                at(StepPart::Name),
                ProgramProblem::InvalidStepName(step.name.clone()),
            ));
        } else if self.steps[..index].iter().any(|s| s.name == step.name) {
            issues.push(ProgramIssue::new(
                at(StepPart::Name),
                ProgramProblem::DuplicateStep(step.name.clone()),
            ));
        }
        if let StepKind::Python { module } = &step.kind
            && let Some(problem) = self.check_module(module)
        {
            issues.push(ProgramIssue::new(at(StepPart::Module), problem));
        }
        let modules = self.step_modules(step);
        for (b, binding) in step.bindings.iter().enumerate() {
            if step.bindings[..b].iter().any(|o| o.param == binding.param) {
                issues.push(ProgramIssue::new(
                    at(StepPart::BindingParam(b)),
                    ProgramProblem::DuplicateParam {
                        step: step.name.clone(),
                        param: binding.param.clone(),
                    },
                ));
                continue;
            }
            let Some(var) = self.variable(&binding.variable) else {
                issues.push(ProgramIssue::new(
                    at(StepPart::Binding(b)),
                    self.unknown_variable(&binding.variable),
                ));
                continue;
            };
            if !step.is_python() {
                continue;
            }
            let param = match &modules {
                Some(modules) => match modules.param(&binding.param) {
                    Ok(param) => param,
                    Err(problem) => {
                        issues.push(ProgramIssue::new(at(StepPart::BindingParam(b)), *problem));
                        continue;
                    }
                },
                // The module is not known (reported above): only every module's are.
                None => dspy::lm_param(&binding.param),
            };
            if let Some(param) = param
                && !param.types.contains(&var.ty)
            {
                issues.push(ProgramIssue::new(
                    at(StepPart::Binding(b)),
                    ProgramProblem::ParamType {
                        param: binding.param.clone(),
                        expected: param.types,
                        variable: var.name.clone(),
                        found: var.ty,
                    },
                ));
            }
        }
        self.check_config(index, step, modules.as_ref(), issues);
    }

    /// The known modules a python step may run. `None` for a native step, and for a python
    /// step whose module reference is wrong (reported on its own).
    fn step_modules<'a>(&'a self, step: &'a StepSpec) -> Option<StepModules<'a>> {
        let StepKind::Python { module } = &step.kind else {
            return None;
        };
        match module {
            ModuleRef::Builtin(name) => dspy::module(name).map(|m| StepModules {
                modules: vec![m],
                via: None,
                written: name,
            }),
            ModuleRef::Path(path) => Some(StepModules {
                modules: Vec::new(),
                via: None,
                written: path,
            }),
            ModuleRef::Variable(name) => {
                let var = self.variable(name).filter(|v| v.ty == VarType::Module)?;
                let modules = match &var.constraints.choices {
                    // A choice beyond the table (a dotted path) takes anything.
                    Some(choices) => choices.iter().filter_map(|c| dspy::module(c)).collect(),
                    None => dspy::MODULES.iter().collect(),
                };
                Some(StepModules {
                    modules,
                    via: Some(name),
                    written: name,
                })
            }
        }
    }

    /// Checks a step's `with` configuration: a python step's configures its DSPy module, each
    /// key once, taken by the module (every module an `@var` step may run), with a value of
    /// the kind it expects, tools that can be passed; a native `Predict` or `ChainOfThought`
    /// takes [`native::CONFIG`]; a native step of another type takes none.
    fn check_config(
        &self,
        index: usize,
        step: &StepSpec,
        modules: Option<&StepModules<'_>>,
        issues: &mut Vec<ProgramIssue>,
    ) {
        let at = |part| Location::Step { index, part };
        if step.config.is_empty() {
            return;
        }
        if let StepKind::Native { type_name } = &step.kind {
            match native::lm_module(type_name) {
                Some(module) => check_native_lm_config(index, step, module, issues),
                None => check_other_native_config(index, step, issues),
            }
            return;
        }
        for (i, entry) in step.config.iter().enumerate() {
            if report_duplicate_key(index, step, i, issues) {
                continue;
            }
            let Some(modules) = modules else { continue };
            // A module the table knows takes no key of dspex's native LM modules (a class
            // named by dotted path takes any key).
            if native::is_config_key(&entry.key) && !modules.modules.is_empty() {
                issues.push(ProgramIssue::new(
                    at(StepPart::WithKey(i)),
                    ProgramProblem::NativeLmKeyElsewhere {
                        key: entry.key.clone(),
                        step: step.name.clone(),
                        python: true,
                    },
                ));
                continue;
            }
            let kinds = match modules.config_kinds(&entry.key) {
                Ok(kinds) => kinds,
                Err(problem) => {
                    issues.push(ProgramIssue::new(at(StepPart::WithKey(i)), *problem));
                    continue;
                }
            };
            let mut checked = None;
            for (module, kind) in kinds {
                match kind.check(&entry.value) {
                    Ok(value) => checked = Some(value),
                    Err(found) => {
                        issues.push(ProgramIssue::new(
                            at(StepPart::WithValue(i)),
                            ProgramProblem::ConfigKind {
                                module,
                                via: modules.via_for_module(),
                                key: entry.key.clone(),
                                expected: kind,
                                found,
                            },
                        ));
                        checked = None;
                        break;
                    }
                }
            }
            if let Some(ConfigValue::Tools(tools)) = checked {
                check_tools(step, &tools, |item| at(StepPart::WithItem(i, item)), issues);
            }
        }
    }

    fn check_module(&self, module: &ModuleRef) -> Option<ProgramProblem> {
        match module {
            ModuleRef::Builtin(name) => {
                dspy::module(name)
                    .is_none()
                    .then(|| ProgramProblem::UnknownModule {
                        name: name.clone(),
                        suggestion: did_you_mean(name, dspy::module_names()),
                    })
            }
            ModuleRef::Path(path) => {
                (!is_dotted_path(path)).then(|| ProgramProblem::InvalidModulePath(path.clone()))
            }
            ModuleRef::Variable(name) => match self.variable(name) {
                None => Some(self.unknown_variable(name)),
                Some(v) if v.ty != VarType::Module => Some(ProgramProblem::NotAModuleVariable {
                    variable: name.clone(),
                    found: v.ty,
                }),
                Some(_) => None,
            },
        }
    }

    fn unknown_variable(&self, name: &str) -> ProgramProblem {
        ProgramProblem::UnknownVariable {
            name: name.to_owned(),
            suggestion: did_you_mean(name, self.variables.iter().map(|v| v.name.as_str())),
        }
    }

    /// Fields must flow, with their types: each step input is a program input or an earlier
    /// step's output, of the type its producer (the latest, if several) declares; each program
    /// output is some step's output, of the type the last step producing it declares. Without a
    /// program signature inputs are free, typed by the first step that reads them.
    fn check_flow(&self, issues: &mut Vec<ProgramIssue>) {
        let mut available: Vec<(&SignatureField, Producer)> = match &self.signature {
            Some(sig) => sig
                .inputs
                .iter()
                .map(|f| (f, Producer::ProgramInput))
                .collect(),
            None => Vec::new(),
        };
        for (index, step) in self.steps.iter().enumerate() {
            if !step.is_chained() {
                continue;
            }
            for (field, input) in step.signature.inputs.iter().enumerate() {
                let at = Location::Step {
                    index,
                    part: StepPart::Input(field),
                };
                match available.iter().rev().find(|(f, _)| f.name == input.name) {
                    Some((produced, producer)) if produced.ty != input.ty => {
                        issues.push(ProgramIssue::new(
                            at,
                            ProgramProblem::InputType {
                                step: step.name.clone(),
                                field: input.name.clone(),
                                declared: input.ty.clone(),
                                produced: produced.ty.clone(),
                                producer: producer.clone(),
                            },
                        ));
                    }
                    Some(_) => {}
                    None if self.signature.is_some() => {
                        let mut names: Vec<String> = Vec::new();
                        for (f, _) in &available {
                            if !names.contains(&f.name) {
                                names.push(f.name.clone());
                            }
                        }
                        issues.push(ProgramIssue::new(
                            at,
                            ProgramProblem::UnproducedInput {
                                step: step.name.clone(),
                                field: input.name.clone(),
                                available: names,
                            },
                        ));
                    }
                    None => available.push((input, Producer::FirstReader(step.name.clone()))),
                }
            }
            available.extend(
                step.signature
                    .outputs
                    .iter()
                    .map(|f| (f, Producer::Step(step.name.clone()))),
            );
        }
        let Some(sig) = &self.signature else { return };
        if self.chain().next().is_none() {
            return;
        }
        for (index, output) in sig.outputs.iter().enumerate() {
            let producer = self.chain().rev().find_map(|step| {
                let field = step
                    .signature
                    .outputs
                    .iter()
                    .find(|f| f.name == output.name)?;
                Some((step, field))
            });
            let problem = match producer {
                None => ProgramProblem::UnproducedOutput(output.name.clone()),
                Some((step, produced)) if produced.ty != output.ty => ProgramProblem::OutputType {
                    field: output.name.clone(),
                    declared: output.ty.clone(),
                    step: step.name.clone(),
                    produced: produced.ty.clone(),
                },
                Some(_) => continue,
            };
            issues.push(ProgramIssue::new(Location::ProgramOutput(index), problem));
        }
    }
}

/// Where a field that a step reads comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Producer {
    /// The program input, as the program signature declares it.
    ProgramInput,
    /// The program input of a program without signature, as the first step that reads it
    /// (named) declares it.
    FirstReader(String),
    /// The output of an earlier step (named).
    Step(String),
}

impl Producer {
    /// "step `rate` produces it as `float`", "the program input declares it `int`".
    fn gives(&self, ty: &FieldType) -> String {
        match self {
            Producer::ProgramInput => format!("the program input declares it `{ty}`"),
            Producer::FirstReader(step) => {
                format!(
                    "step `{step}`, the first to read it from the program input, declares it `{ty}`"
                )
            }
            Producer::Step(step) => format!("step `{step}` produces it as `{ty}`"),
        }
    }
}

/// The known DSPy modules a python step may run, which each of its bindings and `with` keys
/// must suit.
struct StepModules<'a> {
    /// Empty when the table knows none of them: a class named by dotted path, or a module
    /// variable whose choices are all such classes. Such a class takes anything.
    modules: Vec<&'static DspyModule>,
    /// The module variable of an `@var` step.
    via: Option<&'a str>,
    /// The module as written, without `@`: the name, the dotted path or the variable.
    written: &'a str,
}

impl StepModules<'_> {
    /// The parameter `name`, if the table knows it (it knows every module's LM parameters), or
    /// why a module of the step does not take it.
    fn param(&self, name: &str) -> Result<Option<&'static Param>, Box<ProgramProblem>> {
        let Some(first) = self.modules.first() else {
            return Ok(dspy::lm_param(name));
        };
        match self.modules.iter().find(|m| m.param(name).is_none()) {
            None => Ok(first.param(name)),
            Some(lacking) => {
                let expected = self.common(|m| m.params().map(|p| p.name).collect());
                Err(Box::new(ProgramProblem::UnknownParam {
                    module: lacking.name,
                    via: self.via.map(str::to_owned),
                    param: name.to_owned(),
                    suggestion: did_you_mean(name, expected.iter().copied()),
                    expected,
                }))
            }
        }
    }

    /// The kinds a value of configuration key `key` must have, one per module (with the
    /// module's name for messages), or why a module of the step does not take the key.
    fn config_kinds(&self, key: &str) -> Result<Vec<(String, ConfigKind)>, Box<ProgramProblem>> {
        if self.modules.is_empty() {
            let module = match self.via {
                Some(var) => format!("@{var}"),
                None => self.written.to_owned(),
            };
            let kind = dspy::config_kind(&module, key);
            return Ok(kind.map(|kind| (module, kind)).into_iter().collect());
        }
        let mut kinds = Vec::with_capacity(self.modules.len());
        for m in &self.modules {
            if key == TOOLS_KEY && !m.takes_tools() {
                return Err(Box::new(ProgramProblem::ToolsNotTaken {
                    module: m.name,
                    via: self.via.map(str::to_owned),
                }));
            }
            let Some(config_key) = m.config_key(key) else {
                let expected = self.common(|m| m.config.iter().map(|k| k.name).collect());
                return Err(Box::new(ProgramProblem::UnknownConfigKey {
                    module: m.name,
                    via: self.via.map(str::to_owned),
                    key: key.to_owned(),
                    suggestion: did_you_mean(key, expected.iter().copied()),
                    expected,
                }));
            };
            kinds.push((m.name.to_owned(), config_key.kind));
        }
        Ok(kinds)
    }

    /// The module variable to name in a message about one of the known modules.
    fn via_for_module(&self) -> Option<String> {
        if self.modules.is_empty() {
            None
        } else {
            self.via.map(str::to_owned)
        }
    }

    /// The names every module takes, in the first module's order.
    fn common(&self, names: impl Fn(&DspyModule) -> Vec<&'static str>) -> Vec<&'static str> {
        let mut common = self.modules.first().map(|m| names(m)).unwrap_or_default();
        for m in self.modules.iter().skip(1) {
            let theirs = names(m);
            common.retain(|n| theirs.contains(n));
        }
        common
    }
}

/// Checks the tools of a step: each once, a Python tool by a dotted path. (Whether a Rust path
/// names a tool is the compiler's to say: the macros make it a trait bound at the path.)
fn check_tools(
    step: &StepSpec,
    tools: &[ToolRef],
    at: impl Fn(usize) -> Location,
    issues: &mut Vec<ProgramIssue>,
) {
    for (j, tool) in tools.iter().enumerate() {
        let problem = if tools[..j].contains(tool) {
            ProgramProblem::DuplicateTool {
                step: step.name.clone(),
                tool: tool.to_string(),
            }
        } else {
            match tool {
                ToolRef::Python(path) if !is_dotted_path(path) => {
                    ProgramProblem::InvalidToolPath(path.clone())
                }
                ToolRef::Python(_) | ToolRef::Rust(_) => continue,
            }
        };
        issues.push(ProgramIssue::new(at(j), problem));
    }
}

/// Reports the `i`th `with` entry of step `index` when an earlier entry has the same key;
/// returns whether it did (the entry is then not checked further).
fn report_duplicate_key(
    index: usize,
    step: &StepSpec,
    i: usize,
    issues: &mut Vec<ProgramIssue>,
) -> bool {
    let key = &step.config[i].key;
    let duplicate = step.config[..i].iter().any(|e| &e.key == key);
    if duplicate {
        issues.push(ProgramIssue::new(
            Location::Step {
                index,
                part: StepPart::WithKey(i),
            },
            ProgramProblem::DuplicateConfigKey {
                step: step.name.clone(),
                key: key.clone(),
            },
        ));
    }
    duplicate
}

/// Checks the `with` of a native `Predict` or `ChainOfThought` step against
/// [`native::CONFIG`]: each key once, taken, with a value of its kind; `json_fallback` only
/// with the chat adapter.
fn check_native_lm_config(
    index: usize,
    step: &StepSpec,
    module: &'static str,
    issues: &mut Vec<ProgramIssue>,
) {
    let at = |part| Location::Step { index, part };
    let mut json_adapter = false;
    for (i, entry) in step.config.iter().enumerate() {
        if report_duplicate_key(index, step, i, issues) {
            continue;
        }
        let Some(key) = native::CONFIG.iter().find(|k| k.name == entry.key) else {
            let expected = native::CONFIG.iter().map(|k| k.name);
            issues.push(ProgramIssue::new(
                at(StepPart::WithKey(i)),
                ProgramProblem::UnknownNativeConfigKey {
                    module,
                    key: entry.key.clone(),
                    suggestion: did_you_mean(&entry.key, expected),
                },
            ));
            continue;
        };
        if let Err(found) = key.kind.check(&entry.value) {
            issues.push(ProgramIssue::new(
                at(StepPart::WithValue(i)),
                ProgramProblem::NativeConfigKind {
                    module,
                    key: entry.key.clone(),
                    expected: key.kind,
                    found,
                },
            ));
            continue;
        }
        json_adapter |= entry.key == native::ADAPTER_KEY
            && entry.value == ConfigValue::String(native::Adapter::Json.name().to_owned());
    }
    if json_adapter
        && let Some(i) = step
            .config
            .iter()
            .position(|e| e.key == native::JSON_FALLBACK_KEY)
    {
        issues.push(ProgramIssue::new(
            at(StepPart::WithKey(i)),
            ProgramProblem::FallbackWithJsonAdapter(step.name.clone()),
        ));
    }
}

/// A native step of the user's own type takes no `with`: a key of dspex's native LM modules is
/// reported at the key, anything else once at `with`.
fn check_other_native_config(index: usize, step: &StepSpec, issues: &mut Vec<ProgramIssue>) {
    let at = |part| Location::Step { index, part };
    let mut other_keys = false;
    for (i, entry) in step.config.iter().enumerate() {
        if native::is_config_key(&entry.key) {
            issues.push(ProgramIssue::new(
                at(StepPart::WithKey(i)),
                ProgramProblem::NativeLmKeyElsewhere {
                    key: entry.key.clone(),
                    step: step.name.clone(),
                    python: false,
                },
            ));
        } else {
            other_keys = true;
        }
    }
    if other_keys {
        issues.push(ProgramIssue::new(
            at(StepPart::With),
            ProgramProblem::ConfigOnNativeStep(step.name.clone()),
        ));
    }
}

/// Whether `path` is a dotted Python path: two or more identifiers joined by `.`.
fn is_dotted_path(path: &str) -> bool {
    let segments: Vec<&str> = path.split('.').collect();
    segments.len() >= 2 && segments.iter().all(|s| is_identifier(s))
}

/// The part of a program an issue is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A variable declaration, by index, and the part of it.
    Variable {
        /// Index in [`ProgramSpec::variables`].
        index: usize,
        /// The part of the declaration.
        field: Field,
    },
    /// A step, by index, and the part of it.
    Step {
        /// Index in [`ProgramSpec::steps`].
        index: usize,
        /// The part of the step.
        part: StepPart,
    },
    /// An output field of the program signature, by index.
    ProgramOutput(usize),
    /// The chain as a whole.
    Chain,
}

/// A part of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPart {
    /// The step name.
    Name,
    /// The python module reference.
    Module,
    /// An input field of the step signature, by index.
    Input(usize),
    /// A binding's variable, by index.
    Binding(usize),
    /// A binding's parameter, by index.
    BindingParam(usize),
    /// The `with` configuration as a whole.
    With,
    /// The key of a `with` entry, by index.
    WithKey(usize),
    /// The value of a `with` entry, by index.
    WithValue(usize),
    /// An item of the list value of a `with` entry: entry index, item index.
    WithItem(usize, usize),
}

/// One problem with a program, and where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{problem}")]
pub struct ProgramIssue {
    /// Where.
    pub at: Location,
    /// What.
    pub problem: ProgramProblem,
}

impl ProgramIssue {
    fn new(at: Location, problem: ProgramProblem) -> Self {
        Self { at, problem }
    }
}

/// What is wrong with a program.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProgramProblem {
    /// A variable declaration is invalid.
    #[error("{problem}")]
    Variable {
        /// The variable.
        variable: String,
        /// What is wrong with it.
        problem: SpecProblem,
    },
    /// Two variables with one name.
    #[error("duplicate variable `{0}`")]
    DuplicateVariable(String),
    /// Two steps with one name.
    #[error("duplicate step `{0}`")]
    DuplicateStep(String),
    /// A step name that is not an identifier.
    #[error("invalid step name `{0}`; expected an identifier")]
    InvalidStepName(String),
    /// A reference to a variable that is not declared.
    #[error(
        "no variable named `{name}` is declared{}",
        suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
    )]
    UnknownVariable {
        /// The name used.
        name: String,
        /// The closest declared name, if close enough.
        suggestion: Option<String>,
    },
    /// The same parameter bound twice in one step.
    #[error("parameter `{param}` is bound twice in step `{step}`")]
    DuplicateParam {
        /// The step.
        step: String,
        /// The parameter.
        param: String,
    },
    /// A known parameter bound to a variable of the wrong type.
    #[error(
        "parameter `{param}` needs {}, but `{variable}` is {} {found} variable",
        type_list(expected),
        found.article()
    )]
    ParamType {
        /// The parameter.
        param: String,
        /// The types it accepts.
        expected: &'static [VarType],
        /// The bound variable.
        variable: String,
        /// Its type.
        found: VarType,
    },
    /// A DSPy module name that is not known.
    #[error(
        "unknown DSPy module `{name}`{}; expected one of {}, `@variable`, or a dotted path string like \"my_pkg.module.Class\"",
        suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
        dspy::module_names().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
    )]
    UnknownModule {
        /// The name used.
        name: String,
        /// The closest known name, if close enough.
        suggestion: Option<String>,
    },
    /// A module path string that is not a dotted Python path.
    #[error(
        "invalid module path \"{0}\"; expected a dotted Python path like \"my_pkg.module.Class\""
    )]
    InvalidModulePath(String),
    /// `@var` on a variable that is not `module`-typed.
    #[error("`@{variable}` needs a module variable, but `{variable}` is {} {found} variable", found.article())]
    NotAModuleVariable {
        /// The variable.
        variable: String,
        /// Its type.
        found: VarType,
    },
    /// A binding to a parameter that the step's module does not take.
    #[error(
        "{} parameter `{param}`{}; {}",
        takes_no(module, via.as_deref()),
        suggest(suggestion.as_deref()),
        expected_names(via.as_deref(), expected, "parameter")
    )]
    UnknownParam {
        /// The known module that does not take it.
        module: &'static str,
        /// The module variable of an `@var` step, which may name `module`.
        via: Option<String>,
        /// The parameter.
        param: String,
        /// The closest parameter it takes, if close enough.
        suggestion: Option<String>,
        /// The parameters it takes (that every module the variable may name takes).
        expected: Vec<&'static str>,
    },
    /// `with` on a native step of the user's own type.
    #[error(
        "native step `{0}` takes no `with` configuration; `with` configures the DSPy module of a python step, or the adapter of a native `Predict` or `ChainOfThought`"
    )]
    ConfigOnNativeStep(String),
    /// A key of dspex's native LM modules (`adapter`, `json_fallback`) on another step.
    #[error(
        "`with` key `{key}` configures dspex's native `Predict` and `ChainOfThought` only; step `{step}` is {}",
        if *python { "a python step, whose DSPy module takes no such key" } else { "a native step of another type" }
    )]
    NativeLmKeyElsewhere {
        /// The key.
        key: String,
        /// The step.
        step: String,
        /// Whether the step is a python step (else a native step of the user's own type).
        python: bool,
    },
    /// A `with` key that a native `Predict` or `ChainOfThought` does not take.
    #[error(
        "native `{module}` takes no `with` key `{key}`{}; expected one of {}",
        suggest(suggestion.as_deref()),
        native_keys()
    )]
    UnknownNativeConfigKey {
        /// `Predict` or `ChainOfThought`.
        module: &'static str,
        /// The key.
        key: String,
        /// The closest key it takes, if close enough.
        suggestion: Option<String>,
    },
    /// A `with` value of a native `Predict` or `ChainOfThought` of the wrong kind.
    #[error("native `{module}` takes `{key}` as {expected}, found {found}")]
    NativeConfigKind {
        /// `Predict` or `ChainOfThought`.
        module: &'static str,
        /// The key.
        key: String,
        /// What the key takes.
        expected: ConfigKind,
        /// What was given: the value, or its kind.
        found: String,
    },
    /// `json_fallback` beside `adapter: "json"`, which never falls back.
    #[error(
        "`json_fallback` switches the fallback of the chat adapter, and step `{0}` uses `adapter: \"json\"`; remove `json_fallback`"
    )]
    FallbackWithJsonAdapter(String),
    /// The same `with` key twice in one step.
    #[error("`with` key `{key}` is given twice in step `{step}`")]
    DuplicateConfigKey {
        /// The step.
        step: String,
        /// The key.
        key: String,
    },
    /// A `with` key that the step's module does not take.
    #[error(
        "{} `with` key `{key}`{}; {}",
        takes_no(module, via.as_deref()),
        suggest(suggestion.as_deref()),
        expected_names(via.as_deref(), expected, "`with` key")
    )]
    UnknownConfigKey {
        /// The known module that does not take it.
        module: &'static str,
        /// The module variable of an `@var` step, which may name `module`.
        via: Option<String>,
        /// The key.
        key: String,
        /// The closest key it takes, if close enough.
        suggestion: Option<String>,
        /// The keys it takes (that every module the variable may name takes).
        expected: Vec<&'static str>,
    },
    /// `tools` on a module that takes none.
    #[error("{} tools; only {} `tools`", takes_no(module, via.as_deref()), tool_takers())]
    ToolsNotTaken {
        /// The known module that takes no tools.
        module: &'static str,
        /// The module variable of an `@var` step, which may name `module`.
        via: Option<String>,
    },
    /// A `with` value of the wrong kind, or out of range.
    #[error("{} takes `{key}` as {expected}, found {found}", subject(module, via.as_deref()))]
    ConfigKind {
        /// The module (a known name, a dotted path, or `@var`).
        module: String,
        /// The module variable of an `@var` step, which may name `module`.
        via: Option<String>,
        /// The key.
        key: String,
        /// What the key takes.
        expected: ConfigKind,
        /// What was given: the value, or its kind.
        found: String,
    },
    /// A tool listed twice.
    #[error("tool `{tool}` is listed twice in step `{step}`")]
    DuplicateTool {
        /// The step.
        step: String,
        /// The tool.
        tool: String,
    },
    /// A Python tool that is not a dotted path.
    #[error(
        "invalid tool path \"{0}\"; expected a dotted Python path like \"my_pkg.tools.search\""
    )]
    InvalidToolPath(String),
    /// A step input that nothing produces.
    #[error(
        "input `{field}` of step `{step}` is not produced by the program input or an earlier step; available: {}",
        name_list(available)
    )]
    UnproducedInput {
        /// The step.
        step: String,
        /// The input field.
        field: String,
        /// What is available at that point.
        available: Vec<String>,
    },
    /// A program output that no step produces.
    #[error("program output `{0}` is not produced by any step")]
    UnproducedOutput(String),
    /// A step input declared with another type than its producer declares (an unannotated
    /// field is `str`).
    #[error(
        "input `{field}` of step `{step}` is `{declared}`, but {}; write `{field}: {produced}`",
        producer.gives(produced)
    )]
    InputType {
        /// The step.
        step: String,
        /// The input field.
        field: String,
        /// The type the step declares.
        declared: FieldType,
        /// The type its producer declares.
        produced: FieldType,
        /// Where the field comes from.
        producer: Producer,
    },
    /// A program output declared with another type than the step producing it declares.
    #[error(
        "program output `{field}` is `{declared}`, but step `{step}` produces it as `{produced}`; write `{field}: {produced}`"
    )]
    OutputType {
        /// The output field.
        field: String,
        /// The type the program signature declares.
        declared: FieldType,
        /// The last step that produces it.
        step: String,
        /// The type that step declares.
        produced: FieldType,
    },
    /// No step runs in chain order.
    #[error("a program needs at least one step in its `chain`")]
    EmptyChain,
}

impl ProgramProblem {
    /// Whether the problem is about the flow of fields along the chain (a step input or a
    /// program output that nothing produces, or of another type than its producer's). Such
    /// problems are only meaningful when every
    /// signature could be read: a tool that leaves out a step with a malformed signature, or
    /// gives it a placeholder, drops them rather than report consequences of that one mistake.
    pub fn is_flow(&self) -> bool {
        matches!(
            self,
            ProgramProblem::UnproducedInput { .. }
                | ProgramProblem::UnproducedOutput(_)
                | ProgramProblem::InputType { .. }
                | ProgramProblem::OutputType { .. }
        )
    }
}

/// The module a message is about: `` `Predict` ``, or for an `@var` step
/// `` `@reasoning` may name `Predict`, which ``.
fn subject(module: &str, via: Option<&str>) -> String {
    match via {
        Some(var) => format!("`@{var}` may name `{module}`, which"),
        None => format!("`{module}`"),
    }
}

fn takes_no(module: &str, via: Option<&str>) -> String {
    format!("{} takes no", subject(module, via))
}

fn suggest(suggestion: Option<&str>) -> String {
    suggestion
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// The end of an "unknown parameter/key" message: what the module takes, or for an `@var` step
/// what every module the variable may name takes.
fn expected_names(via: Option<&str>, names: &[&str], what: &str) -> String {
    let list = || {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (via, names.is_empty()) {
        (None, false) => format!("expected one of {}", list()),
        (None, true) => format!("it takes no {what}"),
        (Some(var), false) => format!(
            "expected one that every module `@{var}` may name takes: {}",
            list()
        ),
        (Some(var), true) => format!("no {what} is taken by every module `@{var}` may name"),
    }
}

/// `` `adapter`, `json_fallback` ``: the keys of dspex's native LM modules.
fn native_keys() -> String {
    let keys: Vec<String> = native::CONFIG
        .iter()
        .map(|k| format!("`{}`", k.name))
        .collect();
    keys.join(", ")
}

/// `` `ReAct` takes `` (or `` `A`, `B` take ``): the modules that take tools.
fn tool_takers() -> String {
    let takers: Vec<String> = dspy::MODULES
        .iter()
        .filter(|m| m.takes_tools())
        .map(|m| format!("`{}`", m.name))
        .collect();
    let verb = if takers.len() == 1 { "takes" } else { "take" };
    format!("{} {verb}", takers.join(", "))
}

fn type_list(types: &[VarType]) -> String {
    let names: Vec<String> = types
        .iter()
        .map(|t| format!("{} {t} variable", t.article()))
        .collect();
    names.join(" or ")
}

fn name_list(names: &[String]) -> String {
    if names.is_empty() {
        return "nothing".to_owned();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constraints::Constraints;

    fn sig(s: &str) -> Signature {
        Signature::parse(s).unwrap()
    }

    fn python(name: &str, module: ModuleRef, s: &str, bindings: Vec<Binding>) -> StepSpec {
        StepSpec {
            name: name.into(),
            kind: StepKind::Python { module },
            signature: sig(s),
            bindings,
            config: vec![],
            called: false,
        }
    }

    fn qa() -> ProgramSpec {
        ProgramSpec {
            name: "Qa".into(),
            signature: Some(sig("question -> answer")),
            variables: vec![
                VariableSpec::new("temperature", VarType::Float, 0.7)
                    .with_constraints(Constraints::range(0.0, 2.0)),
                VariableSpec::new("max_tokens", VarType::Integer, 256),
                VariableSpec::new("reasoning", VarType::Module, "Predict"),
            ],
            steps: vec![
                StepSpec {
                    name: "classify".into(),
                    kind: StepKind::Native {
                        type_name: "Classifier".into(),
                    },
                    signature: sig("question -> category"),
                    bindings: vec![],
                    config: vec![],
                    called: false,
                },
                python(
                    "answer",
                    ModuleRef::Builtin("ChainOfThought".into()),
                    "question, category -> answer",
                    vec![
                        Binding::same_name("temperature"),
                        Binding::same_name("max_tokens"),
                    ],
                ),
            ],
        }
    }

    fn messages(p: &ProgramSpec) -> Vec<String> {
        p.check().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_sound_program_has_no_issues() {
        let p = qa();
        assert!(p.check().is_empty(), "{:?}", p.check());
        assert!(p.requires_bridge());
        assert_eq!(p.input_names(), ["question"]);
    }

    #[test]
    fn bindings_must_name_declared_variables_of_the_right_type() {
        let mut p = qa();
        p.steps[1].bindings = vec![
            Binding::same_name("temprature"),
            Binding::new("max_tokens", "temperature"),
        ];
        assert_eq!(
            messages(&p),
            [
                "no variable named `temprature` is declared; did you mean `temperature`?",
                "parameter `temperature` needs a float variable, but `max_tokens` is an integer variable",
            ]
        );
    }

    #[test]
    fn module_references() {
        let mut p = qa();
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Builtin("ChainOfThougt".into()),
        };
        assert!(messages(&p)[0].starts_with(
            "unknown DSPy module `ChainOfThougt` (did you mean `ChainOfThought`?); expected one of `Predict`"
        ));
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Variable("temperature".into()),
        };
        assert_eq!(
            messages(&p),
            ["`@temperature` needs a module variable, but `temperature` is a float variable"]
        );
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Variable("reasoning".into()),
        };
        assert!(p.check().is_empty());
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Path("nodots".into()),
        };
        assert_eq!(
            p.check()[0].at,
            Location::Step {
                index: 1,
                part: StepPart::Module
            }
        );
    }

    #[test]
    fn fields_must_flow_along_the_chain() {
        let mut p = qa();
        p.steps.swap(0, 1);
        p.signature = Some(sig("question -> answer, summary"));
        assert_eq!(
            messages(&p),
            [
                "input `category` of step `answer` is not produced by the program input or an earlier step; available: `question`",
                "program output `summary` is not produced by any step",
            ]
        );
        assert!(p.check().iter().all(|i| i.problem.is_flow()));
        p.signature = None;
        assert!(p.check().is_empty());
        assert_eq!(p.input_names(), ["question", "category"]);
        assert_eq!(p.output_names(), ["category"]);
    }

    #[test]
    fn field_types_must_agree_along_the_chain() {
        let mut p = qa();
        p.signature = Some(sig("question, k: int -> answer: float"));
        p.steps[0].signature = sig("question, k -> category: list[str]");
        p.steps[1].signature = sig("question, category -> answer: float");
        assert_eq!(
            messages(&p),
            [
                "input `k` of step `classify` is `str`, but the program input declares it `int`; write `k: int`",
                "input `category` of step `answer` is `str`, but step `classify` produces it as `list[str]`; write `category: list[str]`",
            ]
        );
        assert_eq!(
            p.check()[1].at,
            Location::Step {
                index: 1,
                part: StepPart::Input(1)
            }
        );
        assert!(p.check().iter().all(|i| i.problem.is_flow()));
        p.steps[0].signature = sig("question, k: int -> category: list[str]");
        p.steps[1].signature = sig("question, category: list[str] -> answer: int");
        assert_eq!(
            messages(&p),
            [
                "program output `answer` is `float`, but step `answer` produces it as `int`; write `answer: int`"
            ]
        );
        // A later producer of a field shadows an earlier one.
        p.steps[1].signature = sig("question, category: list[str] -> answer: float, k: float");
        p.steps.push(StepSpec {
            name: "check".into(),
            kind: StepKind::Native {
                type_name: "Check".into(),
            },
            signature: sig("k: float -> verdict"),
            bindings: vec![],
            config: vec![],
            called: false,
        });
        assert!(p.check().is_empty(), "{:?}", messages(&p));
    }

    #[test]
    fn without_a_program_signature_the_first_reader_types_an_input() {
        let mut p = qa();
        p.signature = None;
        p.steps[0].signature = sig("question: int -> category");
        assert_eq!(
            messages(&p),
            [
                "input `question` of step `answer` is `str`, but step `classify`, the first to read it from the program input, declares it `int`; write `question: int`"
            ]
        );
        assert_eq!(p.input_fields()[0].ty, FieldType::Int);
        assert_eq!(p.output_fields()[0].name, "answer");
    }

    #[test]
    fn duplicates_and_empty_chain() {
        let mut p = qa();
        p.variables
            .push(VariableSpec::new("temperature", VarType::Float, 0.1));
        p.steps.push(p.steps[0].clone());
        let issues = p.check();
        assert_eq!(issues[0].to_string(), "duplicate variable `temperature`");
        assert_eq!(
            issues[0].at,
            Location::Variable {
                index: 3,
                field: Field::Name
            }
        );
        assert_eq!(issues[1].to_string(), "duplicate step `classify`");
        assert!(!issues[1].problem.is_flow());
        p.steps.clear();
        assert!(
            messages(&p).contains(&"a program needs at least one step in its `chain`".to_owned())
        );
    }

    #[test]
    fn called_steps_stay_out_of_the_flow() {
        let mut p = qa();
        // Reads `context`, which nothing in the chain produces: fine for a called step.
        let mut query = python(
            "generate_query",
            ModuleRef::Builtin("Predict".into()),
            "context, question -> query",
            vec![],
        );
        query.called = true;
        p.steps.insert(0, query.clone());
        assert!(messages(&p).is_empty(), "{:?}", messages(&p));
        assert_eq!(p.chain().count(), 2);
        // Its outputs do not flow on: a chain step reading `query` has no producer.
        let reader = python(
            "search",
            ModuleRef::Builtin("Predict".into()),
            "query -> hits",
            vec![],
        );
        p.steps.push(reader);
        assert!(
            messages(&p)
                .iter()
                .any(|m| m.contains("`query`") && m.contains("search")),
            "{:?}",
            messages(&p)
        );
        // Called steps alone are no chain.
        p.steps = vec![query];
        assert!(
            messages(&p).contains(&"a program needs at least one step in its `chain`".to_owned())
        );
    }

    fn at(issue: &ProgramIssue) -> StepPart {
        match issue.at {
            Location::Step { part, .. } => part,
            other => panic!("not about a step: {other:?}"),
        }
    }

    #[test]
    fn bindings_must_be_parameters_the_module_takes() {
        let mut p = qa();
        p.variables
            .push(VariableSpec::new("iters", VarType::Integer, 3));
        p.steps[1].bindings = vec![Binding::new("iters", "max_iters")];
        let issues = p.check();
        assert_eq!(
            issues[0].to_string(),
            "`ChainOfThought` takes no parameter `max_iters`; expected one of `temperature`, `top_p`, `max_tokens`, `n`, `model`"
        );
        assert_eq!(at(&issues[0]), StepPart::BindingParam(0));
        p.steps[1].bindings = vec![Binding::new("max_tokens", "max_token")];
        assert_eq!(
            messages(&p),
            [
                "`ChainOfThought` takes no parameter `max_token` (did you mean `max_tokens`?); expected one of `temperature`, `top_p`, `max_tokens`, `n`, `model`"
            ]
        );
        // ReAct takes `max_iters` per call, as an integer.
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Builtin("ReAct".into()),
        };
        p.steps[1].bindings = vec![Binding::new("iters", "max_iters")];
        assert!(p.check().is_empty(), "{:?}", p.check());
        p.steps[1].bindings = vec![Binding::new("temperature", "max_iters")];
        assert_eq!(
            messages(&p),
            [
                "parameter `max_iters` needs an integer variable, but `temperature` is a float variable"
            ]
        );
        // A dotted path takes any parameter; the LM parameters keep their types.
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Path("my_pkg.Agent".into()),
        };
        p.steps[1].bindings = vec![
            Binding::new("iters", "anything"),
            Binding::new("iters", "temperature"),
        ];
        assert_eq!(
            messages(&p),
            ["parameter `temperature` needs a float variable, but `iters` is an integer variable"]
        );
        // Native steps take any parameter of any type.
        p.steps[0].bindings = vec![Binding::new("temperature", "max_iters")];
        p.steps[1].bindings.clear();
        assert!(p.check().is_empty());
    }

    #[test]
    fn a_var_step_binds_what_every_module_the_variable_may_name_takes() {
        let mut p = qa();
        p.variables
            .push(VariableSpec::new("iters", VarType::Integer, 3));
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Variable("reasoning".into()),
        };
        p.steps[1].bindings = vec![Binding::new("iters", "max_iters")];
        // Without choices the variable may name every known module.
        assert_eq!(
            messages(&p),
            [
                "`@reasoning` may name `Predict`, which takes no parameter `max_iters`; expected one that every module `@reasoning` may name takes: `temperature`, `top_p`, `max_tokens`, `n`, `model`"
            ]
        );
        p.variables[2] = VariableSpec::new("reasoning", VarType::Module, "ReAct")
            .with_constraints(Constraints::choices(["ReAct", "my_pkg.Agent"]));
        assert!(p.check().is_empty(), "{:?}", p.check());
        p.steps[1].config = vec![ConfigEntry::new("max_iters", 0)];
        assert_eq!(
            messages(&p),
            [
                "`@reasoning` may name `ReAct`, which takes `max_iters` as an integer of at least 1, found 0"
            ]
        );
        p.variables[2] = VariableSpec::new("reasoning", VarType::Module, "ReAct")
            .with_constraints(Constraints::choices(["ReAct", "ProgramOfThought"]));
        p.steps[1].bindings.clear();
        p.steps[1].config = vec![
            ConfigEntry::new("max_iters", 2),
            ConfigEntry::new("tools", ["a.b"]),
        ];
        assert_eq!(
            messages(&p),
            [
                "`@reasoning` may name `ProgramOfThought`, which takes no tools; only `ReAct` takes `tools`"
            ]
        );
    }

    #[test]
    fn with_keys_must_be_taken_by_the_module_with_values_of_their_kind() {
        let mut p = qa();
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Builtin("ReAct".into()),
        };
        p.steps[1].bindings.clear();
        p.steps[1].config = vec![
            ConfigEntry::new("max_iters", 5),
            ConfigEntry::new("tools", ["my_pkg.tools.search"]),
        ];
        assert!(p.check().is_empty(), "{:?}", p.check());
        p.steps[1].config = vec![
            ConfigEntry::new("max_iter", 5),
            ConfigEntry::new("tools", "my_pkg.tools.search"),
            ConfigEntry::new("tools", ["a.b"]),
        ];
        let issues = p.check();
        let said: Vec<String> = issues.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "`ReAct` takes no `with` key `max_iter` (did you mean `max_iters`?); expected one of `max_iters`, `tools`",
                "`ReAct` takes `tools` as a list of tools, like `[\"my_pkg.tools.search\"]`, found a string",
                "`with` key `tools` is given twice in step `answer`",
            ]
        );
        let parts: Vec<StepPart> = issues.iter().map(at).collect();
        assert_eq!(
            parts,
            [
                StepPart::WithKey(0),
                StepPart::WithValue(1),
                StepPart::WithKey(2)
            ]
        );
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Builtin("ProgramOfThought".into()),
        };
        p.steps[1].config = vec![
            ConfigEntry::new("interpreter", "docker"),
            ConfigEntry::new("max_iters", 2.5),
        ];
        assert_eq!(
            messages(&p),
            [
                "`ProgramOfThought` takes `interpreter` as one of \"deno\", \"local\", found \"docker\"",
                "`ProgramOfThought` takes `max_iters` as an integer of at least 1, found a float",
            ]
        );
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Builtin("Predict".into()),
        };
        p.steps[1].config = vec![
            ConfigEntry::new("tools", ["a.b"]),
            ConfigEntry::new("temperature", 0),
            ConfigEntry::new("top_p", 1.5),
        ];
        assert_eq!(
            messages(&p),
            [
                "`Predict` takes no tools; only `ReAct` takes `tools`",
                "`Predict` takes `top_p` as a float from 0.0 to 1.0, found 1.5",
            ]
        );
    }

    #[test]
    fn tools_are_python_paths_listed_once() {
        let mut p = qa();
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Builtin("ReAct".into()),
        };
        p.steps[1].bindings.clear();
        p.steps[1].config = vec![ConfigEntry::new(
            "tools",
            vec![
                ToolRef::Python("my_pkg.search".into()),
                ToolRef::Rust("search_docs".into()),
                ToolRef::Python("calculator".into()),
                ToolRef::Python("my_pkg.search".into()),
            ],
        )];
        let issues = p.check();
        let said: Vec<String> = issues.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "invalid tool path \"calculator\"; expected a dotted Python path like \"my_pkg.tools.search\"",
                "tool `my_pkg.search` is listed twice in step `answer`",
            ]
        );
        let parts: Vec<StepPart> = issues.iter().map(at).collect();
        assert_eq!(parts, [StepPart::WithItem(0, 2), StepPart::WithItem(0, 3)]);
    }

    #[test]
    fn dotted_paths_take_any_key_and_native_steps_none() {
        let mut p = qa();
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Path("my_pkg.Agent".into()),
        };
        p.steps[1].config = vec![
            ConfigEntry::new("depth", 3),
            ConfigEntry::new("names", ["a", "b"]),
            ConfigEntry::new("tools", ["my_pkg.tools.search"]),
        ];
        assert!(p.check().is_empty(), "{:?}", p.check());
        p.steps[1].config = vec![
            ConfigEntry::new("helpers", vec![ToolRef::Python("a.b".into())]),
            ConfigEntry::new("tools", 3),
        ];
        assert_eq!(
            messages(&p),
            [
                "`my_pkg.Agent` takes `helpers` as a literal (a number, a string, a boolean or a list of string literals), found a list of tools",
                "`my_pkg.Agent` takes `tools` as a list of tools, like `[\"my_pkg.tools.search\"]`, found an integer",
            ]
        );
        p.steps[0].config = vec![ConfigEntry::new("depth", 3)];
        let issues = p.check();
        assert_eq!(
            issues[0].to_string(),
            "native step `classify` takes no `with` configuration; `with` configures the DSPy module of a python step, or the adapter of a native `Predict` or `ChainOfThought`"
        );
        assert_eq!(at(&issues[0]), StepPart::With);
    }

    #[test]
    fn native_lm_steps_take_the_adapter_keys_and_no_other_step_does() {
        let mut p = qa();
        p.steps[0].kind = StepKind::Native {
            type_name: "dspex::Predict".into(),
        };
        p.steps[0].config = vec![
            ConfigEntry::new("adapter", "chat"),
            ConfigEntry::new("json_fallback", false),
        ];
        assert!(p.check().is_empty(), "{:?}", p.check());
        p.steps[0].config = vec![ConfigEntry::new("adapter", "json")];
        assert!(p.check().is_empty(), "{:?}", p.check());

        p.steps[0].kind = StepKind::Native {
            type_name: "ChainOfThought".into(),
        };
        p.steps[0].config = vec![
            ConfigEntry::new("adaptor", "json"),
            ConfigEntry::new("adapter", "xml"),
            ConfigEntry::new("json_fallback", "no"),
            ConfigEntry::new("adapter", "chat"),
        ];
        let issues = p.check();
        assert_eq!(
            messages(&p),
            [
                "native `ChainOfThought` takes no `with` key `adaptor` (did you mean `adapter`?); expected one of `adapter`, `json_fallback`",
                "native `ChainOfThought` takes `adapter` as one of \"chat\", \"json\", found \"xml\"",
                "native `ChainOfThought` takes `json_fallback` as a boolean, found a string",
                "`with` key `adapter` is given twice in step `classify`",
            ]
        );
        let parts: Vec<StepPart> = issues.iter().map(at).collect();
        assert_eq!(
            parts,
            [
                StepPart::WithKey(0),
                StepPart::WithValue(1),
                StepPart::WithValue(2),
                StepPart::WithKey(3)
            ]
        );

        p.steps[0].config = vec![
            ConfigEntry::new("adapter", "json"),
            ConfigEntry::new("json_fallback", true),
        ];
        let issues = p.check();
        assert_eq!(
            issues[0].to_string(),
            "`json_fallback` switches the fallback of the chat adapter, and step `classify` uses `adapter: \"json\"`; remove `json_fallback`"
        );
        assert_eq!(at(&issues[0]), StepPart::WithKey(1));

        // A native step of the user's own type: the adapter keys at the key, others at `with`.
        p.steps[0].kind = StepKind::Native {
            type_name: "Classifier".into(),
        };
        p.steps[0].config = vec![
            ConfigEntry::new("adapter", "json"),
            ConfigEntry::new("depth", 3),
        ];
        let issues = p.check();
        assert_eq!(
            issues[0].to_string(),
            "`with` key `adapter` configures dspex's native `Predict` and `ChainOfThought` only; step `classify` is a native step of another type"
        );
        assert_eq!(at(&issues[0]), StepPart::WithKey(0));
        assert_eq!(at(&issues[1]), StepPart::With);
        assert_eq!(issues.len(), 2);

        // A python step of a known module: refused at the key; a dotted path takes any key.
        p.steps[0].config = vec![];
        p.steps[1].config = vec![ConfigEntry::new("json_fallback", false)];
        let issues = p.check();
        assert_eq!(
            issues[0].to_string(),
            "`with` key `json_fallback` configures dspex's native `Predict` and `ChainOfThought` only; step `answer` is a python step, whose DSPy module takes no such key"
        );
        assert_eq!(at(&issues[0]), StepPart::WithKey(0));
        p.steps[1].kind = StepKind::Python {
            module: ModuleRef::Path("my_pkg.Agent".into()),
        };
        assert!(p.check().is_empty(), "{:?}", p.check());
    }
}
