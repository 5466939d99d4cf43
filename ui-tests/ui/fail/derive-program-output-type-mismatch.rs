use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> label: Literal['yes', 'no']")]
struct Qa {
    #[step(python = "Predict", signature = "question -> label: Literal['yes', 'no', 'maybe']")]
    answer: PythonModule,
}

fn main() {}
