//! The gRPC `SessionService`: authenticates every request against the session store, checks
//! the request-size [`limits`](crate::wire::limits), runs the operation on the session's table (where
//! dspex-core enforces every variable rule) and maps errors to status codes with a
//! machine-readable [`ErrorKind`] in the `x-dspex-error` trailer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dspex_core::{Glob, SpecProblem, VariableSpec};
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status};

use super::store::{AuthError, Session, SessionStore, wall_clock};
use super::watch_queue::WatchQueue;
use crate::error::Error;
use crate::state::records;
use crate::state::{Key, SetOptions, Source, StateProvider, WatchOptions};
use crate::wire::convert::{self, FieldError};
use crate::wire::limits::{
    DEFAULT_LIST_PAGE_SIZE, DEFAULT_SESSION_TTL, MAX_HISTORY_ENTRIES_PER_REQUEST,
    MAX_LIST_PAGE_BYTES, MAX_LIST_PAGE_SIZE, MAX_NAME_LEN, MAX_NAMES_PER_REQUEST,
    MAX_PATTERN_BYTES, MAX_RESPONSE_BYTES, MAX_SESSION_ID_BYTES, MAX_SESSION_TTL,
    MAX_STATUS_MESSAGE_BYTES, MAX_VARIABLES_PER_SESSION, MAX_WATCH_QUEUE_BYTES,
    MAX_WRITES_PER_BATCH, WATCH_QUEUE_CAPACITY,
};
use crate::wire::proto::session_service_server::SessionService;
use crate::wire::proto::{self as pb, ErrorKind};
use crate::wire::{
    ACTUAL_VERSION_METADATA, ERROR_METADATA, EXPECTED_VERSION_METADATA, TOKEN_METADATA,
};

/// Every write over gRPC comes from the Python side of the bridge.
const SOURCE: Source = Source::Python;

/// What a message cut at [`MAX_STATUS_MESSAGE_BYTES`] ends with.
const CUT_NOTE: &str = "... (message cut)";

/// Builds a status whose `x-dspex-error` trailer carries `kind`, its message cut at
/// [`MAX_STATUS_MESSAGE_BYTES`].
pub(crate) fn status(code: Code, kind: ErrorKind, message: impl Into<String>) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert(
        ERROR_METADATA,
        MetadataValue::from_static(kind.as_str_name()),
    );
    Status::with_metadata(code, bounded_message(message.into()), metadata)
}

/// A message of at most [`MAX_STATUS_MESSAGE_BYTES`] bytes: longer ones are cut at a character
/// boundary and say so.
pub(crate) fn bounded_message(mut message: String) -> String {
    if message.len() > MAX_STATUS_MESSAGE_BYTES {
        let mut cut = MAX_STATUS_MESSAGE_BYTES - CUT_NOTE.len();
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push_str(CUT_NOTE);
    }
    message
}

/// The status of a dspex error, with its kind (the table in the [`bridge`](super) docs).
pub(crate) fn error_status(e: &Error) -> Status {
    let message = e.to_string();
    match e {
        Error::NotFound { .. } => status(Code::NotFound, ErrorKind::NotFound, message),
        Error::AlreadyExists { .. }
        | Error::IncompatibleVariable { .. }
        | Error::DeclarationMismatch { .. } => {
            status(Code::AlreadyExists, ErrorKind::AlreadyExists, message)
        }
        Error::DuplicateWrite { .. } => {
            status(Code::AlreadyExists, ErrorKind::DuplicateWrite, message)
        }
        Error::InvalidValue(_) | Error::TypeMismatch { .. } => {
            status(Code::InvalidArgument, ErrorKind::Type, message)
        }
        Error::ConstraintViolation(_) => {
            status(Code::InvalidArgument, ErrorKind::Constraint, message)
        }
        Error::InvalidSpec(spec) => {
            // An initial value of the wrong type is a type error, like a write of one.
            let wrong_type = spec
                .issues
                .iter()
                .any(|i| matches!(&i.problem, SpecProblem::Initial(v) if v.is_type_error()));
            let kind = if wrong_type {
                ErrorKind::Type
            } else {
                ErrorKind::Spec
            };
            status(Code::InvalidArgument, kind, message)
        }
        Error::InvalidPattern(_) => status(Code::InvalidArgument, ErrorKind::Pattern, message),
        Error::Limit { .. } => status(Code::ResourceExhausted, ErrorKind::Limit, message),
        Error::Conflict {
            expected, actual, ..
        } => {
            let mut s = status(Code::Aborted, ErrorKind::Conflict, message);
            let metadata = s.metadata_mut();
            metadata.insert(EXPECTED_VERSION_METADATA, (*expected).into());
            metadata.insert(ACTUAL_VERSION_METADATA, (*actual).into());
            s
        }
        // The shared backend cannot reach Redis: the session's store is unavailable (the
        // message says whether the write may have been applied).
        Error::Shared { .. } | Error::OutcomeUnknown { .. } => {
            status(Code::Unavailable, ErrorKind::Unavailable, message)
        }
        Error::ReadOnly { .. } => status(Code::PermissionDenied, ErrorKind::ReadOnly, message),
        Error::VersionNotFound { .. } => {
            status(Code::NotFound, ErrorKind::VersionNotFound, message)
        }
        _ => status(Code::Internal, ErrorKind::Internal, message),
    }
}

