use dspex::prelude::*;

#[derive(Default)]
struct Echo;

impl Module for Echo {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        Ok(Fields::from([("answer", inputs.get::<&str>("question")?)]))
    }
}

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Qa {
    #[step(native, signature = "question -> a", with(adaptor = "json"))]
    a: Predict,
    #[step(native, signature = "question -> b", with(adapter = "xml"))]
    b: ChainOfThought,
    #[step(native, signature = "question -> c", with(adapter = "json", json_fallback = false))]
    c: Predict,
    #[step(python = "Predict", signature = "question -> d", with(adapter = "json"))]
    d: PythonModule,
    #[step(native, signature = "question -> answer", with(json_fallback = false))]
    answer: Echo,
    ctx: Context,
}

fn main() {}
