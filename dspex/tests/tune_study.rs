//! Tuning studies in one process: memory, file and Redis studies (each test on its own
//! private redis-server study) keep an exact budget shared by tuners running at once, never
//! evaluate an assignment twice, resume, and run nothing once finished; a trial whose run
//! stopped renewing its lease fails and is proposed again, at most `MAX_ATTEMPTS` times; a study
//! refuses a tuner that differs, an unreachable URL and corrupt records, naming them. Several
//! objectives give a non-dominated Pareto front and `best_where`; ties follow the documented
//! rule; results of version 1 still load.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

#[allow(dead_code)]
mod planted;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dspex::LmCall;
use dspex::StepContext;
use dspex::eval::{Dataset, ExactMatch, Example};
use dspex::prelude::*;
use dspex::tune::{
    Cost, Direction, MAX_ATTEMPTS, MAX_LEASE, MAX_OBJECTIVES, MAX_STUDY_NAME_BYTES, MIN_LEASE,
    Objective, Sampler, SearchSpace, Study, Trial, TrialState, TuneResult, Tuner,
};
use dspex_test_redis::RedisServer;
use planted::{Planted, dev_set, metric, space};
use tokio::sync::{Mutex, Notify};

/// One server for this test binary; each test has its own study names.
static REDIS: LazyLock<RedisServer> =
    LazyLock::new(|| RedisServer::start().expect("a private redis-server starts"));

/// A fresh name per study.
fn name(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{test}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A fresh path for a file study, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(test: &str) -> Self {
        Self(std::env::temp_dir().join(format!(
            "dspex-study-{}-{}.jsonl",
            std::process::id(),
            name(test)
        )))
    }
}

impl std::ops::Deref for TempFile {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The three kinds of study, fresh (and the file study's file, removed when dropped).
async fn studies(test: &str) -> (Vec<Study>, TempFile) {
    let url = tokio::task::spawn_blocking(|| REDIS.url()).await.unwrap();
    let file = TempFile::new(test);
    let studies = vec![
        Study::memory(),
        Study::file(&*file),
        Study::redis(url, name(test)),
    ];
    (studies, file)
}

fn finished(trials: &[Trial]) -> Vec<&Trial> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Finished)
        .collect()
}

fn assert_distinct(trials: &[Trial]) {
    let mut seen = HashSet::new();
    for t in trials {
        assert!(
            seen.insert(format!("{:?}", t.assignment)),
            "trial {} repeats an assignment: {:?}",
            t.index,
            t.assignment
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuners_sharing_a_study_complete_exactly_the_budget_and_never_repeat_an_assignment() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(6);
    let (studies, _file) = studies("shared").await;
    for study in studies {
        // Three tuners at once, all with the same seed: without the study they would propose
        // the same assignments.
        let tuner = Tuner::new(space(&program).unwrap(), metric())
            .trials(30)
            .seed(4)
            .trial_concurrency(3)
            .study(study.clone());
        let (a, b, c) = tokio::join!(
            tuner.run(&program, &dev),
            tuner.run(&program, &dev),
            tuner.run(&program, &dev)
        );
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        let all = study.trials().await.unwrap();
        assert_eq!(finished(&all).len(), 30, "{study}");
        assert_eq!(all.len(), 30, "{study}: no trial failed");
        assert_distinct(&all);
        // Every tuner's result holds every trial of the study.
        for r in [&a, &b, &c] {
            assert_eq!(r.trials, all, "{study}");
        }
        assert_eq!(a.best_score, study.best().await.unwrap().map(|t| t.score));
    }
}

#[tokio::test]
async fn a_study_resumes_and_a_finished_study_runs_nothing() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(5);
    let (studies, _file) = studies("resume").await;
    for study in studies {
        let tuner = |n: usize| {
            Tuner::new(space(&program).unwrap(), metric())
                .trials(n)
                .seed(1)
                .study(study.clone())
        };
        let first = tuner(8).run(&program, &dev).await.unwrap();
        assert_eq!(first.trials.len(), 8, "{study}");
        // Finished: nothing runs, the result is the study's.
        let again = tuner(8).run(&program, &dev).await.unwrap();
        assert_eq!(again.trials, first.trials, "{study}");
        assert_eq!(again.examples_evaluated(), first.examples_evaluated());
        // A larger budget resumes: the first trials stay, the new ones follow.
        let more = tuner(13).run(&program, &dev).await.unwrap();
        assert_eq!(more.trials.len(), 13, "{study}");
        assert_eq!(&more.trials[..8], &first.trials[..]);
        assert_distinct(&more.trials);
        // A tuner with a smaller budget runs nothing either.
        let fewer = tuner(3).run(&program, &dev).await.unwrap();
        assert_eq!(fewer.trials.len(), 13);
    }
    // A file study survives its handles: a new handle on the same path resumes it.
    let file = TempFile::new("reopen");
    let tuner = |n: usize| {
        Tuner::new(space(&program).unwrap(), metric())
            .trials(n)
            .seed(2)
            .study(Study::file(&*file))
    };
    tuner(4).run(&program, &dev).await.unwrap();
    let reopened = tuner(6).run(&program, &dev).await.unwrap();
    assert_eq!(reopened.trials.len(), 6);
    assert_distinct(&reopened.trials);
}

#[tokio::test]
async fn a_memory_study_with_a_seed_is_reproducible() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(5);
    let run = |seed: u64| {
        let tuner = Tuner::new(space(&program).unwrap(), metric())
            .trials(20)
            .seed(seed)
            .trial_concurrency(4)
            .study(Study::memory());
        let (program, dev) = (&program, &dev);
        async move { tuner.run(program, dev).await.unwrap() }
    };
    let values = |r: &TuneResult| -> Vec<(BTreeMap<String, Value>, Vec<f64>)> {
        r.trials
            .iter()
            .map(|t| (t.assignment.clone(), t.values.clone()))
            .collect()
    };
    assert_eq!(values(&run(3).await), values(&run(3).await));
    assert_ne!(values(&run(3).await), values(&run(4).await));
}

