use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            model: choice = "gpt-4o-mini" { choices: ["gpt-4o-mini", "claude-3-haiku", "gpt-4o-mini"] },
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
