//! The one model of a program (the IR) that both front ends build and that `check` and `expand`
//! read. It keeps the tokens of every part an error can be about, and lowers to the
//! `dspex_core::program::ProgramSpec` that the runtime uses.

use dspex_core::program::{
    Binding, ConfigEntry, ConfigValue, ModuleRef, ProgramSpec, StepKind, StepSpec,
};
use dspex_core::{ConstraintKey, Constraints, Signature, Value, VarType, VariableSpec};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::ext::IdentExt;
use syn::{Attribute, Ident, LitStr, Type, Visibility};

/// The inherent methods every program gets; a variable accessor may not take their names.
pub(crate) const GENERATED_METHODS: [&str; 15] = [
    "start",
    "attach",
    "builder",
    "context",
    "spec",
    "run",
    "run_traced",
    "run_with",
    "run_with_traced",
    "run_fields",
    "run_fields_traced",
    "run_fields_with",
    "run_fields_with_traced",
    "stream",
    "stream_with",
];

/// Which front end built the program; the expansion differs only in whether it declares the
/// struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// `dspex_program! { ... }`: the macro declares the struct.
    Macro,
    /// `#[derive(Program)]`: the user declared the struct.
    Derive,
}

/// A program declaration.
pub(crate) struct Program {
    pub(crate) form: Form,
    /// Attributes carried over to the generated struct (doc comments, derives); macro form only.
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) signature: Option<SignatureLit>,
    pub(crate) variables: Vec<Variable>,
    pub(crate) steps: Vec<Step>,
    /// Where errors about the chain as a whole point (`chain`, or the struct name).
    pub(crate) chain: TokenStream,
    /// Derive form: the fields of type `Context`, filled with the program's context.
    pub(crate) context_fields: Vec<Ident>,
    /// Only the header could be parsed: the expansion is a skeleton and nothing is checked.
    pub(crate) partial: bool,
}

/// A DSPy signature as written, and parsed if it is well-formed.
pub(crate) struct SignatureLit {
    pub(crate) lit: LitStr,
    pub(crate) parsed: Option<Signature>,
}

/// Some value and the tokens it was written as.
pub(crate) struct Located<T> {
    pub(crate) value: T,
    pub(crate) tokens: TokenStream,
}

/// A variable declaration.
pub(crate) struct Variable {
    /// Position among the program's variables and steps in the source, for error order.
    pub(crate) pos: usize,
    /// Doc comments, carried over to the accessor.
    pub(crate) docs: Vec<Attribute>,
    pub(crate) name: Ident,
    /// `None` when the type could not be determined (already reported).
    pub(crate) ty: Option<VarType>,
    /// Where the type was written: `float` or `Var<f64>`.
    pub(crate) ty_tokens: TokenStream,
    /// Derive form: the field type as written (`Var<f64>`).
    pub(crate) field_ty: Option<Type>,
    /// `None` when missing or not a literal (already reported).
    pub(crate) initial: Option<Located<Value>>,
    /// The constraints that were written and could be read.
    pub(crate) constraints: Constraints,
    /// The tokens of each constraint that was set, in source order.
    pub(crate) keys: Vec<KeyTokens>,
    /// The tokens of each entry of `choices`.
    pub(crate) choice_tokens: Vec<TokenStream>,
    pub(crate) description: Option<String>,
    /// Declared `readonly`: only Rust code may write it.
    pub(crate) readonly: bool,
    /// The `readonly` key, if it was written.
    pub(crate) readonly_key: Option<Ident>,
    /// Some part of the declaration could not be read (already reported): its remaining
    /// issues would only be consequences.
    pub(crate) incomplete: bool,
}

/// The tokens of one constraint, `min: 0.0` or `min = 0.0`.
pub(crate) struct KeyTokens {
    pub(crate) key: ConstraintKey,
    pub(crate) ident: Ident,
    pub(crate) value: TokenStream,
}

/// A step of the chain.
pub(crate) struct Step {
    /// Position among the program's variables and steps in the source, for error order.
    pub(crate) pos: usize,
    pub(crate) name: Ident,
    /// `None` when neither `native` nor `python` was given (already reported).
    pub(crate) kind: Option<StepKindIr>,
    /// `None` when missing (already reported).
    pub(crate) signature: Option<SignatureLit>,
    pub(crate) bindings: Vec<BindingIr>,
    /// The `with` keyword, if the step has a configuration.
    pub(crate) with: Option<TokenStream>,
    /// The entries of `with { ... }` (`with(...)` in the derive), in source order.
    pub(crate) config: Vec<ConfigEntryIr>,
    /// Whether the step runs only when a native step calls it (`called`).
    pub(crate) called: bool,
}

/// One `key: value` (`key = value` in the derive) of a step's `with` configuration.
pub(crate) struct ConfigEntryIr {
    pub(crate) key: Ident,
    /// `None` when the value could not be read (already reported).
    pub(crate) value: Option<ConfigValue>,
    /// The value as written.
    pub(crate) tokens: TokenStream,
    /// The tokens of each item of a list value.
    pub(crate) items: Vec<TokenStream>,
}

