use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = 0.7 { minimum: 0.0 },
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
