//! The two front ends, `dspex_program!` syntax ([`dsl`]) and `#[derive(Program)]` attributes
//! ([`derive`]), and what they share: reading a variable's constraints, a signature, a python
//! module reference, bindings and `with` configuration into the model.

pub(crate) mod derive;
pub(crate) mod dsl;
mod lit;

use dspex_core::program::ModuleRef;
use dspex_core::{ConstraintKey, Pattern, Signature, VarType, declaration_keys_list};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, LitStr, Token};

use crate::ctxt::{Ctxt, Place};
use crate::model::{BindingIr, ConfigEntryIr, KeyTokens, Located, SignatureLit, Variable};

pub(crate) use lit::value as initial_value;

/// The key that makes a variable read-only.
pub(crate) const READONLY_KEY: &str = "readonly";

/// Whether `name` is a key of a variable declaration: a constraint key, `description` or
/// `readonly`.
pub(crate) fn is_variable_key(name: &str) -> bool {
    name == "description" || name == READONLY_KEY || name.parse::<ConstraintKey>().is_ok()
}

/// Reads one `key: value` (or `key = value`) of a variable declaration, for a `key` that
/// [`is_variable_key`]: a constraint or `description`.
pub(crate) fn variable_key(cx: &Ctxt, var: &mut Variable, key: &Ident, value: &Expr) {
    let place = Place::Item(var.pos);
    let name = key.unraw().to_string();
    if name == READONLY_KEY {
        match lit::boolean(value, READONLY_KEY) {
            Ok(readonly) => readonly_key(cx, var, key, readonly),
            Err(e) => cx.syn_error(place, e),
        }
        return;
    }
    let seen = match name.parse::<ConstraintKey>() {
        Ok(kind) => var.key(kind).is_some(),
        Err(()) => var.description.is_some(),
    };
    if seen {
        cx.error(place, key, format!("duplicate key `{name}`"));
    } else if let Err(e) = read_key(var, key, &name, value) {
        cx.syn_error(place, e);
        var.incomplete = true;
    }
}

/// Records `readonly` (a `readonly: true` / `readonly = false`, or the derive's bare
/// `readonly` flag), reporting a second one.
pub(crate) fn readonly_key(cx: &Ctxt, var: &mut Variable, key: &Ident, readonly: bool) {
    if var.readonly_key.replace(key.clone()).is_some() {
        cx.error(
            Place::Item(var.pos),
            key,
            format!("duplicate key `{READONLY_KEY}`"),
        );
    }
    var.readonly = readonly;
}

fn read_key(var: &mut Variable, key: &Ident, name: &str, value: &Expr) -> syn::Result<()> {
    let Ok(kind) = name.parse::<ConstraintKey>() else {
        var.description = Some(lit::string(value, name)?);
        return Ok(());
    };
    let c = &mut var.constraints;
    match kind {
        ConstraintKey::Min => c.min = Some(lit::number(value, name)?),
        ConstraintKey::Max => c.max = Some(lit::number(value, name)?),
        ConstraintKey::MinLength => c.min_length = Some(lit::count(value, name)?),
        ConstraintKey::MaxLength => c.max_length = Some(lit::count(value, name)?),
        ConstraintKey::Dimensions => c.dimensions = Some(lit::count(value, name)?),
        ConstraintKey::Pattern => {
            let source = lit::string(value, name)?;
            let pattern = Pattern::new(&source).map_err(|e| syn::Error::new_spanned(value, e))?;
            c.pattern = Some(pattern);
        }
        ConstraintKey::Choices => {
            let choices = lit::strings(value, name)?;
            var.choice_tokens = choices.iter().map(|c| c.tokens.clone()).collect();
            c.choices = Some(choices.into_iter().map(|c| c.value).collect());
        }
    }
    var.keys.push(KeyTokens {
        key: kind,
        ident: key.clone(),
        value: value.to_token_stream(),
    });
    Ok(())
}

