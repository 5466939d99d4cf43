use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            model: boolean = true,
        }
        chain {
            answer: python Predict("question -> answer") { model },
        }
    }
}

fn main() {}
