//! `with` configuration end to end: programs declared with `dspex_program!`,
//! `#[derive(Program)]` and the runtime builder configure the constructors of real DSPy modules
//! in a real Python worker (offline, scripted LM), and what the configuration says is what the
//! modules do: ReAct runs `max_iters` iterations calling the Python tools it was given, a bound
//! `max_iters` overrides it per call, ProgramOfThought runs on the interpreter it was given,
//! Predict uses its configured temperature until a bound one overrides it, an `@var` step
//! configures each class the variable names. A tool that cannot be imported is an error naming
//! it when the module is created.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use dspex::LmConfig;
use dspex::prelude::*;
use dspex::{ProgramBuilder, Step, StepTrace};
use dspex_tests::worker_config;

/// Every ReAct iteration calls `word_count`, so iterations are countable in the trajectory.
fn tool_calling_lm() -> LmConfig {
    LmConfig::scripted().rule(
        "[[ ## next_tool_name ## ]]",
        [
            ("next_thought", "count the words"),
            ("next_tool_name", "word_count"),
            ("next_tool_args", r#"{"text": "one two three"}"#),
        ],
    )
}

async fn context(lm: LmConfig) -> Context {
    Context::builder()
        .worker(worker_config())
        .lm(lm)
        .build()
        .await
        .unwrap()
}

/// How many tool calls a ReAct step made, from the trajectory it returned.
fn tool_calls(step: &StepTrace) -> usize {
    let trajectory: &str = step.outputs.get("trajectory").unwrap();
    assert!(
        trajectory.contains(r#""observation_0": 3"#),
        "the tool ran: {trajectory}"
    );
    trajectory.matches(r#""tool_name_"#).count()
}

dspex_program! {
    /// An agent with a Python tool, whose iterations a variable can override per call.
    program Counter: "question -> answer" {
        variables {
            iters: integer = 2 { min: 1, max: 5 },
        }
        chain {
            count: python ReAct("question -> answer") with {
                max_iters: 3,
                tools: ["sample_modules.word_count"],
            },
            recount: python ReAct("question, answer -> summary") { iters as max_iters } with {
                max_iters: 4,
                tools: ["sample_modules.word_count"],
            },
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn react_runs_its_configured_iterations_with_its_python_tools() {
    let ctx = context(tool_calling_lm()).await;
    let counter = Counter::attach(&ctx).await.unwrap();
    let input = CounterInput {
        question: "How many words are in 'one two three'?".into(),
    };
    let (_, trace) = counter.run_traced(input.clone()).await.unwrap();
    let count = trace.step("count").unwrap();
    assert_eq!(tool_calls(count), 3);
    // One LM call per iteration, and one to extract the answer.
    assert_eq!(count.lm_calls.len(), 4);
    // The bound variable wins over the configured value, call by call.
    assert_eq!(tool_calls(trace.step("recount").unwrap()), 2);
    counter.iters().set(1).unwrap();
    let (_, trace) = counter.run_traced(input).await.unwrap();
    assert_eq!(tool_calls(trace.step("recount").unwrap()), 1);
    assert_eq!(tool_calls(trace.step("count").unwrap()), 3);
}

#[derive(Program)]
#[program(signature = "question -> answer")]
struct Tempered {
    #[variable(initial = 0.9, min = 0.0, max = 2.0)]
    temperature: Var<f64>,
    #[step(
        python = "Predict",
        signature = "question -> draft",
        with(temperature = 0, max_tokens = 64)
    )]
    draft: PythonModule,
    #[step(
        python = "Predict",
        signature = "question, draft -> answer",
        bind(temperature),
        with(temperature = 0.1)
    )]
    answer: PythonModule,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_uses_its_configured_settings_until_a_bound_variable_overrides_them() {
    let ctx = context(LmConfig::scripted()).await;
    let tempered = Tempered::attach(&ctx).await.unwrap();
    let (_, trace) = tempered
        .run_traced(TemperedInput {
            question: "What is DSPy?".into(),
        })
        .await
        .unwrap();
    let draft = &trace.step("draft").unwrap().lm_calls[0];
    // `temperature = 0` reached the constructor as the float 0.0.
    assert_eq!((draft.temperature, draft.max_tokens), (Some(0.0), Some(64)));
    assert_eq!(
        trace.step("answer").unwrap().lm_calls[0].temperature,
        Some(0.9)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn program_of_thought_runs_on_the_configured_interpreter() {
    let ctx = context(LmConfig::scripted()).await;
    let program = ProgramBuilder::new("Solver")
        .step(
            Step::python("solve", "ProgramOfThought", "question -> answer")
                .with("interpreter", "local")
                .with("max_iters", 2),
        )
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap();
    let (out, trace) = program
        .run_traced(Fields::from([("question", "What is 2 + 2?")]))
        .await
        .unwrap();
    assert!(!out.get::<&str>("answer").unwrap().is_empty());
    // The generated code ran at the first attempt (a failed run would be retried, and fail
    // the step after `max_iters`), then the answer: two LM calls.
    assert_eq!(trace.step("solve").unwrap().lm_calls.len(), 2);
}

dspex_program! {
    /// One step whose class a variable picks; its configuration suits both classes.
    program Switching: "question -> answer" {
        variables {
            reasoning: module = "Predict" { choices: ["Predict", "ChainOfThought"] },
        }
        chain {
            answer: python @reasoning("question -> answer") with { temperature: 0, top_p: 0.5 },
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_var_step_configures_each_class_the_variable_names() {
    let ctx = context(LmConfig::scripted()).await;
    let program = Switching::attach(&ctx).await.unwrap();
    let input = SwitchingInput {
        question: "What is DSPy?".into(),
    };
    for class in ["Predict", "ChainOfThought"] {
        program.reasoning().set(class).unwrap();
        let (_, trace) = program.run_traced(input.clone()).await.unwrap();
        let step = trace.step("answer").unwrap();
        assert_eq!(step.runner, dspex::StepRunner::Python(class.to_owned()));
        let call = &step.lm_calls[0];
        assert_eq!(
            (call.temperature, call.top_p),
            (Some(0.0), Some(0.5)),
            "{class}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_cannot_be_imported_is_an_error_naming_it() {
    let ctx = context(LmConfig::scripted()).await;
    let err = ProgramBuilder::new("Agent")
        .step(Step::python("agent", "ReAct", "question -> answer").with(
            "tools",
            ["sample_modules.word_count", "sample_modules.no_such_tool"],
        ))
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot import tool 'sample_modules.no_such_tool'"),
        "{err}"
    );
    // The context is fine: a correct step attaches next.
    ProgramBuilder::new("Agent")
        .step(
            Step::python("agent", "ReAct", "question -> answer")
                .with("tools", ["sample_modules.word_count"]),
        )
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap();
}
