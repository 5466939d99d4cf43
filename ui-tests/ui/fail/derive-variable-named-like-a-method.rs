use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[variable(initial = "ChainOfThought")]
    context: Var<ModuleName>,
    #[step(python = "Predict", signature = "question -> answer")]
    answer: PythonModule,
}

fn main() {}
