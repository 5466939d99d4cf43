use dspex::prelude::*;

dspex_program! {
    program Qa: "question, k: int -> answer" {
        chain {
            retrieve: python Predict("question, k -> passages: list[str]"),
            answer: python ChainOfThought("question, passages -> answer"),
        }
    }
}

fn main() {
    // The input and output structs are still generated, with their declared types.
    let _ = QaInput {
        question: String::new(),
        k: 3,
    };
}
