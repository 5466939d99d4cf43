use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer, answer" {
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
