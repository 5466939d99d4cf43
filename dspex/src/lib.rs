//! dspex: declare DSPy-style LLM programs in Rust.
//!
//! Variables are typed and constrained (a type among seven, and constraints such as `min`,
//! `max`, `pattern` or `choices` checked on every write) and live in a [`Context`]. While a
//! program is pure Rust they stay in-process ([`state::LocalState`]): a read is a read lock and a
//! lookup. As soon as a python step is involved they move into a session of the bridge's store
//! ([`bridge`]), which Python processes reach over gRPC, and the context's Python worker
//! ([`worker`]) runs real DSPy modules bound to them. Variables that several processes or hosts
//! must share live in a Redis session ([`state::SharedState`], `Context::builder().shared(url)`).
//! The rules of every variable come from `dspex-core`, the crate the macros also use at compile
//! time.
//!
//! ```
//! use dspex::prelude::*;
//!
//! let ctx = Context::new();
//! let temperature = ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0))?;
//! temperature.set(1.2)?;
//! let err = temperature.set(2.5).unwrap_err();
//! assert_eq!(err.to_string(), "temperature: 2.5 is above max 2.0");
//! assert_eq!(temperature.get()?, 1.2);
//! # Ok::<(), dspex::Error>(())
//! ```
//!
//! # Where things are
//!
//! - [`Context`] and [`Var`]: the variables API (`defvariable`, `get`, `get_or`, `set`,
//!   `update`, `get_many`, `update_many`, `list`, `exists`, `delete`, `watch`, `history`,
//!   `rollback`), by name or through a typed handle; [`Context::ensure_bridged`] upgrades a
//!   context, once, and [`Context::ensure_shared`] moves it into a shared session.
//! - Programs: [`Program`] (what the macros implement), [`BaseProgram`] (every program,
//!   generated or built at run time with [`ProgramBuilder`]), native steps ([`Module`], and
//!   dspex's own LM steps [`Predict`] and [`ChainOfThought`]), python steps ([`PythonModule`]),
//!   per-run [`Overrides`] and the [`RunTrace`] of a run. [`spec`] holds a program's
//!   declaration. Every program streams too: `stream(input)` yields [`RunEvent`]s, the text
//!   of LM output fields as it is written (see [`RunEvent`] and the `stream` example).
//! - [`AnyProgram`]: what optimization adds to every program (compile a python step, save and
//!   load the program's state).
//! - [`lm`]: [`LmConfig`] (one LM for python and native steps: scripted, an
//!   OpenAI-compatible endpoint, or a `dspy.LM` model string for python steps only), the
//!   [`LmClient`](lm::LmClient), DSPy's `ChatAdapter` prompts.
//! - [`state`]: the [`StateProvider`](state::StateProvider) trait every backend implements (a
//!   backend of your own too, see [`ContextBuilder::state`]), [`LocalState`](state::LocalState)
//!   and [`SharedState`](state::SharedState) (Redis).
//! - [`bridge`]: the bridge server Python reaches a context's variables through; [`worker`]:
//!   how a context's Python workers are started; [`tools`]: Rust functions as tools of Python
//!   agents, and other Rust callables Python calls back.
//! - [`eval`]: examples and data sets, metrics, evaluation; [`tune`]: the tuner of declared
//!   variables; [`optimize`]: DSPy's optimizers on python steps and program state.
//! - `serve` (feature `serve`): programs served over HTTP, with their variables readable and
//!   writable live (history, rollback), server-sent event streams, an OpenAPI document and
//!   Prometheus metrics; with feature `dashboard`, a web dashboard on the same server.
//! - `telemetry` (feature `otel`): runs as OpenTelemetry traces, exported over OTLP.
//!
//! # Layers
//!
//! The modules of the crate form layers: each imports only from the layers below it, and no
//! two modules or files import each other (`scripts/module-graph` checks it in the test
//! suite). From the top:
//!
//! ```text
//!  telemetry                      OpenTelemetry export of the spans `data` names (feature `otel`)
//!   |
//!  serve                          programs over HTTP (feature `serve`)
//!   |
//!  tune        optimize           the workflows: tuning, DSPy's optimizers, program state
//!   |    \        |
//!   |     eval ---+               examples, metrics, evaluation
//!   |      |
//!  program ------------------     programs, native and python steps, the run of a chain
//!   |      //!   |     tools                   Rust tools for Python agents
//!   |      |
//!  context -----------------      the variables API, backend switching, the services a
//!   |       \        \            context owns (LM client, worker, callbacks)
//!   |      worker     \           Python worker processes, supervised
//!   |        |         //!   |      bridge       \         the session server and the callback service (gRPC)
//!   |        |           //!  state ---+            lm       state backends (local, shared in Redis) | LM calls from Rust
//!   |                     |
//!  data   wire   util   error     the plain data of a run, the wire contract, helpers, errors
//! ```
//!
//! The bridge's callback service knows the callables above it only through a small dispatch
//! trait that the context implements, and the run's values (its overrides first, the others
//! in one snapshot) are read by one function for steps and the tools they call alike.
//!
//! A variable bound to a python step goes from the run to the DSPy call through these files,
//! in order: `program/run.rs` (the step's turn in the chain), `context/snapshot.rs` (its value
//! for the run), `program/python.rs` (the call's request), `wire/convert.rs` (the typed
//! value), `worker/supervisor.rs` (a place on the least busy worker), `worker/process.rs` (the
//! gRPC call), then in Python `dspex_bridge/worker/module_service.py` (the call),
//! `dspex_bridge/values.py` (the value) and `dspex_bridge/binding.py` (the binding applied
//! to that call's LM settings or arguments).
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `python` | yes | python steps, Rust tools for Python agents, the bridge server and the worker (tonic, prost, a vendored `protoc` at build time) |
//! | `lm` | yes | the native LM lane's HTTP client for OpenAI-compatible endpoints (reqwest with rustls); the scripted LM works without it |
//! | `redis` | yes | variables shared by many processes in Redis ([`state::SharedState`]) |
//! | `otel` | no | OpenTelemetry traces of runs, steps, LM calls and tool calls, exported over OTLP (`telemetry`) |
//! | `serve` | no | programs served over HTTP, with live variables, history and rollback ([`serve`](crate::serve), axum) |
//! | `dashboard` | no | the web dashboard at `/dashboard` on the same server: programs, variables (edit, rollback), recent runs, tuning studies with plots, live updates ([`serve::dashboard`](crate::serve::dashboard); implies `serve`) |
//!
//! With `default-features = false`, a program of native steps builds and runs with none of
//! tonic, prost, redis, reqwest, hyper or axum in its dependency tree. A python step, a
//! `#[dspex::tool]` or `ContextBuilder::shared` used without its feature is a compile error
//! that names the feature; a python step of the runtime builder is refused by
//! [`ProgramBuilder::build`], naming it too.
//!
//! # Errors
//!
//! Every fallible call returns [`Error`], whose variants name the variable, step or process and
//! the rule that was broken. When something underneath failed (an `io::Error`, a
//! `tonic::Status`, a native step's own error), it is the error's
//! [`source`](std::error::Error::source), not part of its message: print the chain with your
//! error reporter (`anyhow`'s `{:#}`, `eyre`) or [`Error::report`].
//!
//! # Choices worth knowing
//!
//! - `dspex::Module` is the trait of native steps, so the value type of a `module` variable is
//!   [`ModuleName`].
//! - Fields that flow along a chain ([`Fields`]) are typed: one JSON value ([`JsonValue`]) per
//!   field, of the type its signature declares ([`FieldType`]), checked when the program starts
//!   and after every step (integers are accepted, and widened, where floats are declared;
//!   nothing else crosses types). A python step's inputs and outputs travel typed on the wire:
//!   the worker gives DSPy the typed signature and converts each output to its declared type,
//!   and an output that does not fit is an [`Error::Field`] naming the step, the field, the
//!   type and the value. Its outputs beyond its signature (DSPy's `reasoning`) stay text, in
//!   the run's trace only.
//! - A `Literal` field of a program signature becomes a generated enum in `XInput`/`XOutput`
//!   (rather than a checked string), so that a `match` on it is exhaustive.
//! - Integers are accepted by `float` variables (widened); nothing else crosses types.
//! - Variable names are ASCII identifiers that may also contain `.` and `-`
//!   ([`dspex_core::check_name`]).
//! - A program attached to a context that already holds a variable it declares shares it when
//!   the type and constraints are the same, and fails with
//!   [`Error::IncompatibleVariable`] otherwise.
//! - On a shared session ([`state::SharedState`], Redis), registering a variable the session
//!   already holds with the same declaration shares it (every replica declares what it uses),
//!   and another declaration is [`Error::DeclarationMismatch`]; on the other backends a taken
//!   name is [`Error::AlreadyExists`].
//! - `run_traced` returns, besides the outputs, what each step read and wrote, the values of
//!   its bound variables (for a python step, exactly the values its call carried to the
//!   worker, overrides included) and the LM settings and token usage of every LM request of a
//!   python call, as the worker's per-call LM recorded them.
//! - An override (`run_with`) must name a variable the program declares, and is validated
//!   against the context's record of it before the run starts. It reaches native steps and
//!   python steps alike: a python step's call carries the run's values (overrides included) to
//!   the worker, which applies them to that call only.
//! - Evaluation prints nothing unless asked ([`eval::Evaluate::progress`]); its one-line
//!   summary always goes to `tracing` (target `dspex::eval`).
//! - Tuning trials run in rounds of the trial concurrency, proposed in order before the round
//!   runs, so that a seed fixes every trial whatever the timing.
//! - Every accepted write is kept in the variable's bounded history
//!   ([`HistoryEntry`], newest first): the last [`state::DEFAULT_HISTORY_LIMIT`] writes unless
//!   [`ContextBuilder::history_limit`] says otherwise, and at most
//!   [`state::MAX_HISTORY_BYTES`] per variable (100 versions of a 64 KiB string would not
//!   fit: the oldest go first). A rollback is a write like any other, with metadata
//!   `rolled_back_from`; a version no longer kept is [`Error::VersionNotFound`].
//! - A read-only variable (`readonly: true`, [`VariableSpec::readonly`]) is read-only for
//!   Python only: Rust code, a native step or the tuner's `apply` may still write it, Python's
//!   writes ([`Source::Python`]: set, batch, update, rollback, delete) are [`Error::ReadOnly`].
//!   The tuner never searches it.

