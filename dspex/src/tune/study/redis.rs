//! The Redis study: its keys, the Lua scripts that change it (each one atomic on the server,
//! with the server's clock for leases) and the one that reads it.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{dspex:study:S}:meta` | hash | `header` (JSON), `next` (the next trial number), `finished` (count) |
//! | `{dspex:study:S}:trials` | hash | `N:state`, `N:assign` (the assignment's canonical JSON), `N:outcome` (JSON), `N:owner`, `N:attempt`, `N:origin`, `N:next` per trial `N` |
//! | `{dspex:study:S}:leases` | sorted set | running trial -> when its lease runs out (ms) |
//! | `{dspex:study:S}:keys` | hash | assignment JSON -> the last trial that has it |
//! | `{dspex:study:S}:retry` | sorted set | failed trials waiting to be proposed again |
//! | `{dspex:study:S}:log` | list | the number of every trial changed, in order (readers catch up from it) |
//!
//! The keys share the hash tag `{dspex:study:S}`, so a study lives on one node of a Redis
//! Cluster and every script can touch all of its keys. A study has no TTL: it lives until
//! deleted.

use std::sync::LazyLock;

use parking_lot::Mutex;
use redis::{Client, Connection, RedisError, Script, Value as RedisValue};

use super::{Ask, Asked, Assignment, Backend, Outcome, Record, RecordState, check_name, key_of};
use crate::error::{Error, Result};
use crate::state::SharedConfig;
use crate::state::shared::{CONNECT_TIMEOUT, IO_TIMEOUT};

/// What every script starts with: its keys, the server's clock, and the expiry of leases that
/// ran out (those trials fail; their assignment waits to be proposed again unless it failed
/// `ARGV[1]` times).
macro_rules! lua {
    ($body:expr) => {
        concat!(
            r#"
local meta, trials, leases, keys, retry, log = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local max_attempts = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function field(n, name) return n .. ':' .. name end
local function expire()
  for _, n in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
    redis.call('ZREM', leases, n)
    redis.call('HSET', trials, field(n, 'state'), 'failed')
    redis.call('HDEL', trials, field(n, 'owner'))
    local attempt = tonumber(redis.call('HGET', trials, field(n, 'attempt')) or '1')
    if attempt < max_attempts then redis.call('ZADD', retry, n, n) end
    redis.call('RPUSH', log, n)
  end
end
"#,
            $body
        )
    };
}

/// Creates the study unless it exists. `ARGV[2]` = the header. Returns the header it held
/// before, or `false` (nil) when it was created now.
static OPEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua!(
        r#"
local before = redis.call('HGET', meta, 'header')
if not before then
  redis.call('HSET', meta, 'header', ARGV[2], 'next', 0, 'finished', 0)
end
return before
"#
    ))
});

/// Asks for a trial. `ARGV[2]` = the budget, `ARGV[3]` = the owner, `ARGV[4]` = the lease
/// (ms), `ARGV[5]` = the proposal's assignment JSON (`""`: none). Returns `{'finished'}`,
/// `{'wait', ms}`, `{'retry', n, old, assignment}`, `{'granted', n}`, `{'duplicate'}` or
/// `{'exhausted'}`.
static ASK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua!(
        r#"
expire()
local budget, owner, lease, proposal = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5]
local finished = tonumber(redis.call('HGET', meta, 'finished') or '0')
if finished >= budget then return {'finished'} end
local running = redis.call('ZCARD', leases)
local function wait()
  local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
  local ms = 0
  if first[2] then ms = math.max(0, tonumber(first[2]) - now) end
  return {'wait', tostring(ms)}
end
if finished + running >= budget then return wait() end
local function create(assign, attempt, origin)
  local n = tostring(redis.call('HINCRBY', meta, 'next', 1) - 1)
  redis.call('HSET', trials, field(n, 'state'), 'running', field(n, 'assign'), assign,
    field(n, 'owner'), owner, field(n, 'attempt'), attempt)
  if origin then redis.call('HSET', trials, field(n, 'origin'), origin) end
  redis.call('ZADD', leases, now + lease, n)
  redis.call('HSET', keys, assign, n)
  redis.call('RPUSH', log, n)
  return n
