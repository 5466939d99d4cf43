//! The `#[derive(Program)]` front end: a struct's `#[program]`, `#[variable]` and `#[step]`
//! attributes, read with `parse_nested_meta`, into the model. Variables and steps are fields,
//! in field order; a variable's type follows from its `Var<T>` field type.

use dspex_core::VarType;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::{
    Attribute, Data, DeriveInput, Expr, Field, GenericArgument, Ident, LitStr, PathArguments,
    PathSegment, Token, Type, token,
};

use super::{
    READONLY_KEY, config_entry, expected_keys, initial_value, is_variable_key, key_values,
    module_str, readonly_key, signature, variable_key,
};
use crate::ctxt::{Ctxt, Place};
use crate::model::{Form, Located, Program, SignatureLit, Step, StepKindIr, Variable};

/// The Rust types of the seven variable types, as `Var<T>` takes them.
const VAR_TYPES: [(&str, VarType); 7] = [
    ("f64", VarType::Float),
    ("i64", VarType::Integer),
    ("String", VarType::String),
    ("bool", VarType::Boolean),
    ("Choice", VarType::Choice),
    ("ModuleName", VarType::Module),
    ("Embedding", VarType::Embedding),
];

/// Reads a struct deriving `Program`. Returns `None` when the input cannot be a program at all
/// (not a struct with named fields, generic): there is then nothing to generate.
pub(crate) fn parse(input: &DeriveInput, cx: &Ctxt) -> Option<Program> {
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            syn::Fields::Named(fields) => fields,
            other => {
                cx.error(
                    Place::Header,
                    other,
                    "`#[derive(Program)]` needs a struct with named fields",
                );
                return None;
            }
        },
        Data::Enum(data) => {
            cx.error(
                Place::Header,
                data.enum_token,
                "`#[derive(Program)]` only supports structs with named fields, not enums",
            );
            return None;
        }
        Data::Union(data) => {
            cx.error(
                Place::Header,
                data.union_token,
                "`#[derive(Program)]` only supports structs with named fields, not unions",
            );
            return None;
        }
    };
    if !input.generics.params.is_empty() {
        cx.error(
            Place::Header,
            &input.generics,
            "`#[derive(Program)]` does not support generic parameters: a program's declaration is one static value",
        );
        return None;
    }
    misplaced(
        cx,
        Place::Header,
        &input.attrs,
        &["variable", "step"],
        "a field",
    );
    let mut program = Program {
        form: Form::Derive,
        attrs: Vec::new(),
        vis: input.vis.clone(),
        ident: input.ident.clone(),
        signature: program_attr(cx, &input.attrs),
        variables: Vec::new(),
        steps: Vec::new(),
        chain: input.ident.to_token_stream(),
        context_fields: Vec::new(),
        partial: false,
    };
    for (pos, field) in fields.named.iter().enumerate() {
        self::field(cx, &mut program, pos, field);
    }
    // A python step can hand out the context; so can a step that is either declared python or
    // has a `PythonModule` field, the other half being wrong (and reported on its own).
    let python_field =
        step_fields(fields).any(|f| last_segment(&f.ty).is_some_and(|s| s.ident == "PythonModule"));
    let has_context = !program.context_fields.is_empty()
        || !program.variables.is_empty()
        || program.requires_bridge()
        || python_field;
    if !has_context {
        cx.error(
            Place::Tail,
            &input.ident,
            format!(
                "`{}` has no field to keep the context in; add a field of type `dspex::Context`, a `#[variable(...)]` or a python step",
                input.ident
            ),
        );
    }
    Some(program)
}

/// The fields marked `#[step]`, in order.
fn step_fields(fields: &syn::FieldsNamed) -> impl Iterator<Item = &Field> {
    fields
        .named
        .iter()
        .filter(|f| f.attrs.iter().any(|a| a.path().is_ident("step")))
}

/// Reports attributes that belong elsewhere (`#[variable]` on the struct, `#[program]` on a
/// field).
fn misplaced(cx: &Ctxt, place: Place, attrs: &[Attribute], names: &[&str], home: &str) {
    for attr in attrs {
        if let Some(name) = names.iter().find(|n| attr.path().is_ident(n)) {
            cx.error(place, attr, format!("`#[{name}]` belongs on {home}"));
        }
    }
}

/// `#[program(signature = "...")]`
fn program_attr(cx: &Ctxt, attrs: &[Attribute]) -> Option<SignatureLit> {
    let mut found: Option<SignatureLit> = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("program")) {
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("signature") {
                let lit: LitStr = meta.value()?.parse()?;
                if found.is_some() {
                    cx.error(Place::Header, &lit, "duplicate key `signature`");
                } else {
                    found = Some(signature(cx, Place::Header, lit));
                }
                return Ok(());
            }
            cx.error(
                Place::Header,
                &meta.path,
                format!(
                    "unknown `#[program]` key `{}`; expected `signature`",
                    meta.path.to_token_stream()
                ),
            );
            skip_value(&meta)
        });
        if let Err(e) = parsed {
            cx.syn_error(Place::Header, e);
        }
    }
    found
}