fn field_status(e: &FieldError) -> Status {
    let kind = if e.limit {
        ErrorKind::Limit
    } else {
        ErrorKind::InvalidRequest
    };
    status(Code::InvalidArgument, kind, e.to_string())
}

fn auth_status(e: &AuthError) -> Status {
    match e {
        AuthError::MissingToken | AuthError::UnknownToken => status(
            Code::Unauthenticated,
            ErrorKind::Unauthenticated,
            e.to_string(),
        ),
        AuthError::OtherSession { .. } => status(
            Code::PermissionDenied,
            ErrorKind::PermissionDenied,
            e.to_string(),
        ),
    }
}

trait OrStatus<T> {
    fn or_status(self) -> Result<T, Status>;
}

impl<T> OrStatus<T> for crate::Result<T> {
    fn or_status(self) -> Result<T, Status> {
        self.map_err(|e| error_status(&e))
    }
}

impl<T> OrStatus<T> for Result<T, FieldError> {
    fn or_status(self) -> Result<T, Status> {
        self.map_err(|e| field_status(&e))
    }
}

/// The `SessionService` over one session store.
pub(crate) struct SessionServer {
    store: SessionStore,
    /// Flips to `true` when the server shuts down; watch streams end on it.
    shutdown: watch::Receiver<bool>,
}

impl SessionServer {
    pub(crate) fn new(store: SessionStore, shutdown: watch::Receiver<bool>) -> Self {
        Self { store, shutdown }
    }

    /// The session `session_id`, if the request's token opens it.
    fn session<T>(&self, request: &Request<T>, session_id: &str) -> Result<Arc<Session>, Status> {
        authorized(&self.store, request, session_id)
    }
}

/// The session `session_id` of `store`, if the request's token opens it.
pub(crate) fn authorized<T>(
    store: &SessionStore,
    request: &Request<T>,
    session_id: &str,
) -> Result<Arc<Session>, Status> {
    convert::check_len(
        "session_id",
        session_id,
        MAX_SESSION_ID_BYTES,
        "MAX_SESSION_ID_BYTES",
    )
    .or_status()?;
    let token = request
        .metadata()
        .get(TOKEN_METADATA)
        .map(MetadataValue::as_bytes);
    store
        .authorize(session_id, token, Instant::now())
        .map_err(|e| auth_status(&e))
}

/// A variable name of a request: no variable has a name over [`MAX_NAME_LEN`] bytes, so a
/// longer one is refused as too large (and never quoted back whole).
fn check_name(field: &str, name: &str) -> Result<(), Status> {
    convert::check_len(field, name, MAX_NAME_LEN, "MAX_NAME_LEN").or_status()
}

fn check_names(field: &str, names: &[String]) -> Result<(), Status> {
    convert::check_count(
        field,
        names.len(),
        MAX_NAMES_PER_REQUEST,
        "names",
        "MAX_NAMES_PER_REQUEST",
    )
    .or_status()?;
    for (i, name) in names.iter().enumerate() {
        check_name(&format!("{field}[{i}]"), name)?;
    }
    Ok(())
}

