use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = 0.7 { min: 0.0, choices: ["low", "high"] },
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
