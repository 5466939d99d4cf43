//! Rust functions as tools of Python agents (a `ReAct` step's `tools`).
//!
//! [`#[dspex::tool]`](crate::tool) on a `fn` or `async fn` makes it a tool: its doc comment is
//! the description the agent reads, its arguments (of the field types of signatures: `String`,
//! `i64`, `f64`, `bool`, `Vec<String>`, `Vec<i64>`, `Vec<f64>`, [`JsonObject`](crate::JsonObject),
//! or an `Option` of one for an argument the agent may leave out) are the argument schema, and it
//! returns `Result<T, E>` with `T` text or any `serde::Serialize` and `E` any error.
//! `#[dspex::tool(variables(top_k))]` makes parameter `top_k` the current value of variable
//! `top_k` for the run (its override in a `run_with`): the agent never sees it.
//! `#[dspex::tool(timeout_ms = 500)]` bounds each call (default
//! [`DEFAULT_TOOL_TIMEOUT_MS`](crate::spec::dspy::DEFAULT_TOOL_TIMEOUT_MS)).
//! `#[dspex::tool(inline)]` marks a short synchronous tool (no I/O, no waiting: it returns in
//! microseconds): it runs in the call's own task instead of being handed to the blocking
//! threads, which saves the hand-over; its timeout is then checked when it returns (a result
//! that came after it is answered with the timeout error), since nothing can stop it midway.
//!
//! The function stays an ordinary function. The attribute adds a type of the same name (types
//! and functions live apart) implementing [`Tool`], which is how `with { tools: [search_docs] }`
//! names it: a path that is not a tool is a compile error at the path.
//!
//! When a python step's agent calls a Rust tool, the worker calls back into this process (the
//! bridge's `CallbackService`); the tool runs here, on the bridge server's runtime (a
//! synchronous tool on its blocking threads, unless `inline`). An error, a panic or a timeout becomes the
//! agent's observation `error: ...` and the agent goes on. Every call is in the run's trace
//! ([`StepTrace::tool_calls`](crate::StepTrace::tool_calls)): the arguments, the result or
//! error, the duration and the variables read with their versions.
//!
//! ```
//! use dspex::prelude::*;
//!
//! /// Looks up the capital of a country.
//! #[dspex::tool]
//! fn capital(country: String) -> std::result::Result<String, String> {
//!     match country.as_str() {
//!         "France" => Ok("Paris".to_owned()),
//!         _ => Err(format!("no capital known for {country}")),
//!     }
//! }
//!
//! use dspex::tools::Tool;
//! let def = capital::def();
//! assert_eq!(def.name, "capital");
//! assert_eq!(def.description, "Looks up the capital of a country.");
//! assert_eq!(def.arguments[0].name, "country");
//! assert_eq!(def.arguments[0].ty, "str");
//! assert_eq!(capital("France".into()).unwrap(), "Paris"); // still a function
//! ```

use std::fmt;
use std::time::Duration;

use dspex_core::FieldType;
use serde_json::Value as JsonValue;

pub use crate::context::{Callback, CallbackFuture, Invocation};
use crate::error::{Error, Result};
pub use crate::wire::limits::{DEFAULT_CALLBACK_TIMEOUT, MAX_CALLBACK_TIMEOUT};
use crate::wire::proto as pb;

/// A Rust function made a tool by [`#[dspex::tool]`](crate::tool): the type of the same name
/// implements this trait.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a dspex tool",
    label = "not a `#[dspex::tool]` function",
    note = "a Rust tool is a `fn` or `async fn` marked `#[dspex::tool]`; a Python tool is a string, like \"my_pkg.tools.search\""
)]
pub trait Tool {
    /// The tool's declaration.
    fn def() -> &'static ToolDef;
}

/// One argument of a tool, as the agent fills it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolArgument {
    /// The parameter's name.
    pub name: &'static str,
    /// Its type, as a signature writes it (`str`, `int`, `list[str]`).
    pub ty: &'static str,
    /// Whether the agent must give it (`false` for an `Option`).
    pub required: bool,
}

