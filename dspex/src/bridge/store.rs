//! The session store: the sessions of one bridge server, each a [`LockedTable`] of variables
//! plus the id and token that let a gRPC client reach it, and, for sessions created over gRPC,
//! a TTL renewed by heartbeats and enforced by a reaper.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use tokio::sync::watch;

use super::dispatch::CallbackDispatch;
use crate::error::{Error, Result};
use crate::state::table::LockedTable;
use crate::state::{BackendKind, Capabilities, WatchHub};
use crate::wire::limits::{MAX_REMOTE_SESSIONS, MAX_WATCHERS_PER_SESSION, TOKEN_BYTES};

/// The capabilities of a bridged backend: shared with Python, and still read in-process from
/// Rust (the Rust side never takes the gRPC hop).
pub(crate) const BRIDGED_CAPABILITIES: Capabilities = Capabilities {
    shared_with_python: true,
    session_ttl: false,
    in_process_reads: true,
};

/// A secret that authenticates requests for one session: [`TOKEN_BYTES`] random bytes from the
/// operating system's CSPRNG, as lowercase hex.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token(String);

impl Token {
    pub(crate) fn generate() -> Result<Self> {
        Ok(Token(random_hex::<TOKEN_BYTES>()?))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this token, in time that does not depend on where they differ.
    pub(crate) fn matches(&self, given: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), given)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Compares two byte strings without an early exit. Their lengths are not secret (every token
/// has the same length).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// `N` random bytes from the OS CSPRNG as lowercase hex.
fn random_hex<const N: usize>() -> Result<String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| {
        // `getrandom::Error` is not a `std::error::Error` without getrandom's `std` feature.
        Error::bridge(format!(
            "cannot draw random bytes from the operating system: {e}"
        ))
    })?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// How long a session lives.
#[derive(Debug)]
pub(crate) enum Lifetime {
    /// Owned by a Rust context's `BridgedState`: lives exactly as long as it, never expires.
    Owned,
    /// Created over gRPC: expires `ttl` after its last request unless a heartbeat (or any other
    /// authenticated request) renews it.
    Remote {
        ttl: Duration,
        expires_at: Mutex<Instant>,
    },
}

/// One session: its variables and how to reach them.
pub(crate) struct Session {
    pub(crate) id: String,
    token: Token,
    /// The variables, behind the same table every backend uses.
    pub(crate) table: LockedTable,
    pub(crate) lifetime: Lifetime,
    pub(crate) metadata: BTreeMap<String, String>,
    /// Open gRPC watch streams.
    watchers: Arc<AtomicUsize>,
    /// Serializes gRPC registrations so that the variable limit is exact.
    pub(crate) register_lock: Mutex<()>,
    /// Flips to `true` when the session leaves the store; watch streams end on it.
    closed: watch::Sender<bool>,
    /// Where the session's callbacks go: the callables of the context that owns the session
    /// (none for a session created over gRPC).
    dispatch: std::sync::OnceLock<Arc<dyn CallbackDispatch>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("lifetime", &self.lifetime)
            .field("metadata", &self.metadata)
            .field("variables", &self.table.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session's callback dispatcher, if its owner set one.
    pub(crate) fn dispatch(&self) -> Option<Arc<dyn CallbackDispatch>> {
        self.dispatch.get().cloned()
    }

    /// Sets where the session's callbacks go; a session's dispatcher is set once.
    pub(crate) fn set_dispatch(&self, dispatch: Arc<dyn CallbackDispatch>) {
        let _ = self.dispatch.set(dispatch);
    }

    pub(crate) fn token(&self) -> &Token {
        &self.token
    }

    /// Whether the session may still be used at `now`.
    pub(crate) fn is_live(&self, now: Instant) -> bool {
        match &self.lifetime {
            Lifetime::Owned => true,
            Lifetime::Remote { expires_at, .. } => now < *expires_at.lock(),
        }
    }

    /// Renews a remote session's TTL from `now`; returns the new expiry (none for owned
    /// sessions, which never expire).
    pub(crate) fn touch(&self, now: Instant) -> Option<Instant> {
        match &self.lifetime {
            Lifetime::Owned => None,
            Lifetime::Remote { ttl, expires_at } => {
                let at = now + *ttl;
                let mut expires_at = expires_at.lock();
                *expires_at = (*expires_at).max(at);
                Some(*expires_at)
            }
        }
    }

    pub(crate) fn is_owned(&self) -> bool {
        matches!(self.lifetime, Lifetime::Owned)
    }

    /// A receiver that sees `true` once the session has left the store.
    pub(crate) fn closed(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }

    /// Takes one of the session's [`MAX_WATCHERS_PER_SESSION`] watch slots; `None` if all are
    /// taken. The slot is released when the returned guard drops.
    pub(crate) fn watcher_slot(&self) -> Option<WatcherSlot> {
        self.watchers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_WATCHERS_PER_SESSION).then_some(n + 1)
            })
            .ok()
            .map(|_| WatcherSlot(Arc::clone(&self.watchers)))
    }
}

