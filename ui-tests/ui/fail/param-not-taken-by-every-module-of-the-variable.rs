use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            max_iters: integer = 3,
            reasoning: module = "ReAct" { choices: ["ReAct", "Predict"] },
        }
        chain {
            answer: python @reasoning("question -> answer") { max_iters },
        }
    }
}

fn main() {}
