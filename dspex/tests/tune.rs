//! Tuning end to end on the planted-optimum program: TPE finds the optimum with a small budget
//! and a fixed seed, a seed fixes every trial (even with concurrent trials), successive halving
//! cuts the cost, a grid stops when exhausted; the search space refuses what the declaration
//! forbids; results apply atomically with metadata and save and load as versioned JSON that
//! refuses another declaration.

#[allow(dead_code)]
mod planted;

use dspex::prelude::*;
use dspex::tune::{
    Domain, Halving, Held, MAX_GRID_POINTS, MAX_TRIALS, Sampler, SearchSpace, TuneResult, Tuner,
};
use planted::{OPTIMUM, Planted, dev_set, metric, space};

fn in_region(best: &std::collections::BTreeMap<String, Value>) -> bool {
    best["model"] == Value::from("large")
        && best["reasoning"] == Value::from("ChainOfThought")
        && best["temperature"].as_f64().is_some_and(|t| t <= 0.4)
        && best["max_tokens"].as_i64().is_some_and(|m| m >= 256)
}

#[tokio::test]
async fn tpe_finds_the_planted_optimum_with_a_small_budget() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(20);
    let result = Tuner::new(space(&program).unwrap(), metric())
        .sampler(Sampler::tpe())
        .trials(120)
        .seed(3)
        .trial_concurrency(1)
        .run(&program, &dev)
        .await
        .unwrap();
    assert_eq!(result.best_score, Some(OPTIMUM), "{result}");
    assert!(in_region(result.best.as_ref().unwrap()), "{result}");
    // Trials ran through overrides: the context is untouched until `apply`.
    assert_eq!(program.model().get().unwrap(), "mini");
    assert_eq!(result.examples_evaluated(), 20 * result.trials.len());
}

#[tokio::test]
async fn a_seed_fixes_every_trial_even_with_concurrent_trials() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(10);
    let run = |seed: u64| {
        let tuner = Tuner::new(space(&program).unwrap(), metric())
            .trials(24)
            .seed(seed)
            .trial_concurrency(4)
            .example_concurrency(3);
        let (program, dev) = (&program, &dev);
        async move { tuner.run(program, dev).await.unwrap() }
    };
    let (a, b, c) = (run(9).await, run(9).await, run(10).await);
    let trials = |r: &TuneResult| -> Vec<(Vec<(String, Value)>, f64)> {
        r.trials
            .iter()
            .map(|t| (t.assignment.clone().into_iter().collect(), t.score))
            .collect()
    };
    assert_eq!(trials(&a), trials(&b));
    assert_ne!(trials(&a), trials(&c));
    assert_eq!(a.trials.len(), 24);
}

#[tokio::test]
async fn successive_halving_cuts_the_cost_of_bad_trials() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(40);
    let result = Tuner::new(space(&program).unwrap(), metric())
        .sampler(Sampler::Random)
        .trials(40)
        .seed(5)
        .halving(Halving::new([5, 15, 40], 1.0 / 3.0))
        .run(&program, &dev)
        .await
        .unwrap();
    assert_eq!(result.trials.len(), 40);
    assert!(result.examples_evaluated() < 40 * 40 / 2, "{result}");
    let cut = result.trials.iter().filter(|t| !t.complete).count();
    assert!(cut > 0, "{result}");
    for t in &result.trials {
        assert_eq!(t.examples, [5, 15, 40][t.rung]);
    }
    let best = result.best_trial.unwrap();
    assert!(result.trials[best].complete);
    let complete_best = result
        .trials
        .iter()
        .filter(|t| t.complete)
        .map(|t| t.score)
        .fold(0.0, f64::max);
    assert_eq!(result.best_score, Some(complete_best));

    for bad in [
        Halving::new([5, 5], 0.5),
        Halving::new([5, 50], 0.5),
        Halving::new([0, 10], 0.5),
        Halving::new([5, 10], 0.0),
    ] {
        let err = Tuner::new(space(&program).unwrap(), metric())
            .halving(bad.clone())
            .run(&program, &dev)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Tuning { .. }), "{bad:?}: {err}");
    }
}

