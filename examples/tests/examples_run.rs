//! Every example runs to completion and prints what it promises.

use std::process::Command;

fn run(binary: &str) -> String {
    run_with(binary, &[])
}

/// Runs an example with `args` and `--base-url` of a loopback LM server answering `replies` in
/// order, `--model test-model`; its output and the server (which recorded the requests).
fn run_against_lm(
    binary: &str,
    replies: &[&str],
    args: &[&str],
) -> (String, dspex_test_lm::LmServer) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let server = runtime
        .block_on(dspex_test_lm::LmServer::start())
        .expect("the test LM server starts");
    for reply in replies {
        server.push(dspex_test_lm::Reply::text(*reply));
    }
    // The server answers on the runtime's thread while the example runs.
    let output = runtime.block_on(async {
        tokio::process::Command::new(binary)
            .args(args)
            .args(["--base-url", &server.base_url(), "--model", "test-model"])
            .output()
            .await
            .expect("the example starts")
    });
    (succeeded(binary, &output), server)
}

fn run_with(binary: &str, args: &[&str]) -> String {
    let output = Command::new(binary)
        .args(args)
        .output()
        .expect("the example starts");
    succeeded(binary, &output)
}

/// What the example printed; fails showing its output unless it succeeded.
fn succeeded(binary: &str, output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{binary} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_variables_example_refuses_a_bad_value() {
    let out = run(env!("CARGO_BIN_EXE_variables"));
    assert!(
        out.contains("temperature = 2.5: refused: temperature: 2.5 is above max 2.0"),
        "{out}"
    );
    assert!(out.contains("backend: local backend"), "{out}");
    assert!(
        out.contains(
            "rolled back to version 2: temperature = 1.2 at version 4 (rolled_back_from = 2)"
        ),
        "{out}"
    );
}

#[test]
fn the_macro_example_runs_its_native_steps_and_refuses_a_bad_value() {
    let out = run(env!("CARGO_BIN_EXE_program_macro"));
    assert!(
        out.contains("SupportTriage needs the Python bridge: false"),
        "{out}"
    );
    assert!(out.contains("started on the local backend"), "{out}");
    assert!(
        out.contains("classify: \"i was charged twice this month\" -> category \"billing\""),
        "{out}"
    );
    assert!(
        out.contains("max_words = 500 refused: max_words: 500 is above max 60"),
        "{out}"
    );
}

#[test]
fn the_derive_example_runs_its_native_steps_and_refuses_a_bad_value() {
    let out = run(env!("CARGO_BIN_EXE_program_derive"));
    assert!(
        out.contains("summary: DSPY PROGRAMS ARE CHAINS OF MODULES. VARIABLES TUNE THEM."),
        "{out}"
    );
    assert!(out.contains("style = \"whisper\" refused"), "{out}");
}

#[test]
fn the_hybrid_demo_runs_both_steps_and_shows_the_changed_settings() {
    let out = run(env!("CARGO_BIN_EXE_hybrid"));
    assert!(out.contains("QaPipeline: REQUIRES_BRIDGE = true"), "{out}");
    assert!(
        out.contains("step `answer` (python ChainOfThought"),
        "{out}"
    );
    assert!(
        out.contains("lm call: model=gpt-4o-mini temperature=0.7 max_tokens=256"),
        "{out}"
    );
    assert!(
        out.contains("lm call: model=claude-3-haiku temperature=1.2 max_tokens=256"),
        "{out}"
    );
    assert!(out.contains("answer: Paris"), "{out}");
    assert!(out.contains("backend: bridged backend"), "{out}");
}

#[test]
fn the_typed_example_returns_rust_values_of_the_declared_types() {
    let out = run(env!("CARGO_BIN_EXE_typed"));
    assert!(
        out.contains("signature: claim, evidence -> facts: list[str], confidence: float, verdict: Literal[\"supported\", \"refuted\", \"unclear\"]"),
        "{out}"
    );
    assert!(
        out.contains(
            "facts (2): [\"The Eiffel Tower stands on the Champ de Mars\", \"The Champ de Mars is in Paris\"]"
        ),
        "{out}"
    );
    assert!(out.contains("confidence: 0.92"), "{out}");
    assert!(out.contains("verdict: supported (keep the claim)"), "{out}");
    assert!(
        out.contains("reasoning (trace): \"Both facts place the tower in Paris.\""),
        "{out}"
    );
}

#[test]
fn the_tune_example_improves_the_score_and_applies_the_result() {
    let output = Command::new(env!("CARGO_BIN_EXE_tune"))
        .output()
        .expect("the example starts");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{out}\n{err}");
    assert!(
        out.contains("before tuning: Adder / exact_match(answer): 0.017"),
        "{out}"
    );
    assert!(out.contains("tuned: best score 1.000"), "{out}");
    assert!(out.contains("model before apply: small"), "{out}");
    assert!(
        out.contains("after tuning: Adder / exact_match(answer): 1.000"),
        "{out}"
    );
    assert!(out.contains("saved and loaded 40 trials"), "{out}");
    // With `progress(true)` and stderr not a terminal: no bar, the summary line only.
    assert!(
        err.contains("Adder / exact_match(answer): 1.000 ± 0.000 on 60 examples"),
        "{err}"
    );
}

#[test]
fn the_shared_example_runs_two_processes_on_one_session() {
    // The example starts a private redis-server unless `DSPEX_REDIS_URL` names one: never let
    // it use a server this test did not start.
    let output = Command::new(env!("CARGO_BIN_EXE_shared"))
        .env_remove("DSPEX_REDIS_URL")
        .output()
        .expect("the example starts");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the shared example failed:\n{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("shared backend"), "{out}");
    assert!(
        out.contains("first process: python call used temperature=0.7"),
        "{out}"
    );
    assert!(out.contains("temperature 0.7 -> 1.3"), "{out}");
    assert!(
        out.contains("first process: saw temperature 0.7 -> 1.3 (version 2)"),
        "{out}"
    );
    assert!(
        out.contains("first process: python call used temperature=1.3"),
        "{out}"
    );
}

#[test]
fn the_study_example_tunes_one_study_from_two_processes_and_prints_the_pareto_front() {
    // As the shared example: never a Redis this test did not start.
    let output = Command::new(env!("CARGO_BIN_EXE_study"))
        .env_remove("DSPEX_REDIS_URL")
        .output()
        .expect("the example starts");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the study example failed:\n{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("the study has 40 finished trials"), "{out}");
    assert!(
        out.contains("40 trials in the study; Pareto front (accuracy up, tokens down):"),
        "{out}"
    );
    let front: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("accuracy "))
        .collect();
    assert!(front.len() >= 2, "{out}");
    assert!(
        out.contains("cheapest trial with accuracy >= 0.8: #"),
        "{out}"
    );
    assert!(out.contains("applied: model="), "{out}");
}

