use dspex::prelude::*;

#[derive(Program)]
struct Qa(Var<f64>, PythonModule);

fn main() {}
