use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            classify: python Predict("question -> category"),
            summary: python Predict("question, category -> summary"),
        }
    }
}

fn main() {}
