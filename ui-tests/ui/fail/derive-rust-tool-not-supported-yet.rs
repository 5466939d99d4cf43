use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(
        python = "ReAct",
        signature = "question -> answer",
        with(tools = [search_docs, "my_pkg.tools.calculator"])
    )]
    answer: PythonModule,
}

fn main() {}
