//! The gRPC `SessionService`: authenticates every request against the session store, checks
//! the request-size [`limits`](super::limits), runs the operation on the session's table (where
//! dspex-core enforces every variable rule) and maps errors to status codes with a
//! machine-readable kind in the `x-dspex-error` trailer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dspex_core::{Glob, SpecProblem, VariableSpec};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request, Response, Status};

use super::convert::{self, FieldError};
use super::limits::{
    DEFAULT_SESSION_TTL, MAX_HISTORY_ENTRIES_PER_REQUEST, MAX_NAMES_PER_REQUEST, MAX_PATTERN_BYTES,
    MAX_SESSION_TTL, MAX_VARIABLES_PER_SESSION, MAX_WRITES_PER_BATCH, WATCH_QUEUE_CAPACITY,
};
use super::proto::session_service_server::SessionService;
use super::proto::{self as pb};
use super::store::{AuthError, Session, SessionStore, wall_clock};
use super::{ERROR_METADATA, TOKEN_METADATA};
use crate::error::Error;
use crate::state::{Key, SetOptions, Source, StateProvider, WatchOptions};

/// Every write over gRPC comes from the Python side of the bridge.
const SOURCE: Source = Source::Python;

/// Builds a status whose `x-dspex-error` trailer carries `kind`.
pub(crate) fn status(code: Code, kind: &'static str, message: impl Into<String>) -> Status {
    let mut metadata = MetadataMap::new();
    metadata.insert(ERROR_METADATA, MetadataValue::from_static(kind));
    Status::with_metadata(code, message, metadata)
}

/// The status of a dspex error, with its kind (the table in the [`bridge`](super) docs).
pub(crate) fn error_status(e: &Error) -> Status {
    let message = e.to_string();
    match e {
        Error::NotFound { .. } => status(Code::NotFound, "not_found", message),
        Error::AlreadyExists { .. }
        | Error::IncompatibleVariable { .. }
        | Error::DeclarationMismatch { .. } => {
            status(Code::AlreadyExists, "already_exists", message)
        }
        Error::DuplicateWrite { .. } => status(Code::AlreadyExists, "duplicate_write", message),
        Error::InvalidValue(_) | Error::TypeMismatch { .. } => {
            status(Code::InvalidArgument, "type", message)
        }
        Error::ConstraintViolation(_) => status(Code::InvalidArgument, "constraint", message),
        Error::InvalidSpec(spec) => {
            // An initial value of the wrong type is a type error, like a write of one.
            let wrong_type = spec
                .issues
                .iter()
                .any(|i| matches!(&i.problem, SpecProblem::Initial(v) if v.is_type_error()));
            let kind = if wrong_type { "type" } else { "spec" };
            status(Code::InvalidArgument, kind, message)
        }
        Error::InvalidPattern(_) => status(Code::InvalidArgument, "pattern", message),
        Error::Conflict {
            expected, actual, ..
        } => {
            let mut s = status(Code::Aborted, "conflict", message);
            let metadata = s.metadata_mut();
            metadata.insert("x-dspex-expected-version", (*expected).into());
            metadata.insert("x-dspex-actual-version", (*actual).into());
            s
        }
        // The shared backend cannot reach Redis: the session's store is unavailable.
        Error::Shared { .. } => status(Code::Unavailable, "unavailable", message),
        Error::ReadOnly { .. } => status(Code::PermissionDenied, "read_only", message),
        Error::VersionNotFound { .. } => status(Code::NotFound, "version_not_found", message),
        _ => status(Code::Internal, "internal", message),
    }
}

fn field_status(e: &FieldError) -> Status {
    let kind = if e.limit { "limit" } else { "invalid_request" };
    status(Code::InvalidArgument, kind, e.to_string())
}

fn auth_status(e: &AuthError) -> Status {
    match e {
        AuthError::MissingToken | AuthError::UnknownToken => {
            status(Code::Unauthenticated, "unauthenticated", e.to_string())
        }
        AuthError::OtherSession { .. } => {
            status(Code::PermissionDenied, "permission_denied", e.to_string())
        }
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
        let token = request
            .metadata()
            .get(TOKEN_METADATA)
            .map(MetadataValue::as_bytes);
        self.store
            .authorize(session_id, token, Instant::now())
            .map_err(|e| auth_status(&e))
    }
}

