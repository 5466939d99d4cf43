//! The spans of a run, named and described the way OpenTelemetry's GenAI semantic conventions
//! say: the one place that decides span names and attributes, for both lanes.
//!
//! | span | name | attributes |
//! | --- | --- | --- |
//! | a run | `invoke_workflow {program}` | `gen_ai.operation.name`, `dspex.program` |
//! | a step | `step {step}` | `dspex.step`, `dspex.param.<parameter>` for each value it used |
//! | an LM call | `chat {model}` | `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.*`, `gen_ai.usage.*` |
//! | a tool call | `execute_tool {tool}` | `gen_ai.operation.name`, `gen_ai.tool.name` |
//!
//! A failure sets the span's status to error with the error's message. Message contents
//! (`gen_ai.input.messages`, `gen_ai.output.messages`) are recorded only once
//! [`set_capture_message_content`] turned them on, for at most
//! [`MAX_CAPTURED_CALLS_PER_RUN`] LM calls of a run and [`MAX_CAPTURED_BYTES_PER_RUN`] bytes,
//! as a run's trace keeps them.
//!
//! A span is an [`OpenSpan`] where it happens: its trace and span ids are made when it starts
//! (so a step's span id is known before its python call carries it as a W3C `traceparent`),
//! its times are read when it starts and ends, and when it ends (drops) it is pushed, as plain
//! data, onto the bounded queue the `otel` feature's telemetry exports from a thread of its own
//! ([`super::span_queue`]): names, attributes and encoding are made there, off the run's path.
//! The span a new span is a child of is the task's current [`SpanScope`] ([`in_scope`]), or
//! the one given. With telemetry not installed a span costs one atomic load; with the `otel`
//! feature off, nothing (every type here is empty and every function does nothing).

#[cfg(feature = "otel")]
pub(crate) use self::imp::*;
#[cfg(not(feature = "otel"))]
pub(crate) use self::off::*;

#[cfg(feature = "otel")]
use super::trace::{MAX_CAPTURED_BYTES_PER_RUN, MAX_CAPTURED_CALLS_PER_RUN};

#[cfg(feature = "otel")]
mod imp {
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::SystemTime;
    #[cfg(feature = "python")]
    use std::time::{Duration, UNIX_EPOCH};

