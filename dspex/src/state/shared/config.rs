//! What a shared session is (a Redis URL and a session name) and its settings, with their
//! named defaults and bounds, and the Redis keys a session lives in.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::state::{DEFAULT_HISTORY_LIMIT, check_history_limit};

/// How long a session lives after the last process that had it open stopped renewing it.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The shortest session TTL accepted.
pub const MIN_SESSION_TTL: Duration = Duration::from_secs(1);
/// The longest heartbeat interval: a process that has a session open renews its TTL at least
/// this often (and at least three times per TTL).
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);
/// How many heartbeat intervals a process stays a member of a session (notified of the other
/// processes' writes) after its last heartbeat: a process that stops (or loses Redis) for
/// longer is dropped, and catches up from the session's stream when it comes back.
pub const MEMBERSHIP_LAPSE_BEATS: u32 = 3;
/// How many changes a session's stream keeps (older ones are trimmed; a process that falls
/// further behind is told it missed changes).
pub const DEFAULT_STREAM_MAX_LEN: usize = 10_000;
/// The largest stream length a session may ask for.
pub const MAX_STREAM_MAX_LEN: usize = 1_000_000;
/// The longest session name, in bytes.
pub const MAX_SESSION_NAME_BYTES: usize = 128;

/// How long connecting to Redis may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one command may wait for Redis's reply (a write blocks its thread at most this
/// long on a Redis that stopped answering; a refused connection fails at once).
pub const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a process's reader waits for notices before it checks for a heartbeat or a
/// stop.
pub const MAX_READ_BLOCK: Duration = Duration::from_secs(5);
/// The first and the longest pause between two attempts to reconnect to Redis.
pub const RECONNECT_DELAY: (Duration, Duration) =
    (Duration::from_millis(20), Duration::from_millis(500));
/// How many stream entries one read fetches.
pub const READ_BATCH: usize = 1024;
/// How many times a write tries again after losing a compare-and-set race before it gives up
/// (only a session edited behind dspex's back can make a writer lose that often).
pub const MAX_WRITE_ATTEMPTS: usize = 10_000;

/// Where a shared session is: the Redis URL and the session name, with its TTL, heartbeat
/// interval and stream length.
///
/// ```
/// use std::time::Duration;
/// use dspex::state::SharedConfig;
///
/// let config = SharedConfig::new("redis://127.0.0.1:6390/0", "qa-prod").ttl(Duration::from_secs(600));
/// assert_eq!(config.session(), "qa-prod");
/// assert_eq!(config.heartbeat_interval(), Duration::from_secs(30));
/// assert_eq!(SharedConfig::new("redis://h/0", "s").ttl(Duration::from_secs(6)).heartbeat_interval(), Duration::from_secs(2));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SharedConfig {
    url: String,
    session: String,
    ttl: Duration,
    heartbeat: Option<Duration>,
    stream_max_len: usize,
    history_limit: usize,
}

impl fmt::Debug for SharedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedConfig")
            .field("url", &redact(&self.url))
            .field("session", &self.session)
            .field("ttl", &self.ttl)
            .field("heartbeat", &self.heartbeat_interval())
            .field("stream_max_len", &self.stream_max_len)
            .field("history_limit", &self.history_limit)
            .finish()
    }
}

