//! Programs declared with `dspex_program!` and `#[derive(Program)]`: a program whose steps are
//! all native runs end to end on a local context; its typed accessors read and write the
//! context; a bad write through an accessor is refused and changes nothing. A program with a
//! python step compiles and needs the bridge; when its worker cannot start, attaching it is a
//! clear error naming the interpreter (the programs that run python steps are tested end to end
//! in the `dspex-tests` crate). The runtime builder agrees with the macros, `with`
//! configuration and its checks included. Typed fields flow
//! typed: the generated structs carry Rust types, a `Literal` becomes an enum, and a value of
//! the wrong type (a program input, a step output) is an error naming the field, its type and
//! the value.

use dspex::prelude::*;
use dspex::spec::{ConfigValue, ToolRef};
use dspex::{JsonObject, ProgramBuilder, Step, json};

/// Classifies a question; reports the model it was bound to.
#[derive(Default)]
struct Classify;

impl Module for Classify {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let model = params.get::<String>("llm_model")?;
        let question = inputs.get::<&str>("question")?;
        let kind = if question.starts_with("why") {
            "explanation"
        } else {
            "fact"
        };
        Ok(Fields::from([("category", format!("{kind} ({model})"))]))
    }
}

/// Answers; reports the temperature it was bound to.
#[derive(Default)]
struct Answer;

impl Module for Answer {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let temperature = params.get::<f64>("temperature")?;
        let answer = format!(
            "a {} answer to {:?} at temperature {temperature}",
            inputs.get::<&str>("category")?,
            inputs.get::<&str>("question")?
        );
        Ok(Fields::from([("answer", answer)]))
    }
}

dspex_program! {
    /// Two native steps sharing two variables.
    pub program MacroQa: "question -> answer" {
        variables {
            temperature: float = 0.7 { min: 0.0, max: 2.0 },
            model: choice = "gpt-4o-mini" { choices: ["gpt-4o-mini", "claude-3-haiku"] },
        }
        chain {
            classify: native Classify("question -> category") { model as llm_model },
            answer: native Answer("question, category -> answer") { temperature },
        }
    }
}

/// The same program, derived.
#[derive(Program)]
#[program(signature = "question -> answer")]
pub struct DerivedQa {
    #[variable(initial = 0.7, min = 0.0, max = 2.0)]
    temperature: Var<f64>,
    #[variable(initial = "gpt-4o-mini", choices = ["gpt-4o-mini", "claude-3-haiku"])]
    model: Var<Choice>,
    #[step(native, signature = "question -> category", bind(model as llm_model))]
    classify: Classify,
    #[step(native, signature = "question, category -> answer", bind(temperature))]
    answer: Answer,
}

#[tokio::test]
async fn a_native_macro_program_runs_on_a_local_context() -> Result<()> {
    const { assert!(!MacroQa::REQUIRES_BRIDGE) };
    let qa = MacroQa::start().await?;
    assert_eq!(qa.context().backend().kind, BackendKind::Local);
    let out = qa
        .run(MacroQaInput {
            question: "why is the sky blue".into(),
        })
        .await?;
    assert_eq!(
        out.answer,
        "a explanation (gpt-4o-mini) answer to \"why is the sky blue\" at temperature 0.7"
    );
    Ok(())
}

#[tokio::test]
async fn a_native_derived_program_runs_on_a_local_context() -> Result<()> {
    const { assert!(!DerivedQa::REQUIRES_BRIDGE) };
    let qa = DerivedQa::start().await?;
    assert_eq!(qa.context().backend().kind, BackendKind::Local);
    qa.model().set("claude-3-haiku")?;
    let out = qa
        .run(DerivedQaInput {
            question: "what is DSPy".into(),
        })
        .await?;
    assert_eq!(
        out.answer,
        "a fact (claude-3-haiku) answer to \"what is DSPy\" at temperature 0.7"
    );
    Ok(())
}

#[tokio::test]
async fn run_fields_reports_a_missing_input() -> Result<()> {
    let qa = MacroQa::start().await?;
    let err = qa.run_fields(Fields::new()).await.unwrap_err();
    assert!(matches!(&err, Error::MissingField { field, .. } if field == "question"));
    assert_eq!(
        err.to_string(),
        "`question` is missing from the input of program `MacroQa`"
    );
    Ok(())
}

