//! Hybrid programs end to end: declared programs with native and python steps run with a real
//! Python worker running real DSPy modules on the offline scripted LM. Bound variables set from
//! Rust change the next python call's LM settings (as the worker reads them from the LM's own
//! history); `@var` steps take their class from a variable at run time; a running native
//! program upgrades its context when a python step is added; faults (a worker killed during a
//! call, a module that raises, an unknown class, an interpreter without DSPy) give clear errors
//! and lose nothing; and no worker process outlives its context or its Rust process.

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
    assert_eq!(
        answer.runner.to_string(),
        "python VariableAwareChainOfThought"
    );
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
    assert_eq!(answer.runner.to_string(), "python VariableAwarePredict");
    assert!(!answer.outputs.contains("reasoning"));
    assert_eq!(only_call(answer).temperature, Some(0.3));

    qa.reasoning().set("ChainOfThought").unwrap();
    let (_, trace) = qa.run_traced(input()).await.unwrap();
    let answer = trace.step("answer").unwrap();
    assert_eq!(
        answer.runner.to_string(),
        "python VariableAwareChainOfThought"
    );
    assert!(answer.outputs.contains("reasoning"));
    // The class is not among the allowed modules: the write is refused.
    assert!(qa.reasoning().set("ReAct").is_err());
    assert_eq!(ctx.worker_status().unwrap().modules, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_reach_native_steps_and_are_refused_for_what_python_steps_read() {
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
    // The worker reads `temperature` and `reasoning` from the context in this build: their
    // overrides are refused before any step runs, never silently ignored.
    for (variable, value) in [
        ("temperature", dspex::Value::from(0.9)),
        ("reasoning", dspex::Value::from("ChainOfThought")),
    ] {
        let err = qa
            .run_with(&dspex::Overrides::new().with(variable, value), input())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "python step `answer` reads `{variable}` in the worker, which cannot take a per-run override in this build"
            )
        );
    }
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
        Err(Error::Python { step, message }) => {
            assert_eq!(step, "boom");
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
        Err(Error::Python { step, message }) => {
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
    let err = ctx.worker().await.unwrap_err();
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
async fn a_python_step_whose_store_is_gone_fails_instead_of_hanging() {
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
    server.shutdown().await;
    // A bound variable changed since the worker cached it: the worker must ask the store.
    qa.temperature().set(0.1).unwrap();
    let outcome =
        tokio::time::timeout(Duration::from_secs(60), qa.run(QaPipelineInput::default())).await;
    match outcome {
        Ok(Err(Error::Python { step, message })) => {
            assert_eq!(step, "answer");
            assert!(message.contains("Error"), "{message}");
        }
        Ok(other) => panic!("expected a python error, got {other:?}"),
        Err(_) => panic!("the call hung with the store gone"),
    }
}
