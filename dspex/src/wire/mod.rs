//! The wire contract between the Rust process and its Python workers and clients: the
//! messages and services generated from `proto/dspex/v1/bridge.proto` ([`proto`]), their
//! conversions to and from Rust values ([`convert`]), the bounds of everything that crosses
//! ([`limits`]), and the names both sides spell the same way (metadata entries, environment
//! variables, the readiness line). The table of known DSPy modules, the other half of the
//! contract, is `dspex_core::dspy`. `python/dspex_bridge/contract.json` is generated from these
//! constants, and a test on each side fails when the two disagree.
//!
//! Not a stable API: the generated types follow prost and tonic, and the limits may change
//! between releases.

#[cfg(feature = "proto")]
pub mod convert;
pub mod limits;
#[cfg(feature = "proto")]
pub mod proto;

/// The metadata entry that carries a session's token on every call.
pub const TOKEN_METADATA: &str = "x-dspex-token";

/// The metadata entry that carries a call's W3C trace context (`00-<trace>-<span>-<flags>`)
/// to the worker, and from the worker on the callbacks it makes during that call.
pub const TRACEPARENT_METADATA: &str = "traceparent";

/// The trailer that carries the kind of an error: the name of a [`proto::ErrorKind`]
/// (`ERROR_KIND_CONSTRAINT`, ...).
pub const ERROR_METADATA: &str = "x-dspex-error";

/// The trailer of a `CONFLICT` error that carries the version the write expected.
pub const EXPECTED_VERSION_METADATA: &str = "x-dspex-expected-version";

/// The trailer of a `CONFLICT` error that carries the version the variable is at.
pub const ACTUAL_VERSION_METADATA: &str = "x-dspex-actual-version";

/// The trailer of a worker's `OUTPUT_TYPE` error that names the output field.
pub const FIELD_METADATA: &str = "x-dspex-field";

/// The trailer of a worker's `OUTPUT_TYPE` error that carries the field's declared type, as a
/// signature writes it (`float`, `Literal['a', 'b']`).
pub const FIELD_TYPE_METADATA: &str = "x-dspex-field-type";

/// The binary trailer of a worker's `OUTPUT_TYPE` error that carries (a prefix of) the value
/// the module returned for the field, as JSON, in UTF-8.
pub const FIELD_VALUE_METADATA: &str = "x-dspex-field-value-bin";

/// The binary trailer of a worker's `PYTHON` error that carries the exception's type name,
/// qualified by its module unless it is a built-in (`ValueError`, `my_pkg.errors.QuotaError`),
/// in UTF-8.
pub const EXCEPTION_TYPE_METADATA: &str = "x-dspex-exception-type-bin";

/// The environment variable that tells a Python process the store's address.
pub const ENV_STORE_ADDR: &str = "DSPEX_STORE_ADDR";
/// The environment variable that tells a Python process its session id.
pub const ENV_SESSION_ID: &str = "DSPEX_SESSION_ID";
/// The environment variable that tells a Python process its session token.
pub const ENV_SESSION_TOKEN: &str = "DSPEX_SESSION_TOKEN";

/// What the readiness line of a worker starts with; the encoded
/// [`WorkerReady`](crate::wire::proto::WorkerReady) message follows in lowercase hex.
pub const READY_PREFIX: &str = "DSPEX_WORKER_READY ";
