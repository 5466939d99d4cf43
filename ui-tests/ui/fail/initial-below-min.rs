use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            max_tokens: integer = 0 { min: 1, max: 4096 },
        }
        chain {
            answer: python Predict("question -> answer") { max_tokens },
        }
    }
}

fn main() {}
