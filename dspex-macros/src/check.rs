//! The check pass. Every rule that needs no compiler comes from `dspex-core`
//! (`ProgramSpec::check`, the same code the runtime builder runs), with each issue's
//! `Location` mapped back to the offending tokens; the macro adds only the rules about the code
//! it generates (a variable named like a generated method, a signature field that cannot be a
//! Rust field, `Literal` values or fields whose generated names clash).

use dspex_core::program::ProgramSpec;
use dspex_core::program::{Location, ProgramIssue, ProgramProblem, StepPart};
use dspex_core::{ConstraintKey, ConstraintProblem, Field, SpecProblem};
use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::ctxt::{Ctxt, Place};
use crate::model::{
    Form, GENERATED_METHODS, Program, Step, StepKindIr, Variable, literal_clashes, rust_field,
};

/// Checks `program`, reporting every issue to `cx`. Returns the spec to generate from, with
/// initial values in canonical form, when the whole invocation (parsing included) is clean.
pub(crate) fn check(program: &Program, cx: &Ctxt) -> Option<ProgramSpec> {
    if program.partial {
        return None;
    }
    let mut spec = program.spec();
    for issue in spec.check() {
        if !consequential(program, &issue) {
            let (place, tokens) = locate(program, &issue);
            cx.error(place, tokens, message(program, &issue));
        }
    }
    generated_names(program, cx);
    features(program, cx);
    if cx.has_errors() {
        return None;
    }
    for var in &mut spec.variables {
        if let Ok(canonical) = var.check() {
            var.initial = canonical;
        }
    }
    Some(spec)
}

/// Python steps need dspex's `python` feature, which dspex forwards to this crate: without
/// it, each python step is an error at its module.
fn features(program: &Program, cx: &Ctxt) {
    if cfg!(feature = "python") {
        return;
    }
    for step in &program.steps {
        if let Some(StepKindIr::Python(module)) = &step.kind {
            cx.error(
                Place::Item(step.pos),
                &module.tokens,
                format!(
                    "python step `{}` needs dspex's `python` feature; enable it in Cargo.toml (`dspex = {{ version = \"0.1\", features = [\"python\"] }}`, a default feature), or make the step native",
                    step.name
                ),
            );
        }
    }
}

/// Whether an issue only follows from a part that could not be read and was reported already.
fn consequential(program: &Program, issue: &ProgramIssue) -> bool {
    match (&issue.at, &issue.problem) {
        (Location::Variable { index, field }, _) => program
            .variables
            .get(*index)
            .is_some_and(|v| v.incomplete && *field != Field::Name),
        (_, problem) if problem.is_flow() => !program.signatures_known(),
        (
            Location::Step {
                index,
                part: StepPart::WithValue(entry) | StepPart::WithItem(entry, _),
            },
            _,
        ) => program
            .steps
            .get(*index)
            .and_then(|s| s.config.get(*entry))
            .is_some_and(|e| e.value.is_none()),
        (
            _,
            ProgramProblem::ParamType { variable, .. }
            | ProgramProblem::NotAModuleVariable { variable, .. },
        ) => program.variable(variable).is_some_and(|v| v.ty.is_none()),
        _ => false,
    }
}

/// The message of an issue: the `dspex-core` message, so that compile time and run time say
/// the same, with a hint where the derive form hides the reason.
fn message(program: &Program, issue: &ProgramIssue) -> String {
    let text = issue.problem.to_string();
    if program.form == Form::Macro {
        return text;
    }
    match (&issue.at, &issue.problem) {
        (_, ProgramProblem::EmptyChain) => {
            format!("{text}; in a derived program a step is a field marked `#[step(...)]`")
        }
        (
            Location::Variable { index, .. },
            ProgramProblem::Variable {
                variable,
                problem: SpecProblem::Initial(e),
            },
        ) if e.is_type_error() => match program.variables.get(*index) {
            Some(Variable {
                field_ty: Some(ty),
                ty: Some(var_type),
                ..
            }) => format!(
                "{text}: the field type `{}` makes `{variable}` {} {var_type} variable",
                ty.to_token_stream().to_string().replace(' ', ""),
                var_type.article()
            ),
            _ => text,
        },
        _ => text,
    }
}

/// Where an issue is reported: its place in the source order and the tokens it is about.
fn locate(program: &Program, issue: &ProgramIssue) -> (Place, TokenStream) {
    let whole = || program.ident.to_token_stream();
    match issue.at {
        Location::Variable { index, field } => match program.variables.get(index) {
            Some(var) => (
                Place::Item(var.pos),
                variable_tokens(var, field, &issue.problem),
            ),
            None => (Place::Tail, whole()),
        },
        Location::Step { index, part } => match program.steps.get(index) {
            Some(step) => (
                Place::Item(step.pos),
                step_tokens(step, part, &issue.problem),
            ),
            None => (Place::Tail, whole()),
        },
        Location::ProgramOutput(_) => (
            Place::Tail,
            program
                .signature
                .as_ref()
                .map_or_else(whole, |s| s.lit.to_token_stream()),
        ),
        Location::Chain => (Place::Tail, program.chain.clone()),
    }
}

