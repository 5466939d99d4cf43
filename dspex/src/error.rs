//! The one error type of dspex, with variants a caller can match on.
//!
//! Each message says what failed; when something underneath failed (an `io::Error`, a
//! `tonic::Status`, a step's own error), it is the error's [`source`](std::error::Error::source)
//! and is not repeated in the message, so that error reporters (`anyhow`, `eyre`, a loop over
//! `source()`) print every cause once.

use dspex_core::{FieldError, GlobError, LiteralError, SpecError, ValidationError};

/// An error of any type, as [`Cause::Other`] holds it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What failed underneath an [`Error::Bridge`], [`Error::Worker`], [`Error::Shared`] or
/// [`Error::Lm`]: the typed error of the library below, to match on. It is the error's
/// [`source`](std::error::Error::source); it displays as the error it holds.
///
/// ```
/// use std::error::Error as _;
/// use dspex::{Cause, Error};
///
/// let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
/// let e = Error::bridge_with("cannot bind 127.0.0.1:4000", io);
/// match &e {
///     Error::Bridge { source: Some(Cause::Io(io)), .. } => {
///         assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse)
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// assert_eq!(e.source().unwrap().to_string(), "address in use");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Cause {
    /// An I/O error (a process, a socket, a file).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A gRPC status: what the Python worker or the bridge answered.
    #[cfg(feature = "python")]
    #[error(transparent)]
    Grpc(#[from] tonic::Status),
    /// A gRPC transport error: a channel that could not connect or serve.
    #[cfg(feature = "python")]
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// What the Redis client said.
    #[cfg(feature = "redis")]
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// What the HTTP client said (the native LM lane).
    #[cfg(feature = "lm")]
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    /// A JSON text that did not read or write.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A task of the async runtime that panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    /// Anything else.
    #[error(transparent)]
    Other(BoxError),
}

impl Cause {
    /// A cause of any other error type.
    pub fn other(error: impl Into<BoxError>) -> Self {
        Cause::Other(error.into())
    }
}

