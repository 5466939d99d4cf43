use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = "hot" { min: 0.0, max: 2.0 },
        }
        chain {
            answer: python Predict("question -> answer") { temperature },
        }
    }
}

fn main() {}
