//! Per-run overrides: other values for some variables, for one run only. The context is never
//! written; each run carries its own values, so concurrent runs never see each other's.

use std::collections::BTreeMap;

use dspex_core::Value;

/// Values that some of a program's variables take for one run (`run_with`), validated like any
/// write against the context's record of the variable, before the run starts: an override of a
/// variable the program does not declare ([`Error::UnknownOverride`](crate::Error::UnknownOverride)) or a value the variable
/// refuses ([`Error::ConstraintViolation`](crate::Error::ConstraintViolation), [`Error::InvalidValue`](crate::Error::InvalidValue)) fails the run and runs no
/// step. The context is untouched. The run's values reach every step: a native step's
/// [`Params`](crate::Params), and a python step's call, which carries them to the worker (its
/// bound parameters, and for an `@var` step the class the overridden `module` variable names),
/// so concurrent runs with different overrides never see each other's values.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::prelude::*;
/// use dspex::Overrides;
///
/// #[derive(Default)]
/// struct Echo;
/// impl Module for Echo {
///     async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
///         let times = params.get::<i64>("times")?;
///         Ok(Fields::from([("echo", vec![inputs.get::<&str>("text")?; times as usize].join(" "))]))
///     }
/// }
///
/// dspex_program! {
///     program Echoer: "text -> echo" {
///         variables { repeat: integer = 1 { min: 1, max: 3 } }
///         chain { echo: native Echo("text -> echo") { repeat as times } }
///     }
/// }
///
/// let echoer = Echoer::start().await?;
/// let thrice = Overrides::new().with("repeat", 3);
/// let out = echoer.run_with(&thrice, EchoerInput { text: "hi".into() }).await?;
/// assert_eq!(out.echo, "hi hi hi");
/// assert_eq!(echoer.repeat().get()?, 1); // the context is untouched
///
/// let err = echoer.run_with(&Overrides::new().with("repeat", 9), EchoerInput { text: "hi".into() }).await;
/// assert_eq!(err.unwrap_err().to_string(), "repeat: 9 is above max 3");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub(super) values: BTreeMap<String, Value>,
}

impl Overrides {
    /// No overrides: a run with them is a plain run.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the override of `variable`.
    #[must_use]
    pub fn with(mut self, variable: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(variable, value);
        self
    }

    /// Sets (or replaces) the override of `variable`.
    pub fn insert(&mut self, variable: impl Into<String>, value: impl Into<Value>) {
        self.values.insert(variable.into(), value.into());
    }

    /// The override of `variable`.
    pub fn get(&self, variable: &str) -> Option<&Value> {
        self.values.get(variable)
    }

    /// The overrides, sorted by variable name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of overridden variables.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Overrides {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            values: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}