/// A gate that native steps of [`Gated`] wait at while it is closed, saying when one arrived.
struct Gate {
    closed: AtomicBool,
    arrived: Notify,
}

static GATE: LazyLock<Gate> = LazyLock::new(|| Gate {
    closed: AtomicBool::new(false),
    arrived: Notify::new(),
});

/// The tests that use the gate run one at a time.
static GATED: LazyLock<Mutex<()>> = LazyLock::new(|| Mutex::new(()));

#[derive(Default)]
struct GatedLm;

impl Module for GatedLm {
    async fn forward(&self, _: &Fields, params: &Params) -> Result<Fields> {
        if GATE.closed.load(Ordering::SeqCst) {
            GATE.arrived.notify_one();
            // Held until the run is dropped.
            std::future::pending::<()>().await;
        }
        let k = params.get::<i64>("k")?;
        Ok(Fields::from([(
            "answer",
            if k == 7 { "yes" } else { "no" },
        )]))
    }
}

dspex_program! {
    /// Right only with `k = 7`; its step waits at the gate while it is closed.
    program Gated: "question -> answer" {
        variables { k: integer = 0 { min: 0, max: 99 } }
        chain { answer: native GatedLm("question -> answer") { k } }
    }
}

fn gated_dev() -> Dataset {
    Dataset::from_examples([Example::new()
        .with_input("question", "?")
        .with_expected("answer", "yes")])
}

