//! Reading the literal values of declarations (`0.7`, `-1`, `"concise"`, `[0.1, 0.2]`,
//! `["a", "b"]`, `[search_docs, "my_pkg.tools.search"]`) out of expressions, for both front
//! ends.

use dspex_core::dspy::TOOLS_KEY;
use dspex_core::program::{ConfigValue, ToolRef};
use dspex_core::{Number, Value};
use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Expr, ExprLit, ExprPath, Lit, UnOp};

use crate::model::Located;

/// What a literal was, for "found ..." in messages.
fn describe(expr: &Expr) -> &'static str {
    match strip(expr) {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Str(_) => "a string",
            Lit::Int(_) => "an integer",
            Lit::Float(_) => "a float",
            Lit::Bool(_) => "a boolean",
            _ => "another literal",
        },
        Expr::Unary(_) => "a negative number",
        Expr::Array(_) => "an array",
        _ => "an expression",
    }
}

/// Removes the invisible groups that `macro_rules!` wraps around `$e:expr`.
fn strip(expr: &Expr) -> &Expr {
    match expr {
        Expr::Group(g) => strip(&g.expr),
        e => e,
    }
}

/// A number literal, possibly negated: `Number::Int` for `3` or `-3`, `Number::Float` for
/// `0.5` or `-1e3`. `None` if `expr` is not a number literal.
fn number_lit(expr: &Expr) -> Option<syn::Result<Number>> {
    let (negative, lit) = match strip(expr) {
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => (true, strip(&u.expr)),
        e => (false, e),
    };
    let Expr::Lit(ExprLit { lit, .. }) = lit else {
        return None;
    };
    Some(match lit {
        Lit::Int(i) => i
            .base10_parse::<i128>()
            .and_then(|v| {
                i64::try_from(if negative { -v } else { v })
                    .map_err(|_| syn::Error::new_spanned(expr, "integer out of range for `i64`"))
            })
            .map(Number::Int),
        Lit::Float(f) => f
            .base10_parse::<f64>()
            .map(|v| Number::Float(if negative { -v } else { v })),
        _ => return None,
    })
}

/// An initial value: a number, a string, `true`/`false`, or an array of numbers (an
/// embedding). Its type is judged later, against the variable's.
pub(crate) fn value(expr: &Expr) -> syn::Result<Value> {
    if let Some(number) = number_lit(expr) {
        return number.map(|n| match n {
            Number::Int(i) => Value::Integer(i),
            Number::Float(f) => Value::Float(f),
        });
    }
    match strip(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(Value::String(s.value())),
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(Value::Boolean(b.value)),
        Expr::Array(array) => array
            .elems
            .iter()
            .map(|e| match number_lit(e) {
                // Embeddings are f32 by definition; the narrowing is the point.
                #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
                Some(n) => n.map(|n| match n {
                    Number::Int(i) => i as f32,
                    Number::Float(f) => f as f32,
                }),
                None => Err(syn::Error::new_spanned(
                    e,
                    format!("expected a number in an embedding, found {}", describe(e)),
                )),
            })
            .collect::<syn::Result<Vec<f32>>>()
            .map(Value::Embedding),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!(
                "expected a literal initial value (a number, a string, `true`, `false` or an array of numbers), found {}",
                describe(expr)
            ),
        )),
    }
}

/// A `min` or `max` bound.
pub(crate) fn number(expr: &Expr, key: &str) -> syn::Result<Number> {
    number_lit(expr).unwrap_or_else(|| {
        Err(syn::Error::new_spanned(
            expr,
            format!("expected a number for `{key}`, found {}", describe(expr)),
        ))
    })
}

/// A length or a dimension: a non-negative integer.
pub(crate) fn count(expr: &Expr, key: &str) -> syn::Result<u64> {
    match number_lit(expr) {
        Some(Ok(Number::Int(i))) => u64::try_from(i).map_err(|_| {
            syn::Error::new_spanned(
                expr,
                format!("expected a non-negative integer for `{key}`, found {i}"),
            )
        }),
        Some(Err(e)) => Err(e),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!(
                "expected a non-negative integer for `{key}`, found {}",
                describe(expr)
            ),
        )),
    }
}

