use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer, confidence" {
        chain {
            answer: python Predict("question -> answer, confidence: float"),
        }
    }
}

fn main() {}
