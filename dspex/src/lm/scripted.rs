//! The offline scripted LM on the native lane. It answers as the worker's scripted LM
//! (`dspex_bridge.worker.lm`, DSPy's `DummyLM`) does for the same [`LmConfig`] and the same
//! messages: it reads the output fields the system message asks for, takes the answer from the
//! script (answers in order, shared by every call, then the first rule whose needle the last
//! message contains, else the first whose needle the system message contains), generates a deterministic answer of the right type for each field the
//! script does not give, and writes them as `[[ ## field ## ]]` sections (as one JSON object
//! when the request is the JSON adapter's). Token usage counts
//! words.

use std::collections::{BTreeMap, VecDeque};

use dspex_core::FieldType;
use parking_lot::Mutex;
use serde_json::json;

use super::chat::ChatMessage;
use super::config::LmConfig;
use super::pyfmt::dumps;

/// What the last message of a request of DSPy's JSON adapter says.
const JSON_REQUEST: &str = "Respond with a JSON object";

/// How many characters of the first input a generated answer quotes.
const EXCERPT_CHARS: usize = 60;

/// The scripted LM of a context (one per client: its answer queue is shared by every call).
#[derive(Debug)]
pub(crate) struct ScriptedLm {
    answers: Mutex<VecDeque<BTreeMap<String, String>>>,
    rules: Vec<(String, BTreeMap<String, String>)>,
    /// A streamed reply's delta size (characters) and the wait before each delta.
    deltas: Option<(usize, std::time::Duration)>,
}

/// One scripted reply: the text and its word counts.
pub(crate) struct ScriptedReply {
    pub(crate) text: String,
    pub(crate) prompt_words: u64,
    pub(crate) answer_words: u64,
}

impl ScriptedLm {
    pub(crate) fn new(config: &LmConfig) -> Self {
        Self {
            answers: Mutex::new(config.answers.iter().cloned().collect()),
            rules: config
                .rules
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            deltas: config.deltas,
        }
    }

    /// Hands `text` to `on_text` as a stream: in the configured deltas, each after its wait,
    /// or at once.
    pub(crate) async fn stream(&self, text: &str, on_text: &mut (dyn FnMut(&str) + Send)) {
        let Some((chars, gap)) = self.deltas else {
            on_text(text);
            return;
        };
        let mut rest = text;
        while !rest.is_empty() {
            let end = rest
                .char_indices()
                .nth(chars)
                .map_or(rest.len(), |(at, _)| at);
            if !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            on_text(&rest[..end]);
            rest = &rest[end..];
        }
    }

    fn next_for(&self, last: &str, system: &str) -> BTreeMap<String, String> {
        if let Some(answer) = self.answers.lock().pop_front() {
            return answer;
        }
        [last, system]
            .into_iter()
            .find_map(|text| {
                self.rules
                    .iter()
                    .find(|(needle, _)| text.contains(needle.as_str()))
            })
            .map(|(_, answer)| answer.clone())
            .unwrap_or_default()
    }

    /// The reply to `messages`.
    pub(crate) fn answer(&self, messages: &[ChatMessage]) -> ScriptedReply {
        let system = messages
            .iter()
            .find(|m| m.role == "system")
            .map_or("", |m| m.content.as_str());
        let last = messages.last().map_or("", |m| m.content.as_str());
        let wanted = output_fields(system);
        let mut script = self.next_for(last, system);
        let first = first_input(last);
        let fields: Vec<(String, String)> = if wanted.is_empty() {
            script.into_iter().collect()
        } else {
            wanted
                .iter()
                .map(|(name, annotation)| {
                    let value = script
                        .remove(name)
                        .unwrap_or_else(|| generated(name, annotation, &first));
                    (name.clone(), value)
                })
                .collect()
        };
        let text = if last.contains(JSON_REQUEST) {
            // DSPy's JSON adapter asks for one object: the same answers, as strings in it.
            let object: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .map(|(name, value)| (name.clone(), json!(value)))
                .collect();
            dumps(&serde_json::Value::Object(object), false)
        } else {
            fields
                .iter()
                .map(|(name, value)| format!("[[ ## {name} ## ]]\n{value}"))
                .collect::<Vec<_>>()
                .join("\n\n")
                .trim()
                .to_owned()
        };
        let words = |s: &str| s.split_whitespace().count() as u64;
        ScriptedReply {
            prompt_words: messages.iter().map(|m| words(&m.content)).sum(),
            answer_words: words(&text),
            text,
        }
    }
}

/// The output fields the system message lists: "1. `answer` (str): ...".
fn output_fields(system: &str) -> Vec<(String, String)> {
    let Some((_, body)) = system.split_once("Your output fields are:\n") else {
        return Vec::new();
    };
    let body = body
        .split_once("\nAll interactions")
        .map_or(body, |(b, _)| b);
    body.lines()
        .filter_map(|line| {
            let digits = line.find(|c: char| !c.is_ascii_digit())?;
            let rest = line[digits..].strip_prefix(". `")?;
            let (name, rest) = rest.split_once("` (")?;
            if digits == 0 || !dspex_core::is_identifier(name) {
                return None;
            }
            let annotation = match rest.find("):") {
                Some(end) => &rest[..end],
                None => rest.strip_suffix(')')?,
            };
            Some((name.to_owned(), annotation.to_owned()))
        })
        .collect()
}

