use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = 2.5 { min: 0.0, max: 2.0 },
        }
        chain {
            answer: python Predict("question -> answer") { temperature },
        }
    }
}

fn main() {}