/// Starts a tuner on `study` with the gate closed, waits until its first trial is at the gate,
/// then drops the run (as a process that dies would): its lease is no longer renewed.
async fn abandon_a_trial(program: &Gated, study: &Study) {
    GATE.closed.store(true, Ordering::SeqCst);
    let tuner = Tuner::new(SearchSpace::of(program).unwrap(), ExactMatch::new("answer"))
        .sampler(Sampler::Random)
        .trials(1)
        .trial_concurrency(1)
        .study(study.clone());
    let dev = gated_dev();
    let run = tuner.run(program, &dev);
    tokio::select! {
        result = run => panic!("the run ended at a closed gate: {result:?}"),
        () = GATE.arrived.notified() => {}
    }
    GATE.closed.store(false, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_whose_lease_runs_out_fails_and_is_proposed_again() {
    let _one_at_a_time = GATED.lock().await;
    let program = Gated::start().await.unwrap();
    let (studies, _file) = studies("lease").await;
    for study in studies {
        let study = study.lease(MIN_LEASE);
        abandon_a_trial(&program, &study).await;
        // Readable while the trial is (seemingly) running.
        let seen = study.trials().await.unwrap();
        assert_eq!(seen.len(), 1, "{study}");
        assert_eq!(seen[0].state, TrialState::Running);
        // The running trial holds the budget of one: a new tuner waits for its lease, then
        // takes the trial over.
        let tuner = |n: usize| {
            Tuner::new(
                SearchSpace::of(&program).unwrap(),
                ExactMatch::new("answer"),
            )
            .sampler(Sampler::Random)
            .trials(n)
            .study(study.clone())
        };
        let result = tuner(1).run(&program, &gated_dev()).await.unwrap();
        let trials = &result.trials;
        assert_eq!(trials.len(), 2, "{result}");
        assert_eq!(trials[0].state, TrialState::Failed, "{result}");
        assert_eq!(trials[1].retry_of, Some(0), "{result}");
        assert_eq!(trials[1].assignment, trials[0].assignment);
        assert_eq!(trials[1].state, TrialState::Finished);
        // The budget counts finished trials only.
        let result = tuner(3).run(&program, &gated_dev()).await.unwrap();
        assert_eq!(finished(&result.trials).len(), 3, "{result}");
        assert_eq!(result.trials.len(), 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_is_tried_at_most_max_attempts_times() {
    let _one_at_a_time = GATED.lock().await;
    let program = Gated::start().await.unwrap();
    let study = Study::memory().lease(MIN_LEASE);
    assert_eq!(MAX_ATTEMPTS, 3);
    for _ in 0..MAX_ATTEMPTS {
        abandon_a_trial(&program, &study).await;
    }
    let result = Tuner::new(
        SearchSpace::of(&program).unwrap(),
        ExactMatch::new("answer"),
    )
    .sampler(Sampler::Random)
    .trials(1)
    .study(study.clone())
    .run(&program, &gated_dev())
    .await
    .unwrap();
    let trials = &result.trials;
    // Trials 0, 1, 2: one assignment, failed MAX_ATTEMPTS times; trial 3: a new one.
    assert_eq!(trials.len(), 4, "{result}");
    for (i, t) in trials[..3].iter().enumerate() {
        assert_eq!(t.state, TrialState::Failed, "{result}");
        assert_eq!(t.assignment, trials[0].assignment);
        assert_eq!(t.retry_of, i.checked_sub(1));
    }
    assert_eq!(trials[3].state, TrialState::Finished);
    assert_eq!(trials[3].retry_of, None);
    assert_ne!(trials[3].assignment, trials[0].assignment);
}

dspex_program! {
    /// `Planted` with a narrower temperature: another declaration.
    program Planted2: "question -> answer" {
        variables {
            model: choice = "mini" { choices: ["nano", "mini", "base", "large"] },
            temperature: float = 1.0 { min: 0.0, max: 1.0 },
            max_tokens: integer = 64 { min: 16, max: 2048 },
            reasoning: module = "Predict" { choices: ["Predict", "ChainOfThought", "ReAct", "ProgramOfThought"] },
            verbose: boolean = false,
        }
        chain {
            answer: native planted::ScriptedLm("question -> answer") { model, temperature, max_tokens, reasoning, verbose },
        }
    }
}

#[tokio::test]
async fn a_study_refuses_a_tuner_that_differs_naming_the_difference() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(4);
    let (studies, _file) = studies("refuse").await;
    for study in studies {
        let tuner = Tuner::new(space(&program).unwrap(), metric())
            .trials(3)
            .study(study.clone());
        tuner.run(&program, &dev).await.unwrap();
        let narrowed = Tuner::new(
            space(&program)
                .unwrap()
                .narrow("temperature", 0.0, 1.0)
                .unwrap()
                .fix("verbose", true)
                .unwrap(),
            metric(),
        )
        .trials(6)
        .study(study.clone());
        let err = narrowed.run(&program, &dev).await.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "tuning: {study} holds another tuning; this tuner differs: "
            )),
            "{err}"
        );
        assert!(err.contains("`temperature` is searched over 0.0..=2.0 in the study, searched over 0.0..=1.0 here"), "{err}");
        assert!(
            err.contains(
                "`verbose` is searched over {false, true} in the study, fixed at true here"
            ),
            "{err}"
        );
        let cheaper = tuner.clone().objectives([
            Objective::maximize(metric()),
            Objective::minimize(Cost::tokens()),
        ]);
        let err = cheaper.run(&program, &dev).await.unwrap_err().to_string();
        assert!(err.contains("the objectives are [maximize exact_match(answer)] in the study, [maximize exact_match(answer), minimize tokens] here"), "{err}");
        let other = Planted2::start().await.unwrap();
        let err = Tuner::new(space(&program).unwrap(), metric())
            .study(study.clone())
            .run(&other, &dev)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("built for program `Planted`"), "{err}");
        let err = Tuner::new(SearchSpace::of(&other).unwrap(), metric())
            .study(study.clone())
            .run(&other, &dev)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the study was saved for program `Planted`, not `Planted2`"),
            "{err}"
        );
        // Refused: the study is as it was.
        assert_eq!(study.trials().await.unwrap().len(), 3, "{study}");
    }
}

