//! The one error type of dspex, with variants a caller can match on.

use dspex_core::{FieldError, GlobError, LiteralError, SpecError, ValidationError};

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
