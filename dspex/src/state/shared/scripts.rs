//! The Lua scripts that change a shared session, each one atomic on the Redis server, and the
//! commands that read it. Every script takes the session's five keys (see
//! [`SessionKeys`](super::SessionKeys)), `ARGV[1]` = the TTL in milliseconds and `ARGV[2]` = a
//! candidate epoch (kept only by the script that creates the session), and returns the
//! session's epoch, so that a process notices a session that expired and started a new life.
//!
//! TTLs: the heartbeat script ([`touch`]) and the snapshot renew every key of the session; a
//! write renews them only when it may have created a key (the session's first write, a new
//! life, a registration, a deletion that may have emptied a hash): every key is created with
//! the session's TTL, and the heartbeat of every process that has the session open renews it
//! long before it runs out. A session nobody has open expires a TTL after its last renewal.
//!
//! Notices: every open process's reader subscribes to a channel of its own
//! ([`SessionKeys::member_channel`](super::SessionKeys::member_channel)) and is a member of the
//! session (a field `m:MEMBER` of its meta hash, holding the time it lapses; the heartbeat
//! renews it, and drops the members that lapsed; the field `members` lists them for the
//! writes). A write publishes its changes (see
//! [`decode_notice`](super::codec::decode_notice)) to every member but the writing process:
//! a process is never woken for its own write (it applies that itself), and the others get
//! the changes in the one message, in the session's order. The stream keeps every change: a
//! process catches up from it whenever a notice is missing.
//!
//! A script checks everything before it writes anything: Redis does not roll back the writes of
//! a script that fails halfway.

use std::sync::LazyLock;

use redis::{Connection, ErrorKind, RedisError, Script, ServerErrorKind, Value as RedisValue};

use super::codec::{ChangeKind, notice_header};
use super::config::SessionKeys;

/// Shared by every script: the keys, TTL renewal and the session's epoch.
macro_rules! lua {
    ($body:expr) => {
        concat!(
            r#"
local vars, heads, meta, changes, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function touch()
  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
local function epoch()
  redis.call('HSETNX', meta, 'epoch', ARGV[2])
  return redis.call('HGET', meta, 'epoch')
end
local function seq()
  return redis.call('HGET', meta, 'seq') or '0'
end
"#,
            $body
        )
    };
}

