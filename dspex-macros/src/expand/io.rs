//! The typed input and output of a program with a signature: `XInput` / `XOutput` structs with
//! one `String` field per signature field, and their conversions to and from `Fields`.

use dspex_core::{Signature, SignatureField};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::model::{Program, rust_field};

/// The input and output types of a program with a well-formed signature.
pub(super) struct Io<'a> {
    program: &'a Program,
    signature: &'a Signature,
    pub(super) input: Ident,
    pub(super) output: Ident,
}

impl<'a> Io<'a> {
    /// `None` for a program without a signature (it only has `run_fields`), and when the
    /// signature could not be read or has a field that cannot be a Rust field (reported).
    pub(super) fn of(program: &'a Program) -> Option<Self> {
        let signature = program.signature.as_ref()?.parsed.as_ref()?;
        let span = program.ident.span();
        signature
            .inputs
            .iter()
            .chain(&signature.outputs)
            .all(|f| rust_field(&f.name, span).is_some())
            .then(|| Io {
                program,
                signature,
                input: format_ident!("{}Input", program.ident),
                output: format_ident!("{}Output", program.ident),
            })
    }

    fn fields(
        &self,
        fields: &'a [SignatureField],
    ) -> impl Iterator<Item = (Ident, &'a SignatureField)> {
        let span = self.program.ident.span();
        fields
            .iter()
            .filter_map(move |f| rust_field(&f.name, span).map(|ident| (ident, f)))
    }

    /// The two structs.
    pub(super) fn structs(&self) -> TokenStream {
        let (program, signature) = (&self.program.ident, self.signature);
        let input = self.struct_item(
            &self.input,
            &format!(
                " The input of [`{program}`]: the input fields of its signature `{signature}`."
            ),
            &self.signature.inputs,
        );
        let output = self.struct_item(
            &self.output,
            &format!(
                " The output of [`{program}`]: the output fields of its signature `{signature}`."
            ),
            &self.signature.outputs,
        );
        quote!(#input #output)
    }

    fn struct_item(&self, name: &Ident, doc: &str, fields: &'a [SignatureField]) -> TokenStream {
        let vis = &self.program.vis;
        let fields = self.fields(fields).map(|(ident, field)| {
            let doc = match &field.annotation {
                Some(annotation) => format!(" The `{}` field (`{annotation}`).", field.name),
                None => format!(" The `{}` field.", field.name),
            };
            quote! {
                #[doc = #doc]
                #vis #ident: ::std::string::String
            }
        });
        quote! {
            #[doc = #doc]
            #[derive(
                ::core::fmt::Debug,
                ::core::clone::Clone,
                ::core::cmp::PartialEq,
                ::core::cmp::Eq,
                ::core::default::Default
            )]
            #vis struct #name {
                #(#fields,)*
            }
        }
    }

    /// `From<XInput> for Fields` and `TryFrom<Fields> for XOutput` (a missing output field is
    /// a `MissingField` error).
    pub(super) fn conversions(&self) -> TokenStream {
        let (input, output) = (&self.input, &self.output);
        let program = self.program.name();
        let inserts: Vec<TokenStream> = self
            .fields(&self.signature.inputs)
            .map(|(ident, field)| {
                let name = &field.name;
                quote!(__dspex_fields.insert(#name, input.#ident);)
            })
            .collect();
        let from_input = if inserts.is_empty() {
            quote! {
                fn from(_: #input) -> Self {
                    ::dspex::__private::Fields::new()
                }
            }
        } else {
            quote! {
                fn from(input: #input) -> Self {
                    let mut __dspex_fields = ::dspex::__private::Fields::new();
                    #(#inserts)*
                    __dspex_fields
                }
            }
        };
        let takes = self.fields(&self.signature.outputs).map(|(ident, field)| {
            let name = &field.name;
            quote!(#ident: ::dspex::__private::take_output(&mut fields, #name, #program)?)
        });
        quote! {
            impl ::core::convert::From<#input> for ::dspex::__private::Fields {
                #from_input
            }

            impl ::core::convert::TryFrom<::dspex::__private::Fields> for #output {
                type Error = ::dspex::__private::Error;

                fn try_from(
                    mut fields: ::dspex::__private::Fields,
                ) -> ::dspex::__private::Result<Self> {
                    ::core::result::Result::Ok(Self {
                        #(#takes,)*
                    })
                }
            }
        }
    }
}
