use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(
        python = "ReAct",
        signature = "question -> answer",
        with(max_iters = 5),
        with(max_iters = 6)
    )]
    answer: PythonModule,
}

fn main() {}
