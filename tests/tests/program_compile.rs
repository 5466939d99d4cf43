//! Whole programs compiled as DSPy compiles them, from question/answer pairs, against an LM on
//! the loopback server that answers a hard question right only when its prompt holds a demo
//! with the planted keyword: an all-native program and a hybrid one (its answer step in a
//! worker running real DSPy) learn from their accepted runs and score better after; the native
//! steps' prompts with the compiled demos are those DSPy itself sends with the same demos; the
//! state saves and loads; random search keeps the best candidate; DSPy's own
//! `BootstrapFewShot` on the DSPy original reaches the same dev score with no fewer LM requests;
//! bad input is a clear error that changes nothing.

//! Whole programs compiled as DSPy compiles them, from question/answer pairs, against an LM on
//! the loopback server that answers a hard question right only when its prompt holds a demo
//! with the planted keyword (`dspex_tests::planted_qa`): an all-native program and a hybrid one
//! (its answer step in a worker running real DSPy) learn from their accepted runs and score
//! better after; the native steps' prompts with the compiled demos are those DSPy itself sends
//! with the same demos; python steps are bootstrapped as DSPy's teacher runs them (its labeled
//! demos, its settings); a Python metric scores the runs in the worker; the state saves and
//! loads; random search keeps the best candidate, scoring candidates concurrently; DSPy's own
//! `BootstrapFewShot` on the DSPy original reaches the same dev score with no fewer LM requests;
//! bad input is a clear error that changes nothing.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dspex::eval::{Dataset, ExactMatch, Example, metric_fn};
use dspex::optimize::{
    BOOTSTRAP_CONCURRENCY, CANDIDATE_CONCURRENCY, CompileMetric, MAX_TRAIN_EXAMPLES, Optimizer,
};
use dspex::prelude::*;
use dspex::{JsonValue, json};
use dspex_test_lm::LmServer;
use dspex_tests::planted_qa::{
    HybridQa, HybridQaInput, NativeQa, NativeQaInput, pair, pairs, planted_lm,
};
use dspex_tests::{run_script, worker_config};

#[derive(Default)]
struct Lookup;

impl Module for Lookup {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        Ok(Fields::from([(
            "answer",
            inputs.get::<&str>("question")?.to_uppercase(),
        )]))
    }
}

dspex_program! {
    /// No LM step at all.
    program NoLm: "question -> answer" {
        chain { look: native Lookup("question -> answer") }
    }
}

#[derive(Default)]
struct Shout;

impl Module for Shout {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        Ok(Fields::from([(
            "loud",
            format!("{}!", inputs.get::<&str>("answer")?),
        )]))
    }
}

dspex_program! {
    /// A python answer step bound to a variable, then a native step that is no LM step.
    program TaughtQa: "question -> answer, loud" {
        variables {
            temperature: float = 0.0 { min: 0.0, max: 2.0 },
        }
        chain {
            answer: python Predict("question -> answer") { temperature },
            shout: native Shout("answer -> loud"),
        }
    }
}

/// The six train pairs: easy (right zero-shot, holding the keyword) and hard, interleaved.
fn trainset() -> Dataset {
    dspex_tests::planted_qa::trainset(6)
}

/// Four hard questions: 0 zero-shot, 1 with the right demos.
fn valset() -> Dataset {
    dspex_tests::planted_qa::devset(4)
}

fn metric() -> CompileMetric {
    CompileMetric::rust(ExactMatch::new("answer"))
}

/// `BootstrapFewShot` with these demo counts, on the validation set.
fn bootstrap(max_bootstrapped: i64, max_labeled: i64) -> Optimizer {
    Optimizer::bootstrap_few_shot()
        .set("max_bootstrapped_demos", max_bootstrapped)
        .set("max_labeled_demos", max_labeled)
        .valset(&valset())
}

async fn server() -> LmServer {
    let server = LmServer::start().await.unwrap();
    server.respond_with(planted_lm);
    server
}

/// The planted LM's server and a context on it (with a worker when `python`).
async fn context(python: bool) -> (LmServer, Context) {
    let server = server().await;
    let mut builder = Context::builder().lm(LmConfig::openai(server.base_url(), "planted"));
    if python {
        builder = builder.worker(worker_config());
    }
    (server, builder.build().await.unwrap())
}

/// The planted LM's server, a native context on it, and the all-native program.
async fn native() -> (LmServer, Context, NativeQa) {
    let (server, ctx) = context(false).await;
    let qa = NativeQa::attach(&ctx).await.unwrap();
    (server, ctx, qa)
}