end
local waiting = redis.call('ZRANGE', retry, 0, 0)
if waiting[1] then
  local old = waiting[1]
  redis.call('ZREM', retry, old)
  local assign = redis.call('HGET', trials, field(old, 'assign'))
  local attempt = tonumber(redis.call('HGET', trials, field(old, 'attempt')) or '1')
  local n = create(assign, attempt + 1, old)
  redis.call('HSET', trials, field(old, 'next'), n)
  redis.call('RPUSH', log, old)
  return {'retry', n, old, assign}
end
if proposal == '' then
  if running > 0 then return wait() end
  return {'exhausted'}
end
if redis.call('HEXISTS', keys, proposal) == 1 then return {'duplicate'} end
return {'granted', create(proposal, 1, false)}
"#
    ))
});

/// Records a running trial's outcome. `ARGV[2]` = the trial, `ARGV[3]` = the owner,
/// `ARGV[4]` = the outcome JSON. Returns 1, or 0 when the trial no longer runs under that
/// owner's lease.
static TELL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua!(
        r#"
local n, owner = ARGV[2], ARGV[3]
local state = redis.call('HGET', trials, field(n, 'state'))
if state ~= 'running' or redis.call('HGET', trials, field(n, 'owner')) ~= owner then return 0 end
redis.call('HSET', trials, field(n, 'state'), 'finished', field(n, 'outcome'), ARGV[4])
redis.call('HDEL', trials, field(n, 'owner'))
redis.call('ZREM', leases, n)
redis.call('HINCRBY', meta, 'finished', 1)
redis.call('RPUSH', log, n)
return 1
"#
    ))
});

/// Renews leases. `ARGV[2]` = the owner, `ARGV[3]` = the lease (ms), then the trials.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua!(
        r#"
local owner, lease = ARGV[2], tonumber(ARGV[3])
for i = 4, #ARGV do
  local n = ARGV[i]
  if redis.call('HGET', trials, field(n, 'state')) == 'running'
    and redis.call('HGET', trials, field(n, 'owner')) == owner then
    redis.call('ZADD', leases, 'XX', now + lease, n)
  end
end
return 1
"#
    ))
});

/// Reads the trials changed since position `ARGV[2]` of the log, without changing anything.
/// Returns the log's length, then per trial: number, state, assignment, outcome (`''`:
/// none), owner, attempt, origin, next, lease deadline (`''`: none).
static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local trials, leases, log = KEYS[2], KEYS[3], KEYS[6]
local from = tonumber(ARGV[2])
local len = redis.call('LLEN', log)
local out = {len}
if from >= len then return out end
local seen = {}
for _, n in ipairs(redis.call('LRANGE', log, from, -1)) do
  if not seen[n] then
    seen[n] = true
    local f = redis.call('HMGET', trials, n .. ':state', n .. ':assign', n .. ':outcome',
      n .. ':owner', n .. ':attempt', n .. ':origin', n .. ':next')
    table.insert(out, n)
    for i = 1, 7 do table.insert(out, f[i] or '') end
    table.insert(out, redis.call('ZSCORE', leases, n) or '')
  end
end
return out
"#,
    )
});

/// The fields per trial in [`READ`]'s reply.
const READ_FIELDS: usize = 9;

/// The Redis study.
pub(crate) struct RedisBackend {
    url: String,
    name: String,
    /// The URL without its password.
    shown: String,
    keys: [String; 6],
    conn: Mutex<Option<Connection>>,
}

impl RedisBackend {
    pub(crate) fn new(url: String, name: String) -> Self {
        let shown = SharedConfig::new(url.clone(), name.clone()).shown_url();
        let tag = format!("{{dspex:study:{name}}}");
        let keys =
            ["meta", "trials", "leases", "keys", "retry", "log"].map(|k| format!("{tag}:{k}"));
        Self {
            url,
            name,
            shown,
            keys,
            conn: Mutex::new(None),
        }
    }

