//! The table of the DSPy modules a python step can name without a path, and what each takes:
//! the parameters a step may bind to variables (applied to every call) and the configuration
//! its constructor takes (`with { max_iters: 5 }`), with the values each key accepts.
//!
//! This table is the one source of truth for both sides: the macros and the runtime builder
//! check steps against it, the Python worker's test suite checks the installed DSPy against the
//! copy of it that `dspex` exports to the Python package (`contract.json`).
//!
//! ```
//! use dspex_core::dspy::{self, ConfigKind, ConfigValue};
//!
//! let react = dspy::module("ReAct").unwrap();
//! assert!(react.takes_tools());
//! assert!(react.param("max_iters").is_some()); // bound per call
//! let max_iters = react.config_key("max_iters").unwrap().kind;
//! assert_eq!(max_iters, ConfigKind::Integer { min: 1 });
//! assert_eq!(max_iters.check(&ConfigValue::Integer(0)).unwrap_err(), "0");
//! assert!(dspy::module("Predict").unwrap().config_key("max_iters").is_none());
//! ```

use std::fmt;

use crate::value::VarType;

/// The configuration key that gives an agent its tools.
pub const TOOLS_KEY: &str = "tools";

/// How long a Rust tool call may run when its declaration gives no `timeout_ms`, in
/// milliseconds.
pub const DEFAULT_TOOL_TIMEOUT_MS: u64 = 30_000;

/// The longest timeout a Rust tool (any Rust callable a worker calls back) may have, in
/// milliseconds.
pub const MAX_TOOL_TIMEOUT_MS: u64 = 600_000;

/// The longest string value an error message quotes, in chars; a longer one is cut.
const QUOTED_PREFIX: usize = 40;

/// How the worker applies a bound parameter to each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamUse {
    /// A request setting of the call's LM (`temperature`).
    LmSetting,
    /// The model of the call's LM.
    Model,
    /// A keyword argument of the call: `module(**inputs, max_iters=3)`.
    CallArgument,
}

impl ParamUse {
    /// The name the contract file uses: `lm_setting`, `model` or `call_argument`.
    pub fn name(self) -> &'static str {
        match self {
            ParamUse::LmSetting => "lm_setting",
            ParamUse::Model => "model",
            ParamUse::CallArgument => "call_argument",
        }
    }
}

/// A module parameter that a step may bind to a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// The parameter's name.
    pub name: &'static str,
    /// The variable types it accepts.
    pub types: &'static [VarType],
    /// How the worker applies it.
    pub applies: ParamUse,
}

/// The parameters every python step takes, whatever its module (a dotted path too): the
/// request settings and the model of the LM of each call.
pub const LM_PARAMS: &[Param] = &[
    Param {
        name: "temperature",
        types: &[VarType::Float],
        applies: ParamUse::LmSetting,
    },
    Param {
        name: "top_p",
        types: &[VarType::Float],
        applies: ParamUse::LmSetting,
    },
    Param {
        name: "max_tokens",
        types: &[VarType::Integer],
        applies: ParamUse::LmSetting,
    },
    Param {
        name: "n",
        types: &[VarType::Integer],
        applies: ParamUse::LmSetting,
    },
    Param {
        name: "model",
        types: &[VarType::Choice, VarType::String],
        applies: ParamUse::Model,
    },
];

/// The parameter of a known module named `name`, if it is one of [`LM_PARAMS`].
pub fn lm_param(name: &str) -> Option<&'static Param> {
    LM_PARAMS.iter().find(|p| p.name == name)
}

/// What a configuration key accepts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConfigKind {
    /// An integer of at least `min`.
    Integer {
        /// The smallest value accepted.
        min: i64,
    },
    /// A float (an integer is widened) of at least `min` and, when given, at most `max`.
    Float {
        /// The smallest value accepted.
        min: f64,
        /// The largest value accepted, if any.
        max: Option<f64>,
    },
    /// `true` or `false`.
    Boolean,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// The tools of an agent: Python callables by dotted path (`"my_pkg.tools.search"`) and
    /// Rust functions by path.
    Tools,
    /// Any value but tools: what a key of a module named by dotted path accepts, since the
    /// table does not know that module.
    Literal,
}