/// The result type of dspex.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in dspex. Messages name the variable (or step, or process) and
/// the rule that was broken.
///
/// ```
/// use dspex::{Context, Constraints, Error};
///
/// let ctx = Context::new();
/// let t = ctx.defvariable::<f64>("temperature", 0.7, Constraints::range(0.0, 2.0)).unwrap();
/// match t.set(2.5) {
///     Err(Error::ConstraintViolation(e)) => {
///         assert_eq!(e.to_string(), "temperature: 2.5 is above max 2.0")
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// assert_eq!(t.get().unwrap(), 0.7);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No variable with this name (or id).
    #[error("variable `{name}` not found")]
    NotFound {
        /// The name asked for.
        name: String,
    },
    /// A variable with this name already exists.
    #[error("variable `{name}` already exists")]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// A program declares a variable that the context already holds with another type or other
    /// constraints (identical declarations are shared).
    #[error(
        "variable `{name}` already exists in the context as {existing}; program `{program}` declares {declared}"
    )]
    IncompatibleVariable {
        /// The variable.
        name: String,
        /// The program that declares it.
        program: String,
        /// What the context holds ("a float variable with constraints ...").
        existing: String,
        /// What the program declares.
        declared: String,
    },
    /// A shared session already holds a variable of this name, declared differently (another
    /// type, other constraints or another description). Identical declarations are shared.
    #[error(
        "variable `{name}` is declared differently in shared session `{session}`: {difference}"
    )]
    DeclarationMismatch {
        /// The variable.
        name: String,
        /// The shared session.
        session: String,
        /// What differs, the session's declaration first: "type: float in the session,
        /// integer here".
        difference: String,
    },
    /// A value of the wrong type for the variable.
    #[error(transparent)]
    InvalidValue(ValidationError),
    /// A value of the right type that breaks a constraint (or is not finite).
    #[error(transparent)]
    ConstraintViolation(ValidationError),
    /// An invalid variable declaration.
    #[error(transparent)]
    InvalidSpec(SpecError),
    /// A typed read of a variable that holds another type.
    #[error("variable `{name}` holds {found} values, not {expected}")]
    TypeMismatch {
        /// The variable.
        name: String,
        /// The type asked for.
        expected: &'static str,
        /// The type of the variable.
        found: &'static str,
    },
    /// A compare-and-set whose expected version was not the current one.
    #[error("version conflict on `{name}`: expected version {expected}, found {actual}")]
    Conflict {
        /// The variable.
        name: String,
        /// The version the writer expected.
        expected: u64,
        /// The version the variable is at.
        actual: u64,
    },
    /// A write from Python to a read-only variable (declared `readonly`): only Rust code may
    /// write it. Nothing changed.
    #[error("variable `{name}` is read-only: only Rust code may write it")]
    ReadOnly {
        /// The variable.
        name: String,
    },
    /// A rollback to a version the variable's history no longer keeps (or never had).
    #[error(
        "variable `{name}` has no version {version} in its history, which keeps versions {oldest} to {newest}"
    )]
    VersionNotFound {
        /// The variable.
        name: String,
        /// The version asked for.
        version: u64,
        /// The oldest version kept.
        oldest: u64,
        /// The newest version kept (the current one).
        newest: u64,
    },
    /// The same variable twice in one atomic batch.
    #[error("variable `{name}` appears more than once in one atomic write")]
    DuplicateWrite {
        /// The variable.
        name: String,
    },
    /// Over one of dspex's named bounds (the metadata a variable may hold, the examples of a
    /// compilation, ...); nothing was changed. The message says what was over which bound.
    #[error("{message}")]
    Limit {
        /// The bound, by the name of its constant (`MAX_TRAIN_EXAMPLES`), or as the worker
        /// named it.
        limit: String,
        /// What was over it, and by how much.
        message: String,
    },
    /// A malformed glob pattern for `list`.
    #[error(transparent)]
    InvalidPattern(#[from] GlobError),
    /// A program declaration that breaks the rules of `dspex_program!` (runtime builder).
    #[error("invalid program `{program}`: {}", issues.join("; "))]
    InvalidProgram {
        /// The program.
        program: String,
        /// Every problem, each naming where it is.
        issues: Vec<String>,
    },
    /// A field a program or step needs is missing.
    #[error("`{field}` is missing from {context}")]
    MissingField {
        /// The field.
        field: String,
        /// Where it was expected ("the output of step `classify`").
        context: String,
    },
    /// A field value that is not of the type its signature declares: a program input, a
    /// native step's output, or the text a python step returned that does not read as the
    /// type. The error names the field, the type and (an excerpt of) the value.
    #[error("{context}: {error}")]
    Field {
        /// Whose field ("the output of step `rate`", "the input of program `Qa`").
        context: String,
        /// The field, its type and what it held.
        error: Box<FieldError>,
    },
    /// A field read as a Rust type that its value does not deserialize as.
    #[error("field `{field}` holds `{found}`, which cannot be read as `{expected}`")]
    FieldRead {
        /// The field.
        field: String,
        /// Its value, as JSON (an excerpt).
        found: String,
        /// The Rust type asked for.
        expected: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// A string parsed (`FromStr`) as a generated `Literal` enum that is none of its values.
    #[error(transparent)]
    Literal(#[from] LiteralError),
    /// A value that serde cannot write as JSON, so cannot be a field.
    #[error("field `{field}` cannot hold the value: it has no JSON form")]
    FieldWrite {
        /// The field.
        field: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// A native step failed; `source` is what it returned.
    #[error("step `{step}` failed")]
    Step {
        /// The step.
        step: String,
        /// What it returned.
        #[source]
        source: Box<Error>,
    },
    /// A native step's call of another step of its program that cannot be made
    /// ([`StepContext::call`](crate::StepContext::call)): no step of that name, or a field its
    /// signature does not take. Nothing ran.
    #[error("step `{caller}` cannot call step `{step}`: {message}")]
    StepCall {
        /// The calling step.
        caller: String,
        /// The step it called.
        step: String,
        /// The rule the call broke.
        message: String,
    },
    /// The Python bridge (session store and gRPC server) could not be used. Build it with
    /// [`Error::bridge`] or [`Error::bridge_with`].
    #[error("python bridge: {message}")]
    Bridge {
        /// What failed ("cannot bind 127.0.0.1:80").
        message: String,
        /// Why, when something underneath failed (an `io::Error`, ...).
        #[source]
        source: Option<Cause>,
    },
    /// The HTTP server (feature `serve`) could not listen or stop: the message names the
    /// address or the step; `source` is the `io::Error` underneath.
    #[error("serve: {message}")]
    Serve {
        /// What failed ("cannot bind 0.0.0.0:80").
        message: String,
        /// Why, when something underneath failed.
        #[source]
        source: Option<Cause>,
    },
    /// The Python worker process failed, or could not be started. Build it with
    /// [`Error::worker`] or [`Error::worker_with`].
    #[error("python worker: {message}")]
    Worker {
        /// What failed ("the python worker (pid 42) exited during step `answer`").
        message: String,
        /// Why, when something underneath failed (an `io::Error`, a `tonic::Status`, ...).
        #[source]
        source: Option<Cause>,
    },
    /// The shared backend (Redis) could not be used: unreachable, refused a command, or holds
    /// a session that cannot be read. The message names the URL (without its password) and
    /// what failed; `source` is what the Redis client said. Build it with [`Error::shared`] or
    /// [`Error::shared_with`].
    #[error("shared state: {message}")]
    Shared {
        /// What failed ("cannot reach Redis at redis://127.0.0.1:6390/0").
        message: String,
        /// Why, when something underneath failed (a `redis::RedisError`, ...).
        #[source]
        source: Option<Cause>,
    },
    /// A write to the shared backend was sent to Redis but its reply never came (the
    /// connection broke, or Redis stopped answering for longer than the backend's I/O
    /// timeout): it may have been applied, or not. The
    /// message names the URL and says so; `source` is what the Redis client said. If it was
    /// applied, the session's stream brings it to every process's reads and watchers once
    /// Redis answers again; read the variable then to know. A write that failed before it was
    /// sent, or that Redis refused, is an [`Error::Shared`] saying it was not applied.
    #[error("shared state: {message}")]
    OutcomeUnknown {
        /// What happened ("no reply from Redis at redis://127.0.0.1:6390/0 to a write to
        /// session `s`: the write may have been applied").
        message: String,
        /// Why (the `redis::RedisError`).
        #[source]
        source: Option<Cause>,
    },
    /// An LM call from Rust failed (a native `Predict` or `ChainOfThought`, or the LM client):
    /// the endpoint refused or timed out after its retries, replied with something that is no
    /// chat completion, or the reply lacks a field the signature asks for. The message names
    /// the endpoint or the field and quotes a bounded prefix of what came back. Build it with
    /// [`Error::lm`] or [`Error::lm_with`].
    #[error("LM: {message}")]
    Lm {
        /// What failed ("`answer` is missing from the LM's reply: ...").
        message: String,
        /// Why, when something underneath failed (a `reqwest::Error`, ...).
        #[source]
        source: Option<Cause>,
    },
    /// A python step raised an exception (or its module could not be created); `message` is
    /// the Python error text and `exception` the exception's type.
    #[error("python step `{step}` raised {message}")]
    Python {
        /// The step.
        step: String,
        /// The exception's type, qualified by its module unless it is a built-in
        /// (`ValueError`, `my_pkg.errors.QuotaError`); `None` when the worker refused the call
        /// without an exception of the module's (an input or output of the wrong type, a
        /// module that cannot be created).
        exception: Option<String>,
        /// The Python exception, as `Type: message`.
        message: String,
    },
    /// A per-run override that names no variable of the program.
    #[error("override of `{name}`: program `{program}` declares no variable `{name}`{hint}")]
    UnknownOverride {
        /// The overridden name.
        name: String,
        /// The program run with the override.
        program: String,
        /// `" (did you mean `temperature`?)"`, or empty.
        hint: String,
    },
    /// A data set that cannot be read: the file (or source), the line and the field, and why.
    #[error("{location}: {message}")]
    Dataset {
        /// Where: `dev.jsonl line 3, field `answer``.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A metric that failed, or scored outside `[0, 1]`.
    #[error("metric `{metric}`: {message}")]
    Metric {
        /// The metric's name.
        metric: String,
        /// What went wrong.
        message: String,
    },
    /// A search space, sampler, schedule or saved tuning result that cannot be used; the
    /// message names the variable or setting and the rule.
    #[error("tuning: {message}")]
    Tuning {
        /// What cannot be used, and the rule it breaks.
        message: String,
        /// Why, when something underneath failed (reading a saved result).
        #[source]
        source: Option<Cause>,
    },
    /// A compilation of a python step that cannot run: an unknown optimizer or setting, a
    /// setting of the wrong kind, a step that is not a python step, examples that do not fit
    /// the step; the message names the thing and the rule.
    #[error("compile: {message}")]
    Compile {
        /// What cannot run, and the rule it breaks.
        message: String,
    },
    /// A saved program state that cannot be read or does not fit the program it is loaded
    /// into; the message names what differs. Loading it changed nothing.
    #[error("program state: {message}")]
    ProgramState {
        /// What cannot be read or does not fit (with the file, where there is one).
        message: String,
        /// Why, when something underneath failed (reading or writing the file, its JSON).
        #[source]
        source: Option<Cause>,
    },
    /// An option outside its bounds (a concurrency of 0, a fraction above 1).
    #[error("{option}: {message}")]
    InvalidOption {
        /// The option (`concurrency`).
        option: String,
        /// The rule it broke.
        message: String,
    },
    /// Telemetry that cannot start, or spans that could not be exported (feature `otel`).
    #[error("telemetry: {message}")]
    Telemetry {
        /// What failed.
        message: String,
        /// Why, when something underneath failed (the exporter).
        #[source]
        source: Option<Cause>,
    },
    /// An invariant dspex relies on did not hold; a bug in dspex.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A bridge error with no underlying cause.
    ///
    /// ```
    /// let e = dspex::Error::bridge("the bridge server has stopped");
    /// assert_eq!(e.to_string(), "python bridge: the bridge server has stopped");
    /// ```
    pub fn bridge(message: impl Into<String>) -> Self {
        Error::Bridge {
            message: message.into(),
            source: None,
        }
    }

    /// A bridge error caused by `source`, which stays reachable through
    /// [`source()`](std::error::Error::source) and is not repeated in the message.
    ///
    /// ```
    /// use std::error::Error as _;
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
    /// let e = dspex::Error::bridge_with("cannot bind 127.0.0.1:4000", io);
    /// assert_eq!(e.to_string(), "python bridge: cannot bind 127.0.0.1:4000");
    /// assert_eq!(e.source().unwrap().to_string(), "address in use");
    /// ```
    pub fn bridge_with(message: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::Bridge {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A shared-state error with no underlying cause.
    ///
    /// ```
    /// let e = dspex::Error::shared("session `qa` holds a record that does not decode");
    /// assert_eq!(e.to_string(), "shared state: session `qa` holds a record that does not decode");
    /// ```
    pub fn shared(message: impl Into<String>) -> Self {
        Error::Shared {
            message: message.into(),
            source: None,
        }
    }

    /// A shared-state error caused by `source` (kept as the error's
    /// [`source()`](std::error::Error::source), not repeated in the message).
    pub fn shared_with(message: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::Shared {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A shared write of unknown outcome, caused by `source`.
    pub fn outcome_unknown(message: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::OutcomeUnknown {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An LM error with no underlying cause.
    pub fn lm(message: impl Into<String>) -> Self {
        Error::Lm {
            message: message.into(),
            source: None,
        }
    }

    /// An LM error caused by `source` (kept as the error's
    /// [`source()`](std::error::Error::source), not repeated in the message).
    pub fn lm_with(message: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::Lm {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A worker error with no underlying cause.
    pub fn worker(message: impl Into<String>) -> Self {
        Error::Worker {
            message: message.into(),
            source: None,
        }
    }

    /// A worker error caused by `source` (kept as the error's
    /// [`source()`](std::error::Error::source), not repeated in the message).
    pub fn worker_with(message: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::Worker {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The message and every source below it, joined by `": "`: what an error reporter
    /// prints, for code that logs a `dspex::Error` on one line.
    ///
    /// ```
    /// let io = std::io::Error::other("no such file");
    /// let e = dspex::Error::worker_with("cannot start `python3`", io);
    /// assert_eq!(e.report(), "python worker: cannot start `python3`: no such file");
    /// ```
    pub fn report(&self) -> String {
        let mut out = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            next = cause.source();
        }
        out
    }

    /// The step that failed, when the error names it: a native step's error, a python step's
    /// exception, or a step's call of another step (the calling step).
    #[cfg(feature = "serve")]
    pub(crate) fn failed_step(&self) -> Option<&str> {
        match self {
            Error::Step { step, .. } | Error::Python { step, .. } => Some(step),
            Error::StepCall { caller, .. } => Some(caller),
            _ => None,
        }
    }

    /// An error of a named bound: `limit` is the bound (`MAX_TRAIN_EXAMPLES`), `message` what
    /// was over it.
    pub(crate) fn limit(limit: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Limit {
            limit: limit.into(),
            message: message.into(),
        }
    }

    /// A tuning error with no underlying cause.
    pub(crate) fn tuning(message: impl Into<String>) -> Self {
        Error::Tuning {
            message: message.into(),
            source: None,
        }
    }

    /// A tuning error caused by `source`.
    pub(crate) fn tuning_with(message: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::Tuning {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A compile error.
    pub(crate) fn compile(message: impl Into<String>) -> Self {
        Error::Compile {
            message: message.into(),
        }
    }

    /// A program state error with no underlying cause.
    pub(crate) fn program_state(message: impl Into<String>) -> Self {
        Error::ProgramState {
            message: message.into(),
            source: None,
        }
    }

    /// A program state error caused by `source`.
    pub(crate) fn program_state_with(message: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::ProgramState {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub(crate) fn not_found(name: &str) -> Self {
        Error::NotFound {
            name: name.to_owned(),
        }
    }

    pub(crate) fn internal(message: &str) -> Self {
        Error::Internal(message.to_owned())
    }
}

impl From<ValidationError> for Error {
    fn from(e: ValidationError) -> Self {
        if e.is_type_error() {
            Error::InvalidValue(e)
        } else {
            Error::ConstraintViolation(e)
        }
    }
}

impl From<SpecError> for Error {
    fn from(e: SpecError) -> Self {
        Error::InvalidSpec(e)
    }
}

#[cfg(all(test, feature = "python"))]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn errors_keep_their_sources_out_of_their_messages() {
        let step = Error::Step {
            step: "classify".into(),
            source: Box::new(Error::not_found("model")),
        };
        assert_eq!(step.to_string(), "step `classify` failed");
        assert_eq!(
            step.source().map(ToString::to_string).as_deref(),
            Some("variable `model` not found")
        );
        assert_eq!(
            step.report(),
            "step `classify` failed: variable `model` not found"
        );

        let status = tonic::Status::unavailable("connection refused");
        let worker = Error::worker_with("the python worker (pid 7) refused the call", status);
        assert_eq!(
            worker.to_string(),
            "python worker: the python worker (pid 7) refused the call"
        );
        let Error::Worker {
            source: Some(Cause::Grpc(status)),
            ..
        } = &worker
        else {
            panic!("not a worker error caused by a status: {worker:?}");
        };
        assert_eq!(status.message(), "connection refused");
        assert!(worker.report().contains("connection refused"));

        assert!(Error::bridge("the server has stopped").source().is_none());
    }
}
