//! `#[dspex::tool]`: a Rust `fn` or `async fn` made a tool of Python agents. The function is
//! kept as written; a type of the same name (types and functions live apart) implements
//! `dspex::tools::Tool` with the tool's declaration (name, doc comment, argument types,
//! variables, timeout) and the code that runs one call: the agent's JSON arguments checked and
//! converted, the variables read for the run, the function called (a synchronous one on the
//! blocking threads, or in the call's own task when marked `inline`) and its `Result` turned
//! into JSON or an error message.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, Ident, ItemFn, Lit, Meta, Pat, ReturnType, Token, Type};

use dspex_core::did_you_mean;
use dspex_core::dspy::{DEFAULT_TOOL_TIMEOUT_MS, MAX_TOOL_TIMEOUT_MS};

/// The keys `#[dspex::tool(..)]` takes.
const KEYS: &[&str] = &["variables", "timeout_ms", "inline"];

/// What `#[dspex::tool(..)]` says.
struct Options {
    variables: Vec<Ident>,
    timeout_ms: u64,
    /// `inline`: a short synchronous tool, run in the call's own task.
    inline: Option<Span>,
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors: Vec<syn::Error> = Vec::new();
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let e = syn::Error::new(
                first_span(&item),
                "`#[dspex::tool]` goes on a `fn` or an `async fn`",
            );
            let error = e.to_compile_error();
            return quote!(#item #error);
        }
    };
    if !cfg!(feature = "python") {
        errors.push(syn::Error::new(
            Span::call_site(),
            format!(
                "`#[dspex::tool]` makes `{}` a tool of Python agents, which needs dspex's `python` feature; enable it in Cargo.toml (`dspex = {{ version = \"0.1\", features = [\"python\"] }}`, a default feature)",
                function.sig.ident
            ),
        ));
    }
    let options = options(attr, &mut errors);
    let generated = tool(&function, &options, &mut errors);
    if errors.is_empty() {
        quote!(#function #generated)
    } else {
        let errors = errors.iter().map(syn::Error::to_compile_error);
        quote!(#function #(#errors)*)
    }
}

fn first_span(tokens: &TokenStream) -> Span {
    tokens
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span())
}

fn options(attr: TokenStream, errors: &mut Vec<syn::Error>) -> Options {
    let mut options = Options {
        variables: Vec::new(),
        timeout_ms: DEFAULT_TOOL_TIMEOUT_MS,
        inline: None,
    };
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr) {
        Ok(metas) => metas,
        Err(e) => {
            errors.push(e);
            return options;
        }
    };
    for meta in metas {
        let key = meta.path().get_ident().map(ToString::to_string);
        match (key.as_deref(), &meta) {
            (Some("variables"), Meta::List(list)) => {
                match list.parse_args_with(Punctuated::<Ident, Token![,]>::parse_terminated) {
                    Ok(names) => options.variables.extend(names),
                    Err(e) => errors.push(syn::Error::new(
                        e.span(),
                        "expected variable names: `variables(top_k, index_name)`",
                    )),
                }
            }
            (Some("timeout_ms"), Meta::NameValue(nv)) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Int(int), ..
                }) => match int.base10_parse::<u64>() {
                    Ok(ms) if (1..=MAX_TOOL_TIMEOUT_MS).contains(&ms) => options.timeout_ms = ms,
                    _ => errors.push(syn::Error::new_spanned(
                        int,
                        format!(
                            "`timeout_ms` must be from 1 to {MAX_TOOL_TIMEOUT_MS} (MAX_TOOL_TIMEOUT_MS)"
                        ),
                    )),
                },
                other => errors.push(syn::Error::new_spanned(
                    other,
                    "expected a number of milliseconds: `timeout_ms = 500`",
                )),
            },
            (Some("inline"), Meta::Path(path)) => options.inline = Some(path.span()),
            (Some(k @ ("variables" | "timeout_ms" | "inline")), _) => {
                errors.push(syn::Error::new_spanned(
                    &meta,
                    match k {
                        "variables" => "expected `variables(top_k, index_name)`",
                        "timeout_ms" => "expected `timeout_ms = 500`",
                        _ => "expected `inline`, with no value",
                    },
                ));
            }
            _ => {
                let written = meta
                    .path()
                    .get_ident()
                    .map_or_else(|| quote!(#meta).to_string(), ToString::to_string);
                let hint = did_you_mean(&written, KEYS.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                errors.push(syn::Error::new_spanned(
                    meta.path(),
                    format!(
                        "unknown key `{written}` in `#[dspex::tool(..)]`{hint}; it takes `variables(..)`, `timeout_ms = ..` and `inline`"
                    ),
                ));
            }
        }
    }
    options
}

