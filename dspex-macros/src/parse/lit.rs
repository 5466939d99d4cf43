//! Reading the literal values of declarations (`0.7`, `-1`, `"concise"`, `[0.1, 0.2]`,
//! `["a", "b"]`) out of expressions, for both front ends.

use dspex_core::{Number, Value};
use quote::ToTokens;
use syn::{Expr, ExprLit, Lit, UnOp};

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
}
