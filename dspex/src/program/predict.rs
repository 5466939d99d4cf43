//! dspex's own LM modules, [`Predict`] and [`ChainOfThought`]: native steps that call the LM
//! from Rust, with DSPy's prompts.

use std::sync::Arc;

use dspex_core::dspy::LM_PARAMS;
use dspex_core::native::LmStepConfig;
use dspex_core::{Signature, Value};
use parking_lot::RwLock;

use super::module::{Module, Predictor, StepContext};
use super::rollout::{ROLLOUT_TEMPERATURE, rollout};
use super::run_demos::run_demos;
use super::stream::EventSink;
use crate::data::{Fields, LmCall, Params};
use crate::error::{Error, Result};
use crate::lm::{
    Adapter, FieldChunk, LmClient, LmRequest, PredictorState, ReplyStream, adapter_messages,
    default_instructions, parse_json_reply, parse_reply, with_reasoning,
};

/// The state both modules share: an optional signature and LM of their own (in a chain, the
/// step's signature and the context's LM are used when unset), and what DSPy's optimizers
/// learn (instructions, demos, field descriptions), replaceable while the module runs.
#[derive(Debug, Default)]
struct LmStep {
    signature: Option<Signature>,
    learned: RwLock<PredictorState>,
    lm: Option<Arc<LmClient>>,
    /// The module's own adapter settings; a step's `with` overrides them.
    adapters: Adapters,
}

/// Which adapter a call starts with, and whether a `ChatAdapter` reply that does not parse is
/// asked again with the JSON adapter.
#[derive(Debug, Clone, Copy)]
struct Adapters {
    adapter: Adapter,
    json_fallback: bool,
}

impl Default for Adapters {
    fn default() -> Self {
        Self {
            adapter: Adapter::Chat,
            json_fallback: true,
        }
    }
}

impl Adapters {
    /// These settings with those a step's `with` gives (`adapter`, `json_fallback`).
    fn configured(self, step: &StepContext<'_>) -> Result<Self> {
        let config = LmStepConfig::read(step.config()).map_err(|message| Error::InvalidOption {
            option: format!("with of step `{}`", step.step()),
            message,
        })?;
        Ok(Self {
            adapter: config.adapter.unwrap_or(self.adapter),
            json_fallback: config.json_fallback.unwrap_or(self.json_fallback),
        })
    }

    /// The adapters to try, in order.
    fn tried(self) -> impl Iterator<Item = Adapter> {
        let fallback =
            (self.adapter == Adapter::Chat && self.json_fallback).then_some(Adapter::Json);
        std::iter::once(self.adapter).chain(fallback)
    }
}

impl Clone for LmStep {
    fn clone(&self) -> Self {
        Self {
            signature: self.signature.clone(),
            learned: RwLock::new(self.learned.read().clone()),
            lm: self.lm.clone(),
            adapters: self.adapters,
        }
    }
}

impl LmStep {
    fn new(signature: &str) -> Result<Self> {
        let signature = signature
            .parse::<Signature>()
            .map_err(|e| Error::InvalidOption {
                option: "signature".to_owned(),
                message: e.to_string(),
            })?;
        Ok(Self {
            signature: Some(signature),
            ..Self::default()
        })
    }

