use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = 0.7,
            max_tokens: integer = 256,
        }
        chain {
            answer: python Predict("question -> answer") { max_tokens as temperature },
        }
    }
}

fn main() {}
