use dspex::prelude::*;

const ITERS: i64 = 5;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python ReAct("question -> answer") with { max_iters: ITERS + 1, tools: [1] },
        }
    }
}

fn main() {}
