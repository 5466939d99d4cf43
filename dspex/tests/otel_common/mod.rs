//! What the telemetry tests share: a native program of one LM step, and finding spans among
//! those a receiver got.

#![allow(dead_code, unreachable_pub)]

use dspex::prelude::*;
use dspex_test_otlp::ReceivedSpan;

dspex_program! {
    /// Reasons, then answers, natively.
    pub program Thinker: "question -> answer" {
        variables {
            temperature: float = 0.3 { min: 0.0, max: 2.0 },
            max_tokens: integer = 64 { min: 1, max: 4096 },
            model: choice = "small" { choices: ["small", "large"] },
        }
        chain {
            answer: native ChainOfThought("question -> answer") { temperature, max_tokens, model },
        }
    }
}

/// The scripted LM's rule for the question about Rome.
pub fn scripted_lm() -> LmConfig {
    LmConfig::scripted().rule(
        "Rome",
        [("reasoning", "Rome is in Italy."), ("answer", "Italy")],
    )
}

pub fn question(q: &str) -> ThinkerInput {
    ThinkerInput {
        question: q.to_owned(),
    }
}

/// The only span named `name`; panics naming the spans there are otherwise.
pub fn only<'s>(spans: &'s [ReceivedSpan], name: &str) -> &'s ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "spans named {name}: {:#?}", names(spans));
    found[0]
}

/// The spans whose parent is `parent`.
pub fn children<'s>(spans: &'s [ReceivedSpan], parent: &ReceivedSpan) -> Vec<&'s ReceivedSpan> {
    spans
        .iter()
        .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id)
        .collect()
}

pub fn names(spans: &[ReceivedSpan]) -> Vec<&str> {
    spans.iter().map(|s| s.name.as_str()).collect()
}
