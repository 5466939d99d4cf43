//! DSPy's optimizers on python steps, end to end with real workers and real DSPy on the
//! scripted LM: each optimizer of the table compiles a step and its state comes back to Rust;
//! the next runs use the compiled demos (the LM requests carry them: their prompts grow), in
//! every worker process and after a worker is killed and restarted; unknown optimizers and
//! settings, bad metrics and examples are clear errors that change nothing; a program's state
//! saves to one file and loads into a fresh program, all or nothing, and not into a program of
//! another declaration.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dspex::LmConfig;
use dspex::eval::{Dataset, Example, metric_fn};
use dspex::optimize::{
    CompileMetric, CompileReport, MAX_COMPILED_STATE_BYTES, MAX_TRAIN_EXAMPLES, Optimizer,
    ProgramState,
};
use dspex::prelude::*;
use dspex::{AnyProgram, Overrides, ProgramBuilder, RunningProgram, Step};
use dspex_tests::{wait_gone, worker_config};

dspex_program! {
    /// Answers capital questions with DSPy's ChainOfThought.
    program Capitals: "question -> answer" {
        variables {
            temperature: float = 0.7 { min: 0.0, max: 2.0 },
            style: choice = "short" { choices: ["short", "long"] },
        }
        chain {
            answer: python ChainOfThought("question -> answer") { temperature },
        }
    }
}

dspex_program! {
    /// The same step under another declaration: `temperature` has another range, and there
    /// is no `style`.
    program OtherCapitals: "question -> answer" {
        variables {
            temperature: float = 0.7 { min: 0.0, max: 1.0 },
        }
        chain {
            answer: python Predict("question -> answer") { temperature },
        }
    }
}

