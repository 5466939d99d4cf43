use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            solver: module = "ReAct" { choices: ["ReAct", "ProgramOfThought"] },
        }
        chain {
            answer: python @solver("question -> answer") with { max_iters: 2, interpreter: "local" },
        }
    }
}

fn main() {}