/// The scripts that change who is a member ([`TOUCH`], [`LEAVE`]): `members()` keeps the meta
/// field `members` (the members' ids, separated by spaces; absent when there are none) in step
/// with the fields `m:MEMBER`, so that a write reads them all with one field. With `now`, it
/// first drops the members that lapsed before it. It never creates the meta hash (a session
/// that expired stays gone).
macro_rules! lua_members {
    ($body:expr) => {
        lua!(concat!(
            r#"
local function members(now)
  local ids = {}
  local fields = redis.call('HGETALL', meta)
  for i = 1, #fields, 2 do
    local f = fields[i]
    if string.sub(f, 1, 2) == 'm:' then
      if now and tonumber(fields[i + 1]) < now then redis.call('HDEL', meta, f)
      else ids[#ids + 1] = string.sub(f, 3) end
    end
  end
  if #ids > 0 then redis.call('HSET', meta, 'members', table.concat(ids, ' '))
  else redis.call('HDEL', meta, 'members') end
end
"#,
            $body
        ))
    };
}

/// Applies a batch of operations, all or nothing. `ARGV[3]` = the stream's MAXLEN, `ARGV[4]` = a
/// floor for the id counter (`0`: none), `ARGV[5]` = `1` to refuse registrations whose id a
/// variable of the session holds, `ARGV[6]` = the history limit to keep if the session has
/// none yet, `ARGV[7]` = the writing process's member id (it is not sent the notice),
/// `ARGV[8]` = the number of operations, then [`OP_ARGS`] arguments per operation: kind
/// (`registered`, `updated`, `deleted`; `expect` to only check; `history` to only store a
/// history entry), name, expected head (`""`: absent; `ID:*`: any version of that id; else
/// exactly `ID:VERSION`), new head, record (for `history`: the entry), old value (`""`: none),
/// the write's history entry (`""`: none), and the change's header in the notice (see
/// [`notice_header`](super::codec::notice_header); `""` for `expect` and `history`).
///
/// A write stores its history entry under its new head and drops the one `hlimit` versions
/// older; a deletion drops the variable's last `hlimit` entries.
///
/// Returns `{'ok', first seq, epoch}`, `{'conflict', index, current head or '', current
/// record or '', seq, epoch}` or `{'id_taken', index, epoch}`.
///
/// An update of an existing variable (the common write) runs only what it needs: one read
/// of three fields of the session's meta hash (epoch, history limit, members), the head check,
/// the sequence number (one count for the whole batch), the stream entry, the record, the
/// head and the history entry (and the drop of the oldest one), and one notice per other
/// member, the same message for each, joined from the pieces the writer sent (no Lua string
/// work but the join). It renews no TTL: the variable's keys exist, so they have the
/// session's TTL, renewed by the heartbeat.
static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua!(
        r#"
local found = redis.call('HMGET', meta, 'epoch', 'hlimit', 'members')
local e, hlimit, others = found[1], tonumber(found[2]), found[3]
-- Whether a key may be created (then every key gets the TTL).
local renew = false
if not e then
  e = ARGV[2]
  redis.call('HSET', meta, 'epoch', e)
  renew = true
end
local maxlen, floor, check_ids, n = ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[8])
local function matches(cur, exp)
  if exp == '' then return not cur end
  if not cur then return false end
  if string.sub(exp, -1) == '*' then
    return string.sub(cur, 1, #exp - 1) == string.sub(exp, 1, #exp - 1)
  end
  return cur == exp
end
local held = nil
if check_ids == '1' then
  held = {}
  for _, h in ipairs(redis.call('HVALS', heads)) do held[string.match(h, '^(%d+):')] = true end
end
-- The changes: every operation but `expect` and `history`.
local count = 0
for i = 0, n - 1 do
  local b = 9 + i * 8
  local kind = ARGV[b]
  if kind ~= 'history' then
    local cur = redis.call('HGET', heads, ARGV[b + 1])
    if not matches(cur, ARGV[b + 2]) then
      local record = ''
      if cur then record = redis.call('HGET', vars, ARGV[b + 1]) end
      if renew then touch() end
      return {'conflict', i, cur or '', record, seq(), e}
    end
    if held and kind == 'registered' and held[string.match(ARGV[b + 3], '^(%d+):')] then
      if renew then touch() end
      return {'id_taken', i, e}
    end
    if kind ~= 'expect' then count = count + 1 end
  end
end
if floor > 0 and floor > tonumber(redis.call('HGET', meta, 'ids') or '0') then
  redis.call('HSET', meta, 'ids', floor)
end
if not hlimit then
  hlimit = tonumber(ARGV[6])
  redis.call('HSET', meta, 'hlimit', hlimit)
end
local first = 0
if count > 0 then first = redis.call('HINCRBY', meta, 'seq', count) - count + 1 end
local s = first
local notice = {e, '\n', first, '\n'}
for i = 0, n - 1 do
  local b = 9 + i * 8
  local kind, name, exp, new = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
  local record, old, entry = ARGV[b + 4], ARGV[b + 5], ARGV[b + 6]
  if kind ~= 'updated' and kind ~= 'expect' then renew = true end
  if kind == 'history' then
    redis.call('HSET', history, new, record)
  elseif kind ~= 'expect' then
    notice[#notice + 1] = ARGV[b + 7]
    notice[#notice + 1] = record
    notice[#notice + 1] = old
    if old ~= '' then
      redis.call('XADD', changes, 'MAXLEN', maxlen, '0-' .. s, 'kind', kind, 'record', record, 'old', old)
    else
      redis.call('XADD', changes, 'MAXLEN', maxlen, '0-' .. s, 'kind', kind, 'record', record)
    end
    s = s + 1
    if kind == 'deleted' then
      redis.call('HDEL', vars, name)
      redis.call('HDEL', heads, name)
      local id, v = string.match(exp, '^(%d+):(%d+)$')
      v = tonumber(v)
      for old_v = math.max(1, v - hlimit + 1), v do redis.call('HDEL', history, id .. ':' .. old_v) end
    else
      redis.call('HSET', vars, name, record)
      redis.call('HSET', heads, name, new)
      if entry ~= '' then
        redis.call('HSET', history, new, entry)
        local id, v = string.match(new, '^(%d+):(%d+)$')
        if tonumber(v) > hlimit then redis.call('HDEL', history, id .. ':' .. (tonumber(v) - hlimit)) end
      end
    end
  end
end
if first > 0 and others then
  local me, message, channel = ARGV[7], nil, nil
  for member in string.gmatch(others, '%S+') do
    if member ~= me then
      if not message then
        message = table.concat(notice)
        channel = string.sub(meta, 1, -5) .. 'to:'
      end
      redis.call('PUBLISH', channel .. member, message)
    end
  end
end
if renew then touch() end
return {'ok', first, e}
"#
    ))
});

/// How many arguments each operation of an [`APPLY`] batch takes.
const OP_ARGS: usize = 8;

/// The history of variable `ARGV[3]` (an id) from version `ARGV[4]` down, at most `ARGV[5]`
/// entries and the session's history limit: `{hlimit, entry or false, ...}`, newest first.
static HISTORY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua!(
        r#"
local hlimit = tonumber(redis.call('HGET', meta, 'hlimit') or ARGV[6])
local v, count = tonumber(ARGV[4]), math.min(tonumber(ARGV[5]), hlimit)
local out = {hlimit}
for old_v = v, math.max(1, v - count + 1), -1 do
  out[#out + 1] = redis.call('HGET', history, ARGV[3] .. ':' .. old_v)
end
return out
"#
    ))
});