impl SharedConfig {
    /// The session `session` on the Redis at `url` (`redis://host:port/db`, `rediss://` for
    /// TLS is not built in), with the default TTL, heartbeat and stream length.
    pub fn new(url: impl Into<String>, session: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            session: session.into(),
            ttl: DEFAULT_SESSION_TTL,
            heartbeat: None,
            stream_max_len: DEFAULT_STREAM_MAX_LEN,
            history_limit: DEFAULT_HISTORY_LIMIT,
        }
    }

    /// How many writes each variable's history keeps (default
    /// [`DEFAULT_HISTORY_LIMIT`], at most
    /// [`MAX_HISTORY_LIMIT`](crate::state::MAX_HISTORY_LIMIT)). A session keeps the limit of
    /// the process that created it; the others use the session's.
    #[must_use]
    pub fn history_limit(mut self, limit: usize) -> Self {
        self.history_limit = limit;
        self
    }

    /// The history limit this process proposes.
    pub fn history_len(&self) -> usize {
        self.history_limit
    }

    /// How long the session lives once no process renews it (at least [`MIN_SESSION_TTL`];
    /// default [`DEFAULT_SESSION_TTL`]). Every process that has the session open renews it on
    /// a heartbeat (a write does not: the heartbeat renews the keys it wrote).
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How often an open session is renewed (default: a third of the TTL, at most
    /// [`DEFAULT_HEARTBEAT_INTERVAL`]); must be shorter than the TTL.
    #[must_use]
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = Some(interval);
        self
    }

    /// How many changes the session's stream keeps (1 to [`MAX_STREAM_MAX_LEN`]; default
    /// [`DEFAULT_STREAM_MAX_LEN`]). A process cut off for longer than that many changes is told
    /// it missed changes and reloads the session.
    #[must_use]
    pub fn stream_max_len(mut self, len: usize) -> Self {
        self.stream_max_len = len;
        self
    }

    /// The Redis URL, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL without its password, for messages.
    pub fn shown_url(&self) -> String {
        redact(&self.url)
    }

    /// The session name.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The session TTL.
    pub fn session_ttl(&self) -> Duration {
        self.ttl
    }

    /// The heartbeat interval.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat
            .unwrap_or_else(|| (self.ttl / 3).min(DEFAULT_HEARTBEAT_INTERVAL))
    }

    /// The stream length.
    pub fn stream_len(&self) -> usize {
        self.stream_max_len
    }

    /// Checks the session name and the settings against their bounds.
    pub(crate) fn check(&self) -> Result<()> {
        check_session_name(&self.session)?;
        check_history_limit(self.history_limit)?;
        if self.ttl < MIN_SESSION_TTL {
            return Err(invalid(
                "session TTL",
                format!(
                    "{:?} is below the minimum of {MIN_SESSION_TTL:?} (MIN_SESSION_TTL)",
                    self.ttl
                ),
            ));
        }
        let heartbeat = self.heartbeat_interval();
        if heartbeat.is_zero() || heartbeat >= self.ttl {
            return Err(invalid(
                "heartbeat interval",
                format!(
                    "{heartbeat:?} must be above zero and shorter than the session TTL ({:?})",
                    self.ttl
                ),
            ));
        }
        if !(1..=MAX_STREAM_MAX_LEN).contains(&self.stream_max_len) {
            return Err(invalid(
                "stream length",
                format!(
                    "{} is outside 1..={MAX_STREAM_MAX_LEN} (MAX_STREAM_MAX_LEN)",
                    self.stream_max_len
                ),
            ));
        }
        Ok(())
    }
}

fn invalid(option: &str, message: String) -> Error {
    Error::InvalidOption {
        option: option.to_owned(),
        message,
    }
}

/// A session name: see [`check_key_name`].
fn check_session_name(name: &str) -> Result<()> {
    check_key_name(
        "session name",
        name,
        MAX_SESSION_NAME_BYTES,
        "MAX_SESSION_NAME_BYTES",
    )
}

/// A name that becomes part of Redis keys (a session's, a tuning study's): 1 to `max` bytes of
/// ASCII letters, digits, `_`, `-`, `.` and `:` (no braces, which delimit the Redis hash tag).
/// The error names `what` and the limit's constant, `limit_name`.
pub(crate) fn check_key_name(what: &str, name: &str, max: usize, limit_name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        Some("it is empty".to_owned())
    } else if name.len() > max {
        Some(format!(
            "{} bytes is over the limit of {max} bytes ({limit_name})",
            name.len()
        ))
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
            .map(|c| {
                format!("{c:?} is not allowed; use ASCII letters, digits, `_`, `-`, `.` and `:`")
            })
    };
    match problem {
        Some(problem) => Err(invalid(what, format!("{name:?}: {problem}"))),
        None => Ok(()),
    }
}

