use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> label: Literal[]")]
struct Qa {
    #[step(python = "Predict", signature = "question -> label: Literal['a' 'b']")]
    classify: PythonModule,
}

fn main() {}
