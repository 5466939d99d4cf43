use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[variable(initial = 0.7)]
    temperature: Var<f64>,
    #[step(
        python = "Predict",
        signature = "question -> answer",
        binds(temperature)
    )]
    answer: PythonModule,
}

fn main() {}
