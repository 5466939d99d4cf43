//! The JSON forms the routes answer with: fields, a run's trace, a variable's record and its
//! history.

use std::time::Duration;

use dspex_core::{Constraints, Number};
use serde_json::{Map, Value as Json, json};

use crate::data::{Fields, LmCall, RunTrace, StepRunner, StepTrace, ToolCall};
use crate::state::history::HistoryEntry;
use crate::state::provider::VarRecord;
use crate::util::time::rfc3339;
use crate::util::value_json::to_json;

/// Fields as a JSON object.
pub(crate) fn fields(fields: &Fields) -> Json {
    Json::Object(
        fields
            .iter()
            .map(|(name, value)| (name.to_owned(), value.clone()))
            .collect(),
    )
}

fn seconds(duration: Duration) -> Json {
    json!(duration.as_secs_f64())
}

/// A run's trace: `{"steps": [..], "captures_dropped": n}`, each step with what it read and
/// wrote, its parameters, LM and tool calls, and its duration in seconds.
pub(crate) fn trace(trace: &RunTrace) -> Json {
    json!({
        "steps": trace.steps.iter().map(step).collect::<Vec<_>>(),
        "captures_dropped": trace.captures_dropped,
    })
}

fn step(step: &StepTrace) -> Json {
    let (runner, class) = match &step.runner {
        StepRunner::Native(ty) => ("native", ty),
        StepRunner::Python(class) => ("python", class),
    };
    let params: Map<String, Json> = step
        .params
        .iter()
        .map(|(name, value)| (name.to_owned(), to_json(value)))
        .collect();
    json!({
        "step": step.step,
        "runner": {"kind": runner, "type": class},
        "inputs": fields(&step.inputs),
        "outputs": fields(&step.outputs),
        "params": params,
        "lm_calls": step.lm_calls.iter().map(lm_call).collect::<Vec<_>>(),
        "tool_calls": step.tool_calls.iter().map(tool_call).collect::<Vec<_>>(),
        "duration": seconds(step.duration),
        "called_by": step.called_by.as_ref().map(|c| json!({
            "caller": c.caller, "index": c.index, "depth": c.depth,
        })),
    })
}

fn lm_call(call: &LmCall) -> Json {
    json!({
        "model": call.model,
        "temperature": call.temperature,
        "max_tokens": call.max_tokens,
        "top_p": call.top_p,
        "n": call.n,
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": call.completion_tokens,
        "exchange": call.exchange.as_ref().map(|e| json!({
            "messages": e.messages.iter()
                .map(|m| json!({"role": m.role, "content": m.content}))
                .collect::<Vec<_>>(),
            "reply": e.reply,
        })),
    })
}

fn tool_call(call: &ToolCall) -> Json {
    let (result, error) = match &call.result {
        Ok(result) => (result.clone(), Json::Null),
        Err(error) => (Json::Null, json!(error)),
    };
    json!({
        "tool": call.tool,
        "arguments": call.arguments,
        "result": result,
        "error": error,
        "duration": seconds(call.duration),
        "variables": call.variables.iter()
            .map(|v| json!({"name": v.name, "value": to_json(&v.value), "version": v.version}))
            .collect::<Vec<_>>(),
    })
}

fn number(n: Number) -> Json {
    match n {
        Number::Int(i) => json!(i),
        Number::Float(x) => json!(x),
    }
}

/// The constraints that are set, as a JSON object.
fn constraints(c: &Constraints) -> Json {
    let mut out = Map::new();
    let mut put = |key: &str, value: Option<Json>| {
        if let Some(value) = value {
            out.insert(key.to_owned(), value);
        }
    };
    put("min", c.min.map(number));
    put("max", c.max.map(number));
    put("min_length", c.min_length.map(|n| json!(n)));
    put("max_length", c.max_length.map(|n| json!(n)));
    put("pattern", c.pattern.as_ref().map(|p| json!(p.as_str())));
    put("choices", c.choices.as_ref().map(|c| json!(c)));
    put("dimensions", c.dimensions.map(|n| json!(n)));
    Json::Object(out)
}

/// A variable as `GET /variables` shows it.
pub(crate) fn variable(record: &VarRecord) -> Json {
    json!({
        "value": to_json(&record.value),
        "version": record.version,
        "type": record.ty.name(),
        "constraints": constraints(&record.constraints),
        "readonly": record.readonly,
    })
}

/// One history entry.
pub(crate) fn history_entry(entry: &HistoryEntry) -> Json {
    json!({
        "version": entry.version,
        "value": to_json(&entry.value),
        "source": entry.source.to_string(),
        "metadata": entry.metadata,
        "at": rfc3339(entry.at),
    })
}