/// Sorts one field into a variable, a step or a context field.
fn field(cx: &Ctxt, program: &mut Program, pos: usize, field: &Field) {
    let place = Place::Item(pos);
    let Some(ident) = field.ident.clone() else {
        return;
    };
    misplaced(cx, place, &field.attrs, &["program"], "the struct");
    let mut attrs = field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("variable") || a.path().is_ident("step"));
    let Some(attr) = attrs.next() else {
        if last_segment(&field.ty).is_some_and(|s| s.ident == "Context" && s.arguments.is_none()) {
            program.context_fields.push(ident);
        } else {
            cx.error(
                place,
                &ident,
                format!(
                    "field `{ident}` is not part of the program; mark it `#[variable(...)]` (a `Var<T>`) or `#[step(...)]`, or give it the type `Context`"
                ),
            );
        }
        return;
    };
    for extra in attrs {
        cx.error(
            place,
            extra,
            "a field is one variable or one step: only one `#[variable]` or `#[step]` attribute",
        );
    }
    if attr.path().is_ident("variable") {
        program
            .variables
            .push(variable(cx, pos, ident, field, attr));
    } else {
        program.steps.push(step(cx, pos, ident, field, attr));
    }
}

/// A `#[variable(initial = .., key = .., ...)]` field.
fn variable(cx: &Ctxt, pos: usize, ident: Ident, field: &Field, attr: &Attribute) -> Variable {
    let place = Place::Item(pos);
    let (ty, ty_tokens) = match var_type(&field.ty) {
        Ok(ty) => (Some(ty), field.ty.to_token_stream()),
        Err((at, message)) => {
            cx.error(place, &at, message);
            (None, at)
        }
    };
    let mut var = Variable::new(pos, ident, ty, ty_tokens);
    var.field_ty = Some(field.ty.clone());
    var.docs = field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .cloned()
        .collect();
    let parsed = attr.parse_nested_meta(|meta| {
        let key = meta.path.get_ident().cloned();
        let name = key.as_ref().map(|k| k.unraw().to_string());
        let (Some(key), Some(name)) = (key, name) else {
            return Err(meta.error("expected a key like `initial` or `min`"));
        };
        if name == "initial" {
            let value: Expr = meta.value()?.parse()?;
            if var.initial.is_some() {
                cx.error(place, &key, "duplicate key `initial`");
                return Ok(());
            }
            match initial_value(&value) {
                Ok(v) => {
                    var.initial = Some(Located {
                        value: v,
                        tokens: value.to_token_stream(),
                    });
                }
                Err(e) => {
                    cx.syn_error(place, e);
                    var.incomplete = true;
                }
            }
        } else if name == READONLY_KEY && !meta.input.peek(Token![=]) {
            // The bare flag: `#[variable(initial = 0.7, readonly)]`.
            readonly_key(cx, &mut var, &key, true);
        } else if is_variable_key(&name) {
            let value: Expr = meta.value()?.parse()?;
            variable_key(cx, &mut var, &key, &value);
        } else {
            cx.error(
                place,
                &key,
                format!(
                    "unknown `#[variable]` key `{name}`{}",
                    expected_keys(var.ty, &["initial"])
                ),
            );
            skip_value(&meta)?;
        }
        Ok(())
    });
    match parsed {
        Err(e) => {
            cx.syn_error(place, e);
            var.incomplete = true;
        }
        Ok(()) if var.initial.is_none() && !var.incomplete => {
            cx.error(
                place,
                attr,
                format!(
                    "missing `initial` for variable `{}`; add `initial = ...` to `#[variable(...)]`",
                    var.name()
                ),
            );
            var.incomplete = true;
        }
        Ok(()) => {}
    }
    var
}

/// The variable type of a `Var<T>` field type, or where and why it is not one.
fn var_type(ty: &Type) -> Result<VarType, (proc_macro2::TokenStream, String)> {
    let expected = || {
        let list: Vec<String> = VAR_TYPES.iter().map(|(t, _)| format!("`{t}`")).collect();
        format!("expected `Var<T>` with `T` one of {}", list.join(", "))
    };
    let not_var = || {
        (
            ty.to_token_stream(),
            format!("a `#[variable]` field must be a `Var<T>`; {}", expected()),
        )
    };
    let segment = last_segment(ty).ok_or_else(not_var)?;
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return Err(not_var());
    };
    let (true, Some(GenericArgument::Type(inner))) = (
        segment.ident == "Var" && args.args.len() == 1,
        args.args.first(),
    ) else {
        return Err(not_var());
    };
    let name = last_segment(inner).map(|s| s.ident.to_string());
    match VAR_TYPES.iter().find(|(t, _)| Some(*t) == name.as_deref()) {
        Some((_, var_type)) => Ok(*var_type),
        None if name.as_deref() == Some("Module") => Err((
            inner.to_token_stream(),
            "`Module` is the trait of native steps; the value of a module variable is a `ModuleName`: use `Var<ModuleName>`".to_owned(),
        )),
        None => Err((
            inner.to_token_stream(),
            format!(
                "unsupported variable type `{}`; {}",
                inner.to_token_stream().to_string().replace(' ', ""),
                expected()
            ),
        )),
    }
}