const CAPITALS: [(&str, &str); 6] = [
    ("France", "Paris"),
    ("Japan", "Tokyo"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Egypt", "Cairo"),
    ("Peru", "Lima"),
];

/// The scripted LM knows every capital.
fn lm() -> LmConfig {
    CAPITALS
        .iter()
        .fold(LmConfig::scripted(), |lm, (country, city)| {
            lm.rule(*country, [("answer", *city), ("reasoning", "I know it.")])
        })
}

async fn context() -> Context {
    context_with(1).await
}

async fn context_with(processes: usize) -> Context {
    context_of(lm(), processes).await
}

async fn context_of(lm: LmConfig, processes: usize) -> Context {
    Context::builder()
        .worker(worker_config().processes(processes))
        .lm(lm)
        .build()
        .await
        .unwrap()
}

/// A program built at run time whose one step `answer` is DSPy's `Predict`.
async fn built_predict(ctx: &Context) -> RunningProgram {
    ProgramBuilder::new("Built")
        .step(Step::python("answer", "Predict", "question -> answer"))
        .build()
        .unwrap()
        .attach(ctx)
        .await
        .unwrap()
}

fn question(country: &str) -> String {
    format!("What is the capital of {country}?")
}

fn trainset() -> Dataset {
    Dataset::from_examples(CAPITALS.iter().map(|(country, city)| {
        Example::new()
            .with_input("question", question(country))
            .with_expected("answer", *city)
    }))
}

fn metric() -> CompileMetric {
    CompileMetric::python("sample_modules.answer_matches")
}

/// The prompt tokens of the one LM request of step `answer` for a question: they count the
/// demos the request carries.
async fn prompt_tokens(program: &impl AnyProgram, country: &str) -> u64 {
    let input = Fields::from([("question", question(country))]);
    let (out, trace) = program.run_boxed(&Overrides::new(), input).await.unwrap();
    let city = CAPITALS.iter().find(|(c, _)| *c == country).unwrap().1;
    assert_eq!(out.get::<&str>("answer").unwrap(), city);
    let calls = &trace.step("answer").unwrap().lm_calls;
    assert_eq!(calls.len(), 1, "{calls:?}");
    calls[0].prompt_tokens.unwrap()
}

/// Compiles step `answer` of `program` with BootstrapFewShot for up to `demos` bootstrapped
/// demos (no labeled ones), on the train set and the Python metric.
async fn compile_with_demos(program: &impl AnyProgram, demos: i64) {
    program
        .compile_step(
            "answer",
            &Optimizer::bootstrap_few_shot()
                .set("max_bootstrapped_demos", demos)
                .set("max_labeled_demos", 0),
            &trainset(),
            &metric(),
        )
        .await
        .unwrap();
}

/// Compiles step `answer` of `program` with BootstrapFewShot for up to 4 bootstrapped demos
/// (no labeled ones), on the train set and `metric`.
async fn bootstrap_up_to_4(program: &impl AnyProgram, metric: &CompileMetric) -> CompileReport {
    program
        .compile_step(
            "answer",
            &Optimizer::bootstrap_few_shot()
                .set("max_bootstrapped_demos", 4)
                .set("max_labeled_demos", 0),
            &trainset(),
            metric,
        )
        .await
        .unwrap()
}

/// Whether step `answer` of `program` holds no compiled state.
fn uncompiled(program: &impl AnyProgram) -> bool {
    program
        .python_step("answer")
        .unwrap()
        .compiled_state()
        .is_none()
}

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dspex-optimize-{}-{name}.json", std::process::id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_few_shot_compiles_a_step_whose_next_runs_carry_the_demos() {
    let ctx = context().await;
    let program = Capitals::attach(&ctx).await.unwrap();
    let before = prompt_tokens(&program, "Peru").await;
    assert!(uncompiled(&program));

    let optimizer = Optimizer::bootstrap_few_shot()
        .set("max_bootstrapped_demos", 2)
        .set("max_labeled_demos", 0);
    let report = program
        .compile_step("answer", &optimizer, &trainset(), &metric())
        .await
        .unwrap();
    assert_eq!(report.step, "answer");
    assert_eq!(report.class, "ChainOfThought");
    assert_eq!(report.demos["predict"], 2, "{report}");
    assert_eq!(report.train_examples, CAPITALS.len());
    assert!(report.tokens.lm_calls >= 2, "{report}");
    assert_eq!(
        report.optimizer,
        "BootstrapFewShot(max_bootstrapped_demos=2, max_labeled_demos=0)"
    );
    assert!(report.to_string().contains("predict: 2"), "{report}");

    // The state came back to Rust: the demos are the bootstrapped traces, answers included.
    let state = program
        .python_step("answer")
        .unwrap()
        .compiled_state()
        .unwrap();
    assert_eq!(state.class, "ChainOfThought");
    let demos = &state.demos()["predict"];
    assert_eq!(demos.len(), 2);
    assert_eq!(demos[0]["question"], question("France"));
    assert_eq!(demos[0]["answer"], "Paris");
    assert_eq!(demos[0]["reasoning"], "I know it.");

    // The next run's LM request carries the two demos: its prompt is longer.
    let after = prompt_tokens(&program, "Peru").await;
    assert!(after > before + 10, "before {before}, after {after}");
    // The module of the worker was replaced, not added to.
    assert_eq!(ctx.worker_status().unwrap().modules, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_metric_is_called_back_from_python_during_the_compilation() {
    let ctx = context().await;
    let program = Capitals::attach(&ctx).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    // Accepts only Paris and Tokyo: the demos are exactly those two traces.
    let metric = metric_fn("paris_or_tokyo", move |ex: &Example, pred: &Fields| {
        counted.fetch_add(1, Ordering::SeqCst);
        let answer = pred.get::<&str>("answer")?;
        assert_eq!(pred.get::<&str>("reasoning")?, "I know it.");
        Ok::<_, Error>(
            ex.expected("answer").and_then(|v| v.as_str()) == Some(answer)
                && ["Paris", "Tokyo"].contains(&answer),
        )
    });
    let report = bootstrap_up_to_4(&program, &CompileMetric::rust(metric)).await;
    assert_eq!(report.metric, "paris_or_tokyo");
    assert_eq!(report.demos["predict"], 2, "{report}");
    assert_eq!(calls.load(Ordering::SeqCst), CAPITALS.len());
    let state = program
        .python_step("answer")
        .unwrap()
        .compiled_state()
        .unwrap();
    let demos = state.demos();
    let answers: Vec<&str> = demos["predict"]
        .iter()
        .map(|d| d["answer"].as_str().unwrap())
        .collect();
    assert_eq!(answers, ["Paris", "Tokyo"]);

    // A Rust metric that fails: its error fails the compilation (no errors allowed), and the
    // step keeps the state it had.
    let failing = metric_fn("failing", |_: &Example, _: &Fields| {
        Err::<f64, _>(Error::Internal("no score today".to_owned()))
    });
    let err = program
        .compile_step(
            "answer",
            &Optimizer::bootstrap_few_shot().set("max_errors", 0),
            &trainset(),
            &CompileMetric::rust(failing),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("the Rust metric"), "{err}");
    assert!(err.contains("no score today"), "{err}");
    assert_eq!(
        program.python_step("answer").unwrap().compiled_state(),
        Some(state)
    );
}

/// The feedback GEPA's reflection LM finds in the examples it reflects on.
const FEEDBACK: &str = "The answer must be the one word PLANTED.";
/// The instruction the reflection LM proposes after reading [`FEEDBACK`].
const PLANTED: &str = "Reply with the one word PLANTED, whatever the question.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gepa_reflects_on_the_rust_feedback_and_rewrites_the_instructions() {
    // The planted task: every answer is `PLANTED`. The scripted LM answers it only when the
    // step's instructions say so, and, as the reflection LM, proposes those instructions only
    // when the examples it reflects on carry the Rust metric's feedback.
    let lm = LmConfig::scripted()
        .rule(FEEDBACK, [("new_instruction", PLANTED)])
        .rule(PLANTED, [("answer", "PLANTED")]);
    let ctx = context_of(lm, 1).await;
    let program = built_predict(&ctx).await;
    let trainset = Dataset::from_examples(CAPITALS.iter().take(4).map(|(country, _)| {
        Example::new()
            .with_input("question", question(country))
            .with_expected("answer", "PLANTED")
    }));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let metric = CompileMetric::rust_feedback(move |example, prediction| {
        counted.fetch_add(1, Ordering::SeqCst);
        let right = example.expected("answer") == prediction.value("answer");
        Ok(if right {
            (1.0, "Correct.".to_owned())
        } else {
            (0.0, FEEDBACK.to_owned())
        })
    });
    let before = program
        .run(Fields::from([("question", question("Peru"))]))
        .await
        .unwrap();
    assert_ne!(before.get::<&str>("answer").unwrap(), "PLANTED");

    let optimizer = Optimizer::gepa()
        .set("max_metric_calls", 24)
        .set("reflection_minibatch_size", 2)
        .set("num_threads", 1)
        .set("use_merge", false)
        .set("seed", 3);
    let report = program
        .compile_step("answer", &optimizer, &trainset, &metric)
        .await
        .unwrap();
    assert_eq!(report.metric, "rust_feedback");
    assert_eq!(
        report.optimizer,
        "GEPA(max_metric_calls=24, num_threads=1, reflection_minibatch_size=2, seed=3, use_merge=false)"
    );
    // Scores for the first evaluation, the minibatches and the reflective dataset: more than
    // one pass over the train set.
    assert!(calls.load(Ordering::SeqCst) > 4, "{report}");
    let state = program
        .python_step("answer")
        .unwrap()
        .compiled_state()
        .unwrap();
    assert_eq!(state.state["signature"]["instructions"], PLANTED);
    let after = program
        .run(Fields::from([("question", question("Peru"))]))
        .await
        .unwrap();
    assert_eq!(after.get::<&str>("answer").unwrap(), "PLANTED");
}

/// The planted task's train set: every answer is `PLANTED`.
fn planted_trainset() -> Dataset {
    Dataset::from_examples(CAPITALS.iter().take(4).map(|(country, _)| {
        Example::new()
            .with_input("question", question(country))
            .with_expected("answer", "PLANTED")
    }))
}

/// The Rust feedback metric of the planted task.
fn planted_metric() -> CompileMetric {
    CompileMetric::rust_feedback(|example, prediction| {
        let right = example.expected("answer") == prediction.value("answer");
        Ok(if right {
            (1.0, "Correct.".to_owned())
        } else {
            (0.0, FEEDBACK.to_owned())
        })
    })
}

/// GEPA on the planted task, with a small budget and no randomness.
fn planted_gepa() -> Optimizer {
    Optimizer::gepa()
        .set("max_metric_calls", 24)
        .set("reflection_minibatch_size", 2)
        .set("num_threads", 1)
        .set("use_merge", false)
        .set("seed", 3)
}

/// The text of every message of a recorded request, joined.
fn request_text(body: &serde_json::Value) -> String {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gepa_reflects_with_the_reflection_lm_set_apart_from_the_task_lm() {
    // Two loopback LM servers: the task LM answers the step's requests (`PLANTED` only when
    // the instructions say so); the reflection LM answers GEPA's proposals (DSPy's JSON
    // adapter, output `new_instruction`).
    let task = dspex_test_lm::LmServer::start().await.unwrap();
    task.respond_with(|body| {
        let answer = if request_text(body).contains(PLANTED) {
            "PLANTED"
        } else {
            "Paris"
        };
        dspex_test_lm::Reply::text(format!(
            "[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"
        ))
    });
    let reflection = dspex_test_lm::LmServer::start().await.unwrap();
    reflection.respond_with(|_| {
        dspex_test_lm::Reply::text(serde_json::json!({ "new_instruction": PLANTED }).to_string())
    });
    let ctx = context_of(LmConfig::openai(task.base_url(), "task-model"), 1).await;
    let program = built_predict(&ctx).await;
    let reflection_lm = LmConfig::openai(reflection.base_url(), "reflection-model");

    // A reflection LM out of its bounds, or on an optimizer that does not reflect, is an
    // error before any LM call, and nothing changes.
    let refused = [
        (
            planted_gepa().reflection_lm(reflection_lm.clone().timeout(Duration::ZERO)),
            "LmConfig::timeout",
        ),
        (
            planted_gepa().reflection_lm(LmConfig::replay("/nonexistent/dspex/tape.jsonl")),
            "the reflection LM of optimizer `GEPA`",
        ),
        (
            Optimizer::bootstrap_few_shot().reflection_lm(reflection_lm.clone()),
            "optimizer `BootstrapFewShot` does not reflect: a reflection LM is for `GEPA`",
        ),
    ];
    for (optimizer, message) in refused {
        let err = program
            .compile_step("answer", &optimizer, &planted_trainset(), &planted_metric())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{err}");
        assert!(uncompiled(&program));
    }
    assert!(task.requests().is_empty());
    assert!(reflection.requests().is_empty());

    let report = program
        .compile_step(
            "answer",
            &planted_gepa().reflection_lm(reflection_lm),
            &planted_trainset(),
            &planted_metric(),
        )
        .await
        .unwrap();
    let state = program
        .python_step("answer")
        .unwrap()
        .compiled_state()
        .unwrap();
    assert_eq!(state.state["signature"]["instructions"], PLANTED);

    // Every reflection went to the reflection LM, with the metric's feedback; the task LM
    // answered the step's requests only.
    let reflected = reflection.requests();
    assert!(!reflected.is_empty());
    for request in &reflected {
        let text = request_text(&request.body);
        assert!(text.contains("new_instruction"), "{text}");
        assert!(text.contains(FEEDBACK), "{text}");
        assert_eq!(request.body["model"], "reflection-model");
    }
    let asked = task.requests();
    assert!(!asked.is_empty());
    for request in &asked {
        let text = request_text(&request.body);
        assert!(!text.contains("new_instruction"), "{text}");
        assert_eq!(request.body["model"], "task-model");
    }
    // The report counts the requests of both LMs.
    assert_eq!(
        report.tokens.lm_calls,
        u64::try_from(asked.len() + reflected.len()).unwrap(),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gepa_budgets_and_settings_are_checked_and_a_feedback_metric_scores_for_the_others() {
    let ctx = context().await;
    let program = Capitals::attach(&ctx).await.unwrap();
    let metric = CompileMetric::rust_feedback(|example, prediction| {
        let answer = prediction.get::<&str>("answer")?;
        let right = example.expected("answer").and_then(|v| v.as_str()) == Some(answer);
        Ok((
            f64::from(u8::from(right && answer == "Paris")),
            format!("{answer}?"),
        ))
    });
    let refused = [
        (
            Optimizer::gepa(),
            "takes exactly one of `auto`, `max_full_evals`, `max_metric_calls`, found none",
        ),
        (
            Optimizer::gepa()
                .set("auto", "light")
                .set("max_full_evals", 2),
            "found `auto`, `max_full_evals`",
        ),
        (
            Optimizer::gepa().set("auto", "huge"),
            "takes `auto` as one of \"light\", \"medium\", \"heavy\", found \"huge\"",
        ),
        (
            Optimizer::gepa()
                .set("auto", "light")
                .set("reflection_lm", "gpt"),
            "optimizer `GEPA` takes no setting `reflection_lm`",
        ),
        (
            Optimizer::gepa().set("max_metric_calls", 0),
            "takes `max_metric_calls` as an integer of at least 1, found 0",
        ),
    ];
    for (optimizer, message) in refused {
        let err = program
            .compile_step("answer", &optimizer, &trainset(), &metric)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(message), "{optimizer}: {err}");
        assert!(uncompiled(&program));
    }

    // BootstrapFewShot takes the feedback metric's score: only Paris is a demo.
    let report = bootstrap_up_to_4(&program, &metric).await;
    assert_eq!(report.demos["predict"], 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_optimizer_of_the_table_runs_offline_and_returns_a_state() {
    let ctx = context().await;
    let program = built_predict(&ctx).await;
    let data = trainset();
    let (train, val) = data.split(0.5).unwrap();
    let cases = [
        Optimizer::bootstrap_random_search()
            .set("max_bootstrapped_demos", 2)
            .set("num_candidate_programs", 2)
            .set("num_threads", 1)
            .valset(&val),
        // MIPROv2 offline: no `auto` budget, two candidates, two trials, no minibatches.
        Optimizer::mipro_v2()
            .set("auto", "none")
            .set("num_candidates", 2)
            .set("num_trials", 2)
            .set("minibatch", false)
            .set("num_threads", 1)
            .set("max_bootstrapped_demos", 1)
            .set("max_labeled_demos", 1)
            .valset(&val),
        Optimizer::copro().set("breadth", 2).set("depth", 1),
    ];
    for optimizer in &cases {
        let report = program
            .compile_step("answer", optimizer, &train, &metric())
            .await
            .unwrap_or_else(|e| panic!("{optimizer}: {e}"));
        // `Predict` is a single predictor: DSPy calls it `self`.
        assert!(report.demos.contains_key("self"), "{report}");
        assert!(report.tokens.lm_calls > 0, "{report}");
        let state = program
            .python_step("answer")
            .unwrap()
            .compiled_state()
            .unwrap();
        assert_eq!(state.optimizer, optimizer.to_string());
        let instructions = state.state["signature"]["instructions"].as_str().unwrap();
        assert!(!instructions.is_empty());
        if optimizer.name() == "COPRO" {
            // COPRO's instructions are the LM's proposals.
            assert!(instructions.starts_with("[scripted"), "{instructions}");
        }
        // The compiled step runs.
        prompt_tokens(&program, "Japan").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_process_of_a_pool_and_a_killed_worker_come_back_with_the_compiled_state() {
    let ctx = context_with(2).await;
    let program = Capitals::attach(&ctx).await.unwrap();
    let before = prompt_tokens(&program, "Peru").await;
    compile_with_demos(&program, 3).await;
    // Every process of the pool runs with the demos: as many concurrent runs as processes.
    let runs = futures_join(&program).await;
    let compiled = runs[0];
    assert!(compiled > before, "before {before}, compiled {compiled}");
    assert!(runs.iter().all(|&r| r == compiled), "{runs:?}");

    // SIGKILL both processes: the next run waits for a restarted one, whose module was
    // created again with its compiled state.
    let status = ctx.worker_status().unwrap();
    let pids: Vec<u32> = status.processes.iter().filter_map(|p| p.pid).collect();
    assert_eq!(pids.len(), 2);
    for pid in &pids {
        Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    }
    for pid in pids {
        assert!(wait_gone(pid, Duration::from_secs(10)).await);
    }
    assert_eq!(prompt_tokens(&program, "Peru").await, compiled);
    assert!(ctx.worker_status().unwrap().restarts >= 1);
    let runs = futures_join(&program).await;
    assert!(runs.iter().all(|&r| r == compiled), "{runs:?}");
    assert!(
        program
            .python_step("answer")
            .unwrap()
            .compiled_state()
            .is_some()
    );
}

/// Prompt tokens of concurrent runs, enough to reach every process of a pool of two.
async fn futures_join(program: &Capitals) -> Vec<u64> {
    let (a, b, c, d) = tokio::join!(
        prompt_tokens(program, "Peru"),
        prompt_tokens(program, "Peru"),
        prompt_tokens(program, "Peru"),
        prompt_tokens(program, "Peru"),
    );
    vec![a, b, c, d]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_optimizers_settings_and_bad_inputs_are_clear_errors_that_change_nothing() {
    let ctx = context().await;
    let program = Capitals::attach(&ctx).await.unwrap();
    let train = trainset();
    let compile = |optimizer: Optimizer, train: Dataset, metric: CompileMetric| {
        let program = &program;
        async move {
            program
                .compile_step("answer", &optimizer, &train, &metric)
                .await
                .unwrap_err()
                .to_string()
        }
    };
    let err = compile(Optimizer::new("BootstrapFewShots"), train.clone(), metric()).await;
    assert!(
        err.contains("unknown optimizer `BootstrapFewShots` (did you mean `BootstrapFewShot`?)"),
        "{err}"
    );
    let err = compile(
        Optimizer::bootstrap_few_shot().set("max_demos", 2),
        train.clone(),
        metric(),
    )
    .await;
    assert!(
        err.contains("optimizer `BootstrapFewShot` takes no setting `max_demos`; it takes `max_bootstrapped_demos`"),
        "{err}"
    );
    let err = compile(
        Optimizer::bootstrap_few_shot().set("max_rounds", "two"),
        train.clone(),
        metric(),
    )
    .await;
    assert!(
        err.contains("takes `max_rounds` as an integer of at least 1, found a string"),
        "{err}"
    );
    let err = compile(
        Optimizer::bootstrap_few_shot().valset(&train),
        train.clone(),
        metric(),
    )
    .await;
    assert!(
        err.contains("optimizer `BootstrapFewShot` takes no validation set"),
        "{err}"
    );
    let err = compile(
        Optimizer::copro().timeout(Duration::ZERO),
        train.clone(),
        metric(),
    )
    .await;
    assert!(err.contains("timeout"), "{err}");

    // Examples that do not fit the step name the example and the field.
    let extra = Dataset::from_examples([Example::new()
        .with_input("question", "q")
        .with_expected("city", "Paris")]);
    let err = compile(Optimizer::bootstrap_few_shot(), extra, metric()).await;
    assert!(
        err.contains("trainset example 0: step `answer` (question -> answer) has no output `city`"),
        "{err}"
    );
    let missing = Dataset::from_examples([Example::new().with_expected("answer", "Paris")]);
    let err = compile(Optimizer::bootstrap_few_shot(), missing, metric()).await;
    assert!(
        err.contains("trainset example 0 has no input `question` of step `answer`"),
        "{err}"
    );
    let err = compile(
        Optimizer::bootstrap_few_shot(),
        Dataset::default(),
        metric(),
    )
    .await;
    assert!(
        err.contains("the trainset to compile step `answer` is empty"),
        "{err}"
    );

    // Metrics the worker cannot use.
    let err = compile(
        Optimizer::bootstrap_few_shot(),
        train.clone(),
        CompileMetric::python("sample_modules.no_such_metric"),
    )
    .await;
    assert!(
        err.contains("cannot import metric 'sample_modules.no_such_metric'"),
        "{err}"
    );
    let err = compile(
        Optimizer::bootstrap_few_shot(),
        train.clone(),
        CompileMetric::python("sample_modules.not_a_metric"),
    )
    .await;
    assert!(err.contains("it is a int, not a callable"), "{err}");
    let err = compile(
        Optimizer::bootstrap_few_shot().set("max_errors", 0),
        train.clone(),
        CompileMetric::python("sample_modules.overscored"),
    )
    .await;
    assert!(
        err.contains("metric 'sample_modules.overscored' scored 2.0, expected a number in [0, 1]"),
        "{err}"
    );

    // A step that is not python, or not there.
    let err = program
        .compile_step("nope", &Optimizer::bootstrap_few_shot(), &train, &metric())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("step `nope` of program `Capitals` is not one of its steps; its python steps are `answer`"),
        "{err}"
    );

    // Nothing was compiled, and the worker is fine.
    assert!(uncompiled(&program));
    prompt_tokens(&program, "Peru").await;
    assert_eq!(ctx.worker_status().unwrap().restarts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_train_set_is_bounded_at_its_limit() {
    let ctx = context().await;
    let program = Capitals::attach(&ctx).await.unwrap();
    let at_limit = Dataset::from_examples((0..MAX_TRAIN_EXAMPLES).map(|i| {
        let (country, city) = CAPITALS[i % CAPITALS.len()];
        Example::new()
            .with_input("question", question(country))
            .with_expected("answer", city)
    }));
    // At the limit: accepted (one bootstrapped demo ends the search at once).
    let report = program
        .compile_step(
            "answer",
            &Optimizer::bootstrap_few_shot()
                .set("max_bootstrapped_demos", 1)
                .set("max_labeled_demos", 0),
            &at_limit,
            &metric(),
        )
        .await
        .unwrap();
    assert_eq!(report.train_examples, MAX_TRAIN_EXAMPLES);
    let mut over: Vec<Example> = at_limit.examples().to_vec();
    over.push(over[0].clone());
    let err = program
        .compile_step(
            "answer",
            &Optimizer::bootstrap_few_shot(),
            &Dataset::from_examples(over),
            &metric(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Limit { limit, .. } if limit == "MAX_TRAIN_EXAMPLES"),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!(
            "holds {} examples, over the limit of {MAX_TRAIN_EXAMPLES} (MAX_TRAIN_EXAMPLES)",
            MAX_TRAIN_EXAMPLES + 1
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_state_loads_into_a_fresh_program_and_not_into_another_declaration() {
    let ctx = context().await;
    let program = Capitals::attach(&ctx).await.unwrap();
    program.temperature().set(0.2).unwrap();
    compile_with_demos(&program, 2).await;
    let compiled = prompt_tokens(&program, "Peru").await;
    let path = temp_file("roundtrip");
    program.save_state(&path).unwrap();
    let saved = ProgramState::read(&path).unwrap();
    assert_eq!(saved.program, "Capitals");
    assert_eq!(saved.value("temperature"), Some(&serde_json::json!(0.2)));
    assert_eq!(
        saved.compiled("answer").unwrap().demos()["predict"].len(),
        2
    );

    // A fresh program in a fresh context: the defaults, no demos; after loading, the saved
    // values and demos.
    let fresh_ctx = context().await;
    let fresh = Capitals::attach(&fresh_ctx).await.unwrap();
    let plain = prompt_tokens(&fresh, "Peru").await;
    assert!(plain < compiled);
    fresh.load_state(&path).await.unwrap();
    assert_eq!(fresh.temperature().get().unwrap(), 0.2);
    assert_eq!(
        fresh_ctx.record("temperature").unwrap().metadata["loaded_from"],
        path.display().to_string()
    );
    assert_eq!(prompt_tokens(&fresh, "Peru").await, compiled);
    assert_eq!(
        fresh.python_step("answer").unwrap().compiled_state(),
        program.python_step("answer").unwrap().compiled_state()
    );

    // Another declaration: an error naming every difference; nothing changes.
    let other = OtherCapitals::attach(&context().await).await.unwrap();
    let err = other.load_state(&path).await.unwrap_err();
    assert!(matches!(err, Error::ProgramState { .. }), "{err}");
    let text = err.to_string();
    for part in [
        "the state was saved for program `Capitals`, not `OtherCapitals`",
        "variable `temperature` was a float variable (constraints: min 0.0, max 2.0), program `OtherCapitals` declares a float variable (constraints: min 0.0, max 1.0)",
        "variable `style` is not declared by program `OtherCapitals`",
        "step `answer` was `python ChainOfThought`, program `OtherCapitals` declares `python Predict`",
    ] {
        assert!(text.contains(part), "{part}\n in {text}");
    }
    assert_eq!(other.temperature().get().unwrap(), 0.7);
    assert!(
        other
            .python_step("answer")
            .unwrap()
            .compiled_state()
            .is_none()
    );
    std::fs::remove_file(&path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_state_file_is_a_clear_error_and_changes_nothing() {
    let ctx = context().await;
    let program = Capitals::attach(&ctx).await.unwrap();
    compile_with_demos(&program, 1).await;
    let good = program.state().unwrap().to_json();
    let state_before = program.python_step("answer").unwrap().compiled_state();
    let tokens_before = prompt_tokens(&program, "Peru").await;
    let values_before = ctx.list(None).unwrap();

    let path = temp_file("bad");
    let cases = [
        ("not json", "{ nope".to_owned(), "malformed program state"),
        (
            "another format",
            good.replace("\"dspex.program.state\"", "\"dspex.tune.result\""),
            "a file of format `dspex.tune.result` version 1 cannot be read",
        ),
        (
            "a newer version",
            good.replacen("\"version\": 1", "\"version\": 2", 1),
            "version 2 cannot be read; this build reads `dspex.program.state` version 1",
        ),
        (
            "a value out of range",
            good.replace("\"temperature\": 0.7", "\"temperature\": 9.5"),
            "variable `temperature`: temperature: 9.5 is above max 2.0",
        ),
        (
            // A valid value next to a state whose demos the module cannot take: the value is
            // not written either.
            "a state that does not load",
            good.replace("\"temperature\": 0.7", "\"temperature\": 0.1")
                .replacen("\"predict\": {", "\"predictor\": {", 1),
            "the compiled state of step `answer` does not load",
        ),
        (
            "an unknown key",
            good.replacen("\"program\":", "\"extra\": 1, \"program\":", 1),
            "unknown field `extra`",
        ),
    ];
    for (what, text, expected) in cases {
        assert_ne!(text, good, "{what}: the case changes nothing");
        std::fs::write(&path, &text).unwrap();
        let err = program.load_state(&path).await.unwrap_err();
        let message = err.to_string();
        // A serde or io error underneath is the source, printed by an error reporter.
        assert!(err.report().contains(expected), "{what}: {}", err.report());
        assert!(
            message.contains(&path.display().to_string()),
            "{what}: {message}"
        );
        assert_eq!(ctx.list(None).unwrap(), values_before, "{what}");
        assert_eq!(
            program.python_step("answer").unwrap().compiled_state(),
            state_before,
            "{what}"
        );
    }
    assert_eq!(prompt_tokens(&program, "Peru").await, tokens_before);
    let err = program
        .load_state(&temp_file("missing"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot read"), "{err}");
    std::fs::remove_file(&path).unwrap();
    assert!(MAX_COMPILED_STATE_BYTES > good.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compiled_state_is_bounded_at_its_limit() {
    let ctx = context().await;
    let program = Capitals::attach(&ctx).await.unwrap();
    compile_with_demos(&program, 1).await;
    let saved: serde_json::Value =
        serde_json::from_str(&program.state().unwrap().to_json()).unwrap();
    // A saved state whose compiled state, as the worker gets it, is `bytes` long: the demo's
    // reasoning padded.
    let padded = |bytes: usize| {
        let mut file = saved.clone();
        let state = &mut file["compiled"]["answer"]["state"];
        let now = state.to_string().len();
        let reasoning = state["predict"]["demos"][0]["reasoning"]
            .as_str()
            .unwrap()
            .to_owned();
        state["predict"]["demos"][0]["reasoning"] =
            serde_json::Value::from(reasoning + &"x".repeat(bytes - now));
        assert_eq!(state.to_string().len(), bytes);
        file.to_string()
    };
    let path = temp_file("limit");
    std::fs::write(&path, padded(MAX_COMPILED_STATE_BYTES + 1)).unwrap();
    let err = program.load_state(&path).await.unwrap_err();
    assert!(
        matches!(&err, Error::Limit { limit, .. } if limit == "MAX_COMPILED_STATE_BYTES"),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!(
            "is {} bytes, over the limit of {MAX_COMPILED_STATE_BYTES} (MAX_COMPILED_STATE_BYTES)",
            MAX_COMPILED_STATE_BYTES + 1
        )),
        "{err}"
    );
    std::fs::write(&path, padded(MAX_COMPILED_STATE_BYTES)).unwrap();
    program.load_state(&path).await.unwrap();
    let state = program
        .python_step("answer")
        .unwrap()
        .compiled_state()
        .unwrap();
    assert_eq!(state.state.to_string().len(), MAX_COMPILED_STATE_BYTES);
    std::fs::remove_file(&path).unwrap();
}
