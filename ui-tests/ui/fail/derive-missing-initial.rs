use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[variable(min = 0.0, max = 2.0)]
    temperature: Var<f64>,
    #[step(python = "Predict", signature = "question -> answer")]
    answer: PythonModule,
}

fn main() {}
