use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python Predict { temperature },
        }
    }
}

fn main() {
    // The program still exists (as a skeleton): no "cannot find type `Qa`" follows.
    let _ = Qa::start();
}