#[tonic::async_trait]
impl SessionService for SessionServer {
    async fn ping(
        &self,
        _request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        Ok(Response::new(pb::PingResponse {
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }

    async fn initialize_session(
        &self,
        request: Request<pb::InitializeSessionRequest>,
    ) -> Result<Response<pb::InitializeSessionResponse>, Status> {
        let request = request.into_inner();
        let ttl = match request.ttl_seconds {
            0 => DEFAULT_SESSION_TTL,
            s if s > MAX_SESSION_TTL.as_secs() => {
                return Err(status(
                    Code::InvalidArgument,
                    ErrorKind::Limit,
                    format!(
                        "`ttl_seconds`: {s} is over the limit of {} (MAX_SESSION_TTL)",
                        MAX_SESSION_TTL.as_secs()
                    ),
                ));
            }
            s => Duration::from_secs(s),
        };
        let metadata = convert::metadata_from_proto("metadata", request.metadata).or_status()?;
        let session = self
            .store
            .create_remote(ttl, metadata, Instant::now())
            .map_err(|e| status(Code::ResourceExhausted, ErrorKind::Limit, e.to_string()))?;
        Ok(Response::new(pb::InitializeSessionResponse {
            session_id: session.id.clone(),
            token: session.token().as_str().to_owned(),
            ttl_seconds: ttl.as_secs(),
        }))
    }

    async fn cleanup_session(
        &self,
        request: Request<pb::CleanupSessionRequest>,
    ) -> Result<Response<pb::CleanupSessionResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        if session.is_owned() {
            return Err(status(
                Code::FailedPrecondition,
                ErrorKind::SessionOwned,
                format!(
                    "session `{}` belongs to a Rust context and ends when the context is dropped",
                    session.id
                ),
            ));
        }
        let dropped = self.store.remove(&session.id).map_or(0, |s| s.table.len());
        Ok(Response::new(pb::CleanupSessionResponse {
            variables_dropped: dropped as u64,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        // Authorizing renews the TTL.
        let session = self.session(&request, &request.get_ref().session_id)?;
        let expires_at = session
            .touch(Instant::now())
            .map(|at| convert::timestamp(wall_clock(at)));
        Ok(Response::new(pb::HeartbeatResponse { expires_at }))
    }

    async fn register_variable(
        &self,
        request: Request<pb::RegisterVariableRequest>,
    ) -> Result<Response<pb::RegisterVariableResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        let r = request.into_inner();
        check_name("name", &r.name)?;
        let spec = VariableSpec {
            ty: convert::var_type_from_proto("type", r.r#type).or_status()?,
            initial: convert::value_from_proto("initial", r.initial).or_status()?,
            constraints: convert::constraints_from_proto("constraints", r.constraints)
                .or_status()?,
            description: convert::description_from_proto("description", r.description)
                .or_status()?,
            metadata: convert::metadata_from_proto("metadata", r.metadata).or_status()?,
            name: r.name,
            // Read-only variables are declared by Rust; Python cannot lock a variable.
            readonly: false,
        };
        let _one_at_a_time = session.register_lock.lock();
        let held = session.table.len();
        if held >= MAX_VARIABLES_PER_SESSION {
            return Err(status(
                Code::ResourceExhausted,
                ErrorKind::Limit,
                format!(
                    "cannot register `{}`: session `{}` already holds {held} variables, the limit (MAX_VARIABLES_PER_SESSION = {MAX_VARIABLES_PER_SESSION})",
                    spec.name, session.id
                ),
            ));
        }
        let record = session.table.register(spec, SOURCE).or_status()?;
        Ok(Response::new(pb::RegisterVariableResponse {
            variable: Some(records::variable_to_proto(&record)),
        }))
    }

    async fn get_variable(
        &self,
        request: Request<pb::GetVariableRequest>,
    ) -> Result<Response<pb::GetVariableResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        check_name("name", &request.get_ref().name)?;
        let mut variable = None;
        session
            .table
            .read(Key::Name(&request.get_ref().name), &mut |r| {
                variable = Some(records::variable_to_proto(r));
            })
            .or_status()?;
        Ok(Response::new(pb::GetVariableResponse { variable }))
    }

    async fn get_variables(
        &self,
        request: Request<pb::GetVariablesRequest>,
    ) -> Result<Response<pb::GetVariablesResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        let names: Vec<&str> = request.get_ref().names.iter().map(String::as_str).collect();
        check_names("names", &request.get_ref().names)?;
        let mut response = pb::GetVariablesResponse::default();
        let mut bytes = 0usize;
        let mut too_large = false;
        // One read lock for all: a batch written atomically is never seen half applied.
        session
            .table
            .read_many(&names, &mut |name, record| {
                if too_large {
                    return;
                }
                match record {
                    Some(r) => {
                        let variable = records::variable_to_proto(r);
                        bytes += encoded_field_len(variable.encoded_len());
                        too_large = bytes > MAX_RESPONSE_BYTES;
                        response.variables.push(variable);
                    }
                    None => response.missing.push(name.to_owned()),
                }
            })
            .or_status()?;
        if too_large {
            return Err(status(
                Code::ResourceExhausted,
                ErrorKind::Limit,
                format!(
                    "the {} variables asked for take more than {MAX_RESPONSE_BYTES} bytes (MAX_RESPONSE_BYTES); ask for fewer at a time",
                    names.len()
                ),
            ));
        }
        Ok(Response::new(response))
    }

    async fn set_variable(
        &self,
        request: Request<pb::SetVariableRequest>,
    ) -> Result<Response<pb::SetVariableResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        let r = request.into_inner();
        check_name("name", &r.name)?;
        let value = convert::value_from_proto("value", r.value).or_status()?;
        let options = SetOptions {
            expected_version: r.expected_version,
            metadata: convert::metadata_from_proto("metadata", r.metadata).or_status()?,
        };
        let version = session
            .table
            .set(Key::Name(&r.name), value, &options, SOURCE)
            .or_status()?;
        Ok(Response::new(pb::SetVariableResponse { version }))
    }

    async fn set_variables(
        &self,
        request: Request<pb::SetVariablesRequest>,
    ) -> Result<Response<pb::SetVariablesResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        let r = request.into_inner();
        convert::check_count(
            "writes",
            r.writes.len(),
            MAX_WRITES_PER_BATCH,
            "writes",
            "MAX_WRITES_PER_BATCH",
        )
        .or_status()?;
        let writes = r
            .writes
            .into_iter()
            .enumerate()
            .map(|(i, w)| {
                convert::check_len(
                    &format!("writes[{i}].name"),
                    &w.name,
                    MAX_NAME_LEN,
                    "MAX_NAME_LEN",
                )?;
                let value = convert::value_from_proto(&format!("writes[{i}].value"), w.value)?;
                Ok((w.name, value))
            })
            .collect::<Result<Vec<_>, FieldError>>()
            .or_status()?;
        let versions = session.table.update_many(writes, SOURCE).or_status()?;
        Ok(Response::new(pb::SetVariablesResponse { versions }))
    }

    async fn list_variables(
        &self,
        request: Request<pb::ListVariablesRequest>,
    ) -> Result<Response<pb::ListVariablesResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        let r = request.get_ref();
        let glob = if r.pattern.is_empty() {
            None
        } else {
            convert::check_len(
                "pattern",
                &r.pattern,
                MAX_PATTERN_BYTES,
                "MAX_PATTERN_BYTES",
            )
            .or_status()?;
            Some(Glob::new(&r.pattern).map_err(|e| error_status(&e.into()))?)
        };
        let page_size = match usize::try_from(r.page_size).unwrap_or(usize::MAX) {
            0 => DEFAULT_LIST_PAGE_SIZE,
            n => {
                convert::check_count(
                    "page_size",
                    n,
                    MAX_LIST_PAGE_SIZE,
                    "records",
                    "MAX_LIST_PAGE_SIZE",
                )
                .or_status()?;
                n
            }
        };
        let after = if r.page_token.is_empty() {
            None
        } else {
            check_name("page_token", &r.page_token)?;
            Some(r.page_token.as_str())
        };
        let mut variables = Vec::new();
        let mut bytes = 0usize;
        let mut more = false;
        session
            .table
            .visit_sorted(glob.as_ref(), after, &mut |record| {
                if variables.len() == page_size {
                    more = true;
                    return false;
                }
                let variable = records::variable_to_proto(record);
                let size = encoded_field_len(variable.encoded_len());
                if !variables.is_empty() && bytes + size > MAX_LIST_PAGE_BYTES {
                    more = true;
                    return false;
                }
                bytes += size;
                variables.push(variable);
                true
            })
            .or_status()?;
        let next_page_token = match variables.last() {
            Some(last) if more => last.name.clone(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListVariablesResponse {
            variables,
            next_page_token,
        }))
    }

