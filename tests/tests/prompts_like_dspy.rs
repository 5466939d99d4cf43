//! The prompts dspex's native `Predict` and `ChainOfThought` send are DSPy's: for several
//! signatures (typed fields, instructions, demos complete and incomplete, `ChainOfThought`'s
//! reasoning), the messages built in Rust equal, character for character, those the installed
//! DSPy's `ChatAdapter` builds (`tests/python/chat_messages.py`). And the scripted LM answers
//! those messages in Rust exactly as the worker's scripted LM does, for the same rules.

#![allow(clippy::unwrap_used)]

use dspex::lm::{
    ChatMessage, LmClient, LmRequest, chat_messages, default_instructions, with_reasoning,
};
use dspex::{Fields, JsonValue, LmConfig, Signature, json};
use dspex_tests::run_script;

struct Case {
    signature: &'static str,
    instructions: Option<&'static str>,
    cot: bool,
    demos: Vec<JsonValue>,
    inputs: JsonValue,
    rules: Vec<(&'static str, JsonValue)>,
}

const TYPED: &str = "question: str, k: int, tags: list[str], opts: dict -> answer: str, n: float, ok: bool, c: Literal['a', 'b'], xs: list[int]";

fn cases() -> Vec<Case> {
    let typed_demos = vec![
        json!({"question": "q1", "k": 2, "tags": ["x"], "opts": {"a": 1.5}, "answer": "a1", "n": 1.0, "ok": true, "c": "a", "xs": [1]}),
        json!({"question": "q2", "answer": "a2"}),
        json!({"question": "only an input"}),
    ];
    let typed_inputs = json!({"question": "What?\nnew line", "k": 3, "tags": ["t1", "t2 «x»\ny"], "opts": {"é": [1, 2.5e-7], "b": null}});
    vec![
        Case {
            signature: "question -> answer",
            instructions: None,
            cot: false,
            demos: vec![],
            inputs: json!({"question": "What is the capital of France?"}),
            rules: vec![],
        },
        Case {
            signature: TYPED,
            instructions: None,
            cot: false,
            demos: typed_demos.clone(),
            inputs: typed_inputs.clone(),
            rules: vec![("What?", json!({"answer": "scripted", "c": "b"}))],
        },
        Case {
            signature: TYPED,
            instructions: None,
            cot: true,
            demos: typed_demos,
            inputs: typed_inputs,
            rules: vec![],
        },
        Case {
            signature: "context: list[str], question -> d: dict, ls: list[str], lf: list[float], c: Literal[\"it's\", 'x\"y', 'plain']",
            instructions: Some("Answer from the context.\n  Keep it short.\n\n    Cite nothing."),
            cot: false,
            demos: vec![
                json!({"context": [], "question": "q", "d": {"k": [1.0, 1e16]}, "ls": ["a"], "lf": [0.0001], "c": "plain"}),
            ],
            inputs: json!({"context": ["first passage", "second"], "question": "Why?"}),
            rules: vec![],
        },
        Case {
            signature: "-> score: float, verdict: bool",
            instructions: Some("    Rate.\n    Then judge."),
            cot: true,
            demos: vec![],
            inputs: json!({}),
            rules: vec![],
        },
    ]
}

fn fields(value: &JsonValue) -> Fields {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn native_prompts_and_scripted_answers_equal_dspys() {
    let cases = cases();
    let input: Vec<JsonValue> = cases
        .iter()
        .map(|c| {
            let signature: Signature = c.signature.parse().unwrap();
            json!({
                "signature": signature.to_string(),
                "instructions": c.instructions,
                "cot": c.cot,
                "demos": c.demos,
                "inputs": c.inputs,
                "rules": c.rules,
            })
        })
        .collect();
    let answers = run_script("tests/python/chat_messages.py", &JsonValue::Array(input));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (case, dspy) in cases.iter().zip(answers.as_array().unwrap()) {
        let signature: Signature = case.signature.parse().unwrap();
        let instructions = case
            .instructions
            .map_or_else(|| default_instructions(&signature), str::to_owned);
        let prompt_signature = if case.cot {
            with_reasoning(&signature)
        } else {
            signature.clone()
        };
        let demos: Vec<Fields> = case.demos.iter().map(fields).collect();
        let messages = chat_messages(
            &prompt_signature,
            &instructions,
            &demos,
            &fields(&case.inputs),
        );
        let expected: Vec<ChatMessage> = serde_json::from_value(dspy["messages"].clone()).unwrap();
        assert_eq!(messages.len(), expected.len(), "{}", case.signature);
        for (ours, theirs) in messages.iter().zip(&expected) {
            assert_eq!(
                ours, theirs,
                "signature `{}` (cot: {})",
                case.signature, case.cot
            );
        }

        let mut config = LmConfig::scripted();
        for (needle, answer) in &case.rules {
            let answer: Vec<(String, String)> = answer
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            config = config.rule(*needle, answer);
        }
        let lm = LmClient::new(config).unwrap();
        let reply = runtime
            .block_on(lm.complete(&LmRequest {
                messages,
                ..LmRequest::default()
            }))
            .unwrap();
        assert_eq!(
            reply.text,
            dspy["scripted"].as_str().unwrap(),
            "{}",
            case.signature
        );
    }
}
