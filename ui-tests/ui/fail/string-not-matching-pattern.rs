use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            language: string = "EN" { pattern: "[a-z]{2}" },
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