    async fn delete_variable(
        &self,
        request: Request<pb::DeleteVariableRequest>,
    ) -> Result<Response<pb::DeleteVariableResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        check_name("name", &request.get_ref().name)?;
        let record = session
            .table
            .delete(Key::Name(&request.get_ref().name), SOURCE)
            .or_status()?;
        Ok(Response::new(pb::DeleteVariableResponse {
            variable: Some(records::variable_to_proto(&record)),
        }))
    }

    type WatchVariablesStream = ReceiverStream<Result<pb::VariableUpdate, Status>>;

    async fn watch_variables(
        &self,
        request: Request<pb::WatchVariablesRequest>,
    ) -> Result<Response<Self::WatchVariablesStream>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        let r = request.into_inner();
        check_names("names", &r.names)?;
        let slot = session.watcher_slot().ok_or_else(|| {
            status(
                Code::ResourceExhausted,
                ErrorKind::Limit,
                format!(
                    "session `{}` already has {} watch streams, the limit (MAX_WATCHERS_PER_SESSION)",
                    session.id,
                    crate::wire::limits::MAX_WATCHERS_PER_SESSION
                ),
            )
        })?;
        let names: Vec<&str> = r.names.iter().map(String::as_str).collect();
        // Subscribed to the context's hub, under the table's lock: no change falls between the
        // initial values and the stream.
        let watcher = session
            .table
            .watch(
                &names,
                WatchOptions {
                    capacity: WATCH_QUEUE_CAPACITY,
                    include_initial: r.include_initial,
                },
            )
            .or_status()?;
        let closed = session.closed();
        let shutdown = self.shutdown.clone();
        // The forwarder holds neither the session nor the hub, so that dropping them ends it.
        drop(session);
        // One update in the channel at a time: what waits for a slow client waits in the
        // forwarder's queue, bounded in events and bytes.
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(forward_watch(watcher, tx, closed, shutdown, slot));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_history(
        &self,
        request: Request<pb::GetHistoryRequest>,
    ) -> Result<Response<pb::GetHistoryResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        let r = request.get_ref();
        let limit = match r.limit {
            None => MAX_HISTORY_ENTRIES_PER_REQUEST,
            Some(limit) => {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                convert::check_count(
                    "limit",
                    limit,
                    MAX_HISTORY_ENTRIES_PER_REQUEST,
                    "entries",
                    "MAX_HISTORY_ENTRIES_PER_REQUEST",
                )
                .or_status()?;
                limit
            }
        };
        let entries = session
            .table
            .history(Key::Name(&r.name), limit)
            .or_status()?;
        Ok(Response::new(pb::GetHistoryResponse {
            entries: entries
                .iter()
                .map(records::history_entry_to_proto)
                .collect(),
        }))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::RollbackResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        let r = request.get_ref();
        let version = session
            .table
            .rollback(Key::Name(&r.name), r.version, SOURCE)
            .or_status()?;
        Ok(Response::new(pb::RollbackResponse { version }))
    }
}

