use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            style: string = "concise" { max_length: "forty" },
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
