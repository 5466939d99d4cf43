use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            query: embedding = [0.1, 0.2] { dimensions: 3 },
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