#[tokio::test]
async fn a_grid_stops_when_exhausted_and_covers_every_point_once() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(5);
    let space = space(&program)
        .unwrap()
        .fix("model", "large")
        .unwrap()
        .fix("reasoning", "ChainOfThought")
        .unwrap()
        .hold("verbose")
        .unwrap();
    let result = Tuner::new(space, metric())
        .sampler(Sampler::grid(3))
        .trials(1000)
        .run(&program, &dev)
        .await
        .unwrap();
    // 3 temperatures x 3 max_tokens (16, 181, 2048 on the log scale).
    assert_eq!(result.trials.len(), 9);
    let mut points: Vec<String> = result
        .trials
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                t.assignment["temperature"], t.assignment["max_tokens"]
            )
        })
        .collect();
    points.sort();
    points.dedup();
    assert_eq!(points.len(), 9, "{points:?}");
    assert!(
        result
            .trials
            .iter()
            .all(|t| t.assignment["model"] == Value::from("large"))
    );
    assert!(!result.trials[0].assignment.contains_key("verbose"));
}

#[tokio::test]
async fn the_space_follows_the_declaration_and_refuses_what_it_forbids() {
    let program = Planted::start().await.unwrap();
    let space = SearchSpace::of(&program).unwrap();
    let domains: Vec<(&str, &Domain)> = space
        .dimensions()
        .iter()
        .map(|d| (d.name.as_str(), &d.domain))
        .collect();
    assert_eq!(domains.len(), 5);
    assert_eq!(
        domains[1],
        (
            "temperature",
            &Domain::Float {
                low: 0.0,
                high: 2.0,
                log: false
            }
        )
    );
    assert_eq!(
        domains[4],
        (
            "verbose",
            &Domain::Categorical(vec![false.into(), true.into()])
        )
    );
    let err = |r: Result<SearchSpace>| r.unwrap_err().to_string();
    assert_eq!(
        err(space.clone().log_scale("temperature")),
        "tuning: a log scale needs a range above 0; `temperature` ranges over 0.0..=2.0 (log)"
    );
    assert_eq!(
        err(space.clone().narrow("temperature", 0.5, 2.5)),
        "tuning: cannot narrow `temperature` to 0.5..=2.5: temperature: 2.5 is above max 2.0"
    );
    assert_eq!(
        err(space.clone().narrow("temperature", 1.0, 0.5)),
        "tuning: cannot narrow `temperature` to 1.0..=0.5: the low end is above the high end"
    );
    assert_eq!(
        err(space.clone().narrow("model", "a", "b")),
        "tuning: cannot narrow `model` to \"a\"..=\"b\": model: \"a\" is not one of the choices \"nano\", \"mini\", \"base\", \"large\""
    );
    assert_eq!(
        err(space.clone().fix("temprature", 0.1)),
        "tuning: program `Planted` declares no variable `temprature` (did you mean `temperature`?)"
    );
    assert_eq!(
        err(space.clone().candidates("model", ["large", "huge"])),
        "model: \"huge\" is not one of the choices \"nano\", \"mini\", \"base\", \"large\""
    );
    assert_eq!(
        err(space.clone().candidates("model", ["large", "large"])),
        "tuning: candidate \"large\" of `model` is listed twice"
    );
    assert_eq!(
        err(space.clone().candidates::<&str>("model", [])),
        "tuning: `model` needs at least one candidate"
    );
    assert_eq!(
        err(space.clone().fix("max_tokens", 9)),
        "max_tokens: 9 is below min 16"
    );
    // Narrowing keeps a log scale, and log-scaling a narrowed range works.
    let narrowed = space
        .clone()
        .log_scale("max_tokens")
        .unwrap()
        .narrow("max_tokens", 64, 512)
        .unwrap()
        .narrow("temperature", 0.1, 0.5)
        .unwrap()
        .log_scale("temperature")
        .unwrap();
    assert_eq!(
        narrowed.dimensions()[2].domain,
        Domain::Int {
            low: 64,
            high: 512,
            log: true
        }
    );
    assert!(
        narrowed
            .to_string()
            .contains("temperature          0.1..=0.5 (log)")
    );
}

dspex_program! {
    program Mixed: "text -> out" {
        variables {
            style: string = "plain" { max_length: 10 },
            vector: embedding = [0.0, 1.0] { dimensions: 2 },
            unbounded: float = 1.0,
            reasoning: module = "Predict",
        }
        chain { echo: native planted::ScriptedLm("text -> out") }
    }
}