/// A `#[step(native | python = "..", signature = "..", bind(..), with(..), called)]` field.
fn step(cx: &Ctxt, pos: usize, name: Ident, field: &Field, attr: &Attribute) -> Step {
    let place = Place::Item(pos);
    let mut native: Option<Ident> = None;
    let mut python: Option<LitStr> = None;
    let mut sig: Option<LitStr> = None;
    let mut bindings = Vec::new();
    let mut with = None;
    let mut config = Vec::new();
    let mut called: Option<Ident> = None;
    let parsed = attr.parse_nested_meta(|meta| {
        let Some(key) = meta.path.get_ident().cloned() else {
            return Err(meta.error("expected a key like `native` or `signature`"));
        };
        let duplicate = match key.to_string().as_str() {
            "native" => native.replace(key.clone()).is_some(),
            "called" => called.replace(key.clone()).is_some(),
            "python" => python.replace(meta.value()?.parse()?).is_some(),
            "signature" => sig.replace(meta.value()?.parse()?).is_some(),
            "bind" => {
                let content;
                syn::parenthesized!(content in meta.input);
                bindings.extend(Punctuated::<_, Token![,]>::parse_terminated(&content)?);
                false
            }
            "with" => {
                with.get_or_insert_with(|| key.to_token_stream());
                let content;
                syn::parenthesized!(content in meta.input);
                key_values::<Token![=]>(&content, |key, value| {
                    config.push(config_entry(cx, place, key, &value));
                })?;
                false
            }
            _ => {
                cx.error(
                    place,
                    &key,
                    format!(
                        "unknown `#[step]` key `{key}`; expected one of `native`, `python`, `signature`, `bind`, `with`, `called`"
                    ),
                );
                skip_value(&meta)?;
                false
            }
        };
        if duplicate {
            cx.error(place, &key, format!("duplicate key `{key}`"));
        }
        Ok(())
    });
    let complete = match parsed {
        Ok(()) => true,
        Err(e) => {
            cx.syn_error(place, e);
            false
        }
    };
    let is_python_module = last_segment(&field.ty).is_some_and(|s| s.ident == "PythonModule");
    let kind = match (native, python) {
        (Some(_), Some(lit)) => {
            cx.error(
                place,
                &lit,
                "a step is either `native` or `python = \"...\"`, not both",
            );
            None
        }
        (Some(native), None) => {
            if is_python_module {
                cx.error(
                    place,
                    &native,
                    "a native step's field has the Rust type of its module; a `PythonModule` field is a python step: use `python = \"...\"`",
                );
            }
            Some(StepKindIr::Native(field.ty.clone()))
        }
        (None, Some(lit)) => {
            if !is_python_module {
                cx.error(
                    place,
                    &field.ty,
                    "a python step's field must be a `PythonModule`",
                );
            }
            Some(StepKindIr::Python(module_str(&lit)))
        }
        (None, None) => {
            if complete {
                cx.error(
                    place,
                    attr,
                    format!("step `{name}` needs `native` or `python = \"...\"` in `#[step(...)]`"),
                );
            }
            None
        }
    };
    if sig.is_none() && complete {
        cx.error(
            place,
            attr,
            format!(
                "missing `signature` for step `{name}`; add `signature = \"inputs -> outputs\"` to `#[step(...)]`"
            ),
        );
    }
    Step {
        pos,
        name,
        kind,
        signature: sig.map(|lit| signature(cx, place, lit)),
        bindings,
        with,
        config,
        called: called.is_some(),
    }
}

/// Consumes the value of an unknown key (`= value` or `(...)`), so that parsing goes on to the
/// next key.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<proc_macro2::TokenStream>()?;
    }
    Ok(())
}

/// The last path segment of a type (`Var<f64>` of `dspex::Var<f64>`).
fn last_segment(ty: &Type) -> Option<&PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn var_types_follow_the_last_segment() {
        assert_eq!(var_type(&parse_quote!(Var<f64>)).ok(), Some(VarType::Float));
        assert_eq!(
            var_type(&parse_quote!(dspex::Var<dspex::ModuleName>)).ok(),
            Some(VarType::Module)
        );
        let (_, message) = var_type(&parse_quote!(Var<u32>)).unwrap_err();
        assert_eq!(
            message,
            "unsupported variable type `u32`; expected `Var<T>` with `T` one of `f64`, `i64`, `String`, `bool`, `Choice`, `ModuleName`, `Embedding`"
        );
        assert!(
            var_type(&parse_quote!(f64))
                .unwrap_err()
                .1
                .starts_with("a `#[variable]` field")
        );
    }
}
