//! The search space: which of a program's declared variables the tuner searches and over which
//! values, derived from their types and constraints, then fixed, narrowed, log-scaled or given
//! candidates by the user. Every value it can produce passes the variable's validation.

use std::collections::BTreeMap;
use std::fmt;

use dspex_core::dspy::module_names;
use dspex_core::program::ProgramSpec;
use dspex_core::{Value, VarType, VariableSpec, did_you_mean};

use crate::error::{Error, Result};
use crate::program::BaseProgram;

/// The values a searched variable ranges over.
#[derive(Debug, Clone, PartialEq)]
pub enum Domain {
    /// A float in `low..=high`, sampled uniformly in its logarithm when `log`.
    Float {
        /// Inclusive lower bound.
        low: f64,
        /// Inclusive upper bound.
        high: f64,
        /// Log scale (`low > 0`).
        log: bool,
    },
    /// An integer in `low..=high`, sampled uniformly in its logarithm when `log`.
    Int {
        /// Inclusive lower bound.
        low: i64,
        /// Inclusive upper bound.
        high: i64,
        /// Log scale (`low > 0`).
        log: bool,
    },
    /// One of these values (booleans, choices, modules, listed candidates).
    Categorical(Vec<Value>),
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let log = |log: bool| if log { " (log)" } else { "" };
        match self {
            Domain::Float { low, high, log: l } => write!(f, "{low:?}..={high:?}{}", log(*l)),
            Domain::Int { low, high, log: l } => write!(f, "{low}..={high}{}", log(*l)),
            Domain::Categorical(values) => {
                let values: Vec<String> = values.iter().map(Value::to_string).collect();
                write!(f, "{{{}}}", values.join(", "))
            }
        }
    }
}

/// One searched variable.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimension {
    /// The variable.
    pub name: String,
    /// Its values.
    pub domain: Domain,
}

/// A variable the tuner does not search, and why.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    /// Fixed by the user: every trial runs with this value.
    Fixed(Value),
    /// Left at its value in the context: the reason says why it is not searched.
    Untuned(String),
}

/// What the tuner searches: one [`Dimension`] per searched variable, and every other declared
/// variable with the reason it is held. Built from a program's declaration by
/// [`SearchSpace::of`]:
///
/// | type | searched over |
/// |---|---|
/// | `float`, `integer` | `min..=max` (both bounds needed: otherwise held until narrowed) |
/// | `boolean` | `false`, `true` |
/// | `choice` | its choices |
/// | `module` | its choices, else the DSPy modules the worker knows |
/// | `string`, `embedding` | only the candidates listed with [`candidates`](Self::candidates) |
///
/// A variable declared `readonly` is never searched, fixed or overridden: it is held at its
/// value in the context, with that reason.
///
/// Then [`fix`](Self::fix), [`narrow`](Self::narrow), [`log_scale`](Self::log_scale),
/// [`candidates`](Self::candidates) and [`hold`](Self::hold) adjust it; every value given is
/// validated against the variable's declaration, and a name that is not declared is an error.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::prelude::*;
/// use dspex::tune::SearchSpace;
///
/// #[derive(Default)]
/// struct Echo;
/// impl Module for Echo {
///     async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
///         Ok(Fields::from([("out", inputs.get::<&str>("text")?)]))
///     }
/// }
///
/// dspex_program! {
///     program P: "text -> out" {
///         variables {
///             temperature: float = 0.7 { min: 0.0, max: 2.0 },
///             max_tokens: integer = 256 { min: 1, max: 4096 },
///             style: string = "plain",
///         }
///         chain { echo: native Echo("text -> out") { temperature, max_tokens, style } }
///     }
/// }
///
/// let p = P::start().await?;
/// let space = SearchSpace::of(&p)?
///     .narrow("temperature", 0.0, 1.0)?
///     .log_scale("max_tokens")?
///     .candidates("style", ["plain", "formal"])?;
/// assert_eq!(space.dimensions().len(), 3);
/// let err = SearchSpace::of(&p)?.narrow("temperature", 0.0, 3.0).unwrap_err();
/// assert_eq!(err.to_string(), "tuning: cannot narrow `temperature` to 0.0..=3.0: temperature: 3.0 is above max 2.0");
/// assert!(SearchSpace::of(&p)?.log_scale("temperature").is_err()); // min is 0
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSpace {
    program: String,
    /// The declarations, to validate what the user gives and what samplers produce.
    variables: Vec<VariableSpec>,
    dimensions: Vec<Dimension>,
    held: BTreeMap<String, Held>,
}

impl SearchSpace {
    /// The default space of `program`'s declared variables (see the table above).
    pub fn of<P: BaseProgram + ?Sized>(program: &P) -> Result<Self> {
        Ok(Self::of_spec(program.program_spec()))
    }