impl ConfigKind {
    /// The name the contract file uses: `integer`, `float`, `boolean`, `one_of`, `tools` or
    /// `literal`.
    pub fn name(self) -> &'static str {
        match self {
            ConfigKind::Integer { .. } => "integer",
            ConfigKind::Float { .. } => "float",
            ConfigKind::Boolean => "boolean",
            ConfigKind::OneOf(_) => "one_of",
            ConfigKind::Tools => "tools",
            ConfigKind::Literal => "literal",
        }
    }

    /// Checks `value` against this kind. Returns the value in canonical form (an integer
    /// widened to a float for a float key, a list of strings as Python tools for `tools`), or
    /// what was found instead, for "found ..." in a message: the value when it has the right
    /// type but is out of range, else its kind.
    pub fn check(self, value: &ConfigValue) -> Result<ConfigValue, String> {
        match (self, value) {
            (ConfigKind::Integer { min }, ConfigValue::Integer(i)) => {
                if *i >= min {
                    Ok(value.clone())
                } else {
                    Err(i.to_string())
                }
            }
            (ConfigKind::Float { min, max }, ConfigValue::Float(x)) => float_in(*x, min, max),
            // Widening is the rule of float variables too.
            #[allow(clippy::cast_precision_loss)]
            (ConfigKind::Float { min, max }, ConfigValue::Integer(i)) => {
                float_in(*i as f64, min, max)
            }
            (ConfigKind::Boolean, ConfigValue::Boolean(_)) => Ok(value.clone()),
            (ConfigKind::OneOf(options), ConfigValue::String(s)) => {
                if options.contains(&s.as_str()) {
                    Ok(value.clone())
                } else {
                    Err(quoted(s))
                }
            }
            (ConfigKind::Tools, ConfigValue::Strings(paths)) => Ok(ConfigValue::Tools(
                paths.iter().cloned().map(ToolRef::Python).collect(),
            )),
            (ConfigKind::Tools, ConfigValue::Tools(_)) => Ok(value.clone()),
            (ConfigKind::Literal, ConfigValue::Tools(_)) => Err(value.describe().to_owned()),
            (ConfigKind::Literal, _) => Ok(value.clone()),
            _ => Err(value.describe().to_owned()),
        }
    }
}

impl fmt::Display for ConfigKind {
    /// What the kind accepts, for "takes `key` as ..." in a message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigKind::Integer { min } if *min == i64::MIN => f.write_str("an integer"),
            ConfigKind::Integer { min } => write!(f, "an integer of at least {min}"),
            ConfigKind::Float { min, max: None } => write!(f, "a float of at least {min:?}"),
            ConfigKind::Float {
                min,
                max: Some(max),
            } => write!(f, "a float from {min:?} to {max:?}"),
            ConfigKind::Boolean => f.write_str("a boolean"),
            ConfigKind::OneOf(options) => {
                let options: Vec<String> = options.iter().map(|o| format!("{o:?}")).collect();
                write!(f, "one of {}", options.join(", "))
            }
            ConfigKind::Tools => f.write_str("a list of tools, like `[\"my_pkg.tools.search\"]`"),
            ConfigKind::Literal => f.write_str(
                "a literal (a number, a string, a boolean or a list of string literals)",
            ),
        }
    }
}

/// A constructor configuration key of a module.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigKey {
    /// The key, as `with` writes it.
    pub name: &'static str,
    /// What it accepts.
    pub kind: ConfigKind,
}

/// A DSPy module the worker knows by name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DspyModule {
    /// The class name in `dspy` (`ChainOfThought`).
    pub name: &'static str,
    /// The parameters it takes besides [`LM_PARAMS`]: keyword arguments of its `forward`.
    pub call_params: &'static [Param],
    /// The keys its constructor takes through `with`.
    pub config: &'static [ConfigKey],
}

impl DspyModule {
    /// Every parameter a step of this module may bind: [`LM_PARAMS`], then
    /// [`call_params`](Self::call_params).
    pub fn params(&self) -> impl Iterator<Item = &'static Param> + use<> {
        LM_PARAMS.iter().chain(self.call_params)
    }

    /// The parameter named `name`, if the module takes it.
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.params().find(|p| p.name == name)
    }

    /// The configuration key `key`, if the module takes it.
    pub fn config_key(&self, key: &str) -> Option<&'static ConfigKey> {
        self.config.iter().find(|k| k.name == key)
    }

    /// Whether the module takes [`TOOLS_KEY`].
    pub fn takes_tools(&self) -> bool {
        self.config_key(TOOLS_KEY).is_some()
    }
}