/// The doc comment's text: its lines, trimmed of the one space rustdoc strips.
fn description(function: &ItemFn) -> String {
    let lines: Vec<String> = function
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .map(|line| {
            line.strip_prefix(' ')
                .unwrap_or(&line)
                .trim_end()
                .to_owned()
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// One parameter of the function: an argument the agent gives, or a variable.
struct Param<'a> {
    name: &'a Ident,
    ty: &'a Type,
    variable: bool,
}

fn tool(function: &ItemFn, options: &Options, errors: &mut Vec<syn::Error>) -> TokenStream {
    let sig = &function.sig;
    let name = &sig.ident;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "a tool cannot be generic: the agent calls one function with JSON arguments",
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "a tool cannot be a `const fn`",
        ));
    }
    let description = description(function);
    if description.is_empty() {
        errors.push(syn::Error::new_spanned(
            name,
            format!(
                "tool `{name}` has no doc comment: the agent reads it as the tool's description (add `/// What {name} does.` above the function)"
            ),
        ));
    }
    let ReturnType::Type(_, return_type) = &sig.output else {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            format!(
                "tool `{name}` returns nothing; a tool returns `Result<T>` with `T` text or `serde::Serialize` (what the agent reads)"
            ),
        ));
        return TokenStream::new();
    };
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                "a tool is a free function, not a method: it takes no `self`",
            )),
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
                    params.push(Param {
                        name: &ident.ident,
                        ty: &typed.ty,
                        variable: options.variables.contains(&ident.ident),
                    });
                }
                pat => errors.push(syn::Error::new_spanned(
                    pat,
                    "a tool's parameter is a plain name (`query: String`): the name is the argument the agent gives",
                )),
            },
        }
    }
    for (i, variable) in options.variables.iter().enumerate() {
        if options.variables[..i].contains(variable) {
            errors.push(syn::Error::new_spanned(
                variable,
                format!("variable `{variable}` is listed twice"),
            ));
        } else if !params.iter().any(|p| p.name == variable) {
            let hint = did_you_mean(
                &variable.to_string(),
                params
                    .iter()
                    .map(|p| p.name.to_string())
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str),
            )
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
            errors.push(syn::Error::new_spanned(
                variable,
                format!(
                    "`{variable}` is not a parameter of `{name}`{hint}; a variable the tool reads is passed as the parameter of the same name"
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return TokenStream::new();
    }

    let vis = &function.vis;
    let name_str = name.to_string();
    let arguments: Vec<&Param<'_>> = params.iter().filter(|p| !p.variable).collect();
    let argument_names: Vec<String> = arguments.iter().map(|p| p.name.to_string()).collect();
    let argument_defs = arguments.iter().map(|p| {
        let (arg, ty) = (p.name.to_string(), p.ty);
        let arg_type = quote_spanned!(ty.span()=> <#ty as ::dspex::tools::__private::ToolArgType>);
        quote! {
            ::dspex::tools::ToolArgument {
                name: #arg,
                ty: #arg_type::TYPE,
                required: #arg_type::REQUIRED,
            }
        }
    });
    let variable_names: Vec<String> = options.variables.iter().map(ToString::to_string).collect();
    let takes = arguments.iter().map(|p| {
        let (ident, arg, ty) = (p.name, p.name.to_string(), p.ty);
        quote_spanned!(ty.span()=> let #ident: #ty = __dspex_args.take::<#ty>(#arg)?;)
    });
    let reads = options.variables.iter().enumerate().filter_map(|(i, variable)| {
        let ty = params.iter().find(|p| p.name == variable)?.ty;
        let var = variable.to_string();
        Some(quote_spanned! {ty.span()=>
            let #variable: #ty = ::dspex::tools::__private::variable::<#ty>(&__dspex_vars, #i, #var)?;
        })
    });
    let call_args = params.iter().map(|p| p.name);
    let call = if sig.asyncness.is_some() {
        if let Some(span) = options.inline {
            errors.push(syn::Error::new(
                span,
                format!(
                    "`inline` is for a synchronous tool; `{name}` is an `async fn`, which already runs in the call's own task"
                ),
            ));
        }
        quote!(#name(#(#call_args),*).await)
    } else if options.inline.is_some() {
        quote!(::dspex::tools::__private::inline(move || #name(#(#call_args),*))?)
    } else {
        quote!(::dspex::tools::__private::blocking(move || #name(#(#call_args),*)).await?)
    };
    let output = quote_spanned! {return_type.span()=>
        <#return_type as ::dspex::tools::__private::ToolOutput>::into_json(__dspex_out)
    };
    let call_fn = format_ident!("__dspex_call");
    let timeout_ms = options.timeout_ms;
    let inline = options.inline.is_some();
    let doc = format!("The tool [`{name}()`]: see the function.");
    quote! {
        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #vis struct #name {}

        impl #name {
            fn #call_fn(
                mut __dspex_call: ::dspex::tools::__private::Invocation,
            ) -> ::dspex::tools::__private::CallbackFuture {
                ::dspex::tools::__private::Box::pin(async move {
                    let mut __dspex_args = ::dspex::tools::__private::Arguments::new(
                        #name_str,
                        ::core::mem::take(&mut __dspex_call.arguments),
                        &[#(#argument_names),*],
                    )?;
                    let __dspex_vars = ::dspex::tools::__private::variables(
                        &__dspex_call,
                        &[#(#variable_names),*],
                    )?;
                    #(#takes)*
                    #(#reads)*
                    let __dspex_out = #call;
                    #output
                })
            }
        }

        impl ::dspex::tools::Tool for #name {
            fn def() -> &'static ::dspex::tools::ToolDef {
                static DEF: ::dspex::tools::ToolDef = ::dspex::tools::ToolDef {
                    name: #name_str,
                    description: #description,
                    arguments: &[#(#argument_defs),*],
                    variables: &[#(#variable_names),*],
                    timeout_ms: #timeout_ms,
                    inline: #inline,
                    path: ::core::concat!(::core::module_path!(), "::", #name_str),
                    call: #name::#call_fn,
                };
                &DEF
            }
        }
    }
}