// Lets code generated by the macros (`::dspex::...`) compile inside this crate's own tests.
#[allow(unused_extern_crates)]
extern crate self as dspex;

// The layers, from the bottom: each module imports only from the layers below it.
// 0. the error type, small helpers, the wire contract, the plain data of a run
mod data;
mod error;
mod util;
#[doc(hidden)]
pub mod wire;
// 1. the state backends and the LM client
pub mod lm;
pub mod state;
// 2. the session server and the callback service (Python only)
#[cfg(feature = "python")]
pub mod bridge;
// 3. the worker supervisor (Python only)
#[cfg(feature = "python")]
pub mod worker;
// 4. the context: the variables API, backend switching, the services it owns
mod context;
// 5. Rust tools for Python agents
#[cfg(feature = "python")]
pub mod tools;
// 6. programs, their steps and the run path
mod program;
// 7. evaluation
pub mod eval;
// 8. tuning and optimization
pub mod optimize;
pub mod tune;
// 9. serving over HTTP
#[cfg(feature = "serve")]
pub mod serve;
// 10. telemetry
#[cfg(feature = "otel")]
pub mod telemetry;

/// A program's declaration, as `dspex_program!`, `#[derive(Program)]` and [`ProgramBuilder`]
/// produce it and `dspex-core` checks it ([`Program::spec`]): its variables, its steps with
/// their modules, signatures, bindings and configuration, and the table of the DSPy modules
/// python steps know ([`dspy`](spec::dspy)).
pub mod spec {
    pub use dspex_core::dspy;
    pub use dspex_core::native;
    pub use dspex_core::program::{
        Binding, ConfigEntry, ConfigValue, ModuleRef, ProgramSpec, StepKind, StepSpec, ToolRef,
    };
}

