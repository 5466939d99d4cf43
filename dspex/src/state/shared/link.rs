//! This process's link to one shared session: its connections to Redis, its mirror of the
//! session and the reader thread that keeps the mirror up to date (and the session alive).
//!
//! - The **writer connection** (one per process and session, behind a mutex) runs every
//!   script; a write holds it for one round trip, so the writes of one process are serialized
//!   like a mutex.
//! - The **reader thread** has its own connection (RESP3), subscribed to this process's
//!   channel: every other process's write publishes its changes there (never the process's
//!   own writes, so a write wakes no reader of its own process). It applies them to the mirror
//!   in order while it waits (BLPOP on a key nothing sets, which times out for the next
//!   heartbeat); one that comes early (a change before it is missing: this process's own write
//!   in flight, or a notice lost) waits for this process's write in flight, then catches up
//!   from the session's stream, which holds every change. It renews the session's TTL and the
//!   process's membership on a heartbeat, and reconnects after Redis went away, then checks
//!   whether the session moved on (it catches up) or started a new life (it reloads).
//! - A writer makes its own write visible before it returns (read-your-writes): it applies its
//!   changes to the mirror itself when the mirror is just behind them, and otherwise catches up
//!   from the stream first, so that changes are always applied, and watchers told, in the
//!   session's order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
use redis::{Client, Connection, ProtocolVersion, PushInfo, PushKind, RedisError};
use rustc_hash::FxHashMap;

use super::codec::{self, Entry};
use super::config::{
    CONNECT_TIMEOUT, IO_TIMEOUT, MAX_READ_BLOCK, MEMBERSHIP_LAPSE_BEATS, READ_BATCH,
    RECONNECT_DELAY, SessionKeys, SharedConfig,
};
use super::mirror::Mirror;
use super::scripts::{self, Failed, RawEntry};
use crate::error::{Error, Result};
use crate::state::{VarId, VarRecord, WatchHub};

/// Everything a process holds of one shared session.
pub(crate) struct Link {
    pub(crate) config: SharedConfig,
    /// The URL without its password.
    pub(crate) url: String,
    client: Client,
    /// The same server, in RESP3: the reader receives notices while it runs commands.
    reader_client: Client,
    pub(crate) keys: SessionKeys,
    /// The epoch this process proposes if it creates the session.
    epoch_candidate: String,
    /// This process's member id in the session (random): names its notices channel.
    member: String,
    /// Notices (other processes' writes) the reader received.
    notices: AtomicU64,
    pub(crate) hub: Arc<WatchHub>,
    pub(crate) mirror: RwLock<Mirror>,
    /// The writer connection, and the reader generation it was opened in.
    writer: Mutex<Option<(Connection, u64)>>,
    /// Bumped each time the reader loses Redis, and when it reconnects after that: a writer
    /// connection opened before is likely dead (Redis restarted), so it is replaced before use
    /// rather than fail a write.
    generation: AtomicU64,
    /// Ids of variables that moved into the session from this process's previous backend,
    /// mapped to their ids in the session, so that typed handles taken before keep working.
    pub(crate) aliases: RwLock<FxHashMap<VarId, VarId>>,
    /// Whether the last contact of the reader with Redis worked.
    connected: AtomicBool,
    stop: AtomicBool,
    /// `CLIENT ID` of the reader's connection while it has one (0 otherwise).
    reader_id: AtomicI64,
    wake: (Mutex<()>, Condvar),
}

/// The writer connection, held for one write.
pub(crate) struct Writer<'a> {
    guard: MutexGuard<'a, Option<(Connection, u64)>>,
}

impl Writer<'_> {
    pub(crate) fn conn(&mut self) -> &mut Connection {
        &mut self
            .guard
            .as_mut()
            .unwrap_or_else(|| unreachable!("a writer always holds a connection"))
            .0
    }

    /// Drops the connection after a failed round trip: it may be dead, or hold a reply
    /// nobody will read. The next command connects again.
    pub(crate) fn drop_connection(&mut self) {
        *self.guard = None;
    }
}

