//! Rust functions as tools of Python agents, end to end: a real worker runs real DSPy `ReAct`
//! steps (offline, scripted LM following an agent plan) whose Rust tools run in this process,
//! called back through the bridge server. A failing, panicking or slow tool gives the agent an
//! `error:` observation and the step goes on; a tool reads its variables as the run sees them
//! (a change from Rust between runs, a `run_with` override); every call is in the trace; calls
//! of concurrent runs run at once; a worker cannot reach another session's tools; a hostile
//! burst of callbacks into one live module call runs no more than its limit allows; a Python
//! tool that cannot be imported fails the module's creation naming it.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dspex::LmConfig;
use dspex::prelude::*;
use dspex::wire::proto::callback_service_client::CallbackServiceClient;
use dspex::wire::proto::{self as pb, callback_response::Outcome};
use dspex::{Overrides, ProgramBuilder, Step, StepTrace, json};
use dspex_tests::worker_config;
use tokio::sync::Barrier;

/// Searches the documentation index; returns the titles of the best passages.
#[dspex::tool(variables(top_k, index_name))]
async fn search_docs(query: String, top_k: i64, index_name: String) -> Result<Vec<String>> {
    Ok((1..=top_k)
        .map(|i| format!("{index_name}/{query}#{i}"))
        .collect())
}

/// Evaluates `a op b` for op in + - * /.
#[dspex::tool(inline)]
fn calculator(a: f64, op: String, b: f64) -> std::result::Result<f64, String> {
    match op.as_str() {
        "+" => Ok(a + b),
        "-" => Ok(a - b),
        "*" => Ok(a * b),
        "/" if b != 0.0 => Ok(a / b),
        "/" => Err("division by zero".to_owned()),
        _ => Err(format!("unknown operator {op}")),
    }
}

/// Always fails.
#[dspex::tool]
fn broken(reason: String) -> std::result::Result<String, String> {
    Err(format!("broken tool: {reason}"))
}

/// Panics.
#[dspex::tool]
async fn explodes(at: i64) -> Result<i64> {
    let items: Vec<i64> = Vec::new();
    Ok(items[usize::try_from(at).unwrap()])
}

/// Never answers in time.
#[dspex::tool(timeout_ms = 200)]
async fn sluggish() -> Result<String> {
    tokio::time::sleep(Duration::from_secs(30)).await;
    Ok("too late".to_owned())
}

dspex_program! {
    /// A research agent: Rust tools and a Python tool.
    program Researcher: "question -> answer" {
        variables {
            top_k: integer = 2 { min: 1, max: 5 },
            index_name: string = "docs" { min_length: 1, max_length: 32 },
        }
        chain {
            agent: python ReAct("question -> answer") with {
                max_iters: 6,
                tools: [search_docs, calculator, "sample_modules.word_count"],
            },
        }
    }
}

async fn context(lm: LmConfig) -> Context {
    Context::builder()
        .worker(worker_config())
        .lm(lm)
        .build()
        .await
        .unwrap()
}

/// A one-step program named `name` whose step is `agent`, attached to `ctx`.
async fn attach_agent(ctx: &Context, name: &str, agent: Step) -> dspex::RunningProgram {
    ProgramBuilder::new(name)
        .signature("question -> answer")
        .step(agent)
        .build()
        .unwrap()
        .attach(ctx)
        .await
        .unwrap()
}

fn research_plan() -> LmConfig {
    LmConfig::scripted().agent_plan(
        [
            ("search_docs", json!({"query": "tokio"})),
            ("calculator", json!({"a": 6, "op": "*", "b": 7})),
            ("word_count", json!({"text": "one two three"})),
        ],
        [("answer", "42")],
    )
}

