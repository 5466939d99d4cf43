//! Variable records, history entries and watch events in the wire contract's form: what the
//! bridge's gRPC server answers and what the shared backend stores in Redis.

#[cfg(feature = "python")]
use super::watch::WatchEvent;
use super::{HistoryEntry, Source, VarRecord};
use crate::wire::convert::{constraints_to_proto, timestamp, value_to_proto, var_type_to_proto};
use crate::wire::proto;

/// A write's source for the wire.
pub(crate) fn source_to_proto(source: Source) -> proto::Source {
    match source {
        Source::Rust => proto::Source::Rust,
        Source::Python => proto::Source::Python,
    }
}

/// A variable record for the wire.
pub(crate) fn variable_to_proto(r: &VarRecord) -> proto::Variable {
    proto::Variable {
        id: r.id.0,
        name: r.name.clone(),
        r#type: var_type_to_proto(r.ty).into(),
        value: Some(value_to_proto(&r.value)),
        constraints: Some(constraints_to_proto(&r.constraints)),
        description: r.description.clone(),
        metadata: r
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        version: r.version,
        created_at: Some(timestamp(r.created_at)),
        updated_at: Some(timestamp(r.updated_at)),
        source: source_to_proto(r.source).into(),
        readonly: r.readonly,
    }
}

/// A history entry for the wire.
pub(crate) fn history_entry_to_proto(e: &HistoryEntry) -> proto::HistoryEntry {
    proto::HistoryEntry {
        version: e.version,
        value: Some(value_to_proto(&e.value)),
        source: source_to_proto(e.source).into(),
        metadata: e
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        at: Some(timestamp(e.at)),
    }
}

#[cfg(feature = "python")]
/// A watch event for the wire.
pub(crate) fn update_to_proto(event: &WatchEvent) -> proto::VariableUpdate {
    use proto::UpdateKind;
    let mut u = proto::VariableUpdate::default();
    match event {
        WatchEvent::Initial {
            id,
            name,
            value,
            version,
        } => {
            u.kind = UpdateKind::Initial.into();
            u.id = id.0;
            u.name = name.clone();
            u.new_value = Some(value_to_proto(value));
            u.version = *version;
        }
        WatchEvent::Registered {
            id,
            name,
            value,
            source,
        } => {
            u.kind = UpdateKind::Registered.into();
            u.id = id.0;
            u.name = name.clone();
            u.new_value = Some(value_to_proto(value));
            u.version = 1;
            u.source = source_to_proto(*source).into();
        }
        WatchEvent::Updated(c) => {
            u.kind = UpdateKind::Updated.into();
            u.id = c.id.0;
            u.name = c.name.clone();
            u.old_value = Some(value_to_proto(&c.old));
            u.new_value = Some(value_to_proto(&c.new));
            u.version = c.version;
            u.source = source_to_proto(c.source).into();
            u.at = Some(timestamp(c.at));
        }
        WatchEvent::Deleted {
            id,
            name,
            version,
            source,
        } => {
            u.kind = UpdateKind::Deleted.into();
            u.id = id.0;
            u.name = name.clone();
            u.version = *version;
            u.source = source_to_proto(*source).into();
        }
        WatchEvent::Lagged { missed } => {
            u.kind = UpdateKind::Lagged.into();
            u.missed = *missed;
        }
    }
    u
}
