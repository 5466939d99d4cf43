use dspex::prelude::*;

struct Calculator;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(
        python = "ReAct",
        signature = "question -> answer",
        with(tools = [Calculator, "my_pkg.tools.calculator"])
    )]
    answer: PythonModule,
}

fn main() {}
