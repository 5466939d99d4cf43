use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python ReAct("question -> answer") with { max_iter: 5 },
        }
    }
}

fn main() {}