pub use context::{BackendInfo, Context, ContextBuilder, Overrides, Var};
pub use data::{
    Choice, Embedding, Fields, LmCall, LmExchange, LmMessage, MAX_CAPTURED_BYTES_PER_RUN,
    MAX_CAPTURED_CALLS_PER_RUN, ModuleName, Params, RunTrace, StepCall, StepRunner, StepTrace,
    ToolCall, VarValue, VariableRead,
};
pub use dspex_core::{
    Constraints, FieldError, FieldType, LiteralError, Number, Pattern, Rule, Signature,
    SignatureField, SpecError, ValidationError, Value, VarType, VariableSpec,
};
pub use lm::config::LmConfig;
pub use optimize::ext::AnyProgram;
/// A field value: the JSON value of a signature field (see [`Fields`]).
pub use serde_json::Value as JsonValue;
/// Builds a [`JsonValue`] from JSON-like syntax (serde_json's `json!`), for [`Fields`].
pub use serde_json::json;

/// The Rust type of a `dict` field: a JSON object.
pub type JsonObject = serde_json::Map<String, JsonValue>;
/// Declares a program: typed, constrained variables and a chain of native (Rust) and python
/// (DSPy) steps that share them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::prelude::*;
///
/// #[derive(Default)]
/// struct Shout;
///
/// impl Module for Shout {
///     async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
///         let times = params.get::<i64>("times")?;
///         let loud = inputs.get::<&str>("text")?.to_uppercase();
///         Ok(Fields::from([("loud", vec![loud; times as usize].join(" "))]))
///     }
/// }
///
/// dspex_program! {
///     /// Shouts its input.
///     pub program Shouter: "text -> loud" {
///         variables {
///             repeat: integer = 2 { min: 1, max: 3, description: "how many times" },
///         }
///         chain {
///             shout: native Shout("text -> loud") { repeat as times },
///         }
///     }
/// }
///
/// assert!(!Shouter::REQUIRES_BRIDGE); // every step is native: the context stays local
/// let shouter = Shouter::start().await?;
/// let out = shouter.run(ShouterInput { text: "hi".into() }).await?;
/// assert_eq!(out, ShouterOutput { loud: "HI HI".into() });
///
/// shouter.repeat().set(3)?; // a typed accessor: `&Var<i64>`
/// let err = shouter.repeat().set(4).unwrap_err(); // refused; nothing changes
/// assert_eq!(err.to_string(), "repeat: 4 is above max 3");
/// assert_eq!(shouter.repeat().get()?, 3);
/// # Ok(()) }
/// ```
///
/// # Syntax
///
/// ```text
/// [doc comments and attributes] [visibility] program Name [: "inputs -> outputs"] {
///     variables {
///         name: type = initial [{ key: value, ... }],
///     }
///     chain {
///         name: [called] native RustType("inputs -> outputs") [{ var, var as param, ... }],
///         name: [called] python DspyModule("inputs -> outputs") [{ var, var as param, ... }]
///             [with { key: literal, ... }],
///     }
/// }
/// ```
///
/// - **Variables**. `type` and the keys each type takes:
///
///   | type | initial value | keys |
///   |---|---|---|
///   | `float` | `0.7`, `-1`, `2e3` | `min`, `max` |
///   | `integer` | `256` | `min`, `max` (integers) |
///   | `string` | `"concise"` | `min_length`, `max_length`, `pattern: "[a-z]+"` (matches the whole value) |
///   | `boolean` | `true`, `false` | |
///   | `choice` | `"gpt-4o-mini"` | `choices: ["gpt-4o-mini", "claude-3-haiku"]` (required) |
///   | `module` | `"ChainOfThought"` | `choices: [..]` (default: the DSPy modules the worker knows) |
///   | `embedding` | `[0.1, 0.2]` | `dimensions: 2` |
///
///   Every type also takes `description: "..."` and `readonly: true` (only Rust code may write
///   the variable; Python's writes are refused, and the tuner leaves it alone). Initial values
///   and key values are literals; doc comments on a variable document its accessor.
/// - **Steps** run in the order written. A step's signature names the fields it reads and
///   writes; its inputs must come from the program input or an earlier step, and every program
///   output from some step. A native step's type implements [`Module`]; its module is given
///   as a value when the program starts (`Qa::builder().retrieve(Retriever::new(index))`, see
///   below), or, when none is given, built with [`Default`]. A python step's `DspyModule` is a DSPy module name
///   (`Predict`, `ChainOfThought`, `ReAct`, `ProgramOfThought`), a dotted path string
///   (`"my_pkg.modules.Answerer"`), or `@var`, the class held by a `module` variable.
/// - **Called steps** (`name: called native ..`, `name: called python ..`) run only when a
///   native step calls them, never in chain order: loops and branches, as a DSPy module's
///   `forward` calls its sub-modules. A native step's
///   [`Module::forward_in_step`] gets a [`StepContext`]; `cx.call("generate_query",
///   fields).await` runs that step (any step of the program) on `fields` and returns its
///   outputs, and each call is its own entry of the run's trace, naming its caller
///   ([`StepTrace::called_by`]). A called step's inputs need not flow along the chain and its
///   outputs do not flow on. Calls per run are bounded by [`MAX_STEP_CALLS`], their nesting by
///   [`MAX_CALL_DEPTH`]. See `cargo run -p dspex-examples --bin multihop`.
/// - **Signatures** are DSPy string signatures, `"inputs -> outputs"`, whose fields may carry
///   DSPy types (a field without one is `str`):
///
///   | field type | Rust type in `XInput`/`XOutput` | value in [`Fields`] |
///   |---|---|---|
///   | `str` (default) | `String` | JSON string |
///   | `int` | `i64` | JSON integer |
///   | `float` | `f64` | JSON number (an integer is widened) |
///   | `bool` | `bool` | JSON boolean |
///   | `list[str]`, `list[int]`, `list[float]` | `Vec<String>`, `Vec<i64>`, `Vec<f64>` | JSON array |
///   | `dict` | [`JsonObject`] | JSON object |
///   | `Literal["a", "b"]` (single or double quotes) | a generated enum, `QaLabel` for field `label` of `Qa` | one of the strings |
///
///   A step input must have the type its producer (the program input or an earlier step)
///   declares, and a program output the type of the step that produces it.
/// - **Bindings** set module parameters from variables, read when the step runs: `temperature`
///   binds the variable to the parameter of the same name, `model as llm_model` to another.
///   A native step takes any parameter. A python step takes the parameters of its DSPy
///   module: every module takes `temperature`, `top_p` (float variables), `max_tokens`, `n`
///   (integer) and `model` (choice or string), the settings and the model of the LM of each
///   call; `ReAct` also takes `max_iters` (integer), passed to each call. A module named by
///   dotted path takes any parameter (the LM ones keep their types). An `@var` step's bindings
///   must suit every module the variable may name: its `choices`, or every known module.
/// - **Configuration**: `with { key: literal, ... }`, after the bindings or in their place,
///   passes arguments to the constructor of a python step's DSPy module when the module is
///   created. Values are numbers, strings, `true`/`false`, and lists of string literals (in
///   `tools`, also paths of Rust tools). The keys of the known modules ([`spec::dspy::MODULES`], the table both sides follow):
///
///   | module | keys |
///   |---|---|
///   | `Predict`, `ChainOfThought` | `temperature` (a float, at least 0), `top_p` (a float from 0 to 1), `max_tokens`, `n` (integers, at least 1): the LM settings of every call, unless a bound variable overrides them for a call |
///   | `ReAct` | `max_iters` (an integer, at least 1; a bound `max_iters` overrides it per call), `tools: [search_docs, "my_pkg.tools.search", ...]` (Rust functions made tools by [`macro@tool`], by path, called back in this process; Python callables by dotted path, imported by the worker) |
///   | `ProgramOfThought` | `max_iters` (an integer, at least 1), `interpreter: "deno"` (DSPy's sandbox, the default) or `"local"` (runs the generated code in the worker, without a sandbox) |
///
///   A module named by dotted path takes any key, passed to its constructor as it is (`tools`
///   is imported for it too). An `@var` step's configuration must suit every module the
///   variable may name; each class gets the values in the form its keys take (`temperature:
///   0` is the float `0.0`). A Rust path in `tools` must name a `#[dspex::tool]` function
///   (see [`tools`]): any other path is an error at the path.
///
///   A native [`Predict`] or [`ChainOfThought`] step takes `adapter: "chat"` (DSPy's
///   `ChatAdapter`, the default) or `"json"` (DSPy's `JSONAdapter`), and `json_fallback:
///   false` to turn off DSPy's fallback from the `ChatAdapter` to the `JSONAdapter` when a
///   reply does not parse (on by default; not beside `adapter: "json"`), the table
///   [`spec::native::CONFIG`]: `answer: native Predict("question -> answer") with { adapter:
///   "json" }`. A native step of another type takes no `with`, and a python step of a known
///   module takes neither key.
/// - Trailing commas are allowed everywhere.
///
/// # What it generates
///
/// For `pub program Qa: "question -> answer"`:
///
/// - `pub struct Qa`, with the program's doc comments and attributes; its fields are private.
/// - `Qa::start().await` creates a context on the backend the program needs (local when every
///   step is native, bridged when a step is python), registers the variables and returns the
///   program; `Qa::attach(&ctx).await` registers into an existing context, sharing identical
///   declarations already there. Both build native steps with `Default`.
/// - `Qa::builder()`, a `QaBuilder` with a setter per native step taking its module as a value
///   (a retriever holding its index, a database pool), then `.start().await` or
///   `.attach(&ctx).await`; steps given no module are built with `Default`. A step given none
///   whose type has no `Default` is a compile error where `start`/`attach` is called, naming
///   the step (`step_retrieve_needs_a_module_or_Default`); through the [`Program`] trait
///   (`<Qa as Program>::start()`, generic code) it is an [`Error::InvalidProgram`] naming it.
/// - A typed accessor per variable, `qa.temperature()` returning `&Var<f64>`: `get`, `set`,
///   `update`, `record`, `watch`, `history`, `rollback`. The value types are `f64`, `i64`,
///   `String`, `bool`, [`Choice`], [`ModuleName`] and [`Embedding`].
/// - `qa.context()` and `Qa::spec()`, the declaration as checked at compile time, each step's
///   `with` configuration included.
/// - With a signature: `QaInput { question }` and `QaOutput { answer }`, public fields named
///   after the signature (a Rust keyword becomes a raw field, `r#type`) and typed by the table
///   above, and `qa.run(QaInput).await -> Result<QaOutput>`. Both derive `Debug`, `Clone`,
///   `PartialEq` and serde's `Serialize`/`Deserialize` (through dspex: no serde dependency
///   needed), plus `Eq` when no field is a float and `Default` when no field is a `Literal`.
///   Always: `qa.run_fields(Fields)`, whose inputs and outputs are, without a signature, the
///   step inputs that no earlier step produces (typed as the first step that reads them
///   declares) and the last step's outputs.
/// - For each `Literal` field of the signature, an enum named after the program and the field
///   (`QaLabel`), with a variant per value named by its ASCII letters and digits in camel case
///   (`"very negative"` is `VeryNegative`; `V` comes first when it starts with a digit). It
///   derives `Debug`, `Clone`, `Copy`, `PartialEq`, `Eq`, `Hash`, `Serialize`, `Deserialize`
///   (as the values), implements `Display` and `FromStr` (as the values; the error is a
///   [`LiteralError`]), and has `QaLabel::ALL` and `as_str()`.
/// - `impl Program for Qa`, with `const REQUIRES_BRIDGE: bool`, true iff a step is python.
///
/// A python step makes the program need the bridge: `start` creates a bridged context and its
/// Python worker (the interpreter of `DSPEX_PYTHON`, else `python3`, with the `dspex_bridge`
/// package installed), and attaching the step creates its DSPy module in that worker, with its
/// signature and `with` configuration. A worker that cannot start is an [`Error::Worker`]
/// naming the interpreter and what went wrong; a module the worker cannot create (a tool that
/// cannot be imported, a class that does not exist) or that raises is an [`Error::Python`]
/// naming the step.
///
/// Typed fields, from a native step to the generated output:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::prelude::*;
///
/// #[derive(Default)]
/// struct Rate;
///
/// impl Module for Rate {
///     async fn forward(&self, inputs: &Fields, _params: &Params) -> Result<Fields> {
///         let words: Vec<String> = inputs.get("words")?;
///         let mut out = Fields::new();
///         out.insert("score", words.len() as f64 / 10.0);
///         out.insert("length", if words.len() > 3 { "long" } else { "short" });
///         Ok(out)
///     }
/// }
///
/// dspex_program! {
///     pub program Rater: "words: list[str] -> score: float, length: Literal['short', 'long']" {
///         chain {
///             rate: native Rate("words: list[str] -> score: float, length: Literal['short', 'long']"),
///         }
///     }
/// }
///
/// let rater = Rater::start().await?;
/// let out = rater.run(RaterInput { words: vec!["a".into(), "b".into()] }).await?;
/// assert_eq!((out.score, out.length), (0.2, RaterLength::Short));
/// assert_eq!(out.length.to_string(), "short");
/// assert_eq!("long".parse::<RaterLength>()?, RaterLength::Long);
/// # Ok(()) }
/// ```
///
/// # Compile-time errors
///
/// The declaration is checked by `dspex-core`, the code the runtime builder
/// ([`ProgramBuilder`]) runs, so compile time and run time report the same messages. Every
/// error of an invocation is reported at once, each on the offending token: an initial value of
/// the wrong type or outside `min`/`max`; `min` above `max`; a choice not among the choices;
/// empty or duplicate choices; a key that does not apply to the type (listing those that do);
/// a string initial value outside the length bounds or not matching the pattern; an invalid
/// regex; duplicate variable or step names; a binding to an undeclared variable (with a "did
/// you mean"); a binding to a parameter the step's module does not take, or that some module
/// of an `@var` step does not take (listing those it takes); a known parameter bound to a
/// variable of the wrong type; a `with` key the module does not take (listing those it
/// takes), a value of the wrong kind or out of range (saying what the key takes), a key given
/// twice, a value that is not a literal, `tools` on a module that takes none, a tool that is
/// not a dotted path or is listed twice, a Rust path among the tools that is not a
/// `#[dspex::tool]`, `with` on a native step; an unknown DSPy module (listing the known
/// ones); `@var` on a variable that is not `module`-typed; a malformed signature; an unknown
/// field type (with a "did you mean": `string` is `str`, `List[str]` is `list[str]`) or a
/// malformed `Literal`; a step input
/// nothing produces; a step input of another type than its producer's, naming both types and
/// the producer; a program output no step produces, or of another type than the step's; an
/// empty chain; a variable named like a generated method (`start`, `attach`, `builder`, `context`,
/// `spec`, `run`, `run_fields`); a signature field that cannot be a Rust field; `Literal`
/// values that make the same enum variant, or a `Literal` field whose enum would be named like
/// `XInput`/`XOutput`; `readonly` that is not `true` or `false`.
///
/// ```compile_fail
/// use dspex::prelude::*;
///
/// dspex_program! {
///     program Qa: "question -> answer" {
///         variables {
///             temperature: float = 2.5 { min: 0.0, max: 2.0 }, // initial value 2.5 is above max 2.0
///         }
///         chain {
///             answer: python Predict("question -> answer") { temprature }, // did you mean `temperature`?
///             agent: python ReAct("question -> summary") with { max_iter: 5 }, // did you mean `max_iters`?
///         }
///     }
/// }
/// # fn main() {}
/// ```
///
/// A configured agent, with a Python tool and a bound number of iterations (it needs a live
/// Python worker, and the tool importable there):
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::prelude::*;
///
/// dspex_program! {
///     program Researcher: "question -> answer" {
///         variables {
///             depth: integer = 3 { min: 1, max: 10 },
///         }
///         chain {
///             answer: python ReAct("question -> answer") { depth as max_iters } with {
///                 max_iters: 5, // the default; `depth` overrides it per call
///                 tools: ["my_pkg.tools.search_docs"],
///             },
///         }
///     }
/// }
///
/// let researcher = Researcher::start().await?;
/// researcher.depth().set(2)?;
/// let out = researcher.run(ResearcherInput { question: "What is DSPy?".into() }).await?;
/// println!("{}", out.answer);
/// # Ok(()) }
/// ```
///
/// A program with a python step needs a live Python worker to run:
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::prelude::*;
///
/// #[derive(Default)]
/// struct QueryClassifier;
///
/// impl Module for QueryClassifier {
///     async fn forward(&self, _inputs: &Fields, params: &Params) -> Result<Fields> {
///         let model = params.get::<String>("llm_model")?;
///         Ok(Fields::from([("category", format!("general (for {model})"))]))
///     }
/// }
///
/// dspex_program! {
///     /// Answers questions; doc comments carry over.
///     pub program QaPipeline: "question -> answer" {
///         variables {
///             temperature: float = 0.7 { min: 0.0, max: 2.0 },
///             max_tokens: integer = 256 { min: 1, max: 4096 },
///             model: choice = "gpt-4o-mini" { choices: ["gpt-4o-mini", "claude-3-haiku"] },
///             reasoning: module = "ChainOfThought" { choices: ["Predict", "ChainOfThought"] },
///             style: string = "concise" { min_length: 1, max_length: 40, description: "tone" },
///             verbose: boolean = false,
///         }
///         chain {
///             classify: native QueryClassifier("question -> category") { model as llm_model },
///             answer: python @reasoning("question, category -> answer") { temperature, max_tokens },
///         }
///     }
/// }
///
/// assert!(QaPipeline::REQUIRES_BRIDGE);
/// let qa = QaPipeline::start().await?;
/// qa.reasoning().set("Predict")?;
/// let out = qa.run(QaPipelineInput { question: "What is DSPy?".into() }).await?;
/// println!("{}", out.answer);
/// # Ok(()) }
/// ```
pub use dspex_macros::dspex_program;

