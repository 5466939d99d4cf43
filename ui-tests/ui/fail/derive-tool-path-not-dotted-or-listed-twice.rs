use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(
        python = "ReAct",
        signature = "question -> answer",
        with(tools = ["calculator", "my_pkg.tools.search", "my_pkg.tools.search"])
    )]
    answer: PythonModule,
}

fn main() {}
