//! The program model shared by both macro front ends and the runtime builder, and the one check
//! pass that validates it. Issues carry a [`Location`] so that the macros can point at the
//! offending token and the builder can name the offending part.

use std::fmt;

use crate::constraints::Field;
use crate::signature::{Signature, is_identifier};
use crate::spec::{SpecProblem, VariableSpec};
use crate::suggest::did_you_mean;
use crate::value::VarType;

/// The DSPy module classes the worker knows by name. A `module` variable without `choices`
/// accepts exactly these.
pub const KNOWN_MODULES: &[&str] = &["Predict", "ChainOfThought", "ReAct", "ProgramOfThought"];

/// Module parameters whose type the bridge knows: binding one to a variable of another type is
/// an error. `model` accepts a `choice` or a `string` variable.
pub const KNOWN_PARAMS: &[(&str, &[VarType])] = &[
    ("temperature", &[VarType::Float]),
    ("top_p", &[VarType::Float]),
    ("max_tokens", &[VarType::Integer]),
    ("n", &[VarType::Integer]),
    ("model", &[VarType::Choice, VarType::String]),
];

/// The variable types a known module parameter accepts, if the parameter is known.
pub fn param_types(param: &str) -> Option<&'static [VarType]> {
    KNOWN_PARAMS
        .iter()
        .find(|(p, _)| *p == param)
        .map(|(_, types)| *types)
}

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
    /// A known DSPy module (`ChainOfThought`), see [`KNOWN_MODULES`].
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
}

impl ProgramSpec {
    /// Whether any step is python, so that the program needs the bridge.
    pub fn requires_bridge(&self) -> bool {
        self.steps.iter().any(StepSpec::is_python)
    }

    /// The variable declared under `name`.
    pub fn variable(&self, name: &str) -> Option<&VariableSpec> {
        self.variables.iter().find(|v| v.name == name)
    }

    /// The program's input field names: the signature's inputs, or else every step input that
    /// no earlier step produces.
    pub fn input_names(&self) -> Vec<String> {
        if let Some(sig) = &self.signature {
            return sig.input_names().map(str::to_owned).collect();
        }
        let mut produced: Vec<&str> = Vec::new();
        let mut inputs: Vec<String> = Vec::new();
        for step in &self.steps {
            for input in step.signature.input_names() {
                if !produced.contains(&input) && !inputs.iter().any(|i| i == input) {
                    inputs.push(input.to_owned());
                }
            }
            produced.extend(step.signature.output_names());
        }
        inputs
    }

    /// The program's output field names: the signature's outputs, or else the last step's.
    pub fn output_names(&self) -> Vec<String> {
        match (&self.signature, self.steps.last()) {
            (Some(sig), _) => sig.output_names().map(str::to_owned).collect(),
            (None, Some(last)) => last.signature.output_names().map(str::to_owned).collect(),
            (None, None) => Vec::new(),
        }
    }

    /// Runs every check of a program declaration that needs no compiler: each variable
    /// declaration, duplicate names, bindings, known parameters, module names, `@var`, the flow
    /// of fields along the chain, and an empty chain. Returns every issue, in source order.
    pub fn check(&self) -> Vec<ProgramIssue> {
        let mut issues = Vec::new();
        self.check_variables(&mut issues);
        if self.steps.is_empty() {
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
            if let Some(types) = param_types(&binding.param)
                && !types.contains(&var.ty)
            {
                issues.push(ProgramIssue::new(
                    at(StepPart::Binding(b)),
                    ProgramProblem::ParamType {
                        param: binding.param.clone(),
                        expected: types,
                        variable: var.name.clone(),
                        found: var.ty,
                    },
                ));
            }
        }
    }

    fn check_module(&self, module: &ModuleRef) -> Option<ProgramProblem> {
        match module {
            ModuleRef::Builtin(name) => {
                (!KNOWN_MODULES.contains(&name.as_str())).then(|| ProgramProblem::UnknownModule {
                    name: name.clone(),
                    suggestion: did_you_mean(name, KNOWN_MODULES.iter().copied()),
                })
            }
            ModuleRef::Path(path) => {
                let segments: Vec<&str> = path.split('.').collect();
                (segments.len() < 2 || !segments.iter().all(|s| is_identifier(s)))
                    .then(|| ProgramProblem::InvalidModulePath(path.clone()))
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

    /// Fields must flow: each step input is a program input or an earlier step's output; each
    /// program output is some step's output. Without a program signature inputs are free.
    fn check_flow(&self, issues: &mut Vec<ProgramIssue>) {
        let Some(sig) = &self.signature else { return };
        let mut available: Vec<&str> = sig.input_names().collect();
        for (index, step) in self.steps.iter().enumerate() {
            for (field, input) in step.signature.input_names().enumerate() {
                if !available.contains(&input) {
                    issues.push(ProgramIssue::new(
                        Location::Step {
                            index,
                            part: StepPart::Input(field),
                        },
                        ProgramProblem::UnproducedInput {
                            step: step.name.clone(),
                            field: input.to_owned(),
                            available: available.iter().map(|s| (*s).to_owned()).collect(),
                        },
                    ));
                }
            }
            available.extend(step.signature.output_names());
        }
        if self.steps.is_empty() {
            return;
        }
        let produced: Vec<&str> = self
            .steps
            .iter()
            .flat_map(|s| s.signature.output_names())
            .collect();
        for (index, output) in sig.output_names().enumerate() {
            if !produced.contains(&output) {
                issues.push(ProgramIssue::new(
                    Location::ProgramOutput(index),
                    ProgramProblem::UnproducedOutput(output.to_owned()),
                ));
            }
        }
    }
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
        KNOWN_MODULES.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
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
    /// No steps.
    #[error("a program needs at least one step in its `chain`")]
    EmptyChain,
}

impl ProgramProblem {
    /// Whether the problem is about the flow of fields along the chain (a step input or a
    /// program output that nothing produces). Such problems are only meaningful when every
    /// signature could be read: a tool that leaves out a step with a malformed signature, or
    /// gives it a placeholder, drops them rather than report consequences of that one mistake.
    pub fn is_flow(&self) -> bool {
        matches!(
            self,
            ProgramProblem::UnproducedInput { .. } | ProgramProblem::UnproducedOutput(_)
        )
    }
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
}