/// One taken watch slot of a session.
pub(crate) struct WatcherSlot(Arc<AtomicUsize>);

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a request was not let into a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// No token at all.
    MissingToken,
    /// A token that belongs to no live session.
    UnknownToken,
    /// A valid token of another session.
    OtherSession { session_id: String },
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::MissingToken => write!(
                f,
                "missing session token: send it in the `{}` metadata entry",
                crate::wire::TOKEN_METADATA
            ),
            AuthError::UnknownToken => f.write_str("invalid or expired session token"),
            AuthError::OtherSession { session_id } => write!(
                f,
                "the session token does not grant access to session `{session_id}`"
            ),
        }
    }
}

/// The sessions of one bridge server. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct SessionStore {
    inner: Arc<StoreInner>,
}

#[derive(Default)]
struct StoreInner {
    sessions: RwLock<FxHashMap<String, Arc<Session>>>,
    /// No new sessions once the server stopped.
    stopped: AtomicBool,
}

impl fmt::Debug for SessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStore")
            .field("sessions", &self.len())
            .finish()
    }
}

impl SessionStore {
    /// Creates a session owned by a Rust context, whose watchers are fanned out by `hub`.
    pub(crate) fn create_owned(&self, hub: Arc<WatchHub>) -> Result<Arc<Session>> {
        self.create(Lifetime::Owned, hub, BTreeMap::new())
    }

    /// Creates a session for a gRPC client, expiring `ttl` after its last request.
    pub(crate) fn create_remote(
        &self,
        ttl: Duration,
        metadata: BTreeMap<String, String>,
        now: Instant,
    ) -> Result<Arc<Session>> {
        let lifetime = Lifetime::Remote {
            ttl,
            expires_at: Mutex::new(now + ttl),
        };
        self.create(lifetime, Arc::default(), metadata)
    }

    fn create(
        &self,
        lifetime: Lifetime,
        hub: Arc<WatchHub>,
        metadata: BTreeMap<String, String>,
    ) -> Result<Arc<Session>> {
        let remote = matches!(lifetime, Lifetime::Remote { .. });
        let token = Token::generate()?;
        let mut sessions = self.inner.sessions.write();
        if self.inner.stopped.load(Ordering::Acquire) {
            return Err(Error::bridge(
                "the bridge server has stopped; it accepts no new sessions",
            ));
        }
        if remote {
            let now = Instant::now();
            let live_remote = sessions
                .values()
                .filter(|s| !s.is_owned() && s.is_live(now))
                .count();
            if live_remote >= MAX_REMOTE_SESSIONS {
                return Err(Error::bridge(format!(
                    "the bridge server already holds {live_remote} sessions created over gRPC, the limit (MAX_REMOTE_SESSIONS = {MAX_REMOTE_SESSIONS})"
                )));
            }
        }
        let id = loop {
            let id = format!("session-{}", random_hex::<8>()?);
            if !sessions.contains_key(&id) {
                break id;
            }
        };
        let (closed, _) = watch::channel(false);
        let session = Arc::new(Session {
            id: id.clone(),
            token,
            table: LockedTable::new(BackendKind::Bridged, BRIDGED_CAPABILITIES, hub),
            lifetime,
            metadata,
            watchers: Arc::default(),
            register_lock: Mutex::new(()),
            closed,
            dispatch: std::sync::OnceLock::new(),
        });
        sessions.insert(id, Arc::clone(&session));
        Ok(session)
    }

