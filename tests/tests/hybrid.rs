//! Hybrid programs end to end: declared programs with native and python steps run with real
//! Python workers running real DSPy modules on the offline scripted LM. Each python call carries
//! the values of its bound variables, read in one snapshot: the LM requests use exactly them (as
//! the worker's per-call LM records them), concurrent runs never see each other's, and the
//! worker never reads them back from the store. Calls run concurrently, up to a per-process
//! limit, across a pool of processes; `@var` steps take their class from a variable at run
//! time; a running native program upgrades its context when a python step is added; faults (a
//! worker killed during a call, a pool member killed while calls continue, a module that
//! raises, an unknown class, an interpreter without DSPy) give clear errors and lose nothing;
//! and no worker process outlives its context or its Rust process.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use dspex::prelude::*;
use dspex::{LmCall, ProgramBuilder, Step, StepTrace};
use dspex_tests::{LogEvents, Marker, process_alive, wait_gone, wait_gone_blocking, worker_config};

/// Classifies a question, saying which model it was bound to.
#[derive(Default)]
struct Classify;

impl Module for Classify {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        let question = inputs.get::<&str>("question")?;
        let kind = if question.to_lowercase().starts_with("why") {
            "explanation"
        } else {
            "fact"
        };
        let model = params.get::<String>("llm_model")?;
        Ok(Fields::from([(
            "category",
            format!("{kind} (for {model})"),
        )]))
    }
}

dspex_program! {
    /// The README's program: a native classifier, then DSPy's ChainOfThought.
    program QaPipeline: "question -> answer" {
        variables {
            temperature: float = 0.7 { min: 0.0, max: 2.0 },
            max_tokens: integer = 256 { min: 1, max: 4096 },
            model: choice = "gpt-4o-mini" { choices: ["gpt-4o-mini", "claude-3-haiku"] },
        }
        chain {
            classify: native Classify("question -> category") { model as llm_model },
            answer: python ChainOfThought("question, category -> answer") { temperature, max_tokens, model },
        }
    }
}

#[derive(Program)]
#[program(signature = "question -> answer")]
struct DerivedQa {
    #[variable(initial = 0.3, min = 0.0, max = 2.0)]
    temperature: Var<f64>,
    #[variable(initial = "Predict", choices = ["Predict", "ChainOfThought"])]
    reasoning: Var<ModuleName>,
    #[variable(initial = "gpt-4o-mini", choices = ["gpt-4o-mini", "claude-3-haiku"])]
    model: Var<Choice>,
    #[step(native, signature = "question -> category", bind(model as llm_model))]
    classify: Classify,
    #[step(
        python = "@reasoning",
        signature = "question, category -> answer",
        bind(temperature)
    )]
    answer: PythonModule,
}

async fn context() -> Context {
    Context::builder()
        .worker(worker_config())
        .build()
        .await
        .unwrap()
}

/// A program of one python step (no variables) attached to `ctx`.
async fn one_python_step(
    ctx: &Context,
    program: &str,
    step: &str,
    module: &str,
    signature: &str,
) -> dspex::RunningProgram {
    ProgramBuilder::new(program)
        .step(Step::python(step, module, signature))
        .build()
        .unwrap()
        .attach(ctx)
        .await
        .unwrap()
}

