//! What a run did, step by step: the fields each step read and wrote, the parameters it was
//! given, and for python steps the LM settings each LM call really used.

use std::fmt;
use std::time::Duration;

use dspex_core::Value;
use serde_json::Value as JsonValue;

use super::fields::{Fields, Params};

/// A variable a tool read during a call: its value, and the version it was read at (`None` for
/// a value of the run's overrides).
#[derive(Debug, Clone, PartialEq)]
pub struct VariableRead {
    /// The variable.
    pub name: String,
    /// The value the tool received.
    pub value: Value,
    /// The version read; `None` when the value came from the run's overrides.
    pub version: Option<u64>,
}

/// One call of a Rust tool (or any callback) made by a python step's module during a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The tool's name.
    pub tool: String,
    /// The arguments the agent gave, a JSON object.
    pub arguments: JsonValue,
    /// What the tool returned, or why it returned nothing (its error, its panic, its timeout).
    pub result: Result<JsonValue, String>,
    /// How long it ran.
    pub duration: Duration,
    /// The variables it read, in order.
    pub variables: Vec<VariableRead>,
}

impl fmt::Display for ToolCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({}) ", self.tool, self.arguments)?;
        match &self.result {
            Ok(result) => write!(f, "-> {result}")?,
            Err(e) => write!(f, "-> error: {e}")?,
        }
        write!(f, " ({:.1?})", self.duration)?;
        for read in &self.variables {
            match read.version {
                Some(v) => write!(f, " {}={}@v{v}", read.name, read.value)?,
                None => write!(f, " {}={} (override)", read.name, read.value)?,
            }
        }
        Ok(())
    }
}

/// How many LM calls of one run keep their messages and reply
/// ([`LmConfig::capture_messages`](crate::LmConfig::capture_messages)); later calls' are left
/// out and counted in [`RunTrace::captures_dropped`].
pub const MAX_CAPTURED_CALLS_PER_RUN: usize = 256;

/// How many bytes of messages and replies one run's trace keeps; a call whose exchange would
/// go over is left out and counted in [`RunTrace::captures_dropped`].
pub const MAX_CAPTURED_BYTES_PER_RUN: usize = 4 * 1024 * 1024;

/// One message of an LM request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// What an LM call sent and received, kept when the LM captures messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmExchange {
    /// The request's messages, in order.
    pub messages: Vec<LmMessage>,
    /// The reply's text.
    pub reply: String,
}

impl LmExchange {
    /// The bytes of its messages and reply, as the run's bound counts them.
    pub fn size(&self) -> usize {
        self.reply.len()
            + self
                .messages
                .iter()
                .map(|m| m.role.len() + m.content.len())
                .sum::<usize>()
    }
}

/// One LM request of a step: the settings it really went out with (as the worker's LM recorded
/// them for a python step, as the Rust client sent them for a native one) and the token usage
/// when the LM reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct LmCall {
    /// The model the call went to.
    pub model: String,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Token limit.
    pub max_tokens: Option<i64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Number of completions.
    pub n: Option<i64>,
    /// Tokens of the prompt, when the LM reported them.
    pub prompt_tokens: Option<u64>,
    /// Tokens of the completion, when the LM reported them.
    pub completion_tokens: Option<u64>,
    /// The messages sent and the reply received, when the LM captures them
    /// ([`LmConfig::capture_messages`](crate::LmConfig::capture_messages)) and the run's
    /// bounds left room.
    pub exchange: Option<LmExchange>,
}

impl fmt::Display for LmCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "model={}", self.model)?;
        if let Some(t) = self.temperature {
            write!(f, " temperature={t}")?;
        }
        if let Some(m) = self.max_tokens {
            write!(f, " max_tokens={m}")?;
        }
        if let Some(p) = self.top_p {
            write!(f, " top_p={p}")?;
        }
        if let Some(n) = self.n {
            write!(f, " n={n}")?;
        }
        if let Some(t) = self.prompt_tokens {
            write!(f, " prompt_tokens={t}")?;
        }
        if let Some(t) = self.completion_tokens {
            write!(f, " completion_tokens={t}")?;
        }
        Ok(())
    }
}

/// Where a traced step ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepRunner {
    /// A native module of this Rust type.
    Native(String),
    /// A DSPy module of this Python class (the variable-aware variant the worker created).
    Python(String),
}

