// An all-native program, on dspex without default features, builds and runs.
use dspex::prelude::*;

#[derive(Default)]
struct Upper;

impl Module for Upper {
    async fn forward(&self, inputs: &Fields, _params: &Params) -> Result<Fields> {
        Ok(Fields::from([("loud", inputs.get::<&str>("text")?.to_uppercase())]))
    }
}

dspex_program! {
    program Loud: "text -> loud" {
        variables { temperature: float = 0.5 { min: 0.0, max: 1.0 } }
        chain { upper: native Upper("text -> loud") }
    }
}

#[derive(Program)]
#[program(signature = "text -> answer")]
struct Answerer {
    #[variable(initial = 0.5, min = 0.0, max = 1.0)]
    temperature: Var<f64>,
    #[step(native, signature = "text -> answer", bind(temperature))]
    answer: Predict,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> dspex::Result<()> {
    let loud = Loud::start().await?;
    assert_eq!(loud.run(LoudInput { text: "hi".into() }).await?.loud, "HI");
    let answerer = Answerer::start().await?;
    assert!(!answerer.run(AnswererInput { text: "hi".into() }).await?.answer.is_empty());
    Ok(())
}
