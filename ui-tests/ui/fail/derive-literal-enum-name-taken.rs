use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer, output: Literal['short', 'long']")]
struct Qa {
    #[step(python = "Predict", signature = "question -> answer, output: Literal['short', 'long']")]
    answer: PythonModule,
}

fn main() {}
