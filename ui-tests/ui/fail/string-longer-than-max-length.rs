use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            style: string = "long-winded and thorough" { max_length: 10 },
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
