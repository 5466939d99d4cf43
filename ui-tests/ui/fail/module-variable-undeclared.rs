use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            reasoning: module = "Predict",
        }
        chain {
            answer: python @reasonin("question -> answer"),
        }
    }
}

fn main() {}