impl fmt::Display for StepRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepRunner::Native(ty) => write!(f, "native {ty}"),
            StepRunner::Python(class) => write!(f, "python {class}"),
        }
    }
}

/// Which native step called a step, and when: the trace of a step run by
/// [`StepContext::call`](crate::StepContext::call) rather than in chain order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCall {
    /// The step that called it.
    pub caller: String,
    /// How many calls of this step the caller had made before this one (in one run of the
    /// caller), from 0: the hop of a `for hop in 0..k` loop.
    pub index: usize,
    /// How deep the call is: 1 for a call made by a chain step, 2 for a call made by a step
    /// that was itself called, ...
    pub depth: usize,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTrace {
    /// The step name.
    pub step: String,
    /// What ran it.
    pub runner: StepRunner,
    /// The fields it read.
    pub inputs: Fields,
    /// Every field it returned (a python step's include DSPy's extra outputs, like
    /// `reasoning`); only its signature's outputs flow on.
    pub outputs: Fields,
    /// The bound variable values it ran with, by parameter name.
    pub params: Params,
    /// The LM calls it made (python steps, and dspex's native `Predict` and `ChainOfThought`).
    pub lm_calls: Vec<LmCall>,
    /// The Rust tools its module called (python steps), in the order they finished.
    pub tool_calls: Vec<ToolCall>,
    /// How long it took.
    pub duration: Duration,
    /// Who called it, when a native step did; `None` for a step run in chain order.
    pub called_by: Option<StepCall>,
}

/// Every step of one run, in the order they finished: a called step before the step that
/// called it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunTrace {
    /// The steps, in the order they finished.
    pub steps: Vec<StepTrace>,
    /// How many LM calls' captured exchanges were left out, over
    /// [`MAX_CAPTURED_CALLS_PER_RUN`] or [`MAX_CAPTURED_BYTES_PER_RUN`].
    pub captures_dropped: usize,
}

impl RunTrace {
    /// The trace of the step named `step` (its first run, when it was called more than once).
    pub fn step(&self, step: &str) -> Option<&StepTrace> {
        self.steps.iter().find(|s| s.step == step)
    }

    /// Adds a finished step, keeping its LM calls' captured exchanges while the run's bounds
    /// leave room ([`MAX_CAPTURED_CALLS_PER_RUN`], [`MAX_CAPTURED_BYTES_PER_RUN`]).
    pub(crate) fn push(&mut self, mut step: StepTrace) {
        let (mut calls, mut bytes) = self.captured();
        for call in &mut step.lm_calls {
            let Some(size) = call.exchange.as_ref().map(LmExchange::size) else {
                continue;
            };
            if calls < MAX_CAPTURED_CALLS_PER_RUN && bytes + size <= MAX_CAPTURED_BYTES_PER_RUN {
                calls += 1;
                bytes += size;
            } else {
                call.exchange = None;
                self.captures_dropped += 1;
            }
        }
        self.steps.push(step);
    }

    /// The captured exchanges kept so far: how many, and their bytes.
    fn captured(&self) -> (usize, usize) {
        let exchanges = self
            .lm_calls()
            .filter_map(|(_, call)| call.exchange.as_ref());
        exchanges.fold((0, 0), |(n, bytes), e| (n + 1, bytes + e.size()))
    }

    /// Every LM call of the run with its step's name, in order.
    pub fn lm_calls(&self) -> impl Iterator<Item = (&str, &LmCall)> {
        self.steps
            .iter()
            .flat_map(|s| s.lm_calls.iter().map(move |c| (s.step.as_str(), c)))
    }

    /// The last `n` LM calls with captured messages, oldest first, as DSPy's
    /// `inspect_history(n)` prints them: each call's step and model, its messages by role, and
    /// the reply. Empty when nothing was captured.
    pub fn inspect_history(&self, n: usize) -> String {
        let captured: Vec<(&str, &LmCall, &LmExchange)> = self
            .lm_calls()
            .filter_map(|(step, call)| Some((step, call, call.exchange.as_ref()?)))
            .collect();
        let mut out = String::new();
        for (step, call, exchange) in &captured[captured.len().saturating_sub(n)..] {
            out.push_str(&format!("[step `{step}`, model {}]\n\n", call.model));
            for message in &exchange.messages {
                let mut role = message.role.clone();
                if let Some(first) = role.get_mut(..1) {
                    first.make_ascii_uppercase();
                }
                out.push_str(&format!("{role} message:\n\n{}\n\n", message.content));
            }
            out.push_str(&format!("Response:\n\n{}\n\n\n", exchange.reply));
        }
        out
    }

