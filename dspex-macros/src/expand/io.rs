//! The typed input and output of a program with a signature: `XInput` / `XOutput` structs with
//! one field per signature field, of the Rust type of its declared type, an enum per `Literal`
//! field, and their conversions to and from `Fields`.

use dspex_core::{FieldType, Signature, SignatureField};
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::model::{Program, literal_clashes, literal_enum, literal_variant, rust_field};

/// The input and output types of a program with a well-formed signature.
pub(super) struct Io<'a> {
    program: &'a Program,
    signature: &'a Signature,
    pub(super) input: Ident,
    pub(super) output: Ident,
}

impl<'a> Io<'a> {
    /// `None` for a program without a signature (it only has `run_fields`), and when the
    /// signature could not be read, has a field that cannot be a Rust field, or a `Literal`
    /// field whose enum names clash (reported).
    pub(super) fn of(program: &'a Program) -> Option<Self> {
        let signature = program.signature.as_ref()?.parsed.as_ref()?;
        let span = program.ident.span();
        let nameable = signature
            .inputs
            .iter()
            .chain(&signature.outputs)
            .all(|f| rust_field(&f.name, span).is_some());
        (nameable && literal_clashes(&program.ident, signature).is_empty()).then(|| Io {
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

    fn all_fields(&self) -> impl Iterator<Item = &'a SignatureField> {
        self.signature.inputs.iter().chain(&self.signature.outputs)
    }

    /// The Rust type of a field.
    fn rust_type(&self, field: &SignatureField) -> TokenStream {
        match &field.ty {
            FieldType::Str => quote!(::std::string::String),
            FieldType::Int => quote!(::core::primitive::i64),
            FieldType::Float => quote!(::core::primitive::f64),
            FieldType::Bool => quote!(::core::primitive::bool),
            FieldType::ListStr => quote!(::std::vec::Vec<::std::string::String>),
            FieldType::ListInt => quote!(::std::vec::Vec<::core::primitive::i64>),
            FieldType::ListFloat => quote!(::std::vec::Vec<::core::primitive::f64>),
            FieldType::Dict => quote!(::dspex::__private::JsonObject),
            FieldType::Literal(_) => {
                let name = literal_enum(&self.program.ident, &field.name);
                quote!(#name)
            }
        }
    }

    /// The two structs and the enums of `Literal` fields.
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
        let enums = self.all_fields().filter_map(|f| self.enum_item(f));
        quote!(#input #output #(#enums)*)
    }

    fn struct_item(&self, name: &Ident, doc: &str, fields: &'a [SignatureField]) -> TokenStream {
        let vis = &self.program.vis;
        let items = self.fields(fields).map(|(ident, field)| {
            let doc = format!(" The `{}` field (`{}`).", field.name, field.ty);
            let ty = self.rust_type(field);
            quote! {
                #[doc = #doc]
                #vis #ident: #ty
            }
        });
        // `f64` has no `Eq`, and a generated enum no `Default`.
        let eq = (!fields
            .iter()
            .any(|f| matches!(f.ty, FieldType::Float | FieldType::ListFloat)))
        .then(|| quote!(::core::cmp::Eq,));
        let default = (!fields.iter().any(|f| matches!(f.ty, FieldType::Literal(_))))
            .then(|| quote!(::core::default::Default,));
        quote! {
            #[doc = #doc]
            #[derive(
                ::core::fmt::Debug,
                ::core::clone::Clone,
                ::core::cmp::PartialEq,
                #eq
                #default
                ::dspex::__private::serde::Serialize,
                ::dspex::__private::serde::Deserialize
            )]
            #[serde(crate = "::dspex::__private::serde")]
            #vis struct #name {
                #(#items,)*
            }
        }
    }

    /// The enum of a `Literal` field: one variant per value, serialized as the value.
    fn enum_item(&self, field: &SignatureField) -> Option<TokenStream> {
        let values = field.ty.literal_values()?;
        let (vis, program) = (&self.program.vis, &self.program.ident);
        let name = literal_enum(program, &field.name);
        let doc = format!(
            " The values of the `{}` field of [`{program}`]: `{}`. Serialized, displayed and parsed (`FromStr`) as the values themselves.",
            field.name, field.ty
        );
        let variants = values.iter().map(|value| {
            let variant = format_ident!("{}", literal_variant(value));
            let doc = format!(" `{value:?}`");
            quote! {
                #[doc = #doc]
                #[serde(rename = #value)]
                #variant
            }
        });
        Some(quote! {
            #[doc = #doc]
            #[derive(
                ::core::fmt::Debug,
                ::core::clone::Clone,
                ::core::marker::Copy,
                ::core::cmp::PartialEq,
                ::core::cmp::Eq,
                ::core::hash::Hash,
                ::dspex::__private::serde::Serialize,
                ::dspex::__private::serde::Deserialize
            )]
            #[serde(crate = "::dspex::__private::serde")]
            #vis enum #name {
                #(#variants,)*
            }
        })
    }

    /// The methods and trait impls of a `Literal` field's enum: `ALL`, `as_str`, `Display`,
    /// `FromStr` and the conversion to a field value.
    fn enum_impls(&self, field: &SignatureField) -> Option<TokenStream> {
        let values = field.ty.literal_values()?;
        let vis = &self.program.vis;
        let name = literal_enum(&self.program.ident, &field.name);
        let variants: Vec<Ident> = values
            .iter()
            .map(|v| format_ident!("{}", literal_variant(v)))
            .collect();
        let count = proc_macro2::Literal::usize_unsuffixed(values.len());
        Some(quote! {
            impl #name {
                /// Every value, in the order the signature lists them.
                #vis const ALL: [Self; #count] = [#(Self::#variants),*];

                /// The value as the signature writes it.
                #vis fn as_str(&self) -> &'static str {
                    match self {
                        #(Self::#variants => #values,)*
                    }
                }
            }

            impl ::core::fmt::Display for #name {
                fn fmt(
                    &self,
                    __dspex_f: &mut ::core::fmt::Formatter<'_>,
                ) -> ::core::fmt::Result {
                    __dspex_f.write_str(self.as_str())
                }
            }

            impl ::core::str::FromStr for #name {
                type Err = ::dspex::__private::LiteralError;

                fn from_str(__dspex_s: &str) -> ::core::result::Result<Self, Self::Err> {
                    match __dspex_s {
                        #(#values => ::core::result::Result::Ok(Self::#variants),)*
                        _ => ::core::result::Result::Err(::dspex::__private::LiteralError::new(
                            __dspex_s,
                            &[#(#values),*],
                        )),
                    }
                }
            }

            impl ::core::convert::From<#name> for ::dspex::__private::JsonValue {
                fn from(__dspex_value: #name) -> Self {
                    ::dspex::__private::JsonValue::String(::std::string::String::from(
                        __dspex_value.as_str(),
                    ))
                }
            }
        })
    }

    /// `From<XInput> for Fields`, `TryFrom<Fields> for XOutput` (a missing output field is a
    /// `MissingField` error) and the impls of the `Literal` enums.
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
        let enums = self.all_fields().filter_map(|f| self.enum_impls(f));
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

            #(#enums)*
        }
    }
}
