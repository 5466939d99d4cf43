use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: double = 0.7,
        }
        chain {
            answer: python Predict("question -> answer") { temperature },
        }
    }
}

fn main() {}
