//! The `dspex_program!` front end: the syntax documented on `dspex::dspex_program!`, into the
//! model.
//!
//! ```text
//! [attrs] [vis] program Name [: "signature"] {
//!     variables { name: type = initial [{ key: value, ... }], ... }
//!     chain {
//!         name: [called] native RustType("signature") [{ var, var as param, ... }],
//!         name: [called] python DspyModule | "pkg.mod.Class" | @var ("signature") [{ ... }]
//!             [with { key: literal, ... }],
//!     }
//! }
//! ```
//!
//! Broken token structure stops the parse (a syn error); everything else, from an unknown type
//! to a value of the wrong kind, is reported to the [`Ctxt`] and the parse goes on.

use dspex_core::VarType;
use dspex_core::program::ModuleRef;
use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, LitStr, Token, Type, TypePath, Visibility, braced, token};

use super::{
    comma_separated, config_entry, expected_keys, initial_value, is_variable_key, key_values,
    module_str, signature, variable_key,
};
use crate::ctxt::{Ctxt, Place};
use crate::model::{Form, Located, Program, Step, StepKindIr, Variable};

mod kw {
    syn::custom_keyword!(program);
    syn::custom_keyword!(variables);
    syn::custom_keyword!(chain);
    syn::custom_keyword!(native);
    syn::custom_keyword!(python);
    syn::custom_keyword!(with);
    syn::custom_keyword!(called);
}

/// Parses the input of `dspex_program!`. Returns `None` only if not even the header
/// (`program Name`) could be read; a program whose body failed to parse comes back `partial`.
pub(crate) fn parse(input: TokenStream, cx: &Ctxt) -> Option<Program> {
    let mut program = None;
    let parser = |stream: ParseStream<'_>| parse_program(stream, cx, &mut program);
    if let Err(e) = parser.parse2(input) {
        cx.syn_error(Place::Tail, e);
    }
    program
}

fn parse_program(input: ParseStream<'_>, cx: &Ctxt, out: &mut Option<Program>) -> syn::Result<()> {
    let attrs = input.call(Attribute::parse_outer)?;
    let vis: Visibility = input.parse()?;
    input.parse::<kw::program>()?;
    let ident: Ident = input.parse()?;
    let signature = if input.peek(Token![:]) {
        input.parse::<Token![:]>()?;
        Some(signature(cx, Place::Header, input.parse()?))
    } else {
        None
    };
    let body;
    braced!(body in input);
    let program = out.insert(Program {
        form: Form::Macro,
        attrs,
        vis,
        chain: ident.to_token_stream(),
        ident,
        signature,
        variables: Vec::new(),
        steps: Vec::new(),
        context_fields: Vec::new(),
        partial: true,
    });
    let (mut variables_seen, mut chain_seen) = (false, false);
    while !body.is_empty() {
        let lookahead = body.lookahead1();
        let content;
        if lookahead.peek(kw::variables) {
            let keyword: kw::variables = body.parse()?;
            braced!(content in body);
            duplicate_section(cx, &mut variables_seen, keyword);
            comma_separated(&content, |input| {
                let pos = program.variables.len() + program.steps.len();
                program.variables.push(variable(input, cx, pos)?);
                Ok(())
            })?;
        } else if lookahead.peek(kw::chain) {
            let keyword: kw::chain = body.parse()?;
            braced!(content in body);
            duplicate_section(cx, &mut chain_seen, keyword);
            program.chain = keyword.to_token_stream();
            comma_separated(&content, |input| {
                let pos = program.variables.len() + program.steps.len();
                program.steps.push(step(input, cx, pos)?);
                Ok(())
            })?;
        } else {
            return Err(lookahead.error());
        }
    }
    if !input.is_empty() {
        return Err(input
            .error("unexpected tokens after the program; `dspex_program!` declares one program"));
    }
    program.partial = false;
    Ok(())
}

fn duplicate_section(cx: &Ctxt, seen: &mut bool, keyword: impl ToTokens) {
    if *seen {
        let name = keyword.to_token_stream().to_string();
        cx.error(
            Place::Header,
            keyword,
            format!("duplicate `{name}` section; declare all of them in one `{name} {{ ... }}`"),
        );
    }
    *seen = true;
}

/// Doc comments before a variable or a step; any other attribute is an error.
fn docs(input: ParseStream<'_>, cx: &Ctxt, place: Place) -> syn::Result<Vec<Attribute>> {
    let attrs = input.call(Attribute::parse_outer)?;
    Ok(attrs
        .into_iter()
        .filter(|attr| {
            let doc = attr.path().is_ident("doc");
            if !doc {
                cx.error(place, attr, "only doc comments are allowed here");
            }
            doc
        })
        .collect())
}

