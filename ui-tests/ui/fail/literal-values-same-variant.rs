use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> kind: Literal['follow-up', 'follow up', 'new']" {
        chain {
            classify: python Predict("question -> kind: Literal['follow-up', 'follow up', 'new']"),
        }
    }
}

fn main() {}
