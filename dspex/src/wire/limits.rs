//! The limits of the bridge: what gRPC clients may send the session server, what the server
//! answers, and what a Python worker and its supervisor exchange. A hostile or buggy client
//! gets an error instead of the server's memory.
//!
//! Every limit is a named constant, and the constants the Python side needs too are exported
//! to `python/dspex_bridge/contract.json` (a test fails when that file is stale). A request
//! that breaks a limit is refused as a whole and changes nothing: `INVALID_ARGUMENT` for a
//! request that is too large, `RESOURCE_EXHAUSTED` for a session, server, variable or worker
//! that is full, both with the error kind `ERROR_KIND_LIMIT` and a message naming the field,
//! the size and the constant. (A message over [`MAX_REQUEST_BYTES`] is refused by tonic itself,
//! with `OUT_OF_RANGE`, before any of it is read.)
//!
//! Rust code in the process (a [`Context`](crate::Context) and its
//! [`BridgedState`](crate::bridge::BridgedState)) is trusted: only what arrives over gRPC is limited,
//! with one exception, the metadata of a variable ([`MAX_METADATA_ENTRIES_PER_VARIABLE`],
//! [`MAX_METADATA_BYTES_PER_VARIABLE`]), which every write merges into and which is therefore
//! bounded for Rust writes too.
//!
//! # Why everything stays readable
//!
//! A variable registered over gRPC fits in one request ([`MAX_REQUEST_BYTES`]); its value
//! never grows past [`MAX_STRING_BYTES`] (or [`MAX_EMBEDDING_DIMENSIONS`]) and its metadata past
//! [`MAX_METADATA_BYTES_PER_VARIABLE`], so one record always fits in a response
//! ([`MAX_RESPONSE_BYTES`]). `ListVariables` pages ([`MAX_LIST_PAGE_BYTES`], at least one record
//! per page), so a full session ([`MAX_VARIABLES_PER_SESSION`] records of the largest size) is
//! always listed in full; a `GetVariables` whose answer would not fit in a response is refused
//! with `RESOURCE_EXHAUSTED` (ask for fewer names). Status messages quote at most
//! [`MAX_ECHO_CHARS`] characters of any input and never exceed [`MAX_STATUS_MESSAGE_BYTES`],
//! far below the 16 KiB gRPC clients accept in headers by default.

use std::time::Duration;

pub use dspex_core::{MAX_ECHO_CHARS, MAX_ECHO_ITEMS, MAX_NAME_LEN};

/// Largest request the server decodes, in bytes (tonic refuses larger ones with
/// `OUT_OF_RANGE`, without an error kind, before any of it is stored).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Largest response the server encodes, in bytes. Clients must accept messages this large
/// (the Python package configures its channels so).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// Bytes of a status message: longer messages are cut (with a note saying so). Inputs quoted in
/// messages are cut much earlier, after [`MAX_ECHO_CHARS`] characters.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 2 * 1024;

/// Bytes of a session id in a request (real ids are 24 bytes long).
pub const MAX_SESSION_ID_BYTES: usize = 64;

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

/// Metadata entries one variable may hold. Writes merge their metadata into the variable's: a
/// write (or a registration) that would leave more entries is refused with `RESOURCE_EXHAUSTED`
/// ([`Error::Limit`](crate::Error::Limit) in Rust), whoever makes it.
pub const MAX_METADATA_ENTRIES_PER_VARIABLE: usize = 64;

/// Bytes (keys plus values) of the metadata one variable may hold; enforced like
/// [`MAX_METADATA_ENTRIES_PER_VARIABLE`].
pub const MAX_METADATA_BYTES_PER_VARIABLE: usize = 64 * 1024;

/// Bytes of a variable's description.
pub const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;

/// Choices in one `choices` constraint.
pub const MAX_CHOICES: usize = 1024;

/// Bytes of a regex (`pattern` constraint) or of a `ListVariables` glob.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// Records of a `ListVariables` page when the request asks for 0.
pub const DEFAULT_LIST_PAGE_SIZE: usize = 256;

/// Most records of one `ListVariables` page (larger `page_size`s are refused).
pub const MAX_LIST_PAGE_SIZE: usize = 1024;

/// Encoded bytes of the records of one `ListVariables` page: a page ends before the record
/// that would take it over (but always holds at least one record).
pub const MAX_LIST_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// Events waiting for one gRPC watch stream whose client does not read; past it (or past
/// [`MAX_WATCH_QUEUE_BYTES`]) events are dropped for that stream only and the client is told how
/// many it missed (`UPDATE_KIND_LAGGED`), like any [`Watcher`](crate::Watcher). Writers never
/// wait.
pub const WATCH_QUEUE_CAPACITY: usize = 1024;

/// Encoded bytes of the events waiting for one gRPC watch stream (see
/// [`WATCH_QUEUE_CAPACITY`]): an idle watcher holds at most this much, however large the
/// values written.
pub const MAX_WATCH_QUEUE_BYTES: usize = 4 * 1024 * 1024;

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

/// Largest message between a worker and its supervisor (`ModuleService`), each way.
pub const MAX_MODULE_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Largest encoded `WorkerConfig` a worker reads from its stdin.
pub const MAX_WORKER_CONFIG_BYTES: usize = 1024 * 1024;

/// The most writes a variable's history may be configured to keep (on every backend).
pub const MAX_HISTORY_LIMIT: usize = 1000;

/// Entries one `GetHistory` may ask for: the most a history keeps ([`MAX_HISTORY_LIMIT`]). A
/// history also holds at most `MAX_HISTORY_BYTES` (256 KiB), which bounds the response.
pub const MAX_HISTORY_ENTRIES_PER_REQUEST: usize = MAX_HISTORY_LIMIT;

/// Bytes of the JSON arguments of one `CallbackService.Call` (a tool call, a metric call).
pub const MAX_CALLBACK_ARGUMENT_BYTES: usize = 1024 * 1024;

/// Bytes of the JSON result of one callback: a larger result is answered as an error.
pub const MAX_CALLBACK_RESULT_BYTES: usize = 1024 * 1024;

/// How long a callback may run when its registration says nothing else (a tool's
/// `timeout_ms`, [`Callback::timeout`](crate::tools::Callback::timeout)).
pub const DEFAULT_CALLBACK_TIMEOUT: Duration =
    Duration::from_millis(dspex_core::dspy::DEFAULT_TOOL_TIMEOUT_MS);

/// The longest timeout a callback may have.
pub const MAX_CALLBACK_TIMEOUT: Duration =
    Duration::from_millis(dspex_core::dspy::MAX_TOOL_TIMEOUT_MS);

/// Callbacks one module call may make (each is kept in the run's trace); more are refused with
/// `RESOURCE_EXHAUSTED`.
pub const MAX_CALLBACKS_PER_CALL: usize = 256;