impl Link {
    /// Connects, loads the session and starts the reader thread.
    pub(crate) fn open(
        config: SharedConfig,
        hub: Arc<WatchHub>,
    ) -> Result<(Arc<Self>, JoinHandle<()>)> {
        config.check()?;
        let url = config.shown_url();
        let client = Client::open(config.url())
            .map_err(|e| Error::shared_with(format!("invalid Redis URL `{url}`"), e))?;
        let info = client.get_connection_info().clone();
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let reader_client = Client::open(info.set_redis_settings(resp3))
            .map_err(|e| Error::shared_with(format!("invalid Redis URL `{url}`"), e))?;
        let keys = SessionKeys::new(config.session());
        let epoch_candidate = random_id()?;
        let member = random_id()?;
        let link = Self {
            url,
            client,
            reader_client,
            keys,
            epoch_candidate,
            member,
            notices: AtomicU64::new(0),
            mirror: RwLock::new(Mirror::loaded(
                Arc::clone(&hub),
                0,
                String::new(),
                Vec::new(),
            )),
            hub,
            writer: Mutex::new(None),
            generation: AtomicU64::new(0),
            aliases: RwLock::default(),
            connected: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            reader_id: AtomicI64::new(0),
            wake: (Mutex::new(()), Condvar::new()),
            config,
        };
        let mut conn = link.connect(IO_TIMEOUT)?;
        check_version(&mut conn, &link.url)?;
        {
            let mut mirror = link.mirror.write();
            let (seq, epoch, records) = link.snapshot(&mut conn)?;
            *mirror = Mirror::loaded(Arc::clone(&link.hub), seq, epoch, records);
        }
        *link.writer.lock() = Some((conn, 0));
        link.connected.store(true, Ordering::Release);
        let link = Arc::new(link);
        let reader = {
            let link = Arc::clone(&link);
            std::thread::Builder::new()
                .name(format!("dspex-shared-{}", link.config.session()))
                .spawn(move || link.read_loop())
                .map_err(|e| Error::shared_with("cannot start the shared state's reader", e))?
        };
        Ok((link, reader))
    }