/// A boolean literal, `true` or `false`.
pub(crate) fn boolean(expr: &Expr, key: &str) -> syn::Result<bool> {
    match strip(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!(
                "expected `true` or `false` for `{key}`, found {}",
                describe(expr)
            ),
        )),
    }
}

/// A string literal.
pub(crate) fn string(expr: &Expr, key: &str) -> syn::Result<String> {
    match strip(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.value()),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!(
                "expected a string literal for `{key}`, found {}",
                describe(expr)
            ),
        )),
    }
}

/// An array of string literals, `["a", "b"]`, each with its tokens.
pub(crate) fn strings(expr: &Expr, key: &str) -> syn::Result<Vec<Located<String>>> {
    let Expr::Array(array) = strip(expr) else {
        return Err(syn::Error::new_spanned(
            expr,
            format!(
                "expected an array of string literals for `{key}`, like `[\"a\", \"b\"]`, found {}",
                describe(expr)
            ),
        ));
    };
    array
        .elems
        .iter()
        .map(|e| {
            string(e, key).map(|value| Located {
                value,
                tokens: e.to_token_stream(),
            })
        })
        .collect()
}

/// A `with` value: a number, a string, `true`/`false`, or a list of string literals, which for
/// [`TOOLS_KEY`] may also hold paths of Rust tools. Returns the value and the tokens of each
/// list item. Whether the value suits the key is judged later, by the module's table.
pub(crate) fn config_value(expr: &Expr, key: &str) -> syn::Result<(ConfigValue, Vec<TokenStream>)> {
    if let Some(number) = number_lit(expr) {
        let value = match number? {
            Number::Int(i) => ConfigValue::Integer(i),
            Number::Float(f) => ConfigValue::Float(f),
        };
        return Ok((value, Vec::new()));
    }
    let value = match strip(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => ConfigValue::String(s.value()),
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => ConfigValue::Boolean(b.value),
        Expr::Array(array) => {
            let items = array
                .elems
                .iter()
                .map(|e| list_item(e, key))
                .collect::<syn::Result<Vec<ToolRef>>>()?;
            let tokens = array.elems.iter().map(ToTokens::to_token_stream).collect();
            return Ok((list(items, key), tokens));
        }
        _ => {
            return Err(syn::Error::new_spanned(
                expr,
                format!(
                    "expected a literal value for `{key}` (a number, a string, `true`, `false` or a list like `[\"a\", \"b\"]`), found {}",
                    describe(expr)
                ),
            ));
        }
    };
    Ok((value, Vec::new()))
}

/// An item of a `with` list: a string literal (`Python`) or a path (`Rust`, a tool).
fn list_item(expr: &Expr, key: &str) -> syn::Result<ToolRef> {
    match strip(expr) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(ToolRef::Python(s.value())),
        Expr::Path(ExprPath {
            qself: None, path, ..
        }) => Ok(ToolRef::Rust(
            path.to_token_stream().to_string().replace(' ', ""),
        )),
        e => Err(syn::Error::new_spanned(
            e,
            format!(
                "expected a string literal{} in the list of `{key}`, found {}",
                if key == TOOLS_KEY {
                    " or the path of a Rust tool"
                } else {
                    ""
                },
                describe(e)
            ),
        )),
    }
}

