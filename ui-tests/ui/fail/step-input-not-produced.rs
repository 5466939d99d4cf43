use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python Predict("question, category -> answer"),
            classify: python Predict("question -> category"),
        }
    }
}

fn main() {}