/// Derives [`Program`](trait@Program) for a struct whose fields are the program's variables
/// and steps: the same program as [`dspex_program!`] declares, with the same generated API
/// (except the struct, which is yours) and the same compile-time checks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::prelude::*;
///
/// #[derive(Default)]
/// struct Shout;
///
/// impl Module for Shout {
///     async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
///         let times = params.get::<i64>("times")?;
///         let loud = inputs.get::<&str>("text")?.to_uppercase();
///         Ok(Fields::from([("loud", vec![loud; times as usize].join(" "))]))
///     }
/// }
///
/// /// Shouts its input.
/// #[derive(Program)]
/// #[program(signature = "text -> loud")]
/// pub struct Shouter {
///     /// How many times to shout.
///     #[variable(initial = 2, min = 1, max = 3)]
///     repeat: Var<i64>,
///     #[variable(initial = "plain", choices = ["plain", "angry"])]
///     mood: Var<Choice>,
///     #[step(native, signature = "text -> loud", bind(repeat as times))]
///     shout: Shout,
///     ctx: Context,
/// }
///
/// let shouter = Shouter::start().await?;
/// let out = shouter.run(ShouterInput { text: "hi".into() }).await?;
/// assert_eq!(out.loud, "HI HI");
/// shouter.mood().set("angry")?;
/// assert!(shouter.mood().set("calm").is_err());
/// assert_eq!(shouter.context().get::<Choice>("mood")?, "angry");
/// # Ok(()) }
/// ```
///
/// # Attributes
///
/// - On the struct, optionally: `#[program(signature = "inputs -> outputs")]`. Signatures take
///   the field types of [`dspex_program!`], with the same `XInput`/`XOutput` types and
///   `Literal` enums.
/// - On a variable field, typed `Var<T>`:
///   `#[variable(initial = .., min = .., max = .., min_length = .., max_length = ..,
///   pattern = "..", choices = [..], dimensions = .., description = "..", readonly)]`;
///   `initial` is required, the other keys are those of [`dspex_program!`] for the variable's
///   type (`readonly` is a flag, or `readonly = true`/`false`). `T`
///   gives the type: `f64` float, `i64` integer, `String` string, `bool` boolean, [`Choice`]
///   choice, [`ModuleName`] module (not `Module`: [`Module`] is the trait of native steps),
///   [`Embedding`] embedding.
/// - On a native step field, typed by its [`Module`] (given to `X::builder().step(module)`,
///   or built with [`Default`]):
///   `#[step(native, signature = "..", bind(a, b as c))]`; `called` among the keys makes it a
///   called step. A native [`Predict`] or [`ChainOfThought`] step also takes
///   `with(adapter = "json")` and `with(json_fallback = false)`.
/// - On a python step field, typed [`PythonModule`]:
///   `#[step(python = "ChainOfThought" | "my_pkg.mod.Class" | "@var", signature = "..", bind(..),
///   with(key = literal, ..))]`; `with(max_iters = 5, tools = ["my_pkg.tools.search"])` is
///   `with { max_iters: 5, tools: [..] }` of [`dspex_program!`], with the same keys and checks;
///   `called` too.
/// - A field of type [`Context`] needs no attribute: it receives the program's context.
///
/// Steps run in field order (`called` steps only when called). `context()` returns the first `Context` field, else the context
/// of the first variable, else of the first python step; a struct with none of them is an
/// error. Besides the errors of [`dspex_program!`], the derive reports a `Var<T>` that
/// contradicts its attribute, unknown attribute keys (listing the valid ones), a field that is
/// neither a variable, a step nor a `Context`, and input that is not a struct with named
/// fields.
///
/// ```compile_fail
/// use dspex::prelude::*;
///
/// #[derive(Program)]
/// struct Qa {
///     #[variable(initial = 0.7)] // initial value 0.7 is a float, expected an integer
///     max_tokens: Var<i64>,
///     #[step(python = "Predict", signature = "question -> answer", bind(max_tokens as temperature))]
///     answer: PythonModule,      // parameter `temperature` needs a float variable
/// }
/// # fn main() {}
/// ```
pub use dspex_macros::Program;

