use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = default_temperature(),
        }
        chain {
            answer: python Predict("question -> answer") { temperature },
        }
    }
}

fn main() {}
