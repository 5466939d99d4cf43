//! Message contents on LM call spans are bounded per run as a run's trace keeps them: against
//! a real OTLP/HTTP receiver in this process, a run of `MAX_CAPTURED_CALLS_PER_RUN + 1` LM
//! calls exports every call's span, the first `MAX_CAPTURED_CALLS_PER_RUN` with their messages
//! and the one over the bound without.

#![allow(clippy::unwrap_used)]

use dspex::prelude::*;
use dspex::telemetry::Telemetry;
use dspex::{MAX_CAPTURED_CALLS_PER_RUN, StepContext, json};
use dspex_test_otlp::OtlpReceiver;

/// Asks the called step `ask` `MAX_CAPTURED_CALLS_PER_RUN + 1` times.
#[derive(Default)]
struct AskOverTheBound;

impl Module for AskOverTheBound {
    async fn forward_in_step(
        &self,
        cx: &StepContext<'_>,
        inputs: &Fields,
        _: &Params,
    ) -> Result<Fields> {
        let question = inputs.get::<String>("question")?;
        let mut answer = String::new();
        for _ in 0..=MAX_CAPTURED_CALLS_PER_RUN {
            let out = cx
                .call("ask", Fields::from([("question", json!(question))]))
                .await?;
            answer = out.get::<String>("answer")?;
        }
        Ok(Fields::from([("answer", answer)]))
    }
}

dspex_program! {
    /// One step asking an LM step over and over.
    program Asker: "question -> answer" {
        chain {
            ask: called native Predict("question -> answer"),
            asks: native AskOverTheBound("question -> answer"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contents_stop_at_the_runs_bound_and_the_spans_do_not() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let guard = Telemetry::from_env()
        .unwrap()
        .endpoint(receiver.endpoint())
        .capture_message_content(true)
        .install()
        .unwrap();
    let lm = LmConfig::scripted().rule("Rome", [("answer", "Italy")]);
    let ctx = Context::builder().lm(lm).build().await.unwrap();
    let program = Asker::attach(&ctx).await.unwrap();
    let out = program
        .run(AskerInput {
            question: "Where is Rome?".into(),
        })
        .await
        .unwrap();
    assert_eq!(out.answer, "Italy");
    guard.flush().unwrap();
    assert_eq!(guard.spans_lost(), 0);
    drop(guard);

    let spans = receiver.spans();
    let chats: Vec<_> = spans.iter().filter(|s| s.name == "chat scripted").collect();
    let with_contents = |s: &&&dspex_test_otlp::ReceivedSpan| {
        s.attribute("gen_ai.input.messages").is_some()
            && s.attribute("gen_ai.output.messages").is_some()
    };
    assert_eq!(chats.len(), MAX_CAPTURED_CALLS_PER_RUN + 1);
    assert_eq!(
        chats.iter().filter(with_contents).count(),
        MAX_CAPTURED_CALLS_PER_RUN
    );
}