#[test]
fn the_native_cot_example_reasons_and_rates_without_python() {
    let out = run(env!("CARGO_BIN_EXE_native_cot"));
    assert!(
        out.contains("ThinkThenRate needs the Python bridge: false"),
        "{out}"
    );
    assert!(
        out.contains("answer: It frees memory when its owner goes out of scope."),
        "{out}"
    );
    assert!(out.contains("confidence: 0.8"), "{out}");
    assert!(
        out.contains("reasoning (kept in the trace): Rust checks ownership"),
        "{out}"
    );
    assert!(
        out.contains("lm call of `answer`: model=scripted temperature=0.2 max_tokens=512"),
        "{out}"
    );
    assert!(out.contains("still on the local backend: true"), "{out}");
}

#[test]
fn the_native_cot_example_calls_an_openai_compatible_endpoint_with_flags() {
    let (out, server) = run_against_lm(
        env!("CARGO_BIN_EXE_native_cot"),
        &[
            "[[ ## reasoning ## ]]\nOwnership.\n\n[[ ## answer ## ]]\nBy ownership.",
            "[[ ## confidence ## ]]\n0.5",
        ],
        &[],
    );
    assert!(out.contains("answer: By ownership."), "{out}");
    assert!(out.contains("confidence: 0.5"), "{out}");
    assert!(out.contains("lm call of `rate`: model=test-model"), "{out}");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body["temperature"], 0.2);
    assert_eq!(requests[0].body["max_tokens"], 512);
}