/// The whole session at one point: `{seq, epoch, name, record, name, record, ...}`.
static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua!(
        r#"
local e = epoch()
touch()
local out = {seq(), e}
for _, x in ipairs(redis.call('HGETALL', vars)) do out[#out + 1] = x end
return out
"#
    ))
});

/// Renews the session's TTL and the membership of member `ARGV[3]` for `ARGV[4]`
/// milliseconds, and drops the members that lapsed: `{seq, epoch}`.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua_members!(
        r#"
local e = epoch()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', meta, 'm:' .. ARGV[3], string.format('%d', now + tonumber(ARGV[4])))
members(now)
touch()
return {seq(), e}
"#
    ))
});

/// Ends the membership of member `ARGV[3]` (a process that closes the session).
static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua_members!(
        r#"
redis.call('HDEL', meta, 'm:' .. ARGV[3])
members(nil)
return 1
"#
    ))
});

/// Hands out `ARGV[3]` new ids: returns the last one.
static RESERVE_IDS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(lua!(
        r#"
epoch()
local last = redis.call('HINCRBY', meta, 'ids', ARGV[3])
touch()
return last
"#
    ))
});

/// What a script needs besides its own arguments.
pub(crate) struct Session<'a> {
    pub(crate) keys: &'a SessionKeys,
    pub(crate) ttl_ms: u64,
    pub(crate) epoch_candidate: &'a str,
    pub(crate) stream_max_len: usize,
    pub(crate) history_limit: usize,
    /// This process's member id: its notices channel, and whom its writes do not notify.
    pub(crate) member: &'a str,
    /// How long a membership lasts unless renewed, in milliseconds.
    pub(crate) member_lapse_ms: u64,
}

/// One operation of an [`apply`] batch.
#[derive(Debug, Clone, Default)]
pub(crate) struct Op {
    pub(crate) kind: OpKind,
    pub(crate) name: String,
    /// The head the variable must have (`""`: absent; `ID:*`: any version of that id).
    pub(crate) expected: String,
    pub(crate) new_head: String,
    pub(crate) record: Vec<u8>,
    pub(crate) old: Vec<u8>,
    /// The write's history entry.
    pub(crate) entry: Vec<u8>,
}

