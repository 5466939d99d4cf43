//! The tuning benchmark's program with a planted optimum, shared by the tuning tests and the
//! benchmarks (`benches/tune.rs`, `benches/eval.rs`).
//!
//! A native step emulates an LM whose answers depend on the program's variables: each question
//! carries a difficulty in `(0, 0.95]`, and the scripted LM answers correctly when the quality
//! of its settings reaches that difficulty. Quality adds up, so every variable moves the score
//! (a realistic landscape: a bigger model gets more right):
//!
//! | variable | contribution |
//! |---|---|
//! | `model` | nano 0.05, mini 0.15, base 0.25, large 0.35 |
//! | `reasoning` (module) | ReAct 0.10, Predict 0.15, ProgramOfThought 0.20, ChainOfThought 0.30 |
//! | `temperature` in `[0, 2]` | `0.25 * (1 - temperature / 2)` |
//! | `max_tokens` in `[16, 2048]` | 0.10 from 256 up, else at most 0.04 (`0.01 * log2(max_tokens / 16)`) |
//! | `verbose` | nothing |
//!
//! Every example is answered (score 1.0, the optimum) only when the quality reaches 0.95:
//! `model = large`, `reasoning = ChainOfThought`, `temperature <= 0.4` and `max_tokens >= 256`.
//! That region is about 0.5% of the space (with `max_tokens` on a log scale); every other
//! setting answers part of the examples.

use dspex::eval::{Dataset, ExactMatch, Example};
use dspex::prelude::*;
use dspex::tune::SearchSpace;

/// The score of the planted optimum.
pub(crate) const OPTIMUM: f64 = 1.0;

/// The quality of a setting: what difficulty it can answer.
pub(crate) fn quality(model: &str, reasoning: &str, temperature: f64, max_tokens: i64) -> f64 {
    let model = match model {
        "nano" => 0.05,
        "mini" => 0.15,
        "base" => 0.25,
        "large" => 0.35,
        _ => 0.0,
    };
    let reasoning = match reasoning {
        "ReAct" => 0.10,
        "Predict" => 0.15,
        "ProgramOfThought" => 0.20,
        "ChainOfThought" => 0.30,
        _ => 0.0,
    };
    let tokens = if max_tokens >= 256 {
        0.10
    } else {
        #[allow(clippy::cast_precision_loss)]
        let doublings = (max_tokens as f64 / 16.0).log2();
        0.01 * doublings
    };
    model + reasoning + 0.25 * (1.0 - temperature / 2.0) + tokens
}

/// The scripted LM: answers `a<N>` to `q<N> d=<difficulty>` when its settings' quality reaches
/// the difficulty, and `unsure` otherwise.
#[derive(Default)]
pub(crate) struct ScriptedLm;

impl Module for ScriptedLm {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let question = inputs.get::<&str>("question")?;
        let (id, difficulty) = question
            .strip_prefix('q')
            .and_then(|rest| rest.split_once(" d="))
            .and_then(|(id, d)| Some((id, d.parse::<f64>().ok()?)))
            .ok_or_else(|| Error::MissingField {
                field: "difficulty".to_owned(),
                context: format!("question {question:?}"),
            })?;
        let q = quality(
            &params.get::<Choice>("model")?,
            &params.get::<ModuleName>("reasoning")?,
            params.get::<f64>("temperature")?,
            params.get::<i64>("max_tokens")?,
        );
        let answer = if q + 1e-9 >= difficulty {
            format!("a{id}")
        } else {
            "unsure".to_owned()
        };
        Ok(Fields::from([("answer", answer)]))
    }
}

dspex_program! {
    /// A question answerer whose scripted LM is right only with the right settings.
    pub(crate) program Planted: "question -> answer" {
        variables {
            model: choice = "mini" { choices: ["nano", "mini", "base", "large"] },
            temperature: float = 1.0 { min: 0.0, max: 2.0 },
            max_tokens: integer = 64 { min: 16, max: 2048 },
            reasoning: module = "Predict" { choices: ["Predict", "ChainOfThought", "ReAct", "ProgramOfThought"] },
            verbose: boolean = false,
        }
        chain {
            answer: native ScriptedLm("question -> answer") { model, temperature, max_tokens, reasoning, verbose },
        }
    }
}

/// `n` examples with difficulties spread evenly over `(0, 0.95]`.
pub(crate) fn dev_set(n: usize) -> Dataset {
    (0..n)
        .map(|i| {
            #[allow(clippy::cast_precision_loss)]
            let difficulty = 0.95 * (i + 1) as f64 / n as f64;
            Example::new()
                .with_input("question", format!("q{i} d={difficulty}"))
                .with_expected("answer", format!("a{i}"))
        })
        .collect()
}

/// The metric: exact match of the answer.
pub(crate) fn metric() -> ExactMatch {
    ExactMatch::new("answer")
}

/// The search space of the benchmark: every variable, `max_tokens` on a log scale.
pub(crate) fn space(program: &Planted) -> Result<SearchSpace> {
    SearchSpace::of(program)?.log_scale("max_tokens")
}