#[tokio::test]
async fn an_unreachable_study_names_the_url_and_changes_nothing() {
    let program = Planted::start().await.unwrap();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/0");
    let study = Study::redis(&url, "nowhere");
    let err = Tuner::new(space(&program).unwrap(), metric())
        .study(study.clone())
        .run(&program, &dev_set(3))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Shared { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "shared state: study `nowhere`: cannot reach Redis at redis://:***@127.0.0.1:{port}/0; nothing was changed"
        )
    );
    assert!(study.trials().await.is_err());
    // The program's context is untouched.
    assert_eq!(program.model().record().unwrap().version, 1);
}

#[tokio::test]
async fn study_names_and_leases_are_checked_at_and_over_their_limits() {
    let _one_at_a_time = GATED.lock().await;
    let program = Gated::start().await.unwrap();
    let url = tokio::task::spawn_blocking(|| REDIS.url()).await.unwrap();
    let run = |study: Study| {
        let tuner = Tuner::new(
            SearchSpace::of(&program).unwrap(),
            ExactMatch::new("answer"),
        )
        .trials(1)
        .study(study);
        let program = &program;
        async move { tuner.run(program, &gated_dev()).await }
    };
    let longest = "n".repeat(MAX_STUDY_NAME_BYTES);
    run(Study::redis(&url, longest)).await.unwrap();
    let err = run(Study::redis(&url, "n".repeat(MAX_STUDY_NAME_BYTES + 1)))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "study name: \"{}\": 129 bytes is over the limit of 128 bytes (MAX_STUDY_NAME_BYTES)",
            "n".repeat(129)
        )
    );
    let err = run(Study::redis(&url, "a{b}")).await.unwrap_err();
    assert!(err.to_string().contains("'{' is not allowed"), "{err}");
    for lease in [MIN_LEASE, MAX_LEASE] {
        run(Study::memory().lease(lease)).await.unwrap();
    }
    for lease in [
        MIN_LEASE - Duration::from_millis(1),
        MAX_LEASE + Duration::from_secs(1),
    ] {
        let err = run(Study::memory().lease(lease)).await.unwrap_err();
        assert!(
            err.to_string().starts_with("study lease: ")
                && err.to_string().ends_with("(MIN_LEASE, MAX_LEASE)"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_corrupt_study_record_is_an_error_naming_the_key() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(3);
    let tuner = |study: &Study| {
        Tuner::new(space(&program).unwrap(), metric())
            .trials(3)
            .study(study.clone())
    };
    let url = tokio::task::spawn_blocking(|| REDIS.url()).await.unwrap();
    let study_name = name("corrupt");
    let study = Study::redis(&url, &study_name);
    tuner(&study).run(&program, &dev).await.unwrap();
    let tag = format!("{{dspex:study:{study_name}}}");
    let set = |key: String, field: &str, value: &str| {
        let url = url.clone();
        let (field, value) = (field.to_owned(), value.to_owned());
        async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
                redis::cmd("HSET")
                    .arg(key)
                    .arg(field)
                    .arg(value)
                    .exec(&mut conn)
                    .unwrap();
            })
            .await
            .unwrap();
        }
    };
    set(format!("{tag}:trials"), "1:outcome", "{\"values\": \"x\"}").await;
    let err = study.trials().await.unwrap_err().to_string();
    assert!(
        err.contains(&format!("`{tag}:trials` field `1:outcome` is corrupt")),
        "{err}"
    );
    set(format!("{tag}:trials"), "1:assign", "not json").await;
    let err = tuner(&study)
        .trials(5)
        .run(&program, &dev)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("`{tag}:trials` field `1:assign` is corrupt")),
        "{err}"
    );
    set(format!("{tag}:meta"), "header", "{").await;
    let err = tuner(&study)
        .run(&program, &dev)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "tuning: the study header at `{tag}:meta` field `header` is corrupt"
        )),
        "{err}"
    );

    // A file study names the file and the line.
    let file = TempFile::new("corrupt");
    tuner(&Study::file(&*file))
        .run(&program, &dev)
        .await
        .unwrap();
    let text = std::fs::read_to_string(&*file).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"number\": 1, \"oops\": true}";
    std::fs::write(&*file, lines.join("\n") + "\n").unwrap();
    let err = Study::file(&*file).trials().await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "tuning: the study record at {} line 3 is corrupt: ",
            file.display()
        )),
        "{err}"
    );
}