#[tokio::test]
async fn strings_embeddings_and_unbounded_numbers_are_searched_only_when_told() {
    let program = Mixed::start().await.unwrap();
    let space = SearchSpace::of(&program).unwrap();
    let names: Vec<&str> = space.dimensions().iter().map(|d| d.name.as_str()).collect();
    // A module variable without choices ranges over the DSPy modules the worker knows.
    assert_eq!(names, ["reasoning"]);
    assert_eq!(
        space.dimensions()[0].domain,
        Domain::Categorical(
            ["Predict", "ChainOfThought", "ReAct", "ProgramOfThought"]
                .map(Value::from)
                .to_vec()
        )
    );
    assert!(
        matches!(&space.held()["style"], Held::Untuned(why) if why.contains("listed candidates"))
    );
    assert!(matches!(&space.held()["unbounded"], Held::Untuned(why) if why.contains("narrow it")));
    let space = space
        .candidates("style", ["plain", "formal"])
        .unwrap()
        .candidates("vector", [vec![1.0f32, 0.0], vec![0.5, 0.5]])
        .unwrap()
        .narrow("unbounded", -1.0, 1.0)
        .unwrap();
    let names: Vec<&str> = space.dimensions().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["style", "vector", "unbounded", "reasoning"]);
    let err = space
        .clone()
        .candidates("style", ["far too long a style"])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "style: \"far too long a style\" is longer than max_length 10 (20 chars)"
    );
    let err = space.candidates("vector", [vec![1.0f32]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "vector: [1.0] has 1 dimensions, expected 2"
    );
}

#[tokio::test]
async fn apply_writes_the_best_values_atomically_with_metadata() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(10);
    let space = space(&program)
        .unwrap()
        .fix("model", "large")
        .unwrap()
        .fix("reasoning", "ChainOfThought")
        .unwrap();
    let result = Tuner::new(space, metric())
        .sampler(Sampler::grid(5))
        .trials(200)
        .seed(2)
        .stop_at(OPTIMUM)
        .run(&program, &dev)
        .await
        .unwrap();
    assert_eq!(result.best_score, Some(OPTIMUM));
    let before = program.temperature().record().unwrap().version;
    result.apply(&program).unwrap();
    let best = result.best.as_ref().unwrap();
    assert_eq!(program.model().get().unwrap(), "large");
    assert_eq!(
        Value::Float(program.temperature().get().unwrap()),
        best["temperature"]
    );
    let record = program.temperature().record().unwrap();
    assert_eq!(record.version, before + 1);
    assert_eq!(record.metadata["tuned_score"], "1");
    assert_eq!(record.metadata["tuner"], "grid(5 points per range), seed 2");
    assert!(
        record.metadata["tuned_at"].ends_with('Z'),
        "{:?}",
        record.metadata
    );

    // Applying to another declaration writes nothing and names what differs.
    let other = Mixed::start().await.unwrap();
    let err = result.apply(&other).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("the result was saved for program `Planted`, not `Mixed`"),
        "{text}"
    );
    assert!(
        text.contains("variable `model` is not declared by program `Mixed`"),
        "{text}"
    );
    assert_eq!(other.reasoning().get().unwrap(), "Predict");
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
async fn results_save_and_load_for_the_same_declaration_only() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(8);
    let result = Tuner::new(space(&program).unwrap(), metric())
        .sampler(Sampler::Random)
        .trials(6)
        .seed(4)
        .run(&program, &dev)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("dspex-tune-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("result.json");
    result.save(&path).unwrap();
    let loaded = TuneResult::load(&path, &program).unwrap();
    assert_eq!(loaded.best, result.best);
    assert_eq!(loaded.best_score, result.best_score);
    assert_eq!(loaded.tuner, result.tuner);
    assert_eq!(loaded.trials.len(), result.trials.len());
    for (a, b) in loaded.trials.iter().zip(&result.trials) {
        assert_eq!(
            (&a.assignment, a.score, a.examples),
            (&b.assignment, b.score, b.examples)
        );
        assert!(a.duration.abs_diff(b.duration) < std::time::Duration::from_micros(1));
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"format\": \"dspex.tune.result\""), "{text}");
    assert!(text.contains("\"version\": 2"), "{text}");

    // Loaded into a fresh program of the same declaration, it applies there.
    let fresh = Planted::start().await.unwrap();
    TuneResult::load(&path, &fresh)
        .unwrap()
        .apply(&fresh)
        .unwrap();
    assert_eq!(
        Value::from(fresh.model().get().unwrap().to_string()),
        result.best.as_ref().unwrap()["model"]
    );

    let other = Planted2::start().await.unwrap();
    let err = TuneResult::load(&path, &other).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("variable `temperature` was a float variable (constraints: min 0.0, max 2.0), program `Planted2` declares a float variable (constraints: min 0.0, max 1.0)"),
        "{text}"
    );
    assert!(
        text.starts_with(&format!("tuning: {}: ", path.display())),
        "{text}"
    );

    let newer = result.to_json().replace("\"version\": 2", "\"version\": 3");
    let err = TuneResult::from_json(&newer, &program).unwrap_err();
    assert!(
        err.to_string().contains("version 3 cannot be read"),
        "{err}"
    );
    let unknown = result.to_json().replacen('{', "{\"extra\": 1,", 1);
    let err = TuneResult::from_json(&unknown, &program).unwrap_err();
    assert_eq!(err.to_string(), "tuning: malformed tuning result");
    // What serde said is the source, printed by an error reporter, not repeated in the message.
    assert!(
        err.report().contains("unknown field `extra`"),
        "{}",
        err.report()
    );
}

