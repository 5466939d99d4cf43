//! Expansion snapshots of one representative program per form, pretty-printed with
//! prettyplease, and the errors of whole invocations (messages and order).

use proc_macro2::TokenStream;
use quote::quote;

use crate::expand::{derive_program, dspex_program};

fn pretty(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).expect("the expansion is valid Rust");
    prettyplease::unparse(&file)
}

/// The messages of the `compile_error!`s in an expansion, in order.
fn errors(tokens: TokenStream) -> Vec<String> {
    let file: syn::File = syn::parse2(tokens).expect("the expansion is valid Rust");
    file.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Macro(m)
                if m.mac
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "compile_error") =>
            {
                Some(
                    m.mac
                        .parse_body::<syn::LitStr>()
                        .expect("a message")
                        .value(),
                )
            }
            _ => None,
        })
        .collect()
}

#[test]
fn dspex_program_expansion() {
    let expansion = dspex_program(quote! {
        /// Answers questions; doc comments carry over.
        pub program QaPipeline: "question, k: int -> answer, confidence: float, label: Literal['positive', 'very negative']" {
            variables {
                temperature: float = 0.7 { min: 0.0, max: 2.0 },
                max_tokens: integer = 256 { min: 1, max: 4096 },
                model: choice = "gpt-4o-mini" { choices: ["gpt-4o-mini", "claude-3-haiku"], readonly: true },
                reasoning: module = "ChainOfThought" { choices: ["Predict", "ChainOfThought"] },
                /// The tone of the answers.
                style: string = "concise" { min_length: 1, max_length: 40, pattern: "[a-z]+", description: "tone" },
                verbose: boolean = false,
                query_embedding: embedding = [0.5, -1.0] { dimensions: 2 },
            }
            chain {
                classify: native QueryClassifier("question, k: int -> category: list[str]") { model as llm_model },
                answer: python ChainOfThought("question, category: list[str] -> answer, confidence: float") { temperature, max_tokens } with { n: 1 },
                review: python @reasoning("question, answer -> label: Literal[\"very negative\", \"positive\"]"),
                agent: python ReAct("question, label: Literal[\"very negative\", \"positive\"] -> summary") with { max_iters: 3, tools: ["my_pkg.tools.search"] },
            }
        }
    });
    assert!(errors(expansion.clone()).is_empty());
    insta::assert_snapshot!(pretty(expansion));
}

#[test]
fn derive_program_expansion() {
    let expansion = derive_program(quote! {
        #[derive(Program)]
        #[program(signature = "question -> answer")]
        pub struct Echo {
            /// How many times to repeat.
            #[variable(initial = 2, min = 1, max = 5)]
            repeat: Var<i64>,
            #[variable(initial = "gpt-4o-mini", choices = ["gpt-4o-mini", "claude-3-haiku"], readonly)]
            model: Var<Choice>,
            #[step(native, signature = "question -> answer", bind(repeat as times, model))]
            echo: Repeater,
            #[step(python = "ProgramOfThought", signature = "question -> result", with(interpreter = "local", max_iters = 2))]
            solver: PythonModule,
            ctx: Context,
        }
    });
    assert!(errors(expansion.clone()).is_empty());
    insta::assert_snapshot!(pretty(expansion));
}

#[test]
fn readonly_is_a_boolean_given_once_in_both_forms() {
    let expansion = dspex_program(quote! {
        program P: "a -> b" {
            variables {
                t: float = 0.5 { readonly: 1 },
                u: float = 0.5 { readonly: true, readonly: false },
                v: boolean = true { readonly: "yes" },
            }
            chain { s: native S("a -> b") { t, u, v } }
        }
    });
    assert_eq!(
        errors(expansion),
        [
            "expected `true` or `false` for `readonly`, found an integer",
            "duplicate key `readonly`",
            "expected `true` or `false` for `readonly`, found a string",
        ]
    );
    let expansion = derive_program(quote! {
        struct P {
            #[variable(initial = 0.5, readonly = "yes")]
            t: Var<f64>,
            #[variable(initial = 0.5, readonly, readonly = true)]
            u: Var<f64>,
            #[variable(initial = 0.5, readonly = false)]
            v: Var<f64>,
            #[step(native, signature = "a -> b", bind(t, u, v))]
            s: S,
        }
    });
    assert_eq!(
        errors(expansion),
        [
            "expected `true` or `false` for `readonly`, found a string",
            "duplicate key `readonly`",
        ]
    );
}

