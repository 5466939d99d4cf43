//! Native steps calling other steps of their program (`StepContext::call`): a loop of calls
//! shows in the run's trace as one entry per call, in order, naming its caller, index and
//! depth; `called` steps run only that way, in both macro forms and the runtime builder; a call
//! of an unknown step, with an unknown or missing input, is an error naming it; the bounds on
//! nested calls (`MAX_CALL_DEPTH`) and on calls per run (`MAX_STEP_CALLS`) hold at the limit
//! and refuse one over it.

use dspex::prelude::*;
use dspex::{
    Error, MAX_CALL_DEPTH, MAX_STEP_CALLS, ProgramBuilder, RunTrace, Step, StepCall, StepContext,
    json,
};

/// Writes the next query from the question and what was found so far.
#[derive(Default)]
struct NextQuery;

impl Module for NextQuery {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        let found = inputs.get::<Vec<String>>("context")?;
        let question = inputs.get::<&str>("question")?;
        Ok(Fields::from([(
            "query",
            format!("{question} #{}", found.len()),
        )]))
    }
}

/// Finds one passage per query.
#[derive(Default)]
struct Lookup;

impl Module for Lookup {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        let query = inputs.get::<&str>("query")?;
        Ok(Fields::from([("passages", vec![format!("about {query}")])]))
    }
}

/// `for hop in 0..hops`: a query, then a lookup, the passages gathered.
struct Hops {
    hops: usize,
}

impl Default for Hops {
    fn default() -> Self {
        Self { hops: 3 }
    }
}

impl Module for Hops {
    async fn forward_in_step(
        &self,
        cx: &StepContext<'_>,
        inputs: &Fields,
        _: &Params,
    ) -> Result<Fields> {
        let question = inputs.get::<String>("question")?;
        let mut context: Vec<String> = Vec::new();
        for _hop in 0..self.hops {
            let query = cx
                .call(
                    "generate_query",
                    Fields::from([("context", json!(context)), ("question", json!(question))]),
                )
                .await?;
            let found = cx.call("retrieve", query).await?;
            context.extend(found.get::<Vec<String>>("passages")?);
        }
        Ok(Fields::from([("context", context)]))
    }
}

/// Answers with the number of passages.
#[derive(Default)]
struct Count;

impl Module for Count {
    async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
        let context = inputs.get::<Vec<String>>("context")?;
        Ok(Fields::from([(
            "answer",
            format!("{} passages", context.len()),
        )]))
    }
}

dspex_program! {
    /// Multi-hop search: `hops` loops over two called steps.
    program MultiHop: "question -> answer" {
        chain {
            generate_query: called native NextQuery("context: list[str], question -> query"),
            retrieve: called native Lookup("query -> passages: list[str]"),
            hops: native Hops("question -> context: list[str]"),
            answer: native Count("question, context: list[str] -> answer"),
        }
    }
}

/// The same program, derived.
#[derive(Program)]
#[program(signature = "question -> answer")]
struct DerivedMultiHop {
    ctx: Context,
    #[step(native, called, signature = "context: list[str], question -> query")]
    generate_query: NextQuery,
    #[step(native, called, signature = "query -> passages: list[str]")]
    retrieve: Lookup,
    #[step(native, signature = "question -> context: list[str]")]
    hops: Hops,
    #[step(native, signature = "question, context: list[str] -> answer")]
    answer: Count,
}

/// A trace entry: the step, and who called it.
type Entry = (String, Option<StepCall>);

/// The steps of a trace, in order, each with who called it.
fn calls(trace: &RunTrace) -> Vec<Entry> {
    trace
        .steps
        .iter()
        .map(|s| (s.step.clone(), s.called_by.clone()))
        .collect()
}

fn by_hops(step: &str, index: usize) -> Entry {
    let call = StepCall {
        caller: "hops".to_owned(),
        index,
        depth: 1,
    };
    (step.to_owned(), Some(call))
}

fn expected_hops(hops: usize) -> Vec<Entry> {
    let mut expected = Vec::new();
    for hop in 0..hops {
        expected.push(by_hops("generate_query", hop));
        expected.push(by_hops("retrieve", hop));
    }
    expected.push(("hops".to_owned(), None));
    expected.push(("answer".to_owned(), None));
    expected
}

