//! A program of native steps on dspex without default features: the crate the dependency-tree
//! test inspects and the UI tests build against.

use dspex::prelude::*;

/// A native step that shouts its input.
#[derive(Default)]
pub struct Shout;

impl Module for Shout {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let times = params.get::<i64>("times")?;
        let loud = inputs.get::<&str>("text")?.to_uppercase();
        Ok(Fields::from([(
            "loud",
            vec![loud; usize::try_from(times).unwrap_or(1)].join(" "),
        )]))
    }
}

dspex_program! {
    /// Shouts its input, then answers about it with dspex's own native `Predict`.
    pub program Shouter: "text -> answer" {
        variables {
            repeat: integer = 2 { min: 1, max: 3 },
            temperature: float = 0.2 { min: 0.0, max: 2.0 },
        }
        chain {
            shout: native Shout("text -> loud") { repeat as times },
            answer: native Predict("loud -> answer") { temperature },
        }
    }
}