/// A list as a value: the tools of [`TOOLS_KEY`]; elsewhere strings, or tools when a Rust path
/// is among them (which only `tools` takes, as the check then says).
fn list(items: Vec<ToolRef>, key: &str) -> ConfigValue {
    let all_strings = items.iter().all(|i| matches!(i, ToolRef::Python(_)));
    if key == TOOLS_KEY || !all_strings {
        return ConfigValue::Tools(items);
    }
    ConfigValue::Strings(
        items
            .into_iter()
            .map(|i| match i {
                ToolRef::Python(s) | ToolRef::Rust(s) => s,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn values() {
        assert_eq!(value(&parse_quote!(0.7)).unwrap(), Value::Float(0.7));
        assert_eq!(value(&parse_quote!(-2)).unwrap(), Value::Integer(-2));
        assert_eq!(
            value(&parse_quote!(-9223372036854775808)).unwrap(),
            Value::Integer(i64::MIN)
        );
        assert_eq!(value(&parse_quote!("x")).unwrap(), Value::from("x"));
        assert_eq!(value(&parse_quote!(false)).unwrap(), Value::Boolean(false));
        assert_eq!(
            value(&parse_quote!([0.5, -1, 2e0])).unwrap(),
            Value::Embedding(vec![0.5, -1.0, 2.0])
        );
        assert_eq!(
            value(&parse_quote!(f(x))).unwrap_err().to_string(),
            "expected a literal initial value (a number, a string, `true`, `false` or an array of numbers), found an expression"
        );
        assert_eq!(
            value(&parse_quote!([0.5, "a"])).unwrap_err().to_string(),
            "expected a number in an embedding, found a string"
        );
        assert!(value(&parse_quote!(9223372036854775808)).is_err());
    }

    #[test]
    fn constraint_values() {
        assert_eq!(
            number(&parse_quote!(-0.5), "min").unwrap(),
            Number::Float(-0.5)
        );
        assert_eq!(
            number(&parse_quote!("1"), "min").unwrap_err().to_string(),
            "expected a number for `min`, found a string"
        );
        assert_eq!(count(&parse_quote!(40), "max_length").unwrap(), 40);
        assert_eq!(
            count(&parse_quote!(-1), "max_length")
                .unwrap_err()
                .to_string(),
            "expected a non-negative integer for `max_length`, found -1"
        );
        let choices = strings(&parse_quote!(["a", "b"]), "choices").unwrap();
        assert_eq!(choices[1].value, "b");
        assert!(strings(&parse_quote!("a"), "choices").is_err());
        assert!(string(&parse_quote!(1), "pattern").is_err());
    }

    #[test]
    fn config_values() {
        let value = |e: Expr, key: &str| config_value(&e, key).map(|(v, _)| v);
        assert_eq!(
            value(parse_quote!(5), "max_iters").unwrap(),
            ConfigValue::Integer(5)
        );
        assert_eq!(
            value(parse_quote!(-0.5), "x").unwrap(),
            ConfigValue::Float(-0.5)
        );
        assert_eq!(value(parse_quote!("local"), "x").unwrap(), "local".into());
        assert_eq!(value(parse_quote!(true), "x").unwrap(), true.into());
        assert_eq!(
            value(parse_quote!(["a", "b"]), "names").unwrap(),
            ["a", "b"].into()
        );
        let (tools, items) = config_value(
            &parse_quote!([search_docs, "my_pkg.tools.calc", crate::tools::web]),
            "tools",
        )
        .unwrap();
        assert_eq!(
            tools,
            ConfigValue::Tools(vec![
                ToolRef::Rust("search_docs".into()),
                ToolRef::Python("my_pkg.tools.calc".into()),
                ToolRef::Rust("crate::tools::web".into()),
            ])
        );
        assert_eq!(items.len(), 3);
        assert_eq!(
            value(parse_quote!(["a.b"]), "tools").unwrap(),
            ConfigValue::Tools(vec![ToolRef::Python("a.b".into())])
        );
        assert!(matches!(
            value(parse_quote!([a]), "names").unwrap(),
            ConfigValue::Tools(_)
        ));
        assert_eq!(
            value(parse_quote!(2 + 3), "max_iters")
                .unwrap_err()
                .to_string(),
            "expected a literal value for `max_iters` (a number, a string, `true`, `false` or a list like `[\"a\", \"b\"]`), found an expression"
        );
        assert_eq!(
            value(parse_quote!([1]), "tools").unwrap_err().to_string(),
            "expected a string literal or the path of a Rust tool in the list of `tools`, found an integer"
        );
    }
}
