use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = 0.7,
            cold: float = 0.1,
        }
        chain {
            answer: python Predict("question -> answer") { temperature, cold as temperature },
        }
    }
}

fn main() {}
