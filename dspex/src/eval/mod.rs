//! Measuring a program: examples and data sets ([`Example`], [`Dataset`], read from JSONL or
//! CSV against a [`Schema`]), metrics ([`Metric`]: Rust closures through [`metric_fn`], and
//! the built-ins [`ExactMatch`], [`Contains`], [`TokenF1`]), and evaluation ([`Evaluate`]),
//! whose [`EvalReport`] prints as a table and serializes to JSON.
//!
//! Evaluation runs any program, generated or built at run time ([`AnyProgram`]), with
//! optional per-run [`Overrides`]: that is how the tuner ([`crate::tune`]) tries values without
//! touching the context.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> dspex::Result<()> {
//! use dspex::prelude::*;
//! use dspex::eval::{Dataset, Evaluate, Example, TokenF1};
//!
//! #[derive(Default)]
//! struct Parrot;
//! impl Module for Parrot {
//!     async fn forward(&self, inputs: &Fields, _: &Params) -> Result<Fields> {
//!         Ok(Fields::from([("answer", inputs.get::<&str>("question")?)]))
//!     }
//! }
//!
//! dspex_program! {
//!     program Qa: "question -> answer" {
//!         variables {}
//!         chain { parrot: native Parrot("question -> answer") }
//!     }
//! }
//!
//! let data = Dataset::from_examples([
//!     Example::new().with_input("question", "Paris").with_expected("answer", "Paris"),
//!     Example::new().with_input("question", "in Paris").with_expected("answer", "Paris"),
//! ]);
//! let report = Evaluate::new(TokenF1::new("answer")).run(&Qa::start().await?, &data).await?;
//! assert!((report.mean - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-9);
//! let json = report.to_json();
//! assert!(json.contains("\"metric\": \"token_f1(answer)\""));
//! # Ok(()) }
//! ```
//!
//! [`AnyProgram`]: crate::AnyProgram
//! [`Overrides`]: crate::Overrides

mod dataset;
mod evaluate;
mod example;
mod metric;
mod report;

pub use dataset::{Dataset, Schema};
pub use evaluate::{DEFAULT_CONCURRENCY, Evaluate, MAX_CONCURRENCY};
pub(crate) use evaluate::{check_concurrency, progress_bar, run_examples, token_usage};
pub use example::Example;
pub use metric::{
    Contains, ExactMatch, FnMetric, IntoScore, Metric, Normalization, TokenF1, checked_score,
    metric_fn, score_in_range,
};
pub use report::{EvalReport, ExampleResult, TokenUsage};
pub(crate) use report::{mean_and_std_error, millis};