/// What an [`Op`] does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum OpKind {
    Change(ChangeKind),
    /// Only checks the expected head.
    #[default]
    Expect,
    /// Only stores a history entry (`record`) under `new_head`.
    History,
}

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Applied {
    /// Every operation applied; the changes got the sequence numbers from `first_seq` on.
    Ok { first_seq: u64, epoch: String },
    /// Operation `index` found another head; nothing applied.
    Conflict {
        index: usize,
        head: Option<String>,
        record: Option<Vec<u8>>,
        seq: u64,
        epoch: String,
    },
    /// Registration `index` has an id a variable of the session holds; nothing applied.
    IdTaken { index: usize },
}

/// How a write's script failed: whether Redis may have run it.
#[derive(Debug)]
pub(crate) enum Failed {
    /// It never reached Redis (the connection failed while sending): not applied.
    NotSent(RedisError),
    /// Redis refused it with an error reply: not applied (a script checks before it writes).
    Refused(RedisError),
    /// It was sent but no reply came (the connection broke, or Redis did not answer in
    /// time): it may have been applied.
    NoReply(RedisError),
}

/// Runs `packed` (an EVALSHA of `script`), loading the script first if Redis does not know
/// it, and tells a failure before sending from one after.
fn run(conn: &mut Connection, script: &Script, packed: &[u8]) -> Result<RedisValue, Failed> {
    match send_and_receive(conn, packed) {
        Err(Failed::Refused(e)) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
            script.load(conn).map_err(Failed::NotSent)?;
            send_and_receive(conn, packed)
        }
        done => done,
    }
}

/// A command as Redis reads it (RESP), written straight into one buffer: a write's
/// arguments are copied once, with no intermediate command.
struct Packed(Vec<u8>);

impl Packed {
    /// A command of `count` arguments, about `bytes` long in all.
    fn new(count: usize, bytes: usize) -> Self {
        let mut packed = Self(Vec::with_capacity(bytes + 16 * count + 16));
        packed.0.push(b'*');
        packed.decimal(count as u64);
        packed.0.extend_from_slice(b"\r\n");
        packed
    }

    fn arg(&mut self, arg: &[u8]) -> &mut Self {
        self.0.push(b'$');
        self.decimal(arg.len() as u64);
        self.0.extend_from_slice(b"\r\n");
        self.0.extend_from_slice(arg);
        self.0.extend_from_slice(b"\r\n");
        self
    }

    fn number(&mut self, n: u64) -> &mut Self {
        self.arg(itoa::Buffer::new().format(n).as_bytes())
    }

    fn decimal(&mut self, n: u64) {
        self.0
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }
}

fn send_and_receive(conn: &mut Connection, packed: &[u8]) -> Result<RedisValue, Failed> {
    conn.send_packed_command(packed).map_err(Failed::NotSent)?;
    conn.recv_response()
        .map_err(Failed::NoReply)?
        .extract_error()
        .map_err(Failed::Refused)
}

