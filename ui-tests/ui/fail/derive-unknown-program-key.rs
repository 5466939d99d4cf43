use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer", name = "qa")]
struct Qa {
    #[step(python = "Predict", signature = "question -> answer")]
    answer: PythonModule,
}

fn main() {}
