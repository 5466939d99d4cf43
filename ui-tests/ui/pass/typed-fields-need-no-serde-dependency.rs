//! A program with typed fields compiles and runs in a crate that depends on dspex alone: the
//! generated structs and enums derive serde through dspex.

use dspex::prelude::*;
use dspex::{JsonObject, json};

#[derive(Default)]
struct Tag;

impl Module for Tag {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        let words: Vec<String> = inputs.get("words")?;
        let mut out = Fields::new();
        out.insert("count", words.len() as i64);
        out.insert("ratio", 0.5);
        out.insert("long", words.len() > 2);
        out.insert("tone", "calm");
        out.insert("lengths", words.iter().map(|w| w.len() as i64).collect::<Vec<_>>());
        out.insert("weights", vec![1.5, 2.0]);
        out.insert("extra", json!({ "n": words.len() }));
        Ok(out)
    }
}

dspex_program! {
    program Tagger: "words: list[str] -> count: int, ratio: float, long: bool, tone: Literal['calm', 'angry'], lengths: list[int], weights: list[float], extra: dict" {
        chain {
            tag: native Tag("words: list[str] -> count: int, ratio: float, long: bool, tone: Literal['calm', 'angry'], lengths: list[int], weights: list[float], extra: dict"),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let tagger = Tagger::start().await?;
    let out: TaggerOutput = tagger
        .run(TaggerInput {
            words: vec!["a".into(), "bb".into(), "ccc".into()],
        })
        .await?;
    let count: i64 = out.count;
    let ratio: f64 = out.ratio;
    let long: bool = out.long;
    let tone: TaggerTone = out.tone;
    let lengths: Vec<i64> = out.lengths.clone();
    let weights: Vec<f64> = out.weights.clone();
    let extra: &JsonObject = &out.extra;
    assert_eq!((count, ratio, long, tone), (3, 0.5, true, TaggerTone::Calm));
    assert_eq!((lengths, weights), (vec![1, 2, 3], vec![1.5, 2.0]));
    assert_eq!(extra.get("n"), Some(&json!(3)));
    let again: TaggerOutput = out.clone();
    assert_eq!(again, out);
    let _: TaggerInput = TaggerInput::default();
    Ok(())
}