#[tokio::test]
async fn accessors_read_and_write_the_context() -> Result<()> {
    let qa = MacroQa::start().await?;
    let ctx = qa.context();
    qa.temperature().set(1.5)?;
    assert_eq!(ctx.get::<f64>("temperature")?, 1.5);
    ctx.set("model", "claude-3-haiku")?;
    assert_eq!(qa.model().get()?, "claude-3-haiku");
    assert_eq!(qa.temperature().update(|t| t / 3.0)?, 0.5);

    let derived = DerivedQa::start().await?;
    derived.temperature().set(0.2)?;
    assert_eq!(derived.context().get::<f64>("temperature")?, 0.2);
    derived.context().set("model", "claude-3-haiku")?;
    assert_eq!(derived.model().get()?, "claude-3-haiku");
    Ok(())
}

/// A refused write through an accessor leaves value and version as they were.
fn assert_refused_write_changes_nothing(temperature: &Var<f64>, model: &Var<Choice>) -> Result<()> {
    let before = temperature.record()?;
    let err = temperature.set(2.5).expect_err("2.5 is above max 2.0");
    assert!(matches!(err, Error::ConstraintViolation(_)));
    assert_eq!(err.to_string(), "temperature: 2.5 is above max 2.0");
    let after = temperature.record()?;
    assert_eq!((after.value, after.version), (before.value, before.version));

    let before = model.record()?;
    let err = model.set("gpt-5").expect_err("\"gpt-5\" is not a choice");
    assert_eq!(
        err.to_string(),
        "model: \"gpt-5\" is not one of the choices \"gpt-4o-mini\", \"claude-3-haiku\""
    );
    let after = model.record()?;
    assert_eq!((after.value, after.version), (before.value, before.version));
    Ok(())
}

#[tokio::test]
async fn a_bad_set_through_an_accessor_is_refused_and_changes_nothing() -> Result<()> {
    let qa = MacroQa::start().await?;
    assert_refused_write_changes_nothing(qa.temperature(), qa.model())?;
    let derived = DerivedQa::start().await?;
    assert_refused_write_changes_nothing(derived.temperature(), derived.model())
}

#[tokio::test]
async fn programs_with_identical_declarations_share_a_context() -> Result<()> {
    let ctx = Context::new();
    let a = MacroQa::attach(&ctx).await?;
    let b = DerivedQa::attach(&ctx).await?;
    a.temperature().set(1.9)?;
    assert_eq!(b.temperature().get()?, 1.9);
    assert_eq!(ctx.list(None)?.len(), 2);
    Ok(())
}

dspex_program! {
    /// A python step: compiles, and needs the bridge and a worker.
    program Hybrid: "question -> answer" {
        variables {
            temperature: float = 0.7 { min: 0.0, max: 2.0 },
            reasoning: module = "ChainOfThought",
        }
        chain {
            classify: native Classify("question -> category") { reasoning as llm_model },
            answer: python @reasoning("question, category -> answer") { temperature },
        }
    }
}

#[tokio::test]
async fn a_python_step_whose_worker_cannot_start_is_an_error_naming_the_interpreter() -> Result<()>
{
    const { assert!(Hybrid::REQUIRES_BRIDGE) };
    let ctx = Context::builder()
        .python("/nonexistent/bin/python3")
        .build()
        .await?;
    assert_eq!(ctx.backend().kind, BackendKind::Local);
    match Hybrid::attach(&ctx).await {
        Err(Error::Worker {
            message,
            source: Some(dspex::Cause::Io(io)),
        }) => {
            assert_eq!(
                message,
                "cannot start `/nonexistent/bin/python3 -m dspex_bridge.worker`"
            );
            // The cause is the `io::Error` of the spawn, kept as the source.
            assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
        }
        Err(other) => panic!("expected a worker error, got {other}"),
        Ok(_) => panic!("expected a worker error, the program attached"),
    }
    // The context bridged for the python step and keeps the program's variables.
    let info = ctx.backend();
    assert_eq!(
        (info.kind, info.switches, info.requires_bridge),
        (BackendKind::Bridged, 1, true)
    );
    assert_eq!(ctx.get::<f64>("temperature")?, 0.7);
    Ok(())
}

