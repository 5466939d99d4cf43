//! `#[derive(Program)]` with every variable type, bindings with `as`, a `@var` module, native
//! and python steps, a `Context` field, and read-only variables (the flag and its `= bool`
//! form).

use dspex::prelude::*;

#[derive(Default)]
struct Classify;

impl Module for Classify {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        Ok(Fields::from([("category", inputs.get::<&str>("question")?)]))
    }
}

/// Every variable type at once.
#[derive(Program)]
#[program(signature = "question -> answer")]
pub struct Everything {
    /// The sampling temperature.
    #[variable(
        initial = 0.7,
        min = 0.0,
        max = 2.0,
        description = "sampling temperature"
    )]
    temperature: Var<f64>,
    #[variable(initial = 256, min = 1, max = 4096)]
    max_tokens: Var<i64>,
    #[variable(
        initial = "concise",
        min_length = 1,
        max_length = 40,
        pattern = "[a-z]+"
    )]
    style: Var<String>,
    #[variable(initial = false, readonly = false)]
    verbose: dspex::Var<bool>,
    #[variable(initial = "gpt-4o-mini", choices = ["gpt-4o-mini", "claude-3-haiku"], readonly)]
    model: Var<Choice>,
    #[variable(initial = "ChainOfThought", choices = ["Predict", "ChainOfThought"])]
    reasoning: Var<ModuleName>,
    #[variable(initial = [0.1, -0.2, 0.3], dimensions = 3)]
    query: Var<Embedding>,
    #[step(native, signature = "question -> category", bind(model as llm_model))]
    classify: Classify,
    #[step(
        python = "@reasoning",
        signature = "question, category -> answer",
        bind(temperature, max_tokens, model)
    )]
    answer: PythonModule,
    #[step(python = "my_pkg.modules.Polisher", signature = "answer -> polished", bind(verbose as debug))]
    polish: dspex::PythonModule,
    ctx: Context,
}

fn accessors_are_typed(p: &Everything) {
    let _: &Var<f64> = p.temperature();
    let _: &Var<i64> = p.max_tokens();
    let _: &Var<String> = p.style();
    let _: &Var<bool> = p.verbose();
    let _: &Var<Choice> = p.model();
    let _: &Var<ModuleName> = p.reasoning();
    let _: &Var<Embedding> = p.query();
    let _: &Context = p.context();
}

fn main() {
    const { assert!(Everything::REQUIRES_BRIDGE) };
    let spec = Everything::spec();
    let types: Vec<VarType> = spec.variables.iter().map(|v| v.ty).collect();
    assert_eq!(types, VarType::ALL);
    let readonly: Vec<&str> = spec
        .variables
        .iter()
        .filter(|v| v.readonly)
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(readonly, ["model"]);
    let steps: Vec<&str> = spec.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(steps, ["classify", "answer", "polish"]);
    assert_eq!(spec.steps[0].bindings[0].param, "llm_model");
    let _ = accessors_are_typed;
    let _ = EverythingInput::default();
}
