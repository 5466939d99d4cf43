//! `max_rounds` as DSPy's `BootstrapFewShot` has it: an example whose run is not accepted is
//! run again, each later round a rollout (every LM request of the teacher at temperature 1.0,
//! native steps and python steps, and answered by the LM, never by a reply cached for another
//! round or for no round). Against the planted LM on the loopback server, whose lucky
//! questions are answered right at temperature 1.0 only: one round gives no demo for a lucky
//! example, two rounds do, with the LM requests DSPy's own `BootstrapFewShot` sends (the same
//! count, and the same messages at temperature 1.0), even when the response cache holds a reply
//! to the same request at temperature 1.0.

#![allow(clippy::unwrap_used)]

use dspex::eval::{Dataset, ExactMatch};
use dspex::lm::Cache;
use dspex::optimize::{CompileMetric, Optimizer, ROLLOUT_TEMPERATURE};
use dspex::prelude::*;
use dspex::{JsonValue, Overrides, json};
use dspex_test_lm::{LmServer, RecordedRequest};
use dspex_tests::planted_qa::{LUCKY, pair, pairs, planted_lm};
use dspex_tests::{run_script, worker_config};

dspex_program! {
    /// Query generation, then a reasoned answer, both native, at the temperature of a variable.
    program WarmQa: "question -> answer" {
        variables {
            temperature: float = 0.0 { min: 0.0, max: 2.0 },
        }
        chain {
            rewrite: native Predict("question -> query") { temperature },
            answer: native ChainOfThought("query -> answer") { temperature },
        }
    }
}

dspex_program! {
    /// The same program with its answer step in DSPy.
    program WarmHybridQa: "question -> answer" {
        variables {
            temperature: float = 0.0 { min: 0.0, max: 2.0 },
        }
        chain {
            rewrite: native Predict("question -> query") { temperature },
            answer: python ChainOfThought("query -> answer") { temperature },
        }
    }
}

/// A hard question (never right without the keyword in a demo), then a lucky one.
fn trainset() -> Dataset {
    Dataset::from_examples([pair("hard apple"), pair(&format!("{LUCKY} fig"))])
}

/// `BootstrapFewShot` for one demo, with no labeled demos (the teacher is the program as it
/// is), in `rounds` rounds.
fn bootstrap(rounds: i64) -> Optimizer {
    Optimizer::bootstrap_few_shot()
        .set("max_bootstrapped_demos", 1)
        .set("max_labeled_demos", 0)
        .set("max_rounds", rounds)
        .valset(&Dataset::from_examples([pair("hard dev")]))
}

fn metric() -> CompileMetric {
    CompileMetric::rust(ExactMatch::new("answer"))
}

/// The planted LM's server and a context on it with a memory response cache (and a worker
/// when `python`).
async fn context(python: bool) -> (LmServer, Context) {
    let server = LmServer::start().await.unwrap();
    server.respond_with(planted_lm);
    let lm = LmConfig::openai(server.base_url(), "planted").cache(Cache::memory(256));
    let mut builder = Context::builder().lm(lm);
    if python {
        builder = builder.worker(worker_config());
    }
    (server, builder.build().await.unwrap())
}

/// The messages of the requests `server` received at temperature 1.0, sorted.
fn at_rollout_temperature(requests: &[RecordedRequest]) -> Vec<String> {
    let mut messages: Vec<String> = requests
        .iter()
        .filter(|r| r.body["temperature"].as_f64() == Some(ROLLOUT_TEMPERATURE))
        .map(|r| r.body["messages"].to_string())
        .collect();
    messages.sort();
    messages
}

