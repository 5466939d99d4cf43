//! A native `#[derive(Program)]` runs on a local context, and its accessors read and write it.
//! Without a `Context` field, its context is the one of its first variable.

use dspex::prelude::*;

#[derive(Default)]
struct Shout;

impl Module for Shout {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let times = params.get::<i64>("times")?;
        let loud = inputs.get::<&str>("text")?.to_uppercase();
        Ok(Fields::from([(
            "loud",
            vec![loud; times as usize].join(" "),
        )]))
    }
}

#[derive(Program)]
#[program(signature = "text -> loud")]
struct Shouter {
    #[variable(initial = 2, min = 1, max = 3)]
    repeat: Var<i64>,
    #[step(native, signature = "text -> loud", bind(repeat as times))]
    shout: Shout,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    const { assert!(!Shouter::REQUIRES_BRIDGE) };
    let shouter = Shouter::start().await?;
    let out = shouter.run(ShouterInput { text: "hi".into() }).await?;
    assert_eq!(out.loud, "HI HI");
    shouter.repeat().set(3)?;
    assert_eq!(shouter.context().get::<i64>("repeat")?, 3);
    Ok(())
}
