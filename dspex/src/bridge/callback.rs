//! The `CallbackService` of the bridge server: a session's Python code calls the Rust callables
//! registered for the session by name, with JSON arguments and the id of the module call it is
//! made in.
//!
//! The service authenticates the call (the token rule of `SessionService`: a session reaches
//! only its own callables), bounds its arguments ([`MAX_CALLBACK_ARGUMENT_BYTES`]), checks they
//! are UTF-8 text of a JSON object, and hands it to the session's [`CallbackDispatch`], which
//! admits, runs and records it. An error, a panic or a timeout of the callable is an answer
//! (`error`), never a failed RPC: an agent sees it as an observation.

use dspex_core::excerpt;
use serde_json::Value as JsonValue;
use tonic::{Code, Request, Response, Status};

use super::dispatch::{CallbackCall, CallbackRefusal};
use super::server::{authorized, bounded_message, status};
use super::store::SessionStore;
use crate::wire::TRACEPARENT_METADATA;
use crate::wire::limits::MAX_CALLBACK_ARGUMENT_BYTES;
use crate::wire::proto::callback_service_server::CallbackService;
use crate::wire::proto::{self as pb, ErrorKind};

/// `CallbackService` over a session store.
pub(crate) struct CallbackServer {
    store: SessionStore,
}

impl CallbackServer {
    pub(crate) fn new(store: SessionStore) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl CallbackService for CallbackServer {
    async fn call(
        &self,
        request: Request<pb::CallbackRequest>,
    ) -> std::result::Result<Response<pb::CallbackResponse>, Status> {
        let session = authorized(&self.store, &request, &request.get_ref().session_id)?;
        let traceparent = request
            .metadata()
            .get(TRACEPARENT_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let r = request.into_inner();
        if r.arguments_json.len() > MAX_CALLBACK_ARGUMENT_BYTES {
            return Err(status(
                Code::InvalidArgument,
                ErrorKind::Limit,
                format!(
                    "the arguments of `{}` take {} bytes, over the limit of {MAX_CALLBACK_ARGUMENT_BYTES} (MAX_CALLBACK_ARGUMENT_BYTES)",
                    excerpt(&r.name),
                    r.arguments_json.len()
                ),
            ));
        }
        let Some(dispatch) = session.dispatch() else {
            return Err(status(
                Code::NotFound,
                ErrorKind::NotFound,
                format!(
                    "session `{}` has no callable `{}`; it has: none",
                    session.id,
                    excerpt(&r.name)
                ),
            ));
        };
        let text = std::str::from_utf8(&r.arguments_json).map_err(|e| {
            status(
                Code::InvalidArgument,
                ErrorKind::InvalidRequest,
                format!(
                    "the arguments of `{}` must be UTF-8 text; byte {} is not",
                    excerpt(&r.name),
                    e.valid_up_to()
                ),
            )
        })?;
        let arguments = match serde_json::from_str::<JsonValue>(text) {
            Ok(JsonValue::Object(map)) => map,
            Ok(_) | Err(_) => {
                return Err(status(
                    Code::InvalidArgument,
                    ErrorKind::InvalidRequest,
                    format!(
                        "the arguments of `{}` must be a JSON object, found {:?}",
                        excerpt(&r.name),
                        excerpt(text)
                    ),
                ));
            }
        };
        let call = CallbackCall {
            session_id: session.id.clone(),
            name: r.name,
            arguments,
            call_id: r.call_id,
            traceparent,
        };
        drop(session);
        let answer = dispatch
            .dispatch(call)
            .await
            .map_err(|refusal| match refusal {
                CallbackRefusal::UnknownCallable(message)
                | CallbackRefusal::UnknownCall(message) => {
                    status(Code::NotFound, ErrorKind::NotFound, message)
                }
                CallbackRefusal::Limit(message) => {
                    status(Code::ResourceExhausted, ErrorKind::Limit, message)
                }
            })?;
        Ok(Response::new(pb::CallbackResponse {
            outcome: Some(match answer.outcome {
                Ok(json) => pb::callback_response::Outcome::ResultJson(json),
                Err(e) => pb::callback_response::Outcome::Error(bounded_message(e)),
            }),
            duration_micros: u64::try_from(answer.duration.as_micros()).unwrap_or(u64::MAX),
        }))
    }
}
