//! Streaming a run: [`RunEvent`]s as the chain goes, the text of LM output fields as it is
//! written. A run streams through a sink the stream puts in the run's task; the chain takes it
//! when it starts, reports each step to it, and hands it to native LM steps for their chunks.
//! Dropping the stream drops the run: an LM request in flight is aborted.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll};

use dspex_core::{FieldType, Signature};
use futures_util::Stream;
use futures_util::stream::BoxStream;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use serde_json::Value as JsonValue;

use crate::data::{Fields, RunTrace};
use crate::error::Result;

/// What a streamed run reports, in order: per step `StepStarted`, its `Chunk`s, `StepFinished`;
/// then `Finished` once. After an `Err` item the stream ends.
///
/// Chunks carry the text of `str` output fields (and `ChainOfThought`'s `reasoning`) of LM
/// steps as the LM writes it, without `[[ ## field ## ]]` markers; the chunks of a field,
/// concatenated, equal its text in `StepFinished`. Native steps parse the LM's server-sent
/// events; python steps stream through DSPy's `streamify` and `StreamListener` in the worker.
/// Outputs of other types arrive in `StepFinished`, and a step whose LM does not stream (the
/// scripted LM by default, a cached reply) gives one chunk per such field. Dropping the stream
/// cancels the run: a native step's LM request is aborted, a python step's call is cancelled
/// in the worker (its LM request closed; its place there is free once its thread returned).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
/// use dspex::prelude::*;
/// use futures_util::StreamExt;
///
/// dspex_program! {
///     pub program Qa: "question -> answer" {
///         chain { answer: native Predict("question -> answer") }
///     }
/// }
///
/// let lm = LmConfig::scripted().answer([("answer", "Paris")]);
/// let program = Qa::attach(&Context::builder().lm(lm).build().await?).await?;
/// let events: Vec<_> = program.stream(QaInput { question: "Capital of France?".into() })
///     .collect()
///     .await;
/// assert!(matches!(&events[0], Ok(RunEvent::StepStarted { step }) if step == "answer"));
/// assert!(matches!(&events[1], Ok(RunEvent::Chunk { text, .. }) if text == "Paris"));
/// assert!(matches!(&events[3], Ok(RunEvent::Finished { output, .. }) if output.answer == "Paris"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RunEvent<O> {
    /// A step began.
    StepStarted {
        /// The step.
        step: String,
    },
    /// The next text of an output field of a step.
    Chunk {
        /// The step.
        step: String,
        /// The output field.
        field: String,
        /// The text, to append to the field's earlier chunks.
        text: String,
    },
    /// A step ended with these outputs (typed and checked).
    StepFinished {
        /// The step.
        step: String,
        /// Its outputs.
        outputs: Fields,
    },
    /// The run ended.
    Finished {
        /// The program's outputs.
        output: O,
        /// The trace of every step.
        trace: RunTrace,
    },
}

tokio::task_local! {
    /// The sink of the streamed run in this task, until the run's chain takes it.
    static STREAM_SINK: Mutex<Option<EventSink>>;
}

/// Where a streamed run's chain sends its events: a queue the stream empties, which wakes the
/// stream's task (the run is polled in it, so an event usually comes while it runs: the queue
/// costs no channel and no wake-up of another task).
#[derive(Debug, Clone)]
pub(crate) struct EventSink(Arc<EventQueue>);

#[derive(Debug, Default)]
struct EventQueue {
    events: Mutex<VecDeque<ChainEvent>>,
    /// The stream is gone: events are dropped.
    closed: AtomicBool,
    /// The stream is polling the run: it takes the events the run sends when the poll
    /// returns, no wake-up is needed.
    polling: AtomicBool,
    stream: AtomicWaker,
}

/// An event of a chain: any but `Finished`, which the stream sends.
pub(crate) type ChainEvent = RunEvent<Infallible>;

impl EventSink {
    /// The sink of the streamed run in this task, taken (a run started inside the run, say by
    /// a tool, does not stream into it); `None` outside a streamed run.
    pub(crate) fn take() -> Option<Self> {
        STREAM_SINK
            .try_with(|sink| sink.lock().take())
            .ok()
            .flatten()
    }

