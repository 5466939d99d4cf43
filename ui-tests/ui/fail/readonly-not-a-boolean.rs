use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = 0.7 { min: 0.0, max: 2.0, readonly: 1 },
        }
        chain {
            answer: python Predict("question -> answer") { temperature },
        }
    }
}

fn main() {}
