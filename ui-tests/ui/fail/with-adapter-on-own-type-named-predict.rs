use dspex::prelude::*;

mod mine {
    use dspex::prelude::*;

    /// A module of the user's own, named like dspex's `Predict`.
    #[derive(Default)]
    pub struct Predict;

    impl Module for Predict {
        async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
            Ok(Fields::from([("answer", inputs.get::<&str>("question")?)]))
        }
    }
}

dspex_program! {
    program Qa: "question -> answer" {
        chain {
            answer: native mine::Predict("question -> answer") with { adapter: "json" },
        }
    }
}

#[derive(Program)]
#[program(signature = "question -> answer")]
struct DerivedQa {
    #[step(native, signature = "question -> answer", with(json_fallback = false))]
    answer: mine::Predict,
    ctx: Context,
}

fn main() {}
