use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(native, signature = "question -> answer")]
    answer: PythonModule,
}

fn main() {}