    pub(crate) fn send(&self, event: ChainEvent) {
        // The stream is gone only when the run is dropped with it.
        if !self.0.closed.load(Ordering::Acquire) {
            self.0.events.lock().push_back(event);
            if !self.0.polling.load(Ordering::SeqCst) {
                self.0.stream.wake();
            }
        }
    }

    /// Reports the `str` outputs of `step` that came whole (from an LM that does not stream):
    /// one chunk per field.
    pub(crate) fn whole_fields(&self, step: &str, signature: &Signature, outputs: &Fields) {
        for field in &signature.outputs {
            if field.ty == FieldType::Str
                && let Some(JsonValue::String(text)) = outputs.value(&field.name)
                && !text.is_empty()
            {
                self.chunk(step, field.name.clone(), text.clone());
            }
        }
    }

    /// Reports text of `field` of `step`.
    pub(crate) fn chunk(&self, step: &str, field: String, text: String) {
        self.send(RunEvent::Chunk {
            step: step.to_owned(),
            field,
            text,
        });
    }
}

/// Streams `run` (a run of a chain, polled by the stream in the caller's task): its events,
/// then `Finished` with the output `convert` makes of its fields. Generated `stream` methods
/// and the runtime builder's call it.
pub fn stream_run<'a, O: Send + 'a>(
    run: impl Future<Output = Result<(Fields, RunTrace)>> + Send + 'a,
    convert: fn(Fields) -> Result<O>,
) -> BoxStream<'a, Result<RunEvent<O>>> {
    let events = Arc::new(EventQueue::default());
    let sink = EventSink(Arc::clone(&events));
    // Boxed before it is wrapped: the run's future (large) is moved once, into its box.
    let run: RunFuture<'a> = Box::pin(run);
    let run = STREAM_SINK.scope(Mutex::new(Some(sink)), run);
    Box::pin(RunStream {
        run: Some(Box::pin(run)),
        events,
        ended: None,
        convert,
    })
}

/// A run of a chain, boxed.
type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<(Fields, RunTrace)>> + Send + 'a>>;

struct RunStream<'a, O> {
    run: Option<RunFuture<'a>>,
    events: Arc<EventQueue>,
    /// The run's result, given once the events before it are out.
    ended: Option<Result<(Fields, RunTrace)>>,
    convert: fn(Fields) -> Result<O>,
}

impl EventQueue {
    fn pop(&self) -> Option<ChainEvent> {
        self.events.lock().pop_front()
    }

    /// No more events: the run ended, or the stream is dropped.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.events.lock().clear();
    }
}

impl<O> Drop for RunStream<'_, O> {
    fn drop(&mut self) {
        self.events.close();
    }
}

impl<O> Stream for RunStream<'_, O> {
    type Item = Result<RunEvent<O>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        // Events the run sent already go out before the run is polled again: one poll of the
        // run often reads many deltas, and polling it again for each of their chunks would
        // cost a walk down the whole run (its HTTP body included) per chunk.
        if let Some(event) = this.events.pop() {
            return Poll::Ready(Some(Ok(typed(event))));
        }
        if let Some(run) = this.run.as_mut() {
            // Woken by the run's own wakers, or by an event sent from elsewhere.
            this.events.stream.register(cx.waker());
            this.events.polling.store(true, Ordering::SeqCst);
            let polled = run.as_mut().poll(cx);
            this.events.polling.store(false, Ordering::SeqCst);
            if let Poll::Ready(result) = polled {
                this.run = None;
                this.ended = Some(result);
            }
        }
        if let Some(event) = this.events.pop() {
            return Poll::Ready(Some(Ok(typed(event))));
        }
        match this.ended.take() {
            Some(Ok((fields, trace))) => {
                this.events.close();
                Poll::Ready(Some(
                    (this.convert)(fields).map(|output| RunEvent::Finished { output, trace }),
                ))
            }
            Some(Err(error)) => {
                this.events.close();
                Poll::Ready(Some(Err(error)))
            }
            None if this.run.is_none() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// An event of the chain as one of the stream's.
fn typed<O>(event: ChainEvent) -> RunEvent<O> {
    match event {
        RunEvent::StepStarted { step } => RunEvent::StepStarted { step },
        RunEvent::Chunk { step, field, text } => RunEvent::Chunk { step, field, text },
        RunEvent::StepFinished { step, outputs } => RunEvent::StepFinished { step, outputs },
        RunEvent::Finished { output, .. } => match output {},
    }
}
