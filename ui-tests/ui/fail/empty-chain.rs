use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = 0.7,
        }
        chain {}
    }
}

fn main() {}