/// The LM request settings that `Predict` (and `ChainOfThought`, which passes them on) take
/// as constructor defaults; a bound variable overrides them per call.
const LM_SETTINGS_CONFIG: &[ConfigKey] = &[
    ConfigKey {
        name: "temperature",
        kind: ConfigKind::Float {
            min: 0.0,
            max: None,
        },
    },
    ConfigKey {
        name: "top_p",
        kind: ConfigKind::Float {
            min: 0.0,
            max: Some(1.0),
        },
    },
    ConfigKey {
        name: "max_tokens",
        kind: ConfigKind::Integer { min: 1 },
    },
    ConfigKey {
        name: "n",
        kind: ConfigKind::Integer { min: 1 },
    },
];

/// `max_iters` as a constructor key: at least one iteration (with none, `ReAct` never acts and
/// `ProgramOfThought` never stops retrying).
const MAX_ITERS: ConfigKey = ConfigKey {
    name: "max_iters",
    kind: ConfigKind::Integer { min: 1 },
};

/// The DSPy modules the worker knows by name (DSPy 3.4): their constructors and `forward`
/// signatures, as far as a literal can set them.
///
/// - `Predict(signature, **config)`: `config` holds default LM request settings.
/// - `ChainOfThought(signature, rationale_field=None, rationale_field_type=str, **config)`:
///   the rationale arguments are Python objects, `config` goes to its `Predict`.
/// - `ReAct(signature, tools, max_iters=20)`, whose `forward` also takes `max_iters` per call.
/// - `ProgramOfThought(signature, max_iters=3, interpreter_factory=PythonInterpreter)`:
///   `interpreter` picks the factory, `"deno"` (DSPy's sandbox, the default) or `"local"`
///   (`dspy.LocalInterpreter`, no sandbox).
///
/// Left out: modules that need a Python object no literal can give (`BestOfN` and `Refine` a
/// reward function, `KNN` a training set, `Parallel` and `MultiChainComparison` other modules'
/// results), the experimental `ReActV2`, and `CodeAct` and `RLM`, which need a sandbox.
pub const MODULES: &[DspyModule] = &[
    DspyModule {
        name: "Predict",
        call_params: &[],
        config: LM_SETTINGS_CONFIG,
    },
    DspyModule {
        name: "ChainOfThought",
        call_params: &[],
        config: LM_SETTINGS_CONFIG,
    },
    DspyModule {
        name: "ReAct",
        call_params: &[Param {
            name: "max_iters",
            types: &[VarType::Integer],
            applies: ParamUse::CallArgument,
        }],
        config: &[
            MAX_ITERS,
            ConfigKey {
                name: TOOLS_KEY,
                kind: ConfigKind::Tools,
            },
        ],
    },
    DspyModule {
        name: "ProgramOfThought",
        call_params: &[],
        config: &[
            MAX_ITERS,
            ConfigKey {
                name: "interpreter",
                kind: ConfigKind::OneOf(&["deno", "local"]),
            },
        ],
    },
];

/// The known module named `name`.
pub fn module(name: &str) -> Option<&'static DspyModule> {
    MODULES.iter().find(|m| m.name == name)
}

/// The names of the known modules, in table order. A `module` variable without `choices`
/// accepts exactly these.
pub fn module_names() -> impl Iterator<Item = &'static str> + Clone {
    MODULES.iter().map(|m| m.name)
}

/// What configuration key `key` of the module class `class` accepts: for a known module its
/// kind (`None` if the module does not take the key); for any other class (a dotted path) the
/// table knows nothing, so [`ConfigKind::Tools`] for [`TOOLS_KEY`] and [`ConfigKind::Literal`]
/// for every other key.
pub fn config_kind(class: &str, key: &str) -> Option<ConfigKind> {
    match module(class) {
        Some(m) => m.config_key(key).map(|k| k.kind),
        None if key == TOOLS_KEY => Some(ConfigKind::Tools),
        None => Some(ConfigKind::Literal),
    }
}

/// A value of `with` configuration, as written: a literal, or a list.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A string.
    String(String),
    /// A boolean.
    Boolean(bool),
    /// A list of string literals: `["a", "b"]`.
    Strings(Vec<String>),
    /// A list of tools, the value of [`TOOLS_KEY`]: `[search_docs, "my_pkg.tools.search"]`.
    Tools(Vec<ToolRef>),
}