/// Answers when its settings are good enough for the question, and records an LM call whose
/// tokens grow with the model and the effort: better costs more.
#[derive(Default)]
struct CostlyLm;

fn costly(inputs: &Fields, params: &Params) -> Result<(Fields, u64)> {
    let question = inputs.get::<&str>("question")?;
    let difficulty: f64 = question.trim_start_matches('d').parse().unwrap_or(1.0);
    let model = params.get::<Choice>("model")?;
    let (quality, tokens) = match model.as_str() {
        "small" => (0.2, 10),
        "medium" => (0.4, 40),
        _ => (0.6, 50),
    };
    let effort = params.get::<i64>("effort")?;
    let temperature = params.get::<f64>("temperature")?;
    #[allow(clippy::cast_precision_loss)]
    let quality = quality + 0.1 * effort as f64 - 0.05 * temperature;
    let answer = if quality + 1e-9 >= difficulty {
        "yes"
    } else {
        "no"
    };
    #[allow(clippy::cast_sign_loss)]
    Ok((Fields::from([("answer", answer)]), tokens * effort as u64))
}

impl Module for CostlyLm {
    async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
        costly(inputs, params).map(|(fields, _)| fields)
    }

    fn forward_in_step(
        &self,
        step: &StepContext<'_>,
        inputs: &Fields,
        params: &Params,
    ) -> impl Future<Output = Result<Fields>> + Send {
        let out = costly(inputs, params).map(|(fields, tokens)| {
            step.record_lm_call(LmCall {
                model: "scripted".to_owned(),
                temperature: None,
                max_tokens: None,
                top_p: None,
                n: None,
                prompt_tokens: Some(tokens),
                completion_tokens: Some(0),
                exchange: None,
            });
            fields
        });
        std::future::ready(out)
    }
}

dspex_program! {
    /// Better settings answer harder questions and cost more tokens.
    program Costly: "question -> answer" {
        variables {
            model: choice = "small" { choices: ["small", "medium", "large"] },
            temperature: float = 0.0 { min: 0.0, max: 1.0 },
            effort: integer = 1 { min: 1, max: 4 },
        }
        chain { answer: native CostlyLm("question -> answer") { model, temperature, effort } }
    }
}

/// Questions of difficulty spread over `(0, top]`, all answered "yes" when good enough.
fn costly_dev(n: usize, top: f64) -> Dataset {
    (1..=n)
        .map(|i| {
            #[allow(clippy::cast_precision_loss)]
            let d = top * i as f64 / n as f64;
            Example::new()
                .with_input("question", format!("d{d}"))
                .with_expected("answer", "yes")
        })
        .collect()
}

