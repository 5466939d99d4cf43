use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python Predict("question answer"),
        }
    }
}

fn main() {}
