use dspex::prelude::*;

#[derive(Program)]
struct Qa {
    #[variable(initial = 0.7, min = 0.0, max = 2.0, readonly = "yes")]
    temperature: Var<f64>,
    #[step(python = "Predict", signature = "question -> answer", bind(temperature))]
    answer: PythonModule,
}

fn main() {}
