//! The spans of a run, as `tracing` spans named and described the way OpenTelemetry's GenAI
//! semantic conventions say: the one place that decides span names and attributes, for both
//! lanes. With no subscriber listening a span costs one check and its attributes are never
//! computed; the `otel` feature's telemetry layer exports them over OTLP.
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
//! [`set_capture_message_content`] turned them on.

use std::sync::atomic::{AtomicBool, Ordering};

#[cfg(feature = "otel")]
use dspex_core::Value;
use serde_json::Value as JsonValue;
use tracing::Span;
use tracing::field::Empty;

use super::{LmCall, Params};
use crate::error::Error;

/// The `tracing` target of every span of this module (what the telemetry layer exports).
pub(crate) const SPAN_TARGET: &str = "dspex::span";

static CAPTURE_MESSAGE_CONTENT: AtomicBool = AtomicBool::new(false);

/// Whether LM call spans record the messages sent and the reply received.
pub(crate) fn capture_message_content() -> bool {
    CAPTURE_MESSAGE_CONTENT.load(Ordering::Relaxed)
}

/// Turns the recording of message contents on LM call spans on or off (off by default).
#[cfg(feature = "otel")]
pub(crate) fn set_capture_message_content(on: bool) {
    CAPTURE_MESSAGE_CONTENT.store(on, Ordering::Relaxed);
}

/// The span of one run of `program`.
pub(crate) fn run_span(program: &str) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: None,
        "invoke_workflow",
        otel.name = format!("invoke_workflow {program}"),
        gen_ai.operation.name = "invoke_workflow",
        dspex.program = program,
        otel.status_code = Empty,
        otel.status_description = Empty,
    )
}

/// The span of step `step` of the run `run`.
pub(crate) fn step_span(run: &Span, step: &str) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: run,
        "step",
        otel.name = format!("step {step}"),
        dspex.step = step,
        otel.status_code = Empty,
        otel.status_description = Empty,
    )
}

/// The name of an LM call's span.
fn chat_name(model: &str) -> String {
    format!("chat {model}")
}

/// The span of one LM call to `model` of `provider`, a child of the current span.
pub(crate) fn chat_span(provider: &str, model: &str) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "chat",
        otel.name = chat_name(model),
        otel.kind = "client",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = provider,
        gen_ai.request.model = model,
        gen_ai.request.temperature = Empty,
        gen_ai.request.max_tokens = Empty,
        gen_ai.request.top_p = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty,
        otel.status_code = Empty,
        otel.status_description = Empty,
    )
}

/// The span of one call of tool `tool`, a child of `parent`.
#[cfg(feature = "python")]
pub(crate) fn tool_span(parent: &Span, tool: &str) -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        parent: parent,
        "execute_tool",
        otel.name = format!("execute_tool {tool}"),
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = tool,
        otel.status_code = Empty,
        otel.status_description = Empty,
    )
}

/// The span of one call of tool `tool` made from another process: a child of the span its
/// W3C `traceparent` names when there is one (and telemetry is on), else of `parent`.
#[cfg(feature = "python")]
pub(crate) fn remote_tool_span(traceparent: Option<&str>, parent: &Span, tool: &str) -> Span {
    #[cfg(feature = "otel")]
    if let Some(remote) = traceparent.and_then(parse_traceparent) {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let span = tool_span(&Span::none(), tool);
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
        return span;
    }
    #[cfg(not(feature = "otel"))]
    let _ = traceparent;
    tool_span(parent, tool)
}

/// The span a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`) names; `None` for any
/// other text.
#[cfg(all(feature = "otel", feature = "python"))]
fn parse_traceparent(text: &str) -> Option<opentelemetry::trace::SpanContext> {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
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

/// A numeric attribute value of a span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum AttributeValue {
    /// An integer.
    Integer(i64),
    /// A float.
    Float(f64),
}

/// The attributes of an LM call span set once the call is known (settings and token usage).
pub(crate) fn lm_call_attributes(call: &LmCall) -> Vec<(&'static str, AttributeValue)> {
    let mut attributes = Vec::new();
    if let Some(t) = call.temperature {
        attributes.push(("gen_ai.request.temperature", AttributeValue::Float(t)));
    }
    if let Some(m) = call.max_tokens {
        attributes.push(("gen_ai.request.max_tokens", AttributeValue::Integer(m)));
    }
    if let Some(p) = call.top_p {
        attributes.push(("gen_ai.request.top_p", AttributeValue::Float(p)));
    }
    let tokens = |t: u64| AttributeValue::Integer(i64::try_from(t).unwrap_or(i64::MAX));
    if let Some(t) = call.prompt_tokens {
        attributes.push(("gen_ai.usage.input_tokens", tokens(t)));
    }
    if let Some(t) = call.completion_tokens {
        attributes.push(("gen_ai.usage.output_tokens", tokens(t)));
    }
    attributes
}

/// Records the settings and token usage of `call` on its LM call span.
pub(crate) fn record_lm_call(span: &Span, call: &LmCall) {
    if span.is_disabled() {
        return;
    }
    for (key, value) in lm_call_attributes(call) {
        match value {
            AttributeValue::Integer(v) => span.record(key, v),
            AttributeValue::Float(v) => span.record(key, v),
        };
    }
}

