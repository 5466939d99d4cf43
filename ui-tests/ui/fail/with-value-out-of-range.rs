use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python Predict("question -> answer") with { top_p: 1.5, n: 0 },
        }
    }
}

fn main() {}
