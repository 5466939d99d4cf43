//! How a shared session's records, values and changes are stored: the messages of the wire
//! contract (`dspex.v1.Variable`, `dspex.v1.Value`), encoded by prost. Encoding goes through
//! the bridge's conversions; decoding reads back exactly what was stored, without the size
//! limits of gRPC requests (a record written from Rust may hold a longer string than a Python
//! request may send).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dspex_core::{Constraints, Number, Pattern, Value};
use prost::Message;

use crate::state::records::{history_entry_to_proto, variable_to_proto};
use crate::state::{HistoryEntry, Source, VarId, VarRecord};
use crate::wire::convert::{value_to_proto, var_type_from_proto};
use crate::wire::proto;

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Registered,
    Updated,
    Deleted,
}

impl ChangeKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Registered => "registered",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
        }
    }

    fn parse(s: &[u8]) -> Option<Self> {
        match s {
            b"registered" => Some(ChangeKind::Registered),
            b"updated" => Some(ChangeKind::Updated),
            b"deleted" => Some(ChangeKind::Deleted),
            _ => None,
        }
    }
}

/// One entry of a session's stream of changes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// Its place in the session's order: the stream entry `0-SEQ`.
    pub(crate) seq: u64,
    pub(crate) kind: ChangeKind,
    /// The record after the change (for a deletion, the last record, with the deleter as its
    /// source).
    pub(crate) record: VarRecord,
    /// The value before an update.
    pub(crate) old: Option<Value>,
}

/// The compare-and-set token of a record: `ID:VERSION`.
pub(crate) fn head(record: &VarRecord) -> String {
    format!("{}:{}", record.id.0, record.version)
}

pub(crate) fn encode_record(record: &VarRecord) -> Vec<u8> {
    variable_to_proto(record).encode_to_vec()
}

pub(crate) fn encode_value(value: &Value) -> Vec<u8> {
    value_to_proto(value).encode_to_vec()
}

/// A stored record; the error says what is wrong with it.
pub(crate) fn decode_record(bytes: &[u8]) -> Result<VarRecord, String> {
    let v = proto::Variable::decode(bytes).map_err(|e| e.to_string())?;
    let ty = var_type_from_proto("type", v.r#type).map_err(|e| e.to_string())?;
    Ok(VarRecord {
        id: VarId(v.id),
        value: value_from_proto(v.value)?,
        constraints: constraints_from_proto(v.constraints.unwrap_or_default())?,
        ty,
        name: v.name,
        description: v.description,
        metadata: v.metadata.into_iter().collect(),
        version: v.version,
        created_at: time(v.created_at),
        updated_at: time(v.updated_at),
        source: source(v.source),
        readonly: v.readonly,
    })
}

pub(crate) fn encode_history_entry(entry: &HistoryEntry) -> Vec<u8> {
    history_entry_to_proto(entry).encode_to_vec()
}

/// A stored history entry; the error says what is wrong with it.
pub(crate) fn decode_history_entry(bytes: &[u8]) -> Result<HistoryEntry, String> {
    let e = proto::HistoryEntry::decode(bytes).map_err(|e| e.to_string())?;
    Ok(HistoryEntry {
        version: e.version,
        value: value_from_proto(e.value)?,
        source: source(e.source),
        metadata: e.metadata.into_iter().collect(),
        at: time(e.at),
    })
}

fn source(s: i32) -> Source {
    match proto::Source::try_from(s) {
        Ok(proto::Source::Python) => Source::Python,
        _ => Source::Rust,
    }
}

pub(crate) fn decode_value(bytes: &[u8]) -> Result<Value, String> {
    value_from_proto(Some(
        proto::Value::decode(bytes).map_err(|e| e.to_string())?,
    ))
}

/// The sequence number of a stream entry, from its id (`0-SEQ`).
pub(crate) fn change_seq(id: &str) -> Option<u64> {
    id.strip_prefix("0-").and_then(|s| s.parse().ok())
}

/// A stream entry (`0-SEQ` and its fields); the error says what is wrong with it.
pub(crate) fn decode_change(id: &str, fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Entry, String> {
    let seq = change_seq(id).ok_or_else(|| format!("stream entry id `{id}` is not `0-SEQ`"))?;
    let field = |name: &[u8]| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    };
    decode_entry(seq, field(b"kind"), field(b"record"), field(b"old"))
        .map_err(|e| format!("stream entry {id}: {e}"))
}

/// The changes of one write as a notice tells them to the other processes (see
/// [`scripts`](super::scripts)): the session's epoch and a newline, the sequence number of
/// the first change and a newline, then each change (they are consecutive) as its
/// [`notice_header`], the record and the old value. The error says what is wrong with it.
pub(crate) fn decode_notice(payload: &[u8]) -> Result<(String, Vec<Entry>), String> {
    let (epoch, rest) = split_line(payload).ok_or("a notice without its epoch")?;
    let epoch = String::from_utf8_lossy(epoch).into_owned();
    let (first, mut rest) = split_line(rest).ok_or("a notice without its first change")?;
    let first: u64 = std::str::from_utf8(first)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("a bad first change `{}`", String::from_utf8_lossy(first)))?;
    let mut entries = Vec::new();
    for seq in first.. {
        if rest.is_empty() {
            break;
        }
        let (header, body) = split_line(rest).ok_or("a change without its header")?;
        let header = std::str::from_utf8(header).map_err(|e| e.to_string())?;
        let mut parts = header.split(' ');
        let mut next = || {
            parts
                .next()
                .ok_or_else(|| format!("a short header `{header}`"))
        };
        let kind = next()?.as_bytes();
        let record_len: usize = next()?
            .parse()
            .map_err(|_| format!("a bad header `{header}`"))?;
        let old_len: usize = next()?
            .parse()
            .map_err(|_| format!("a bad header `{header}`"))?;
        let end = record_len
            .checked_add(old_len)
            .filter(|&end| end <= body.len())
            .ok_or_else(|| format!("change {seq} is cut short"))?;
        let (record, old) = body[..end].split_at(record_len);
        let old = (!old.is_empty()).then_some(old);
        entries.push(
            decode_entry(seq, Some(kind), Some(record), old)
                .map_err(|e| format!("change {seq}: {e}"))?,
        );
        rest = &body[end..];
    }
    Ok((epoch, entries))
}