    /// Calls the LM with the step's adapter; as DSPy does, a `ChatAdapter` reply that does not
    /// parse is asked again with the JSON adapter (unless the fallback is off), and the error
    /// of the first reply is the one returned when the second fails too. `run_demos` replace
    /// the step's own demos for this call. In a streamed run, `stream` names the step and
    /// where its chunks go.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        adapters: Adapters,
        module: &str,
        reasoning: bool,
        signature: &Signature,
        lm: &LmClient,
        inputs: &Fields,
        params: &Params,
        run_demos: Option<&[Fields]>,
        stream: Option<(&str, &EventSink)>,
    ) -> Result<(Fields, Vec<LmCall>)> {
        let prompt_signature = if reasoning {
            with_reasoning(signature)
        } else {
            signature.clone()
        };
        let mut calls = Vec::new();
        let mut first_error = None;
        for adapter in adapters.tried() {
            let call = self.call(
                adapter,
                module,
                signature,
                &prompt_signature,
                lm,
                inputs,
                params,
                run_demos,
                stream,
                &mut calls,
            );
            match call.await? {
                Ok(outputs) => return Ok((outputs, calls)),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| Error::Internal("no adapter was tried".to_owned())))
    }

    /// One LM call with `adapter`: an error of the call itself is the outer one, a reply that
    /// does not parse the inner one.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &self,
        adapter: Adapter,
        module: &str,
        signature: &Signature,
        prompt_signature: &Signature,
        lm: &LmClient,
        inputs: &Fields,
        params: &Params,
        run_demos: Option<&[Fields]>,
        stream: Option<(&str, &EventSink)>,
        calls: &mut Vec<LmCall>,
    ) -> Result<Result<Fields>> {
        let mut request = request_settings(module, params)?;
        if let Some(rollout) = rollout() {
            request.temperature = Some(ROLLOUT_TEMPERATURE);
            request.rollout_id = Some(rollout);
        }
        request.messages = {
            let learned = self.learned.read();
            let instructions = learned
                .instructions
                .clone()
                .unwrap_or_else(|| default_instructions(signature));
            adapter_messages(
                adapter,
                prompt_signature,
                &instructions,
                &learned.descriptions(),
                run_demos.unwrap_or(&learned.demos),
                inputs,
            )
        };
        let response = match (stream, adapter) {
            (Some((step, events)), Adapter::Chat) => {
                let mut reply = ReplyStream::new(prompt_signature);
                let send = |chunks: Vec<FieldChunk>| {
                    for chunk in chunks {
                        events.chunk(step, chunk.field, chunk.text);
                    }
                };
                let response = lm
                    .complete_streamed(&request, &mut |delta| send(reply.push(delta)))
                    .await?;
                send(reply.finish());
                response
            }
            _ => lm.complete(&request).await?,
        };
        calls.push(response.call);
        Ok(match adapter {
            Adapter::Chat => parse_reply(prompt_signature, &response.text),
            Adapter::Json => {
                let outputs = parse_json_reply(prompt_signature, &response.text);
                if let (Some((step, events)), Ok(outputs)) = (stream, &outputs) {
                    events.whole_fields(step, prompt_signature, outputs);
                }
                outputs
            }
        })
    }

    async fn forward_alone(
        &self,
        module: &str,
        reasoning: bool,
        inputs: &Fields,
        params: &Params,
    ) -> Result<Fields> {
        let signature = self.signature.as_ref().ok_or_else(|| {
            Error::lm(format!(
                "{module} called outside a chain needs a signature: {module}::new(\"question -> answer\")"
            ))
        })?;
        let lm = self.lm.as_ref().ok_or_else(|| {
            Error::lm(format!(
                "{module} called outside a chain needs an LM: .lm(LmClient::new(config)?)"
            ))
        })?;
        self.run(
            self.adapters,
            module,
            reasoning,
            signature,
            lm,
            inputs,
            params,
            None,
            None,
        )
        .await
        .map(|(outputs, _)| outputs)
    }

    async fn forward_in_step(
        &self,
        module: &str,
        reasoning: bool,
        step: &StepContext<'_>,
        inputs: &Fields,
        params: &Params,
    ) -> Result<Fields> {
        let signature = self.signature.as_ref().unwrap_or(step.signature());
        let lm = match &self.lm {
            Some(lm) => Arc::clone(lm),
            None => step.context().lm_client()?,
        };
        let adapters = self.adapters.configured(step)?;
        let demos = run_demos(step.step());
        let (outputs, calls) = self
            .run(
                adapters,
                module,
                reasoning,
                signature,
                &lm,
                inputs,
                params,
                demos.as_deref(),
                step.events().map(|events| (step.step(), events)),
            )
            .await?;
        for call in calls {
            step.record_lm_call(call);
        }
        Ok(outputs)
    }
}

/// The call's settings from the step's bound parameters; a parameter the module does not take
/// is an error naming the ones it takes.
fn request_settings(module: &str, params: &Params) -> Result<LmRequest> {
    let mut request = LmRequest::default();
    for (name, value) in params.iter() {
        let wrong = |expected: &str| {
            Err(Error::InvalidOption {
                option: name.to_owned(),
                message: format!(
                    "{module} takes `{name}` as {expected}, not a {} value",
                    value.kind()
                ),
            })
        };
        match (name, value) {
            ("temperature", Value::Float(x)) => request.temperature = Some(*x),
            ("top_p", Value::Float(x)) => request.top_p = Some(*x),
            ("max_tokens", Value::Integer(i)) => request.max_tokens = Some(*i),
            ("n", Value::Integer(i)) => request.n = Some(*i),
            ("model", Value::String(m)) => request.model = Some(m.clone()),
            ("temperature" | "top_p", _) => return wrong("a float"),
            ("max_tokens" | "n", _) => return wrong("an integer"),
            ("model", _) => return wrong("a string"),
            _ => {
                let takes: Vec<String> =
                    LM_PARAMS.iter().map(|p| format!("`{}`", p.name)).collect();
                return Err(Error::InvalidOption {
                    option: name.to_owned(),
                    message: format!(
                        "native {module} takes no parameter `{name}`; it takes {}",
                        takes.join(", ")
                    ),
                });
            }
        }
    }
    Ok(request)
}

