use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            style: string = "" { min_length: 1 },
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