/// The header of one change in a notice, built by the writer: `KIND RECORD_LEN OLD_LEN` and a
/// newline (`OLD_LEN` 0: no old value).
pub(crate) fn notice_header(kind: ChangeKind, record_len: usize, old_len: usize) -> String {
    format!("{} {record_len} {old_len}\n", kind.as_str())
}

/// The bytes before the first newline, and those after it.
fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == b'\n')?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

fn decode_entry(
    seq: u64,
    kind: Option<&[u8]>,
    record: Option<&[u8]>,
    old: Option<&[u8]>,
) -> Result<Entry, String> {
    let kind = kind.and_then(ChangeKind::parse).ok_or("no valid `kind`")?;
    let record = decode_record(record.ok_or("no `record`")?)?;
    let old = old.map(decode_value).transpose()?;
    Ok(Entry {
        seq,
        kind,
        record,
        old,
    })
}

fn value_from_proto(value: Option<proto::Value>) -> Result<Value, String> {
    use proto::value::Kind;
    Ok(match value.and_then(|v| v.kind) {
        Some(Kind::FloatValue(x)) => Value::Float(x),
        Some(Kind::IntegerValue(i)) => Value::Integer(i),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::BooleanValue(b)) => Value::Boolean(b),
        Some(Kind::EmbeddingValue(e)) => Value::Embedding(e.values),
        None => return Err("no value".to_owned()),
    })
}

fn constraints_from_proto(c: proto::Constraints) -> Result<Constraints, String> {
    let number = |n: Option<proto::Number>| match n.and_then(|n| n.kind) {
        Some(proto::number::Kind::Integer(i)) => Some(Number::Int(i)),
        Some(proto::number::Kind::Float(x)) => Some(Number::Float(x)),
        None => None,
    };
    Ok(Constraints {
        min: number(c.min),
        max: number(c.max),
        min_length: c.min_length,
        max_length: c.max_length,
        pattern: c
            .pattern
            .map(|p| Pattern::new(&p).map_err(|e| e.to_string()))
            .transpose()?,
        choices: c.choices.map(|list| list.values),
        dimensions: c.dimensions,
    })
}