    use dspex_core::Value;
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry::{InstrumentationScope, KeyValue};
    use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SpanData};
    use parking_lot::Mutex;
    use serde_json::Value as JsonValue;

    use super::super::span_queue::SpanQueue;
    use super::super::{LmCall, Params};
    use super::{MAX_CAPTURED_BYTES_PER_RUN, MAX_CAPTURED_CALLS_PER_RUN};
    use crate::error::Error;

    static CAPTURE_MESSAGE_CONTENT: AtomicBool = AtomicBool::new(false);

    /// The process's queue of ended spans, which telemetry exports.
    pub(crate) static QUEUE: SpanQueue<SpanRecord> = SpanQueue::new();

    /// Whether LM call spans record the messages sent and the reply received.
    pub(crate) fn capture_message_content() -> bool {
        CAPTURE_MESSAGE_CONTENT.load(Ordering::Relaxed)
    }

    /// Turns the recording of message contents on LM call spans on or off (off by default).
    pub(crate) fn set_capture_message_content(on: bool) {
        CAPTURE_MESSAGE_CONTENT.store(on, Ordering::Relaxed);
    }

    tokio::task_local! {
        static CURRENT: SpanScope;
        /// The remote span that the runs a task starts continue (an incoming `traceparent`).
        static INCOMING: SpanContext;
    }

    /// Runs `future` so that the runs it starts continue the trace of the W3C `traceparent`
    /// (their spans are children of the remote span it names); without one, or with text that
    /// is not one, runs start traces of their own.
    #[cfg(feature = "serve")]
    pub(crate) async fn continuing<F: Future>(traceparent: Option<&str>, future: F) -> F::Output {
        match traceparent.and_then(parse_traceparent) {
            Some(remote) if QUEUE.is_enabled() => INCOMING.scope(remote, future).await,
            _ => future.await,
        }
    }

    /// `gen_ai.output.messages`: the reply as the GenAI conventions write an assistant message.
    fn output_messages(reply: &str) -> String {
        serde_json::json!([{
            "role": "assistant",
            "parts": [{"type": "text", "content": reply}],
        }])
        .to_string()
    }

    /// The message contents a run's spans may still carry ([`MAX_CAPTURED_CALLS_PER_RUN`],
    /// [`MAX_CAPTURED_BYTES_PER_RUN`]).
    #[derive(Debug, Default)]
    struct ContentBudget {
        calls: usize,
        bytes: usize,
    }

    impl ContentBudget {
        /// Takes room for one call's contents of `bytes` bytes; false when it does not fit.
        fn take(&mut self, bytes: usize) -> bool {
            let fits = self.calls < MAX_CAPTURED_CALLS_PER_RUN
                && self.bytes + bytes <= MAX_CAPTURED_BYTES_PER_RUN;
            if fits {
                self.calls += 1;
                self.bytes += bytes;
            }
            fits
        }
    }

    /// Where new spans go: their trace, the span they are children of, and their run's budget
    /// of message contents. Empty outside a recorded run.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct SpanScope {
        inner: Option<ScopeInner>,
    }

    #[derive(Debug, Clone)]
    struct ScopeInner {
        trace_id: TraceId,
        parent: SpanId,
        /// Shared by the spans of a run; none when message contents are not captured.
        budget: Option<Arc<Mutex<ContentBudget>>>,
    }

    /// A new run's budget of message contents: none (no allocation) unless they are captured.
    fn new_budget() -> Option<Arc<Mutex<ContentBudget>>> {
        capture_message_content().then(Arc::default)
    }

    /// Runs `future` with `scope` as its task's current scope: the LM calls, worker calls and
    /// steps it starts are children of that span.
    pub(crate) async fn in_scope<F: Future>(scope: SpanScope, future: F) -> F::Output {
        if scope.inner.is_none() {
            future.await
        } else {
            CURRENT.scope(scope, future).await
        }
    }

    /// The task's current scope (empty outside [`in_scope`]).
    pub(crate) fn current_scope() -> SpanScope {
        CURRENT.try_with(SpanScope::clone).unwrap_or_default()
    }

    /// The W3C `traceparent` of the task's current span, for a call that carries the trace to
    /// another process; `None` outside a recorded run.
    #[cfg(feature = "python")]
    pub(crate) fn traceparent() -> Option<String> {
        CURRENT
            .try_with(|scope| {
                scope
                    .inner
                    .as_ref()
                    .map(|s| format!("00-{}-{}-01", s.trace_id, s.parent))
            })
            .ok()
            .flatten()
    }

    /// What kind of span, with what it alone records.
    #[derive(Debug)]
    enum What {
        Run {
            program: String,
        },
        Step {
            step: String,
            params: Option<Params>,
        },
        Chat {
            provider: &'static str,
            model: String,
            call: Option<LmCall>,
            /// `gen_ai.input.messages` and `gen_ai.output.messages`.
            contents: Option<Box<(String, String)>>,
        },
        #[cfg(feature = "python")]
        Tool {
            tool: String,
        },
    }

    /// A span as it is recorded: plain data, turned into OpenTelemetry's form when exported.
    #[derive(Debug)]
    pub(crate) struct SpanRecord {
        trace_id: TraceId,
        span_id: SpanId,
        /// `SpanId::INVALID` for a root span.
        parent: SpanId,
        parent_is_remote: bool,
        start: SystemTime,
        end: SystemTime,
        what: What,
        error: Option<String>,
        budget: Option<Arc<Mutex<ContentBudget>>>,
    }

    /// A span that started and has not ended; it ends, and is queued for export, when it
    /// drops. Empty (and free) when telemetry is off.
    #[derive(Debug, Default)]
    pub(crate) struct OpenSpan {
        record: Option<Box<SpanRecord>>,
    }

    fn ids() -> &'static RandomIdGenerator {
        static IDS: std::sync::OnceLock<RandomIdGenerator> = std::sync::OnceLock::new();
        IDS.get_or_init(RandomIdGenerator::default)
    }

    impl OpenSpan {
        /// A span under `parent`, or a root span of a new trace when `parent` is empty; nothing
        /// when telemetry is off.
        fn start(parent: &SpanScope, what: impl FnOnce() -> What) -> Self {
            if !QUEUE.is_enabled() {
                return Self::default();
            }
            let (trace_id, parent_id, budget) = match &parent.inner {
                Some(scope) => (scope.trace_id, scope.parent, scope.budget.clone()),
                None => (ids().new_trace_id(), SpanId::INVALID, new_budget()),
            };
            Self::started(trace_id, parent_id, false, budget, what())
        }

        fn started(
            trace_id: TraceId,
            parent: SpanId,
            parent_is_remote: bool,
            budget: Option<Arc<Mutex<ContentBudget>>>,
            what: What,
        ) -> Self {
            let start = SystemTime::now();
            Self {
                record: Some(Box::new(SpanRecord {
                    trace_id,
                    span_id: ids().new_span_id(),
                    parent,
                    parent_is_remote,
                    start,
                    end: start,
                    what,
                    error: None,
                    budget,
                })),
            }
        }

        /// The span of one run of `program`: a child of the remote span the task continues
        /// ([`continuing`]), else the root of a new trace.
        pub(crate) fn run(program: &str) -> Self {
            let what = || What::Run {
                program: program.to_owned(),
            };
            match INCOMING.try_with(SpanContext::clone) {
                Ok(remote) if QUEUE.is_enabled() => Self::started(
                    remote.trace_id(),
                    remote.span_id(),
                    true,
                    new_budget(),
                    what(),
                ),
                _ => Self::start(&SpanScope::default(), what),
            }
        }

        /// The span of step `step`, a child of `parent`.
        pub(crate) fn step(parent: &SpanScope, step: &str) -> Self {
            Self::start(parent, || What::Step {
                step: step.to_owned(),
                params: None,
            })
        }

        /// The span of one LM call to `model` of `provider`, a child of the task's current
        /// span.
        pub(crate) fn chat(provider: &'static str, model: &str) -> Self {
            if !QUEUE.is_enabled() {
                return Self::default();
            }
            Self::start(&current_scope(), || What::Chat {
                provider,
                model: model.to_owned(),
                call: None,
                contents: None,
            })
        }

        /// The span of one call of tool `tool` made from another process: a child of the
        /// span its W3C `traceparent` names when there is one, else of `parent`.
        #[cfg(feature = "python")]
        pub(crate) fn remote_tool(
            traceparent: Option<&str>,
            parent: &SpanScope,
            tool: &str,
        ) -> Self {
            if !QUEUE.is_enabled() {
                return Self::default();
            }
            let what = What::Tool {
                tool: tool.to_owned(),
            };
            match traceparent.and_then(parse_traceparent) {
                Some(remote) => {
                    let budget = match &parent.inner {
                        Some(scope) => scope.budget.clone(),
                        None => new_budget(),
                    };
                    Self::started(remote.trace_id(), remote.span_id(), true, budget, what)
                }
                None => Self::start(parent, || what),
            }
        }

        /// The scope of this span's children.
        pub(crate) fn scope(&self) -> SpanScope {
            SpanScope {
                inner: self.record.as_ref().map(|r| ScopeInner {
                    trace_id: r.trace_id,
                    parent: r.span_id,
                    budget: r.budget.clone(),
                }),
            }
        }

        /// Marks the span as failed with `error`, its sources included.
        pub(crate) fn record_error(&mut self, error: &Error) {
            if let Some(record) = &mut self.record {
                record.error = Some(error.report());
            }
        }

        /// Marks the span as failed with `message`.
        #[cfg(feature = "python")]
        pub(crate) fn record_failure(&mut self, message: &str) {
            if let Some(record) = &mut self.record {
                record.error = Some(message.to_owned());
            }
        }

        /// Records the values a step used (`dspex.param.<parameter>`).
        pub(crate) fn record_params(&mut self, values: &Params) {
            if let Some(SpanRecord {
                what: What::Step { params, .. },
                ..
            }) = self.record.as_deref_mut()
            {
                *params = Some(values.clone());
            }
        }

        /// Records an LM call's settings and token usage, and, when message contents are
        /// captured and the run's budget leaves room, its messages and reply.
        pub(crate) fn record_lm_call(
            &mut self,
            lm_call: &LmCall,
            messages: impl FnOnce() -> JsonValue,
            reply: &str,
        ) {
            let Some(record) = self.record.as_deref_mut() else {
                return;
            };
            let budget = record.budget.as_ref();
            if let What::Chat { call, contents, .. } = &mut record.what {
                *call = Some(settings_and_usage(lm_call));
                if capture_message_content() {
                    let input = messages().to_string();
                    *contents = bounded_contents(budget, (input, output_messages(reply)));
                }
            }
        }
    }

    /// What a span keeps of an LM call: all but its exchange (never cloned).
    fn settings_and_usage(call: &LmCall) -> LmCall {
        LmCall {
            model: call.model.clone(),
            temperature: call.temperature,
            max_tokens: call.max_tokens,
            top_p: call.top_p,
            n: call.n,
            prompt_tokens: call.prompt_tokens,
            completion_tokens: call.completion_tokens,
            exchange: None,
        }
    }

    /// `contents`, when the run's budget leaves room for them (no budget: a run started with
    /// message contents off, no room).
    fn bounded_contents(
        budget: Option<&Arc<Mutex<ContentBudget>>>,
        contents: (String, String),
    ) -> Option<Box<(String, String)>> {
        let bytes = contents.0.len() + contents.1.len();
        let fits = budget.is_some_and(|budget| budget.lock().take(bytes));
        fits.then(|| Box::new(contents))
    }

    impl Drop for OpenSpan {
        fn drop(&mut self) {
            if let Some(mut record) = self.record.take() {
                record.end = SystemTime::now().max(record.start);
                record.budget = None;
                QUEUE.push(*record);
            }
        }
    }

    /// Records an LM call made in another process (a python step's worker) as a span of the
    /// task's current span, from the times that process reports (nanoseconds since the Unix
    /// epoch), with its messages (a JSON list) and reply when that process sent them (message
    /// contents captured): the same name and attributes as an LM call made here.
    #[cfg(feature = "python")]
    pub(crate) fn record_finished_lm_call(
        provider: &'static str,
        call: &LmCall,
        start_unix_nano: u64,
        end_unix_nano: u64,
        messages_and_reply: Option<(String, String)>,
    ) {
        let scope = current_scope();
        let mut span = OpenSpan::start(&scope, || What::Chat {
            provider,
            model: call.model.clone(),
            call: Some(settings_and_usage(call)),
            contents: None,
        });
        let Some(record) = span.record.as_deref_mut() else {
            return;
        };
        let at = |nanos: u64| UNIX_EPOCH + Duration::from_nanos(nanos);
        record.start = at(start_unix_nano);
        let budget = record.budget.take();
        if let (What::Chat { contents, .. }, Some((messages, reply))) =
            (&mut record.what, messages_and_reply)
            && capture_message_content()
        {
            let output = output_messages(&reply);
            *contents = bounded_contents(budget.as_ref(), (messages, output));
        }
        let mut record = span.record.take().unwrap_or_else(|| unreachable!());
        record.end = at(end_unix_nano.max(start_unix_nano));
        QUEUE.push(*record);
    }

    /// The span a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`) names; `None` for
    /// any other text.
    #[cfg(any(feature = "python", feature = "serve"))]
    fn parse_traceparent(text: &str) -> Option<SpanContext> {
        let mut parts = text.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00"
            || parts.next().is_some()
            || trace.len() != 32
            || span.len() != 16
            || flags.len() != 2
        {
            return None;
        }
        let context = SpanContext::new(
            TraceId::from_hex(trace).ok()?,
            SpanId::from_hex(span).ok()?,
            TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
            true,
            TraceState::default(),
        );
        context.is_valid().then_some(context)
    }

    /// An attribute's value as a span holds it.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub(crate) enum AttributeValue<'a> {
        Str(&'a str),
        Int(i64),
        Double(f64),
        Bool(bool),
    }

    /// What takes a span's attributes, in order: OpenTelemetry's form, or the OTLP encoding.
    pub(crate) trait AttributeSink {
        /// The attribute named `prefix` followed by `key` (`dspex.param.` and a parameter).
        fn attribute(&mut self, prefix: &'static str, key: &str, value: AttributeValue<'_>);
    }

    /// The attributes of an LM call span set once the call is known (settings and token
    /// usage).
    fn lm_call_attributes(call: &LmCall, out: &mut impl AttributeSink) {
        if let Some(t) = call.temperature {
            out.attribute("gen_ai.request.temperature", "", AttributeValue::Double(t));
        }
        if let Some(m) = call.max_tokens {
            out.attribute("gen_ai.request.max_tokens", "", AttributeValue::Int(m));
        }
        if let Some(p) = call.top_p {
            out.attribute("gen_ai.request.top_p", "", AttributeValue::Double(p));
        }
        let tokens = |t: u64| AttributeValue::Int(i64::try_from(t).unwrap_or(i64::MAX));
        if let Some(t) = call.prompt_tokens {
            out.attribute("gen_ai.usage.input_tokens", "", tokens(t));
        }
        if let Some(t) = call.completion_tokens {
            out.attribute("gen_ai.usage.output_tokens", "", tokens(t));
        }
    }

    /// Gives `out` the attribute `prefix` + `key` with a variable's value (an embedding as its
    /// text).
    fn param_attribute(out: &mut impl AttributeSink, key: &str, value: &Value) {
        const PREFIX: &str = "dspex.param.";
        match value {
            Value::Float(v) => out.attribute(PREFIX, key, AttributeValue::Double(*v)),
            Value::Integer(v) => out.attribute(PREFIX, key, AttributeValue::Int(*v)),
            Value::String(v) => out.attribute(PREFIX, key, AttributeValue::Str(v)),
            Value::Boolean(v) => out.attribute(PREFIX, key, AttributeValue::Bool(*v)),
            Value::Embedding(_) => {
                out.attribute(PREFIX, key, AttributeValue::Str(&value.to_string()));
            }
        }
    }

    /// Nanoseconds since the Unix epoch (0 before it).
    fn unix_nanos(time: SystemTime) -> u64 {
        time.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    impl SpanRecord {
        /// The span's name, in two parts: `invoke_workflow `, `step `, `chat ` or
        /// `execute_tool `, then the program, step, model or tool.
        pub(crate) fn name(&self) -> (&'static str, &str) {
            match &self.what {
                What::Run { program } => ("invoke_workflow ", program),
                What::Step { step, .. } => ("step ", step),
                What::Chat { model, .. } => ("chat ", model),
                #[cfg(feature = "python")]
                What::Tool { tool } => ("execute_tool ", tool),
            }
        }

        /// Whether the span is a client's (an LM call), not internal.
        pub(crate) fn is_client(&self) -> bool {
            matches!(self.what, What::Chat { .. })
        }

        /// Gives `out` the span's attributes, as the module's table says.
        pub(crate) fn attributes(&self, out: &mut impl AttributeSink) {
            let op = |name| AttributeValue::Str(name);
            match &self.what {
                What::Run { program } => {
                    out.attribute("gen_ai.operation.name", "", op("invoke_workflow"));
                    out.attribute("dspex.program", "", AttributeValue::Str(program));
                }
                What::Step { step, params } => {
                    out.attribute("dspex.step", "", AttributeValue::Str(step));
                    for (param, value) in params.iter().flat_map(Params::iter) {
                        param_attribute(out, param, value);
                    }
                }
                What::Chat {
                    provider,
                    model,
                    call,
                    contents,
                } => {
                    out.attribute("gen_ai.operation.name", "", op("chat"));
                    out.attribute("gen_ai.provider.name", "", AttributeValue::Str(provider));
                    out.attribute("gen_ai.request.model", "", AttributeValue::Str(model));
                    if let Some(call) = call {
                        lm_call_attributes(call, out);
                    }
                    if let Some(contents) = contents {
                        let (input, output) = &**contents;
                        out.attribute("gen_ai.input.messages", "", AttributeValue::Str(input));
                        out.attribute("gen_ai.output.messages", "", AttributeValue::Str(output));
                    }
                }
                #[cfg(feature = "python")]
                What::Tool { tool } => {
                    out.attribute("gen_ai.operation.name", "", op("execute_tool"));
                    out.attribute("gen_ai.tool.name", "", AttributeValue::Str(tool));
                }
            }
        }

        /// The trace id's bytes.
        pub(crate) fn trace_id(&self) -> [u8; 16] {
            self.trace_id.to_bytes()
        }

        /// The span id's bytes.
        pub(crate) fn span_id(&self) -> [u8; 8] {
            self.span_id.to_bytes()
        }

        /// The parent's span id's bytes, and whether the parent is in another process; `None`
        /// for a root span.
        pub(crate) fn parent(&self) -> Option<([u8; 8], bool)> {
            (self.parent != SpanId::INVALID)
                .then(|| (self.parent.to_bytes(), self.parent_is_remote))
        }

        /// Start and end, in nanoseconds since the Unix epoch.
        pub(crate) fn times_unix_nano(&self) -> (u64, u64) {
            (unix_nanos(self.start), unix_nanos(self.end))
        }

        /// The error's message, when the span failed.
        pub(crate) fn error(&self) -> Option<&str> {
            self.error.as_deref()
        }

        /// The span in OpenTelemetry's form: its name and attributes as the module's table
        /// says.
        pub(crate) fn to_span_data(&self, scope: &InstrumentationScope) -> SpanData {
            struct KeyValues(Vec<KeyValue>);
            impl AttributeSink for KeyValues {
                fn attribute(
                    &mut self,
                    prefix: &'static str,
                    key: &str,
                    value: AttributeValue<'_>,
                ) {
                    let name = if key.is_empty() {
                        opentelemetry::Key::from_static_str(prefix)
                    } else {
                        opentelemetry::Key::new(format!("{prefix}{key}"))
                    };
                    self.0.push(KeyValue::new(
                        name,
                        match value {
                            AttributeValue::Str(v) => opentelemetry::Value::from(v.to_owned()),
                            AttributeValue::Int(v) => v.into(),
                            AttributeValue::Double(v) => v.into(),
                            AttributeValue::Bool(v) => v.into(),
                        },
                    ));
                }
            }
            let mut attributes = KeyValues(Vec::new());
            self.attributes(&mut attributes);
            let (prefix, rest) = self.name();
            SpanData {
                span_context: SpanContext::new(
                    self.trace_id,
                    self.span_id,
                    TraceFlags::SAMPLED,
                    false,
                    TraceState::default(),
                ),
                parent_span_id: self.parent,
                parent_span_is_remote: self.parent_is_remote,
                span_kind: if self.is_client() {
                    SpanKind::Client
                } else {
                    SpanKind::Internal
                },
                name: format!("{prefix}{rest}").into(),
                start_time: self.start,
                end_time: self.end,
                attributes: attributes.0,
                dropped_attributes_count: 0,
                events: Default::default(),
                links: Default::default(),
                status: match &self.error {
                    Some(message) => Status::error(message.clone()),
                    None => Status::Unset,
                },
                instrumentation_scope: scope.clone(),
            }
        }
    }

    /// Records of every kind, for the tests of their encoding: a run (root), a step with a
    /// value of each type, an LM call with its settings, usage and contents of `content_bytes`
    /// bytes, one without, a failed run under a remote parent, a tool call.
    #[cfg(test)]
    pub(crate) fn sample_records(content_bytes: usize) -> Vec<SpanRecord> {
        let trace_id = TraceId::from_bytes(*b"0123456789abcdef");
        let at = |secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        let record = |span: u64, parent: u64, parent_is_remote, what, error| SpanRecord {
            trace_id,
            span_id: SpanId::from_bytes(span.to_be_bytes()),
            parent: SpanId::from_bytes(parent.to_be_bytes()),
            parent_is_remote,
            start: at(1_800_000_000),
            end: at(1_800_000_001),
            what,
            error,
            budget: None,
        };
        let params: Params = [
            ("f", Value::Float(0.7)),
            ("i", Value::Integer(-3)),
            ("s", Value::String("Rome, Italia \u{e9}".to_owned())),
            ("b", Value::Boolean(true)),
            ("e", Value::Embedding(vec![1.0, 2.5])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let call = LmCall {
            model: "gpt-test".to_owned(),
            temperature: Some(0.25),
            max_tokens: Some(512),
            top_p: Some(1.0),
            n: Some(1),
            prompt_tokens: Some(u64::MAX),
            completion_tokens: Some(17),
            exchange: None,
        };
        let contents = ("m".repeat(content_bytes), "r".repeat(content_bytes / 2));
        let records = vec![
            record(
                1,
                0,
                false,
                What::Run {
                    program: "Thinker".to_owned(),
                },
                None,
            ),
            record(
                2,
                1,
                false,
                What::Step {
                    step: "think".to_owned(),
                    params: Some(params),
                },
                None,
            ),
            record(
                3,
                2,
                false,
                What::Chat {
                    provider: "openai",
                    model: "gpt-test".to_owned(),
                    call: Some(call),
                    contents: Some(Box::new(contents)),
                },
                None,
            ),
            record(
                4,
                2,
                false,
                What::Chat {
                    provider: "openai",
                    model: String::new(),
                    call: None,
                    contents: None,
                },
                Some("the LM answered 500".to_owned()),
            ),
            record(
                5,
                9,
                true,
                What::Run {
                    program: "Remote".to_owned(),
                },
                Some("x".repeat(200)),
            ),
        ];
        #[cfg(feature = "python")]
        let records = {
            let mut records = records;
            records.push(record(
                6,
                7,
                true,
                What::Tool {
                    tool: "lookup".to_owned(),
                },
                None,
            ));
            records
        };
        records
    }

    #[cfg(all(test, feature = "python"))]
    mod tests {
        use super::*;

        #[test]
        fn a_traceparent_names_its_trace_span_and_flags() {
            let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let context = parse_traceparent(text).unwrap();
            assert_eq!(
                context.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
            assert!(context.is_sampled());
            assert!(context.is_remote());
            for bad in [
                "",
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-00",
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            ] {
                assert!(parse_traceparent(bad).is_none(), "{bad}");
            }
        }

        #[test]
        fn a_runs_contents_stop_at_its_bounds() {
            let mut budget = ContentBudget::default();
            assert!(budget.take(MAX_CAPTURED_BYTES_PER_RUN - 10));
            assert!(budget.take(10));
            assert!(!budget.take(1));
            let mut calls = ContentBudget::default();
            for _ in 0..MAX_CAPTURED_CALLS_PER_RUN {
                assert!(calls.take(1));
            }
            assert!(!calls.take(1));
        }
    }
}

/// With the `otel` feature off: the same names, empty and doing nothing.
#[cfg(not(feature = "otel"))]
mod off {
    use std::future::Future;

    use serde_json::Value as JsonValue;

    use super::super::{LmCall, Params};
    use crate::error::Error;

    /// Where new spans go (nowhere: the `otel` feature is off).
    #[derive(Debug, Clone, Default)]
    pub(crate) struct SpanScope;

    /// A span that records nothing (the `otel` feature is off).
    #[derive(Debug, Default)]
    pub(crate) struct OpenSpan;

    /// Runs `future`.
    pub(crate) async fn in_scope<F: Future>(_scope: SpanScope, future: F) -> F::Output {
        future.await
    }

    /// The empty scope.
    pub(crate) fn current_scope() -> SpanScope {
        SpanScope
    }

    /// Runs `future` (no trace to continue).
    #[cfg(feature = "serve")]
    pub(crate) async fn continuing<F: Future>(_traceparent: Option<&str>, future: F) -> F::Output {
        future.await
    }

    /// No trace context to carry.
    #[cfg(feature = "python")]
    pub(crate) fn traceparent() -> Option<String> {
        None
    }

    /// Nothing to record.
    #[cfg(feature = "python")]
    pub(crate) fn record_finished_lm_call(
        _provider: &'static str,
        _call: &LmCall,
        _start_unix_nano: u64,
        _end_unix_nano: u64,
        _messages_and_reply: Option<(String, String)>,
    ) {
    }

    /// Whether LM call spans record contents: never.
    #[cfg(feature = "python")]
    pub(crate) fn capture_message_content() -> bool {
        false
    }

    impl OpenSpan {
        pub(crate) fn run(_program: &str) -> Self {
            Self
        }

        pub(crate) fn step(_parent: &SpanScope, _step: &str) -> Self {
            Self
        }

        pub(crate) fn chat(_provider: &'static str, _model: &str) -> Self {
            Self
        }

        #[cfg(feature = "python")]
        pub(crate) fn remote_tool(
            _traceparent: Option<&str>,
            _parent: &SpanScope,
            _tool: &str,
        ) -> Self {
            Self
        }

        pub(crate) fn scope(&self) -> SpanScope {
            SpanScope
        }

        pub(crate) fn record_error(&mut self, _error: &Error) {}

        #[cfg(feature = "python")]
        pub(crate) fn record_failure(&mut self, _message: &str) {}

        pub(crate) fn record_params(&mut self, _values: &Params) {}

        pub(crate) fn record_lm_call(
            &mut self,
            _lm_call: &LmCall,
            _messages: impl FnOnce() -> JsonValue,
            _reply: &str,
        ) {
        }
    }
}