fn variable_tokens(var: &Variable, field: Field, problem: &ProgramProblem) -> TokenStream {
    let not_applicable = matches!(
        problem,
        ProgramProblem::Variable {
            problem: SpecProblem::Constraint(ConstraintProblem::NotApplicable { .. }),
            ..
        }
    );
    let key = |key: ConstraintKey| {
        var.key(key).map(|k| {
            if not_applicable {
                k.ident.to_token_stream()
            } else {
                k.value.clone()
            }
        })
    };
    let tokens = match field {
        Field::Name => Some(var.name.to_token_stream()),
        Field::Initial => var.initial.as_ref().map(|i| i.tokens.clone()),
        Field::Choice(i) => var.choice_tokens.get(i).cloned(),
        field => ConstraintKey::ALL
            .into_iter()
            .find(|k| k.field() == field)
            .and_then(key),
    };
    // A missing part (`choices` of a choice variable) is about the declared type.
    tokens.unwrap_or_else(|| var.ty_tokens.clone())
}

fn step_tokens(step: &Step, part: StepPart, problem: &ProgramProblem) -> TokenStream {
    let tokens = match part {
        StepPart::Name => None,
        StepPart::Module => match &step.kind {
            Some(StepKindIr::Python(module)) => Some(module.tokens.clone()),
            _ => None,
        },
        StepPart::Input(_) => step.signature.as_ref().map(|s| s.lit.to_token_stream()),
        StepPart::Binding(b) => step.bindings.get(b).map(|binding| {
            if matches!(problem, ProgramProblem::ParamType { .. }) {
                binding.tokens()
            } else {
                binding.variable.to_token_stream()
            }
        }),
        StepPart::BindingParam(b) => step.bindings.get(b).map(|binding| {
            binding
                .param
                .as_ref()
                .unwrap_or(&binding.variable)
                .to_token_stream()
        }),
        StepPart::With => step.with.clone(),
        StepPart::WithKey(i) => step.config.get(i).map(|e| e.key.to_token_stream()),
        StepPart::WithValue(i) => step.config.get(i).map(|e| e.tokens.clone()),
        StepPart::WithItem(i, item) => step.config.get(i).and_then(|e| e.items.get(item)).cloned(),
    };
    tokens.unwrap_or_else(|| step.name.to_token_stream())
}

/// The methods of a generated builder besides its setters.
const BUILDER_METHODS: [&str; 2] = ["start", "attach"];

/// Names that the generated code cannot carry: a variable whose accessor would collide with a
/// generated method, a native step named like a builder method, a signature field that cannot be a field of `XInput`/`XOutput`, and
/// clashing names of the enums generated for `Literal` fields.
fn generated_names(program: &Program, cx: &Ctxt) {
    for var in &program.variables {
        let name = var.name();
        if GENERATED_METHODS.contains(&name.as_str()) {
            cx.error(
                Place::Item(var.pos),
                &var.name,
                format!(
                    "variable `{name}` would collide with the generated method `{}::{name}`; rename the variable",
                    program.ident
                ),
            );
        }
    }
    // A native step's name is a setter of the generated builder, beside its own methods.
    for step in &program.steps {
        let name = step.name();
        if matches!(step.kind, Some(StepKindIr::Native(_)))
            && BUILDER_METHODS.contains(&name.as_str())
        {
            cx.error(
                Place::Item(step.pos),
                &step.name,
                format!(
                    "native step `{name}` would collide with the generated method `{}Builder::{name}`; rename the step",
                    program.ident
                ),
            );
        }
    }
    let Some(sig) = &program.signature else {
        return;
    };
    if let Some(parsed) = &sig.parsed {
        for clash in literal_clashes(&program.ident, parsed) {
            cx.error(Place::Header, &sig.lit, clash.0);
        }
    }
    let fields = sig
        .parsed
        .iter()
        .flat_map(|s| s.inputs.iter().chain(&s.outputs));
    for field in fields {
        if rust_field(&field.name, sig.lit.span()).is_none() {
            cx.error(
                Place::Header,
                &sig.lit,
                format!(
                    "signature field `{}` cannot be a Rust field of `{}Input` or `{}Output`; rename the field",
                    field.name, program.ident, program.ident
                ),
            );
        }
    }
}
