//! The `dspex_program!` and `#[derive(Program)]` macros. Use them through `dspex`, which
//! documents them; this crate holds only the entry points.
//!
//! Both macros run one pipeline: a front end (`parse::dsl` or `parse::derive`) reads the
//! input into the one model (`model`), `check` validates it with `dspex-core` (the code the
//! runtime runs) and `expand` generates the code. Every error goes to one collector
//! (`ctxt::Ctxt`), so an invocation reports all its mistakes at once.

mod check;
mod ctxt;
mod expand;
mod model;
mod parse;
mod tool;

use proc_macro::TokenStream;

/// (Implemented in `dspex-macros`; use it through `dspex`.)
#[proc_macro]
pub fn dspex_program(input: TokenStream) -> TokenStream {
    expand::dspex_program(input.into()).into()
}

/// (Implemented in `dspex-macros`; use it through `dspex`.)
#[proc_macro_derive(Program, attributes(program, variable, step))]
pub fn derive_program(input: TokenStream) -> TokenStream {
    expand::derive_program(input.into()).into()
}

/// (Implemented in `dspex-macros`; use it through `dspex`.)
#[proc_macro_attribute]
pub fn tool(attr: TokenStream, item: TokenStream) -> TokenStream {
    tool::expand(attr.into(), item.into()).into()
}

#[cfg(test)]
mod tests;
