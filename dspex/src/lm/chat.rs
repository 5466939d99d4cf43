//! Prompts as DSPy's `ChatAdapter` (DSPy 3.4) builds them, and replies read as it reads them.
//!
//! The messages are a system message (the input and output fields with their types, the
//! `[[ ## field ## ]]` structure with a format note per typed output, the instructions), one
//! user/assistant pair per demo (complete demos after incomplete ones, as DSPy orders them),
//! and the user message with the inputs and a reminder of the outputs. Values are written as
//! Python writes them (`True`, `1.0`, `json.dumps`), because that is what DSPy sends. A reply is
//! split at its `[[ ## field ## ]]` markers and each output read as its declared type
//! ([`SignatureField::parse_text`]); a missing field is an error naming it and quoting the
//! start of the reply.

use std::collections::BTreeMap;
use std::fmt;

use dspex_core::{FieldType, Signature, SignatureField};
use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;

use super::pyfmt::{cleandoc, dedent, dumps, dumps_indented, splitlines, str_of};
use crate::data::Fields;
use crate::error::{Error, Result};

/// The most characters of a reply an error quotes.
pub const MAX_REPLY_EXCERPT_CHARS: usize = 400;

/// The output field `ChainOfThought` adds before the signature's outputs.
pub const REASONING_FIELD: &str = "reasoning";

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    fn new(role: &str, content: String) -> Self {
        Self {
            role: role.to_owned(),
            content,
        }
    }
}

impl fmt::Display for ChatMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]\n{}", self.role, self.content)
    }
}

/// DSPy's default instructions of a signature: "Given the fields `question`, produce the
/// fields `answer`."
pub fn default_instructions(signature: &Signature) -> String {
    let names = |fields: &[SignatureField]| {
        fields
            .iter()
            .map(|f| format!("`{}`", f.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "Given the fields {}, produce the fields {}.",
        names(&signature.inputs),
        names(&signature.outputs)
    )
}

/// DSPy's description of a field that has none: `${name}`.
pub fn placeholder_description(name: &str) -> String {
    format!("${{{name}}}")
}

/// The signature with `reasoning: str` first among its outputs, as `ChainOfThought` extends it.
pub fn with_reasoning(signature: &Signature) -> Signature {
    let mut extended = signature.clone();
    extended
        .outputs
        .insert(0, SignatureField::new(REASONING_FIELD, FieldType::Str));
    extended
}

/// The messages DSPy's `ChatAdapter` builds for `signature` with `instructions` (use
/// [`default_instructions`] for DSPy's), few-shot `demos` (each holding some of the
/// signature's fields) and the call's `inputs`.
///
/// ```
/// use dspex::lm::{chat_messages, default_instructions};
/// use dspex::{Fields, Signature};
///
/// let sig: Signature = "question -> answer: int".parse()?;
/// let inputs = Fields::from([("question", "2 + 2?")]);
/// let messages = chat_messages(&sig, &default_instructions(&sig), &[], &inputs);
/// assert_eq!(messages.len(), 2);
/// assert!(messages[0].content.starts_with("Your input fields are:\n1. `question` (str):\nYour output fields are:\n1. `answer` (int):"));
/// assert!(messages[1].content.starts_with("[[ ## question ## ]]\n2 + 2?\n\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn chat_messages(
    signature: &Signature,
    instructions: &str,
    demos: &[Fields],
    inputs: &Fields,
) -> Vec<ChatMessage> {
    adapter_messages(
        Adapter::Chat,
        signature,
        instructions,
        &BTreeMap::new(),
        demos,
        inputs,
    )
}

pub use dspex_core::native::Adapter;

/// The messages DSPy's `adapter` builds for `signature` with `instructions`, a description of
/// some fields (by field name, written after the field's type as DSPy writes a field's `desc`;
/// DSPy's placeholder `${name}` counts as none), few-shot `demos` and the call's `inputs`.
pub fn adapter_messages(
    adapter: Adapter,
    signature: &Signature,
    instructions: &str,
    descriptions: &BTreeMap<String, String>,
    demos: &[Fields],
    inputs: &Fields,
) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::new(
        "system",
        system_message(adapter, signature, instructions, descriptions),
    )];
    messages.extend(demo_messages(adapter, signature, demos));
    let content = user_content(adapter, signature, inputs, "", true);
    if !content.is_empty() {
        messages.push(ChatMessage::new("user", content));
    }
    messages
}