/// What [`#[dspex::tool]`](crate::tool) generates for a function.
pub struct ToolDef {
    /// The name the agent calls it by: the function's.
    pub name: &'static str,
    /// What the agent reads about it: the function's doc comment.
    pub description: &'static str,
    /// The arguments the agent gives, in order.
    pub arguments: &'static [ToolArgument],
    /// The variables it reads (parameters the agent never sees).
    pub variables: &'static [&'static str],
    /// How long one call may run, in milliseconds.
    pub timeout_ms: u64,
    /// A short synchronous tool, run in the call's own task (`#[dspex::tool(inline)]`).
    pub inline: bool,
    /// The function's full path (`my_crate::tools::search_docs`), which tells two tools of
    /// the same name apart.
    pub path: &'static str,
    /// Runs one call.
    pub call: fn(Invocation) -> CallbackFuture,
}

impl fmt::Debug for ToolDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ToolDef")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("arguments", &self.arguments)
            .field("variables", &self.variables)
            .field("timeout_ms", &self.timeout_ms)
            .field("inline", &self.inline)
            .finish_non_exhaustive()
    }
}

impl ToolDef {
    /// How long one call may run.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The tool as a callback that a context's Python code can call by the tool's name
    /// ([`Context::register_callback`](crate::Context::register_callback)); python steps
    /// register their tools this way.
    pub fn callback(&'static self) -> Callback {
        Callback::from_fn(self.name, self.call)
            .timeout(self.timeout())
            .origin(self.path)
            .inline(self.inline)
    }

    /// Calls the tool directly, with `arguments` (a JSON object) and the variables of `ctx`
    /// (or `overrides`) as a run would give them: for tests and tools used outside an agent.
    pub async fn invoke(
        &'static self,
        arguments: JsonValue,
        ctx: Option<&crate::Context>,
        overrides: &crate::Overrides,
    ) -> std::result::Result<JsonValue, String> {
        let JsonValue::Object(arguments) = arguments else {
            return Err("the arguments must be a JSON object".to_owned());
        };
        let invocation = Invocation::new(self.name, arguments, ctx.cloned(), overrides.clone());
        (self.call)(invocation).await
    }

    /// The tool for the wire: its name, description and argument schema.
    pub(crate) fn spec(&self) -> Result<pb::RustTool> {
        let arguments = self
            .arguments
            .iter()
            .map(|a| {
                let ty = FieldType::parse(a.ty).map_err(|e| {
                    Error::Internal(format!("tool `{}`, argument `{}`: {e}", self.name, a.name))
                })?;
                Ok(pb::ToolArgument {
                    name: a.name.to_owned(),
                    r#type: a.ty.to_owned(),
                    json_schema: ty.json_schema().to_string(),
                    required: a.required,
                })
            })
            .collect::<Result<_>>()?;
        Ok(pb::RustTool {
            name: self.name.to_owned(),
            description: self.description.to_owned(),
            arguments,
        })
    }
}

/// What generated code refers to. Not a public API: it changes whenever the macro does.
#[doc(hidden)]
pub mod __private {
    use std::fmt;