/// The first input block of the user message, whitespace folded, at most
/// [`EXCERPT_CHARS`] characters.
fn first_input(user: &str) -> String {
    let Some(start) = user.find("[[ ## ") else {
        return String::new();
    };
    let Some((_, rest)) = user[start..].split_once(" ## ]]\n") else {
        return String::new();
    };
    let end = ["\n\n[[ ## ", "\n\nRespond with"]
        .iter()
        .filter_map(|stop| rest.find(stop))
        .min()
        .unwrap_or(rest.len());
    let text = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= EXCERPT_CHARS {
        text
    } else {
        let head: String = text.chars().take(EXCERPT_CHARS - 3).collect();
        format!("{head}...")
    }
}

/// A deterministic answer that reads as `annotation`.
fn generated(name: &str, annotation: &str, first: &str) -> String {
    let ty = FieldType::parse(annotation).ok();
    if let Some(FieldType::Literal(options)) = &ty
        && let Some(first_option) = options.first()
    {
        return if options.iter().any(|o| o == "finish") {
            "finish".to_owned()
        } else {
            first_option.clone()
        };
    }
    let line = format!("[scripted {name}] {first}");
    match ty {
        _ if name == "generated_code" => {
            let code = dumps(&json!(format!("scripted result for: {first}")), true);
            format!("```python\nprint({code})\n```")
        }
        Some(FieldType::Dict) => dumps(&json!({ "field": name }), true),
        Some(FieldType::ListStr) => dumps(&json!([line.trim()]), true),
        Some(FieldType::ListInt) => "[0]".to_owned(),
        Some(FieldType::ListFloat) => "[0.0]".to_owned(),
        Some(FieldType::Int) => "0".to_owned(),
        Some(FieldType::Float) => "0.0".to_owned(),
        Some(FieldType::Bool) => "False".to_owned(),
        _ if first.is_empty() => format!("[scripted {name}]"),
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Fields;
    use crate::lm::chat::{
        Adapter, adapter_messages, chat_messages, default_instructions, parse_json_reply,
    };

    #[test]
    fn answers_come_from_the_script_then_rules_then_are_generated_by_type() {
        let sig = "question -> answer, n: int, kind: Literal['a', 'finish'], tags: list[str]"
            .parse()
            .unwrap();
        let config = LmConfig::scripted()
            .answer([("answer", "first")])
            .rule("Rome", [("answer", "Italy")]);
        let lm = ScriptedLm::new(&config);
        let ask = |q: &str| {
            let inputs = Fields::from([("question", q)]);
            lm.answer(&chat_messages(
                &sig,
                &default_instructions(&sig),
                &[],
                &inputs,
            ))
            .text
        };
        assert_eq!(
            ask("Rome?"),
            "[[ ## answer ## ]]\nfirst\n\n[[ ## n ## ]]\n0\n\n[[ ## kind ## ]]\nfinish\n\n[[ ## tags ## ]]\n[\"[scripted tags] Rome?\"]"
        );
        assert!(ask("Rome?").starts_with("[[ ## answer ## ]]\nItaly\n"));
        let long = "word ".repeat(30);
        let generated = ask(&long);
        assert!(
            generated.starts_with(&format!(
                "[[ ## answer ## ]]\n[scripted answer] {}...\n",
                &long.trim()[..EXCERPT_CHARS - 3]
            )),
            "{generated}"
        );
    }

    #[test]
    fn a_rule_matches_the_last_message_first_then_the_instructions() {
        let sig = "question -> answer".parse().unwrap();
        let config = LmConfig::scripted()
            .rule("Always say yes", [("answer", "yes")])
            .rule("Rome", [("answer", "Italy")]);
        let lm = ScriptedLm::new(&config);
        let ask = |instructions: &str, q: &str| {
            let inputs = Fields::from([("question", q)]);
            lm.answer(&chat_messages(&sig, instructions, &[], &inputs))
                .text
        };
        assert_eq!(ask("Always say yes.", "Paris?"), "[[ ## answer ## ]]\nyes");
        // The last message wins over the instructions.
        assert_eq!(ask("Always say yes.", "Rome?"), "[[ ## answer ## ]]\nItaly");
        assert_eq!(
            ask(&default_instructions(&sig), "Paris?"),
            "[[ ## answer ## ]]\n[scripted answer] Paris?"
        );
    }

    #[test]
    fn a_json_adapter_request_is_answered_with_one_object_it_reads_back() {
        let sig = "question -> answer, n: int".parse().unwrap();
        let lm = ScriptedLm::new(&LmConfig::scripted().answer([("answer", "Paris")]));
        let messages = adapter_messages(
            Adapter::Json,
            &sig,
            &default_instructions(&sig),
            &Default::default(),
            &[],
            &Fields::from([("question", "Capital?")]),
        );
        let reply = lm.answer(&messages).text;
        assert_eq!(reply, r#"{"answer": "Paris", "n": "0"}"#);
        let outputs = parse_json_reply(&sig, &reply).unwrap();
        assert_eq!(outputs.value("n"), Some(&json!(0)));
    }
}
