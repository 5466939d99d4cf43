use dspex::prelude::*;

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: python "my_pkg..Answerer"("question -> answer"),
        }
    }
}

fn main() {}
