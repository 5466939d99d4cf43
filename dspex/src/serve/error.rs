//! The JSON error object every route answers with: `{"error": {"kind", "message", "field"}}`,
//! and how dspex's errors map onto it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

/// A refused or failed request: its status, a stable `kind`, a message, and the input or
/// variable at fault.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) field: Option<String>,
    /// Seconds for a `Retry-After` header (429).
    pub(crate) retry_after: Option<u64>,
    /// The step that failed (a run's error that names one; for the metrics).
    pub(crate) step: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            field: None,
            retry_after: None,
            step: None,
        }
    }

    pub(crate) fn on(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub(crate) fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    pub(crate) fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
    }

    pub(crate) fn shutting_down() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down and takes no new requests",
        )
    }

    /// The JSON object (`{"kind", "message", "field"?}`) inside `{"error": ..}`.
    pub(crate) fn body(&self) -> serde_json::Value {
        let mut body = json!({"kind": self.kind, "message": self.message});
        if let Some(field) = &self.field {
            body["field"] = json!(field);
        }
        body
    }

    /// A variable route's error: what the context refused, and why.
    pub(crate) fn from_variables(error: &Error) -> Self {
        match error {
            Error::NotFound { name } => {
                Self::not_found(format!("variable `{name}` not found")).on(name)
            }
            Error::VersionNotFound { name, .. } => Self::not_found(error.to_string()).on(name),
            Error::Conflict { name, .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", error.to_string()).on(name)
            }
            Error::ReadOnly { name } => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", error.to_string()).on(name)
            }
            _ => Self::from_input(error).unwrap_or_else(|| {
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    error.report(),
                )
            }),
        }
    }

    /// A run's error: a refused input or override (422), or a failing step (500).
    pub(crate) fn from_run(error: &Error) -> Self {
        let mut api = Self::from_input(error).unwrap_or_else(|| {
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "step_failed",
                error.report(),
            )
        });
        api.step = error.failed_step().map(str::to_owned);
        api
    }

    /// The 422 of a value a variable refuses, or of an override of an undeclared variable.
    fn from_input(error: &Error) -> Option<Self> {
        match error {
            Error::ConstraintViolation(e) | Error::InvalidValue(e) => Some(
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "constraint",
                    e.to_string(),
                )
                .on(&e.variable),
            ),
            Error::TypeMismatch { name, .. } => {
                Some(Self::invalid_input(error.to_string()).on(name))
            }
            Error::UnknownOverride { name, .. } => {
                Some(Self::invalid_input(error.to_string()).on(name))
            }
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(json!({"error": self.body()}))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