    /// Runs `f` on the connection, connecting first if needed; a lost connection is dropped
    /// (the next operation reconnects).
    fn with<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Connection, &[String; 6]) -> redis::RedisResult<T>,
    ) -> Result<T> {
        check_name(&self.name)?;
        let mut guard = self.conn.lock();
        if guard.is_none() {
            let client = Client::open(self.url.as_str()).map_err(|e| {
                Error::shared_with(
                    format!("study `{}`: invalid Redis URL `{}`", self.name, self.shown),
                    e,
                )
            })?;
            let conn = client
                .get_connection_with_timeout(CONNECT_TIMEOUT)
                .and_then(|c| {
                    c.set_read_timeout(Some(IO_TIMEOUT))?;
                    c.set_write_timeout(Some(IO_TIMEOUT))?;
                    Ok(c)
                })
                .map_err(|e| {
                    Error::shared_with(
                        format!(
                            "study `{}`: cannot reach Redis at {}; nothing was changed",
                            self.name, self.shown
                        ),
                        e,
                    )
                })?;
            *guard = Some(conn);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(Error::Internal("no Redis connection".to_owned()));
        };
        f(conn, &self.keys).map_err(|e| {
            let lost = e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout();
            if lost {
                *guard = None;
            }
            self.refused(what, lost, e)
        })
    }

    fn refused(&self, what: &str, lost: bool, e: RedisError) -> Error {
        let message = if lost {
            format!(
                "study `{}`: lost Redis at {} while {what}",
                self.name, self.shown
            )
        } else {
            format!(
                "study `{}`: Redis at {} refused {what}",
                self.name, self.shown
            )
        };
        Error::shared_with(message, e)
    }

    fn invoke<'a>(script: &'a Script, keys: &[String; 6]) -> redis::ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        for key in keys {
            call.key(key);
        }
        call.arg(super::MAX_ATTEMPTS);
        call
    }

    fn corrupt(&self, location: &str, why: impl std::fmt::Display) -> Error {
        Error::tuning(format!("the study record at {location} is corrupt: {why}"))
    }

    /// One trial of [`READ`]'s reply.
    fn record(&self, fields: &[String]) -> Result<Record> {
        let number: usize = fields[0].parse().map_err(|e| {
            self.corrupt(
                &self.location(0),
                format!("trial number {:?}: {e}", fields[0]),
            )
        })?;
        let at = |name: &str| format!("`{}` field `{number}:{name}`", self.keys[1]);
        let state = RecordState::parse(&fields[1])
            .ok_or_else(|| self.corrupt(&at("state"), format!("unknown state {:?}", fields[1])))?;
        let assignment: Assignment =
            serde_json::from_str(&fields[2]).map_err(|e| self.corrupt(&at("assign"), e))?;
        let outcome = if fields[3].is_empty() {
            None
        } else {
            Some(
                serde_json::from_str::<Outcome>(&fields[3])
                    .map_err(|e| self.corrupt(&at("outcome"), e))?,
            )
        };
        let optional = |i: usize, name: &str| -> Result<Option<usize>> {
            if fields[i].is_empty() {
                Ok(None)
            } else {
                fields[i]
                    .parse()
                    .map(Some)
                    .map_err(|e| self.corrupt(&at(name), format!("{:?}: {e}", fields[i])))
            }
        };
        let attempt = fields[5]
            .parse()
            .map_err(|e| self.corrupt(&at("attempt"), format!("{:?}: {e}", fields[5])))?;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let lease_until_ms = fields[8].parse::<f64>().map_or(0, |ms| ms as u64);
        Ok(Record {
            number,
            state,
            assignment,
            owner: fields[4].clone(),
            lease_until_ms,
            attempt,
            origin: optional(6, "origin")?,
            reproposed_as: optional(7, "next")?,
            outcome,
        })
    }
}

