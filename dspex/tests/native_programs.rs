//! Programs declared with `dspex_program!` and `#[derive(Program)]`: a program whose steps are
//! all native runs end to end on a local context; its typed accessors read and write the
//! context; a bad write through an accessor is refused and changes nothing. A program with a
//! python step compiles and needs the bridge; when its worker cannot start, attaching it is a
//! clear error naming the interpreter (the programs that run python steps are tested end to end
//! in the `dspex-tests` crate). The runtime builder agrees with the macros.

use dspex::prelude::*;
use dspex::{ProgramBuilder, Step};

/// Classifies a question; reports the model it was bound to.
#[derive(Default)]
struct Classify;

impl Module for Classify {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let model = params.get::<String>("llm_model")?;
        let question = inputs.require("question")?;
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
            inputs.require("category")?,
            inputs.require("question")?
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
            source: Some(source),
        }) => {
            assert_eq!(
                message,
                "cannot start `/nonexistent/bin/python3 -m dspex_bridge.worker`"
            );
            // The cause is the `io::Error` of the spawn, kept as the source.
            let io = source
                .downcast_ref::<std::io::Error>()
                .expect("an io::Error");
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
