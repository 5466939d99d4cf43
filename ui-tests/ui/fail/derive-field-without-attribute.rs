use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[variable(initial = 0.7)]
    temperature: Var<f64>,
    cache: Vec<String>,
    #[step(python = "Predict", signature = "question -> answer")]
    answer: PythonModule,
}

fn main() {}