#[tokio::test]
async fn every_call_of_a_loop_is_in_the_trace_in_order() -> Result<()> {
    let program = MultiHop::builder().hops(Hops { hops: 2 }).start().await?;
    let (out, trace) = program
        .run_traced(MultiHopInput {
            question: "who?".into(),
        })
        .await?;
    assert_eq!(out.answer, "2 passages");
    assert_eq!(calls(&trace), expected_hops(2));
    // Each call's inputs and outputs, as the loop gave and got them.
    let queries: Vec<&Fields> = trace
        .runs_of("generate_query")
        .map(|s| &s.outputs)
        .collect();
    assert_eq!(queries[0].get::<&str>("query")?, "who? #0");
    assert_eq!(queries[1].get::<&str>("query")?, "who? #1");
    let second = trace.runs_of("retrieve").nth(1).expect("two retrievals");
    assert_eq!(second.inputs.get::<&str>("query")?, "who? #1");
    assert_eq!(
        trace
            .step("hops")
            .expect("hops")
            .outputs
            .get::<Vec<String>>("context")?,
        ["about who? #0", "about who? #1"]
    );
    // Outside its program, a module implementing `forward_in_step` alone fails, named.
    let alone = Hops { hops: 1 }
        .forward(&Fields::new(), &Params::default())
        .await
        .expect_err("runs in a program only");
    assert!(
        alone
            .to_string()
            .contains("step_calls::Hops` implements only `forward_in_step`"),
        "{alone}"
    );
    let shown = trace.to_string();
    assert!(shown.contains("step `retrieve` (native Lookup"), "{shown}");
    assert!(shown.contains("call 1 by `hops`, depth 1"), "{shown}");
    Ok(())
}

#[tokio::test]
async fn called_steps_work_in_the_derive_and_the_runtime_builder() -> Result<()> {
    let derived = DerivedMultiHop::start().await?;
    let (out, trace) = derived
        .run_fields_traced(Fields::from([("question", "why?")]))
        .await?;
    assert_eq!(out.get::<&str>("answer")?, "3 passages");
    assert_eq!(calls(&trace), expected_hops(3));

    let built = ProgramBuilder::new("Built")
        .signature("question -> answer")
        .step(
            Step::native(
                "generate_query",
                "context: list[str], question -> query",
                NextQuery,
            )
            .called(),
        )
        .step(Step::native("retrieve", "query -> passages: list[str]", Lookup).called())
        .step(Step::native(
            "hops",
            "question -> context: list[str]",
            Hops { hops: 1 },
        ))
        .step(Step::native(
            "answer",
            "question, context: list[str] -> answer",
            Count,
        ))
        .build()?
        .start()
        .await?;
    let (out, trace) = built
        .run_traced(Fields::from([("question", "how?")]))
        .await?;
    assert_eq!(out.get::<&str>("answer")?, "1 passages");
    assert_eq!(calls(&trace), expected_hops(1));
    Ok(())
}

/// Calls `step` with `inputs` and returns what it gave.
struct CallOnce {
    step: &'static str,
    inputs: Fields,
}

impl Module for CallOnce {
    async fn forward_in_step(
        &self,
        cx: &StepContext<'_>,
        _: &Fields,
        _: &Params,
    ) -> Result<Fields> {
        let found = cx.call(self.step, self.inputs.clone()).await?;
        Ok(Fields::from([(
            "passages",
            found.get::<Vec<String>>("passages")?,
        )]))
    }
}

dspex_program! {
    program CallsOne: "query -> passages: list[str]" {
        chain {
            retrieve: called native Lookup("query -> passages: list[str]"),
            caller: native CallOnce("query -> passages: list[str]"),
        }
    }
}

/// The error a run of `CallsOne` ends with, the caller's step error unwrapped.
async fn call_error(step: &'static str, inputs: Fields) -> Error {
    let program = CallsOne::builder()
        .caller(CallOnce { step, inputs })
        .start()
        .await
        .expect("starts");
    let error = program
        .run(CallsOneInput { query: "q".into() })
        .await
        .expect_err("the call is refused");
    match error {
        Error::Step { step, source } => {
            assert_eq!(step, "caller");
            *source
        }
        other => panic!("not the caller's step error: {other:?}"),
    }
}

