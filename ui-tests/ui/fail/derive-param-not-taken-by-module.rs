use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[variable(initial = 3)]
    iters: Var<i64>,
    #[step(python = "ChainOfThought", signature = "question -> answer", bind(iters as max_iters))]
    answer: PythonModule,
}

fn main() {}
