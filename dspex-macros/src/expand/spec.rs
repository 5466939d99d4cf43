//! The checked `ProgramSpec` written out as an expression of literals, for the static that
//! `Program::spec()` returns. Nothing in it can fail at run time: the only call that could,
//! `__private::pattern`, compiles a regex that the check pass already compiled.

use dspex_core::program::{
    Binding, ConfigEntry, ConfigValue, ModuleRef, ProgramSpec, StepKind, StepSpec, ToolRef,
};
use dspex_core::{Constraints, Number, Signature, Value, VarType, VariableSpec};
use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, quote};

/// `ProgramSpec { .. }`
pub(super) fn program(spec: &ProgramSpec) -> TokenStream {
    let name = &spec.name;
    let signature = match &spec.signature {
        Some(sig) => {
            let sig = signature(sig);
            quote!(::core::option::Option::Some(#sig))
        }
        None => quote!(::core::option::Option::None),
    };
    let variables = vec_of(spec.variables.iter().map(variable));
    let steps = vec_of(spec.steps.iter().map(step));
    quote! {
        ::dspex::__private::ProgramSpec {
            name: ::std::string::String::from(#name),
            signature: #signature,
            variables: #variables,
            steps: #steps,
        }
    }
}

fn variable(var: &VariableSpec) -> TokenStream {
    let name = &var.name;
    let ty = var_type(var.ty);
    let initial = value(&var.initial);
    let mut tokens = quote!(::dspex::__private::VariableSpec::new(#name, #ty, #initial));
    if var.constraints != Constraints::none() {
        let constraints = constraints(&var.constraints);
        tokens.extend(quote!(.with_constraints(#constraints)));
    }
    if let Some(description) = &var.description {
        tokens.extend(quote!(.with_description(#description)));
    }
    if var.readonly {
        tokens.extend(quote!(.readonly()));
    }
    tokens
}

/// `VarType::Float`, ...
pub(super) fn var_type(ty: VarType) -> TokenStream {
    let variant = match ty {
        VarType::Float => quote!(Float),
        VarType::Integer => quote!(Integer),
        VarType::String => quote!(String),
        VarType::Boolean => quote!(Boolean),
        VarType::Choice => quote!(Choice),
        VarType::Module => quote!(Module),
        VarType::Embedding => quote!(Embedding),
    };
    quote!(::dspex::__private::VarType::#variant)
}

fn value(value: &Value) -> TokenStream {
    match value {
        Value::Float(x) => {
            let x = f64_lit(*x);
            quote!(::dspex::__private::Value::Float(#x))
        }
        Value::Integer(i) => {
            let i = i64_lit(*i);
            quote!(::dspex::__private::Value::Integer(#i))
        }
        Value::String(s) => {
            quote!(::dspex::__private::Value::String(::std::string::String::from(#s)))
        }
        Value::Boolean(b) => quote!(::dspex::__private::Value::Boolean(#b)),
        Value::Embedding(e) => {
            let items = vec_of(e.iter().map(|x| f32_lit(*x)));
            quote!(::dspex::__private::Value::Embedding(#items))
        }
    }
}

fn constraints(c: &Constraints) -> TokenStream {
    let some = |v: TokenStream| quote!(::core::option::Option::Some(#v));
    let mut fields = Vec::new();
    for (name, bound) in [("min", c.min), ("max", c.max)] {
        if let Some(bound) = bound {
            let name = syn::Ident::new(name, Span::call_site());
            let bound = some(number(bound));
            fields.push(quote!(#name: #bound));
        }
    }
    let counts = [
        ("min_length", c.min_length),
        ("max_length", c.max_length),
        ("dimensions", c.dimensions),
    ];
    for (name, count) in counts {
        if let Some(count) = count {
            let name = syn::Ident::new(name, Span::call_site());
            let count = some(Literal::u64_suffixed(count).into_token_stream());
            fields.push(quote!(#name: #count));
        }
    }
    if let Some(pattern) = &c.pattern {
        let source = pattern.as_str();
        let pattern = some(quote!(::dspex::__private::pattern(#source)));
        fields.push(quote!(pattern: #pattern));
    }
    if let Some(choices) = &c.choices {
        let choices = some(vec_of(
            choices
                .iter()
                .map(|c| quote!(::std::string::String::from(#c))),
        ));
        fields.push(quote!(choices: #choices));
    }
    quote! {
        ::dspex::__private::Constraints {
            #(#fields,)*
            ..::dspex::__private::Constraints::none()
        }
    }
}

fn number(n: Number) -> TokenStream {
    match n {
        Number::Int(i) => {
            let i = i64_lit(i);
            quote!(::dspex::__private::Number::Int(#i))
        }
        Number::Float(x) => {
            let x = f64_lit(x);
            quote!(::dspex::__private::Number::Float(#x))
        }
    }
}

/// `signature("question, k: int -> answer")`: the canonical form of a signature the macro
/// parsed, which reads back to the same signature.
fn signature(sig: &Signature) -> TokenStream {
    let text = sig.to_string();
    quote!(::dspex::__private::signature(#text))
}

fn step(step: &StepSpec) -> TokenStream {
    let name = &step.name;
    let kind = match &step.kind {
        StepKind::Native { type_name } => quote! {
            ::dspex::__private::StepKind::Native {
                type_name: ::std::string::String::from(#type_name),
            }
        },
        StepKind::Python { module } => {
            let module = module_ref(module);
            quote!(::dspex::__private::StepKind::Python { module: #module })
        }
    };
    let signature = signature(&step.signature);
    let called = step.called;
    let bindings = vec_of(step.bindings.iter().map(
        |Binding { variable, param }| quote!(::dspex::__private::Binding::new(#variable, #param)),
    ));
    let config = vec_of(step.config.iter().map(|ConfigEntry { key, value }| {
        let value = config_value(value);
        quote!(::dspex::__private::ConfigEntry::new(#key, #value))
    }));
    quote! {
        ::dspex::__private::StepSpec {
            name: ::std::string::String::from(#name),
            kind: #kind,
            signature: #signature,
            bindings: #bindings,
            config: #config,
            called: #called,
        }
    }
}

/// `ConfigValue::Integer(5i64)`, ...
fn config_value(value: &ConfigValue) -> TokenStream {
    let string = |s: &String| quote!(::std::string::String::from(#s));
    match value {
        ConfigValue::Integer(i) => {
            let i = i64_lit(*i);
            quote!(::dspex::__private::ConfigValue::Integer(#i))
        }
        ConfigValue::Float(x) => {
            let x = f64_lit(*x);
            quote!(::dspex::__private::ConfigValue::Float(#x))
        }
        ConfigValue::String(s) => {
            let s = string(s);
            quote!(::dspex::__private::ConfigValue::String(#s))
        }
        ConfigValue::Boolean(b) => quote!(::dspex::__private::ConfigValue::Boolean(#b)),
        ConfigValue::Strings(items) => {
            let items = vec_of(items.iter().map(string));
            quote!(::dspex::__private::ConfigValue::Strings(#items))
        }
        ConfigValue::Tools(tools) => {
            let tools = vec_of(tools.iter().map(|tool| match tool {
                ToolRef::Python(path) => {
                    let path = string(path);
                    quote!(::dspex::__private::ToolRef::Python(#path))
                }
                ToolRef::Rust(path) => {
                    let path = string(path);
                    quote!(::dspex::__private::ToolRef::Rust(#path))
                }
            }));
            quote!(::dspex::__private::ConfigValue::Tools(#tools))
        }
    }
}

fn module_ref(module: &ModuleRef) -> TokenStream {
    let (variant, text) = match module {
        ModuleRef::Builtin(name) => (quote!(Builtin), name),
        ModuleRef::Path(path) => (quote!(Path), path),
        ModuleRef::Variable(var) => (quote!(Variable), var),
    };
    quote!(::dspex::__private::ModuleRef::#variant(::std::string::String::from(#text)))
}

/// `Vec::from([a, b])` (or `Vec::new()`): unlike `vec![..]`, an expression that prettyplease
/// lays out, so that the expansion stays readable.
fn vec_of(items: impl Iterator<Item = TokenStream>) -> TokenStream {
    let items: Vec<TokenStream> = items.collect();
    if items.is_empty() {
        quote!(::std::vec::Vec::new())
    } else {
        quote!(::std::vec::Vec::from([#(#items),*]))
    }
}

/// A float literal as Rust prints it (`0.7f64`, `2.0f64`, `1e300f64`); the sign is a separate
/// token, as in source code.
fn f64_lit(x: f64) -> TokenStream {
    signed(x.is_sign_negative(), &format!("{:?}f64", x.abs()))
}

fn f32_lit(x: f32) -> TokenStream {
    signed(x.is_sign_negative(), &format!("{:?}f32", x.abs()))
}

fn signed(negative: bool, literal: &str) -> TokenStream {
    let lit = syn::LitFloat::new(literal, Span::call_site());
    if negative {
        quote!(-#lit)
    } else {
        quote!(#lit)
    }
}

fn i64_lit(i: i64) -> TokenStream {
    // `i64::MIN` has no positive counterpart: write its magnitude as a literal, then negate.
    let lit = syn::LitInt::new(&format!("{}i64", i.unsigned_abs()), Span::call_site());
    if i < 0 { quote!(-#lit) } else { quote!(#lit) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_keep_their_sign_and_type() {
        assert_eq!(f64_lit(-0.5).to_string(), "- 0.5f64");
        assert_eq!(f64_lit(2.0).to_string(), "2.0f64");
        assert_eq!(f64_lit(1e300).to_string(), "1e300f64");
        assert_eq!(i64_lit(i64::MIN).to_string(), "- 9223372036854775808i64");
        assert_eq!(f32_lit(0.1).to_string(), "0.1f32");
    }
}
