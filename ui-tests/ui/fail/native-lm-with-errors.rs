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
            a: native Predict("question -> a") with { adaptor: "json" },
            b: native ChainOfThought("question -> b") with { adapter: "xml" },
            c: native Predict("question -> c") with { adapter: "json", json_fallback: false },
            d: python Predict("question -> d") with { adapter: "json" },
            answer: native Echo("question -> answer") with { json_fallback: false },
        }
    }
}

fn main() {}