fn system_message(
    adapter: Adapter,
    signature: &Signature,
    instructions: &str,
    descriptions: &BTreeMap<String, String>,
) -> String {
    let description = format!(
        "Your input fields are:\n{}\nYour output fields are:\n{}",
        field_descriptions(&signature.inputs, descriptions),
        field_descriptions(&signature.outputs, descriptions)
    );
    let intro = "All interactions will be structured in the following way, with the appropriate values filled in.".to_owned();
    let structure = match adapter {
        Adapter::Chat => [
            intro,
            field_placeholders(&signature.inputs, false),
            field_placeholders(&signature.outputs, true),
            "[[ ## completed ## ]]\n".to_owned(),
        ]
        .join("\n\n"),
        Adapter::Json => [
            intro,
            "Inputs will have the following structure:".to_owned(),
            field_placeholders(&signature.inputs, false),
            "Outputs will be a JSON object with the following fields.".to_owned(),
            json_object(signature.outputs.iter().map(|f| {
                let note = format_note(&f.ty)
                    .map(|n| format!("        # note: the value you produce {n}"))
                    .unwrap_or_default();
                (
                    f.name.as_str(),
                    JsonValue::String(format!("{{{}}}{note}", f.name)),
                )
            })),
        ]
        .join("\n\n"),
    };
    let objective: String = splitlines(&dedent(&cleandoc(instructions)))
        .into_iter()
        .map(|line| format!("\n        {line}"))
        .collect();
    format!(
        "{description}\n{}\nIn adhering to this structure, your objective is: {objective}",
        structure.trim()
    )
}

