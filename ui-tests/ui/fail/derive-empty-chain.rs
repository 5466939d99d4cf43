use dspex::prelude::*;

#[derive(Program)]
struct Qa {
    #[variable(initial = 0.7)]
    temperature: Var<f64>,
}

fn main() {}