/// The bytes a message of `len` bytes takes as a repeated field of another message (its tag
/// and length prefix included).
fn encoded_field_len(len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Moves one watch stream's events from the context's hub to its gRPC client. It takes every
/// event from the hub as soon as it is published (so the hub's queue stays short) into a
/// [`WatchQueue`], bounded in events and bytes, and sends from there as fast as the client
/// reads. It ends when the client goes away, the session closes or the server shuts down.
async fn forward_watch(
    mut watcher: crate::Watcher,
    tx: mpsc::Sender<Result<pb::VariableUpdate, Status>>,
    mut closed: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
    _slot: super::store::WatcherSlot,
) {
    let stop = async {
        tokio::select! {
            _ = closed.wait_for(|c| *c) => {}
            _ = shutdown.wait_for(|s| *s) => {}
        }
    };
    tokio::pin!(stop);
    let mut queue = WatchQueue::new(WATCH_QUEUE_CAPACITY, MAX_WATCH_QUEUE_BYTES);
    let mut open = true;
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            event = watcher.recv(), if open => match event {
                Some(event) => queue.push(records::update_to_proto(&event)),
                None => open = false,
            },
            permit = tx.reserve(), if queue.has_next() => match (permit, queue.pop()) {
                (Ok(permit), Some(update)) => permit.send(Ok(update)),
                _ => break,
            },
            () = tx.closed() => break,
            else => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dspex_core::{Constraints, Value, VarType};

    fn kind(s: &Status) -> ErrorKind {
        ErrorKind::from_str_name(s.metadata().get(ERROR_METADATA).unwrap().to_str().unwrap())
            .unwrap()
    }

    #[test]
    fn errors_map_to_codes_and_kinds() {
        let spec = VariableSpec::new("t", VarType::Float, 0.5)
            .with_constraints(Constraints::range(0.0, 1.0));
        let type_error = Error::from(spec.validate(Value::from("x")).unwrap_err());
        let constraint = Error::from(spec.validate(Value::from(2.0)).unwrap_err());
        let bad_initial = Error::from(
            VariableSpec::new("n", VarType::Integer, 1.5)
                .check()
                .unwrap_err(),
        );
        let bad_spec = Error::from(
            VariableSpec::new("c", VarType::Choice, "a")
                .check()
                .unwrap_err(),
        );
        let cases = [
            (Error::not_found("x"), Code::NotFound, ErrorKind::NotFound),
            (
                Error::AlreadyExists { name: "x".into() },
                Code::AlreadyExists,
                ErrorKind::AlreadyExists,
            ),
            (
                Error::DuplicateWrite { name: "x".into() },
                Code::AlreadyExists,
                ErrorKind::DuplicateWrite,
            ),
            (type_error, Code::InvalidArgument, ErrorKind::Type),
            (constraint, Code::InvalidArgument, ErrorKind::Constraint),
            (bad_initial, Code::InvalidArgument, ErrorKind::Type),
            (bad_spec, Code::InvalidArgument, ErrorKind::Spec),
            (
                Error::Conflict {
                    name: "x".into(),
                    expected: 1,
                    actual: 2,
                },
                Code::Aborted,
                ErrorKind::Conflict,
            ),
            (
                Error::ReadOnly { name: "x".into() },
                Code::PermissionDenied,
                ErrorKind::ReadOnly,
            ),
            (
                Error::VersionNotFound {
                    name: "x".into(),
                    version: 1,
                    oldest: 2,
                    newest: 3,
                },
                Code::NotFound,
                ErrorKind::VersionNotFound,
            ),
            (Error::internal("boom"), Code::Internal, ErrorKind::Internal),
        ];
        for (error, code, expected_kind) in cases {
            let s = error_status(&error);
            assert_eq!(s.code(), code, "{error}");
            assert_eq!(kind(&s), expected_kind, "{error}");
            assert_eq!(s.message(), error.to_string());
        }
        let s = error_status(&Error::Conflict {
            name: "x".into(),
            expected: 1,
            actual: 2,
        });
        assert_eq!(s.metadata().get("x-dspex-actual-version").unwrap(), "2");
        assert_eq!(s.metadata().get("x-dspex-expected-version").unwrap(), "1");
    }

    #[test]
    fn auth_errors_map_to_unauthenticated_and_permission_denied() {
        for (e, code) in [
            (AuthError::MissingToken, Code::Unauthenticated),
            (AuthError::UnknownToken, Code::Unauthenticated),
            (
                AuthError::OtherSession {
                    session_id: "s".into(),
                },
                Code::PermissionDenied,
            ),
        ] {
            assert_eq!(auth_status(&e).code(), code);
        }
    }
}
