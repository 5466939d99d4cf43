//! The one back end, for both front ends: the struct (macro form only), the `XInput`/`XOutput`
//! types, the inherent API (`start`, `attach`, `context`, `spec`, `run`, `run_traced`,
//! `run_with`, `run_with_traced`, the `run_fields` forms of each, typed accessors) and `impl Program`. After an error it generates a skeleton of the same items whose
//! bodies never run, so that the user sees the errors and not their consequences.

mod io;
mod spec;

use dspex_core::dspy::TOOLS_KEY;
use dspex_core::program::{ConfigValue, ProgramSpec, ToolRef};
use dspex_core::{Constraints, VarType};
use proc_macro2::{Ident, Literal, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::DeriveInput;
use syn::ext::IdentExt;
use syn::spanned::Spanned;

use self::io::Io;
use crate::check;
use crate::ctxt::{Ctxt, Place};
use crate::model::{Form, GENERATED_METHODS, Program, Step, StepKindIr, Variable};
use crate::parse::{derive, dsl};

/// `dspex_program! { ... }`: parse, check, generate.
pub(crate) fn dspex_program(input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let program = dsl::parse(input, &cx);
    generate(program.as_ref(), cx)
}

/// `#[derive(Program)]`: parse, check, generate.
pub(crate) fn derive_program(input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let program = match syn::parse2::<DeriveInput>(input) {
        Ok(input) => derive::parse(&input, &cx),
        Err(e) => {
            cx.syn_error(Place::Header, e);
            None
        }
    };
    generate(program.as_ref(), cx)
}

fn generate(program: Option<&Program>, cx: Ctxt) -> TokenStream {
    let spec = program.and_then(|p| check::check(p, &cx));
    let errors = cx.finish().map(syn::Error::into_compile_error);
    let items = program.map(|program| {
        Expansion {
            program,
            spec: spec.as_ref(),
        }
        .items()
    });
    quote!(#errors #items)
}

/// The code of one program. Without a spec (the program has errors) it is a skeleton.
struct Expansion<'a> {
    program: &'a Program,
    spec: Option<&'a ProgramSpec>,
}

impl Expansion<'_> {
    fn items(&self) -> TokenStream {
        let declaration = (self.program.form == Form::Macro).then(|| self.struct_item());
        let io = Io::of(self.program);
        let io_structs = io.as_ref().map(Io::structs);
        let conversions = io.as_ref().map(Io::conversions);
        let inherent = self.inherent_impl(io.as_ref());
        let program_impl = self.program_impl();
        let builder_struct = self.spec.map(|_| self.builder_struct());
        let builder_impl = self.spec.map(|_| self.builder_impl());
        let tools_fns = self.spec.map(|_| self.tools_fns());
        let native_lm_checks = self.spec.map(|_| self.native_lm_checks());
        quote! {
            #declaration
            #builder_struct
            #io_structs
            const _: () = {
                #inherent
                #tools_fns
                #native_lm_checks
                #builder_impl
                #program_impl
                #conversions
            };
        }
    }

    /// The native steps, each with its type.
    fn native_steps(&self) -> impl Iterator<Item = (&Step, &syn::Type)> {
        self.program.steps.iter().filter_map(|s| match &s.kind {
            Some(StepKindIr::Native(ty)) => Some((s, ty)),
            _ => None,
        })
    }

    fn builder_ident(&self) -> proc_macro2::Ident {
        format_ident!("{}Builder", self.program.ident.unraw())
    }

    /// `XBuilder<S0, ..>`: one type parameter per native step, `ModuleGiven<T>` once the
    /// step's module was given, `NoModuleGiven` until then.
    fn builder_struct(&self) -> TokenStream {
        let (vis, ident) = (&self.program.vis, &self.program.ident);
        let builder = self.builder_ident();
        let params: Vec<_> = (0..self.native_steps().count())
            .map(|i| format_ident!("S{}", i))
            .collect();
        let fields = self.native_steps().map(|(step, _)| builder_field(step));
        let doc = format!(
            " Builds a [`{ident}`] with the modules of its native steps given as values (`{ident}::builder().step(module)`); a step given none is built with `Default`."
        );
        quote! {
            #[doc = #doc]
            #[must_use]
            #vis struct #builder<#(#params = ::dspex::__private::NoModuleGiven),*> {
                #(#fields: #params,)*
            }
        }
    }

    /// The builder's setters, `start` and `attach`, and the bound that names a step given no
    /// module whose type has no `Default`.
    fn builder_impl(&self) -> TokenStream {
        let (vis, ident) = (&self.program.vis, &self.program.ident);
        let builder = self.builder_ident();
        let steps: Vec<(&Step, &syn::Type)> = self.native_steps().collect();
        let params: Vec<_> = (0..steps.len()).map(|i| format_ident!("S{}", i)).collect();
        let fields: Vec<_> = steps.iter().map(|(s, _)| builder_field(s)).collect();
        let traits: Vec<_> = steps.iter().map(|(s, _)| step_trait(s)).collect();
        let tys: Vec<&syn::Type> = steps.iter().map(|(_, ty)| *ty).collect();
        // Spanned at the step's name: a step given no module, whose type has no `Default`, is
        // reported with notes pointing there.
        let trait_items = steps.iter().zip(&traits).map(|((step, _), name)| {
            quote_spanned! {step.name.span()=>
                #[allow(non_camel_case_types, unreachable_pub)]
                #[doc(hidden)]
                pub trait #name<T> {
                    fn module(self) -> T;
                }
                impl<T> #name<T> for ::dspex::__private::ModuleGiven<T> {
                    fn module(self) -> T {
                        self.0
                    }
                }
                impl<T: ::core::default::Default> #name<T> for ::dspex::__private::NoModuleGiven {
                    fn module(self) -> T {
                        T::default()
                    }
                }
            }
        });
        let setters = steps.iter().enumerate().map(|(i, (step, ty))| {
            let name = &step.name;
            let out = params.iter().enumerate().map(|(j, p)| {
                if i == j {
                    quote!(::dspex::__private::ModuleGiven<#ty>)
                } else {
                    quote!(#p)
                }
            });
            let moved = fields.iter().enumerate().map(|(j, f)| {
                if i == j {
                    quote!(#f: ::dspex::__private::ModuleGiven(module))
                } else {
                    quote!(#f: self.#f)
                }
            });
            let doc = format!(" The module of native step `{}`.", step.name());
            quote! {
                #[doc = #doc]
                #vis fn #name(self, module: #ty) -> #builder<#(#out),*> {
                    #builder { #(#moved,)* }
                }
            }
        });
        let modules: Vec<TokenStream> = fields
            .iter()
            .zip(&traits)
            .map(|(f, t)| quote!(#t::module(self.#f)))
            .collect();
        let attach = self.attach_body(&modules);
        quote! {
            #(#trait_items)*

            impl #ident {
                /// A builder that takes the modules of native steps as values.
                #vis fn builder() -> #builder {
                    #builder { #(#fields: ::dspex::__private::NoModuleGiven,)* }
                }
            }

            #[allow(private_bounds)]
            impl<#(#params),*> #builder<#(#params),*> {
                #(#setters)*

                /// Creates a context on the backend the program needs and attaches the program
                /// to it, with the modules given.
                #vis async fn start(self) -> ::dspex::__private::Result<#ident>
                where
                    #(#params: #traits<#tys>,)*
                {
                    let ctx = ::dspex::__private::context_for(
                        <#ident as ::dspex::__private::Program>::spec(),
                    )
                    .await?;
                    self.attach(&ctx).await
                }

                /// Registers the program's variables into `ctx` and returns the program, with
                /// the modules given.
                #vis async fn attach(
                    self,
                    ctx: &::dspex::__private::Context,
                ) -> ::dspex::__private::Result<#ident>
                where
                    #(#params: #traits<#tys>,)*
                {
                    type Self_ = #ident;
                    #attach
                }
            }
        }
    }

    /// The body of a generated function: `real`, or, in a skeleton, nothing that can run.
    fn body(&self, real: TokenStream) -> TokenStream {
        if self.spec.is_some() {
            real
        } else {
            let message = format!("dspex: `{}` has compile errors", self.program.ident);
            quote!(::core::unreachable!(#message))
        }
    }

    /// The struct of a `dspex_program!`: private fields (prefixed, so that no variable or step
    /// name can collide with another field) for the context, each variable and each step.
    fn struct_item(&self) -> TokenStream {
        let Program {
            attrs, vis, ident, ..
        } = self.program;
        let variables = self.variables().filter_map(|v| {
            let field = self.variable_field(v);
            let ty = self.variable_type(v)?;
            Some(quote!(#field: #ty))
        });
        // A skeleton never builds its steps: leaving them out spares the user errors about
        // their types (and "never read" warnings) on top of the real ones.
        let steps = self
            .program
            .steps
            .iter()
            .filter(|_| self.spec.is_some())
            .filter_map(|s| {
                let field = self.step_field(s);
                let ty = step_type(s)?;
                Some(quote!(#field: #ty))
            });
        quote! {
            #(#attrs)*
            #vis struct #ident {
                __dspex_ctx: ::dspex::__private::Context,
                #(#variables,)*
                #(#steps,)*
            }
        }
    }

    /// The variables, without the repeats of a name (an error): the skeleton declares each
    /// field and accessor once.
    fn variables(&self) -> impl Iterator<Item = &Variable> {
        let all = &self.program.variables;
        all.iter()
            .enumerate()
            .filter(|(i, v)| !all[..*i].iter().any(|w| w.name == v.name))
            .map(|(_, v)| v)
    }

    fn variable_field(&self, var: &Variable) -> proc_macro2::Ident {
        match self.program.form {
            Form::Macro => format_ident!("__dspex_var_{}", var.name.unraw()),
            Form::Derive => var.name.clone(),
        }
    }

    fn step_field(&self, step: &Step) -> proc_macro2::Ident {
        match self.program.form {
            Form::Macro => format_ident!("__dspex_step_{}", step.name.unraw()),
            Form::Derive => step.name.clone(),
        }
    }

    /// `Var<T>` of a variable: the field type as written (derive), or from the variable type.
    fn variable_type(&self, var: &Variable) -> Option<TokenStream> {
        if let Some(ty) = &var.field_ty {
            return Some(ty.to_token_stream());
        }
        let value = match var.ty? {
            VarType::Float => quote!(::core::primitive::f64),
            VarType::Integer => quote!(::core::primitive::i64),
            VarType::String => quote!(::std::string::String),
            VarType::Boolean => quote!(::core::primitive::bool),
            VarType::Choice => quote!(::dspex::__private::Choice),
            VarType::Module => quote!(::dspex::__private::ModuleName),
            VarType::Embedding => quote!(::dspex::__private::Embedding),
        };
        Some(quote!(::dspex::__private::Var<#value>))
    }

    fn inherent_impl(&self, io: Option<&Io<'_>>) -> TokenStream {
        let Program { ident, vis, .. } = self.program;
        let start_doc = format!(
            " Creates a context on the backend this program needs ({}), registers the program's variables into it and returns the program.",
            if self.program.requires_bridge() {
                "bridged: a step is python"
            } else {
                "local: every step is native"
            }
        );
        let run = io.map(|io| {
            let (input, output) = (&io.input, &io.output);
            quote! {
                /// Runs the chain on `input` and returns the program's outputs.
                #vis async fn run(
                    &self,
                    input: #input,
                ) -> ::dspex::__private::Result<#output> {
                    let __dspex_output = <Self as ::dspex::__private::Program>::run_fields(
                        self,
                        ::core::convert::Into::into(input),
                    )
                    .await?;
                    ::core::convert::TryFrom::try_from(__dspex_output)
                }

                /// Runs the chain on `input` and returns the program's outputs with the trace
                /// of every step (what it read and wrote, its parameters, its LM calls).
                #vis async fn run_traced(
                    &self,
                    input: #input,
                ) -> ::dspex::__private::Result<(#output, ::dspex::__private::RunTrace)> {
                    let (__dspex_output, __dspex_trace) =
                        <Self as ::dspex::__private::Program>::run_fields_traced(
                            self,
                            ::core::convert::Into::into(input),
                        )
                        .await?;
                    ::core::result::Result::Ok((
                        ::core::convert::TryFrom::try_from(__dspex_output)?,
                        __dspex_trace,
                    ))
                }

                /// Runs the chain on `input` with the variables of `overrides` taking those
                /// values for this run only (validated first; the context is untouched).
                #vis async fn run_with(
                    &self,
                    overrides: &::dspex::__private::Overrides,
                    input: #input,
                ) -> ::dspex::__private::Result<#output> {
                    let __dspex_output = <Self as ::dspex::__private::Program>::run_fields_with(
                        self,
                        overrides,
                        ::core::convert::Into::into(input),
                    )
                    .await?;
                    ::core::convert::TryFrom::try_from(__dspex_output)
                }

                /// Streams a run on `input`: each step's events as it goes (the text of LM
                /// output fields as it is written), then `Finished` with the outputs and the
                /// trace. Dropping the stream cancels the run.
                #vis fn stream(
                    &self,
                    input: #input,
                ) -> ::dspex::__private::BoxStream<
                    '_,
                    ::dspex::__private::Result<::dspex::__private::RunEvent<#output>>,
                > {
                    ::dspex::__private::stream_run(
                        <Self as ::dspex::__private::Program>::run_fields_traced(
                            self,
                            ::core::convert::Into::into(input),
                        ),
                        <#output as ::core::convert::TryFrom<::dspex::__private::Fields>>::try_from,
                    )
                }

                /// `stream` with the variables of `overrides` taking those values for this
                /// run only.
                #vis fn stream_with<'__dspex_a>(
                    &'__dspex_a self,
                    overrides: &'__dspex_a ::dspex::__private::Overrides,
                    input: #input,
                ) -> ::dspex::__private::BoxStream<
                    '__dspex_a,
                    ::dspex::__private::Result<::dspex::__private::RunEvent<#output>>,
                > {
                    ::dspex::__private::stream_run(
                        <Self as ::dspex::__private::Program>::run_fields_with_traced(
                            self,
                            overrides,
                            ::core::convert::Into::into(input),
                        ),
                        <#output as ::core::convert::TryFrom<::dspex::__private::Fields>>::try_from,
                    )
                }

                /// `run_with`, returning the trace of every step too.
                #vis async fn run_with_traced(
                    &self,
                    overrides: &::dspex::__private::Overrides,
                    input: #input,
                ) -> ::dspex::__private::Result<(#output, ::dspex::__private::RunTrace)> {
                    let (__dspex_output, __dspex_trace) =
                        <Self as ::dspex::__private::Program>::run_fields_with_traced(
                            self,
                            overrides,
                            ::core::convert::Into::into(input),
                        )
                        .await?;
                    ::core::result::Result::Ok((
                        ::core::convert::TryFrom::try_from(__dspex_output)?,
                        __dspex_trace,
                    ))
                }
            }
        });
        let accessors = self.variables().filter_map(|v| self.accessor(v));
        // With a builder, `start` and `attach` build native steps with `Default`, a bound that
        // fails where they are called (not here) when a step's type has none, naming the step.
        let (bounds, start, attach) = if self.spec.is_some() {
            let bounds = self.native_steps().map(|(step, ty)| {
                let name = step_trait(step);
                quote!(::dspex::__private::NoModuleGiven: #name<#ty>)
            });
            (
                quote!(where #(for<'__dspex> #bounds,)*),
                quote!(Self::builder().start().await),
                quote!(Self::builder().attach(ctx).await),
            )
        } else {
            (
                TokenStream::new(),
                quote!(<Self as ::dspex::__private::Program>::start().await),
                quote!(<Self as ::dspex::__private::Program>::attach(ctx).await),
            )
        };
        quote! {
            #[allow(private_bounds)]
            impl #ident {
                #[doc = #start_doc]
                #vis async fn start() -> ::dspex::__private::Result<Self> #bounds {
                    #start
                }

                /// Registers the program's variables into `ctx` (sharing identical declarations
                /// already there), upgrades `ctx` when a step is python, and returns the program.
                #vis async fn attach(
                    ctx: &::dspex::__private::Context,
                ) -> ::dspex::__private::Result<Self> #bounds {
                    #attach
                }

                /// The context the program's variables live in.
                #vis fn context(&self) -> &::dspex::__private::Context {
                    <Self as ::dspex::__private::Program>::context(self)
                }

                /// The program's declaration (signature, variables, steps), checked at compile
                /// time.
                #vis fn spec() -> &'static ::dspex::__private::ProgramSpec {
                    <Self as ::dspex::__private::Program>::spec()
                }

                #run

                /// Runs the chain on named fields: the program's inputs in, its outputs out.
                #vis async fn run_fields(
                    &self,
                    input: ::dspex::__private::Fields,
                ) -> ::dspex::__private::Result<::dspex::__private::Fields> {
                    <Self as ::dspex::__private::Program>::run_fields(self, input).await
                }

                /// Runs the chain on named fields and returns the outputs with the trace of
                /// every step.
                #vis async fn run_fields_traced(
                    &self,
                    input: ::dspex::__private::Fields,
                ) -> ::dspex::__private::Result<(
                    ::dspex::__private::Fields,
                    ::dspex::__private::RunTrace,
                )> {
                    <Self as ::dspex::__private::Program>::run_fields_traced(self, input).await
                }

                /// Runs the chain on named fields with `overrides` for this run only.
                #vis async fn run_fields_with(
                    &self,
                    overrides: &::dspex::__private::Overrides,
                    input: ::dspex::__private::Fields,
                ) -> ::dspex::__private::Result<::dspex::__private::Fields> {
                    <Self as ::dspex::__private::Program>::run_fields_with(
                        self,
                        overrides,
                        input,
                    )
                    .await
                }

                /// `run_fields_with`, returning the trace of every step too.
                #vis async fn run_fields_with_traced(
                    &self,
                    overrides: &::dspex::__private::Overrides,
                    input: ::dspex::__private::Fields,
                ) -> ::dspex::__private::Result<(
                    ::dspex::__private::Fields,
                    ::dspex::__private::RunTrace,
                )> {
                    <Self as ::dspex::__private::Program>::run_fields_with_traced(
                        self,
                        overrides,
                        input,
                    )
                    .await
                }

                #(#accessors)*
            }
        }
    }

    /// `fn temperature(&self) -> &Var<f64>`, documented with the declaration; none for a name
    /// that collides with a generated method (reported by `check`).
    fn accessor(&self, var: &Variable) -> Option<TokenStream> {
        if GENERATED_METHODS.contains(&var.name().as_str()) {
            return None;
        }
        let ty = self.variable_type(var)?;
        let (vis, name, field) = (&self.program.vis, &var.name, self.variable_field(var));
        let docs = &var.docs;
        let separator = (!docs.is_empty()).then(|| quote!(#[doc = ""]));
        let summary = summary(var);
        Some(quote! {
            #(#docs)*
            #separator
            #[doc = #summary]
            #vis fn #name(&self) -> &#ty {
                &self.#field
            }
        })
    }

    fn program_impl(&self) -> TokenStream {
        let ident = &self.program.ident;
        let requires_bridge = self.program.requires_bridge();
        let spec = match self.spec {
            Some(spec) => {
                let spec = spec::program(spec);
                quote! {
                    static __DSPEX_SPEC: ::dspex::__private::LazyLock<::dspex::__private::ProgramSpec> =
                        ::dspex::__private::LazyLock::new(|| #spec);
                    &__DSPEX_SPEC
                }
            }
            None => self.body(TokenStream::new()),
        };
        let context = self.context_body();
        let python_steps = self.body(self.python_steps_body());
        let native_steps = self.body(self.native_steps_body());
        let program = self.program.name();
        let probes: Vec<TokenStream> = self
            .native_steps()
            .map(|(step, ty)| {
                let (name, ty_name) = (
                    step.name(),
                    ty.to_token_stream().to_string().replace(' ', ""),
                );
                quote! {
                    match (&::dspex::__private::DefaultProbe::<#ty>::new()).default_module() {
                        ::core::option::Option::Some(module) => module,
                        ::core::option::Option::None => {
                            return ::core::result::Result::Err(::dspex::__private::no_module(
                                #program, #name, #ty_name,
                            ));
                        }
                    }
                }
            })
            .collect();
        let attach_body = self.attach_body(&probes);
        let attach = self.body(quote! {
            #[allow(unused_imports)]
            use ::dspex::__private::{ViaDefault as _, WithoutDefault as _};
            type Self_ = #ident;
            #attach_body
        });
        let run_fields = self.body(self.run_fields_body());
        quote! {
            impl ::dspex::__private::Program for #ident {
                const REQUIRES_BRIDGE: bool = #requires_bridge;

                fn spec() -> &'static ::dspex::__private::ProgramSpec {
                    #spec
                }

                fn context(&self) -> &::dspex::__private::Context {
                    #context
                }

                fn python_steps(&self) -> ::dspex::__private::Vec<&::dspex::__private::PythonModule> {
                    #python_steps
                }

                fn native_steps(
                    &self,
                ) -> ::dspex::__private::Vec<(&'static str, &dyn ::dspex::__private::DynModule)> {
                    #native_steps
                }

                async fn attach(
                    ctx: &::dspex::__private::Context,
                ) -> ::dspex::__private::Result<Self> {
                    #attach
                }

                async fn run_fields_with_traced(
                    &self,
                    overrides: &::dspex::__private::Overrides,
                    input: ::dspex::__private::Fields,
                ) -> ::dspex::__private::Result<(
                    ::dspex::__private::Fields,
                    ::dspex::__private::RunTrace,
                )> {
                    #run_fields
                }
            }
        }
    }

    /// The context: the macro's own field; for a derive, the first `Context` field, else the
    /// context of the first variable, else of the first python step.
    fn context_body(&self) -> TokenStream {
        let program = self.program;
        if program.form == Form::Macro {
            return quote!(&self.__dspex_ctx);
        }
        if self.spec.is_none() {
            // The fields may not be what their attributes say (reported): touch none of them.
            return self.body(TokenStream::new());
        }
        if let Some(field) = program.context_fields.first() {
            return quote!(&self.#field);
        }
        if let Some(var) = program.variables.iter().find(|v| v.ty.is_some()) {
            let field = self.variable_field(var);
            return quote!(::dspex::__private::Var::context(&self.#field));
        }
        let python = program
            .steps
            .iter()
            .find(|s| matches!(s.kind, Some(StepKindIr::Python(_))));
        match python {
            Some(step) => {
                let field = self.step_field(step);
                quote!(::dspex::__private::PythonModule::context(&self.#field))
            }
            // Unreachable: the derive front end reports a program with nowhere to keep its
            // context, so there is no spec.
            None => self.body(TokenStream::new()),
        }
    }

    /// Registers the variables, then builds every field: typed handles, native modules (the
    /// expressions `modules`, one per native step in chain order) and python modules, in chain
    /// order. `Self_` names the program.
    fn attach_body(&self, modules: &[TokenStream]) -> TokenStream {
        let mut modules = modules.iter();
        let program = self.program;
        let contexts: Vec<&proc_macro2::Ident> = match program.form {
            Form::Macro => Vec::new(),
            Form::Derive => program.context_fields.iter().collect(),
        };
        let own_context = (program.form == Form::Macro)
            .then(|| quote!(__dspex_ctx: ::core::clone::Clone::clone(ctx),));
        let variables = program.variables.iter().map(|var| {
            let (field, name) = (self.variable_field(var), var.name());
            quote!(#field: ::dspex::__private::Context::var(ctx, #name)?)
        });
        let steps = program.steps.iter().enumerate().map(|(index, step)| {
            let field = self.step_field(step);
            let index = Literal::usize_unsuffixed(index);
            match &step.kind {
                Some(StepKindIr::Native(_)) => {
                    let module = modules.next();
                    quote!(#field: #module)
                }
                _ => {
                    let tools = if rust_tools(step).next().is_some() {
                        let tools = tools_fn_ident(index.clone());
                        quote!(&#tools())
                    } else {
                        quote!(&[])
                    };
                    quote! {
                        #field: ::dspex::__private::python_step(
                            ctx,
                            __dspex_spec,
                            #index,
                            #tools,
                        )
                        .await?
                    }
                }
            }
        });
        quote! {
            let __dspex_spec = <Self_ as ::dspex::__private::Program>::spec();
            ::dspex::__private::prepare_context(ctx, __dspex_spec).await?;
            ::core::result::Result::Ok(Self_ {
                #own_context
                #(#contexts: ::core::clone::Clone::clone(ctx),)*
                #(#variables,)*
                #(#steps,)*
            })
        }
    }

    /// One function per python step returning the definitions of its Rust tools, generated
    /// once for every function that attaches the program (so that a path that is no tool is
    /// reported once, under its own name).
    fn tools_fns(&self) -> TokenStream {
        let fns = self
            .program
            .steps
            .iter()
            .enumerate()
            .filter_map(|(index, step)| {
                if matches!(step.kind, Some(StepKindIr::Native(_)))
                    || rust_tools(step).next().is_none()
                {
                    return None;
                }
                let name = tools_fn_ident(Literal::usize_unsuffixed(index));
                let tools: Vec<TokenStream> = rust_tools(step).map(tool_def).collect();
                let n = tools.len();
                Some(quote! {
                    fn #name() -> [&'static ::dspex::tools::ToolDef; #n] {
                        [#(#tools),*]
                    }
                })
            });
        quote!(#(#fns)*)
    }

    /// For each native step with a `with`, a bound that its type is dspex's `Predict` or
    /// `ChainOfThought` (the check knew it by name only), spanned at the type: a type of the
    /// user's named like them is reported there.
    fn native_lm_checks(&self) -> TokenStream {
        let checks: Vec<TokenStream> = self
            .native_steps()
            .filter(|(step, _)| !step.config.is_empty())
            .map(|(_, ty)| quote_spanned!(ty.span()=> ::dspex::__private::native_lm_module::<#ty>();))
            .collect();
        if checks.is_empty() {
            return TokenStream::new();
        }
        quote! {
            #[allow(dead_code)]
            fn __dspex_native_lm_modules() {
                #(#checks)*
            }
        }
    }

    /// The python step fields, in chain order.
    fn python_steps_body(&self) -> TokenStream {
        let fields = self
            .program
            .steps
            .iter()
            .filter(|s| matches!(s.kind, Some(StepKindIr::Python(_))))
            .map(|step| self.step_field(step));
        quote!(::dspex::__private::Vec::from([#(&self.#fields),*]))
    }

    /// The native step fields with their step names, in chain order.
    fn native_steps_body(&self) -> TokenStream {
        let steps = self.program.steps.iter().filter_map(|step| {
            let Some(StepKindIr::Native(ty)) = &step.kind else {
                return None;
            };
            let field = proc_macro2::Ident::new(&self.step_field(step).to_string(), ty.span());
            let name = step.name();
            Some(quote_spanned!(ty.span()=> (#name, ::dspex::__private::native_step(&self.#field))))
        });
        quote!(::dspex::__private::Vec::from([#(#steps),*]))
    }

    /// Runs each step in chain order on one `ChainRun`.
    fn run_fields_body(&self) -> TokenStream {
        // A `called` step runs only when a native step calls it.
        let chain = self.program.steps.iter().enumerate();
        let steps = chain.filter(|(_, step)| !step.called).map(|(index, step)| {
            let field = self.step_field(step);
            let index = Literal::usize_unsuffixed(index);
            match &step.kind {
                Some(StepKindIr::Native(ty)) => {
                    // Spanned at the user's type: a type that is no `Module` is reported there.
                    let field = proc_macro2::Ident::new(&field.to_string(), ty.span());
                    let module =
                        quote_spanned!(ty.span()=> ::dspex::__private::native_step(&self.#field));
                    quote!(__dspex_run.native(#index, #module).await?;)
                }
                _ => quote!(__dspex_run.python(#index, &self.#field).await?;),
            }
        });
        // The variables are read by accessors and by the worker, which rustc cannot see when
        // the accessors go unused; reading them in this (always live) trait method keeps it
        // from calling the fields unread.
        let variables = self.variables().map(|v| self.variable_field(v));
        quote! {
            #(let _ = &self.#variables;)*
            let mut __dspex_run = ::dspex::__private::ChainRun::start_with(
                <Self as ::dspex::__private::Program>::context(self),
                <Self as ::dspex::__private::Program>::spec(),
                overrides,
                input,
            )?
            .calling(self);
            #(#steps)*
            __dspex_run.finish_traced()
        }
    }
}

/// The builder's field of a native step.
fn builder_field(step: &Step) -> proc_macro2::Ident {
    format_ident!("__dspex_{}", step.name.unraw())
}

/// The trait a native step's builder parameter implements when the step has a module: named
/// so that a step given none, whose type has no `Default`, reads as such where it is reported.
fn step_trait(step: &Step) -> proc_macro2::Ident {
    format_ident!("step_{}_needs_a_module_or_Default", step.name.unraw())
}

/// The field type of a step in the macro form.
fn step_type(step: &Step) -> Option<TokenStream> {
    match step.kind.as_ref()? {
        StepKindIr::Native(ty) => Some(ty.to_token_stream()),
        StepKindIr::Python(_) => Some(quote!(::dspex::__private::PythonModule)),
    }
}

/// "The `temperature` variable: float, initially `0.7`, min 0.0, max 2.0."
fn summary(var: &Variable) -> String {
    let ty = var.ty.map_or("unknown", VarType::name);
    let initial = var
        .initial
        .as_ref()
        .map(|i| format!(", initially `{}`", i.value))
        .unwrap_or_default();
    let constraints = if var.constraints == Constraints::none() {
        String::new()
    } else {
        format!(", {}", var.constraints)
    };
    let description = var
        .description
        .as_ref()
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    format!(
        " The `{}` variable{description}: {ty}{initial}{constraints}.",
        var.name()
    )
}

/// The definition of the tool at `path`. A plain `fn` has no type of its name (a tool has, the
/// one `#[dspex::tool]` adds), so the path is imported beside a glob of a stand-in type of the
/// same last name: the import wins when the path names a type, the stand-in otherwise, and the
/// stand-in is no tool, which is reported at the path as "`search_docs` is not a dspex tool".
fn tool_def(path: &TokenStream) -> TokenStream {
    let span = path.span();
    let Some(last) = syn::parse2::<syn::Path>(path.clone())
        .ok()
        .and_then(|p| p.segments.last().map(|s| s.ident.clone()))
    else {
        return quote_spanned!(span=> ::dspex::__private::tool_def::<#path>());
    };
    let last = Ident::new(&last.to_string(), span);
    quote_spanned! {span=>
        {
            #[allow(non_camel_case_types, unreachable_pub, dead_code, unused_imports)]
            mod __dspex_not_a_tool {
                mod plain_fn {
                    pub struct #last {}
                }
                pub use self::plain_fn::#last as __dspex_tool;
            }
            #[allow(unused_imports)]
            use __dspex_not_a_tool::*;
            #[allow(unused_imports)]
            use #path as __dspex_tool;
            ::dspex::__private::tool_def::<__dspex_tool>()
        }
    }
}

/// The function [`Expansion::tools_fns`] generates for the python step at `index`.
fn tools_fn_ident(index: Literal) -> Ident {
    format_ident!("__dspex_tools_of_step_{}", index.to_string())
}

/// The paths of the Rust tools a step's `tools` lists, in order, as written.
fn rust_tools(step: &Step) -> impl Iterator<Item = &TokenStream> {
    step.config
        .iter()
        .filter(|entry| entry.key == TOOLS_KEY)
        .flat_map(|entry| match &entry.value {
            Some(ConfigValue::Tools(tools)) => tools
                .iter()
                .zip(&entry.items)
                .filter(|(tool, _)| matches!(tool, ToolRef::Rust(_)))
                .map(|(_, tokens)| tokens)
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        })
}