/// The names of the items an expansion declares (structs and the impls' self types).
fn items(tokens: TokenStream) -> Vec<String> {
    let file: syn::File = syn::parse2(tokens).expect("the expansion is valid Rust");
    file.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Struct(s) => Some(format!("struct {}", s.ident)),
            syn::Item::Const(_) => Some("const _".to_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn all_errors_of_an_invocation_come_together_in_source_order() {
    let expansion = dspex_program(quote! {
        program Qa: "question -> answer" {
            variables {
                temperature: float = 2.5 { min: 0.0, max: 2.0 },
                model: choice = "gpt-5" { choices: ["gpt-4o-mini", "claude-3-haiku"] },
                style: string = "x" { minimum: 1 },
            }
            chain {
                answer: python ChainOfThought("question -> answer") { temprature, model },
            }
        }
    });
    assert_eq!(
        errors(expansion.clone()),
        [
            "initial value 2.5 is above max 2.0",
            "initial value \"gpt-5\" is not one of the choices \"gpt-4o-mini\", \"claude-3-haiku\"",
            "unknown constraint `minimum` for a string variable; expected one of `min_length`, `max_length`, `pattern`, `description`, `readonly`",
            "no variable named `temprature` is declared; did you mean `temperature`?",
        ]
    );
    // The skeleton: the struct, its input and output, and the impls, so that code using the
    // program sees no further errors.
    assert_eq!(
        items(expansion),
        ["struct Qa", "struct QaInput", "struct QaOutput", "const _"]
    );
}

#[test]
fn a_part_that_cannot_be_read_reports_no_consequences() {
    // `double` is no type: its variable's own issues and the bound parameter's type are not
    // judged. A malformed step signature leaves the flow of fields unjudged.
    let expansion = dspex_program(quote! {
        program Qa: "question -> answer" {
            variables {
                temperature: double = "hot" { min: 1.0, max: 0.0 },
            }
            chain {
                classify: python Predict("question category"),
                answer: python Predict("question, category -> answer") { temperature },
            }
        }
    });
    assert_eq!(
        errors(expansion),
        [
            "unknown variable type `double`; expected one of `float`, `integer`, `string`, `boolean`, `choice`, `module`, `embedding`",
            "malformed signature `question category`: missing `->` between inputs and outputs",
        ]
    );
}

#[test]
fn a_body_that_does_not_parse_still_declares_the_program() {
    let expansion = dspex_program(quote! {
        pub program Qa: "question -> answer" {
            chain {
                answer: python Predict { temperature },
            }
        }
    });
    assert_eq!(
        errors(expansion.clone()),
        ["expected the step signature in parentheses, like `(\"question -> answer\")`"]
    );
    assert_eq!(
        items(expansion),
        ["struct Qa", "struct QaInput", "struct QaOutput", "const _"]
    );
}

#[test]
fn a_derive_on_an_enum_generates_only_the_error() {
    let expansion = derive_program(quote! {
        enum Qa { A, B }
    });
    assert_eq!(
        errors(expansion.clone()),
        ["`#[derive(Program)]` only supports structs with named fields, not enums"]
    );
    assert!(items(expansion).is_empty());
}

#[test]
fn derive_errors_list_the_valid_keys() {
    let expansion = derive_program(quote! {
        #[program(signature = "question -> answer", sig = "x")]
        struct Qa {
            #[variable(initial = true, min = 0)]
            verbose: Var<bool>,
            #[step(python = "Predict", signature = "question -> answer", binding(verbose))]
            answer: PythonModule,
            cache: Vec<String>,
        }
    });
    assert_eq!(
        errors(expansion),
        [
            "unknown `#[program]` key `sig`; expected `signature`",
            "constraint `min` does not apply to a boolean variable; expected one of `description`, `readonly`",
            "unknown `#[step]` key `binding`; expected one of `native`, `python`, `signature`, `bind`, `with`, `called`",
            "field `cache` is not part of the program; mark it `#[variable(...)]` (a `Var<T>`) or `#[step(...)]`, or give it the type `Context`",
        ]
    );
}

#[test]
fn type_errors_come_with_the_others_and_a_name_clash_leaves_out_the_io_types() {
    let expansion = dspex_program(quote! {
        program Qa: "question, k: int -> answer, kind: Literal['a-b', 'a b']" {
            chain {
                retrieve: python Predict("question, k -> passages: list[str]"),
                answer: python Predict("question, passages: list[str] -> answer, kind: Literal['a-b', 'a b']"),
            }
        }
    });
    assert_eq!(
        errors(expansion.clone()),
        [
            "values \"a-b\" and \"a b\" of field `kind` would both be the variant `AB` of the generated enum `QaKind`; use values that differ in their ASCII letters or digits",
            "input `k` of step `retrieve` is `str`, but the program input declares it `int`; write `k: int`",
        ]
    );
    // The enum cannot be generated, nor the structs that would hold it.
    assert_eq!(items(expansion), ["struct Qa", "const _"]);
}

#[test]
fn an_unknown_type_leaves_the_flow_of_types_unjudged() {
    // `passages` would be a `str` input fed a `list[str]`, but `retrieve`'s signature cannot be
    // read: its outputs are unknown, and the mismatch that follows is not reported.
    let expansion = derive_program(quote! {
        #[program(signature = "question -> answer")]
        struct Qa {
            #[step(python = "Predict", signature = "question -> passages: List[str], n: integer")]
            retrieve: PythonModule,
            #[step(python = "Predict", signature = "question, passages -> answer")]
            answer: PythonModule,
        }
    });
    assert_eq!(
        errors(expansion),
        [
            "unknown type `List[str]` for field `passages` (did you mean `list[str]`?); expected one of `str`, `int`, `float`, `bool`, `list[str]`, `list[int]`, `list[float]`, `dict`, `Literal[\"a\", \"b\"]`"
        ]
    );
}