/// A reply item as text.
fn text(value: &RedisValue) -> String {
    match value {
        RedisValue::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        RedisValue::SimpleString(s) => s.clone(),
        RedisValue::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

impl Backend for RedisBackend {
    fn describe(&self) -> String {
        format!("study `{}` at {}", self.name, self.shown)
    }

    fn blocking(&self) -> bool {
        true
    }

    fn location(&self, n: usize) -> String {
        format!("`{}` field `{n}:assign`", self.keys[1])
    }

    fn header_location(&self) -> String {
        format!("`{}` field `header`", self.keys[0])
    }

    fn open(&self, header: &str) -> Result<Option<String>> {
        self.with("opening the study", |conn, keys| {
            let mut call = Self::invoke(&OPEN, keys);
            call.arg(header);
            call.invoke(conn)
        })
    }

    fn header(&self) -> Result<Option<String>> {
        self.with("reading the study", |conn, keys| {
            redis::cmd("HGET").arg(&keys[0]).arg("header").query(conn)
        })
    }

    fn read(&self, cursor: u64) -> Result<(Vec<Record>, u64)> {
        let reply: Vec<RedisValue> = self.with("reading the study", |conn, keys| {
            let mut call = Self::invoke(&READ, keys);
            call.arg(cursor);
            call.invoke(conn)
        })?;
        let items: Vec<String> = reply.iter().map(text).collect();
        let len = items.first().and_then(|l| l.parse().ok()).unwrap_or(cursor);
        let records = items
            .get(1..)
            .unwrap_or_default()
            .chunks_exact(READ_FIELDS)
            .map(|fields| self.record(fields))
            .collect::<Result<Vec<_>>>()?;
        Ok((records, len))
    }

    fn ask(&self, ask: &Ask) -> Result<Asked> {
        let proposal = ask.proposal.as_ref().map(key_of).unwrap_or_default();
        let reply: Vec<RedisValue> = self.with("handing out a trial", |conn, keys| {
            let mut call = Self::invoke(&ASK, keys);
            call.arg(ask.budget)
                .arg(&ask.owner)
                .arg(ask.lease_ms)
                .arg(&proposal);
            call.invoke(conn)
        })?;
        let items: Vec<String> = reply.iter().map(text).collect();
        let number = |i: usize| -> Result<usize> {
            items
                .get(i)
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| Error::Internal(format!("the study's ask script replied {items:?}")))
        };
        Ok(match items.first().map(String::as_str) {
            Some("finished") => Asked::Finished,
            Some("exhausted") => Asked::Exhausted,
            Some("duplicate") => Asked::Duplicate,
            Some("wait") => Asked::Wait(items.get(1).and_then(|m| m.parse().ok()).unwrap_or(0)),
            Some("granted") => Asked::Granted(number(1)?),
            Some("retry") => {
                let of = number(2)?;
                let text = items.get(3).cloned().unwrap_or_default();
                let assignment =
                    serde_json::from_str(&text).map_err(|e| self.corrupt(&self.location(of), e))?;
                Asked::Retry {
                    number: number(1)?,
                    of,
                    assignment,
                }
            }
            _ => {
                return Err(Error::Internal(format!(
                    "the study's ask script replied {items:?}"
                )));
            }
        })
    }

    fn tell(&self, number: usize, owner: &str, outcome: &Outcome) -> Result<bool> {
        // Finite numbers and strings only: serializing cannot fail.
        let outcome = serde_json::to_string(outcome).unwrap_or_default();
        let told: i64 = self.with("recording a trial", |conn, keys| {
            let mut call = Self::invoke(&TELL, keys);
            call.arg(number).arg(owner).arg(&outcome);
            call.invoke(conn)
        })?;
        Ok(told == 1)
    }

    fn renew(&self, numbers: &[usize], owner: &str, lease_ms: u64) -> Result<()> {
        let _: i64 = self.with("renewing leases", |conn, keys| {
            let mut call = Self::invoke(&RENEW, keys);
            call.arg(owner).arg(lease_ms);
            for n in numbers {
                call.arg(*n);
            }
            call.invoke(conn)
        })?;
        Ok(())
    }
}