/// "1. `question` (str): {description}" per field.
fn field_descriptions(
    fields: &[SignatureField],
    descriptions: &BTreeMap<String, String>,
) -> String {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let description = descriptions
                .get(&f.name)
                .filter(|d| **d != placeholder_description(&f.name))
                .map_or("", String::as_str);
            format!(
                "{}. `{}` ({}): {description}",
                i + 1,
                f.name,
                annotation_name(&f.ty)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// `[[ ## name ## ]]\n{name}` per field, with a format note for typed outputs.
fn field_placeholders(fields: &[SignatureField], outputs: bool) -> String {
    fields
        .iter()
        .map(|f| {
            let note = if outputs { format_note(&f.ty) } else { None };
            let note = note
                .map(|n| format!("        # note: the value you produce {n}"))
                .unwrap_or_default();
            format!("[[ ## {0} ## ]]\n{{{0}}}{note}", f.name)
        })
        .collect::<Vec<_>>()
        .join("\n\n")
        .trim()
        .to_owned()
}

/// What DSPy tells the LM about an output of this type (`translate_field_type`).
fn format_note(ty: &FieldType) -> Option<String> {
    let schema = |s: &str| format!("must adhere to the JSON schema: {s}");
    Some(match ty {
        FieldType::Str => return None,
        FieldType::Bool => "must be True or False".to_owned(),
        FieldType::Int => "must be a single int value".to_owned(),
        FieldType::Float => "must be a single float value".to_owned(),
        FieldType::Literal(values) => format!(
            "must exactly match (no extra characters) one of: {}",
            values.join("; ")
        ),
        FieldType::ListStr => schema(r#"{"type": "array", "items": {"type": "string"}}"#),
        FieldType::ListInt => schema(r#"{"type": "array", "items": {"type": "integer"}}"#),
        FieldType::ListFloat => schema(r#"{"type": "array", "items": {"type": "number"}}"#),
        FieldType::Dict => schema(r#"{"type": "object", "additionalProperties": true}"#),
    })
}

/// The type as DSPy names it (`get_annotation_name`): `Literal['a', "it's"]` with Python's
/// quoting.
pub(crate) fn annotation_name(ty: &FieldType) -> String {
    match ty {
        FieldType::Literal(values) => {
            let quoted: Vec<String> = values.iter().map(|v| python_quoted(v)).collect();
            format!("Literal[{}]", quoted.join(", "))
        }
        other => other.to_string(),
    }
}

fn python_quoted(s: &str) -> String {
    match (s.contains('\''), s.contains('"')) {
        (true, false) => format!("\"{s}\""),
        (true, true) => format!("'{}'", s.replace('\'', "\\'")),
        _ => format!("'{s}'"),
    }
}

/// A field's value as DSPy writes it (`format_field_value`): a list in a `str` field as a
/// numbered list, lists and objects as JSON, anything else as Python's `str()`.
fn field_value(ty: &FieldType, value: &JsonValue) -> String {
    match value {
        JsonValue::Array(items) if *ty == FieldType::Str => match items.as_slice() {
            [] => "N/A".to_owned(),
            [one] => blob(&str_of(one)),
            many => many
                .iter()
                .enumerate()
                .map(|(i, item)| format!("[{}] {}", i + 1, blob(&str_of(item))))
                .collect::<Vec<_>>()
                .join("\n"),
        },
        JsonValue::Array(_) | JsonValue::Object(_) => dumps(value, false),
        other => str_of(other),
    }
}

fn blob(text: &str) -> String {
    if !text.contains(['\n', '«', '»']) {
        return format!("«{text}»");
    }
    format!("«««\n    {}\n»»»", text.replace('\n', "\n    "))
}

fn user_content(
    adapter: Adapter,
    signature: &Signature,
    inputs: &Fields,
    prefix: &str,
    main: bool,
) -> String {
    let mut parts = vec![prefix.to_owned()];
    for field in &signature.inputs {
        if let Some(value) = inputs.value(&field.name) {
            parts.push(format!(
                "[[ ## {} ## ]]\n{}",
                field.name,
                field_value(&field.ty, value)
            ));
        }
    }
    if main {
        parts.push(output_requirements(adapter, signature));
    }
    parts.push(String::new());
    parts.join("\n\n").trim().to_owned()
}

fn output_requirements(adapter: Adapter, signature: &Signature) -> String {
    let fields: Vec<String> = signature
        .outputs
        .iter()
        .map(|f| {
            let info = match f.ty {
                FieldType::Str => String::new(),
                ref ty => format!(
                    " (must be formatted as a valid Python {})",
                    annotation_name(ty)
                ),
            };
            match adapter {
                Adapter::Chat => format!("`[[ ## {} ## ]]`{info}", f.name),
                Adapter::Json => format!("`{}`{info}", f.name),
            }
        })
        .collect();
    if adapter == Adapter::Json {
        return format!(
            "Respond with a JSON object in the following order of fields: {}.",
            fields.join(", then ")
        );
    }
    format!(
        "Respond with the corresponding output fields, starting with the field {}, and then ending with the marker for `[[ ## completed ## ]]`.",
        fields.join(", then ")
    )
}

fn assistant_content(
    adapter: Adapter,
    signature: &Signature,
    outputs: &Fields,
    missing: &str,
) -> String {
    let missing = JsonValue::String(missing.to_owned());
    if adapter == Adapter::Json {
        return json_object(signature.outputs.iter().map(|f| {
            let value = outputs.value(&f.name).unwrap_or(&missing);
            (f.name.as_str(), value.clone())
        }));
    }
    let body = signature
        .outputs
        .iter()
        .map(|f| {
            let value = outputs.value(&f.name).unwrap_or(&missing);
            format!("[[ ## {} ## ]]\n{}", f.name, field_value(&f.ty, value))
        })
        .collect::<Vec<_>>()
        .join("\n\n");
    format!("{}\n\n[[ ## completed ## ]]\n", body.trim())
}

/// Python's `json.dumps(dict, indent=2, ensure_ascii=False)` of these entries, in order.
fn json_object<'a>(entries: impl Iterator<Item = (&'a str, JsonValue)>) -> String {
    let object: Vec<(&str, JsonValue)> = entries.collect();
    if object.is_empty() {
        return "{}".to_owned();
    }
    let body: Vec<String> = object
        .iter()
        .map(|(name, value)| {
            format!(
                "  {}: {}",
                dumps(&JsonValue::String((*name).to_owned()), false),
                dumps_indented(value, 1)
            )
        })
        .collect();
    format!("{{\n{}\n}}", body.join(",\n"))
}

fn demo_messages(adapter: Adapter, signature: &Signature, demos: &[Fields]) -> Vec<ChatMessage> {
    let all = || signature.inputs.iter().chain(&signature.outputs);
    let complete = |demo: &Fields| all().all(|f| demo.value(&f.name).is_some_and(|v| !v.is_null()));
    let some_of = |demo: &Fields, fields: &[SignatureField]| {
        fields.iter().any(|f| demo.value(&f.name).is_some())
    };
    let incomplete = demos.iter().filter(|d| {
        !complete(d) && some_of(d, &signature.inputs) && some_of(d, &signature.outputs)
    });
    let mut messages = Vec::new();
    for demo in incomplete {
        messages.push(ChatMessage::new(
            "user",
            user_content(
                adapter,
                signature,
                demo,
                "This is an example of the task, though some input or output fields are not supplied.",
                false,
            ),
        ));
        messages.push(ChatMessage::new(
            "assistant",
            assistant_content(
                adapter,
                signature,
                demo,
                "Not supplied for this particular example. ",
            ),
        ));
    }
    for demo in demos.iter().filter(|d| complete(d)) {
        messages.push(ChatMessage::new(
            "user",
            user_content(adapter, signature, demo, "", false),
        ));
        messages.push(ChatMessage::new(
            "assistant",
            assistant_content(
                adapter,
                signature,
                demo,
                "Not supplied for this conversation history message. ",
            ),
        ));
    }
    messages
}

/// Reads a reply as `ChatAdapter.parse` does: sections start at lines opening with a
/// `[[ ## field ## ]]` marker, the first section of each output field is read as its type.
/// A missing output is an [`Error::Lm`] naming it and quoting the start of the reply (at most
/// [`MAX_REPLY_EXCERPT_CHARS`]); an output that does not read as its type is an
/// [`Error::Field`].
///
/// ```
/// use dspex::lm::parse_reply;
/// use dspex::Signature;
///
/// let sig: Signature = "question -> answer, n: int".parse()?;
/// let outputs = parse_reply(&sig, "[[ ## answer ## ]]\nParis\n\n[[ ## n ## ]]\n3\n\n[[ ## completed ## ]]")?;
/// assert_eq!(outputs.get::<&str>("answer")?, "Paris");
/// assert_eq!(outputs.get::<i64>("n")?, 3);
/// let err = parse_reply(&sig, "[[ ## answer ## ]]\nParis").unwrap_err();
/// assert!(err.to_string().contains("`n` is missing from the LM's reply"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_reply(signature: &Signature, reply: &str) -> Result<Fields> {
    let mut sections: Vec<(Option<&str>, Vec<&str>)> = vec![(None, Vec::new())];
    for line in splitlines(reply) {
        match section_start(line) {
            Some((name, rest)) => {
                let lines = if rest.is_empty() { vec![] } else { vec![rest] };
                sections.push((Some(name), lines));
            }
            None => {
                if let Some(last) = sections.last_mut() {
                    last.1.push(line);
                }
            }
        }
    }
    let mut outputs = Fields::new();
    for (name, lines) in sections {
        let Some(field) = name.and_then(|n| signature.outputs.iter().find(|f| f.name == n)) else {
            continue;
        };
        if outputs.value(&field.name).is_some() {
            continue;
        }
        let text = lines.join("\n");
        let value = field
            .parse_text(text.trim())
            .map_err(|error| Error::Field {
                context: "the LM's reply".to_owned(),
                error: Box::new(error),
            })?;
        outputs.insert(field.name.clone(), value);
    }
    if let Some(missing) = signature
        .outputs
        .iter()
        .find(|f| outputs.value(&f.name).is_none())
    {
        return Err(Error::lm(format!(
            "`{}` is missing from the LM's reply (expected a `[[ ## {} ## ]]` section): {}",
            missing.name,
            missing.name,
            reply_excerpt(reply)
        )));
    }
    Ok(outputs)
}

/// Reads a reply as DSPy's `JSONAdapter.parse` does: the reply (or, failing that, the first
/// balanced `{...}` in it) is a JSON object whose output fields are read as their types (a
/// string as the field's text, any other value as it is); other keys are ignored. A reply with
/// no JSON object or without an output is an [`Error::Lm`] naming it and quoting the start of
/// the reply; an output that does not read as its type is an [`Error::Field`].
///
/// ```
/// use dspex::lm::parse_json_reply;
/// use dspex::Signature;
///
/// let sig: Signature = "question -> answer, n: int".parse()?;
/// let outputs = parse_json_reply(&sig, "```json\n{\"answer\": \"Paris\", \"n\": \"3\"}\n```")?;
/// assert_eq!(outputs.get::<&str>("answer")?, "Paris");
/// assert_eq!(outputs.get::<i64>("n")?, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_json_reply(signature: &Signature, reply: &str) -> Result<Fields> {
    let object = match serde_json::from_str::<JsonValue>(reply.trim()) {
        Ok(JsonValue::Object(map)) => Some(map),
        _ => first_object(reply).and_then(|text| match serde_json::from_str(text) {
            Ok(JsonValue::Object(map)) => Some(map),
            _ => None,
        }),
    };
    let Some(mut object) = object else {
        return Err(Error::lm(format!(
            "the LM's reply holds no JSON object: {}",
            reply_excerpt(reply)
        )));
    };
    let mut outputs = Fields::new();
    for field in &signature.outputs {
        let Some(value) = object.remove(&field.name) else {
            return Err(Error::lm(format!(
                "`{}` is missing from the LM's JSON reply: {}",
                field.name,
                reply_excerpt(reply)
            )));
        };
        let read = match (&field.ty, value) {
            (_, JsonValue::String(text)) => field.parse_text(text.trim()),
            (FieldType::Str, other) => Ok(JsonValue::String(str_of(&other))),
            (_, other) => field.conform(other),
        };
        let value = read.map_err(|error| Error::Field {
            context: "the LM's reply".to_owned(),
            error: Box::new(error),
        })?;
        outputs.insert(field.name.clone(), value);
    }
    Ok(outputs)
}

/// The first balanced `{...}` of `text` (braces inside JSON strings do not count).
fn first_object(text: &str) -> Option<&str> {
    let start = text.find('{')?;
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (offset, c) in text[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => depth += 1,
            '}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[start..=start + offset]);
                }
            }
            _ => {}
        }
    }
    None
}