/// Makes a Rust `fn` or `async fn` a tool that Python agents (a `ReAct` step's `tools`) can
/// call: see [`tools`] for what it takes and generates.
///
/// ```
/// use dspex::prelude::*;
///
/// /// Searches the documentation; returns the best `k` passages.
/// #[dspex::tool(variables(index_name), timeout_ms = 2000)]
/// async fn search_docs(query: String, k: Option<i64>, index_name: String) -> Result<Vec<String>> {
///     let k = k.unwrap_or(3);
///     Ok((0..k).map(|i| format!("{index_name}:{query}#{i}")).collect())
/// }
///
/// use dspex::tools::Tool;
/// let def = search_docs::def();
/// assert_eq!(def.arguments.len(), 2); // `index_name` is a variable, never an argument
/// assert_eq!(def.variables, ["index_name"]);
/// assert_eq!(def.timeout_ms, 2000);
/// ```
pub use dspex_macros::tool;
pub use error::{BoxError, Cause, Error, Result};
pub use program::{
    BaseProgram, BoxFuture, ChainOfThought, DynProgram, MAX_CALL_DEPTH, MAX_STEP_CALLS, Module,
    Predict, Predictor, Program, ProgramBuilder, PythonModule, RunEvent, RunningProgram, Step,
    StepContext,
};
pub use state::history::HistoryEntry;
pub use state::provider::{BackendKind, GetMany, SetOptions, Source, VarId, VarRecord};
pub use state::watch::{Change, ChangeKind, WatchEvent, WatchOptions, Watcher};