#[test]
fn the_builder_declares_the_same_spec_as_the_macros() -> Result<()> {
    let built = ProgramBuilder::new("MacroQa")
        .signature("question -> answer")
        .variable(
            VariableSpec::new("temperature", VarType::Float, 0.7)
                .with_constraints(Constraints::range(0.0, 2.0)),
        )
        .variable(
            VariableSpec::new("model", VarType::Choice, "gpt-4o-mini")
                .with_constraints(Constraints::choices(["gpt-4o-mini", "claude-3-haiku"])),
        )
        .step(
            Step::native("classify", "question -> category", Classify)
                .bind_as("model", "llm_model"),
        )
        .step(Step::native("answer", "question, category -> answer", Answer).bind("temperature"))
        .build()?;
    assert_eq!(built.spec(), MacroQa::spec());
    let mut derived = DerivedQa::spec().clone();
    derived.name = "MacroQa".into();
    assert_eq!(&derived, MacroQa::spec());
    Ok(())
}

#[test]
fn the_builder_reports_what_the_macros_report() {
    // Each message is the one the macros print at compile time (see ui-tests/ui/fail).
    let issues = |builder: ProgramBuilder| match builder.build() {
        Err(Error::InvalidProgram { issues, .. }) => issues,
        Err(other) => panic!("expected an invalid program, got {other}"),
        Ok(_) => panic!("expected an invalid program"),
    };
    let with_temperature = || {
        ProgramBuilder::new("Qa")
            .signature("question -> answer")
            .variable(
                VariableSpec::new("temperature", VarType::Float, 0.7)
                    .with_constraints(Constraints::range(0.0, 2.0)),
            )
    };
    assert_eq!(
        issues(
            with_temperature()
                .step(Step::python("answer", "Predict", "question -> answer").bind("temprature"))
        ),
        ["step `answer`: no variable named `temprature` is declared; did you mean `temperature`?"]
    );
    assert_eq!(
        issues(with_temperature().step(Step::python(
            "answer",
            "ChainOfThougt",
            "question -> answer"
        ))),
        [
            "step `answer`: unknown DSPy module `ChainOfThougt` (did you mean `ChainOfThought`?); expected one of `Predict`, `ChainOfThought`, `ReAct`, `ProgramOfThought`, `@variable`, or a dotted path string like \"my_pkg.module.Class\""
        ]
    );
    assert_eq!(
        issues(
            ProgramBuilder::new("Qa")
                .variable(
                    VariableSpec::new("temperature", VarType::Float, 2.5)
                        .with_constraints(Constraints::range(0.0, 2.0))
                )
                .step(Step::python("answer", "Predict", "question -> answer"))
        ),
        ["variable `temperature`: initial value 2.5 is above max 2.0"]
    );
}

#[test]
fn the_builder_reports_a_malformed_signature_once() {
    // `b` would be produced by `classify` if its signature could be read: the builder, like
    // the macros, does not report what follows from that one mistake.
    let err = ProgramBuilder::new("Qa")
        .signature("question -> answer")
        .step(Step::native("classify", "question b", Classify))
        .step(Step::native("answer", "question, b -> answer", Answer))
        .build()
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "invalid program `Qa`: step `classify`: malformed signature `question b`: missing `->` between inputs and outputs"
        )
    );
}

/// Splits a text into words: `str` in, `list[str]` out.
#[derive(Default)]
struct Split;

impl Module for Split {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        let text: &str = inputs.get("text")?;
        Ok(Fields::from([(
            "words",
            text.split_whitespace().collect::<Vec<_>>(),
        )]))
    }
}

/// Scores words: `list[str]` and `int` in; `float`, `Literal` and `dict` out. The score is
/// written as an integer, which a `float` field takes (widened).
#[derive(Default)]
struct Score;