    /// The default space of a declaration.
    pub fn of_spec(spec: &ProgramSpec) -> Self {
        let mut dimensions = Vec::new();
        let mut held = BTreeMap::new();
        for var in &spec.variables {
            if var.readonly {
                held.insert(var.name.clone(), Held::Untuned(READ_ONLY.to_owned()));
                continue;
            }
            match default_domain(var) {
                Ok(domain) => dimensions.push(Dimension {
                    name: var.name.clone(),
                    domain,
                }),
                Err(reason) => {
                    held.insert(var.name.clone(), Held::Untuned(reason));
                }
            }
        }
        Self {
            program: spec.name.clone(),
            variables: spec.variables.clone(),
            dimensions,
            held,
        }
    }

    /// The program the space was built for.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The declarations of the program's variables.
    pub fn variables(&self) -> &[VariableSpec] {
        &self.variables
    }

    /// The searched variables, in declaration order.
    pub fn dimensions(&self) -> &[Dimension] {
        &self.dimensions
    }

    /// The variables that are not searched, with their fixed value or the reason.
    pub fn held(&self) -> &BTreeMap<String, Held> {
        &self.held
    }

    /// The values every trial runs with besides the searched ones.
    pub(crate) fn fixed(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.held.iter().filter_map(|(name, h)| match h {
            Held::Fixed(v) => Some((name.as_str(), v)),
            Held::Untuned(_) => None,
        })
    }

    fn declaration(&self, name: &str) -> Result<&VariableSpec> {
        self.variables
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| {
                let hint = did_you_mean(name, self.variables.iter().map(|v| v.name.as_str()))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                Error::tuning(format!(
                    "program `{}` declares no variable `{name}`{hint}",
                    self.program
                ))
            })
    }

    /// The declaration of `name`, if the tuner may search, fix or narrow it (it is not
    /// read-only).
    fn searchable(&self, name: &str) -> Result<&VariableSpec> {
        let var = self.declaration(name)?;
        if var.readonly {
            return Err(Error::tuning(format!("`{name}` is {READ_ONLY}")));
        }
        Ok(var)
    }

    /// Validates `value` for `name`, as a write would be.
    fn valid(&self, name: &str, value: Value) -> Result<Value> {
        Ok(self.declaration(name)?.validate(value)?)
    }

    /// Sets the domain of `name` (searching it from now on), in declaration order.
    fn set_domain(&mut self, name: &str, domain: Domain) {
        self.held.remove(name);
        match self.dimensions.iter_mut().find(|d| d.name == name) {
            Some(d) => d.domain = domain,
            None => {
                self.dimensions.push(Dimension {
                    name: name.to_owned(),
                    domain,
                });
                let order: Vec<&str> = self.variables.iter().map(|v| v.name.as_str()).collect();
                self.dimensions
                    .sort_by_key(|d| order.iter().position(|n| *n == d.name));
            }
        }
    }

    fn domain(&self, name: &str) -> Option<&Domain> {
        self.dimensions
            .iter()
            .find(|d| d.name == name)
            .map(|d| &d.domain)
    }

    /// Fixes `name` at `value` (validated) in every trial.
    pub fn fix(mut self, name: &str, value: impl Into<Value>) -> Result<Self> {
        self.searchable(name)?;
        let value = self.valid(name, value.into())?;
        self.dimensions.retain(|d| d.name != name);
        self.held.insert(name.to_owned(), Held::Fixed(value));
        Ok(self)
    }

    /// Leaves `name` at its value in the context: not searched, not overridden.
    pub fn hold(mut self, name: &str) -> Result<Self> {
        self.declaration(name)?;
        self.dimensions.retain(|d| d.name != name);
        self.held.insert(
            name.to_owned(),
            Held::Untuned("held by the user".to_owned()),
        );
        Ok(self)
    }

    /// Searches the `float` or `integer` variable `name` over `low..=high` only; both ends
    /// must pass the variable's validation (so the range stays inside its declared `min` and
    /// `max`), and `low <= high`. Keeps a log scale already set.
    pub fn narrow(
        mut self,
        name: &str,
        low: impl Into<Value>,
        high: impl Into<Value>,
    ) -> Result<Self> {
        let (low, high) = (low.into(), high.into());
        let var = self.searchable(name)?;
        let refuse =
            |why: String| Error::tuning(format!("cannot narrow `{name}` to {low}..={high}: {why}"));
        let log = matches!(
            self.domain(name),
            Some(Domain::Float { log: true, .. } | Domain::Int { log: true, .. })
        );
        let lo = var
            .validate(low.clone())
            .map_err(|e| refuse(e.to_string()))?;
        let hi = var
            .validate(high.clone())
            .map_err(|e| refuse(e.to_string()))?;
        let domain = match (var.ty, lo, hi) {
            (VarType::Float, Value::Float(lo), Value::Float(hi)) if lo <= hi => Domain::Float {
                low: lo,
                high: hi,
                log,
            },
            (VarType::Integer, Value::Integer(lo), Value::Integer(hi)) if lo <= hi => Domain::Int {
                low: lo,
                high: hi,
                log,
            },
            (VarType::Float | VarType::Integer, _, _) => {
                return Err(refuse("the low end is above the high end".to_owned()));
            }
            (ty, _, _) => {
                return Err(refuse(format!(
                    "only float and integer variables have ranges; `{name}` is {} {ty} variable (use `candidates`)",
                    ty.article()
                )));
            }
        };
        if log {
            check_log(name, &domain)?;
        }
        self.set_domain(name, domain);
        Ok(self)
    }

    /// Samples the `float` or `integer` variable `name` uniformly in its logarithm; its range
    /// (declared or narrowed) must start above 0.
    pub fn log_scale(mut self, name: &str) -> Result<Self> {
        self.searchable(name)?;
        let domain = match self.domain(name) {
            Some(Domain::Float { low, high, .. }) => Domain::Float {
                low: *low,
                high: *high,
                log: true,
            },
            Some(Domain::Int { low, high, .. }) => Domain::Int {
                low: *low,
                high: *high,
                log: true,
            },
            _ => {
                return Err(Error::tuning(format!(
                    "`{name}` is not searched over a range, so it has no log scale (narrow it first, or it is not a float or integer variable)"
                )));
            }
        };
        check_log(name, &domain)?;
        self.set_domain(name, domain);
        Ok(self)
    }

    /// Searches `name` over exactly these values: each is validated, the list must not be
    /// empty or hold a value twice. The only way to search `string` and `embedding` variables;
    /// for a `choice` or `module` variable, a subset of its choices.
    pub fn candidates<V: Into<Value>>(
        mut self,
        name: &str,
        values: impl IntoIterator<Item = V>,
    ) -> Result<Self> {
        self.searchable(name)?;
        let mut checked: Vec<Value> = Vec::new();
        for value in values {
            let value = self.valid(name, value.into())?;
            if checked.contains(&value) {
                return Err(Error::tuning(format!(
                    "candidate {value} of `{name}` is listed twice"
                )));
            }
            checked.push(value);
        }
        if checked.is_empty() {
            return Err(Error::tuning(format!(
                "`{name}` needs at least one candidate"
            )));
        }
        self.set_domain(name, Domain::Categorical(checked));
        Ok(self)
    }

    /// Checks that `value` is what `name` may take: used on every proposal.
    pub(crate) fn check(&self, name: &str, value: &Value) -> Result<()> {
        self.valid(name, value.clone()).map(|_| ())
    }
}