#[test]
fn the_stream_example_prints_the_fields_as_they_are_written() {
    let out = run(env!("CARGO_BIN_EXE_stream"));
    assert!(out.contains("[step `answer` started]"), "{out}");
    assert!(
        out.contains("\nreasoning: Rust checks ownership and lifetimes at compile time"),
        "{out}"
    );
    assert!(
        out.contains(
            "\nanswer: Through ownership, checked by the compiler.\n[step `answer` finished]"
        ),
        "{out}"
    );
    assert!(out.contains("confidence: 0.9"), "{out}");

    let (out, server) = run_against_lm(
        env!("CARGO_BIN_EXE_stream"),
        &[
            "[[ ## reasoning ## ]]\nOwnership.\n\n[[ ## answer ## ]]\nBy ownership.\n\n[[ ## confidence ## ]]\n0.5",
        ],
        &[],
    );
    assert!(out.contains("\nanswer: By ownership.\n"), "{out}");
    assert!(out.contains("confidence: 0.5"), "{out}");
    assert_eq!(server.requests()[0].body["stream"], true);
}

#[test]
fn the_agent_example_calls_rust_and_python_tools() {
    let out = run(env!("CARGO_BIN_EXE_agent"));
    for expected in [
        r#"0: search_prices {"query":"laptop"} -> [999.0,1299.0,1099.0]"#,
        r#"1: mean {"data":[999.0,1299.0,1099.0]} -> 1132.33"#,
        r#"2: convert {"amount":1132.33} -> 1041.74 EUR"#,
        "-> 894.54 GBP",
        r#"search_prices({"query":"laptop"}) -> [999.0,1299.0,1099.0]"#,
        "top_k=3@v1",
        r#"currency="EUR"@v1 usd_rate=0.92@v1"#,
        r#"currency="GBP" (override) usd_rate=0.79 (override)"#,
        "currency after the runs: EUR",
    ] {
        assert!(out.contains(expected), "{expected}\n{out}");
    }
}

#[test]
fn the_improve_example_tunes_compiles_saves_and_loads_a_hybrid_program() {
    let out = run(env!("CARGO_BIN_EXE_improve"));
    assert!(
        out.contains("before: Capitals / exact_match(answer): 0.000"),
        "{out}"
    );
    assert!(
        out.contains("tuned: best score 1.000 with rewrite=\"strict\""),
        "{out}"
    );
    assert!(
        out.contains("after tuning: Capitals / exact_match(answer): 1.000"),
        "{out}"
    );
    assert!(out.contains("compiled step `answer` (ChainOfThought) with BootstrapFewShot(max_bootstrapped_demos=2, max_labeled_demos=0) (exact_match(answer))"), "{out}");
    assert!(out.contains("demos        predict: 2"), "{out}");
    assert!(
        out.contains("fresh program: Capitals / exact_match(answer): 0.000"),
        "{out}"
    );
    assert!(
        out.contains("loaded program: Capitals / exact_match(answer): 1.000"),
        "{out}"
    );
    assert!(
        out.contains("loaded: rewrite=strict, temperature=0.3, 2 demos"),
        "{out}"
    );
    assert!(out.contains("evaluation matches: true"), "{out}");
}

#[test]
fn the_replay_example_answers_from_the_shipped_recording_offline() {
    let out = run(env!("CARGO_BIN_EXE_replay"));
    assert!(
        out.contains("LM: replaying triage.jsonl, no network"),
        "{out}"
    );
    assert!(out.contains("category: billing"), "{out}");
    assert!(
        out.contains("reply: Sorry about the double charge"),
        "{out}"
    );
    assert!(
        out.contains("unrecorded ticket refused:")
            && out.contains("triage.jsonl holds no reply to the request")
            && out.contains("My parcel never arrived."),
        "{out}"
    );
}

