use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(python = "Predict", signature = "question -> answer", with(top_p = 1.5, n = 0))]
    answer: PythonModule,
}

fn main() {}
