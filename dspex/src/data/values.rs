//! The Rust types of variable values ([`VarValue`]): `f64`, `i64`, `String`, `bool`, and the
//! newtypes of `choice`, `module` and `embedding` variables.

use std::fmt;
use std::ops::Deref;

use dspex_core::{Value, VarType};

/// A Rust type that a variable's value converts to and from.
///
/// | type | Rust |
/// |---|---|
/// | `float` | `f64` |
/// | `integer` | `i64` |
/// | `string` | `String` (also reads `choice` and `module` variables) |
/// | `boolean` | `bool` |
/// | `choice` | [`Choice`] |
/// | `module` | [`ModuleName`] |
/// | `embedding` | [`Embedding`] |
pub trait VarValue: Sized + Clone + Send + Sync + 'static {
    /// The variable type `defvariable` registers for this Rust type.
    const TYPE: VarType;

    /// Whether a handle of this Rust type may be taken on a variable of type `ty`.
    fn fits(ty: VarType) -> bool {
        ty == Self::TYPE
    }

    /// Reads a stored value; `None` if the value is of another kind.
    fn from_value(value: &Value) -> Option<Self>;

    /// Converts into a value to store.
    fn into_value(self) -> Value;
}

impl VarValue for f64 {
    const TYPE: VarType = VarType::Float;
    #[inline]
    fn from_value(value: &Value) -> Option<Self> {
        value.as_f64()
    }
    #[inline]
    fn into_value(self) -> Value {
        Value::Float(self)
    }
}

impl VarValue for i64 {
    const TYPE: VarType = VarType::Integer;
    #[inline]
    fn from_value(value: &Value) -> Option<Self> {
        value.as_i64()
    }
    #[inline]
    fn into_value(self) -> Value {
        Value::Integer(self)
    }
}

impl VarValue for bool {
    const TYPE: VarType = VarType::Boolean;
    #[inline]
    fn from_value(value: &Value) -> Option<Self> {
        value.as_bool()
    }
    #[inline]
    fn into_value(self) -> Value {
        Value::Boolean(self)
    }
}

impl VarValue for String {
    const TYPE: VarType = VarType::String;
    fn fits(ty: VarType) -> bool {
        matches!(ty, VarType::String | VarType::Choice | VarType::Module)
    }
    fn from_value(value: &Value) -> Option<Self> {
        value.as_str().map(str::to_owned)
    }
    fn into_value(self) -> Value {
        Value::String(self)
    }
}

/// Declares a string newtype for a string-valued variable type.
macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident, $ty:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub String);

        impl $name {
            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl VarValue for $name {
            const TYPE: VarType = $ty;
            fn from_value(value: &Value) -> Option<Self> {
                value.as_str().map(|s| Self(s.to_owned()))
            }
            fn into_value(self) -> Value {
                Value::String(self.0)
            }
        }
    };
}

string_newtype!(
    /// The value of a `choice` variable: one of its choices.
    Choice,
    VarType::Choice
);
string_newtype!(
    /// The value of a `module` variable: the name of a DSPy module class (`"ChainOfThought"`).
    ///
    /// A `module` variable's handle is `Var<ModuleName>`, not `Var<Module>`:
    /// [`Module`](crate::Module) is the trait native steps implement.
    ModuleName,
    VarType::Module
);

/// The value of an `embedding` variable.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Embedding(pub Vec<f32>);

impl Deref for Embedding {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl From<Vec<f32>> for Embedding {
    fn from(v: Vec<f32>) -> Self {
        Self(v)
    }
}

impl VarValue for Embedding {
    const TYPE: VarType = VarType::Embedding;
    fn from_value(value: &Value) -> Option<Self> {
        value.as_embedding().map(|e| Self(e.to_vec()))
    }
    fn into_value(self) -> Value {
        Value::Embedding(self.0)
    }
}
