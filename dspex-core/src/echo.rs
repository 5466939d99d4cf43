//! How error messages quote what a caller gave them: at most a short prefix, so that a message
//! about a huge value stays short (a gRPC status carries its message in a header, and clients
//! refuse headers over 16 KiB by default).

use std::borrow::Cow;
use std::fmt;

use serde_json::Value as JsonValue;

/// Characters of a string an error message quotes; longer strings are cut there and followed
/// by their length in bytes.
pub const MAX_ECHO_CHARS: usize = 64;

/// Items of a list (the choices of a variable) an error message lists before eliding the rest.
pub const MAX_ECHO_ITEMS: usize = 8;

/// `s` cut after [`MAX_ECHO_CHARS`] characters: its prefix when it is longer.
fn cut(s: &str) -> Option<&str> {
    s.char_indices().nth(MAX_ECHO_CHARS).map(|(at, _)| &s[..at])
}

/// A string as error messages quote it: Rust-debug-quoted, cut after [`MAX_ECHO_CHARS`]
/// characters.
///
/// ```
/// use dspex_core::Echo;
///
/// assert_eq!(Echo("hot").to_string(), r#""hot""#);
/// let long = "x".repeat(100_000);
/// assert_eq!(Echo(&long).to_string(), format!("\"{}\"... (100000 bytes)", "x".repeat(64)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Echo<'a>(pub &'a str);

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match cut(self.0) {
            None => write!(f, "{:?}", self.0),
            Some(prefix) => write!(f, "{prefix:?}... ({} bytes)", self.0.len()),
        }
    }
}

/// A string cut after [`MAX_ECHO_CHARS`] characters, unquoted (`"abc..."`), for names quoted in
/// backticks.
///
/// ```
/// assert_eq!(dspex_core::echo_prefix("short"), "short");
/// assert_eq!(dspex_core::echo_prefix(&"n".repeat(70)), format!("{}...", "n".repeat(64)));
/// ```
pub fn echo_prefix(s: &str) -> Cow<'_, str> {
    match cut(s) {
        None => Cow::Borrowed(s),
        Some(prefix) => Cow::Owned(format!("{prefix}...")),
    }
}

/// A text as an error message quotes it between backticks: whole up to [`MAX_ECHO_CHARS`]
/// chars, else its first [`MAX_ECHO_CHARS`] chars and how long it is.
///
/// ```
/// use dspex_core::{MAX_ECHO_CHARS, excerpt};
///
/// assert_eq!(excerpt("short"), "short");
/// let long = "x".repeat(MAX_ECHO_CHARS + 1);
/// assert_eq!(excerpt(&long), format!("{}... ({} chars)", "x".repeat(MAX_ECHO_CHARS), MAX_ECHO_CHARS + 1));
/// ```
pub fn excerpt(text: &str) -> String {
    match cut(text) {
        None => text.to_owned(),
        Some(prefix) => format!("{prefix}... ({} chars)", text.chars().count()),
    }
}

/// A JSON value as an error message quotes it (see [`excerpt`]).
pub fn value_excerpt(value: &JsonValue) -> String {
    excerpt(&value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Constraints, Value, VarType, VariableSpec};

    #[test]
    fn excerpts_are_bounded() {
        let at_limit = "é".repeat(MAX_ECHO_CHARS);
        assert_eq!(excerpt(&at_limit), at_limit);
        let over = format!("{at_limit}x");
        assert_eq!(
            excerpt(&over),
            format!("{at_limit}... ({} chars)", MAX_ECHO_CHARS + 1)
        );
        assert_eq!(value_excerpt(&serde_json::json!("a")), "\"a\"");
    }

    #[test]
    fn strings_are_quoted_whole_up_to_the_bound_and_cut_over_it() {
        let at = "é".repeat(MAX_ECHO_CHARS);
        assert_eq!(Echo(&at).to_string(), format!("{at:?}"));
        let over = "é".repeat(MAX_ECHO_CHARS + 1);
        assert_eq!(
            Echo(&over).to_string(),
            format!("{at:?}... ({} bytes)", over.len())
        );
    }

    #[test]
    fn messages_about_huge_values_and_long_choice_lists_stay_short() {
        let choices: Vec<String> = (0..100)
            .map(|i| format!("{i}{}", "c".repeat(1000)))
            .collect();
        let spec = VariableSpec::new("model", VarType::Choice, choices[0].as_str())
            .with_constraints(Constraints::choices(choices.clone()));
        let err = spec
            .validate(Value::String("v".repeat(1 << 20)))
            .unwrap_err()
            .to_string();
        assert!(err.len() < 4 * 1024, "{} bytes", err.len());
        assert!(
            err.starts_with(&format!(
                "model: \"{}\"... (1048576 bytes) is not one of the choices",
                "v".repeat(64)
            )),
            "{err}"
        );
        assert!(err.ends_with(", ... (100 choices)"), "{err}");
    }
}
