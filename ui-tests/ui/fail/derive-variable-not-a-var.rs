use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[variable(initial = 0.7)]
    temperature: f64,
    #[step(python = "Predict", signature = "question -> answer")]
    answer: PythonModule,
}

fn main() {}
