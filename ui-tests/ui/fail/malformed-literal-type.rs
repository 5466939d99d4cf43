use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> label: Literal[positive, negative]" {
        chain {
            classify: python Predict("question -> label: Literal['positive', 'positive']"),
        }
    }
}

fn main() {}
