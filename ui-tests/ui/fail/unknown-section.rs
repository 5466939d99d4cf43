use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        vars {
            temperature: float = 0.7,
        }
    }
}

fn main() {}
