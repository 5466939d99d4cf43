//! A native `dspex_program!` runs on a local context, and its accessors read and write it.

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

dspex_program! {
    program Shouter: "text -> loud" {
        variables {
            repeat: integer = 2 { min: 1, max: 3 },
        }
        chain {
            shout: native Shout("text -> loud") { repeat as times },
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    const { assert!(!Shouter::REQUIRES_BRIDGE) };
    let shouter = Shouter::start().await?;
    let out = shouter.run(ShouterInput { text: "hi".into() }).await?;
    assert_eq!(
        out,
        ShouterOutput {
            loud: "HI HI".into()
        }
    );
    shouter.repeat().set(3)?;
    assert_eq!(shouter.context().get::<i64>("repeat")?, 3);
    assert!(shouter.repeat().set(4).is_err());
    let out = shouter.run_fields(Fields::from([("text", "a")])).await?;
    assert_eq!(out.get::<&str>("loud")?, "A A A");
    Ok(())
}
