//! How error messages quote what a caller gave them: at most a short prefix, so that a message
//! about a huge value stays short (a gRPC status carries its message in a header, and clients
//! refuse headers over 16 KiB by default).

use std::fmt;

/// Characters of a string an error message quotes; longer strings are cut there and followed
/// by their length in bytes.
pub const MAX_ECHO_CHARS: usize = 64;

/// Items of a list (the choices of a variable) an error message lists before eliding the rest.
pub const MAX_ECHO_ITEMS: usize = 8;

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
        match self.0.char_indices().nth(MAX_ECHO_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}... ({} bytes)", &self.0[..cut], self.0.len()),
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
pub fn echo_prefix(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(MAX_ECHO_CHARS) {
        None => std::borrow::Cow::Borrowed(s),
        Some((cut, _)) => std::borrow::Cow::Owned(format!("{}...", &s[..cut])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Constraints, Value, VarType, VariableSpec};

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
