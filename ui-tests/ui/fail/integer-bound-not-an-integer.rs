use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            max_tokens: integer = 256 { min: 0.5, max: 4096 },
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
