//! dspex's own LM modules, [`Predict`] and [`ChainOfThought`]: native steps that call the LM
//! from Rust, with DSPy's prompts.

use std::sync::Arc;

use dspex_core::dspy::LM_PARAMS;
use dspex_core::{Signature, Value};

use super::module::{Module, StepContext};
use crate::data::{Fields, LmCall, Params};
use crate::error::{Error, Result};
use crate::lm::{
    LmClient, LmRequest, chat_messages, default_instructions, parse_reply, with_reasoning,
};

/// The state both modules share: an optional signature, instructions, demos and LM of their
/// own (in a chain, the step's signature and the context's LM are used when unset).
#[derive(Debug, Clone, Default)]
struct LmStep {
    signature: Option<Signature>,
    instructions: Option<String>,
    demos: Vec<Fields>,
    lm: Option<Arc<LmClient>>,
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

    async fn run(
        &self,
        module: &str,
        reasoning: bool,
        signature: &Signature,
        lm: &LmClient,
        inputs: &Fields,
        params: &Params,
    ) -> Result<(Fields, LmCall)> {
        let mut request = request_settings(module, params)?;
        let instructions = self
            .instructions
            .clone()
            .unwrap_or_else(|| default_instructions(signature));
        let prompt_signature = if reasoning {
            with_reasoning(signature)
        } else {
            signature.clone()
        };
        request.messages = chat_messages(&prompt_signature, &instructions, &self.demos, inputs);
        let response = lm.complete(&request).await?;
        let outputs = parse_reply(&prompt_signature, &response.text)?;
        Ok((outputs, response.call))
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
        self.run(module, reasoning, signature, lm, inputs, params)
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
        let (outputs, call) = self
            .run(module, reasoning, signature, &lm, inputs, params)
            .await?;
        step.record_lm_call(call);
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
            pub fn instructions(mut self, instructions: impl Into<String>) -> Self {
                self.0.instructions = Some(instructions.into());
                self
            }

            /// Few-shot demos: each holds some or all of the signature's fields; they go in
            /// the prompt as user/assistant message pairs, as DSPy writes them.
            #[must_use]
            pub fn demos(mut self, demos: impl IntoIterator<Item = Fields>) -> Self {
                self.0.demos = demos.into_iter().collect();
                self
            }

            /// The LM to call (default in a chain: the context's).
            #[must_use]
            pub fn lm(mut self, lm: Arc<LmClient>) -> Self {
                self.0.lm = Some(lm);
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
