use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[variable(initial = 3)]
    max_iters: Var<i64>,
    #[variable(initial = "ReAct", choices = ["ReAct", "Predict"])]
    reasoning: Var<ModuleName>,
    #[step(python = "@reasoning", signature = "question -> answer", bind(max_iters))]
    answer: PythonModule,
}

fn main() {}
