use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            language: string = "en" { pattern: "[a-z" },
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
