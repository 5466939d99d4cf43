use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer, confidence: double")]
struct Qa {
    #[step(python = "Predict", signature = "question -> answer, confidence: flaot")]
    answer: PythonModule,
}

fn main() {}
