use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[variable(initial = 0.7)]
    temperature: Var<f64>,
    #[step(
        python = "Predict",
        signature = "question -> plan",
        bind(temperature as max_iters),
        with(tools = ["a.b"])
    )]
    plan: PythonModule,
    #[step(
        python = "ReAct",
        signature = "question, plan -> answer",
        bind(temperature as max_iters),
        with(max_iters = 0, verbose = true)
    )]
    answer: PythonModule,
}

fn main() {}
