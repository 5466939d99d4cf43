use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            run: boolean = false,
        }
        chain {
            answer: python Predict("question -> answer"),
        }
    }
}

fn main() {}