/// The observations of a `ReAct` step, from its trajectory.
fn observations(step: &StepTrace) -> Vec<serde_json::Value> {
    let trajectory: &str = step.outputs.get("trajectory").unwrap();
    let trajectory: serde_json::Value = serde_json::from_str(trajectory)
        .or_else(|_| serde_json::from_str(&trajectory.replace('\'', "\"")))
        .unwrap_or_else(|e| panic!("trajectory {trajectory}: {e}"));
    // A Rust tool's non-text result is JSON text in the trajectory.
    (0..)
        .map_while(|i| trajectory.get(format!("observation_{i}")).cloned())
        .map(|o| match &o {
            serde_json::Value::String(text) => serde_json::from_str(text).unwrap_or(o),
            _ => o,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_calls_rust_and_python_tools_and_the_trace_records_them() {
    let ctx = context(research_plan()).await;
    let researcher = Researcher::attach(&ctx).await.unwrap();
    let input = ResearcherInput {
        question: "What is six times seven?".into(),
    };
    let (out, trace) = researcher.run_traced(input.clone()).await.unwrap();
    assert_eq!(out.answer, "42");
    let step = trace.step("agent").unwrap();
    let seen = observations(step);
    assert_eq!(seen[0], json!(["docs/tokio#1", "docs/tokio#2"]));
    assert_eq!(seen[1], json!(42.0));
    assert_eq!(seen[2], json!(3));

    // The two Rust calls are in the trace, with their arguments, results and variables read.
    let calls = &step.tool_calls;
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].tool, "search_docs");
    assert_eq!(calls[0].arguments, json!({"query": "tokio"}));
    assert_eq!(calls[0].result, Ok(json!(["docs/tokio#1", "docs/tokio#2"])));
    let reads: Vec<(&str, Option<u64>)> = calls[0]
        .variables
        .iter()
        .map(|r| (r.name.as_str(), r.version))
        .collect();
    assert_eq!(reads, [("top_k", Some(1)), ("index_name", Some(1))]);
    assert_eq!(calls[1].tool, "calculator");
    assert_eq!(calls[1].result, Ok(json!(42.0)));
    assert!(calls[1].variables.is_empty());
    assert!(trace.to_string().contains("tool call: search_docs"));

    // A variable changed from Rust between two runs: the next run's tool sees the new value.
    researcher.top_k().set(3).unwrap();
    let (_, trace) = researcher.run_traced(input.clone()).await.unwrap();
    let step = trace.step("agent").unwrap();
    assert_eq!(
        observations(step)[0],
        json!(["docs/tokio#1", "docs/tokio#2", "docs/tokio#3"])
    );
    assert_eq!(step.tool_calls[0].variables[0].version, Some(2));

    // Under overrides, the tool sees the run's values (no version: not read from the context).
    let overrides = Overrides::new()
        .with("top_k", 1)
        .with("index_name", "staging");
    let (_, trace) = researcher
        .run_fields_with_traced(
            &overrides,
            Fields::from([("question", "What is six times seven?")]),
        )
        .await
        .unwrap();
    let step = trace.step("agent").unwrap();
    assert_eq!(observations(step)[0], json!(["staging/tokio#1"]));
    assert!(
        step.tool_calls[0]
            .variables
            .iter()
            .all(|r| r.version.is_none())
    );
    assert_eq!(
        researcher.top_k().get().unwrap(),
        3,
        "the context is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_panicking_and_slow_tools_are_error_observations() {
    let lm = LmConfig::scripted().agent_plan(
        [
            ("broken", json!({"reason": "disk full"})),
            ("explodes", json!({"at": 3})),
            ("sluggish", json!({})),
            ("calculator", json!({"a": 1, "op": "/", "b": 0})),
            ("calculator", json!({"a": 1, "op": "+", "b": 1})),
        ],
        [("answer", "done")],
    );
    let ctx = context(lm).await;
    let program = attach_agent(
        &ctx,
        "Fragile",
        Step::python("agent", "ReAct", "question -> answer")
            .with("max_iters", 8)
            .tool::<broken>()
            .tool::<explodes>()
            .tool::<sluggish>()
            .tool::<calculator>(),
    )
    .await;
    let (out, trace) = program
        .run_traced(Fields::from([("question", "try everything")]))
        .await
        .unwrap();
    assert_eq!(out.get::<&str>("answer").unwrap(), "done");
    let step = trace.step("agent").unwrap();
    let seen = observations(step);
    assert_eq!(seen[0], json!("error: broken tool: disk full"));
    let panicked = seen[1].as_str().unwrap();
    assert!(
        panicked.starts_with("error: panicked: index out of bounds"),
        "{panicked}"
    );
    assert_eq!(
        seen[2],
        json!("error: `sluggish` timed out after 200ms (its timeout)")
    );
    assert_eq!(seen[3], json!("error: division by zero"));
    // The step went on after every failure.
    assert_eq!(seen[4], json!(2.0));
    let results: Vec<bool> = step.tool_calls.iter().map(|c| c.result.is_ok()).collect();
    assert_eq!(results, [false, false, false, false, true]);
    assert!(step.tool_calls[2].duration >= Duration::from_millis(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_and_unknown_arguments_are_error_observations() {
    let lm = LmConfig::scripted().agent_plan(
        [
            ("calculator", json!({"a": "six", "op": "*", "b": 7})),
            ("calculator", json!({"a": 1, "op": "+", "b": 2, "c": 3})),
        ],
        [("answer", "done")],
    );
    let ctx = context(lm).await;
    let program = attach_agent(
        &ctx,
        "Args",
        Step::python("agent", "ReAct", "question -> answer")
            .with("max_iters", 4)
            .tool::<calculator>(),
    )
    .await;
    let (_, trace) = program
        .run_traced(Fields::from([("question", "q")]))
        .await
        .unwrap();
    let step = trace.step("agent").unwrap();
    let seen = observations(step);
    // The worker passes the arguments as they come; the Rust side checks them against the
    // tool's schema, naming the argument.
    assert_eq!(
        seen[0],
        json!("error: argument `a` of `calculator` must be float, found \"six\"")
    );
    assert_eq!(
        seen[1],
        json!("error: `calculator` takes no argument `c`; it takes `a`, `op`, `b`")
    );
    let direct = <calculator as dspex::tools::Tool>::def()
        .invoke(
            json!({"a": 1, "op": "+", "b": 2, "c": 3}),
            None,
            &Overrides::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        direct,
        "`calculator` takes no argument `c`; it takes `a`, `op`, `b`"
    );
    let direct = <calculator as dspex::tools::Tool>::def()
        .invoke(
            json!({"a": "six", "op": "+", "b": 2}),
            None,
            &Overrides::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        direct,
        "argument `a` of `calculator` must be float, found \"six\""
    );
}

/// Waits until `n` calls are in at once.
#[dspex::tool(timeout_ms = 60000)]
async fn rendezvous() -> Result<String> {
    let (barrier, entered) = RENDEZVOUS.get().unwrap();
    entered.fetch_add(1, Ordering::SeqCst);
    barrier.wait().await;
    Ok("met".to_owned())
}

static RENDEZVOUS: std::sync::OnceLock<(Barrier, AtomicUsize)> = std::sync::OnceLock::new();

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_of_concurrent_runs_run_at_once() {
    const RUNS: usize = 6;
    RENDEZVOUS.get_or_init(|| (Barrier::new(RUNS), AtomicUsize::new(0)));
    let lm = LmConfig::scripted().agent_plan([("rendezvous", json!({}))], [("answer", "ok")]);
    let ctx = context(lm).await;
    let program = Arc::new(
        attach_agent(
            &ctx,
            "Meeting",
            Step::python("agent", "ReAct", "question -> answer")
                .with("max_iters", 3)
                .tool::<rendezvous>(),
        )
        .await,
    );
    // Each tool call waits for all the others: the runs finish only if their calls overlap.
    let runs: Vec<_> = (0..RUNS)
        .map(|i| {
            let program = Arc::clone(&program);
            tokio::spawn(async move {
                program
                    .run_traced(Fields::from([("question", format!("run {i}"))]))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for run in runs {
        let (_, trace) = run.await.unwrap();
        let step = trace.step("agent").unwrap();
        assert_eq!(observations(step)[0], json!("met"));
        assert_eq!(
            step.tool_calls.len(),
            1,
            "each run records its own call only"
        );
    }
    assert_eq!(RENDEZVOUS.get().unwrap().1.load(Ordering::SeqCst), RUNS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_never_reaches_another_session_s_tools() {
    let a = context(research_plan()).await;
    let b = context(research_plan()).await;
    b.ensure_bridged().await.unwrap();
    let _ra = Researcher::attach(&a).await.unwrap();
    let info_a = a.bridge_session().unwrap();
    let info_b = b.bridge_session().unwrap();
    let mut client = CallbackServiceClient::connect(format!("http://{}", info_a.address))
        .await
        .unwrap();
    let request = |session_id: &str, token: &str| {
        let mut r = tonic::Request::new(pb::CallbackRequest {
            session_id: session_id.to_owned(),
            name: "calculator".into(),
            arguments_json: br#"{"a": 1, "op": "+", "b": 1}"#.to_vec(),
            call_id: String::new(),
        });
        r.metadata_mut()
            .insert(dspex::wire::TOKEN_METADATA, token.parse().unwrap());
        r
    };
    // A's own tool answers A.
    let reply = client
        .call(request(&info_a.session_id, &info_a.token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.outcome, Some(Outcome::ResultJson("2.0".into())));
    // B's token opens B, which has no such tool; it cannot open A.
    let err = client
        .call(request(&info_b.session_id, &info_b.token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = client
        .call(request(&info_a.session_id, &info_b.token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_tool_that_does_not_import_is_named_when_the_module_is_created() {
    let ctx = context(LmConfig::scripted()).await;
    let err = ProgramBuilder::new("Broken")
        .signature("question -> answer")
        .step(
            Step::python("agent", "ReAct", "question -> answer")
                .tool::<calculator>()
                .python_tool("sample_modules.no_such_tool"),
        )
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("cannot import tool 'sample_modules.no_such_tool'"),
        "{message}"
    );
}

/// Reads a variable the program does not declare.
#[dspex::tool(variables(missing))]
fn needs_missing(missing: String) -> Result<String> {
    Ok(missing)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_reading_an_undeclared_variable_is_refused_at_attach() {
    let ctx = context(LmConfig::scripted()).await;
    let err = ProgramBuilder::new("Lost")
        .signature("question -> answer")
        .step(Step::python("agent", "ReAct", "question -> answer").tool::<needs_missing>())
        .build()
        .unwrap()
        .attach(&ctx)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tool `needs_missing` of step `agent`: it reads variable `missing`, which the context does not hold; declare it in the program"
    );
}

/// How far the burst of [`a_hostile_burst_of_callbacks_into_one_call_stops_at_the_limit`] is:
/// the `held` calls go on at [`BURST_HELD_GO`], the agent's `gate` at [`BURST_GATE_GO`].
struct Burst {
    call_ids: tokio::sync::mpsc::UnboundedSender<String>,
    entered: tokio::sync::mpsc::UnboundedSender<()>,
    stage: tokio::sync::watch::Sender<u8>,
}

const BURST_HELD_GO: u8 = 1;
const BURST_GATE_GO: u8 = 2;

static BURST: std::sync::OnceLock<Burst> = std::sync::OnceLock::new();

async fn burst_stage(stage: u8) {
    let mut watch = BURST.get().unwrap().stage.subscribe();
    watch.wait_for(|at| *at >= stage).await.unwrap();
}

/// Says it ran, then waits until the test lets it go: every admitted call is in flight at once.
#[dspex::tool(timeout_ms = 60000)]
async fn held() -> Result<String> {
    BURST.get().unwrap().entered.send(()).unwrap();
    burst_stage(BURST_HELD_GO).await;
    Ok("held".to_owned())
}

/// A tool written by hand (no attribute), to see its module call's id: it hands the id to the
/// test, then waits until the test's burst is over.
#[allow(non_camel_case_types)]
struct gate {}

impl dspex::tools::Tool for gate {
    fn def() -> &'static dspex::tools::ToolDef {
        static DEF: dspex::tools::ToolDef = dspex::tools::ToolDef {
            name: "gate",
            description: "Waits until the gate opens.",
            arguments: &[],
            variables: &[],
            timeout_ms: 60_000,
            inline: false,
            path: "tools::gate",
            call: gate_call,
        };
        &DEF
    }
}

fn gate_call(call: dspex::tools::Invocation) -> dspex::tools::CallbackFuture {
    Box::pin(async move {
        BURST.get().unwrap().call_ids.send(call.call_id).unwrap();
        burst_stage(BURST_GATE_GO).await;
        Ok(json!("open"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_burst_of_callbacks_into_one_call_stops_at_the_limit() {
    use dspex::wire::limits::MAX_CALLBACKS_PER_CALL;
    const HOSTILE_CALLS: usize = 300;
    const CONNECTIONS: usize = 3;
    let (call_ids, mut call_id) = tokio::sync::mpsc::unbounded_channel();
    let (entered, mut entries) = tokio::sync::mpsc::unbounded_channel();
    let (stage, _) = tokio::sync::watch::channel(0);
    assert!(
        BURST
            .set(Burst {
                call_ids,
                entered,
                stage,
            })
            .is_ok()
    );
    let lm = LmConfig::scripted().agent_plan(
        [
            ("calculator", json!({"a": 1, "op": "+", "b": 1})),
            ("gate", json!({})),
        ],
        [("answer", "done")],
    );
    let ctx = context(lm).await;
    let program = attach_agent(
        &ctx,
        "Besieged",
        Step::python("agent", "ReAct", "question -> answer")
            .with("max_iters", 4)
            .tool::<calculator>()
            .tool::<gate>()
            .tool::<held>(),
    )
    .await;
    let info = ctx.bridge_session().unwrap();
    let run = tokio::spawn(async move {
        program
            .run_traced(Fields::from([("question", "q")]))
            .await
            .unwrap()
    });

    // The agent is inside `gate`, its second callback: the module call has 254 places left.
    let call_id = call_id.recv().await.unwrap();
    let already_admitted = 2;
    let admitted = MAX_CALLBACKS_PER_CALL - already_admitted;
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(
            CallbackServiceClient::connect(format!("http://{}", info.address))
                .await
                .unwrap(),
        );
    }
    let (refusals, mut refused) = tokio::sync::mpsc::unbounded_channel();
    let calls: Vec<_> = (0..HOSTILE_CALLS)
        .map(|i| {
            let mut client = clients[i % CONNECTIONS].clone();
            let refusals = refusals.clone();
            let mut request = tonic::Request::new(pb::CallbackRequest {
                session_id: info.session_id.clone(),
                name: "held".into(),
                arguments_json: b"{}".to_vec(),
                call_id: call_id.clone(),
            });
            request
                .metadata_mut()
                .insert(dspex::wire::TOKEN_METADATA, info.token.parse().unwrap());
            tokio::spawn(async move {
                let reply = client.call(request).await;
                if let Err(status) = &reply {
                    refusals.send(status.clone()).unwrap();
                }
                reply
            })
        })
        .collect();
    drop(refusals);

    // Every call either runs (and holds) or is refused: wait for all 300 to be one or the other.
    let (mut ran, mut statuses) = (0, Vec::new());
    while ran + statuses.len() < HOSTILE_CALLS {
        tokio::select! {
            Some(()) = entries.recv() => ran += 1,
            Some(status) = refused.recv() => statuses.push(status),
        }
    }
    assert_eq!(ran, admitted, "calls that ran while all were in flight");
    assert_eq!(statuses.len(), HOSTILE_CALLS - admitted);
    for status in &statuses {
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        let kind = status.metadata().get(dspex::wire::ERROR_METADATA).unwrap();
        assert_eq!(kind.to_str().unwrap(), pb::ErrorKind::Limit.as_str_name());
        assert!(
            status.message().contains(&format!(
                "already made {MAX_CALLBACKS_PER_CALL} callbacks, the limit (MAX_CALLBACKS_PER_CALL)"
            )),
            "{}",
            status.message()
        );
    }

    // The admitted calls finish with their results; then the agent's gate opens.
    BURST.get().unwrap().stage.send_replace(BURST_HELD_GO);
    let mut answered = 0;
    for call in calls {
        if let Ok(reply) = call.await.unwrap() {
            assert_eq!(
                reply.into_inner().outcome,
                Some(Outcome::ResultJson("\"held\"".into()))
            );
            answered += 1;
        }
    }
    assert_eq!(answered, admitted);
    assert!(entries.try_recv().is_err(), "no refused call ran");
    BURST.get().unwrap().stage.send_replace(BURST_GATE_GO);
    let (out, trace) = run.await.unwrap();
    assert_eq!(out.get::<&str>("answer").unwrap(), "done");

    // The trace holds every admitted call and no refused one: exactly the limit.
    let calls = &trace.step("agent").unwrap().tool_calls;
    assert_eq!(calls.len(), MAX_CALLBACKS_PER_CALL);
    let count = |tool: &str| calls.iter().filter(|c| c.tool == tool).count();
    assert_eq!(
        (count("calculator"), count("gate"), count("held")),
        (1, 1, admitted)
    );
}
