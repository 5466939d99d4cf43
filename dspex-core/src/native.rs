//! The `with` configuration of dspex's own LM modules, the native `Predict` and
//! `ChainOfThought` steps: which of DSPy's adapters writes the prompt and reads the reply
//! (`adapter: "chat" | "json"`), and whether a `ChatAdapter` reply that does not parse is asked
//! again with the JSON adapter (`json_fallback: true | false`, DSPy's
//! `ChatAdapter(use_json_adapter_fallback=...)`). The macros and the runtime builder check a
//! native step's `with` against [`CONFIG`]; the module reads it with [`LmStepConfig::read`].
//!
//! ```
//! use dspex_core::native::{self, Adapter, LmStepConfig};
//! use dspex_core::program::ConfigEntry;
//!
//! assert_eq!(native::lm_module("dspex::ChainOfThought"), Some("ChainOfThought"));
//! assert_eq!(native::lm_module("Retriever"), None);
//! let config = LmStepConfig::read(&[ConfigEntry::new("adapter", "json")]).unwrap();
//! assert_eq!(config.adapter, Some(Adapter::Json));
//! assert_eq!(config.json_fallback, None);
//! ```

use crate::dspy::{ConfigEntry, ConfigKey, ConfigKind, ConfigValue};

/// dspex's own LM modules, which a native step names by type: they take [`CONFIG`].
pub const LM_MODULES: [&str; 2] = ["Predict", "ChainOfThought"];

/// The key that picks the adapter.
pub const ADAPTER_KEY: &str = "adapter";

/// The key that turns the `ChatAdapter` -> JSON adapter fallback on or off.
pub const JSON_FALLBACK_KEY: &str = "json_fallback";

/// The values of [`ADAPTER_KEY`], as [`Adapter::name`] writes them.
pub const ADAPTER_NAMES: &[&str] = &["chat", "json"];

/// The `with` keys a native `Predict` or `ChainOfThought` step takes.
pub const CONFIG: &[ConfigKey] = &[
    ConfigKey {
        name: ADAPTER_KEY,
        kind: ConfigKind::OneOf(ADAPTER_NAMES),
    },
    ConfigKey {
        name: JSON_FALLBACK_KEY,
        kind: ConfigKind::Boolean,
    },
];

/// Which of DSPy's adapters writes a step's prompt and reads its reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Adapter {
    /// DSPy's `ChatAdapter`: `[[ ## field ## ]]` sections (the default).
    #[default]
    Chat,
    /// DSPy's `JSONAdapter`: the outputs as one JSON object.
    Json,
}

impl Adapter {
    /// The adapter's name in a `with` configuration: `chat` or `json`.
    pub fn name(self) -> &'static str {
        match self {
            Adapter::Chat => "chat",
            Adapter::Json => "json",
        }
    }

    /// The adapter named `name` ([`ADAPTER_NAMES`]).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "chat" => Some(Adapter::Chat),
            "json" => Some(Adapter::Json),
            _ => None,
        }
    }
}

/// The LM module a native step's type names, by its last path segment (`dspex::Predict`
/// names `Predict`), if it is one of [`LM_MODULES`].
pub fn lm_module(type_name: &str) -> Option<&'static str> {
    let last = type_name.rsplit("::").next().unwrap_or(type_name);
    LM_MODULES.iter().copied().find(|m| *m == last)
}

/// Whether `key` is one of [`CONFIG`].
pub fn is_config_key(key: &str) -> bool {
    CONFIG.iter().any(|k| k.name == key)
}

/// What a native LM step's `with` sets; `None` leaves the module's own setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LmStepConfig {
    /// `adapter`.
    pub adapter: Option<Adapter>,
    /// `json_fallback`.
    pub json_fallback: Option<bool>,
}

impl LmStepConfig {
    /// Reads a (checked) `with` configuration. An entry [`CONFIG`] does not allow is an error
    /// naming it (a checked program has none).
    pub fn read(entries: &[ConfigEntry]) -> Result<Self, String> {
        let mut config = Self::default();
        for entry in entries {
            match (entry.key.as_str(), &entry.value) {
                (ADAPTER_KEY, ConfigValue::String(name)) if config.adapter.is_none() => {
                    config.adapter = Adapter::from_name(name);
                    if config.adapter.is_none() {
                        return Err(format!("`{ADAPTER_KEY}` {name:?} is no adapter"));
                    }
                }
                (JSON_FALLBACK_KEY, ConfigValue::Boolean(on)) if config.json_fallback.is_none() => {
                    config.json_fallback = Some(*on);
                }
                (key, value) => {
                    return Err(format!(
                        "`with` key `{key}` ({}) is not one a native LM step takes once",
                        value.describe()
                    ));
                }
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_names_round_trip() {
        for name in ADAPTER_NAMES {
            assert_eq!(Adapter::from_name(name).unwrap().name(), *name);
        }
        assert_eq!(Adapter::from_name("xml"), None);
    }

    #[test]
    fn lm_modules_are_named_by_the_last_segment() {
        assert_eq!(lm_module("Predict"), Some("Predict"));
        assert_eq!(lm_module("::dspex::program::Predict"), Some("Predict"));
        assert_eq!(lm_module("PredictMore"), None);
    }

    #[test]
    fn reading_refuses_what_a_check_refuses() {
        let read = |entries: &[ConfigEntry]| LmStepConfig::read(entries);
        assert_eq!(
            read(&[
                ConfigEntry::new(ADAPTER_KEY, "chat"),
                ConfigEntry::new(JSON_FALLBACK_KEY, false)
            ]),
            Ok(LmStepConfig {
                adapter: Some(Adapter::Chat),
                json_fallback: Some(false)
            })
        );
        assert!(read(&[ConfigEntry::new(ADAPTER_KEY, "xml")]).is_err());
        assert!(read(&[ConfigEntry::new(JSON_FALLBACK_KEY, "no")]).is_err());
        assert!(read(&[ConfigEntry::new("max_iters", 3)]).is_err());
        let twice = [
            ConfigEntry::new(ADAPTER_KEY, "chat"),
            ConfigEntry::new(ADAPTER_KEY, "json"),
        ];
        assert!(read(&twice).is_err());
    }
}
