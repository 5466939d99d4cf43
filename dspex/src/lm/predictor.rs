//! What DSPy's optimizers learn for one predictor, as its saved state holds it: the
//! instructions, the demos, and each field's prefix and description.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::Fields;

/// A field's texts in a DSPy predictor's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldText {
    /// DSPy's legacy `prefix` (`Question:`): kept and saved, not part of the chat prompt.
    pub prefix: String,
    /// The field's description, written after its type in the prompt; DSPy's placeholder
    /// `${name}` means none.
    pub description: String,
}

/// What a native `Predict` or `ChainOfThought` step learned: the state DSPy saves for a
/// predictor. Empty by default: DSPy's default instructions, no demos, no descriptions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PredictorState {
    /// The instructions of the prompt; `None` for DSPy's default.
    pub instructions: Option<String>,
    /// Few-shot demos, each holding some or all of the prompt's fields (other keys, such as
    /// DSPy's `augmented`, are kept and not shown).
    pub demos: Vec<Fields>,
    /// The texts of some fields of the prompt, by field name.
    pub fields: BTreeMap<String, FieldText>,
}

impl PredictorState {
    /// The description of each field that has one, by field name.
    pub fn descriptions(&self) -> BTreeMap<String, String> {
        self.fields
            .iter()
            .map(|(name, text)| (name.clone(), text.description.clone()))
            .collect()
    }
}