/// Records the messages of an LM call and its reply on its span, when message contents are
/// captured ([`capture_message_content`]); nothing otherwise.
pub(crate) fn record_messages(span: &Span, messages: impl FnOnce() -> JsonValue, reply: &str) {
    if span.is_disabled() || !capture_message_content() {
        return;
    }
    span.record("gen_ai.input.messages", messages().to_string());
    let output = serde_json::json!([{
        "role": "assistant",
        "parts": [{"type": "text", "content": reply}],
    }]);
    span.record("gen_ai.output.messages", output.to_string());
}

/// Marks `span` as failed with `error`, its sources included.
pub(crate) fn record_error(span: &Span, error: &Error) {
    if !span.is_disabled() {
        record_failure(span, &error.report());
    }
}

/// Marks `span` as failed with `message`.
pub(crate) fn record_failure(span: &Span, message: &str) {
    if span.is_disabled() {
        return;
    }
    span.record("otel.status_code", "ERROR");
    span.record("otel.status_description", message);
}

/// The attribute name of a step's parameter value.
#[cfg(feature = "otel")]
fn param_attribute(name: &str) -> String {
    format!("dspex.param.{name}")
}

/// The attribute value of a variable's value (an embedding as its text).
#[cfg(feature = "otel")]
fn param_value(value: &Value) -> opentelemetry::Value {
    match value {
        Value::Float(v) => (*v).into(),
        Value::Integer(v) => (*v).into(),
        Value::String(v) => v.clone().into(),
        Value::Boolean(v) => (*v).into(),
        Value::Embedding(_) => value.to_string().into(),
    }
}

/// Records the values a step used as `dspex.param.<parameter>` attributes of its span.
pub(crate) fn record_params(span: &Span, params: &Params) {
    #[cfg(feature = "otel")]
    {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        if span.is_disabled() {
            return;
        }
        for (name, value) in params.iter() {
            span.set_attribute(param_attribute(name), param_value(value));
        }
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = (span, params);
    }
}

/// `value` as an OpenTelemetry attribute value.
#[cfg(all(feature = "otel", feature = "python"))]
fn otel_value(value: AttributeValue) -> opentelemetry::Value {
    match value {
        AttributeValue::Integer(v) => v.into(),
        AttributeValue::Float(v) => v.into(),
    }
}

/// The W3C `traceparent` of `span`, for a call that carries the trace to another process;
/// `None` when no telemetry layer records the span.
#[cfg(feature = "python")]
pub(crate) fn traceparent(span: &Span) -> Option<String> {
    #[cfg(feature = "otel")]
    {
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        if span.is_disabled() {
            return None;
        }
        let context = span.context();
        let otel_span = context.span();
        let ids = otel_span.span_context();
        ids.is_valid().then(|| {
            format!(
                "00-{}-{}-{:02x}",
                ids.trace_id(),
                ids.span_id(),
                ids.trace_flags().to_u8()
            )
        })
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = span;
        None
    }
}

/// Records an LM call made in another process (a python step's worker) as a span of `parent`,
/// from the times that process reports (nanoseconds since the Unix epoch): the same name and
/// attributes as an LM call made here.
#[cfg(feature = "python")]
pub(crate) fn record_finished_lm_call(
    parent: &Span,
    provider: &str,
    call: &LmCall,
    start_unix_nano: u64,
    end_unix_nano: u64,
) {
    #[cfg(feature = "otel")]
    {
        use std::time::{Duration, UNIX_EPOCH};

        use opentelemetry::KeyValue;
        use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
        use tracing_opentelemetry::OpenTelemetrySpanExt;

        if parent.is_disabled() {
            return;
        }
        let tracer = opentelemetry::global::tracer("dspex");
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", provider.to_owned()),
            KeyValue::new("gen_ai.request.model", call.model.clone()),
        ];
        attributes.extend(
            lm_call_attributes(call)
                .into_iter()
                .map(|(key, value)| KeyValue::new(key, otel_value(value))),
        );
        let at = |nanos: u64| UNIX_EPOCH + Duration::from_nanos(nanos);
        let mut span = tracer
            .span_builder(chat_name(&call.model))
            .with_kind(SpanKind::Client)
            .with_start_time(at(start_unix_nano))
            .with_attributes(attributes)
            .start_with_context(&tracer, &parent.context());
        span.end_with_timestamp(at(end_unix_nano.max(start_unix_nano)));
    }
    #[cfg(not(feature = "otel"))]
    {
        let _ = (parent, provider, call, start_unix_nano, end_unix_nano);
    }
}

#[cfg(all(test, feature = "otel", feature = "python"))]
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
    fn an_lm_calls_attributes_are_its_settings_and_usage() {
        let call = LmCall {
            model: "m".to_owned(),
            temperature: Some(0.5),
            max_tokens: Some(10),
            top_p: None,
            n: None,
            prompt_tokens: Some(7),
            completion_tokens: None,
            exchange: None,
        };
        assert_eq!(
            lm_call_attributes(&call),
            [
                ("gen_ai.request.temperature", AttributeValue::Float(0.5)),
                ("gen_ai.request.max_tokens", AttributeValue::Integer(10)),
                ("gen_ai.usage.input_tokens", AttributeValue::Integer(7)),
            ]
        );
    }
}
