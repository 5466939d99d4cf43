//! Native step modules given as values when the program starts, in both forms: a module whose
//! type has no `Default` is given to the builder; one not given is built with `Default`.

use dspex::prelude::*;

/// Answers from its own corpus: no `Default`, it must be given.
struct Lookup {
    corpus: Vec<(&'static str, &'static str)>,
}

impl Module for Lookup {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        let question = inputs.get::<&str>("question")?;
        let answer = self
            .corpus
            .iter()
            .find(|(q, _)| *q == question)
            .map_or("unknown", |(_, a)| *a);
        Ok(Fields::from([("answer", answer)]))
    }
}

#[derive(Default)]
struct Shout;

impl Module for Shout {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        Ok(Fields::from([("loud", inputs.get::<&str>("answer")?.to_uppercase())]))
    }
}

dspex_program! {
    program Macro: "question -> loud" {
        chain {
            lookup: native Lookup("question -> answer"),
            shout: native Shout("answer -> loud"),
        }
    }
}

#[derive(Program)]
#[program(signature = "question -> loud")]
struct Derived {
    #[step(native, signature = "question -> answer")]
    lookup: Lookup,
    #[step(native, signature = "answer -> loud")]
    shout: Shout,
    ctx: Context,
}

fn corpus() -> Lookup {
    Lookup { corpus: vec![("capital of France?", "Paris")] }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let question = || "capital of France?".to_owned();
    let program = Macro::builder().lookup(corpus()).start().await?;
    assert_eq!(program.run(MacroInput { question: question() }).await?.loud, "PARIS");
    let ctx = Context::new();
    let derived = Derived::builder().shout(Shout).lookup(corpus()).attach(&ctx).await?;
    assert_eq!(derived.run(DerivedInput { question: question() }).await?.loud, "PARIS");
    // `Program::start` (generic code, no builder) cannot build `Lookup`: an error naming it.
    let err = <Macro as Program>::start().await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("native step `lookup` has no module"), "{err}");
    assert!(err.contains("Macro::builder().lookup(module)"), "{err}");
    Ok(())
}