    use dspex_core::{FieldType, Value};
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Map, Value as JsonValue};

    use crate::data::VarValue;

    pub use crate::context::{CallbackFuture, Invocation};
    pub use std::boxed::Box;
    pub use std::time::Duration;

    /// A Rust type a tool argument may have, and the field type the agent sees.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a tool argument",
        label = "not a tool argument type",
        note = "a tool argument is a `String`, `i64`, `f64`, `bool`, `Vec<String>`, `Vec<i64>`, `Vec<f64>`, `dspex::JsonObject`, or an `Option` of one; a variable the tool reads goes in `#[dspex::tool(variables(..))]`"
    )]
    pub trait ToolArgType: DeserializeOwned {
        /// The field type, as a signature writes it.
        const TYPE: &'static str;
        /// Whether the agent must give it.
        const REQUIRED: bool = true;
    }

    macro_rules! arg_types {
        ($($ty:ty => $name:literal),* $(,)?) => {
            $(impl ToolArgType for $ty {
                const TYPE: &'static str = $name;
            })*
        };
    }
    arg_types! {
        String => "str",
        i64 => "int",
        f64 => "float",
        bool => "bool",
        Vec<String> => "list[str]",
        Vec<i64> => "list[int]",
        Vec<f64> => "list[float]",
        Map<String, JsonValue> => "dict",
    }

    impl<T: ToolArgType> ToolArgType for Option<T> {
        const TYPE: &'static str = T::TYPE;
        const REQUIRED: bool = false;
    }

    /// The arguments of a call, checked against the names the tool takes.
    pub struct Arguments {
        tool: &'static str,
        values: Map<String, JsonValue>,
    }

    impl Arguments {
        /// Refuses an argument the tool does not take.
        pub fn new(
            tool: &'static str,
            values: Map<String, JsonValue>,
            takes: &[&str],
        ) -> Result<Self, String> {
            if let Some(unknown) = values.keys().find(|k| !takes.contains(&k.as_str())) {
                let takes: Vec<String> = takes.iter().map(|t| format!("`{t}`")).collect();
                return Err(format!(
                    "`{tool}` takes no argument `{}`; it takes {}",
                    dspex_core::excerpt(unknown),
                    if takes.is_empty() {
                        "none".to_owned()
                    } else {
                        takes.join(", ")
                    }
                ));
            }
            Ok(Self { tool, values })
        }

        /// Argument `name` as `T`, checked against its field type.
        pub fn take<T: ToolArgType>(&mut self, name: &str) -> Result<T, String> {
            let value = self.values.remove(name).unwrap_or(JsonValue::Null);
            let ty = FieldType::parse(T::TYPE).map_err(|e| e.to_string())?;
            let fits = if value.is_null() {
                !T::REQUIRED
            } else {
                ty.accepts(&value)
            };
            if !fits {
                return Err(if value.is_null() {
                    format!("`{}` needs argument `{name}` ({})", self.tool, T::TYPE)
                } else {
                    format!(
                        "argument `{name}` of `{}` must be {}, found {}",
                        self.tool,
                        T::TYPE,
                        dspex_core::value_excerpt(&value)
                    )
                });
            }
            serde_json::from_value(value).map_err(|e| format!("argument `{name}`: {e}"))
        }
    }

    /// The value of a variable the tool reads, as its parameter's type.
    pub fn variable<T: VarValue>(values: &[Value], index: usize, name: &str) -> Result<T, String> {
        let value = values
            .get(index)
            .ok_or_else(|| format!("variable `{name}` was not read"))?;
        T::from_value(value).ok_or_else(|| {
            format!(
                "variable `{name}` holds {}, not the {} the tool's parameter takes",
                value.kind(),
                T::TYPE.name()
            )
        })
    }

    /// The values of the variables `names` for the call.
    pub fn variables(call: &Invocation, names: &[&str]) -> Result<Vec<Value>, String> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        call.variables(names).map_err(|e| e.to_string())
    }

    /// What a tool returns: `Result<T, E>`, `T` text or `Serialize`, `E` an error.
    #[diagnostic::on_unimplemented(
        message = "a tool returns `Result<T, E>` with `T: serde::Serialize` and `E` an error, not `{Self}`",
        label = "not a tool's return type"
    )]
    pub trait ToolOutput {
        /// The result as JSON, or the error's message.
        fn into_json(self) -> Result<JsonValue, String>;
    }

    impl<T: Serialize, E: fmt::Display> ToolOutput for Result<T, E> {
        fn into_json(self) -> Result<JsonValue, String> {
            let value = self.map_err(|e| e.to_string())?;
            serde_json::to_value(value).map_err(|e| format!("the result does not serialize: {e}"))
        }
    }

    /// Runs a short synchronous tool (`inline`) where it is called; a panic is an error message.
    pub fn inline<R>(f: impl FnOnce() -> R) -> Result<R, String> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .map_err(|panic| crate::context::panic_message(panic.as_ref()))
    }

    /// Runs a synchronous tool on the runtime's blocking threads; a panic is an error message.
    pub async fn blocking<R: Send + 'static>(
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, String> {
        tokio::task::spawn_blocking(f).await.map_err(|e| {
            if e.is_panic() {
                crate::context::panic_message(e.into_panic().as_ref())
            } else {
                format!("the tool was cancelled: {e}")
            }
        })
    }
}
