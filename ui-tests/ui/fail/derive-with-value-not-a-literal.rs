use dspex::prelude::*;

const ITERS: i64 = 5;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(python = "ReAct", signature = "question -> answer", with(max_iters = ITERS + 1, tools = [1]))]
    answer: PythonModule,
}

fn main() {}
