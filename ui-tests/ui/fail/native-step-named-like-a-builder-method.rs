use dspex::prelude::*;

#[derive(Default)]
struct Echo;

impl Module for Echo {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        Ok(Fields::from([("answer", inputs.get::<&str>("question")?)]))
    }
}

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            start: native Echo("question -> answer"),
        }
    }
}

fn main() {}