/// The names most programs need: `use dspex::prelude::*;`.
pub mod prelude {
    pub use crate::{
        AnyProgram, BackendKind, BaseProgram, ChainOfThought, Choice, Constraints, Context,
        Embedding, Error, Fields, LmConfig, Module, ModuleName, Overrides, Params, Predict,
        Program, PythonModule, Result, RunEvent, SetOptions, Value, Var, VarType, VariableSpec,
        WatchEvent, dspex_program,
    };
}

/// The README's Rust code, compiled (and run, unless marked `no_run`) as doc tests so that it
/// cannot drift from the crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// What code generated by `dspex_program!` and `#[derive(Program)]` refers to. Not a public API:
/// it changes whenever the macros do.
#[doc(hidden)]
pub mod __private {
    pub use std::collections::BTreeMap;
    pub use std::string::String;
    pub use std::sync::LazyLock;
    pub use std::vec::Vec;

    pub use dspex_core::program::{
        Binding, ConfigEntry, ConfigValue, ModuleRef, ProgramSpec, StepKind, StepSpec, ToolRef,
    };
    pub use dspex_core::{Constraints, Number, Pattern, Signature, Value, VarType, VariableSpec};

    pub use crate::program::prepare::{context_for, prepare_context};
    pub use crate::program::{BoxFuture, ChainRun, DynModule, stream_run};
    pub use crate::{
        Choice, Context, Embedding, Error, Fields, JsonObject, JsonValue, LiteralError, ModuleName,
        Overrides, Program, PythonModule, Result, RunEvent, RunTrace, Var,
    };
    pub use futures_util::stream::BoxStream;
    pub use serde;

