use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[variable(initial = "ReAct", choices = ["ReAct", "ProgramOfThought"])]
    solver: Var<ModuleName>,
    #[step(
        python = "@solver",
        signature = "question -> answer",
        with(max_iters = 2, interpreter = "local")
    )]
    answer: PythonModule,
}

fn main() {}