pub(crate) fn apply(
    conn: &mut Connection,
    session: &Session<'_>,
    ops: &[Op],
    id_floor: u64,
    check_ids: bool,
) -> Result<Applied, Failed> {
    let keys = session.keys.all();
    let headers: Vec<String> = ops
        .iter()
        .map(|op| match op.kind {
            OpKind::Change(kind) => notice_header(kind, op.record.len(), op.old.len()),
            OpKind::Expect | OpKind::History => String::new(),
        })
        .collect();
    let size: usize = keys.iter().map(|k| k.len()).sum::<usize>()
        + session.epoch_candidate.len()
        + session.member.len()
        + ops
            .iter()
            .zip(&headers)
            .map(|(op, header)| {
                op.name.len()
                    + op.expected.len()
                    + op.new_head.len()
                    + op.record.len()
                    + op.old.len()
                    + op.entry.len()
                    + header.len()
            })
            .sum::<usize>();
    let mut call = Packed::new(3 + keys.len() + 8 + OP_ARGS * ops.len(), size);
    call.arg(b"EVALSHA")
        .arg(APPLY.get_hash().as_bytes())
        .number(keys.len() as u64);
    for key in keys {
        call.arg(key.as_bytes());
    }
    call.number(session.ttl_ms)
        .arg(session.epoch_candidate.as_bytes())
        .number(session.stream_max_len as u64)
        .number(id_floor)
        .arg(if check_ids { b"1" } else { b"0" })
        .number(session.history_limit as u64)
        .arg(session.member.as_bytes())
        .number(ops.len() as u64);
    for (op, header) in ops.iter().zip(&headers) {
        let kind = match op.kind {
            OpKind::Change(kind) => kind.as_str(),
            OpKind::Expect => "expect",
            OpKind::History => "history",
        };
        call.arg(kind.as_bytes())
            .arg(op.name.as_bytes())
            .arg(op.expected.as_bytes())
            .arg(op.new_head.as_bytes())
            .arg(&op.record)
            .arg(&op.old)
            .arg(&op.entry)
            .arg(header.as_bytes());
    }
    let reply = match run(conn, &APPLY, &call.0)? {
        RedisValue::Array(items) => items,
        other => {
            return Err(Failed::Refused(RedisError::from((
                ErrorKind::UnexpectedReturnType,
                "the write script replied with something else than a list",
                format!("{other:?}"),
            ))));
        }
    };
    let text = |i: usize| reply.get(i).and_then(bytes).unwrap_or_default();
    let number = |i: usize| parse_u64(&text(i));
    let index = |i: usize| usize::try_from(number(i)).unwrap_or(usize::MAX);
    let epoch = |i: usize| String::from_utf8_lossy(&text(i)).into_owned();
    Ok(match text(0).as_slice() {
        b"ok" => Applied::Ok {
            first_seq: number(1),
            epoch: epoch(2),
        },
        b"conflict" => Applied::Conflict {
            index: index(1),
            head: Some(epoch(2)).filter(|h| !h.is_empty()),
            record: Some(text(3)).filter(|r| !r.is_empty()),
            seq: number(4),
            epoch: epoch(5),
        },
        _ => Applied::IdTaken { index: index(1) },
    })
}

/// The session at one point: its sequence number, epoch and records (undecoded).
pub(crate) struct Snapshot {
    pub(crate) seq: u64,
    pub(crate) epoch: String,
    pub(crate) records: Vec<Vec<u8>>,
}

pub(crate) fn snapshot(
    conn: &mut Connection,
    session: &Session<'_>,
) -> redis::RedisResult<Snapshot> {
    let reply: Vec<RedisValue> = invoke(&SNAPSHOT, session).invoke(conn)?;
    let mut items = reply.iter().map(|v| bytes(v).unwrap_or_default());
    let seq = items.next().map_or(0, |s| parse_u64(&s));
    let epoch = String::from_utf8_lossy(&items.next().unwrap_or_default()).into_owned();
    // Name, record, name, record, ...
    let records = items.skip(1).step_by(2).collect();
    Ok(Snapshot {
        seq,
        epoch,
        records,
    })
}

/// Renews the session's TTL and this process's membership; returns the session's sequence
/// number and epoch.
pub(crate) fn touch(
    conn: &mut Connection,
    session: &Session<'_>,
) -> redis::RedisResult<(u64, String)> {
    let mut call = invoke(&TOUCH, session);
    call.arg(session.member).arg(session.member_lapse_ms);
    let reply: Vec<RedisValue> = call.invoke(conn)?;
    let seq = reply.first().and_then(bytes).map_or(0, |s| parse_u64(&s));
    let epoch = reply
        .get(1)
        .and_then(bytes)
        .map(|e| String::from_utf8_lossy(&e).into_owned())
        .unwrap_or_default();
    Ok((seq, epoch))
}