/// The keys a declaration of type `ty` accepts, after `extra` ones, to end an "unknown key"
/// message: `` for a float variable; expected one of `min`, `max`, `description` ``.
pub(crate) fn expected_keys(ty: Option<VarType>, extra: &[&str]) -> String {
    let extra = extra.iter().map(|k| format!("`{k}`, "));
    match ty {
        Some(ty) => format!(
            " for {} {ty} variable; expected one of {}{}",
            ty.article(),
            extra.collect::<String>(),
            declaration_keys_list(ty)
        ),
        None => {
            let all: Vec<String> = ConstraintKey::ALL
                .iter()
                .map(|k| format!("`{k}`"))
                .chain(["`description`".to_owned(), "`readonly`".to_owned()])
                .collect();
            format!(
                "; expected one of {}{}",
                extra.collect::<String>(),
                all.join(", ")
            )
        }
    }
}

/// Parses a signature literal, reporting a malformed one on the literal.
pub(crate) fn signature(cx: &Ctxt, place: Place, lit: LitStr) -> SignatureLit {
    let parsed = match Signature::parse(&lit.value()) {
        Ok(sig) => Some(sig),
        Err(e) => {
            cx.error(place, &lit, e);
            None
        }
    };
    SignatureLit { lit, parsed }
}

/// A python module written as a string: a DSPy name, a dotted path, or `"@var"`.
pub(crate) fn module_str(lit: &LitStr) -> Located<ModuleRef> {
    Located {
        value: ModuleRef::parse(&lit.value()),
        tokens: lit.to_token_stream(),
    }
}

/// Reads one entry of a step's `with` configuration, `key: value` or `key = value`; a value
/// that is not a literal is reported on it.
pub(crate) fn config_entry(cx: &Ctxt, place: Place, key: Ident, expr: &Expr) -> ConfigEntryIr {
    let (value, items) = match lit::config_value(expr, &key.unraw().to_string()) {
        Ok((value, items)) => (Some(value), items),
        Err(e) => {
            cx.syn_error(place, e);
            (None, Vec::new())
        }
    };
    ConfigEntryIr {
        key,
        value,
        tokens: expr.to_token_stream(),
        items,
    }
}

/// `var` or `var as param`, in `{ ... }` after a step and in `bind(...)`.
impl Parse for BindingIr {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let variable = input.parse()?;
        let param = if input.peek(Token![as]) {
            input.parse::<Token![as]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(BindingIr { variable, param })
    }
}

/// Parses `item, item, ...` with an optional trailing comma until `input` is empty, calling
/// `item` for each (syn's `parse_terminated` only takes function pointers).
pub(crate) fn comma_separated(
    input: ParseStream<'_>,
    mut item: impl FnMut(ParseStream<'_>) -> syn::Result<()>,
) -> syn::Result<()> {
    while !input.is_empty() {
        item(input)?;
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}

/// Parses `key: value, ...` (with `S` = `Token![:]`) or `key = value, ...` (`Token![=]`), with
/// an optional trailing comma, until `input` is empty, calling `entry` for each. A key may be
/// a keyword (`type: ..`).
pub(crate) fn key_values<S: Parse>(
    input: ParseStream<'_>,
    mut entry: impl FnMut(Ident, Expr),
) -> syn::Result<()> {
    comma_separated(input, |input| {
        let key = input.call(Ident::parse_any)?;
        input.parse::<S>()?;
        let value: Expr = input.parse()?;
        entry(key, value);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_keys_lists_what_the_type_accepts() {
        assert_eq!(
            expected_keys(Some(VarType::Float), &[]),
            " for a float variable; expected one of `min`, `max`, `description`, `readonly`"
        );
        assert_eq!(
            expected_keys(Some(VarType::Boolean), &["initial"]),
            " for a boolean variable; expected one of `initial`, `description`, `readonly`"
        );
        assert!(expected_keys(None, &[]).ends_with("`dimensions`, `description`, `readonly`"));
    }
}