#[tokio::test]
async fn tuner_settings_are_checked() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(4);
    let tuner = || Tuner::new(space(&program).unwrap(), metric());
    let cases: Vec<(Tuner, &str)> = vec![
        (
            tuner().trials(0),
            "tuning: the number of trials must be between 1 and 100000, got 0",
        ),
        (
            tuner().trial_concurrency(0),
            "trial concurrency: 0 is not between 1 and 1024",
        ),
        (
            tuner().sampler(Sampler::grid(1)),
            "tuning: a grid needs at least 2 points per range, got 1",
        ),
        (
            tuner().trials(MAX_TRIALS + 1),
            "tuning: the number of trials must be between 1 and 100000, got 100001",
        ),
    ];
    for (tuner, message) in cases {
        assert_eq!(
            tuner.run(&program, &dev).await.unwrap_err().to_string(),
            message
        );
    }
    let err = tuner().run(&program, &dev_set(0)).await.unwrap_err();
    assert_eq!(err.to_string(), "tuning: the development set is empty");
    let mixed = Mixed::start().await.unwrap();
    let err = tuner().run(&mixed, &dev).await.unwrap_err();
    assert!(
        err.to_string().contains("built for program `Planted`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_grid_may_have_up_to_max_grid_points() {
    let program = Planted::start().await.unwrap();
    let dev = dev_set(2);
    // Two ranges searched: `points` temperatures x `points` max_tokens (linear, all distinct).
    let grid_of = |points: usize| {
        let space = SearchSpace::of(&program)
            .unwrap()
            .fix("model", "large")
            .unwrap()
            .fix("reasoning", "Predict")
            .unwrap()
            .fix("verbose", false)
            .unwrap();
        Tuner::new(space, metric())
            .sampler(Sampler::grid(points))
            .trials(1)
    };
    assert_eq!(MAX_GRID_POINTS, 1000 * 1000);
    let at = grid_of(1000).run(&program, &dev).await.unwrap();
    assert_eq!(at.trials.len(), 1);
    let err = grid_of(1001).run(&program, &dev).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "tuning: the grid has more than 1000000 points; use fewer points per range, fix or narrow variables, or another sampler"
    );
}

dspex_program! {
    /// `Planted` with its model pinned: `model` is read-only.
    program PinnedModel: "question -> answer" {
        variables {
            model: choice = "mini" { choices: ["nano", "mini", "base", "large"], readonly: true },
            temperature: float = 1.0 { min: 0.0, max: 2.0 },
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
async fn read_only_variables_are_held_never_searched_fixed_or_applied() {
    let program = PinnedModel::start().await.unwrap();
    let space = SearchSpace::of(&program).unwrap();
    let names: Vec<&str> = space.dimensions().iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["temperature", "max_tokens", "reasoning", "verbose"]);
    assert!(
        matches!(&space.held()["model"], Held::Untuned(why) if why.starts_with("read-only (declared `readonly`)")),
        "{:?}",
        space.held()
    );
    assert!(
        space
            .to_string()
            .contains("model                not searched: read-only"),
        "{space}"
    );
    let refused = "tuning: `model` is read-only (declared `readonly`): the tuner leaves it at its value in the context";
    for err in [
        space.clone().fix("model", "large").unwrap_err(),
        space.clone().candidates("model", ["large"]).unwrap_err(),
        space.clone().narrow("model", 0, 1).unwrap_err(),
        space.clone().log_scale("model").unwrap_err(),
    ] {
        assert_eq!(err.to_string(), refused);
    }
    // Holding it is what the space does already.
    space.clone().hold("model").unwrap();

    let result = Tuner::new(space, metric())
        .sampler(Sampler::Random)
        .trials(12)
        .seed(1)
        .run(&program, &dev_set(5))
        .await
        .unwrap();
    assert!(
        result
            .trials
            .iter()
            .all(|t| !t.assignment.contains_key("model"))
    );
    let version = program.model().record().unwrap().version;
    result.apply(&program).unwrap();
    assert!(!result.best.as_ref().unwrap().contains_key("model"));
    assert_eq!(program.model().record().unwrap().version, version);
    assert_eq!(program.model().get().unwrap(), "mini");
}
