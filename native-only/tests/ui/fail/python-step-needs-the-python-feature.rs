use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python ChainOfThought("question -> answer"),
        }
    }
}

#[derive(Program)]
#[program(signature = "question -> answer")]
struct DerivedQa {
    #[step(python = "Predict", signature = "question -> answer")]
    answer: PythonModule,
}

fn main() {}
