//! The `dspex_program!` and `#[derive(Program)]` macros. Use them through `dspex`, which
//! documents them; this crate holds only the entry points.

use proc_macro::TokenStream;

/// Declares a program; see `dspex::dspex_program!`.
#[proc_macro]
pub fn dspex_program(input: TokenStream) -> TokenStream {
    let _ = input;
    quote::quote!(::core::compile_error!("dspex_program! is not implemented yet");).into()
}

/// Derives `dspex::Program`; see `dspex::Program`.
#[proc_macro_derive(Program, attributes(program, variable, step))]
pub fn derive_program(input: TokenStream) -> TokenStream {
    let _ = input;
    quote::quote!(::core::compile_error!("#[derive(Program)] is not implemented yet");).into()
}
