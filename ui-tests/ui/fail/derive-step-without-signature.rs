use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(python = "ChainOfThought")]
    answer: PythonModule,
}

fn main() {}