impl ConfigValue {
    /// What kind of value this is, for "found ..." in messages: `a string`, `an integer`, ...
    pub fn describe(&self) -> &'static str {
        match self {
            ConfigValue::Integer(_) => "an integer",
            ConfigValue::Float(_) => "a float",
            ConfigValue::String(_) => "a string",
            ConfigValue::Boolean(_) => "a boolean",
            ConfigValue::Strings(_) => "a list of strings",
            ConfigValue::Tools(_) => "a list of tools",
        }
    }
}

impl From<i64> for ConfigValue {
    fn from(v: i64) -> Self {
        ConfigValue::Integer(v)
    }
}
impl From<i32> for ConfigValue {
    fn from(v: i32) -> Self {
        ConfigValue::Integer(i64::from(v))
    }
}
impl From<f64> for ConfigValue {
    fn from(v: f64) -> Self {
        ConfigValue::Float(v)
    }
}
impl From<bool> for ConfigValue {
    fn from(v: bool) -> Self {
        ConfigValue::Boolean(v)
    }
}
impl From<&str> for ConfigValue {
    fn from(v: &str) -> Self {
        ConfigValue::String(v.to_owned())
    }
}
impl From<String> for ConfigValue {
    fn from(v: String) -> Self {
        ConfigValue::String(v)
    }
}
impl From<Vec<String>> for ConfigValue {
    fn from(v: Vec<String>) -> Self {
        ConfigValue::Strings(v)
    }
}
impl From<Vec<&str>> for ConfigValue {
    fn from(v: Vec<&str>) -> Self {
        ConfigValue::Strings(v.into_iter().map(str::to_owned).collect())
    }
}
impl<const N: usize> From<[&str; N]> for ConfigValue {
    fn from(v: [&str; N]) -> Self {
        ConfigValue::Strings(v.into_iter().map(str::to_owned).collect())
    }
}
impl From<Vec<ToolRef>> for ConfigValue {
    fn from(v: Vec<ToolRef>) -> Self {
        ConfigValue::Tools(v)
    }
}

/// A tool in [`TOOLS_KEY`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolRef {
    /// A Python callable, by dotted path (`"my_pkg.tools.search"`), imported by the worker.
    Python(String),
    /// A Rust function, by its path as written (`search_docs`, `crate::tools::search`).
    Rust(String),
}

impl fmt::Display for ToolRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolRef::Python(path) | ToolRef::Rust(path) => f.write_str(path),
        }
    }
}

/// One entry of a step's `with` configuration: `max_iters: 5`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    /// The key.
    pub key: String,
    /// The value, as written.
    pub value: ConfigValue,
}

impl ConfigEntry {
    /// `key: value`.
    pub fn new(key: impl Into<String>, value: impl Into<ConfigValue>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }

    /// The value as the module `class` receives it: in the canonical form of its kind
    /// ([`ConfigKind::check`]), or as written when the kind does not accept it (a checked
    /// program never has such a value).
    pub fn canonical(&self, class: &str) -> ConfigValue {
        config_kind(class, &self.key)
            .and_then(|kind| kind.check(&self.value).ok())
            .unwrap_or_else(|| self.value.clone())
    }
}

/// `x` as a float value if it lies in `min..=max`, else `x` for "found ...".
fn float_in(x: f64, min: f64, max: Option<f64>) -> Result<ConfigValue, String> {
    if x >= min && max.is_none_or(|max| x <= max) {
        Ok(ConfigValue::Float(x))
    } else {
        Err(format!("{x:?}"))
    }
}