fn check_names(field: &str, names: &[String]) -> Result<(), Status> {
    convert::check_count(
        field,
        names.len(),
        MAX_NAMES_PER_REQUEST,
        "names",
        "MAX_NAMES_PER_REQUEST",
    )
    .or_status()
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
                    "limit",
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
            .map_err(|e| status(Code::ResourceExhausted, "limit", e.to_string()))?;
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
                "session_owned",
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
                "limit",
                format!(
                    "cannot register `{}`: session `{}` already holds {held} variables, the limit (MAX_VARIABLES_PER_SESSION = {MAX_VARIABLES_PER_SESSION})",
                    spec.name, session.id
                ),
            ));
        }
        let record = session.table.register(spec, SOURCE).or_status()?;
        Ok(Response::new(pb::RegisterVariableResponse {
            variable: Some(convert::variable_to_proto(&record)),
        }))
    }

    async fn get_variable(
        &self,
        request: Request<pb::GetVariableRequest>,
    ) -> Result<Response<pb::GetVariableResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        let mut variable = None;
        session
            .table
            .read(Key::Name(&request.get_ref().name), &mut |r| {
                variable = Some(convert::variable_to_proto(r));
            })
            .or_status()?;
        Ok(Response::new(pb::GetVariableResponse { variable }))
    }

    async fn get_variables(
        &self,
        request: Request<pb::GetVariablesRequest>,
    ) -> Result<Response<pb::GetVariablesResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        let names = &request.get_ref().names;
        check_names("names", names)?;
        let mut response = pb::GetVariablesResponse::default();
        // One read lock for all: a batch written atomically is never seen half applied.
        session
            .table
            .read_many(names, &mut |name, record| match record {
                Some(r) => response.variables.push(convert::variable_to_proto(r)),
                None => response.missing.push(name.to_owned()),
            });
        Ok(Response::new(response))
    }

    async fn set_variable(
        &self,
        request: Request<pb::SetVariableRequest>,
    ) -> Result<Response<pb::SetVariableResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        let r = request.into_inner();
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
        let pattern = &request.get_ref().pattern;
        let glob = if pattern.is_empty() {
            None
        } else {
            convert::check_len("pattern", pattern, MAX_PATTERN_BYTES, "MAX_PATTERN_BYTES")
                .or_status()?;
            Some(Glob::new(pattern).map_err(|e| error_status(&e.into()))?)
        };
        let records = session.table.list(glob.as_ref()).or_status()?;
        Ok(Response::new(pb::ListVariablesResponse {
            variables: records.iter().map(convert::variable_to_proto).collect(),
        }))
    }

    async fn delete_variable(
        &self,
        request: Request<pb::DeleteVariableRequest>,
    ) -> Result<Response<pb::DeleteVariableResponse>, Status> {
        let session = self.session(&request, &request.get_ref().session_id)?;
        let record = session
            .table
            .delete(Key::Name(&request.get_ref().name), SOURCE)
            .or_status()?;
        Ok(Response::new(pb::DeleteVariableResponse {
            variable: Some(convert::variable_to_proto(&record)),
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
                "limit",
                format!(
                    "session `{}` already has {} watch streams, the limit (MAX_WATCHERS_PER_SESSION)",
                    session.id,
                    super::limits::MAX_WATCHERS_PER_SESSION
                ),
            )
        })?;
        let names: Vec<&str> = r.names.iter().map(String::as_str).collect();
        // Subscribed to the context's hub, under the table's lock: no change falls between the
        // initial values and the stream.
        let mut watcher = session
            .table
            .watch(
                &names,
                WatchOptions {
                    capacity: WATCH_QUEUE_CAPACITY,
                    include_initial: r.include_initial,
                },
            )
            .or_status()?;
        let mut closed = session.closed();
        let mut shutdown = self.shutdown.clone();
        // The forwarder holds neither the session nor the hub, so that dropping them ends it.
        drop(session);
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let _slot = slot;
            let stop = async {
                tokio::select! {
                    _ = closed.wait_for(|c| *c) => {}
                    _ = shutdown.wait_for(|s| *s) => {}
                }
            };
            tokio::pin!(stop);
            loop {
                let event = tokio::select! {
                    event = watcher.recv() => event,
                    () = tx.closed() => break,
                    () = &mut stop => break,
                };
                let Some(event) = event else { break };
                tokio::select! {
                    sent = tx.send(Ok(convert::update_to_proto(&event))) => {
                        if sent.is_err() {
                            break;
                        }
                    }
                    () = &mut stop => break,
                }
            }
        });
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
                .map(convert::history_entry_to_proto)
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

#[cfg(test)]
mod tests {
    use super::*;
    use dspex_core::{Constraints, Value, VarType};

    fn kind(s: &Status) -> &str {
        s.metadata().get(ERROR_METADATA).unwrap().to_str().unwrap()
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
            (Error::not_found("x"), Code::NotFound, "not_found"),
            (
                Error::AlreadyExists { name: "x".into() },
                Code::AlreadyExists,
                "already_exists",
            ),
            (
                Error::DuplicateWrite { name: "x".into() },
                Code::AlreadyExists,
                "duplicate_write",
            ),
            (type_error, Code::InvalidArgument, "type"),
            (constraint, Code::InvalidArgument, "constraint"),
            (bad_initial, Code::InvalidArgument, "type"),
            (bad_spec, Code::InvalidArgument, "spec"),
            (
                Error::Conflict {
                    name: "x".into(),
                    expected: 1,
                    actual: 2,
                },
                Code::Aborted,
                "conflict",
            ),
            (
                Error::ReadOnly { name: "x".into() },
                Code::PermissionDenied,
                "read_only",
            ),
            (
                Error::VersionNotFound {
                    name: "x".into(),
                    version: 1,
                    oldest: 2,
                    newest: 3,
                },
                Code::NotFound,
                "version_not_found",
            ),
            (Error::internal("boom"), Code::Internal, "internal"),
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