fn only_call(step: &StepTrace) -> &LmCall {
    assert_eq!(step.lm_calls.len(), 1, "{step:?}");
    &step.lm_calls[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_creates_a_bridged_context_whose_worker_runs_the_python_step() {
    const { assert!(QaPipeline::REQUIRES_BRIDGE) };
    // `start` picks the backend from the declaration; the worker's interpreter comes from
    // DSPEX_PYTHON (the workspace's .cargo/config.toml points it at .venv).
    let qa = QaPipeline::start().await.unwrap();
    let info = qa.context().backend();
    assert_eq!((info.kind, info.switches), (BackendKind::Bridged, 0));
    let status = qa.context().worker_status().unwrap();
    assert!(status.pid.is_some_and(process_alive));

    let (out, trace) = qa
        .run_traced(QaPipelineInput {
            question: "What is DSPy?".into(),
        })
        .await
        .unwrap();
    assert_eq!(out.answer, "[scripted answer] What is DSPy?");
    let classify = trace.step("classify").unwrap();
    assert_eq!(
        classify.outputs.get::<&str>("category").unwrap(),
        "fact (for gpt-4o-mini)"
    );
    let answer = trace.step("answer").unwrap();
    assert_eq!(answer.runner.to_string(), "python ChainOfThought");
    assert_eq!(
        answer.inputs.get::<&str>("category").unwrap(),
        "fact (for gpt-4o-mini)"
    );
    assert!(
        answer
            .outputs
            .get::<&str>("reasoning")
            .unwrap()
            .starts_with("[scripted reasoning]")
    );
    let call = only_call(answer);
    assert_eq!(
        (call.model.as_str(), call.temperature, call.max_tokens),
        ("gpt-4o-mini", Some(0.7), Some(256))
    );
    // The trace's parameters are the values the call carried; the scripted LM reports usage.
    assert_eq!(answer.params.get::<f64>("temperature").unwrap(), 0.7);
    assert!(call.prompt_tokens.is_some_and(|t| t > 0), "{call:?}");
    assert!(call.completion_tokens.is_some_and(|t| t > 0), "{call:?}");

    // A Rust `set` of a bound variable changes the next python call's LM settings.
    qa.temperature().set(1.5).unwrap();
    qa.max_tokens().update(|n| n / 4).unwrap();
    qa.model().set("claude-3-haiku").unwrap();
    let (_, trace) = qa
        .run_traced(QaPipelineInput {
            question: "Why is the sky blue?".into(),
        })
        .await
        .unwrap();
    let call = only_call(trace.step("answer").unwrap());
    assert_eq!(
        (call.model.as_str(), call.temperature, call.max_tokens),
        ("claude-3-haiku", Some(1.5), Some(64))
    );
    assert_eq!(
        trace
            .step("classify")
            .unwrap()
            .outputs
            .get::<&str>("category")
            .unwrap(),
        "explanation (for claude-3-haiku)"
    );
    // A refused write changes nothing, and the next call still uses the last accepted value.
    assert!(qa.temperature().set(2.5).is_err());
    let (_, trace) = qa.run_traced(QaPipelineInput::default()).await.unwrap();
    assert_eq!(
        only_call(trace.step("answer").unwrap()).temperature,
        Some(1.5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_var_step_takes_its_dspy_class_from_the_variable_at_run_time() {
    let ctx = context().await;
    let qa = DerivedQa::attach(&ctx).await.unwrap();
    let input = || DerivedQaInput {
        question: "What is a module?".into(),
    };
    let (out, trace) = qa.run_traced(input()).await.unwrap();
    assert_eq!(out.answer, "[scripted answer] What is a module?");
    let answer = trace.step("answer").unwrap();
    assert_eq!(answer.runner.to_string(), "python Predict");
    assert!(!answer.outputs.contains("reasoning"));
    assert_eq!(only_call(answer).temperature, Some(0.3));

    qa.reasoning().set("ChainOfThought").unwrap();
    let (_, trace) = qa.run_traced(input()).await.unwrap();
    let answer = trace.step("answer").unwrap();
    assert_eq!(answer.runner.to_string(), "python ChainOfThought");
    assert!(answer.outputs.contains("reasoning"));
    // The class is not among the allowed modules: the write is refused.
    assert!(qa.reasoning().set("ReAct").is_err());
    assert_eq!(ctx.worker_status().unwrap().modules, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_reach_native_and_python_steps_and_leave_the_context_alone() {
    let ctx = context().await;
    let qa = DerivedQa::attach(&ctx).await.unwrap();
    let input = || DerivedQaInput {
        question: "What is a module?".into(),
    };
    // `model` is read by the native step: the run sees the override, the context does not.
    let overrides = dspex::Overrides::new().with("model", "claude-3-haiku");
    let (_, trace) = qa.run_with_traced(&overrides, input()).await.unwrap();
    let classify = trace.step("classify").unwrap();
    assert_eq!(
        classify.params.get::<String>("llm_model").unwrap(),
        "claude-3-haiku"
    );
    assert_eq!(qa.model().get().unwrap(), "gpt-4o-mini");
    // `temperature` is bound to the python step and `reasoning` names its class: the call
    // carries the overridden temperature to the worker, and runs the overriding class.
    let overrides = dspex::Overrides::new()
        .with("temperature", 0.9)
        .with("reasoning", "ChainOfThought");
    let (out, trace) = qa.run_with_traced(&overrides, input()).await.unwrap();
    assert_eq!(out.answer, "[scripted answer] What is a module?");
    let answer = trace.step("answer").unwrap();
    assert_eq!(answer.runner.to_string(), "python ChainOfThought");
    assert!(answer.outputs.contains("reasoning"));
    assert_eq!(answer.params.get::<f64>("temperature").unwrap(), 0.9);
    assert_eq!(only_call(answer).temperature, Some(0.9));
    // The context is untouched, and the next plain run uses its values.
    assert_eq!(qa.temperature().get().unwrap(), 0.3);
    assert_eq!(qa.reasoning().get().unwrap(), "Predict");
    let (_, trace) = qa.run_traced(input()).await.unwrap();
    let answer = trace.step("answer").unwrap();
    assert_eq!(answer.runner.to_string(), "python Predict");
    assert_eq!(only_call(answer).temperature, Some(0.3));
    // An override the variable refuses fails the run before any step runs.
    let err = qa
        .run_with(&dspex::Overrides::new().with("reasoning", "ReAct"), input())
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("reasoning: "), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_python_step_upgrades_a_running_native_program_once() {
    let ctx = context().await;
    let mut program = ProgramBuilder::new("Growing")
        .variable(
            VariableSpec::new("temperature", VarType::Float, 0.2)
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
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap();
    let out = program
        .run(Fields::from([("question", "Why?")]))
        .await
        .unwrap();
    assert_eq!(
        out.get::<&str>("category").unwrap(),
        "explanation (for gpt-4o-mini)"
    );
    assert_eq!(ctx.backend().kind, BackendKind::Local);
    ctx.set("temperature", 0.9).unwrap();
    let before = ctx.list(None).unwrap();

    program
        .add_step(
            Step::python("answer", "Predict", "question, category -> answer").bind("temperature"),
        )
        .await
        .unwrap();
    let info = ctx.backend();
    assert_eq!((info.kind, info.switches), (BackendKind::Bridged, 1));
    assert!(info.last_switch.is_some());
    // Every variable is intact: ids, values, versions, constraints.
    let after = ctx.list(None).unwrap();
    assert_eq!(after.len(), before.len());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (b.id, &b.name, &b.value, b.version, &b.constraints),
            (a.id, &a.name, &a.value, a.version, &a.constraints)
        );
        assert_eq!(a.metadata["migrated_from"], "local");
    }
    let (out, trace) = program
        .run_traced(Fields::from([("question", "What now?")]))
        .await
        .unwrap();
    assert_eq!(
        out.get::<&str>("answer").unwrap(),
        "[scripted answer] What now?"
    );
    assert_eq!(
        only_call(trace.step("answer").unwrap()).temperature,
        Some(0.9)
    );

    // A second python step does not switch again.
    program
        .add_step(Step::python(
            "review",
            "ChainOfThought",
            "answer -> verdict",
        ))
        .await
        .unwrap();
    program
        .run(Fields::from([("question", "Again?")]))
        .await
        .unwrap();
    assert_eq!(ctx.backend().switches, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_during_a_call_fails_that_call_and_comes_back_with_everything() {
    let ctx = context().await;
    let program = ProgramBuilder::new("Faulty")
        .variable(VariableSpec::new("temperature", VarType::Float, 0.4))
        .step(Step::python(
            "slow",
            "sample_modules.Sleeper",
            "seconds, notify -> done",
        ))
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap();
    // Declares the same variable: the two programs share it.
    let quick = ProgramBuilder::new("Quick")
        .variable(VariableSpec::new("temperature", VarType::Float, 0.4))
        .step(Step::python("answer", "Predict", "question -> answer").bind("temperature"))
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap();
    let pid = ctx.worker_status().unwrap().pid.unwrap();
    let versions = ctx.list(None).unwrap();

    // The module reports to `marker` once the call is under way in the worker.
    let marker = Marker::new().await;
    let notify = marker.address().to_owned();
    let call = tokio::spawn(async move {
        program
            .run(Fields::from([
                ("seconds", "60"),
                ("notify", notify.as_str()),
            ]))
            .await
    });
    assert_eq!(marker.line().await, "call started");
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();

    let err = call.await.unwrap().unwrap_err();
    match &err {
        Error::Worker { message, .. } => assert!(
            message.contains(&format!("pid {pid}")) && message.contains("exited"),
            "{message}"
        ),
        other => panic!("expected a worker error, got {other}"),
    }
    assert!(wait_gone(pid, Duration::from_secs(10)).await);

    // The next call waits for the restarted worker; its modules were created again.
    let (out, trace) = quick
        .run_traced(Fields::from([("question", "Still there?")]))
        .await
        .unwrap();
    assert_eq!(
        out.get::<&str>("answer").unwrap(),
        "[scripted answer] Still there?"
    );
    assert_eq!(
        only_call(trace.step("answer").unwrap()).temperature,
        Some(0.4)
    );
    let status = ctx.worker_status().unwrap();
    assert_eq!(status.restarts, 1);
    assert_ne!(status.pid, Some(pid));
    assert_eq!(
        ctx.list(None).unwrap(),
        versions,
        "a variable changed across the crash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stops_answering_health_checks_is_replaced() {
    // Short enough for a quick test, long enough that a busy but healthy worker (the new one,
    // on a loaded machine) is never taken for a hung one.
    let config = worker_config()
        .health_interval(Duration::from_millis(200))
        .health_timeout(Duration::from_secs(1));
    let ctx = Context::builder().worker(config).build().await.unwrap();
    let program = one_python_step(&ctx, "Watched", "answer", "Predict", "question -> answer").await;
    let pid = ctx.worker_status().unwrap().pid.unwrap();
    // A stopped process is alive but answers nothing.
    Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(
        wait_gone(pid, Duration::from_secs(30)).await,
        "the hung worker {pid} was not replaced"
    );
    let out = program
        .run(Fields::from([("question", "back?")]))
        .await
        .unwrap();
    assert_eq!(
        out.get::<&str>("answer").unwrap(),
        "[scripted answer] back?"
    );
    let status = ctx.worker_status().unwrap();
    assert_eq!(status.restarts, 1);
    assert!(status.pid.is_some_and(|p| p != pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_errors_and_unknown_classes_are_clear_errors() {
    let ctx = context().await;
    let program = one_python_step(
        &ctx,
        "Raising",
        "boom",
        "sample_modules.Exploding",
        "question -> answer",
    )
    .await;
    match program.run(Fields::from([("question", "q")])).await {
        Err(Error::Python {
            step,
            exception,
            message,
        }) => {
            assert_eq!(step, "boom");
            assert_eq!(exception.as_deref(), Some("RuntimeError"));
            assert_eq!(message, "RuntimeError: the module exploded on 'q'");
        }
        other => panic!("expected a python error, got {other:?}"),
    }

    let unknown = ProgramBuilder::new("Unknown")
        .step(Step::python(
            "answer",
            "no_such_pkg.Answerer",
            "question -> answer",
        ))
        .build()
        .unwrap()
        .attach(&ctx)
        .await;
    match unknown {
        Err(Error::Python { step, message, .. }) => {
            assert_eq!(step, "answer");
            assert!(
                message.contains("cannot import module class 'no_such_pkg.Answerer'"),
                "{message}"
            );
        }
        other => panic!("expected a python error, got {:?}", other.map(|_| ())),
    }
    // A module variable may name only the classes it allows; one the worker cannot import is
    // reported when the variable first names it.
    let by_var = ProgramBuilder::new("ByVar")
        .variable(
            VariableSpec::new("reasoning", VarType::Module, "Predict")
                .with_constraints(Constraints::choices(["Predict", "sample_modules.Missing"])),
        )
        .step(Step::python("answer", "@reasoning", "question -> answer"))
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap();
    ctx.set("reasoning", "sample_modules.Missing").unwrap();
    let err = by_var
        .run(Fields::from([("question", "q")]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("sample_modules has no 'Missing'"),
        "{err}"
    );
    // The worker is fine: the next call with a valid class works.
    ctx.set("reasoning", "Predict").unwrap();
    by_var.run(Fields::from([("question", "q")])).await.unwrap();
    assert_eq!(ctx.worker_status().unwrap().restarts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interpreter_without_dspy_is_a_clear_error_naming_it() {
    // A bare virtual environment: Python without DSPy (nor grpc), with dspex_bridge importable.
    let dir = std::env::temp_dir().join(format!("dspex-bare-venv-{}", std::process::id()));
    let status = Command::new(dspex_tests::python())
        .args(["-m", "venv", "--without-pip", "--clear"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let bare = dir.join("bin/python");
    let config = worker_config().python(&bare).env(
        "PYTHONPATH",
        dspex_tests::workspace_root()
            .join("python")
            .display()
            .to_string(),
    );
    let ctx = Context::builder().worker(config).build().await.unwrap();
    let err = ctx.start_worker().await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Worker { .. }));
    assert!(
        message.contains(&format!(
            "python worker `{}` exited with status 3 before it was ready",
            bare.display()
        )),
        "{message}"
    );
    assert!(message.contains("could not import dspy"), "{message}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_context_stops_its_worker() {
    let ctx = context().await;
    let qa = QaPipeline::attach(&ctx).await.unwrap();
    qa.run(QaPipelineInput::default()).await.unwrap();
    let pid = ctx.worker_status().unwrap().pid.unwrap();
    assert!(process_alive(pid));
    drop(qa);
    drop(ctx);
    assert!(
        wait_gone(pid, Duration::from_secs(15)).await,
        "worker {pid} survived its context"
    );
}

#[test]
fn a_worker_does_not_outlive_its_rust_process() {
    let host = env!("CARGO_BIN_EXE_worker_host");
    let mut child = Command::new(host)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let pid = u32::try_from(ready["worker_pid"].as_u64().unwrap()).unwrap();
    assert!(process_alive(pid));
    // SIGKILL: no destructor runs in the host; the worker notices its closed stdin.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_gone_blocking(pid, Duration::from_secs(15)),
        "worker {pid} outlived its Rust process"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shut_down_worker_is_started_again_by_the_next_python_step() {
    let ctx = context().await;
    let qa = QaPipeline::attach(&ctx).await.unwrap();
    qa.run(QaPipelineInput::default()).await.unwrap();
    let first = ctx.worker_status().unwrap().pid.unwrap();
    ctx.shutdown_worker().await;
    assert!(wait_gone(first, Duration::from_secs(10)).await);
    assert!(ctx.worker_status().is_none());
    // The step starts a new worker and creates its module there again.
    let (out, trace) = qa
        .run_traced(QaPipelineInput {
            question: "Back?".into(),
        })
        .await
        .unwrap();
    assert_eq!(out.answer, "[scripted answer] Back?");
    assert_eq!(
        only_call(trace.step("answer").unwrap()).temperature,
        Some(0.7)
    );
    let second = ctx.worker_status().unwrap();
    assert!(second.pid.is_some_and(|p| p != first));
    assert_eq!(second.modules, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_program_releases_its_modules_in_the_worker() {
    let ctx = context().await;
    let keep = QaPipeline::attach(&ctx).await.unwrap();
    let other = one_python_step(&ctx, "Temporary", "answer", "Predict", "question -> answer").await;
    assert_eq!(ctx.worker_status().unwrap().modules, 2);
    drop(other);
    assert_eq!(ctx.worker_status().unwrap().modules, 1);
    keep.run(QaPipelineInput::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_worker_starts_does_not_outlive_it() {
    let ctx = context().await;
    let program = one_python_step(
        &ctx,
        "Spawning",
        "spawn",
        "sample_modules.Spawner",
        "go -> pid",
    )
    .await;
    let out = program.run(Fields::from([("go", "now")])).await.unwrap();
    let grandchild: u32 = out.get::<&str>("pid").unwrap().parse().unwrap();
    assert!(process_alive(grandchild));
    drop(program);
    drop(ctx);
    assert!(
        wait_gone(grandchild, Duration::from_secs(15)).await,
        "process {grandchild}, started by the worker, outlived it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_dropped_while_its_worker_cannot_restart_stops_trying() {
    // An interpreter that works for the first start only: after that it fails at once.
    let dir = std::env::temp_dir().join(format!("dspex-flaky-python-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (script, marker, log) = (dir.join("python"), dir.join("first"), dir.join("starts"));
    std::fs::write(&marker, "").unwrap();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho start >> {log}\nif [ -e {marker} ]; then rm {marker}; exec {python} \"$@\"; fi\necho 'no python today' >&2\nexit 1\n",
            log = log.display(),
            marker = marker.display(),
            python = dspex_tests::python().display(),
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    // What the supervisor of this context (the only one with this interpreter) reports.
    let mut reports = LogEvents::containing(&script.display().to_string());
    let ctx = Context::builder()
        .worker(worker_config().python(&script))
        .build()
        .await
        .unwrap();
    let program = one_python_step(&ctx, "Fragile", "answer", "Predict", "question -> answer").await;
    let pid = ctx.worker_status().unwrap().pid.unwrap();
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    // The restarts fail; the next call says why instead of hanging.
    for _ in 0..2 {
        reports.next_with("cannot restart the python worker").await;
    }
    let starts = || std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(
        starts() >= 3,
        "the supervisor did not try to restart the worker"
    );
    let err = program
        .run(Fields::from([("question", "q")]))
        .await
        .unwrap_err();
    assert!(err.report().contains("could not be restarted"), "{err:?}");
    drop(program);
    drop(ctx);
    let after_drop = starts();
    // The supervisor's restart loop wakes up after its backoff, finds the context gone and
    // stops: from then on nothing can start the interpreter again. At most the attempt that
    // was under way at the drop finished meanwhile.
    reports.next_with("python worker monitor stopped").await;
    assert!(
        starts() <= after_drop + 1,
        "restart attempts went on after the context was dropped: {after_drop} starts at the drop, {} when the supervisor stopped",
        starts()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_steps_carry_their_values_and_never_read_the_store() {
    let server =
        dspex::bridge::BridgeServer::start(dspex::bridge::BridgeConfig::default()).unwrap();
    let ctx = Context::builder()
        .server(server.clone())
        .worker(worker_config())
        .build()
        .await
        .unwrap();
    let qa = QaPipeline::attach(&ctx).await.unwrap();
    qa.run(QaPipelineInput::default()).await.unwrap();
    // With the store gone, the worker could not read a variable if it tried.
    server.shutdown().await;
    qa.temperature().set(0.1).unwrap();
    let (_, trace) = tokio::time::timeout(
        Duration::from_secs(60),
        qa.run_traced(QaPipelineInput::default()),
    )
    .await
    .expect("the call hung")
    .unwrap();
    let answer = trace.step("answer").unwrap();
    assert_eq!(only_call(answer).temperature, Some(0.1));
    assert_eq!(answer.params.get::<f64>("temperature").unwrap(), 0.1);
}

dspex_program! {
    /// One python step bound to a temperature, on a slow scripted LM.
    program Tempered: "question -> answer" {
        variables {
            temperature: float = 0.0 { min: 0.0, max: 2.0 },
        }
        chain {
            answer: python Predict("question -> answer") { temperature },
        }
    }
}

/// The most calls in flight a context's worker processes report, polled until `count` is seen
/// or `done` says the calls are over (a liveness bound, not a timing assertion).
async fn most_in_flight(ctx: &Context, count: usize, done: impl Fn() -> bool) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut most = 0;
    while tokio::time::Instant::now() < deadline && !done() {
        let status = ctx.worker_status().unwrap();
        most = most.max(status.processes.iter().map(|p| p.calls_in_flight).sum());
        if most >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    most
}

/// A context whose worker answers every LM request after 400 ms (so that concurrent calls
/// overlap), with `Tempered` attached to it.
async fn slow_tempered() -> (Context, std::sync::Arc<Tempered>) {
    let lm = dspex::LmConfig::scripted().delay(Duration::from_millis(400));
    let ctx = Context::builder()
        .worker(worker_config())
        .lm(lm)
        .build()
        .await
        .unwrap();
    let program = std::sync::Arc::new(Tempered::attach(&ctx).await.unwrap());
    (ctx, program)
}

/// Starts `runs` concurrent runs of `program`: run `i` asks `q{i}` with `overrides(i)`, once
/// `ready(i)` is done; `finished` counts the runs that ended.
fn start_tempered_runs<R>(
    program: &std::sync::Arc<Tempered>,
    runs: usize,
    finished: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ready: impl Fn(usize) -> R,
    overrides: impl Fn(usize) -> dspex::Overrides,
) -> Vec<tokio::task::JoinHandle<Result<(TemperedOutput, dspex::RunTrace)>>>
where
    R: std::future::Future<Output = ()> + Send + 'static,
{
    (0..runs)
        .map(|i| {
            let (program, finished) = (
                std::sync::Arc::clone(program),
                std::sync::Arc::clone(finished),
            );
            let (ready, overrides) = (ready(i), overrides(i));
            tokio::spawn(async move {
                ready.await;
                let input = TemperedInput {
                    question: format!("q{i}"),
                };
                let traced = program.run_with_traced(&overrides, input).await;
                finished.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                traced
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_each_use_the_values_of_their_own_snapshot() {
    let (ctx, program) = slow_tempered().await;
    let runs = 32;
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // A writer changes the bound variable while the runs read it, and says how many writes it
    // made; run `i` starts after the writer's `i`th write, so the runs read different values.
    let (written, _) = tokio::sync::watch::channel(0usize);
    let writer = {
        let program = std::sync::Arc::clone(&program);
        let finished = std::sync::Arc::clone(&finished);
        let written = written.clone();
        tokio::spawn(async move {
            let mut step = 0usize;
            while finished.load(std::sync::atomic::Ordering::Acquire) < runs {
                step += 1;
                let value = u32::try_from(step % 200).unwrap();
                program.temperature().set(f64::from(value) / 100.0).unwrap();
                written.send_replace(step);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            step
        })
    };
    let tasks = start_tempered_runs(
        &program,
        runs,
        &finished,
        |i| {
            let mut written = written.subscribe();
            async move {
                written.wait_for(|step| *step > i).await.unwrap();
            }
        },
        |_| dspex::Overrides::new(),
    );
    // No module-wide lock: the runs are in flight together.
    let done = || finished.load(std::sync::atomic::Ordering::Acquire) == runs;
    assert!(most_in_flight(&ctx, runs, done).await >= runs / 2);
    let mut seen = std::collections::BTreeSet::new();
    for (i, task) in tasks.into_iter().enumerate() {
        let (out, trace) = task.await.unwrap().unwrap();
        assert_eq!(out.answer, format!("[scripted answer] q{i}"));
        let answer = trace.step("answer").unwrap();
        let read = answer.params.get::<f64>("temperature").unwrap();
        // The LM received exactly the value this run's snapshot read.
        assert_eq!(only_call(answer).temperature, Some(read), "run {i}");
        seen.insert(read.to_bits());
    }
    assert!(writer.await.unwrap() > 1);
    assert!(seen.len() > 1, "every run read the same value: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_with_overrides_each_use_their_own_values() {
    let (ctx, program) = slow_tempered().await;
    let runs = 32;
    let temperature = |i: usize| f64::from(u32::try_from(i).unwrap()) / 20.0;
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks = start_tempered_runs(
        &program,
        runs,
        &finished,
        |_| std::future::ready(()),
        |i| dspex::Overrides::new().with("temperature", temperature(i)),
    );
    // The runs are in flight together, in one worker.
    let done = || finished.load(std::sync::atomic::Ordering::Acquire) == runs;
    assert!(most_in_flight(&ctx, runs, done).await >= runs / 2);
    for (i, task) in tasks.into_iter().enumerate() {
        let (out, trace) = task.await.unwrap().unwrap();
        assert_eq!(out.answer, format!("[scripted answer] q{i}"));
        let answer = trace.step("answer").unwrap();
        // The trace shows what the call carried, and the LM received exactly that.
        assert_eq!(
            answer.params.get::<f64>("temperature").unwrap(),
            temperature(i),
            "run {i}"
        );
        assert_eq!(
            only_call(answer).temperature,
            Some(temperature(i)),
            "run {i}"
        );
    }
    // The context was never written.
    assert_eq!(program.temperature().get().unwrap(), 0.0);
    assert_eq!(program.temperature().history(100).unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_the_per_process_limit_wait_their_turn() {
    let ctx = Context::builder()
        .worker(worker_config().max_concurrent_calls(2))
        .build()
        .await
        .unwrap();
    let program = std::sync::Arc::new(
        one_python_step(
            &ctx,
            "Limited",
            "overlap",
            "sample_modules.Overlap",
            "seconds -> peak",
        )
        .await,
    );
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let program = std::sync::Arc::clone(&program);
            tokio::spawn(async move { program.run(Fields::from([("seconds", "0.4")])).await })
        })
        .collect();
    let mut peaks = Vec::new();
    for task in tasks {
        // Every call ran (none was refused): the ones over the limit waited on the Rust side.
        let out = task.await.unwrap().unwrap();
        peaks.push(out.get::<&str>("peak").unwrap().parse::<usize>().unwrap());
    }
    // At the limit, never over it.
    assert_eq!(peaks.iter().max(), Some(&2), "{peaks:?}");
    let status = ctx.worker_status().unwrap();
    assert_eq!(status.processes[0].calls_in_flight, 0);
    // Out-of-range configurations are refused before anything starts.
    for config in [
        worker_config().max_concurrent_calls(dspex::worker::MAX_CONCURRENT_CALLS + 1),
        worker_config().processes(dspex::worker::MAX_WORKER_PROCESSES + 1),
        worker_config().processes(0),
    ] {
        let err = Context::builder().worker(config).build().await.unwrap_err();
        assert!(matches!(err, Error::Worker { .. }), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_spreads_calls_and_survives_a_killed_member() {
    let lm = dspex::LmConfig::scripted().delay(Duration::from_millis(300));
    let ctx = Context::builder()
        .worker(worker_config().processes(2))
        .lm(lm)
        .build()
        .await
        .unwrap();
    let program = std::sync::Arc::new(
        one_python_step(
            &ctx,
            "Pooled",
            "pid",
            "sample_modules.Pid",
            "question -> pid",
        )
        .await,
    );
    let status = ctx.worker_status().unwrap();
    let pids: Vec<u32> = status.processes.iter().map(|p| p.pid.unwrap()).collect();
    assert_eq!(pids.len(), 2);
    assert_ne!(pids[0], pids[1]);
    let run_batch = |n: usize| {
        let program = std::sync::Arc::clone(&program);
        async move {
            let tasks: Vec<_> = (0..n)
                .map(|i| {
                    let program = std::sync::Arc::clone(&program);
                    tokio::spawn(async move {
                        program
                            .run(Fields::from([("question", format!("q{i}"))]))
                            .await
                    })
                })
                .collect();
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.unwrap());
            }
            results
        }
    };
    // Least busy first: concurrent calls go to both processes.
    let served: std::collections::BTreeSet<u32> = run_batch(8)
        .await
        .into_iter()
        .map(|r| r.unwrap().get::<&str>("pid").unwrap().parse().unwrap())
        .collect();
    assert_eq!(served, pids.iter().copied().collect());

    // Kill one member while calls continue: calls keep being answered (the ones that were on
    // the killed process fail with a worker error), and the member comes back with its module.
    let calls = tokio::spawn(run_batch(24));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ctx.worker_status().unwrap().processes[0].calls_in_flight == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no call reached the first process"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap();
    let results = calls.await.unwrap();
    let answered = results.iter().filter(|r| r.is_ok()).count();
    assert!(answered > 0);
    for result in &results {
        if let Err(e) = result {
            assert!(
                matches!(e, Error::Worker { message, .. } if message.contains(&pids[0].to_string())),
                "{e}"
            );
        }
    }
    assert!(wait_gone(pids[0], Duration::from_secs(10)).await);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let restarted = loop {
        let status = ctx.worker_status().unwrap();
        if status.processes[0].pid.is_some_and(|p| p != pids[0]) {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(restarted.processes[0].restarts, 1);
    assert_eq!(restarted.processes[1].pid, Some(pids[1]));
    let new_pids: std::collections::BTreeSet<u32> =
        restarted.processes.iter().filter_map(|p| p.pid).collect();
    let served: std::collections::BTreeSet<u32> = run_batch(8)
        .await
        .into_iter()
        .map(|r| r.unwrap().get::<&str>("pid").unwrap().parse().unwrap())
        .collect();
    assert_eq!(served, new_pids);
    // No orphans: dropping the context stops every member.
    drop(program);
    drop(ctx);
    for pid in new_pids {
        assert!(
            wait_gone(pid, Duration::from_secs(15)).await,
            "worker {pid} survived"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_bound_parameters_are_keyword_arguments_of_the_call() {
    let ctx = context().await;
    let program = ProgramBuilder::new("Agent")
        .variable(
            VariableSpec::new("max_iters", VarType::Integer, 0)
                .with_constraints(Constraints::range(0, 10)),
        )
        .step(Step::python("act", "ReAct", "question -> answer").bind("max_iters"))
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap();
    let calls = |max_iters: i64| {
        let (ctx, program) = (&ctx, &program);
        async move {
            ctx.set("max_iters", max_iters).unwrap();
            let (_, trace) = program
                .run_traced(Fields::from([("question", "q")]))
                .await
                .unwrap();
            trace.step("act").unwrap().lm_calls.len()
        }
    };
    // No iteration leaves only the final extraction; one iteration adds a reasoning step.
    assert_eq!(calls(0).await, 1);
    assert_eq!(calls(3).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_outputs_come_back_and_a_misfit_names_the_field() {
    let ctx = context().await;
    let typed = one_python_step(
        &ctx,
        "Typed",
        "rate",
        "Predict",
        "question -> score: float, tags: list[str], ok: bool",
    )
    .await;
    let out = typed
        .run(Fields::from([("question", "Good?")]))
        .await
        .unwrap();
    assert_eq!(out.get::<f64>("score").unwrap(), 0.0);
    assert_eq!(
        out.get::<Vec<String>>("tags").unwrap(),
        ["[scripted tags] Good?"]
    );
    assert!(!out.get::<bool>("ok").unwrap());
    let misfit = one_python_step(
        &ctx,
        "Misfit",
        "rate",
        "sample_modules.Fixed",
        "question -> score: float",
    )
    .await;
    match misfit.run(Fields::from([("question", "q")])).await {
        Err(e @ Error::Field { .. }) => {
            assert_eq!(
                e.to_string(),
                "the output of python step `rate`: field `score` is declared `float`, but its value is `\"high\"`"
            );
        }
        other => panic!("expected an output type error, got {other:?}"),
    }
}

/// `for hop in 0..2`: the called python step writes a query from what was found so far.
#[derive(Default)]
struct TwoHops;

impl Module for TwoHops {
    async fn forward_in_step(
        &self,
        cx: &dspex::StepContext<'_>,
        inputs: &Fields,
        _: &Params,
    ) -> Result<Fields> {
        let question = inputs.get::<String>("question")?;
        let mut context: Vec<String> = Vec::new();
        for _hop in 0..2 {
            let query = cx
                .call(
                    "generate_query",
                    Fields::from([
                        ("context", dspex::json!(context)),
                        ("question", dspex::json!(question)),
                    ]),
                )
                .await?;
            context.push(query.get::<String>("query")?);
        }
        Ok(Fields::from([("context", context)]))
    }
}

dspex_program! {
    /// A native loop calling a python step, which runs only when called.
    program PythonHops: "question -> context: list[str]" {
        variables {
            temperature: float = 0.4 { min: 0.0, max: 2.0 },
        }
        chain {
            generate_query: called python Predict("context: list[str], question -> query") { temperature },
            hops: native TwoHops("question -> context: list[str]"),
        }
    }
}

#[tokio::test]
async fn a_native_loop_calls_a_python_step_through_the_worker() -> Result<()> {
    let ctx = context().await;
    let program = PythonHops::attach(&ctx).await?;
    let overrides = Overrides::new().with("temperature", 0.9);
    let (out, trace) = program
        .run_fields_with_traced(&overrides, Fields::from([("question", "Why?")]))
        .await?;
    let context = out.get::<Vec<String>>("context")?;
    assert_eq!(context.len(), 2);
    let names: Vec<(&str, Option<usize>)> = trace
        .steps
        .iter()
        .map(|s| (s.step.as_str(), s.called_by.as_ref().map(|c| c.index)))
        .collect();
    assert_eq!(
        names,
        [
            ("generate_query", Some(0)),
            ("generate_query", Some(1)),
            ("hops", None)
        ]
    );
    for (hop, call) in trace.runs_of("generate_query").enumerate() {
        assert!(
            matches!(&call.runner, dspex::StepRunner::Python(_)),
            "{:?}",
            call.runner
        );
        assert_eq!(call.called_by.as_ref().unwrap().caller, "hops");
        assert_eq!(call.inputs.get::<Vec<String>>("context")?.len(), hop);
        assert_eq!(call.outputs.get::<String>("query")?, context[hop]);
        // The run's override reached the worker, as the LM call shows.
        assert_eq!(only_call(call).temperature, Some(0.9));
    }
    ctx.shutdown_worker().await;
    Ok(())
}