/// The planted LM's server, a context with a worker on it, and the hybrid program.
async fn hybrid() -> (LmServer, Context, HybridQa) {
    let (server, ctx) = context(true).await;
    let qa = HybridQa::attach(&ctx).await.unwrap();
    (server, ctx, qa)
}

/// DSPy's messages for `module` with `demos` on `inputs` (recorded by the server), as the
/// `save_and_call` action of `tests/python/dspy_state.py` sends them.
fn dspy_messages(
    server: &LmServer,
    cases: &[(&str, &str, &[Fields], JsonValue)],
) -> Vec<JsonValue> {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dspex-program-compile-{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: Vec<JsonValue> = cases
        .iter()
        .enumerate()
        .map(|(i, (module, signature, demos, inputs))| {
            let demos: Vec<JsonValue> = demos
                .iter()
                .map(|d| {
                    JsonValue::Object(d.iter().map(|(k, v)| (k.to_owned(), v.clone())).collect())
                })
                .collect();
            json!({
                "module": module, "signature": signature, "instructions": null,
                "descriptions": {}, "demos": demos, "inputs": inputs,
                "path": dir.join(format!("case{i}.json")),
            })
        })
        .collect();
    server.clear_requests();
    let input = json!({"action": "save_and_call", "base_url": server.base_url(), "cases": cases});
    tokio::task::block_in_place(|| run_script("tests/python/dspy_state.py", &input));
    std::fs::remove_dir_all(&dir).ok();
    server
        .requests()
        .into_iter()
        .map(|r| r.body["messages"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_all_native_program_compiles_from_question_answer_pairs_with_dspys_prompts() {
    let (server, ctx, qa) = native().await;
    let report = qa
        .compile(&bootstrap(2, 3), &trainset(), &metric())
        .await
        .unwrap();

    // Examples 0 (easy, accepted), 1 (hard, rejected: the teacher's labeled demos have no
    // query, so the answer step cannot use them) and 2 (accepted) ran, then it stopped.
    assert_eq!(report.tokens.lm_calls, 6, "{report}");
    assert_eq!(report.score_before, Some(0.0));
    assert_eq!(report.score_after, Some(1.0), "{report}");
    let answer = &report.step_demos["answer"];
    assert_eq!(answer.len(), 3);
    for (demo, question) in answer
        .iter()
        .zip(["easy Keyword apple", "easy Keyword cherry"])
    {
        assert!(demo.get::<bool>("augmented").unwrap());
        assert_eq!(
            demo.get::<&str>("query").unwrap(),
            format!("find {question}")
        );
        assert_eq!(demo.get::<&str>("answer").unwrap(), question.to_uppercase());
        assert_eq!(demo.get::<&str>("reasoning").unwrap(), "Looked it up.");
    }
    // The third is a labeled example that was not bootstrapped, with the step's fields only:
    // its answer (no query: DSPy's adapter shows no such demo).
    assert!(answer[2].value("augmented").is_none() && answer[2].value("question").is_none());
    assert!(answer[2].get::<&str>("answer").unwrap().starts_with("HARD"));
    assert_eq!(report.step_demos["rewrite"].len(), 3);
    assert_eq!(report.demos["rewrite"], 3);

    // The compiled native steps send exactly DSPy's messages for the same demos.
    server.clear_requests();
    let out = qa
        .run(NativeQaInput {
            question: "hard mango".into(),
        })
        .await
        .unwrap();
    assert_eq!(out.answer, "HARD MANGO");
    let ours: Vec<JsonValue> = server
        .requests()
        .into_iter()
        .map(|r| r.body["messages"].clone())
        .collect();
    let theirs = dspy_messages(
        &server,
        &[
            (
                "Predict",
                "question -> query",
                &report.step_demos["rewrite"],
                json!({"question": "hard mango"}),
            ),
            (
                "ChainOfThought",
                "query -> answer",
                &report.step_demos["answer"],
                json!({"query": "find hard mango"}),
            ),
        ],
    );
    assert_eq!(ours.len(), 2);
    assert_eq!(
        serde_json::to_string_pretty(&ours).unwrap(),
        serde_json::to_string_pretty(&theirs).unwrap()
    );

    // The demos are part of the saved state, and of DSPy's file of each step.
    let dir = std::env::temp_dir().join(format!("dspex-native-compile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    qa.save_state(&dir.join("state.json")).unwrap();
    let fresh = NativeQa::attach(&ctx).await.unwrap();
    assert_eq!(fresh.compile_free_answer().await, "unknown");
    fresh.load_state(&dir.join("state.json")).await.unwrap();
    assert_eq!(fresh.compile_free_answer().await, "HARD NUT");
    assert_eq!(
        fresh.state().unwrap().native("answer"),
        qa.state().unwrap().native("answer")
    );
    qa.save_dspy_state("answer", dir.join("answer.json"))
        .await
        .unwrap();
    let saved: JsonValue =
        serde_json::from_str(&std::fs::read_to_string(dir.join("answer.json")).unwrap()).unwrap();
    assert_eq!(saved["predict"]["demos"].as_array().unwrap().len(), 3);
    assert_eq!(saved["predict"]["demos"][0]["augmented"], json!(true));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A hard question's answer, for a program compiled or not.
trait Probe {
    async fn compile_free_answer(&self) -> String;
}

impl Probe for NativeQa {
    async fn compile_free_answer(&self) -> String {
        self.run(NativeQaInput {
            question: "hard nut".into(),
        })
        .await
        .unwrap()
        .answer
    }
}

impl Probe for HybridQa {
    async fn compile_free_answer(&self) -> String {
        self.run(HybridQaInput {
            question: "hard nut".into(),
        })
        .await
        .unwrap()
        .answer
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hybrid_program_compiles_and_its_python_step_takes_the_demos_as_dspy_state() {
    let (server, ctx, qa) = hybrid().await;
    assert_eq!(qa.compile_free_answer().await, "unknown");
    let report = qa
        .compile(&bootstrap(2, 2), &trainset(), &metric())
        .await
        .unwrap();
    assert_eq!(report.score_before, Some(0.0));
    assert_eq!(report.score_after, Some(1.0), "{report}");
    assert_eq!(report.tokens.lm_calls, 6, "{report}");
    let compiled = qa.python_step("answer").unwrap().compiled_state().unwrap();
    assert_eq!(compiled.class, "ChainOfThought");
    let demos = &compiled.demos()["predict"];
    assert_eq!(demos.len(), 2);
    assert_eq!(demos[0]["query"], json!("find easy Keyword apple"));
    assert_eq!(demos[1]["answer"], json!("EASY KEYWORD CHERRY"));

    // The python step prompts as DSPy does with those demos.
    server.clear_requests();
    assert_eq!(qa.compile_free_answer().await, "HARD NUT");
    let ours = server.requests()[1].body["messages"].clone();
    let theirs = dspy_messages(
        &server,
        &[(
            "ChainOfThought",
            "query -> answer",
            &report.step_demos["answer"],
            json!({"query": "find hard nut"}),
        )],
    );
    assert_eq!(
        serde_json::to_string_pretty(&ours).unwrap(),
        serde_json::to_string_pretty(&theirs[0]).unwrap()
    );

    // Saved and loaded into a fresh program, both steps keep their demos.
    let path =
        std::env::temp_dir().join(format!("dspex-hybrid-compile-{}.json", std::process::id()));
    qa.save_state(&path).unwrap();
    let fresh = HybridQa::attach(&ctx).await.unwrap();
    fresh.load_state(&path).await.unwrap();
    assert_eq!(fresh.compile_free_answer().await, "HARD NUT");
    let state = fresh.state().unwrap();
    assert_eq!(
        state.native("rewrite"),
        qa.state().unwrap().native("rewrite")
    );
    assert_eq!(
        state.compiled("answer").map(|c| c.demos()),
        Some(compiled.demos())
    );
    std::fs::remove_file(&path).unwrap();
}

/// Random search on `qa`: the candidates are scored on the validation set a few at once
/// (each LM reply taking a while, as a real LM's does, so that they overlap), and the first of
/// the best is kept.
async fn random_search_keeps_the_best<P: AnyProgram + Probe>(server: &LmServer, qa: &P) {
    server.respond_with(|body| planted_lm(body).after(Duration::from_millis(100)));
    let optimizer = Optimizer::bootstrap_random_search()
        .set("max_bootstrapped_demos", 1)
        .set("max_labeled_demos", 1)
        .set("num_candidate_programs", 4)
        .valset(&valset());
    let report = qa
        .compile(&optimizer, &trainset(), &metric())
        .await
        .unwrap();
    // Zero-shot, labeled only (whose demos the answer step cannot use: they hold no query),
    // bootstrapped in order (its demo from the first train example), then 4 seeded shuffles.
    assert_eq!(report.candidates.len(), 7, "{report}");
    assert_eq!(&report.candidates[..3], &[0.0, 0.0, 1.0], "{report}");
    assert_eq!(report.score_after, Some(1.0));
    assert_eq!(
        report.step_demos["answer"][0].get::<&str>("query").unwrap(),
        "find easy Keyword apple"
    );
    assert_eq!(qa.compile_free_answer().await, "HARD NUT");
    // Bootstrapping runs one example at a time here (one demo wanted), and one candidate's
    // scoring at most the 4 validation examples: more requests at once are several
    // candidates' runs.
    let in_flight = server.max_in_flight();
    let bound = CANDIDATE_CONCURRENCY * valset().len();
    assert!(
        (valset().len() + 1..=bound).contains(&in_flight),
        "{in_flight} requests at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_search_keeps_the_candidate_best_on_validation() {
    let (server, _ctx, qa) = native().await;
    random_search_keeps_the_best(&server, &qa).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_search_on_a_hybrid_program_scores_its_candidates_concurrently() {
    let (server, _ctx, qa) = hybrid().await;
    random_search_keeps_the_best(&server, &qa).await;
    // The python step's candidates went with the runs: its own state is the chosen one only.
    let compiled = qa.python_step("answer").unwrap().compiled_state().unwrap();
    assert_eq!(
        compiled.demos()["predict"][0]["query"],
        json!("find easy Keyword apple")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_clear_error_and_changes_nothing() {
    let (server, ctx, qa) = native().await;
    let bootstrap = Optimizer::bootstrap_few_shot();
    let unchanged = |qa: &NativeQa| {
        let state = qa.state().unwrap();
        assert!(state.native("rewrite").is_none() && state.native("answer").is_none());
    };

    // A train example without the program's input: nothing runs.
    let missing = Dataset::from_examples([
        pair("easy Keyword apple"),
        Example::new()
            .with_input("query", "find x")
            .with_expected("answer", "X"),
    ]);
    server.clear_requests();
    let err = qa
        .compile(&bootstrap, &missing, &metric())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "compile: trainset example 1 has no input `question` of program `NativeQa` (its inputs: `question`)"
    );
    assert!(server.requests().is_empty());
    unchanged(&qa);

    // A metric that fails: counted against max_errors, then an error naming the limit.
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let failing = CompileMetric::rust(metric_fn("failing", move |_: &Example, _: &Fields| {
        counted.fetch_add(1, Ordering::SeqCst);
        Err::<f64, _>(dspex::Error::Metric {
            metric: "failing".into(),
            message: "no score".into(),
        })
    }));
    let err = qa
        .compile(
            &bootstrap.clone().set("max_errors", 2),
            &trainset(),
            &failing,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 runs failed, the limit `max_errors` is 2"),
        "{err}"
    );
    assert!(err.contains("no score"), "{err}");
    unchanged(&qa);

    // A teacher setting a variable the program does not declare: nothing runs.
    server.clear_requests();
    let err = qa
        .compile(
            &bootstrap
                .clone()
                .teacher(Overrides::new().with("temperature", 1.0)),
            &trainset(),
            &metric(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("temperature"), "{err}");
    assert!(server.requests().is_empty());
    unchanged(&qa);

    // A program with no LM step, an optimizer only DSPy has, an unknown setting.
    let no_lm = NoLm::attach(&ctx).await.unwrap();
    let err = no_lm
        .compile(&bootstrap, &trainset(), &metric())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("program `NoLm` has no LM step to compile"),
        "{err}"
    );
    let err = qa
        .compile(&Optimizer::mipro_v2(), &trainset(), &metric())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("exists only in DSPy"), "{err}");
    // The train set's bound, at and over the limit (LabeledFewShot makes no LM call; the
    // validation set is one example).
    let many = |n: usize| Dataset::from_examples((0..n).map(|i| pair(&format!("easy {i}"))));
    let labeled = Optimizer::labeled_few_shot()
        .set("k", 2)
        .valset(&Dataset::from_examples([pair("easy one")]));
    let err = qa
        .compile(&labeled, &many(MAX_TRAIN_EXAMPLES + 1), &metric())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("MAX_TRAIN_EXAMPLES"), "{err}");
    unchanged(&qa);
    let at_limit = NativeQa::attach(&ctx).await.unwrap();
    let report = at_limit
        .compile(&labeled, &many(MAX_TRAIN_EXAMPLES), &metric())
        .await
        .unwrap();
    assert_eq!(report.train_examples, MAX_TRAIN_EXAMPLES);
    assert_eq!(report.step_demos["rewrite"].len(), 2);
    let err = qa
        .compile(
            &Optimizer::labeled_few_shot().set("n", 2),
            &trainset(),
            &metric(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("takes no setting `n`"), "{err}");
    unchanged(&qa);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrapping_runs_examples_concurrently_within_its_bound() {
    let (server, _ctx, qa) = native().await;
    // Each reply takes a while, as a real LM's does, so that the runs of a batch overlap.
    server.respond_with(|body| planted_lm(body).after(Duration::from_millis(100)));
    let train = Dataset::from_examples(
        (0..3 * BOOTSTRAP_CONCURRENCY).map(|i| pair(&format!("easy Keyword {i}"))),
    );
    server.clear_requests();
    let optimizer = Optimizer::bootstrap_few_shot()
        .set("max_bootstrapped_demos", 3 * BOOTSTRAP_CONCURRENCY as i64)
        .set("max_labeled_demos", 0)
        .valset(&valset());
    let report = qa.compile(&optimizer, &train, &metric()).await.unwrap();
    // Every example accepted, each run two LM requests; the validation set twice.
    assert_eq!(
        report.tokens.lm_calls,
        6 * BOOTSTRAP_CONCURRENCY as u64,
        "{report}"
    );
    assert_eq!(report.eval_tokens.lm_calls, 16);
    assert!(report.tokens.prompt_tokens > 0 && report.tokens.completion_tokens > 0);
    let in_flight = server.max_in_flight();
    assert!(
        (2..=BOOTSTRAP_CONCURRENCY).contains(&in_flight),
        "{in_flight}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compile_reaches_dspys_dev_score_with_no_more_lm_requests() {
    let (server, _ctx, qa) = native().await;
    let input = json!({
        "base_url": server.base_url(),
        "train": pairs(&trainset()),
        "dev": pairs(&valset()),
        "max_bootstrapped_demos": 2,
        "max_labeled_demos": 3,
    });
    let dspy =
        tokio::task::block_in_place(|| run_script("tests/python/bootstrap_like_dspy.py", &input));
    let report = qa
        .compile(&bootstrap(2, 3), &trainset(), &metric())
        .await
        .unwrap();
    assert_eq!(
        report.score_after,
        dspy["dev_score"].as_f64(),
        "{report}\n{dspy}"
    );
    assert_eq!(report.score_after, Some(1.0));
    let theirs = dspy["compile_requests"].as_u64().unwrap();
    assert!(report.tokens.lm_calls <= theirs, "{report}\n{dspy}");
    assert_eq!(
        report.demos["rewrite"],
        u32::try_from(dspy["demos"]["rewrite"].as_u64().unwrap()).unwrap()
    );
    assert_eq!(
        report.demos["answer"],
        u32::try_from(dspy["demos"]["answer.predict"].as_u64().unwrap()).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_built_at_run_time_compiles_like_a_declared_one() {
    let (_server, ctx, _qa) = native().await;
    let built = dspex::ProgramBuilder::new("BuiltQa")
        .signature("question -> answer")
        .step(dspex::Step::native(
            "rewrite",
            "question -> query",
            Predict::default(),
        ))
        .step(dspex::Step::native(
            "answer",
            "query -> answer",
            ChainOfThought::default(),
        ))
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap();
    let report = built
        .compile(&bootstrap(2, 2), &trainset(), &metric())
        .await
        .unwrap();
    assert_eq!(report.score_before, Some(0.0));
    assert_eq!(report.score_after, Some(1.0), "{report}");
    let out = built
        .run(Fields::from([("question", "hard nut")]))
        .await
        .unwrap();
    assert_eq!(out.get::<&str>("answer").unwrap(), "HARD NUT");
    assert_eq!(
        built.state().unwrap().native("answer").unwrap()["predict"]["demos"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_steps_are_bootstrapped_as_dspys_teacher_runs_them() {
    let (server, ctx) = context(true).await;
    let qa = TaughtQa::attach(&ctx).await.unwrap();
    server.clear_requests();
    // The teacher: `LabeledFewShot(k=6)` of the train set for every predictor, python steps
    // included (the keyword reaches the hard questions' prompts), and its settings.
    let optimizer = bootstrap(6, 6).teacher(Overrides::new().with("temperature", 0.9));
    let report = qa
        .compile(&optimizer, &trainset(), &metric())
        .await
        .unwrap();
    assert_eq!(report.score_before, Some(0.0));
    assert_eq!(report.score_after, Some(1.0), "{report}");
    let requests = server.requests();
    let (teacher, student): (Vec<_>, Vec<_>) = requests
        .iter()
        .partition(|r| r.body["temperature"] == json!(0.9));
    // Every train example ran once, with the others' labeled demos (5 pairs of messages).
    assert_eq!(teacher.len(), 6, "{report}");
    for request in &teacher {
        assert_eq!(request.body["messages"].as_array().unwrap().len(), 12);
    }
    // Validation before and after, with the program's own temperature.
    assert_eq!(student.len(), 8);
    assert!(student.iter().all(|r| r.body["temperature"] == json!(0.0)));
    let compiled = qa.python_step("answer").unwrap().compiled_state().unwrap();
    let demos = &compiled.demos()["self"];
    assert_eq!(demos.len(), 6);
    assert!(demos.iter().all(|d| d["augmented"] == json!(true)));

    // DSPy's BootstrapFewShot on the DSPy original bootstraps every example too.
    let input = json!({
        "base_url": server.base_url(),
        "train": pairs(&trainset()),
        "dev": pairs(&valset()),
        "max_bootstrapped_demos": 6,
        "max_labeled_demos": 6,
        "program": "answer",
    });
    let dspy =
        tokio::task::block_in_place(|| run_script("tests/python/bootstrap_like_dspy.py", &input));
    assert_eq!(dspy["augmented"]["answer"], json!(6), "{dspy}");
    assert_eq!(dspy["compile_requests"], json!(6), "{dspy}");
    assert_eq!(report.score_after, dspy["dev_score"].as_f64(), "{dspy}");

    // Without labeled demos the teacher is the program as it is: the hard questions fail.
    let fresh = TaughtQa::attach(&ctx).await.unwrap();
    let report = fresh
        .compile(&bootstrap(6, 0), &trainset(), &metric())
        .await
        .unwrap();
    assert_eq!(report.step_demos["answer"].len(), 3, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_metric_scores_the_whole_programs_runs_in_the_worker() {
    let (server, ctx, qa) = hybrid().await;
    // As a Rust metric does; while bootstrapping it gets the run's LM steps as its trace.
    let traced = CompileMetric::python("sample_modules.answer_matches_traced");
    let report = qa
        .compile(&bootstrap(2, 2), &trainset(), &traced)
        .await
        .unwrap();
    assert_eq!(report.metric, "sample_modules.answer_matches_traced");
    assert_eq!(report.score_before, Some(0.0));
    assert_eq!(report.score_after, Some(1.0), "{report}");
    assert_eq!(report.tokens.lm_calls, 6, "{report}");
    assert_eq!(report.step_demos["answer"].len(), 2);
    // An all-native program takes one too: the worker runs the metric only.
    let native = NativeQa::attach(&ctx).await.unwrap();
    let report = native
        .compile(&bootstrap(2, 2), &trainset(), &traced)
        .await
        .unwrap();
    assert_eq!(report.score_after, Some(1.0), "{report}");
    assert_eq!(native.compile_free_answer().await, "HARD NUT");

    // A metric that raises counts against `max_errors`, then stops with the Python error.
    let fresh = HybridQa::attach(&ctx).await.unwrap();
    let err = fresh
        .compile(
            &bootstrap(2, 2).set("max_errors", 2),
            &trainset(),
            &CompileMetric::python("sample_modules.raising_metric"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 runs failed, the limit `max_errors` is 2"),
        "{err}"
    );
    assert!(err.contains("no score from Python"), "{err}");
    assert!(fresh.state().unwrap().compiled("answer").is_none());
    // So does one scoring outside [0, 1].
    let err = fresh
        .compile(
            &bootstrap(2, 2).set("max_errors", 1),
            &trainset(),
            &CompileMetric::python("sample_modules.overscored"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected a number in [0, 1]"), "{err}");

    // A metric that does not import, or is no callable: an error before any LM call.
    for (path, says) in [
        ("sample_modules.no_such_metric", "no_such_metric"),
        ("sample_modules.not_a_metric", "not a callable"),
    ] {
        server.clear_requests();
        let err = fresh
            .compile(&bootstrap(2, 2), &trainset(), &CompileMetric::python(path))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(says) && err.contains(path), "{err}");
        assert!(server.requests().is_empty());
    }
    assert!(fresh.state().unwrap().compiled("answer").is_none());
}