fn time(t: Option<prost_types::Timestamp>) -> SystemTime {
    let Some(t) = t else {
        return UNIX_EPOCH;
    };
    let nanos = Duration::from_nanos(u64::try_from(t.nanos).unwrap_or(0));
    match u64::try_from(t.seconds) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs) + nanos,
        Err(_) => UNIX_EPOCH - Duration::from_secs(t.seconds.unsigned_abs()) + nanos,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use dspex_core::VarType;

    use super::*;

    fn record() -> VarRecord {
        let at = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        VarRecord {
            id: VarId(42),
            name: "style".into(),
            ty: VarType::String,
            value: Value::String("x".repeat(100_000)),
            constraints: Constraints::default()
                .with_pattern("[a-z]+")
                .unwrap()
                .with_length(1, 200_000),
            description: Some("tone".into()),
            metadata: BTreeMap::from([("k".into(), "v".into())]),
            version: 7,
            created_at: at,
            updated_at: at + Duration::from_nanos(1),
            source: Source::Python,
            readonly: true,
        }
    }

    #[test]
    fn records_round_trip_exactly_beyond_the_request_limits() {
        let r = record();
        assert_eq!(decode_record(&encode_record(&r)).unwrap(), r);
        for v in [
            Value::Float(0.5),
            Value::Integer(-3),
            Value::Boolean(true),
            Value::Embedding(vec![0.25; 20_000]),
        ] {
            assert_eq!(decode_value(&encode_value(&v)).unwrap(), v);
        }
        let entry = HistoryEntry::of_record(&r);
        assert_eq!(
            decode_history_entry(&encode_history_entry(&entry)).unwrap(),
            entry
        );
        let before_1970 = UNIX_EPOCH - Duration::new(5, 250);
        assert_eq!(
            time(Some(crate::wire::convert::timestamp(before_1970))),
            before_1970
        );
    }

    #[test]
    fn changes_decode_or_say_what_is_wrong() {
        let r = record();
        let fields = vec![
            (b"kind".to_vec(), b"updated".to_vec()),
            (b"record".to_vec(), encode_record(&r)),
            (b"old".to_vec(), encode_value(&Value::String("y".into()))),
        ];
        let change = decode_change("0-12", &fields).unwrap();
        assert_eq!(change.seq, 12);
        assert_eq!(change.kind, ChangeKind::Updated);
        assert_eq!(change.record, r);
        assert_eq!(change.old, Some(Value::String("y".into())));
        assert!(
            decode_change("1700-0", &fields)
                .unwrap_err()
                .contains("0-SEQ")
        );
        let err = decode_change("0-1", &fields[1..]).unwrap_err();
        assert!(err.contains("kind"), "{err}");
        let garbage = vec![
            (b"kind".to_vec(), b"registered".to_vec()),
            (b"record".to_vec(), vec![0xff, 0xff, 0xff]),
        ];
        assert!(decode_change("0-1", &garbage).is_err());
    }

    /// A notice as the write script joins it.
    fn notice(epoch: &str, first: u64, changes: &[(ChangeKind, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut out = format!("{epoch}\n{first}\n").into_bytes();
        for (kind, record, old) in changes {
            out.extend(notice_header(*kind, record.len(), old.len()).bytes());
            out.extend(record);
            out.extend(old);
        }
        out
    }

    #[test]
    fn notices_decode_every_change_or_say_what_is_wrong() {
        let r = record();
        let old = encode_value(&Value::String("y".into()));
        let payload = notice(
            "e1",
            7,
            &[
                (ChangeKind::Updated, encode_record(&r), old.clone()),
                (ChangeKind::Deleted, encode_record(&r), Vec::new()),
            ],
        );
        let (epoch, entries) = decode_notice(&payload).unwrap();
        assert_eq!(epoch, "e1");
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].seq, entries[0].kind), (7, ChangeKind::Updated));
        assert_eq!(entries[0].record, r);
        assert_eq!(entries[0].old, Some(Value::String("y".into())));
        assert_eq!(
            (entries[1].seq, entries[1].kind, entries[1].old.as_ref()),
            (8, ChangeKind::Deleted, None)
        );
        // No change after the first's number: none.
        assert_eq!(decode_notice(b"e1\n7\n").unwrap().1, Vec::new());
        // Cut short, a bad header, no first change, no epoch: errors naming the problem.
        let err = decode_notice(&payload[..payload.len() - 1]).unwrap_err();
        assert!(err.contains("change 8 is cut short"), "{err}");
        let err = decode_notice(b"e1\n7\nupdated x 0\n").unwrap_err();
        assert!(err.contains("bad header"), "{err}");
        let err = decode_notice(b"e1\n7\nupdated\n").unwrap_err();
        assert!(err.contains("short header"), "{err}");
        let err = decode_notice(b"e1\nx\n").unwrap_err();
        assert!(err.contains("bad first change `x`"), "{err}");
        assert!(decode_notice(b"e1\n").unwrap_err().contains("first change"));
        assert!(decode_notice(b"e1").unwrap_err().contains("epoch"));
        let record = encode_record(&r);
        let mut moved = format!("e1\n3\nmoved {} 0\n", record.len()).into_bytes();
        moved.extend(record);
        let err = decode_notice(&moved).unwrap_err();
        assert!(err.contains("change 3") && err.contains("kind"), "{err}");
    }
}
