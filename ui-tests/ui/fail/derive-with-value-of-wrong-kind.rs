use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(python = "ReAct", signature = "question -> plan", with(max_iters = "5"))]
    plan: PythonModule,
    #[step(
        python = "ProgramOfThought",
        signature = "question, plan -> answer",
        with(interpreter = "docker")
    )]
    answer: PythonModule,
}

fn main() {}