    pub use crate::util::feature::RedisFeature;

    /// Compiles a pattern that the macro already compiled at compile time with the same
    /// `dspex-core`, so it cannot fail here.
    #[allow(clippy::expect_used)]
    pub fn pattern(source: &str) -> Pattern {
        Pattern::new(source)
            .expect("dspex bug: a pattern accepted at compile time failed to compile at run time")
    }

    /// Reads a signature that the macro already read, written in canonical form, so it cannot
    /// fail here.
    #[allow(clippy::expect_used)]
    pub fn signature(text: &str) -> Signature {
        Signature::parse(text)
            .expect("dspex bug: a signature accepted at compile time failed to parse at run time")
    }

    /// The module of a native step given to a generated builder (`X::builder().step(module)`).
    pub struct ModuleGiven<T>(pub T);

    /// A native step of a generated builder that was given no module: it is built with
    /// `Default`, which a bound on the builder's `start`/`attach` requires.
    pub struct NoModuleGiven;

    /// Asks, without requiring it, whether `T` implements `Default` (autoref specialization:
    /// `(&DefaultProbe::<T>::new()).default_module()` is `Some` exactly when it does), for
    /// `Program::attach`, which has no builder to take a module from.
    pub struct DefaultProbe<T>(core::marker::PhantomData<T>);