/// Where a step runs.
pub(crate) enum StepKindIr {
    /// A Rust type implementing `dspex::Module`.
    Native(Type),
    /// A DSPy module in the Python worker.
    Python(Located<ModuleRef>),
}

/// `var` or `var as param`.
pub(crate) struct BindingIr {
    pub(crate) variable: Ident,
    pub(crate) param: Option<Ident>,
}

impl Program {
    /// The program's name, as the runtime knows it.
    pub(crate) fn name(&self) -> String {
        self.ident.unraw().to_string()
    }

    /// Whether any step is python, so that the program needs the bridge.
    pub(crate) fn requires_bridge(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.kind, Some(StepKindIr::Python(_))))
    }

    /// Whether every signature (the program's and each step's) was written and well-formed, so
    /// that the flow of fields along the chain can be judged.
    pub(crate) fn signatures_known(&self) -> bool {
        self.signature.as_ref().is_none_or(|s| s.parsed.is_some())
            && self
                .steps
                .iter()
                .all(|s| s.signature.as_ref().is_some_and(|s| s.parsed.is_some()))
    }

    /// The variable declared under `name`.
    pub(crate) fn variable(&self, name: &str) -> Option<&Variable> {
        self.variables.iter().find(|v| v.name() == name)
    }

    /// The program as `dspex-core` models it. Parts that could not be read are filled with
    /// placeholders; `check` drops the issues they would cause.
    pub(crate) fn spec(&self) -> ProgramSpec {
        ProgramSpec {
            name: self.name(),
            signature: self.signature.as_ref().and_then(|s| s.parsed.clone()),
            variables: self.variables.iter().map(Variable::spec).collect(),
            steps: self.steps.iter().map(Step::spec).collect(),
        }
    }
}

impl Variable {
    /// A declaration of `name` whose type, initial value and constraints are still to be read.
    pub(crate) fn new(
        pos: usize,
        name: Ident,
        ty: Option<VarType>,
        ty_tokens: TokenStream,
    ) -> Self {
        Self {
            pos,
            docs: Vec::new(),
            name,
            ty,
            ty_tokens,
            field_ty: None,
            initial: None,
            constraints: Constraints::none(),
            keys: Vec::new(),
            choice_tokens: Vec::new(),
            description: None,
            readonly: false,
            readonly_key: None,
            incomplete: ty.is_none(),
        }
    }

    /// The variable's name, as the runtime knows it.
    pub(crate) fn name(&self) -> String {
        self.name.unraw().to_string()
    }

    /// The tokens of constraint `key`, if it was set.
    pub(crate) fn key(&self, key: ConstraintKey) -> Option<&KeyTokens> {
        self.keys.iter().find(|k| k.key == key)
    }

    fn spec(&self) -> VariableSpec {
        // Placeholders for parts already reported; `check` drops what they would cause.
        let ty = self.ty.unwrap_or(VarType::String);
        let initial = self
            .initial
            .as_ref()
            .map_or(Value::String(String::new()), |i| i.value.clone());
        let mut spec =
            VariableSpec::new(self.name(), ty, initial).with_constraints(self.constraints.clone());
        spec.description.clone_from(&self.description);
        spec.readonly = self.readonly;
        spec
    }
}

impl Step {
    /// The step's name, as the runtime knows it.
    pub(crate) fn name(&self) -> String {
        self.name.unraw().to_string()
    }

    fn spec(&self) -> StepSpec {
        let kind = match &self.kind {
            Some(StepKindIr::Python(module)) => StepKind::Python {
                module: module.value.clone(),
            },
            Some(StepKindIr::Native(ty)) => StepKind::Native {
                type_name: type_name(ty),
            },
            None => StepKind::Native {
                type_name: String::new(),
            },
        };
        let signature = self
            .signature
            .as_ref()
            .and_then(|s| s.parsed.clone())
            .unwrap_or(Signature {
                inputs: Vec::new(),
                outputs: Vec::new(),
            });
        StepSpec {
            name: self.name(),
            kind,
            signature,
            bindings: self.bindings.iter().map(BindingIr::spec).collect(),
            config: self.config.iter().map(ConfigEntryIr::spec).collect(),
            called: self.called,
        }
    }
}

impl ConfigEntryIr {
    fn spec(&self) -> ConfigEntry {
        // A placeholder for a value already reported; `check` drops what it would cause.
        let value = self.value.clone().unwrap_or(ConfigValue::Boolean(false));
        ConfigEntry::new(self.key.unraw().to_string(), value)
    }
}

impl BindingIr {
    fn spec(&self) -> Binding {
        let variable = self.variable.unraw().to_string();
        match &self.param {
            Some(param) => Binding::new(variable, param.unraw().to_string()),
            None => Binding::same_name(variable),
        }
    }