macro_rules! lm_module {
    ($(#[$doc:meta])* $name:ident, reasoning = $reasoning:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default)]
        pub struct $name(LmStep);

        impl $name {
            /// A module for `signature` (a DSPy string signature), to call on its own; in a
            /// chain, a default one takes the step's signature.
            pub fn new(signature: &str) -> Result<Self> {
                LmStep::new(signature).map(Self)
            }

            /// The instructions of the prompt (default: DSPy's "Given the fields `question`,
            /// produce the fields `answer`.").
            #[must_use]
            pub fn instructions(self, instructions: impl Into<String>) -> Self {
                self.0.learned.write().instructions = Some(instructions.into());
                self
            }

            /// Few-shot demos: each holds some or all of the signature's fields; they go in
            /// the prompt as user/assistant message pairs, as DSPy writes them.
            #[must_use]
            pub fn demos(self, demos: impl IntoIterator<Item = Fields>) -> Self {
                self.0.learned.write().demos = demos.into_iter().collect();
                self
            }

            /// The LM to call (default in a chain: the context's).
            #[must_use]
            pub fn lm(mut self, lm: Arc<LmClient>) -> Self {
                self.0.lm = Some(lm);
                self
            }

            /// The adapter that writes the prompt and reads the reply (default: DSPy's
            /// `ChatAdapter`; [`Adapter::Json`] for DSPy's `JSONAdapter`). The request carries
            /// no `response_format`, as DSPy's does for a model litellm does not know to
            /// support one; DSPy adds a structured-output schema for models it knows. In a
            /// program, the step's `with { adapter: "json" }` (`with(adapter = "json")` in the
            /// derive, `Step::with("adapter", "json")` in the builder) sets it too, and wins.
            #[must_use]
            pub fn adapter(mut self, adapter: Adapter) -> Self {
                self.0.adapters.adapter = adapter;
                self
            }

            /// Whether a `ChatAdapter` reply that does not parse is asked again with the JSON
            /// adapter, as DSPy's `ChatAdapter(use_json_adapter_fallback=...)` (default: on).
            /// In a program, the step's `with { json_fallback: false }` sets it too, and wins.
            #[must_use]
            pub fn json_fallback(mut self, on: bool) -> Self {
                self.0.adapters.json_fallback = on;
                self
            }
        }

        // Not offered as "other types implementing `Module`" when a user's type lacks it.
        #[diagnostic::do_not_recommend]
        impl Module for $name {
            async fn forward(&self, inputs: &Fields, params: &Params) -> Result<Fields> {
                self.0
                    .forward_alone(stringify!($name), $reasoning, inputs, params)
                    .await
            }

            async fn forward_in_step(
                &self,
                step: &StepContext<'_>,
                inputs: &Fields,
                params: &Params,
            ) -> Result<Fields> {
                self.0
                    .forward_in_step(stringify!($name), $reasoning, step, inputs, params)
                    .await
            }

            fn predictor(&self) -> Option<&dyn Predictor> {
                Some(self)
            }
        }

        impl Predictor for $name {
            fn module_kind(&self) -> &'static str {
                stringify!($name)
            }

            fn reasoning(&self) -> bool {
                $reasoning
            }

            fn own_signature(&self) -> Option<&Signature> {
                self.0.signature.as_ref()
            }

            fn predictor_state(&self) -> PredictorState {
                self.0.learned.read().clone()
            }

            fn set_predictor_state(&self, state: PredictorState) {
                *self.0.learned.write() = state;
            }
        }
    };
}

lm_module!(
    /// DSPy's `Predict` as a native step: one LM call with the prompt DSPy's `ChatAdapter`
    /// builds for the step's signature, its reply read per the declared output types.
    ///
    /// Bound `temperature`, `top_p`, `max_tokens`, `n` and `model` set the call; any other
    /// bound parameter is an error. In a chain the LM is the context's
    /// (`Context::builder().lm(config)`, the scripted LM by default) and the call is recorded
    /// in the run trace (settings and token usage).
    ///
    /// As in DSPy, a reply that does not parse is asked again with DSPy's `JSONAdapter`. A
    /// declared step picks its adapter with `with`: `answer: native Predict("question ->
    /// answer") with { adapter: "json" }` uses the `JSONAdapter` from the start, `with {
    /// json_fallback: false }` turns the fallback off (the keys and values of
    /// [`spec::native::CONFIG`](crate::spec::native::CONFIG), checked at compile time; [`Predict::adapter`] and
    /// [`Predict::json_fallback`] set them on a module value).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
    /// use std::sync::Arc;
    /// use dspex::lm::LmClient;
    /// use dspex::prelude::*;
    ///
    /// let lm = Arc::new(LmClient::new(LmConfig::scripted().answer([("answer", "4")]))?);
    /// let predict = Predict::new("question -> answer: int")?.lm(lm);
    /// let out = predict.forward(&Fields::from([("question", "2 + 2?")]), &Params::default()).await?;
    /// assert_eq!(out.get::<i64>("answer")?, 4);
    /// # Ok(()) }
    /// ```
    Predict,
    reasoning = false
);

lm_module!(
    /// DSPy's `ChainOfThought` as a native step: [`Predict`] with a `reasoning` output asked
    /// for before the signature's outputs. The reasoning is kept in the run trace (the step's
    /// outputs), and does not flow on to later steps.
    ChainOfThought,
    reasoning = true
);
