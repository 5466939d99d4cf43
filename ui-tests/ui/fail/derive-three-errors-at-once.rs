use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[variable(initial = "fast", min = 0.0, max = 2.0)]
    temperature: Var<f64>,
    #[variable(initial = "gpt-5", choices = ["gpt-4o-mini", "claude-3-haiku"])]
    model: Var<Choice>,
    #[step(
        python = "ChainOfThought",
        signature = "question -> answer",
        bind(temprature, model)
    )]
    answer: PythonModule,
}

fn main() {}