impl Module for Score {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        let words: Vec<String> = inputs.get("words")?;
        let bonus: i64 = inputs.get("bonus")?;
        let score = i64::try_from(words.len()).unwrap_or(i64::MAX) + bonus;
        let mut out = Fields::new();
        out.insert("score", score);
        out.insert("label", if score > 3 { "long" } else { "short" });
        out.insert("meta", json!({ "first": words.first() }));
        Ok(out)
    }
}

dspex_program! {
    /// Typed fields along a chain of native steps.
    pub program TypedMacro: "text, bonus: int -> words: list[str], score: float, label: Literal['short', 'long'], meta: dict" {
        chain {
            split: native Split("text -> words: list[str]"),
            score: native Score("words: list[str], bonus: int -> score: float, label: Literal[\"short\", \"long\"], meta: dict"),
        }
    }
}

/// The same program, derived.
#[derive(Program)]
#[program(
    signature = "text, bonus: int -> words: list[str], score: float, label: Literal['short', 'long'], meta: dict"
)]
pub struct TypedDerived {
    #[step(native, signature = "text -> words: list[str]")]
    split: Split,
    #[step(
        native,
        signature = "words: list[str], bonus: int -> score: float, label: Literal['long', 'short'], meta: dict"
    )]
    score: Score,
    ctx: Context,
}

#[tokio::test]
async fn typed_fields_flow_typed_into_the_generated_structs() -> Result<()> {
    let program = TypedMacro::start().await?;
    let out = program
        .run(TypedMacroInput {
            text: "typed fields flow".into(),
            bonus: 2,
        })
        .await?;
    let meta: JsonObject = json!({ "first": "typed" })
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        out,
        TypedMacroOutput {
            words: vec!["typed".into(), "fields".into(), "flow".into()],
            score: 5.0,
            label: TypedMacroLabel::Long,
            meta,
        }
    );
    // The structs serialize as the fields do; the enum as its values.
    assert_eq!(
        serde_json::to_value(&out).map_err(|e| Error::Internal(e.to_string()))?,
        json!({"words": ["typed", "fields", "flow"], "score": 5.0, "label": "long", "meta": {"first": "typed"}})
    );
    assert_eq!(
        TypedMacroLabel::ALL,
        [TypedMacroLabel::Short, TypedMacroLabel::Long]
    );
    assert_eq!(TypedMacroLabel::Short.to_string(), "short");
    assert_eq!("long".parse::<TypedMacroLabel>(), Ok(TypedMacroLabel::Long));
    assert_eq!(
        "medium".parse::<TypedMacroLabel>().unwrap_err().to_string(),
        "`medium` is not one of \"short\", \"long\""
    );

    let derived = TypedDerived::start().await?;
    let out = derived
        .run(TypedDerivedInput {
            text: "hi".into(),
            bonus: 0,
        })
        .await?;
    assert_eq!((out.score, out.label), (1.0, TypedDerivedLabel::Short));
    Ok(())
}

