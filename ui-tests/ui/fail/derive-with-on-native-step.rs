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
    #[step(native, signature = "question -> answer", with(max_iters = 5))]
    answer: Echo,
    ctx: Context,
}

fn main() {}
