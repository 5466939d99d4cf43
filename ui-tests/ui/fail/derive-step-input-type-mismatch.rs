use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(python = "Predict", signature = "question -> confidence: float")]
    score: PythonModule,
    #[step(python = "Predict", signature = "question, confidence: int -> answer")]
    answer: PythonModule,
}

fn main() {}