#[tokio::test]
async fn a_call_of_an_unknown_step_or_with_bad_inputs_is_refused() -> Result<()> {
    let error = call_error("retreive", Fields::from([("query", "q")])).await;
    assert!(matches!(error, Error::StepCall { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "step `caller` cannot call step `retreive`: program `CallsOne` has no such step; its steps are `retrieve`, `caller`"
    );

    let error = call_error("retrieve", Fields::from([("query", "q"), ("k", "3")])).await;
    assert_eq!(
        error.to_string(),
        "step `caller` cannot call step `retrieve`: its signature takes no input `k`; its inputs are `query`"
    );

    let error = call_error("retrieve", Fields::new()).await;
    assert_eq!(
        error.to_string(),
        "`query` is missing from the input of step `retrieve` called by `caller`"
    );

    let error = call_error("retrieve", Fields::from([("query", json!(["a list"]))])).await;
    assert!(matches!(error, Error::Field { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("the input of step `retrieve` called by `caller`"),
        "{error}"
    );
    Ok(())
}

/// Calls itself with `n - 1` until `n` is 0: `n` nested calls.
#[derive(Default)]
struct Countdown;

impl Module for Countdown {
    async fn forward_in_step(
        &self,
        cx: &StepContext<'_>,
        inputs: &Fields,
        _: &Params,
    ) -> Result<Fields> {
        let n = inputs.get::<i64>("n")?;
        if n == 0 {
            return Ok(Fields::from([("m", 0)]));
        }
        // Boxed: the future of a call holds the future of the step it calls.
        let inner = Box::pin(cx.call("countdown", Fields::from([("n", n - 1)]))).await?;
        Ok(Fields::from([("m", inner.get::<i64>("m")? + 1)]))
    }
}

dspex_program! {
    program Recursive: "n: int -> m: int" {
        chain { countdown: native Countdown("n: int -> m: int") }
    }
}

#[tokio::test]
async fn calls_nest_up_to_max_call_depth() -> Result<()> {
    let program = Recursive::start().await?;
    let depth = i64::try_from(MAX_CALL_DEPTH).expect("small");
    let (out, trace) = program.run_traced(RecursiveInput { n: depth }).await?;
    assert_eq!(out.m, depth);
    assert_eq!(trace.steps.len(), MAX_CALL_DEPTH + 1);
    // The deepest call finished first.
    let depths: Vec<usize> = trace
        .steps
        .iter()
        .map(|s| s.called_by.as_ref().map_or(0, |c| c.depth))
        .collect();
    let expected: Vec<usize> = (0..=MAX_CALL_DEPTH).rev().collect();
    assert_eq!(depths, expected);

    let error = program
        .run(RecursiveInput { n: depth + 1 })
        .await
        .expect_err("one call too deep");
    let report = error.report();
    assert!(
        report.contains(&format!(
            "would nest calls {} deep, over MAX_CALL_DEPTH = {MAX_CALL_DEPTH}",
            MAX_CALL_DEPTH + 1
        )),
        "{report}"
    );
    Ok(())
}

/// Calls `retrieve` `times` times.
struct Repeat {
    times: usize,
}

impl Module for Repeat {
    async fn forward_in_step(
        &self,
        cx: &StepContext<'_>,
        inputs: &Fields,
        _: &Params,
    ) -> Result<Fields> {
        let mut passages: Vec<String> = Vec::new();
        for _ in 0..self.times {
            let found = cx.call("retrieve", inputs.clone()).await?;
            passages.extend(found.get::<Vec<String>>("passages")?);
        }
        Ok(Fields::from([("passages", passages.len().to_string())]))
    }
}

dspex_program! {
    program Repeats: "query -> passages" {
        chain {
            retrieve: called native Lookup("query -> passages: list[str]"),
            repeat: native Repeat("query -> passages"),
        }
    }
}

#[tokio::test]
async fn a_run_makes_up_to_max_step_calls() -> Result<()> {
    let at_limit = Repeats::builder()
        .repeat(Repeat {
            times: MAX_STEP_CALLS,
        })
        .start()
        .await?;
    let (out, trace) = at_limit
        .run_traced(RepeatsInput { query: "q".into() })
        .await?;
    assert_eq!(out.passages, MAX_STEP_CALLS.to_string());
    assert_eq!(trace.runs_of("retrieve").count(), MAX_STEP_CALLS);
    let last = trace.runs_of("retrieve").last().expect("calls");
    assert_eq!(
        last.called_by.as_ref().map(|c| c.index),
        Some(MAX_STEP_CALLS - 1)
    );

    let over = Repeats::builder()
        .repeat(Repeat {
            times: MAX_STEP_CALLS + 1,
        })
        .start()
        .await?;
    let error = over
        .run(RepeatsInput { query: "q".into() })
        .await
        .expect_err("one call too many");
    let Error::Step { source, .. } = &error else {
        panic!("not a step error: {error:?}");
    };
    let Error::Limit { limit, message } = source.as_ref() else {
        panic!("not a limit: {source:?}");
    };
    assert_eq!(limit, "MAX_STEP_CALLS");
    assert!(
        message.contains(&format!("would be call {} of the run", MAX_STEP_CALLS + 1)),
        "{message}"
    );
    Ok(())
}
