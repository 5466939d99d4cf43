use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            model: choice = "gpt-4o-mini" { choices: [] },
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
