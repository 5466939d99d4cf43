use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            model: choice = "gpt-5" { choices: ["gpt-4o-mini", "claude-3-haiku"] },
        }
        chain {
            answer: python Predict("question -> answer") { model },
        }
    }
}

fn main() {}
