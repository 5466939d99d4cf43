use dspex::prelude::*;

dspex_program! {
    program Qa: "question: string -> answer" {
        chain {
            answer: python Predict("question -> answer: List[str]"),
        }
    }
}

fn main() {}
