//! The one error type of dspex, with variants a caller can match on.

use dspex_core::{GlobError, SpecError, ValidationError};

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
    /// The same variable twice in one atomic batch.
    #[error("variable `{name}` appears more than once in one atomic write")]
    DuplicateWrite {
        /// The variable.
        name: String,
    },
    /// A malformed glob pattern for `list`.
    #[error(transparent)]
    InvalidPattern(#[from] GlobError),
    /// A program declaration that breaks the rules of DESIGN.md section 7 (runtime builder).
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
    /// A native step failed.
    #[error("step `{step}` failed: {source}")]
    Step {
        /// The step.
        step: String,
        /// What it returned.
        source: Box<Error>,
    },
    /// The Python bridge (session store and gRPC server) could not be used.
    #[error("python bridge: {0}")]
    Bridge(String),
    /// The Python worker process failed, or could not be started.
    #[error("python worker: {0}")]
    Worker(String),
    /// A python step raised an exception; `message` is the Python error text.
    #[error("python step `{step}` raised {message}")]
    Python {
        /// The step.
        step: String,
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
    /// A per-run override of a variable that a python step reads in the worker, which in this
    /// build takes the values from the context, not from the run.
    #[error(
        "python step `{step}` reads `{variable}` in the worker, which cannot take a per-run override in this build"
    )]
    OverrideUnsupported {
        /// The python step.
        step: String,
        /// The overridden variable it reads.
        variable: String,
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
    #[error("tuning: {0}")]
    Tuning(String),
    /// An option outside its bounds (a concurrency of 0, a fraction above 1).
    #[error("{option}: {message}")]
    InvalidOption {
        /// The option (`concurrency`).
        option: String,
        /// The rule it broke.
        message: String,
    },
    /// An invariant dspex relies on did not hold; a bug in dspex.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
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
