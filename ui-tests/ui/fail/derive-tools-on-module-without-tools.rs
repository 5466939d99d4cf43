use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(
        python = "ChainOfThought",
        signature = "question -> answer",
        with(tools = ["my_pkg.tools.search"])
    )]
    answer: PythonModule,
}

fn main() {}