#[test]
fn the_replay_example_records_what_the_shipped_recording_holds() {
    let file =
        std::env::temp_dir().join(format!("dspex-replay-example-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let (out, server) = run_against_lm(
        env!("CARGO_BIN_EXE_replay"),
        &[
            "[[ ## category ## ]]\nbilling\n\n[[ ## completed ## ]]",
            "[[ ## reply ## ]]\nSorry about the double charge: one of them is refunded.\n\n[[ ## completed ## ]]",
        ],
        &["--record", &file.display().to_string()],
    );
    assert!(out.contains("category: billing"), "{out}");
    assert_eq!(server.requests().len(), 2);
    // The prompts of today's dspex are those of the shipped recording: it still replays.
    let recorded = std::fs::read_to_string(&file).expect("the recording");
    let shipped = include_str!("../data/triage.jsonl");
    assert_eq!(recorded, shipped, "recorded into {}", file.display());
    let replayed = run_with(
        env!("CARGO_BIN_EXE_replay"),
        &["--replay", &file.display().to_string()],
    );
    assert!(replayed.contains("category: billing"), "{replayed}");
    std::fs::remove_file(&file).expect("removed");
}

#[test]
fn the_dspy_state_example_runs_a_dspy_saved_program_natively() {
    let out = run(env!("CARGO_BIN_EXE_dspy_state"));
    assert!(out.contains("Qa needs the Python bridge: false"), "{out}");
    assert!(out.contains("answer: Paris"), "{out}");
    assert!(
        out.contains(
            "saved back for DSPy's module.load: 2 demos, instructions \"Answer with the name of a city only.\""
        ),
        "{out}"
    );
}

#[test]
fn the_compile_program_example_learns_demos_for_every_lm_step_offline() {
    let out = run(env!("CARGO_BIN_EXE_compile_program"));
    assert!(
        out.contains("validation   0.000 before, 1.000 after"),
        "{out}"
    );
    assert!(
        out.contains("demos        answer: 2, generate_query: 2"),
        "{out}"
    );
    assert!(out.contains("LM requests  4 "), "{out}");
    assert!(out.contains("compiled answer: Tokyo"), "{out}");
}

#[test]
fn the_multihop_example_loops_its_hops_and_answers_offline() {
    let out = run(env!("CARGO_BIN_EXE_multihop"));
    assert!(out.contains("answer: Dijon"), "{out}");
    // Each hop is a query then its passages, each call in the trace with its hop.
    for hop in 0..2 {
        for step in ["generate_query", "retrieve"] {
            let line = format!("  {step} (hop {hop} of `hops`)");
            assert_eq!(out.matches(&line).count(), 1, "{line}\n{out}");
        }
    }
    // The second hop found the passage the first one pointed at.
    assert!(out.contains("Gustave Eiffel was born in Dijon"), "{out}");
    let hops = out.find("  hops:").expect(&out);
    assert!(out[..hops].contains("(hop 1 of `hops`)"), "{out}");
}

#[test]
fn the_otel_example_exports_a_hybrid_run_as_one_trace() {
    the_otel_example_exports_to(|receiver| {
        (
            vec!["--otlp-endpoint".to_owned(), receiver.endpoint()],
            vec![],
        )
    });
}

#[test]
fn the_otel_example_exports_over_grpc_as_the_standard_variables_say() {
    the_otel_example_exports_to(|receiver| {
        let env = vec![
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint()),
        ];
        (vec![], env)
    });
}

/// Runs the otel example with the arguments and environment `setup` gives for a receiver, and
/// checks that the hybrid run reached it as one trace.
fn the_otel_example_exports_to(
    setup: impl FnOnce(&dspex_test_otlp::OtlpReceiver) -> (Vec<String>, Vec<(&'static str, String)>),
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let receiver = runtime
        .block_on(dspex_test_otlp::OtlpReceiver::start())
        .expect("the OTLP receiver starts");
    let (args, env) = setup(&receiver);
    // The receiver answers on the runtime's thread while the example runs.
    let binary = env!("CARGO_BIN_EXE_otel");
    let output = runtime.block_on(async {
        tokio::process::Command::new(binary)
            .args(&args)
            .envs(env)
            .output()
            .await
            .expect("the example starts")
    });
    let out = succeeded(binary, &output);
    assert!(
        out.contains("answer: tokio is an async runtime for Rust"),
        "{out}"
    );
    assert!(out.contains(", lost: 0"), "{out}");
    let spans = receiver.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    for name in [
        "invoke_workflow Researcher",
        "step label",
        "step agent",
        "execute_tool search_docs",
    ] {
        assert!(names.contains(&name), "{name} not in {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("chat ")), "{names:?}");
    assert!(
        spans.iter().all(|s| s.trace_id == spans[0].trace_id),
        "{spans:#?}"
    );
    assert!(
        spans
            .iter()
            .all(|s| s.service_name.as_deref() == Some("dspex-example"))
    );
    assert!(
        out.contains(&format!("spans exported: {}", spans.len())),
        "{out}"
    );
}