/// Why a read-only variable is held.
const READ_ONLY: &str =
    "read-only (declared `readonly`): the tuner leaves it at its value in the context";

/// A log scale needs a range above 0.
fn check_log(name: &str, domain: &Domain) -> Result<()> {
    let positive = match domain {
        Domain::Float { low, .. } => *low > 0.0,
        Domain::Int { low, .. } => *low > 0,
        Domain::Categorical(_) => true,
    };
    if positive {
        Ok(())
    } else {
        Err(Error::tuning(format!(
            "a log scale needs a range above 0; `{name}` ranges over {domain}"
        )))
    }
}

/// The domain the declaration gives, or why it gives none.
fn default_domain(var: &VariableSpec) -> std::result::Result<Domain, String> {
    let c = &var.constraints;
    match var.ty {
        VarType::Float => match (c.min, c.max) {
            (Some(min), Some(max)) => Ok(Domain::Float {
                low: min.as_f64(),
                high: max.as_f64(),
                log: false,
            }),
            _ => Err(
                "a float variable without both `min` and `max`: narrow it to a range".to_owned(),
            ),
        },
        VarType::Integer => match (c.min, c.max) {
            (Some(dspex_core::Number::Int(min)), Some(dspex_core::Number::Int(max))) => {
                Ok(Domain::Int {
                    low: min,
                    high: max,
                    log: false,
                })
            }
            _ => Err(
                "an integer variable without both `min` and `max`: narrow it to a range".to_owned(),
            ),
        },
        VarType::Boolean => Ok(Domain::Categorical(vec![
            Value::Boolean(false),
            Value::Boolean(true),
        ])),
        VarType::Choice => Ok(Domain::Categorical(
            c.choices
                .iter()
                .flatten()
                .map(|s| Value::from(s.as_str()))
                .collect(),
        )),
        VarType::Module => {
            let known: Vec<String> = module_names().map(str::to_owned).collect();
            Ok(Domain::Categorical(
                c.choices
                    .as_ref()
                    .unwrap_or(&known)
                    .iter()
                    .map(|s| Value::from(s.as_str()))
                    .collect(),
            ))
        }
        VarType::String | VarType::Embedding => Err(format!(
            "{} {} variable is searched only over listed candidates",
            var.ty.article(),
            var.ty
        )),
    }
}

impl fmt::Display for SearchSpace {
    /// One line per variable: its domain, or why it is held.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for var in &self.variables {
            if let Some(domain) = self.domain(&var.name) {
                writeln!(f, "{:<20} {domain}", var.name)?;
            } else if let Some(held) = self.held.get(&var.name) {
                match held {
                    Held::Fixed(v) => writeln!(f, "{:<20} fixed at {v}", var.name)?,
                    Held::Untuned(why) => writeln!(f, "{:<20} not searched: {why}", var.name)?,
                }
            }
        }
        Ok(())
    }
}
