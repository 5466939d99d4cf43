//! LM calls from Rust: one [`LmConfig`] for both lanes, the [`LmClient`] for OpenAI-compatible
//! chat completions (and the offline scripted LM), DSPy's `ChatAdapter` prompts
//! ([`chat_messages`], [`parse_reply`]), and dspex's own native LM modules [`Predict`](crate::Predict) and
//! [`ChainOfThought`](crate::ChainOfThought).
//!
//! # Where a native step's LM comes from
//!
//! The context's: `Context::builder().lm(config)` sets the LM of python steps (the worker's)
//! and of native ones alike; a program started with `start()` gets the default, the offline
//! scripted LM, and one attached to a context built with an LM uses that one
//! (`Program::attach(&ctx)`). The context builds one [`LmClient`] on first use and shares it
//! among all its native steps, so the concurrency limit and the cache are the context's. A
//! `dspy.LM` model string ([`LmConfig::model`]) serves python steps only: a native LM step on
//! such a context fails with an error saying so. A program whose LM steps are all native never
//! needs the bridge (`REQUIRES_BRIDGE` is false) and runs in-process.
//!
//! # Recording and replaying
//!
//! [`LmConfig::record`] appends every LM request of both lanes and its reply to a file of JSON
//! lines; [`LmConfig::replay`] answers from such a file with no network, so that a program can
//! be regression-tested offline. A request is recorded as the program made it (the model and
//! settings the call bound, and the messages), not with what the configuration adds.
//!
//! # The HTTP client
//!
//! The client is `reqwest` (with rustls, no OpenSSL) and `serde`, rather than `async-openai`.
//! dspex needs one endpoint (`POST {base_url}/chat/completions`) with a body it builds itself
//! (DSPy's messages plus whatever settings the configuration passes through), and full control
//! of what happens around it: which statuses are retried, `Retry-After`, the backoff bounds,
//! the concurrency limit, the cache key (the exact body), a bounded reply size. `async-openai`
//! brings typed models of the whole OpenAI API, its own retry policy (`backoff`, which does not
//! let us bound or observe each attempt the same way) and stricter request types that refuse
//! extra settings some compatible servers take; `reqwest` + `serde` is lighter to build and
//! leaves these decisions to dspex.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
//! use dspex::prelude::*;
//!
//! dspex_program! {
//!     /// Answers with reasoning, without Python.
//!     pub program Thinker: "question -> answer" {
//!         variables {
//!             temperature: float = 0.2 { min: 0.0, max: 2.0 },
//!         }
//!         chain {
//!             answer: native ChainOfThought("question -> answer") { temperature },
//!         }
//!     }
//! }
//!
//! assert!(!<Thinker as Program>::REQUIRES_BRIDGE);
//! let ctx = Context::builder()
//!     .lm(LmConfig::scripted().rule("Rome", [("reasoning", "It is the capital."), ("answer", "Italy")]))
//!     .build()
//!     .await?;
//! let program = Thinker::attach(&ctx).await?;
//! let (out, trace) = program.run_traced(ThinkerInput { question: "Where is Rome?".into() }).await?;
//! assert_eq!(out.answer, "Italy");
//! let step = trace.step("answer").unwrap();
//! assert_eq!(step.outputs.get::<&str>("reasoning")?, "It is the capital.");
//! assert_eq!(step.lm_calls[0].temperature, Some(0.2));
//! # Ok(()) }
//! ```

mod chat;
#[cfg(feature = "lm")]
mod chunk_scan;
mod client;
pub(crate) mod config;
mod gate;
#[cfg(feature = "lm")]
mod http;
mod predictor;
mod pyfmt;
mod scripted;
mod stream;
mod tape;

pub use chat::{
    Adapter, ChatMessage, MAX_REPLY_EXCERPT_CHARS, REASONING_FIELD, adapter_messages,
    chat_messages, default_instructions, parse_json_reply, parse_reply, placeholder_description,
    with_reasoning,
};
pub use client::{LmClient, LmRequest, LmResponse, MAX_LM_CACHE_FILE_BYTES};
pub(crate) use config::LmConfig;
#[cfg(feature = "python")]
pub(crate) use config::LmKind;
pub use config::{
    Cache, DEFAULT_LM_BACKOFF, DEFAULT_LM_CONCURRENCY, DEFAULT_LM_RETRIES, DEFAULT_LM_TIMEOUT,
    MAX_LM_BACKOFF, MAX_LM_CACHE_ENTRIES, MAX_LM_CONCURRENCY, MAX_LM_RETRIES, MAX_LM_TIMEOUT,
    MAX_SCRIPTED_DELAY,
};
#[cfg(feature = "lm")]
pub use http::MAX_LM_REPLY_BYTES;
pub use predictor::{FieldText, PredictorState};
pub use stream::{FieldChunk, ReplyStream};
#[cfg(feature = "python")]
pub(crate) use tape::Tape;
pub use tape::{MAX_LM_TAPE_BYTES, MAX_LM_TAPE_ENTRIES, MAX_LM_TAPE_LINE_BYTES};
