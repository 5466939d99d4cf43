use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            iters: integer = 3,
        }
        chain {
            answer: python ChainOfThought("question -> answer") { iters as max_iters },
        }
    }
}

fn main() {}