/// A reply for an error message: at most [`MAX_REPLY_EXCERPT_CHARS`] characters, quoted.
pub(crate) fn reply_excerpt(reply: &str) -> String {
    let mut chars = reply.chars();
    let head: String = chars.by_ref().take(MAX_REPLY_EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}... ({} characters in all)", reply.chars().count())
    } else {
        format!("{head:?}")
    }
}

/// The opening of a section marker, `[[ ## name ## ]]`.
const MARKER_OPEN: &str = "[[ ## ";
/// The close of a section marker.
const MARKER_CLOSE: &str = " ## ]]";

/// Whether a line starts a section: the field's name and the rest of the line (trimmed), or
/// `None` for a line of text. As DSPy does, the marker is looked for in the stripped line and
/// the rest taken from the line as it was, at the offset found in the stripped line.
pub(super) fn section_start(line: &str) -> Option<(&str, &str)> {
    let (name, end) = header(line.trim())?;
    Some((name, line.get(end..).unwrap_or("").trim()))
}

/// `[[ ## name ## ]]` at the start of `line`: the name and where the marker ends.
fn header(line: &str) -> Option<(&str, usize)> {
    let rest = line.strip_prefix(MARKER_OPEN)?;
    let name_len = marker_name_len(rest);
    if name_len == 0 {
        return None;
    }
    let after = rest[name_len..].strip_prefix(MARKER_CLOSE)?;
    Some((&rest[..name_len], line.len() - after.len()))
}

