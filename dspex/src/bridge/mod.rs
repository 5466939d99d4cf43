//! The Python bridge: the session store that holds a context's variables once they are shared
//! with Python, and the gRPC `SessionService` (tonic) that Python's `dspex_bridge` reaches it
//! through.
//!
//! ```text
//! Rust process                                         Python process
//!  Context --(bridged)--> BridgedState --in-process--> session table <--gRPC-- SessionContext
//!                                                          | watch fan-out (the context's hub)
//! ```
//!
//! - A [`BridgeServer`] runs on its own thread and runtime and binds `127.0.0.1:0` by default
//!   (or a Unix socket, [`BridgeConfig::unix`]). [`BridgeServer::global`] is the process-wide
//!   server that [`Context::ensure_bridged`](crate::Context::ensure_bridged) starts lazily.
//! - A session is one `LockedTable` (the storage and rules every backend shares) with an id
//!   and a random token. A context's session is created with the context's watch hub, so Rust
//!   watchers keep receiving across the switch and gRPC watch streams are fanned out from the
//!   same place. [`BridgedState`] is the context's handle on its session: Rust never takes the
//!   gRPC hop.
//! - Sessions created over gRPC (`InitializeSession`) expire after their TTL unless a
//!   `Heartbeat` (or any other call) renews them; a context's session lives exactly as long as
//!   the context.
//! - Everything the server accepts and answers is bounded by the constants of `limits`.
//! - The same server offers `CallbackService`: the session's Python code calls the Rust
//!   callables registered for the session ([`Callback`](crate::tools::Callback), the tools of python steps) by name,
//!   with JSON arguments (see [`tools`](crate::tools)).
//!
//! # Authentication
//!
//! Every call except `Ping` and `InitializeSession` carries the session's token in the
//! `x-dspex-token` metadata entry. A missing or unknown token is
//! `UNAUTHENTICATED`; a valid token used for another session's id is `PERMISSION_DENIED`.
//! Tokens are 256 bits from the OS CSPRNG and compared in constant time.
//!
//! # Errors
//!
//! Every error status carries its kind in the `x-dspex-error` trailer, as the
//! name of a `proto::ErrorKind` (`ERROR_KIND_CONSTRAINT`), so a client can tell a wrong type
//! from a broken constraint:
//!
//! | kind | status | what |
//! |---|---|---|
//! | `NOT_FOUND` | `NOT_FOUND` | no such variable |
//! | `VERSION_NOT_FOUND` | `NOT_FOUND` | a `Rollback` to a version the history no longer keeps |
//! | `ALREADY_EXISTS` | `ALREADY_EXISTS` | the name is taken |
//! | `DUPLICATE_WRITE` | `ALREADY_EXISTS` | one variable twice in an atomic batch |
//! | `TYPE` | `INVALID_ARGUMENT` | a value (or initial value) of the wrong type |
//! | `CONSTRAINT` | `INVALID_ARGUMENT` | a value that breaks a constraint or is not finite |
//! | `SPEC` | `INVALID_ARGUMENT` | an invalid declaration (name, constraints) |
//! | `PATTERN` | `INVALID_ARGUMENT` | a malformed `ListVariables` glob |
//! | `INVALID_REQUEST` | `INVALID_ARGUMENT` | a malformed request (missing value, unspecified type, bad page token) |
//! | `LIMIT` | `INVALID_ARGUMENT` / `RESOURCE_EXHAUSTED` | a request over a `limits` constant, or a full session, server or variable |
//! | `CONFLICT` | `ABORTED` | compare-and-set at a stale version (`EXPECTED_VERSION_METADATA`, `ACTUAL_VERSION_METADATA`) |
//! | `UNAUTHENTICATED` | `UNAUTHENTICATED` | missing, invalid or expired token |
//! | `PERMISSION_DENIED` | `PERMISSION_DENIED` | the token of another session |
//! | `READ_ONLY` | `PERMISSION_DENIED` | a write to a read-only variable (only Rust may write it) |
//! | `SESSION_OWNED` | `FAILED_PRECONDITION` | `CleanupSession` of a context's session |
//! | `UNAVAILABLE` | `UNAVAILABLE` | the context's variables live in a shared session whose Redis cannot be reached |
//! | `INTERNAL` | `INTERNAL` | a bug |
//!
//! A Python worker's `ModuleService` adds the kinds of its calls:
//!
//! | kind | status | what |
//! |---|---|---|
//! | `PYTHON` | `UNKNOWN` | the DSPy module raised (the message is `Type: message`) |
//! | `OUTPUT_TYPE` | `FAILED_PRECONDITION` | an output that does not convert to its declared type (`FIELD_METADATA`, `FIELD_TYPE_METADATA`, `FIELD_VALUE_METADATA`) |
//! | `INPUT_TYPE` | `INVALID_ARGUMENT` | an input that does not fit its declared type |
//! | `MODULE` | `INVALID_ARGUMENT` | a module that cannot be created (unknown class, bad signature or configuration) |
//!
//! Messages quote at most a short prefix of any input (`limits::MAX_ECHO_CHARS`) and are
//! never longer than `limits::MAX_STATUS_MESSAGE_BYTES`. Writes over gRPC are recorded with
//! [`Source::Python`](crate::Source::Python), so a variable declared read-only refuses every one
//! of them (`SetVariable`, `SetVariables` as a whole, `Rollback`, `DeleteVariable`).
//! `GetHistory` and `Rollback` reach a variable's history.

mod bridged;
mod callback;
pub(crate) mod dispatch;
mod runtime;
mod server;
mod store;
mod watch_queue;

pub use bridged::{BridgedState, SessionInfo};
pub use runtime::{BridgeConfig, BridgeServer, Listen};