/// `name: type = initial [{ key: value, ... }]`
fn variable(input: ParseStream<'_>, cx: &Ctxt, pos: usize) -> syn::Result<Variable> {
    let place = Place::Item(pos);
    let docs = docs(input, cx, place)?;
    let name: Ident = input.parse()?;
    input.parse::<Token![:]>()?;
    let ty_ident: Ident = input.parse()?;
    let ty = match ty_ident.unraw().to_string().parse::<VarType>() {
        Ok(ty) => Some(ty),
        Err(e) => {
            cx.error(place, &ty_ident, e);
            None
        }
    };
    let mut var = Variable::new(pos, name, ty, ty_ident.to_token_stream());
    var.docs = docs;
    input.parse::<Token![=]>()?;
    // Without eager braces, so that `= 0.7 { min: 0.0 }` stops before the constraints.
    let initial = Expr::parse_without_eager_brace(input)?;
    match initial_value(&initial) {
        Ok(value) => {
            var.initial = Some(Located {
                value,
                tokens: initial.to_token_stream(),
            });
        }
        Err(e) => {
            cx.syn_error(place, e);
            var.incomplete = true;
        }
    }
    if input.peek(token::Brace) {
        let content;
        braced!(content in input);
        key_values::<Token![:]>(&content, |key, value| {
            if is_variable_key(&key.unraw().to_string()) {
                variable_key(cx, &mut var, &key, &value);
            } else {
                cx.error(
                    place,
                    &key,
                    format!("unknown constraint `{key}`{}", expected_keys(var.ty, &[])),
                );
            }
        })?;
    }
    Ok(var)
}

/// `name: [called] native Type("sig") [{ bindings }] [with { config }]` or
/// `name: [called] python Module("sig") [{ bindings }] [with { config }]`
fn step(input: ParseStream<'_>, cx: &Ctxt, pos: usize) -> syn::Result<Step> {
    let place = Place::Item(pos);
    docs(input, cx, place)?;
    let name: Ident = input.parse()?;
    input.parse::<Token![:]>()?;
    let called = input.parse::<Option<kw::called>>()?.is_some();
    let lookahead = input.lookahead1();
    let kind = if lookahead.peek(kw::native) {
        input.parse::<kw::native>()?;
        StepKindIr::Native(Type::Path(TypePath {
            qself: None,
            path: input.parse()?,
        }))
    } else if lookahead.peek(kw::python) {
        input.parse::<kw::python>()?;
        StepKindIr::Python(python_module(input)?)
    } else {
        return Err(lookahead.error());
    };
    if !input.peek(token::Paren) {
        return Err(input
            .error("expected the step signature in parentheses, like `(\"question -> answer\")`"));
    }
    let content;
    syn::parenthesized!(content in input);
    let lit: LitStr = content.parse()?;
    if !content.is_empty() {
        return Err(content.error("expected one signature string"));
    }
    let signature = signature(cx, place, lit);
    let bindings = if input.peek(token::Brace) {
        let content;
        braced!(content in input);
        Punctuated::<_, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect()
    } else {
        Vec::new()
    };
    let mut config = Vec::new();
    let with = if input.peek(kw::with) {
        let with: kw::with = input.parse()?;
        let content;
        braced!(content in input);
        key_values::<Token![:]>(&content, |key, value| {
            config.push(config_entry(cx, place, key, &value));
        })?;
        Some(with.to_token_stream())
    } else {
        None
    };
    Ok(Step {
        pos,
        name,
        kind: Some(kind),
        signature: Some(signature),
        bindings,
        with,
        config,
        called,
    })
}

/// `ChainOfThought`, `"my_pkg.mod.Class"` or `@var`.
fn python_module(input: ParseStream<'_>) -> syn::Result<Located<ModuleRef>> {
    let lookahead = input.lookahead1();
    if lookahead.peek(Token![@]) {
        let at: Token![@] = input.parse()?;
        let var: Ident = input.parse()?;
        Ok(Located {
            value: ModuleRef::Variable(var.unraw().to_string()),
            tokens: quote!(#at #var),
        })
    } else if lookahead.peek(LitStr) {
        Ok(module_str(&input.parse()?))
    } else if lookahead.peek(Ident) {
        let name: Ident = input.parse()?;
        Ok(Located {
            value: ModuleRef::Builtin(name.unraw().to_string()),
            tokens: name.to_token_stream(),
        })
    } else {
        Err(lookahead.error())
    }
}
