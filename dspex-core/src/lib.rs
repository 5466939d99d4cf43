//! The rules of dspex variables, in one crate that has no runtime: values and the seven
//! variable types, constraints and their validation, variable declarations, DSPy string
//! signatures and their field types, how an LM's text reads as a field's type, glob patterns,
//! the table of known DSPy modules, the configuration of dspex's native LM modules and the
//! program model with its checks.
//!
//! `dspex-macros` calls this crate at compile time and `dspex` at run time, so a declaration the
//! compiler accepts is exactly one the runtime accepts, and the error messages are the same.
//!
//! A signature field's value is one [`serde_json::Value`], of the field's [`FieldType`]
//! ([`FieldType::accepts`]); [`FieldType::parse_text`] reads an LM's text as the type, as DSPy
//! does. The crate takes `serde_json` for that and nothing with a runtime.
//!
//! ```
//! use dspex_core::{Constraints, VariableSpec, VarType, Value};
//!
//! let temperature = VariableSpec::new("temperature", VarType::Float, 0.7)
//!     .with_constraints(Constraints::range(0.0, 2.0));
//! assert_eq!(temperature.check(), Ok(Value::Float(0.7)));
//! let err = temperature.validate(Value::Float(2.5)).unwrap_err();
//! assert_eq!(err.to_string(), "temperature: 2.5 is above max 2.0");
//! ```

mod constraints;
pub mod dspy;
mod echo;
mod field_text;
mod field_type;
mod glob;
mod literal_syntax;
pub mod native;
pub mod optimizers;
pub mod program;
mod signature;
mod spec;
mod suggest;
mod validate;
mod value;

pub use constraints::{
    ConstraintIssue, ConstraintKey, ConstraintProblem, Constraints, Field, Number, Pattern,
    PatternError, declaration_keys_list,
};
pub use echo::{Echo, MAX_ECHO_CHARS, MAX_ECHO_ITEMS, echo_prefix, excerpt, value_excerpt};
pub use field_text::{FieldError, Found, TextProblem};
pub use field_type::{FIELD_TYPE_NAMES, FieldType, FieldTypeError, FieldTypeProblem, LiteralError};
pub use glob::{Glob, GlobError};
pub use literal_syntax::MAX_TEXT_NESTING;
pub use signature::{Signature, SignatureError, SignatureField, SignatureProblem, is_identifier};
pub use spec::{MAX_NAME_LEN, SpecError, SpecIssue, SpecProblem, VariableSpec, check_name};
pub use suggest::did_you_mean;
pub use validate::{Rule, ValidationError, validate};
pub use value::{UnknownVarType, Value, VarType};