#[tokio::test]
async fn several_objectives_give_a_non_dominated_front_and_best_where_the_cheapest_good_enough() {
    let program = Costly::start().await.unwrap();
    let dev = costly_dev(10, 1.0);
    for sampler in [Sampler::tpe(), Sampler::Random] {
        let result = Tuner::new(
            SearchSpace::of(&program).unwrap(),
            ExactMatch::new("answer"),
        )
        .objectives([
            Objective::maximize(ExactMatch::new("answer")),
            Objective::minimize(Cost::tokens()),
        ])
        .sampler(sampler)
        .trials(40)
        .seed(5)
        .run(&program, &dev)
        .await
        .unwrap();
        assert_eq!(
            result.objectives,
            vec![
                (Direction::Maximize, "exact_match(answer)".to_owned()),
                (Direction::Minimize, "tokens".to_owned())
            ]
        );
        for t in &result.trials {
            assert_eq!(t.values.len(), 2);
            assert_eq!(t.score, t.values[0]);
            assert_eq!(t.values[1], Cost::tokens().of(t), "{result}");
        }
        let front = result.pareto_front();
        assert!(front.len() >= 2, "{sampler}: {result}");
        let dominates = |a: &Trial, b: &Trial| {
            a.values[0] >= b.values[0]
                && a.values[1] <= b.values[1]
                && (a.values[0] > b.values[0] || a.values[1] < b.values[1])
        };
        for a in &front {
            for b in &result.trials {
                assert!(
                    !dominates(b, a),
                    "{sampler}: trial {} dominates front trial {}",
                    b.index,
                    a.index
                );
            }
        }
        // Every trial off the front is dominated by one on it.
        for t in result
            .trials
            .iter()
            .filter(|t| !front.iter().any(|f| f.index == t.index))
        {
            assert!(
                front.iter().any(|f| dominates(f, t)),
                "{sampler}: trial {}",
                t.index
            );
        }
        // The cheapest trial that is good enough.
        let good = front.iter().map(|t| t.score).fold(0.0, f64::max) * 0.8;
        let chosen = result.best_where(|t| t.score >= good).unwrap();
        let cheapest = front
            .iter()
            .filter(|t| t.score >= good)
            .map(|t| t.values[1])
            .fold(f64::INFINITY, f64::min);
        assert_eq!(chosen.values[1], cheapest);
        assert!(result.best_where(|t| t.score > 1.0).is_none());
        // `best` is the best first objective; applying the chosen trial writes its values.
        assert_eq!(
            result.best_score,
            Some(front.iter().map(|t| t.score).fold(0.0, f64::max))
        );
        result.apply_trial(&program, chosen).unwrap();
        assert_eq!(
            Value::from(program.model().get().unwrap().to_string()),
            chosen.assignment["model"]
        );
        let record = program.effort().record().unwrap();
        assert_eq!(record.metadata["tuned_score"], chosen.score.to_string());
    }
}

#[tokio::test]
async fn objectives_are_checked_at_and_over_their_limit() {
    let program = Costly::start().await.unwrap();
    let dev = costly_dev(2, 0.5);
    let tuner = |objectives: Vec<Objective>| {
        Tuner::new(
            SearchSpace::of(&program).unwrap(),
            ExactMatch::new("answer"),
        )
        .objectives(objectives)
        .trials(2)
    };
    let many = |n: usize| -> Vec<Objective> {
        (0..n)
            .map(|i| {
                if i == 0 {
                    Objective::maximize(ExactMatch::new("answer"))
                } else {
                    Objective::minimize(Cost::latency())
                }
            })
            .collect()
    };
    let at = tuner(many(MAX_OBJECTIVES))
        .run(&program, &dev)
        .await
        .unwrap();
    assert_eq!(at.trials[0].values.len(), MAX_OBJECTIVES);
    let err = tuner(many(MAX_OBJECTIVES + 1))
        .run(&program, &dev)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tuning: a tuner needs 1 to 16 objectives (MAX_OBJECTIVES), got 17"
    );
    let err = tuner(Vec::new()).run(&program, &dev).await.unwrap_err();
    assert!(err.to_string().contains("got 0"), "{err}");
    let err = tuner(vec![Objective::minimize(Cost::tokens())])
        .run(&program, &dev)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("at least one metric"), "{err}");
}