    impl<T> DefaultProbe<T> {
        /// The probe of `T`.
        #[allow(clippy::new_without_default)]
        pub fn new() -> Self {
            Self(core::marker::PhantomData)
        }
    }

    /// `T: Default`: the module `Default` builds.
    pub trait ViaDefault<T> {
        /// `Some(T::default())`.
        fn default_module(&self) -> Option<T>;
    }

    impl<T: Default> ViaDefault<T> for DefaultProbe<T> {
        fn default_module(&self) -> Option<T> {
            Some(T::default())
        }
    }

    /// Any other `T`: no module.
    pub trait WithoutDefault<T> {
        /// `None`.
        fn default_module(&self) -> Option<T>;
    }

    impl<T> WithoutDefault<T> for &DefaultProbe<T> {
        fn default_module(&self) -> Option<T> {
            None
        }
    }

    /// The error of a native step that was given no module and whose type has no `Default`.
    pub fn no_module(program: &str, step: &str, ty: &str) -> Error {
        Error::InvalidProgram {
            program: program.to_owned(),
            issues: Vec::from([format!(
                "native step `{step}` has no module: its type `{ty}` has no `Default`; give one with `{program}::builder().{step}(module)`"
            )]),
        }
    }

    /// A native step's module, as the chain runs it. Generated code calls it spanned at the
    /// user's type, so that a type that is no `Module` is reported there, by `Module`'s own
    /// diagnostic.
    pub fn native_step<M: crate::Module>(module: &M) -> &dyn DynModule {
        module
    }

    /// dspex's own LM modules: the native step types a `with` configures.
    #[diagnostic::on_unimplemented(
        message = "native step type `{Self}` takes no `with` configuration",
        label = "not dspex's native `Predict` or `ChainOfThought`",
        note = "`with {{ adapter: .., json_fallback: .. }}` configures dspex's native `Predict` and `ChainOfThought`; a module of your own takes its settings as a value: `X::builder().step(module)`"
    )]
    pub trait NativeLmModule {}

    impl NativeLmModule for crate::Predict {}
    impl NativeLmModule for crate::ChainOfThought {}

    /// Generated code calls it spanned at the type of a native step that has a `with`, so
    /// that a type of the user's named like dspex's LM modules is reported there.
    pub fn native_lm_module<T: NativeLmModule>() {}

    /// Creates the DSPy module of python step `index` of `spec` in `ctx`'s worker (bridging
    /// `ctx` and starting its worker first if needed). Without the `python` feature the macros
    /// refuse python steps, so generated code never calls it.
    #[cfg(feature = "python")]
    ///
    /// `tools` are the step's Rust tools, in the order its `tools` lists them.
    pub async fn python_step(
        ctx: &Context,
        spec: &ProgramSpec,
        index: usize,
        tools: &[&'static crate::tools::ToolDef],
    ) -> Result<PythonModule> {
        PythonModule::attach(ctx, spec, index, tools).await
    }

    #[cfg(feature = "python")]
    /// The definition of tool `T`. Generated code calls it spanned at the path the user wrote
    /// in `tools`, so that a path that is no tool is reported there.
    pub fn tool_def<T: crate::tools::Tool>() -> &'static crate::tools::ToolDef {
        T::def()
    }

    /// Takes output field `name` of program `program` out of `fields`, as the type of its
    /// `XOutput` field; a missing field is a `MissingField` error.
    pub fn take_output<T: serde::de::DeserializeOwned>(
        fields: &mut Fields,
        name: &str,
        program: &str,
    ) -> Result<T> {
        let value = fields.remove(name).ok_or_else(|| Error::MissingField {
            field: name.to_owned(),
            context: format!("the output of program `{program}`"),
        })?;
        T::deserialize(&value).map_err(|source| crate::data::read_error::<T>(name, &value, source))
    }
}