/// The overrides of a run at temperature 1.0: it sends the requests of a second round, but
/// of no rollout, and the cache keeps their replies.
fn at_temperature_one() -> Overrides {
    Overrides::new().with("temperature", ROLLOUT_TEMPERATURE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_round_reruns_an_example_at_temperature_one_as_dspy_does() {
    let (server, ctx) = context(false).await;

    // One round: the lucky example, at the teacher's temperature 0, is not accepted.
    let once = WarmQa::attach(&ctx).await.unwrap();
    server.clear_requests();
    let report = once
        .compile(&bootstrap(1), &trainset(), &metric())
        .await
        .unwrap();
    assert_eq!(report.tokens.lm_calls, 4, "{report}");
    assert!(report.step_demos["answer"].is_empty(), "{report}");
    assert!(report.step_demos["rewrite"].is_empty(), "{report}");
    assert!(at_rollout_temperature(&server.requests()).is_empty());

    // Two rounds: both examples run again at temperature 1.0, and the lucky one is accepted,
    // although the cache holds the replies to its requests at temperature 1.0.
    let twice = WarmQa::attach(&ctx).await.unwrap();
    let lucky = WarmQaInput {
        question: "lucky fig".into(),
    };
    twice.run_with(&at_temperature_one(), lucky).await.unwrap();
    server.clear_requests();
    let report = twice
        .compile(&bootstrap(2), &trainset(), &metric())
        .await
        .unwrap();
    assert_eq!(report.tokens.lm_calls, 8, "{report}");
    let answer = &report.step_demos["answer"];
    assert_eq!(answer.len(), 1, "{report}");
    assert!(answer[0].get::<bool>("augmented").unwrap());
    assert_eq!(answer[0].get::<&str>("query").unwrap(), "find lucky fig");
    assert_eq!(answer[0].get::<&str>("answer").unwrap(), "LUCKY FIG");
    assert_eq!(report.step_demos["rewrite"].len(), 1);
    let ours = at_rollout_temperature(&server.requests());
    assert_eq!(
        ours.len(),
        4,
        "the second round of both examples, both steps"
    );
    // The program's own temperature is unchanged: its runs after compile are at 0.
    server.clear_requests();
    let pear = WarmQaInput {
        question: "hard pear".into(),
    };
    twice.run(pear).await.unwrap();
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.body["temperature"] == json!(0.0))
    );

    // DSPy's own BootstrapFewShot with `max_rounds=2` on the DSPy original: the same requests.
    server.clear_requests();
    let input = json!({
        "base_url": server.base_url(),
        "train": pairs(&trainset()),
        "dev": pairs(&Dataset::from_examples([pair("hard dev")])),
        "max_bootstrapped_demos": 1,
        "max_labeled_demos": 0,
        "max_rounds": 2,
    });
    let dspy =
        tokio::task::block_in_place(|| run_script("tests/python/bootstrap_like_dspy.py", &input));
    assert_eq!(
        dspy["augmented"],
        json!({"rewrite": 1, "answer.predict": 1})
    );
    // DSPy's rounds after the first run on a copy of its LM, whose requests its LM's history
    // does not hold: the server counts them all.
    let requests = server.requests();
    let dev = usize::try_from(dspy["dev_requests"].as_u64().unwrap()).unwrap();
    assert_eq!(requests.len() - dev, 8, "{dspy}");
    assert_eq!(ours, at_rollout_temperature(&requests));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_steps_second_round_runs_at_temperature_one_in_the_worker_past_its_cache() {
    let (server, ctx) = context(true).await;
    let qa = WarmHybridQa::attach(&ctx).await.unwrap();
    let lucky = WarmHybridQaInput {
        question: "lucky fig".into(),
    };
    qa.run_with(&at_temperature_one(), lucky).await.unwrap();
    server.clear_requests();
    let report = qa
        .compile(&bootstrap(2), &trainset(), &metric())
        .await
        .unwrap();
    assert_eq!(report.tokens.lm_calls, 8, "{report}");
    let requests = server.requests();
    assert_eq!(at_rollout_temperature(&requests).len(), 4, "{requests:?}");
    // The rollout keys the worker's cache and is not sent to the LM.
    assert!(requests.iter().all(|r| r.body.get("rollout_id").is_none()));
    let compiled = qa.python_step("answer").unwrap().compiled_state().unwrap();
    let demos: &Vec<JsonValue> = &compiled.demos()["predict"];
    assert_eq!(demos.len(), 1, "{report}");
    assert_eq!(demos[0]["query"], json!("find lucky fig"));
    assert_eq!(demos[0]["answer"], json!("LUCKY FIG"));
}
