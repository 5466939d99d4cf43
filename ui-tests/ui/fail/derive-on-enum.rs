use dspex::prelude::*;

#[derive(Program)]
enum Qa {
    Predict,
    ChainOfThought,
}

fn main() {}