#[tokio::test]
async fn the_trace_holds_typed_values_in_canonical_form() -> Result<()> {
    let program = TypedMacro::start().await?;
    let (_, trace) = program
        .run_fields_traced(Fields::from([("text", json!("a b")), ("bonus", json!(1))]))
        .await?;
    let score = trace.step("score").map(|s| &s.outputs);
    // The integer the step wrote is a float in its `float` field.
    assert_eq!(score.and_then(|o| o.value("score")), Some(&json!(3.0)));
    assert_eq!(
        trace.step("split").map(|s| s.outputs.to_string()),
        Some(r#"{words: ["a","b"]}"#.to_owned())
    );
    Ok(())
}

#[tokio::test]
async fn a_program_input_of_the_wrong_type_is_refused() -> Result<()> {
    let program = TypedMacro::start().await?;
    let err = program
        .run_fields(Fields::from([
            ("text", json!("a")),
            ("bonus", json!("two")),
        ]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the input of program `TypedMacro`: field `bonus` is declared `int`, but its value is `\"two\"`"
    );
    assert!(matches!(err, Error::Field { error, .. } if error.field == "bonus"));
    Ok(())
}

/// Writes a score that is no number.
#[derive(Default)]
struct WrongScore;

impl Module for WrongScore {
    async fn forward(&self, _: &Fields, _: &Params) -> Result<Fields> {
        Ok(Fields::from([("score", "high ".repeat(40))]))
    }
}

#[tokio::test]
async fn a_step_output_of_the_wrong_type_names_the_step_field_type_and_value() -> Result<()> {
    let program = ProgramBuilder::new("Scorer")
        .signature("text -> score: float")
        .step(Step::native("rate", "text -> score: float", WrongScore))
        .build()?
        .start()
        .await?;
    let err = program
        .run(Fields::from([("text", "x")]))
        .await
        .unwrap_err();
    // The value is quoted up to `dspex_core::MAX_ECHO_CHARS` chars.
    assert_eq!(
        err.to_string(),
        format!(
            "the output of step `rate`: field `score` is declared `float`, but its value is `\"{}... (202 chars)`",
            &"high ".repeat(16)[..63]
        )
    );
    Ok(())
}

#[test]
fn the_builder_declares_typed_programs_as_the_macros_do() -> Result<()> {
    let built = ProgramBuilder::new("TypedMacro")
        .signature("text, bonus: int -> words: list[str], score: float, label: Literal['short', 'long'], meta: dict")
        .step(Step::native("split", "text -> words: list[str]", Split))
        .step(Step::native(
            "score",
            "words: list[str], bonus: int -> score: float, label: Literal['short', 'long'], meta: dict",
            Score,
        ))
        .build()?;
    assert_eq!(built.spec(), TypedMacro::spec());
    Ok(())
}

#[test]
fn the_builder_reports_type_errors_as_the_macros_do() {
    let message = |builder: ProgramBuilder| builder.build().err().map(|e| e.to_string());
    // The messages of ui-tests/ui/fail/unknown-field-type.rs, step-input-type-mismatch.rs and
    // program-output-type-mismatch.rs.
    assert_eq!(
        message(
            ProgramBuilder::new("Qa")
                .signature("question -> answer")
                .step(Step::native("answer", "question: string -> answer", Split))
        )
        .as_deref(),
        Some(
            "invalid program `Qa`: step `answer`: unknown type `string` for field `question` (did you mean `str`?); expected one of `str`, `int`, `float`, `bool`, `list[str]`, `list[int]`, `list[float]`, `dict`, `Literal[\"a\", \"b\"]`"
        )
    );
    assert_eq!(
        message(
            ProgramBuilder::new("Qa")
                .signature("text -> score: float")
                .step(Step::native("split", "text -> words: list[str]", Split))
                .step(Step::native(
                    "score",
                    "words, bonus: int -> score: float",
                    Score
                ))
        )
        .as_deref(),
        Some(
            "invalid program `Qa`: step `score`: input `words` of step `score` is `str`, but step `split` produces it as `list[str]`; write `words: list[str]`; step `score`: input `bonus` of step `score` is not produced by the program input or an earlier step; available: `text`, `words`"
        )
    );
    assert_eq!(
        message(
            ProgramBuilder::new("Qa")
                .signature("text -> words")
                .step(Step::native("split", "text -> words: list[str]", Split))
        )
        .as_deref(),
        Some(
            "invalid program `Qa`: program signature: program output `words` is `str`, but step `split` produces it as `list[str]`; write `words: list[str]`"
        )
    );
}

dspex_program! {
    /// Python steps configured with `with`; declared only, never started here.
    program ConfiguredAgents: "question -> answer" {
        variables {
            iters: integer = 3 { min: 1, max: 10 },
        }
        chain {
            search: python ReAct("question -> findings") { iters as max_iters } with {
                max_iters: 5,
                tools: ["my_pkg.tools.search"],
            },
            answer: python ProgramOfThought("question, findings -> answer") with { interpreter: "local" },
        }
    }
}

#[test]
fn the_builder_declares_with_configuration_as_the_macros_do() -> Result<()> {
    let built = ProgramBuilder::new("ConfiguredAgents")
        .signature("question -> answer")
        .variable(
            VariableSpec::new("iters", VarType::Integer, 3)
                .with_constraints(Constraints::range(1, 10)),
        )
        .step(
            Step::python("search", "ReAct", "question -> findings")
                .bind_as("iters", "max_iters")
                .with("max_iters", 5)
                .with("tools", vec![ToolRef::Python("my_pkg.tools.search".into())]),
        )
        .step(
            Step::python("answer", "ProgramOfThought", "question, findings -> answer")
                .with("interpreter", "local"),
        )
        .build()?;
    assert_eq!(built.spec(), ConfiguredAgents::spec());
    // A list of strings is a list of Python tools too.
    let strings = ProgramBuilder::new("Agent")
        .step(Step::python("search", "ReAct", "question -> findings").with("tools", ["a.b"]))
        .build()?;
    assert_eq!(
        strings.spec().steps[0].config[0].value,
        ConfigValue::Strings(vec!["a.b".into()])
    );
    Ok(())
}

#[test]
fn the_builder_checks_bindings_and_with_configuration_as_the_macros_do() {
    // Each message is the one the macros print at compile time (see ui-tests/ui/fail).
    let issues = |step: Step| match ProgramBuilder::new("Qa")
        .variable(VariableSpec::new("temperature", VarType::Float, 0.7))
        .variable(
            VariableSpec::new("reasoning", VarType::Module, "ReAct")
                .with_constraints(Constraints::choices(["ReAct", "Predict"])),
        )
        .step(step)
        .build()
    {
        Err(Error::InvalidProgram { issues, .. }) => issues,
        Err(other) => panic!("expected an invalid program, got {other}"),
        Ok(_) => panic!("expected an invalid program"),
    };
    assert_eq!(
        issues(
            Step::python("plan", "Predict", "question -> plan")
                .bind_as("temperature", "max_iters")
                .with("tools", ["a.b"])
        ),
        [
            "step `plan`: `Predict` takes no parameter `max_iters`; expected one of `temperature`, `top_p`, `max_tokens`, `n`, `model`",
            "step `plan`: `Predict` takes no tools; only `ReAct` takes `tools`",
        ]
    );
    assert_eq!(
        issues(
            Step::python("answer", "ReAct", "question -> answer")
                .bind_as("temperature", "max_iters")
                .with("max_iters", 0)
                .with("verbose", true)
                .with("max_iters", 2)
        ),
        [
            "step `answer`: parameter `max_iters` needs an integer variable, but `temperature` is a float variable",
            "step `answer`: `ReAct` takes `max_iters` as an integer of at least 1, found 0",
            "step `answer`: `ReAct` takes no `with` key `verbose`; expected one of `max_iters`, `tools`",
            "step `answer`: `with` key `max_iters` is given twice in step `answer`",
        ]
    );
    assert_eq!(
        issues(Step::python("answer", "@reasoning", "question -> answer").with("max_iters", 3)),
        [
            "step `answer`: `@reasoning` may name `Predict`, which takes no `with` key `max_iters`; no `with` key is taken by every module `@reasoning` may name"
        ]
    );
    assert_eq!(
        issues(
            Step::python("answer", "ProgramOfThought", "question -> answer")
                .with("interpreter", "docker")
        ),
        [
            "step `answer`: `ProgramOfThought` takes `interpreter` as one of \"deno\", \"local\", found \"docker\""
        ]
    );
    assert_eq!(
        issues(Step::native("answer", "question -> answer", Answer).with("max_iters", 5)),
        [
            "step `answer`: native step `answer` takes no `with` configuration; `with` configures the DSPy module of a python step, or the adapter of a native `Predict` or `ChainOfThought`"
        ]
    );
}

#[tokio::test]
async fn a_refused_step_leaves_a_running_program_as_it_was() -> Result<()> {
    let mut program = ProgramBuilder::new("Qa")
        .step(Step::native("classify", "question -> category", Classify))
        .build()?
        .start()
        .await?;
    let before = program.spec().clone();
    let err = program
        .add_step(
            Step::python("answer", "ReAct", "question, category -> answer").with("max_iter", 5),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid program `Qa`: step `answer`: `ReAct` takes no `with` key `max_iter` (did you mean `max_iters`?); expected one of `max_iters`, `tools`"
    );
    assert_eq!(program.spec(), &before);
    // The check came first: the context was not upgraded for the python step.
    assert_eq!(program.context().backend().kind, BackendKind::Local);
    Ok(())
}
