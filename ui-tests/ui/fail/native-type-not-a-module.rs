use dspex::prelude::*;

/// Has a `Default`, but is no `Module`.
#[derive(Default)]
struct Classifier;

dspex_program! {
    program Qa: "question -> category" {
        chain {
            classify: native Classifier("question -> category"),
        }
    }
}

fn main() {}
