//! The limits the bridge server enforces on what gRPC clients send, so that a hostile or buggy
//! client gets an error instead of the server's memory.
//!
//! Every limit is a named constant. A request that breaks one is refused as a whole and changes
//! nothing: `INVALID_ARGUMENT` for a request that is too large, `RESOURCE_EXHAUSTED` for a
//! session or server that is full, both with the error kind `limit` in the `x-dspex-error`
//! trailer and a message naming the field, the size and the constant. (A message over
//! [`MAX_REQUEST_BYTES`] is refused by tonic itself, with `OUT_OF_RANGE`.)
//!
//! Rust code in the process (a [`Context`](crate::Context) and its
//! [`BridgedState`](super::BridgedState)) is trusted and not limited: only what arrives over
//! gRPC is. Worst case, one remote session holds [`MAX_VARIABLES_PER_SESSION`] variables of
//! [`MAX_STRING_BYTES`] each (64 MiB), and the server [`MAX_REMOTE_SESSIONS`] of them.

use std::time::Duration;

/// Largest request the server decodes, in bytes (tonic refuses larger ones with
/// `OUT_OF_RANGE`, without an error kind, before any of it is stored).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Largest response the server encodes, in bytes: a `ListVariables` of a full session fits.
/// Clients must accept messages this large (the Python package configures its channels so).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Names in one `GetVariables` or `WatchVariables` request.
pub const MAX_NAMES_PER_REQUEST: usize = 1024;

/// Writes in one atomic `SetVariables` batch.
pub const MAX_WRITES_PER_BATCH: usize = 1024;

/// Sessions created over gRPC (`InitializeSession`) alive at once. Sessions of Rust contexts
/// are not counted.
pub const MAX_REMOTE_SESSIONS: usize = 64;

/// Concurrent `WatchVariables` streams on one session.
pub const MAX_WATCHERS_PER_SESSION: usize = 32;

/// Variables a session may hold for a `RegisterVariable` over gRPC to be accepted (variables a
/// Rust context registers count, but are never refused).
pub const MAX_VARIABLES_PER_SESSION: usize = 1024;

/// Bytes of a string value (`string`, `choice` and `module` variables) sent over gRPC.
pub const MAX_STRING_BYTES: usize = 64 * 1024;

/// Components of an embedding value sent over gRPC.
pub const MAX_EMBEDDING_DIMENSIONS: usize = 16 * 1024;

/// Metadata entries in one request (a registration, a write, a session).
pub const MAX_METADATA_ENTRIES: usize = 64;

/// Bytes of one metadata key or value.
pub const MAX_METADATA_BYTES: usize = 1024;

/// Bytes of a variable's description.
pub const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;

/// Choices in one `choices` constraint.
pub const MAX_CHOICES: usize = 1024;

/// Bytes of a regex (`pattern` constraint) or of a `ListVariables` glob.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// Events waiting in one gRPC watch stream before it lags (the client is then told how many it
/// missed, like any [`Watcher`](crate::Watcher)).
pub const WATCH_QUEUE_CAPACITY: usize = 1024;

/// HTTP/2 streams (concurrent calls) per client connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Bytes of the HTTP/2 header list of one call (metadata included).
pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// Session TTL when `InitializeSession` asks for 0.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(300);

/// Longest TTL `InitializeSession` accepts.
pub const MAX_SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How often expired remote sessions are cleaned up. A session past its TTL is refused at once
/// even before the cleanup runs.
pub const REAP_INTERVAL: Duration = Duration::from_secs(1);

/// Random bytes of a session token (256 bits, sent as 64 hex digits).
pub const TOKEN_BYTES: usize = 32;

/// Entries one `GetHistory` may ask for: the most a history keeps
/// ([`MAX_HISTORY_LIMIT`](crate::state::MAX_HISTORY_LIMIT)). A history also holds at most
/// [`MAX_HISTORY_BYTES`](crate::state::MAX_HISTORY_BYTES), which bounds the response.
pub const MAX_HISTORY_ENTRIES_PER_REQUEST: usize = crate::state::MAX_HISTORY_LIMIT;
