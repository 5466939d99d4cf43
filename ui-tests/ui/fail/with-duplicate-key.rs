use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python ReAct("question -> answer") with { max_iters: 5, max_iters: 6 },
        }
    }
}

fn main() {}
