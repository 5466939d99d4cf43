use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python Predict("question -> answer"),
            answer: python ChainOfThought("question -> answer"),
        }
    }
}

fn main() {}
