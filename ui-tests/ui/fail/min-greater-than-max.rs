use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = 1.0 { min: 2.0, max: 0.5 },
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