/// The stored history entries of variable `id` from `version` down, at most `count` (and the
/// session's history limit), newest first (`None` for a version not stored); and the limit.
pub(crate) fn history(
    conn: &mut Connection,
    session: &Session<'_>,
    id: u64,
    version: u64,
    count: usize,
) -> redis::RedisResult<(usize, Vec<Option<Vec<u8>>>)> {
    let mut call = invoke(&HISTORY, session);
    call.arg(id)
        .arg(version)
        .arg(count)
        .arg(session.history_limit);
    let reply: Vec<RedisValue> = call.invoke(conn)?;
    let mut items = reply.iter();
    let limit = items
        .next()
        .and_then(bytes)
        .map_or(0, |l| usize::try_from(parse_u64(&l)).unwrap_or(0));
    Ok((limit, items.map(bytes).collect()))
}

/// Ends this process's membership: its reader is no longer notified.
pub(crate) fn leave(conn: &mut Connection, session: &Session<'_>) -> redis::RedisResult<()> {
    let mut call = invoke(&LEAVE, session);
    call.arg(session.member);
    let _: i64 = call.invoke(conn)?;
    Ok(())
}

/// Hands out `count` new ids; returns the first.
pub(crate) fn reserve_ids(
    conn: &mut Connection,
    session: &Session<'_>,
    count: u64,
) -> redis::RedisResult<u64> {
    let mut call = invoke(&RESERVE_IDS, session);
    call.arg(count);
    let last: u64 = call.invoke(conn)?;
    Ok(last + 1 - count)
}

fn invoke<'a>(script: &'a Script, session: &Session<'_>) -> redis::ScriptInvocation<'a> {
    let mut call = script.prepare_invoke();
    for key in session.keys.all() {
        call.key(key);
    }
    call.arg(session.ttl_ms).arg(session.epoch_candidate);
    call
}

/// The stream entries after `after`, at most `count`, as `(id, fields)`.
pub(crate) type RawEntry = (String, Vec<(Vec<u8>, Vec<u8>)>);

pub(crate) fn changes_after(
    conn: &mut Connection,
    keys: &SessionKeys,
    after: u64,
    count: usize,
) -> redis::RedisResult<Vec<RawEntry>> {
    let reply: RedisValue = redis::cmd("XRANGE")
        .arg(&keys.changes)
        .arg(format!("(0-{after}"))
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query(conn)?;
    Ok(entries(&reply))
}

/// Entries of an XRANGE reply (or of one stream of an XREAD reply).
fn entries(reply: &RedisValue) -> Vec<RawEntry> {
    let RedisValue::Array(items) = reply else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let RedisValue::Array(parts) = item else {
                return None;
            };
            let id = String::from_utf8_lossy(&bytes(parts.first()?)?).into_owned();
            let fields = match parts.get(1)? {
                RedisValue::Array(kv) => kv
                    .chunks(2)
                    .filter_map(|pair| Some((bytes(pair.first()?)?, bytes(pair.get(1)?)?)))
                    .collect(),
                RedisValue::Map(kv) => kv
                    .iter()
                    .filter_map(|(k, v)| Some((bytes(k)?, bytes(v)?)))
                    .collect(),
                _ => Vec::new(),
            };
            Some((id, fields))
        })
        .collect()
}

fn bytes(v: &RedisValue) -> Option<Vec<u8>> {
    match v {
        RedisValue::BulkString(b) => Some(b.clone()),
        RedisValue::SimpleString(s) => Some(s.clone().into_bytes()),
        RedisValue::Int(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

fn parse_u64(b: &[u8]) -> u64 {
    String::from_utf8_lossy(b).parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_command_is_what_redis_reads() {
        let mut packed = Packed::new(6, 8);
        packed
            .arg(b"EVALSHA")
            .arg(b"")
            .number(0)
            .number(7)
            .number(u64::MAX)
            .arg(&[0, 13, 10, 255]);
        let expected = redis::cmd("EVALSHA")
            .arg("")
            .arg(0)
            .arg(7)
            .arg(u64::MAX)
            .arg(&[0u8, 13, 10, 255][..])
            .get_packed_command();
        assert_eq!(packed.0, expected);
    }
}