    /// Every run of the step named `step`, in the order they finished.
    pub fn runs_of<'a>(&'a self, step: &'a str) -> impl Iterator<Item = &'a StepTrace> + 'a {
        self.steps.iter().filter(move |s| s.step == step)
    }
}

impl fmt::Display for RunTrace {
    /// One block per step: what ran it, its inputs, outputs, parameters and LM calls.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            match &s.called_by {
                Some(call) => writeln!(
                    f,
                    "step `{}` ({}, {:.1?}, call {} by `{}`, depth {})",
                    s.step, s.runner, s.duration, call.index, call.caller, call.depth
                )?,
                None => writeln!(f, "step `{}` ({}, {:.1?})", s.step, s.runner, s.duration)?,
            }
            writeln!(f, "  in:  {}", s.inputs)?;
            writeln!(f, "  out: {}", s.outputs)?;
            if !s.params.is_empty() {
                let params: Vec<String> =
                    s.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                writeln!(f, "  params: {}", params.join(" "))?;
            }
            for call in &s.lm_calls {
                writeln!(f, "  lm call: {call}")?;
            }
            for call in &s.tool_calls {
                writeln!(f, "  tool call: {call}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step of one LM call whose exchange is `bytes` bytes (`None`: nothing captured).
    fn step(bytes: Option<usize>) -> StepTrace {
        let exchange = bytes.map(|bytes| LmExchange {
            messages: vec![LmMessage {
                role: "user".to_owned(),
                content: "x".repeat(bytes - "user".len() - 1),
            }],
            reply: "y".to_owned(),
        });
        StepTrace {
            step: "s".to_owned(),
            runner: StepRunner::Native("Predict".to_owned()),
            inputs: Fields::new(),
            outputs: Fields::new(),
            params: Params::default(),
            lm_calls: vec![LmCall {
                model: "m".to_owned(),
                temperature: None,
                max_tokens: None,
                top_p: None,
                n: None,
                prompt_tokens: None,
                completion_tokens: None,
                exchange,
            }],
            tool_calls: Vec::new(),
            duration: Duration::ZERO,
            called_by: None,
        }
    }

    fn kept(trace: &RunTrace) -> usize {
        trace
            .lm_calls()
            .filter(|(_, c)| c.exchange.is_some())
            .count()
    }

    #[test]
    fn a_run_keeps_up_to_max_captured_calls() {
        let mut trace = RunTrace::default();
        for _ in 0..MAX_CAPTURED_CALLS_PER_RUN {
            trace.push(step(Some(10)));
        }
        trace.push(step(None));
        assert_eq!(
            (kept(&trace), trace.captures_dropped),
            (MAX_CAPTURED_CALLS_PER_RUN, 0)
        );
        trace.push(step(Some(10)));
        assert_eq!(
            (kept(&trace), trace.captures_dropped),
            (MAX_CAPTURED_CALLS_PER_RUN, 1)
        );
        // The call is kept; only its exchange is left out.
        assert_eq!(trace.lm_calls().count(), MAX_CAPTURED_CALLS_PER_RUN + 2);
    }

    #[test]
    fn a_run_keeps_up_to_max_captured_bytes() {
        let mut trace = RunTrace::default();
        trace.push(step(Some(MAX_CAPTURED_BYTES_PER_RUN - 10)));
        trace.push(step(Some(10)));
        assert_eq!((kept(&trace), trace.captures_dropped), (2, 0));
        // One byte over: that exchange is left out, and counted.
        let mut over = RunTrace::default();
        over.push(step(Some(MAX_CAPTURED_BYTES_PER_RUN - 10)));
        over.push(step(Some(11)));
        assert_eq!((kept(&over), over.captures_dropped), (1, 1));
        assert_eq!(over.inspect_history(5).matches("Response:").count(), 1);
    }
}