    pub(crate) fn session(&self) -> scripts::Session<'_> {
        scripts::Session {
            keys: &self.keys,
            ttl_ms: u64::try_from(self.config.session_ttl().as_millis()).unwrap_or(u64::MAX),
            epoch_candidate: &self.epoch_candidate,
            stream_max_len: self.config.stream_len(),
            history_limit: self.config.history_len(),
            member: &self.member,
            member_lapse_ms: u64::try_from(
                (self.config.heartbeat_interval() * MEMBERSHIP_LAPSE_BEATS).as_millis(),
            )
            .unwrap_or(u64::MAX),
        }
    }

    /// How many notices of other processes' writes this process's reader received.
    pub(crate) fn notices(&self) -> u64 {
        self.notices.load(Ordering::Acquire)
    }

    /// Whether the reader's last contact with Redis worked.
    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// A new connection, with `read_timeout` for replies.
    fn connect(&self, read_timeout: Duration) -> Result<Connection> {
        let conn = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .and_then(|c| {
                c.set_read_timeout(Some(read_timeout))?;
                c.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(c)
            })
            .map_err(|e| Error::shared_with(format!("cannot reach Redis at {}", self.url), e))?;
        Ok(conn)
    }

    /// The writer connection, connected: a connection opened before the reader last lost or
    /// found Redis again is replaced first (Redis may have closed it), and a missing one is
    /// opened, so that the first write after Redis came back works.
    pub(crate) fn writer(&self) -> Result<Writer<'_>> {
        let mut guard = self.writer.lock();
        let generation = self.generation.load(Ordering::Acquire);
        if guard.as_ref().is_some_and(|(_, g)| *g < generation) {
            *guard = None;
        }
        if guard.is_none() {
            *guard = Some((self.connect(IO_TIMEOUT)?, generation));
        }
        Ok(Writer { guard })
    }

    /// The error of a failed command that changes nothing visible (a history read, ids handed
    /// out): the connection is dropped (the next call reconnects).
    pub(crate) fn failed(&self, writer: &mut Writer<'_>, what: &str, e: RedisError) -> Error {
        writer.drop_connection();
        let lost = e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_timeout();
        if lost {
            Error::shared_with(format!("lost Redis at {} while {what}", self.url), e)
        } else {
            Error::shared_with(format!("Redis at {} refused {what}", self.url), e)
        }
    }

    /// The error of a write whose script failed, saying whether it may have been applied; the
    /// connection is dropped (the next write reconnects).
    pub(crate) fn write_failed(&self, writer: &mut Writer<'_>, failed: Failed) -> Error {
        writer.drop_connection();
        let (url, session) = (&self.url, self.config.session());
        match failed {
            Failed::NotSent(e) => Error::shared_with(
                format!(
                    "lost Redis at {url} before a write to session `{session}` was sent; the write was not applied"
                ),
                e,
            ),
            Failed::Refused(e) => Error::shared_with(
                format!(
                    "Redis at {url} refused a write to session `{session}`; the write was not applied"
                ),
                e,
            ),
            Failed::NoReply(e) => Error::outcome_unknown(
                format!(
                    "no reply from Redis at {url} to a write to session `{session}`: the write may have been applied"
                ),
                e,
            ),
        }
    }

    /// `e`, a failed round trip of a write before its script was sent (or after Redis
    /// refused it), saying that the write was not applied; the connection is dropped.
    pub(crate) fn failed_before_write(&self, writer: &mut Writer<'_>, e: Error) -> Error {
        writer.drop_connection();
        self.not_applied(e)
    }

    /// `e`, a failure before a write's script was sent, saying that the write was not
    /// applied.
    pub(crate) fn not_applied(&self, e: Error) -> Error {
        match e {
            Error::Shared { message, source } => Error::Shared {
                message: format!("{message}; the write was not applied"),
                source,
            },
            other => other,
        }
    }

    /// The session's sequence number, epoch and records, decoded.
    fn snapshot(&self, conn: &mut Connection) -> Result<(u64, String, Vec<VarRecord>)> {
        let snap = scripts::snapshot(conn, &self.session()).map_err(|e| {
            Error::shared_with(
                format!(
                    "cannot read session `{}` from Redis at {}",
                    self.config.session(),
                    self.url
                ),
                e,
            )
        })?;
        let records = snap
            .records
            .iter()
            .map(|bytes| codec::decode_record(bytes))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.corrupt(&e))?;
        Ok((snap.seq, snap.epoch, records))
    }

    fn corrupt(&self, problem: &str) -> Error {
        Error::shared(format!(
            "session `{}` at {} holds data dspex cannot read: {problem}",
            self.config.session(),
            self.url
        ))
    }

    /// Replaces the mirror with the session as it is now. Holds the mirror's write lock for
    /// the round trip, so that nothing is applied in between (reloads are rare: a gap, a new
    /// life of the session).
    pub(crate) fn reload(&self, conn: &mut Connection) -> Result<()> {
        let mut mirror = self.mirror.write();
        let (seq, epoch, records) = self.snapshot(conn)?;
        let missed = mirror.reload(&self.hub, seq, epoch, records);
        if missed > 0 {
            tracing::warn!(
                session = self.config.session(),
                missed,
                "shared state: reloaded the session; its watchers were told they missed changes"
            );
        }
        Ok(())
    }

    /// Applies entries read from the stream; reloads on a gap or an entry that does not
    /// decode. Entries the mirror holds already (this process's own writes, which the writer
    /// applied itself) are skipped before they are decoded: the reader does no work for them.
    fn apply_raw(&self, conn: &mut Connection, raw: Vec<RawEntry>) -> Result<()> {
        let applied = self.mirror.read().applied;
        let entries: std::result::Result<Vec<Entry>, String> = raw
            .iter()
            .filter(|(id, _)| codec::change_seq(id).is_none_or(|seq| seq > applied))
            .map(|(id, fields)| codec::decode_change(id, fields))
            .collect();
        match entries {
            Ok(entries) if entries.is_empty() => Ok(()),
            Ok(entries) => {
                let gap = self.mirror.write().apply(&self.hub, entries);
                match gap {
                    Ok(()) => Ok(()),
                    Err(_) => self.reload(conn),
                }
            }
            Err(problem) => {
                tracing::warn!(session = self.config.session(), %problem, "shared state: a change does not decode; reloading the session");
                self.reload(conn)
            }
        }
    }

    /// Brings the mirror up to the end of the stream.
    pub(crate) fn catch_up(&self, conn: &mut Connection) -> Result<()> {
        loop {
            let after = self.mirror.read().applied;
            let raw = scripts::changes_after(conn, &self.keys, after, READ_BATCH)
                .map_err(|e| self.read_error(e))?;
            let full = raw.len() == READ_BATCH;
            self.apply_raw(conn, raw)?;
            if !full {
                return Ok(());
            }
        }
    }

    fn read_error(&self, e: RedisError) -> Error {
        Error::shared_with(
            format!(
                "cannot read the changes of session `{}` from Redis at {}",
                self.config.session(),
                self.url
            ),
            e,
        )
    }

    /// Makes the mirror reflect the session at least up to change `seq` of life `epoch`.
    pub(crate) fn sync_to(&self, conn: &mut Connection, seq: u64, epoch: &str) -> Result<()> {
        let (applied, same_life) = {
            let m = self.mirror.read();
            (m.applied, m.epoch == epoch)
        };
        if !same_life {
            self.reload(conn)
        } else if applied < seq {
            self.catch_up(conn)
        } else {
            Ok(())
        }
    }

    /// Applies this process's own changes, numbered from `first_seq`, once a script accepted
    /// them: directly when the mirror is just behind them, else after catching up from the
    /// stream (which holds them), so that every change is applied in order.
    pub(crate) fn applied_own(
        &self,
        conn: &mut Connection,
        first_seq: u64,
        epoch: &str,
        entries: Vec<Entry>,
    ) -> Result<()> {
        let entries: Vec<Entry> = entries
            .into_iter()
            .zip(first_seq..)
            .map(|(mut e, seq)| {
                e.seq = seq;
                e
            })
            .collect();
        let last = entries.last().map_or(first_seq, |e| e.seq);
        let behind = {
            let mut m = self.mirror.write();
            m.epoch != epoch || m.apply(&self.hub, entries).is_err()
        };
        if behind {
            self.sync_to(conn, last, epoch)?;
        }
        Ok(())
    }

    /// Stops the reader thread: wakes it from a pause, and from its wait on the stream.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        {
            let _guard = self.wake.0.lock();
            self.wake.1.notify_all();
        }
        let id = self.reader_id.load(Ordering::Acquire);
        if id != 0 && self.is_connected() {
            let mut writer = self.writer.lock();
            // The writer's connection may have been cut since its last use: then one new one.
            for _ in 0..2 {
                if writer.is_none() {
                    *writer = self.connect(IO_TIMEOUT).ok().map(|c| (c, 0));
                }
                let Some((conn, _)) = writer.as_mut() else {
                    break;
                };
                // No more notices for this process; then wake its reader.
                let left = scripts::leave(conn, &self.session());
                let woken: redis::RedisResult<i64> =
                    redis::cmd("CLIENT").arg("UNBLOCK").arg(id).query(conn);
                if left.is_ok() && woken.is_ok() {
                    break;
                }
                *writer = None;
            }
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Sleeps `d`, or less if the link is stopped.
    fn pause(&self, d: Duration) {
        let mut guard = self.wake.0.lock();
        if !self.stopped() {
            self.wake.1.wait_for(&mut guard, d);
        }
    }

    /// The reader thread: applies the notices of other processes' writes, renews the TTL and
    /// the membership, reconnects.
    fn read_loop(&self) {
        let (pushes, notices) = std::sync::mpsc::channel();
        let heartbeat = self.config.heartbeat_interval();
        let mut conn: Option<Connection> = None;
        let mut delay = RECONNECT_DELAY.0;
        let mut next_beat = Instant::now() + heartbeat;
        // Whether Redis was lost since the last connection (the first one follows `open`).
        let mut lost = false;
        while !self.stopped() {
            let Some(c) = conn.as_mut() else {
                match self.connect_reader(&pushes) {
                    Ok(c) => {
                        if lost {
                            self.generation.fetch_add(1, Ordering::AcqRel);
                            lost = false;
                        }
                        conn = Some(c);
                        delay = RECONNECT_DELAY.0;
                        // Check the session at once: it may have moved on, or started anew.
                        next_beat = Instant::now();
                    }
                    Err(e) => {
                        lost = true;
                        if self.connected.swap(false, Ordering::AcqRel) {
                            tracing::warn!(error = %e.report(), "shared state: lost Redis; reads serve the last state seen, writes fail until it is back");
                        }
                        self.pause(delay);
                        delay = (delay * 2).min(RECONNECT_DELAY.1);
                    }
                }
                continue;
            };
            let now = Instant::now();
            if now >= next_beat {
                match self.beat(c) {
                    Ok(()) => {
                        self.take_notices(&notices);
                        next_beat = now + heartbeat;
                        if !self.connected.swap(true, Ordering::AcqRel) {
                            tracing::info!(
                                session = self.config.session(),
                                "shared state: Redis is back"
                            );
                        }
                    }
                    Err(e) => {
                        lost = true;
                        tracing::debug!(error = %e.report(), "shared state: heartbeat failed");
                        self.lose_reader();
                        conn = None;
                    }
                }
                continue;
            }
            let block = next_beat
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), MAX_READ_BLOCK);
            if let Err(e) = self.wait(c, &notices, block) {
                lost = true;
                if !self.stopped() {
                    tracing::debug!(error = %e.report(), "shared state: waiting for notices failed");
                    self.lose_reader();
                }
                self.reader_id.store(0, Ordering::Release);
                conn = None;
            }
        }
    }

    /// Waits up to `block` (BLPOP on a key nothing sets, so that a stop can end it early),
    /// applying the notices that arrive meanwhile.
    fn wait(
        &self,
        conn: &mut Connection,
        notices: &Receiver<PushInfo>,
        block: Duration,
    ) -> Result<()> {
        let lost = |e: RedisError| self.read_error(e);
        let call = redis::cmd("BLPOP")
            .arg(self.keys.idle())
            .arg(format!("{:.3}", block.as_secs_f64()))
            .get_packed_command();
        conn.send_packed_command(&call).map_err(lost)?;
        loop {
            // Notices are handed over by the connection's push sender as they are read.
            let reply = conn.recv_response().map_err(lost)?;
            self.take_notices(notices);
            if !matches!(reply, redis::Value::Push { .. }) {
                reply.extract_error().map_err(lost)?;
                return Ok(());
            }
        }
    }

    /// Applies the notices received so far, in order. One that comes early (a change before it
    /// is missing) waits for this process's write in flight (which applies its own changes),
    /// then catches up from the stream if a change is still missing.
    fn take_notices(&self, notices: &Receiver<PushInfo>) {
        while let Ok(push) = notices.try_recv() {
            if push.kind != PushKind::Message {
                continue;
            }
            let Some(redis::Value::BulkString(payload)) = push.data.get(1) else {
                continue;
            };
            self.notices.fetch_add(1, Ordering::AcqRel);
            let settled = match codec::decode_notice(payload) {
                Ok((epoch, entries)) => self.take_notice(epoch, entries),
                Err(problem) => {
                    tracing::warn!(session = self.config.session(), %problem, "shared state: a notice does not decode; catching up from the stream");
                    let epoch = self.mirror.read().epoch.clone();
                    self.settle(&epoch, Vec::new(), u64::MAX)
                }
            };
            if let Err(e) = settled {
                // The next notice, or the next heartbeat, catches up.
                tracing::warn!(error = %e.report(), "shared state: cannot catch up with the session's changes");
            }
        }
    }

    fn take_notice(&self, epoch: String, entries: Vec<Entry>) -> Result<()> {
        let last = entries.last().map_or(0, |e| e.seq);
        let early = {
            let mut m = self.mirror.write();
            if m.epoch == epoch && entries.first().is_none_or(|e| e.seq <= m.applied + 1) {
                // A notice's changes are consecutive: in order at its start, in order all along.
                let _ = m.apply(&self.hub, entries);
                None
            } else {
                Some(entries)
            }
        };
        match early {
            Some(entries) => self.settle(&epoch, entries, last),
            None => Ok(()),
        }
    }

    /// A notice of life `epoch` up to change `last` came early: once this process's write in
    /// flight is done, applies `entries` if they are next, else catches up from the stream (or
    /// reloads, for another life), on the writer's connection (the reader's is waiting).
    fn settle(&self, epoch: &str, entries: Vec<Entry>, last: u64) -> Result<()> {
        let mut writer = self.writer()?;
        let (settled, same_life) = {
            let mut m = self.mirror.write();
            let same_life = m.epoch == epoch;
            if same_life {
                let _ = m.apply(&self.hub, entries);
            }
            (same_life && m.applied >= last, same_life)
        };
        if settled {
            return Ok(());
        }
        let synced = if same_life {
            self.catch_up(writer.conn())
        } else {
            // This notice or the mirror is of another life: the session says which.
            self.reload(writer.conn())
        };
        synced.inspect_err(|_| writer.drop_connection())
    }

    /// The reader lost its connection: Redis is likely gone (or restarted), and so is the
    /// writer's connection, which is replaced before its next use rather than fail a write.
    fn lose_reader(&self) {
        self.connected.store(false, Ordering::Release);
        self.reader_id.store(0, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The reader's connection (RESP3), its pushes handed to `pushes`, subscribed to this
    /// process's channel (the heartbeat that follows makes it a member and catches up).
    fn connect_reader(&self, pushes: &Sender<PushInfo>) -> Result<Connection> {
        let unreachable = |e| Error::shared_with(format!("cannot reach Redis at {}", self.url), e);
        let mut conn = self
            .reader_client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .and_then(|c| {
                c.set_read_timeout(Some(MAX_READ_BLOCK + IO_TIMEOUT))?;
                c.set_write_timeout(Some(IO_TIMEOUT))?;
                Ok(c)
            })
            .map_err(unreachable)?;
        conn.set_push_sender(pushes.clone());
        let id: i64 = redis::cmd("CLIENT")
            .arg("ID")
            .query(&mut conn)
            .map_err(unreachable)?;
        conn.subscribe_resp3(self.keys.member_channel(&self.member))
            .map_err(unreachable)?;
        self.reader_id.store(id, Ordering::Release);
        Ok(conn)
    }

    /// Renews the TTL and this process's membership (from then on, every write of another
    /// process notifies it), and reloads or catches up if the session started a new life or
    /// moved on while this process was not following it.
    fn beat(&self, conn: &mut Connection) -> Result<()> {
        // What the mirror held BEFORE asking: a write of this process applied while the touch
        // is in flight must not look like the session going back (a spurious reload).
        let (applied, mirror_epoch) = {
            let m = self.mirror.read();
            (m.applied, m.epoch.clone())
        };
        let (seq, epoch) = scripts::touch(conn, &self.session()).map_err(|e| {
            Error::shared_with(format!("cannot renew the session at {}", self.url), e)
        })?;
        let same_life = mirror_epoch == epoch;
        if !same_life || seq < applied {
            self.reload(conn)
        } else if seq > applied {
            self.catch_up(conn)
        } else {
            Ok(())
        }
    }
}

/// Refuses a server older than Redis 7 (the scripts use its stream commands).
fn check_version(conn: &mut Connection, url: &str) -> Result<()> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(conn)
        .map_err(|e| Error::shared_with(format!("cannot reach Redis at {url}"), e))?;
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 7 {
        return Err(Error::shared(format!(
            "Redis at {url} is version {version}; the shared backend needs Redis 7 or later"
        )));
    }
    Ok(())
}

/// A random id: the epoch of a session this process may create, its member id.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::shared(format!("cannot draw random bytes: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
