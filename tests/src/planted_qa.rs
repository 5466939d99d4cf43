//! The planted task of whole-program compile (shared by `tests/tests/program_compile.rs` and
//! `dspex/benches/program_compile.rs`, which includes this file): an LM on the loopback server
//! that answers a hard question right only when its prompt holds a demo with the planted
//! keyword, question/answer pairs for it, and the two-step program it is for, all native and
//! hybrid.

use dspex::JsonValue;
use dspex::eval::{Dataset, Example};
use dspex::prelude::*;
use dspex_test_lm::Reply;

dspex_program! {
    /// Query generation, then a reasoned answer: both native.
    pub program NativeQa: "question -> answer" {
        chain {
            rewrite: native Predict("question -> query"),
            answer: native ChainOfThought("query -> answer"),
        }
    }
}

dspex_program! {
    /// The same program with its answer step in DSPy.
    pub program HybridQa: "question -> answer" {
        chain {
            rewrite: native Predict("question -> query"),
            answer: python ChainOfThought("query -> answer"),
        }
    }
}

/// The planted keyword: a hard question is answered right only when a demo holds it.
pub const KEYWORD: &str = "Keyword";

/// How a lucky question starts: answered right at temperature 1.0 only.
pub const LUCKY: &str = "lucky";

/// The value of input `field` in a ChatAdapter user message.
fn field_value<'a>(message: &'a str, field: &str) -> &'a str {
    let marker = format!("[[ ## {field} ## ]]\n");
    let start = message.find(&marker).map_or(0, |i| i + marker.len());
    let rest = &message[start..];
    rest.split("\n\n").next().unwrap_or(rest)
}

/// The LM. Asked for a `query` (`question -> query`), it answers `find <question>`. Asked for
/// an `answer` (of a `query`, or of a `question` directly), it answers the question
/// upper-cased when the question is easy or a demo (any message between the system message and
/// the last) holds the keyword, or the question is lucky (starts with [`LUCKY`]) and the request
/// is at temperature 1.0 (a bootstrapping round after the first), `unknown` otherwise; with
/// `reasoning` first when the prompt asks for it (a `ChainOfThought`).
///
/// # Panics
///
/// If the request has no messages.
pub fn planted_lm(body: &JsonValue) -> Reply {
    let messages = body["messages"].as_array().expect("messages");
    let last = messages
        .last()
        .and_then(|m| m["content"].as_str())
        .unwrap_or("");
    if last.contains("`[[ ## query ## ]]`") {
        let question = field_value(last, "question");
        return Reply::text(format!(
            "[[ ## query ## ]]\nfind {question}\n\n[[ ## completed ## ]]"
        ));
    }
    let question = if last.contains("[[ ## query ## ]]\n") {
        let query = field_value(last, "query");
        query.strip_prefix("find ").unwrap_or(query)
    } else {
        field_value(last, "question")
    };
    let demos = &messages[1..messages.len() - 1];
    let taught = demos
        .iter()
        .any(|m| m["content"].as_str().unwrap_or("").contains(KEYWORD));
    let lucky = question.starts_with(LUCKY) && body["temperature"].as_f64() == Some(1.0);
    let answer = if question.starts_with("easy") || taught || lucky {
        question.to_uppercase()
    } else {
        "unknown".to_owned()
    };
    let reasoning = if last.contains("`[[ ## reasoning ## ]]`") {
        "[[ ## reasoning ## ]]\nLooked it up.\n\n"
    } else {
        ""
    };
    Reply::text(format!(
        "{reasoning}[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"
    ))
}

/// A question and its right answer (the question upper-cased).
pub fn pair(question: &str) -> Example {
    Example::new()
        .with_input("question", question)
        .with_expected("answer", question.to_uppercase())
}

/// `n` train questions: easy ones (right zero-shot, holding the keyword) and hard ones,
/// interleaved, the first easy.
pub fn trainset(n: usize) -> Dataset {
    const FRUITS: [&str; 10] = [
        "apple", "banana", "cherry", "damson", "elder", "fig", "guava", "huckle", "jujube",
        "kumquat",
    ];
    Dataset::from_examples((0..n).map(|i| {
        let fruit = FRUITS[i % FRUITS.len()];
        let round = i / FRUITS.len();
        let suffix = if round == 0 {
            String::new()
        } else {
            format!(" {round}")
        };
        if i % 2 == 0 {
            pair(&format!("easy {KEYWORD} {fruit}{suffix}"))
        } else {
            pair(&format!("hard {fruit}{suffix}"))
        }
    }))
}

/// `n` hard questions: 0 zero-shot, 1 with the right demos.
pub fn devset(n: usize) -> Dataset {
    Dataset::from_examples((0..n).map(|i| pair(&format!("hard dev {i}"))))
}

/// The pairs of `data` as the DSPy script `tests/python/bootstrap_like_dspy.py` reads them.
pub fn pairs(data: &Dataset) -> Vec<JsonValue> {
    data.examples()
        .iter()
        .map(|e| {
            JsonValue::Array(vec![
                e.input("question").cloned().unwrap_or_default(),
                e.expected("answer").cloned().unwrap_or_default(),
            ])
        })
        .collect()
}