/// The URL without the password of its user-info part: `redis://user:***@host/0`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{scheme}://{}:***{}", &rest[..colon], &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The Redis keys of one session. They share the hash tag `{dspex:SESSION}`, so that a
/// session's keys live on one node of a Redis Cluster and one script can touch them all.
///
/// | key | type | holds |
/// |---|---|---|
/// | `{dspex:S}:vars` | hash | variable name -> its record (a `dspex.v1.Variable` message) |
/// | `{dspex:S}:heads` | hash | variable name -> `ID:VERSION`, what a write compares and sets |
/// | `{dspex:S}:meta` | hash | `seq` (changes so far), `ids` (ids handed out), `epoch` (which life of the session), `hlimit` (the history limit, set by the process that created the session), `m:MEMBER` (each open process's membership: the time it lapses, in Unix milliseconds), `members` (the members' ids, separated by spaces: what a write reads to notify them) |
/// | `{dspex:S}:history` | hash | `ID:VERSION` -> that write's history entry (a `dspex.v1.HistoryEntry`), for the last `hlimit` versions of each variable |
/// | `{dspex:S}:changes` | stream | one entry per change, id `0-SEQ`: `kind` (`registered`, `updated`, `deleted`), `record` (the record after the change; for a deletion, the last one), `old` (the value before an update, a `dspex.v1.Value`) |
/// | `{dspex:S}:to:MEMBER` | channel | the changes of each write, published to every member but the writer |
/// | `{dspex:S}:idle` | (never set) | the list a process's reader blocks on while it waits for notices (BLPOP with a timeout: its heartbeat) |
///
/// ```
/// use dspex::state::shared::SessionKeys;
///
/// let keys = SessionKeys::new("qa-prod");
/// assert_eq!(keys.vars, "{dspex:qa-prod}:vars");
/// assert_eq!(keys.changes, "{dspex:qa-prod}:changes");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// Records by name.
    pub vars: String,
    /// `ID:VERSION` by name.
    pub heads: String,
    /// Counters, the session's epoch and history limit.
    pub meta: String,
    /// History entries by `ID:VERSION`.
    pub history: String,
    /// The stream of changes.
    pub changes: String,
}

impl SessionKeys {
    /// The keys of session `session`.
    pub fn new(session: &str) -> Self {
        let tag = format!("{{dspex:{session}}}");
        Self {
            vars: format!("{tag}:vars"),
            heads: format!("{tag}:heads"),
            meta: format!("{tag}:meta"),
            history: format!("{tag}:history"),
            changes: format!("{tag}:changes"),
        }
    }

    /// The channel member `member`'s reader receives the other processes' changes on.
    pub(crate) fn member_channel(&self, member: &str) -> String {
        format!("{}to:{member}", self.tag())
    }

    /// The key a reader blocks on while it waits for notices (nothing ever sets it).
    pub(crate) fn idle(&self) -> String {
        format!("{}idle", self.tag())
    }

    /// `{dspex:S}:`.
    fn tag(&self) -> &str {
        self.meta.strip_suffix("meta").unwrap_or(&self.meta)
    }

    /// The keys in the order every script of the backend takes them.
    pub(crate) fn all(&self) -> [&str; 5] {
        [
            &self.vars,
            &self.heads,
            &self.meta,
            &self.changes,
            &self.history,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://:***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact("redis://app:hunter2@host/3"),
            "redis://app:***@host/3"
        );
        assert_eq!(redact("redis://host:6379/0"), "redis://host:6379/0");
        assert_eq!(redact("redis://user@host/0"), "redis://user@host/0");
        let config = SharedConfig::new("redis://u:secret@h/0", "s");
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn session_names_are_checked_at_and_over_the_limit() {
        let at_limit = "s".repeat(MAX_SESSION_NAME_BYTES);
        assert!(SharedConfig::new("redis://h/0", at_limit).check().is_ok());
        let over = "s".repeat(MAX_SESSION_NAME_BYTES + 1);
        let err = SharedConfig::new("redis://h/0", over).check().unwrap_err();
        assert!(err.to_string().contains("MAX_SESSION_NAME_BYTES"), "{err}");
        for bad in ["", "a}b", "a{b", "with space"] {
            let err = SharedConfig::new("redis://h/0", bad).check().unwrap_err();
            assert!(err.to_string().starts_with("session name: "), "{err}");
        }
        assert!(
            SharedConfig::new("redis://h/0", "qa-prod:v2.1_x")
                .check()
                .is_ok()
        );
    }

    #[test]
    fn settings_are_checked_at_and_over_their_bounds() {
        let base = || SharedConfig::new("redis://h/0", "s");
        assert!(base().ttl(MIN_SESSION_TTL).check().is_ok());
        let err = base()
            .ttl(MIN_SESSION_TTL - Duration::from_millis(1))
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("MIN_SESSION_TTL"), "{err}");
        let err = base()
            .ttl(Duration::from_secs(10))
            .heartbeat(Duration::from_secs(10))
            .check()
            .unwrap_err();
        assert!(err.to_string().starts_with("heartbeat interval: "), "{err}");
        assert!(base().stream_max_len(MAX_STREAM_MAX_LEN).check().is_ok());
        assert!(base().stream_max_len(1).check().is_ok());
        for bad in [0, MAX_STREAM_MAX_LEN + 1] {
            let err = base().stream_max_len(bad).check().unwrap_err();
            assert!(err.to_string().contains("MAX_STREAM_MAX_LEN"), "{err}");
        }
    }
}