fn marker_name_len(text: &str) -> usize {
    text.find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len())
}

/// What the start of a line, not yet complete, may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LineStart {
    /// A section marker, whatever follows.
    Marker,
    /// Text, whatever follows.
    Text,
    /// Either: more of the line decides.
    Undecided,
}

/// What a line starting with `partial` is ([`section_start`]'s rule, read on a prefix).
pub(super) fn line_start(partial: &str) -> LineStart {
    let text = partial.trim_start();
    let Some(rest) = text.strip_prefix(MARKER_OPEN) else {
        return if MARKER_OPEN.starts_with(text) {
            LineStart::Undecided
        } else {
            LineStart::Text
        };
    };
    let name_len = marker_name_len(rest);
    let after = &rest[name_len..];
    if after.is_empty() {
        LineStart::Undecided
    } else if name_len == 0 {
        LineStart::Text
    } else if after.starts_with(MARKER_CLOSE) {
        LineStart::Marker
    } else if MARKER_CLOSE.starts_with(after) {
        LineStart::Undecided
    } else {
        LineStart::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sig(text: &str) -> Signature {
        text.parse().unwrap()
    }

    #[test]
    fn a_reply_is_split_at_its_markers_and_read_per_type() {
        let s = sig("q -> answer, tags: list[str], ok: bool");
        let reply = "preamble\n[[ ## answer ## ]] inline\nmore\n\n[[ ## tags ## ]]\n[\"a\", \"b\"]\n[[ ## ok ## ]]\nTrue\n[[ ## answer ## ]]\nignored\n[[ ## completed ## ]]";
        let out = parse_reply(&s, reply).unwrap();
        assert_eq!(out.value("answer"), Some(&json!("inline\nmore")));
        assert_eq!(out.value("tags"), Some(&json!(["a", "b"])));
        assert_eq!(out.value("ok"), Some(&json!(true)));
    }

    #[test]
    fn a_missing_or_mistyped_field_names_the_field_and_quotes_a_bounded_reply() {
        let s = sig("q -> answer, n: int");
        let long = format!(
            "[[ ## answer ## ]]\n{}",
            "x".repeat(5 * MAX_REPLY_EXCERPT_CHARS)
        );
        let err = parse_reply(&s, &long).unwrap_err().to_string();
        assert!(err.contains("`n` is missing from the LM's reply"), "{err}");
        assert!(err.len() < MAX_REPLY_EXCERPT_CHARS + 200, "{}", err.len());
        assert!(err.contains("characters in all"), "{err}");
        let err = parse_reply(&s, "[[ ## answer ## ]]\na\n[[ ## n ## ]]\nmany")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`n`") && err.contains("many"), "{err}");
    }

    #[test]
    fn a_json_reply_is_read_per_type_and_a_missing_field_is_named() {
        let s = sig("q -> answer, n: int, tags: list[str]");
        let reply = r#"Sure: {"answer": "a {b}", "n": 3, "tags": "[\"x\"]", "other": 1} done"#;
        let out = parse_json_reply(&s, reply).unwrap();
        assert_eq!(out.value("answer"), Some(&json!("a {b}")));
        assert_eq!(out.value("n"), Some(&json!(3)));
        assert_eq!(out.value("tags"), Some(&json!(["x"])));
        assert_eq!(out.len(), 3);
        let err = parse_json_reply(&s, r#"{"answer": "a", "tags": []}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`n` is missing from the LM's JSON reply"),
            "{err}"
        );
        let err = parse_json_reply(&s, "[[ ## answer ## ]]\na")
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no JSON object"), "{err}");
    }

    #[test]
    fn literal_types_are_named_with_python_quotes() {
        let ty = FieldType::Literal(vec!["it's".into(), "x\"y".into(), "plain".into()]);
        assert_eq!(annotation_name(&ty), r#"Literal["it's", 'x"y', 'plain']"#);
    }
}
