//! Serving programs over HTTP (feature `serve`, axum): each program becomes a service with its
//! variables readable and writable live, with history and rollback.
//!
//! ```no_run
//! # async fn serve(qa: dspex::RunningProgram) -> dspex::Result<()> {
//! let server = dspex::serve::Server::builder()
//!     .program("qa", qa)             // any program: generated or built at run time
//!     .token("read-secret")          // bearer token for every route but /healthz
//!     .admin_token("admin-secret")   // needed to write variables
//!     .max_concurrent_runs(64)       // runs at once
//!     .max_queued_runs(64)           // waiting beyond that; more gets 429
//!     .build()?;
//! let handle = server.bind("127.0.0.1:0").await?;
//! println!("serving on {}", handle.local_addr());
//! handle.shutdown().await?; // new requests get 503, running ones finish, then it stops
//! # Ok(()) }
//! ```
//!
//! Routes (JSON unless said otherwise; `{name}` a program, `{var}` one of its variables):
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/programs/{name}/run` `{"inputs", "overrides"?}` (`?trace=true`) | `{"outputs", "trace"?}` |
//! | `POST /v1/programs/{name}/stream`, same body | `text/event-stream`: `step_started`, `chunk`, `step_finished`, `finished`, `error` |
//! | `GET /v1/programs` | `[{"name", "signature", "input_schema", "output_schema"}]` |
//! | `GET /openapi.json` | an OpenAPI 3.1 document of every route and program |
//! | `GET /v1/programs/{name}/variables` | `{var: {"value", "version", "type", "constraints", "readonly"}}` |
//! | `PUT /v1/programs/{name}/variables/{var}` `{"value", "expected_version"?}` (admin) | `{"version"}` |
//! | `GET /v1/programs/{name}/variables/{var}/history?limit=n` | `[{"version", "value", "source", "metadata", "at"}]`, newest first |
//! | `POST /v1/programs/{name}/variables/{var}/rollback` `{"version"}` (admin) | `{"version"}` |
//! | `GET /healthz` (no token), `GET /readyz`, `GET /metrics` (Prometheus text) | |
//!
//! Every error is `{"error": {"kind", "message", "field"?}}`: `invalid_json` 400,
//! `unauthorized` 401, `forbidden` 403, `not_found` 404, `conflict` 409, `too_large` 413
//! (431 for headers), `invalid_input` and `constraint` 422, `busy` 429 (with `Retry-After`),
//! `step_failed` 500, `shutting_down` 503, `timeout` 504. A refused request changes nothing.
//! A variable written over HTTP is written as Rust code writes it, with metadata
//! `written_by = "http"`. Every response carries an `x-request-id` (the caller's, if it sent a
//! usable one). With the `otel` feature, a run or stream request's W3C `traceparent` header
//! makes the run's span a child of the caller's span, in the caller's trace.
//!
//! - `builder`: the server's options and programs; `handle`: binding, the middleware
//!   (request ids, bounds, tokens, shutdown) and graceful shutdown.
//! - `run`: the run and stream routes and the admission of runs (concurrency, queue, timeout).
//! - `variables`: the variable routes; `schema`: program schemas and the OpenAPI document.
//! - `state`: what every route shares; `metrics`: the Prometheus registry; `error`: the JSON error object; `json`: the JSON
//!   forms of fields, traces and variables.

mod builder;
#[cfg(feature = "dashboard")]
pub mod dashboard;
mod error;
mod handle;
mod json;
mod metrics;
mod run;
mod schema;
mod state;
mod variables;

use std::time::Duration;

pub use builder::{Server, ServerBuilder};
pub use handle::ServerHandle;

/// The largest request body, in bytes; a larger one is refused with 413 (`too_large`).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The most bytes of request headers (names and values); more is refused with 431
/// (`too_large`).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The most history entries one history request returns (`?limit=`).
pub const MAX_HISTORY_PAGE: usize = 1000;

/// History entries returned when the request gives no `?limit=`.
pub const DEFAULT_HISTORY_PAGE: usize = 20;

/// Runs at once unless [`ServerBuilder::max_concurrent_runs`] says otherwise.
pub const DEFAULT_MAX_CONCURRENT_RUNS: usize = 64;

/// Runs waiting for a place unless [`ServerBuilder::max_queued_runs`] says otherwise; beyond,
/// 429.
pub const DEFAULT_MAX_QUEUED_RUNS: usize = 64;

/// How long one run (or stream), its wait for a place included, may take unless
/// [`ServerBuilder::request_timeout`] says otherwise; beyond, 504 (`timeout`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a shutdown waits for running requests unless [`ServerBuilder::drain_timeout`]
/// says otherwise.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The `Retry-After` of a 429, in seconds.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// The longest `x-request-id` taken from a request; a longer (or non-printable) one is replaced.
pub const MAX_REQUEST_ID_BYTES: usize = 128;