/// `s` quoted, cut to [`QUOTED_PREFIX`] chars.
fn quoted(s: &str) -> String {
    if s.chars().count() <= QUOTED_PREFIX {
        return format!("{s:?}");
    }
    let prefix: String = s.chars().take(QUOTED_PREFIX).collect();
    format!("{prefix:?}...")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_has_one_type_across_the_table() {
        for m in MODULES {
            for p in m.params() {
                for other in MODULES.iter().filter_map(|o| o.param(p.name)) {
                    assert_eq!(p, other, "{} of {}", p.name, m.name);
                }
            }
        }
    }

    #[test]
    fn names_are_unique_and_only_react_takes_tools() {
        let names: Vec<&str> = module_names().collect();
        assert_eq!(
            names,
            ["Predict", "ChainOfThought", "ReAct", "ProgramOfThought"]
        );
        for m in MODULES {
            let keys: Vec<&str> = m.config.iter().map(|k| k.name).collect();
            let params: Vec<&str> = m.params().map(|p| p.name).collect();
            for (i, k) in keys.iter().enumerate() {
                assert!(!keys[..i].contains(k), "{k} twice in {}", m.name);
            }
            for (i, p) in params.iter().enumerate() {
                assert!(!params[..i].contains(p), "{p} twice in {}", m.name);
            }
        }
        let takers: Vec<&str> = MODULES
            .iter()
            .filter(|m| m.takes_tools())
            .map(|m| m.name)
            .collect();
        assert_eq!(takers, ["ReAct"]);
    }

    #[test]
    fn kinds_check_and_canonicalize_values() {
        let float = ConfigKind::Float {
            min: 0.0,
            max: Some(1.0),
        };
        assert_eq!(
            float.check(&ConfigValue::Integer(1)),
            Ok(ConfigValue::Float(1.0))
        );
        assert_eq!(float.check(&ConfigValue::Float(1.5)).unwrap_err(), "1.5");
        assert_eq!(
            float.check(&ConfigValue::Float(f64::NAN)).unwrap_err(),
            "NaN"
        );
        assert_eq!(
            float.check(&"x".into()).unwrap_err(),
            "a string",
            "a value of another type is described by its kind"
        );
        let integer = ConfigKind::Integer { min: 1 };
        assert_eq!(
            integer.check(&ConfigValue::Float(2.0)).unwrap_err(),
            "a float"
        );
        assert_eq!(integer.check(&ConfigValue::Integer(1)), Ok(1.into()));
        let one_of = ConfigKind::OneOf(&["deno", "local"]);
        assert_eq!(one_of.check(&"docker".into()).unwrap_err(), "\"docker\"");
        let at_limit = "x".repeat(QUOTED_PREFIX);
        assert_eq!(
            one_of.check(&at_limit.as_str().into()).unwrap_err(),
            format!("{at_limit:?}")
        );
        let long = "x".repeat(QUOTED_PREFIX + 1);
        assert_eq!(
            one_of.check(&long.as_str().into()).unwrap_err(),
            format!("\"{}\"...", "x".repeat(QUOTED_PREFIX))
        );
        assert_eq!(
            ConfigKind::Tools.check(&["a.b"].into()),
            Ok(ConfigValue::Tools(vec![ToolRef::Python("a.b".into())]))
        );
        assert_eq!(
            ConfigKind::Tools
                .check(&ConfigValue::Boolean(true))
                .unwrap_err(),
            "a boolean"
        );
        assert!(ConfigKind::Literal.check(&["a"].into()).is_ok());
        assert_eq!(
            ConfigKind::Literal
                .check(&ConfigValue::Tools(vec![]))
                .unwrap_err(),
            "a list of tools"
        );
    }

    #[test]
    fn kinds_say_what_they_accept() {
        let said: Vec<String> = [
            ConfigKind::Integer { min: 1 },
            ConfigKind::Integer { min: i64::MIN },
            ConfigKind::Float {
                min: 0.0,
                max: None,
            },
            ConfigKind::Float {
                min: 0.0,
                max: Some(1.0),
            },
            ConfigKind::OneOf(&["deno", "local"]),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            said,
            [
                "an integer of at least 1",
                "an integer",
                "a float of at least 0.0",
                "a float from 0.0 to 1.0",
                "one of \"deno\", \"local\"",
            ]
        );
    }

    #[test]
    fn dotted_path_classes_take_any_key_and_the_canonical_form_follows_the_class() {
        assert_eq!(
            config_kind("my_pkg.Agent", "anything"),
            Some(ConfigKind::Literal)
        );
        assert_eq!(
            config_kind("my_pkg.Agent", TOOLS_KEY),
            Some(ConfigKind::Tools)
        );
        assert_eq!(config_kind("Predict", TOOLS_KEY), None);
        let entry = ConfigEntry::new("temperature", 1);
        assert_eq!(entry.canonical("Predict"), ConfigValue::Float(1.0));
        assert_eq!(entry.canonical("my_pkg.Agent"), ConfigValue::Integer(1));
    }
}
