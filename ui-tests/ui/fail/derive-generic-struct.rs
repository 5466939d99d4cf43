use dspex::prelude::*;

#[derive(Program)]
struct Qa<M: Module + Default> {
    #[step(native, signature = "question -> answer")]
    answer: M,
}

fn main() {}