#[tokio::test]
async fn ties_keep_the_first_grid_point_in_enumeration_order_or_the_cheapest() {
    let program = Costly::start().await.unwrap();
    // Everything up to 0.7 is answered by (medium, effort >= 3) and (large, any effort): six
    // tied cells. A plain loop over the grid (model, then effort) keeps the first: (medium, 3).
    let dev = costly_dev(3, 0.7);
    let space = SearchSpace::of(&program)
        .unwrap()
        .fix("temperature", 0.0)
        .unwrap();
    for seed in 0..5 {
        let result = Tuner::new(space.clone(), ExactMatch::new("answer"))
            .sampler(Sampler::grid(4))
            .trials(100)
            .seed(seed)
            .run(&program, &dev)
            .await
            .unwrap();
        assert_eq!(result.trials.len(), 12);
        let tied = result.trials.iter().filter(|t| t.score == 1.0).count();
        assert_eq!(tied, 6, "{result}");
        let best = result.best.as_ref().unwrap();
        assert_eq!(
            (&best["model"], &best["effort"]),
            (&Value::from("medium"), &Value::Integer(3)),
            "seed {seed}"
        );
        let trial = &result.trials[result.best_trial.unwrap()];
        assert_eq!(trial.grid_point, Some(6));
        // Preferring fewer tokens: (large, 1) costs 50, (medium, 3) 120.
        let cheap = Tuner::new(space.clone(), ExactMatch::new("answer"))
            .sampler(Sampler::grid(4))
            .trials(100)
            .seed(seed)
            .prefer_lower(Cost::tokens())
            .run(&program, &dev)
            .await
            .unwrap();
        let best = cheap.best.as_ref().unwrap();
        assert_eq!(
            (&best["model"], &best["effort"]),
            (&Value::from("large"), &Value::Integer(1))
        );
    }
    // Other samplers keep the earliest trial among ties.
    let result = Tuner::new(space, ExactMatch::new("answer"))
        .sampler(Sampler::Random)
        .trials(12)
        .seed(1)
        .run(&program, &dev)
        .await
        .unwrap();
    let first = result.trials.iter().find(|t| t.score == 1.0).unwrap();
    assert_eq!(result.best_trial, Some(first.index));
}

#[tokio::test]
async fn a_result_of_version_1_still_loads() {
    let program = Planted::start().await.unwrap();
    let v1 = r#"{
  "format": "dspex.tune.result",
  "version": 1,
  "program": "Planted",
  "variables": [
    {"name": "model", "type": "choice", "constraints": "choices [\"nano\", \"mini\", \"base\", \"large\"]"},
    {"name": "temperature", "type": "float", "constraints": "min 0.0, max 2.0"},
    {"name": "max_tokens", "type": "integer", "constraints": "min 16, max 2048"},
    {"name": "reasoning", "type": "module", "constraints": "choices [\"Predict\", \"ChainOfThought\", \"ReAct\", \"ProgramOfThought\"]"},
    {"name": "verbose", "type": "boolean", "constraints": "none"}
  ],
  "metric": "exact_match(answer)",
  "tuner": "random, seed 4",
  "seed": 4,
  "best": {"model": "large", "temperature": 0.25, "max_tokens": 300, "reasoning": "ChainOfThought", "verbose": false},
  "best_score": 1.0,
  "best_trial": 0,
  "duration_ms": 12.5,
  "trials": [
    {"index": 0, "assignment": {"model": "large", "temperature": 0.25, "max_tokens": 300, "reasoning": "ChainOfThought", "verbose": false},
     "score": 1.0, "rung": 0, "complete": true, "examples": 8, "errors": 0,
     "tokens": {"lm_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "calls_without_usage": 0},
     "duration_ms": 1.5, "first_error": null}
  ]
}"#;
    let result = TuneResult::from_json(v1, &program).unwrap();
    assert_eq!(
        result.objectives,
        vec![(Direction::Maximize, "exact_match(answer)".to_owned())]
    );
    assert_eq!(result.trials[0].values, vec![1.0]);
    assert_eq!(result.trials[0].state, TrialState::Finished);
    assert_eq!(result.pareto_front().len(), 1);
    result.apply(&program).unwrap();
    assert_eq!(program.model().get().unwrap(), "large");
}