    /// The session `session_id` if `token` opens it (and renews its TTL); otherwise why not.
    /// Tokens are compared in constant time.
    pub(crate) fn authorize(
        &self,
        session_id: &str,
        token: Option<&[u8]>,
        now: Instant,
    ) -> Result<Arc<Session>, AuthError> {
        let token = token.ok_or(AuthError::MissingToken)?;
        let sessions = self.inner.sessions.read();
        if let Some(session) = sessions.get(session_id)
            && session.is_live(now)
            && session.token.matches(token)
        {
            session.touch(now);
            return Ok(Arc::clone(session));
        }
        // Not this session's token: a valid token of another session is a permission error,
        // anything else an authentication error.
        if sessions
            .values()
            .any(|s| s.is_live(now) && s.token.matches(token))
        {
            Err(AuthError::OtherSession {
                session_id: session_id.to_owned(),
            })
        } else {
            Err(AuthError::UnknownToken)
        }
    }

    /// Removes a session and ends its watch streams.
    pub(crate) fn remove(&self, session_id: &str) -> Option<Arc<Session>> {
        let session = self.inner.sessions.write().remove(session_id)?;
        session.closed.send_replace(true);
        Some(session)
    }

    /// Removes every remote session whose TTL ran out by `now`; returns how many.
    pub(crate) fn reap(&self, now: Instant) -> usize {
        let expired: Vec<String> = self
            .inner
            .sessions
            .read()
            .values()
            .filter(|s| !s.is_live(now))
            .map(|s| s.id.clone())
            .collect();
        let mut removed = 0;
        for id in expired {
            // Re-check under the write lock: a heartbeat may have renewed it meanwhile.
            let session = {
                let mut sessions = self.inner.sessions.write();
                if sessions.get(&id).is_some_and(|s| !s.is_live(now)) {
                    sessions.remove(&id)
                } else {
                    None
                }
            };
            if let Some(session) = session {
                session.closed.send_replace(true);
                removed += 1;
            }
        }
        removed
    }

    /// Refuses new sessions from now on.
    pub(crate) fn stop(&self) {
        let _sessions = self.inner.sessions.write();
        self.inner.stopped.store(true, Ordering::Release);
    }

    /// Whether the store refuses new sessions.
    pub(crate) fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Acquire)
    }

    /// Number of sessions (live or expired but not yet reaped).
    pub(crate) fn len(&self) -> usize {
        self.inner.sessions.read().len()
    }

    /// Whether a session with this id is in the store.
    pub(crate) fn contains(&self, session_id: &str) -> bool {
        self.inner.sessions.read().contains_key(session_id)
    }
}

