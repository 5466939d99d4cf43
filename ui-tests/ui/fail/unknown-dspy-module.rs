use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python ChainOfThougt("question -> answer"),
        }
    }
}

fn main() {}
