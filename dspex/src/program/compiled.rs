//! What compiling a python step leaves: its [`CompiledState`] (DSPy's `dump_state()` of the
//! compiled module), held by the step, re-applied when a worker restarts, and saved with the
//! program's state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

#[cfg(feature = "python")]
use crate::error::{Error, Result};

/// Bytes of a compiled state (its JSON text): the largest a worker returns and a module loads.
pub const MAX_COMPILED_STATE_BYTES: usize = 4 * 1024 * 1024;

/// The compiled state of a python step: DSPy's `dump_state()` of its compiled module (demos,
/// instructions; never an LM), the module class it was compiled for, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompiledState {
    /// The module class it belongs to, as the step names it (`ChainOfThought`).
    pub class: String,
    /// The optimizer and settings that made it (`BootstrapFewShot(max_bootstrapped_demos=2)`).
    pub optimizer: String,
    /// When (RFC 3339).
    pub compiled_at: String,
    /// The state: a JSON object with one entry per predictor of the module.
    pub state: Json,
}

impl CompiledState {
    /// The demos of each predictor of the state, by predictor name (`self` for a module that
    /// is a single predictor, like `Predict`, as DSPy names it).
    pub fn demos(&self) -> BTreeMap<String, Vec<Json>> {
        if let Some(demos) = self.state.get("demos").and_then(Json::as_array) {
            return BTreeMap::from([("self".to_owned(), demos.clone())]);
        }
        self.state
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, part)| {
                let demos = part
                    .get("demos")
                    .and_then(Json::as_array)
                    .cloned()
                    .unwrap_or_default();
                (name.clone(), demos)
            })
            .collect()
    }

    #[cfg(feature = "python")]
    /// The state's JSON text, checked against [`MAX_COMPILED_STATE_BYTES`].
    pub(crate) fn state_text(&self, step: &str) -> Result<String> {
        if !self.state.is_object() {
            return Err(Error::program_state(format!(
                "the compiled state of step `{step}` is not a JSON object"
            )));
        }
        let text = self.state.to_string();
        check_state_size(step, text.len())?;
        Ok(text)
    }
}

#[cfg(feature = "python")]
/// A compiled state of `bytes` bytes must fit [`MAX_COMPILED_STATE_BYTES`].
pub(crate) fn check_state_size(step: &str, bytes: usize) -> Result<()> {
    if bytes > MAX_COMPILED_STATE_BYTES {
        return Err(Error::limit(
            "MAX_COMPILED_STATE_BYTES",
            format!(
                "the compiled state of step `{step}` is {bytes} bytes, over the limit of {MAX_COMPILED_STATE_BYTES} (MAX_COMPILED_STATE_BYTES)"
            ),
        ));
    }
    Ok(())
}