    /// The whole binding, `var` or `var as param`, for errors about the pair.
    pub(crate) fn tokens(&self) -> TokenStream {
        let variable = &self.variable;
        match &self.param {
            Some(param) => quote!(#variable as #param),
            None => variable.to_token_stream(),
        }
    }
}

/// The Rust field of a signature field: the name itself, raw if it is a keyword (`r#type`);
/// `None` for the names no field can have (`self`, `super`, `crate`, `Self`, `_`).
pub(crate) fn rust_field(name: &str, span: Span) -> Option<Ident> {
    if matches!(name, "self" | "Self" | "super" | "crate" | "_") {
        return None;
    }
    // `gen` is reserved since edition 2024, which syn's keyword list predates.
    Some(match syn::parse_str::<Ident>(name) {
        Ok(_) if name != "gen" => Ident::new(name, span),
        _ => Ident::new_raw(name, span),
    })
}

/// The enum generated for a `Literal` field of the program signature: the program name and
/// the field name in camel case (`Qa` and `label` give `QaLabel`).
pub(crate) fn literal_enum(program: &Ident, field: &str) -> Ident {
    format_ident!("{}{}", program.unraw(), camel_case(field))
}

/// The variant of a generated enum for a `Literal` value: its ASCII letters and digits in camel
/// case (`"very negative"` gives `VeryNegative`), prefixed with `V` when it starts with a digit,
/// `Empty` when it has none.
pub(crate) fn literal_variant(value: &str) -> String {
    let name = camel_case(value);
    match name.chars().next() {
        None => "Empty".to_owned(),
        Some(c) if c.is_ascii_digit() => format!("V{name}"),
        Some(_) => name,
    }
}

/// A name clash that keeps the enums of the program signature's `Literal` fields from being
/// generated; its message says what clashes and how to fix it.
pub(crate) struct LiteralClash(pub(crate) String);

/// The clashes among the names generated for the `Literal` fields of `signature`, the
/// signature of program `program`: two values of one field that make the same variant, and an
/// enum named like the program's input or output struct or like another field's enum.
pub(crate) fn literal_clashes(program: &Ident, signature: &Signature) -> Vec<LiteralClash> {
    let mut clashes = Vec::new();
    let structs = [
        (
            format!("{}Input", program.unraw()),
            "the program's input struct".to_owned(),
        ),
        (
            format!("{}Output", program.unraw()),
            "the program's output struct".to_owned(),
        ),
    ];
    let mut taken: Vec<(String, String)> = structs.into_iter().collect();
    for field in signature.inputs.iter().chain(&signature.outputs) {
        let Some(values) = field.ty.literal_values() else {
            continue;
        };
        let name = literal_enum(program, &field.name).to_string();
        for (i, value) in values.iter().enumerate() {
            let variant = literal_variant(value);
            if let Some(first) = values[..i].iter().find(|v| literal_variant(v) == variant) {
                clashes.push(LiteralClash(format!(
                    "values {first:?} and {value:?} of field `{}` would both be the variant `{variant}` of the generated enum `{name}`; use values that differ in their ASCII letters or digits",
                    field.name
                )));
            }
        }
        if let Some((_, what)) = taken.iter().find(|(taken, _)| *taken == name) {
            clashes.push(LiteralClash(format!(
                "the `Literal` field `{}` would generate the enum `{name}`, the name of {what}; rename the field",
                field.name
            )));
        } else {
            taken.push((name, format!("the enum of field `{}`", field.name)));
        }
    }
    clashes
}

/// The runs of ASCII letters and digits of `text`, each with its first letter upper-cased.
fn camel_case(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .flat_map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
        })
        .collect()
}

/// A Rust type as written, without the spaces of token printing: `my_mod::Classifier<T>`.
fn type_name(ty: &Type) -> String {
    ty.to_token_stream().to_string().replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn signature_fields_become_rust_fields() {
        let span = Span::call_site();
        assert_eq!(rust_field("question", span).unwrap(), "question");
        assert_eq!(rust_field("type", span).unwrap().to_string(), "r#type");
        assert!(rust_field("self", span).is_none());
    }

    #[test]
    fn literal_values_become_variants() {
        assert_eq!(literal_variant("positive"), "Positive");
        assert_eq!(literal_variant("very negative"), "VeryNegative");
        assert_eq!(literal_variant("n/a"), "NA");
        assert_eq!(literal_variant("HTTP_error"), "HTTPError");
        assert_eq!(literal_variant("1st"), "V1st");
        assert_eq!(literal_variant("?!"), "Empty");
        let qa = Ident::new("Qa", Span::call_site());
        assert_eq!(literal_enum(&qa, "risk_level"), "QaRiskLevel");
    }

    #[test]
    fn type_names_read_as_written() {
        assert_eq!(type_name(&parse_quote!(Classifier)), "Classifier");
        assert_eq!(
            type_name(&parse_quote!(crate::steps::Classifier<u8>)),
            "crate::steps::Classifier<u8>"
        );
    }
}
