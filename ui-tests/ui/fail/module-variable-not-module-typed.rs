use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        variables {
            temperature: float = 0.7,
        }
        chain {
            answer: python @temperature("question -> answer"),
        }
    }
}

fn main() {}
