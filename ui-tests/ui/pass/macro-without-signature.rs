//! Without a program signature there is no `XInput`/`XOutput`: inputs and outputs are inferred
//! from the chain and the program runs on `Fields`. The struct is private, as declared.

use dspex::prelude::*;

#[derive(Default)]
struct Upper;

impl Module for Upper {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        Ok(Fields::from([(
            "upper",
            inputs.get::<&str>("text")?.to_uppercase(),
        )]))
    }
}

#[derive(Default)]
struct Exclaim;

impl Module for Exclaim {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        Ok(Fields::from([(
            "type",
            format!("{}!", inputs.get::<&str>("upper")?),
        )]))
    }
}

dspex_program! {
    program Pipeline {
        chain {
            upper: native Upper("text -> upper"),
            exclaim: native self::Exclaim("upper -> type"),
        }
    }
}

dspex_program! {
    /// A signature field named like a Rust keyword becomes a raw field.
    program Typed: "text -> type" {
        chain {
            upper: native Upper("text -> upper"),
            exclaim: native Exclaim("upper -> type"),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let ctx = Context::new();
    let pipeline = Pipeline::attach(&ctx).await?;
    assert_eq!(Pipeline::spec().input_names(), ["text"]);
    let out = pipeline.run_fields(Fields::from([("text", "hey")])).await?;
    assert_eq!(out.get::<&str>("type")?, "HEY!");

    let typed = Typed::attach(&ctx).await?;
    let out = typed.run(TypedInput { text: "ok".into() }).await?;
    assert_eq!(out.r#type, "OK!");
    Ok(())
}
