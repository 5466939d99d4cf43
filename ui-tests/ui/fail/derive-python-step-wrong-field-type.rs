use dspex::prelude::*;

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(python = "ChainOfThought", signature = "question -> answer")]
    answer: String,
}

fn main() {}
