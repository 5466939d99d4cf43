//! `dspex_program!` with every variable type, bindings with `as`, a `@var` module, a path
//! module, native and python steps, and read-only variables.

use dspex::prelude::*;
use dspex::spec::{ModuleRef, StepKind};

#[derive(Default)]
struct Classify;

impl Module for Classify {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let model = params.get::<String>("llm_model")?;
        Ok(Fields::from([(
            "category",
            format!("{model}: {}", inputs.get::<&str>("question")?),
        )]))
    }
}

dspex_program! {
    /// Every variable type at once.
    pub program Everything: "question -> answer" {
        variables {
            temperature: float = 0.7 { min: 0.0, max: 2.0, description: "sampling temperature" },
            max_tokens: integer = 256 { min: 1, max: 4096 },
            style: string = "concise" { min_length: 1, max_length: 40, pattern: "[a-z]+" },
            verbose: boolean = false { readonly: false },
            model: choice = "gpt-4o-mini" { choices: ["gpt-4o-mini", "claude-3-haiku"], readonly: true },
            reasoning: module = "ChainOfThought" { choices: ["Predict", "ChainOfThought"] },
            query: embedding = [0.1, -0.2, 0.3] { dimensions: 3 },
        }
        chain {
            classify: native Classify("question -> category") { model as llm_model },
            answer: python @reasoning("question, category -> answer") {
                temperature,
                max_tokens,
                model,
            },
            polish: python "my_pkg.modules.Polisher"("answer -> polished") { verbose as debug },
        }
    }
}

fn accessors_are_typed(p: &Everything) {
    let _: &Var<f64> = p.temperature();
    let _: &Var<i64> = p.max_tokens();
    let _: &Var<String> = p.style();
    let _: &Var<bool> = p.verbose();
    let _: &Var<Choice> = p.model();
    let _: &Var<ModuleName> = p.reasoning();
    let _: &Var<Embedding> = p.query();
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
    assert_eq!(spec.steps[0].bindings[0].param, "llm_model");
    assert!(matches!(
        &spec.steps[1].kind,
        StepKind::Python { module: ModuleRef::Variable(var) } if var == "reasoning"
    ));
    let _ = accessors_are_typed;
    let _ = EverythingInput {
        question: "What is DSPy?".to_owned(),
    };
}
