use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(python = "ReAct", signature = "question -> answer", with(max_iter = 5))]
    answer: PythonModule,
}

fn main() {}
