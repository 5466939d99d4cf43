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
//!
//! # Authentication
//!
//! Every call except `Ping` and `InitializeSession` carries the session's token in the
//! [`x-dspex-token`](TOKEN_METADATA) metadata entry. A missing or unknown token is
//! `UNAUTHENTICATED`; a valid token used for another session's id is `PERMISSION_DENIED`.
//! Tokens are 256 bits from the OS CSPRNG and compared in constant time.
//!
//! # Errors
//!
//! Every error status carries its kind in the [`x-dspex-error`](ERROR_METADATA) trailer, so a
//! client can tell a wrong type from a broken constraint:
//!
//! | kind | status | what |
//! |---|---|---|
//! | `not_found` | `NOT_FOUND` | no such variable |
//! | `version_not_found` | `NOT_FOUND` | a `Rollback` to a version the history no longer keeps |
//! | `already_exists` | `ALREADY_EXISTS` | the name is taken |
//! | `duplicate_write` | `ALREADY_EXISTS` | one variable twice in an atomic batch |
//! | `type` | `INVALID_ARGUMENT` | a value (or initial value) of the wrong type |
//! | `constraint` | `INVALID_ARGUMENT` | a value that breaks a constraint or is not finite |
//! | `spec` | `INVALID_ARGUMENT` | an invalid declaration (name, constraints) |
//! | `pattern` | `INVALID_ARGUMENT` | a malformed `ListVariables` glob |
//! | `invalid_request` | `INVALID_ARGUMENT` | a malformed request (missing value, unspecified type) |
//! | `limit` | `INVALID_ARGUMENT` / `RESOURCE_EXHAUSTED` | a request over a [`limits`] constant, or a full session or server |
//! | `conflict` | `ABORTED` | compare-and-set at a stale version (`x-dspex-expected-version`, `x-dspex-actual-version`) |
//! | `unauthenticated` | `UNAUTHENTICATED` | missing, invalid or expired token |
//! | `permission_denied` | `PERMISSION_DENIED` | the token of another session |
//! | `read_only` | `PERMISSION_DENIED` | a write to a read-only variable (only Rust may write it) |
//! | `session_owned` | `FAILED_PRECONDITION` | `CleanupSession` of a context's session |
//! | `unavailable` | `UNAVAILABLE` | the context's variables live in a shared session whose Redis cannot be reached |
//! | `internal` | `INTERNAL` | a bug |
//!
//! Writes over gRPC are recorded with [`Source::Python`](crate::Source::Python), so a variable
//! declared read-only refuses every one of them (`SetVariable`, `SetVariables` as a whole,
//! `Rollback`, `DeleteVariable`). `GetHistory` and `Rollback` reach a variable's history.

mod bridged;
pub(crate) mod convert;
pub mod limits;
pub mod proto;
mod runtime;
mod server;
mod store;

pub use bridged::{BridgedState, ENV_SESSION_ID, ENV_SESSION_TOKEN, ENV_STORE_ADDR, SessionInfo};
pub use runtime::{BridgeConfig, BridgeServer, Listen};

/// The metadata entry that carries a session's token on every call.
pub const TOKEN_METADATA: &str = "x-dspex-token";

/// The trailer that carries the kind of an error (`type`, `constraint`, `not_found`, ...).
pub const ERROR_METADATA: &str = "x-dspex-error";