/// The wall-clock time of a future `Instant`, for the wire.
pub(crate) fn wall_clock(at: Instant) -> SystemTime {
    let now_instant = Instant::now();
    let now = SystemTime::now();
    match at.checked_duration_since(now_instant) {
        Some(ahead) => now + ahead,
        None => now - now_instant.duration_since(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> SessionStore {
        SessionStore::default()
    }

    #[test]
    fn tokens_are_long_random_hex_and_compared_exactly() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_eq!(a.as_str().len(), TOKEN_BYTES * 2);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(a.matches(a.as_str().as_bytes()));
        assert!(!a.matches(b.as_str().as_bytes()));
        assert!(!a.matches(&a.as_str().as_bytes()[1..]));
        assert!(!a.matches(b""));
        assert_eq!(format!("{a:?}"), "Token(<redacted>)");
    }

    #[test]
    fn authorization_distinguishes_missing_unknown_and_other_session_tokens() {
        let store = store();
        let now = Instant::now();
        let a = store.create_owned(Arc::default()).unwrap();
        let b = store.create_owned(Arc::default()).unwrap();
        let token_a = a.token().as_str().as_bytes();
        assert_eq!(store.authorize(&a.id, Some(token_a), now).unwrap().id, a.id);
        assert_eq!(
            store.authorize(&a.id, None, now).unwrap_err(),
            AuthError::MissingToken
        );
        assert_eq!(
            store.authorize(&a.id, Some(b"nope"), now).unwrap_err(),
            AuthError::UnknownToken
        );
        assert_eq!(
            store.authorize(&b.id, Some(token_a), now).unwrap_err(),
            AuthError::OtherSession {
                session_id: b.id.clone()
            }
        );
        assert_eq!(
            store
                .authorize("session-unknown", Some(token_a), now)
                .unwrap_err(),
            AuthError::OtherSession {
                session_id: "session-unknown".to_owned()
            }
        );
        store.remove(&a.id).unwrap();
        assert_eq!(
            store.authorize(&a.id, Some(token_a), now).unwrap_err(),
            AuthError::UnknownToken
        );
    }

    #[test]
    fn remote_sessions_expire_unless_renewed() {
        let store = store();
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        let s = store.create_remote(ttl, BTreeMap::new(), t0).unwrap();
        let token = s.token().as_str().as_bytes().to_vec();
        let owned = store.create_owned(Arc::default()).unwrap();
        // A request at t0+8s renews the TTL until t0+18s.
        assert!(
            store
                .authorize(&s.id, Some(&token), t0 + Duration::from_secs(8))
                .is_ok()
        );
        assert_eq!(store.reap(t0 + Duration::from_secs(12)), 0);
        assert!(store.contains(&s.id));
        // Past the renewed expiry it is refused at once, even before the reaper runs.
        let late = t0 + Duration::from_secs(19);
        assert_eq!(
            store.authorize(&s.id, Some(&token), late).unwrap_err(),
            AuthError::UnknownToken
        );
        let mut closed = s.closed();
        assert_eq!(store.reap(late), 1);
        assert!(!store.contains(&s.id));
        assert!(*closed.borrow_and_update());
        // Owned sessions never expire.
        assert!(store.contains(&owned.id));
        assert!(owned.is_live(late + Duration::from_secs(1 << 30)));
    }

    #[test]
    fn remote_sessions_are_limited() {
        let store = store();
        let now = Instant::now();
        let sessions: Vec<_> = (0..MAX_REMOTE_SESSIONS)
            .map(|_| {
                store
                    .create_remote(Duration::from_secs(60), BTreeMap::new(), now)
                    .unwrap()
            })
            .collect();
        let err = store
            .create_remote(Duration::from_secs(60), BTreeMap::new(), now)
            .unwrap_err();
        assert!(err.to_string().contains("MAX_REMOTE_SESSIONS"), "{err}");
        // Sessions of Rust contexts are not counted.
        store.create_owned(Arc::default()).unwrap();
        store.remove(&sessions[0].id);
        store
            .create_remote(Duration::from_secs(60), BTreeMap::new(), now)
            .unwrap();
    }

    #[test]
    fn watcher_slots_are_limited_and_released() {
        let store = store();
        let s = store.create_owned(Arc::default()).unwrap();
        let slots: Vec<_> = (0..MAX_WATCHERS_PER_SESSION)
            .map(|_| s.watcher_slot().unwrap())
            .collect();
        assert!(s.watcher_slot().is_none());
        drop(slots);
        assert!(s.watcher_slot().is_some());
    }

    #[test]
    fn a_stopped_store_accepts_no_sessions() {
        let store = store();
        store.stop();
        assert!(matches!(
            store.create_owned(Arc::default()),
            Err(Error::Bridge { .. })
        ));
    }
}
