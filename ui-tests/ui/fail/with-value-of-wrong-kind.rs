use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            plan: python ReAct("question -> plan") with { max_iters: "5" },
            answer: python ProgramOfThought("question, plan -> answer") with { interpreter: "docker" },
        }
    }
}

fn main() {}
