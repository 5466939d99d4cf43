//! The JSON the dashboard's page reads (programs with their variables and history, recent
//! runs, studies) and its writes (an edit from the form, a rollback), each behind the
//! session checks of `auth`; writes are the `/v1` routes' writes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use dspex_core::VarType;
use dspex_core::program::{ModuleRef, StepKind, StepSpec};
use serde_json::{Value as Json, json};

use super::HISTORY_SHOWN;
use super::auth::{require_viewer, require_writer};
use super::sessions::Role;
use super::studies::study_json;
use crate::serve::error::ApiError;
use crate::serve::run::served;
use crate::serve::schema::signature;
use crate::serve::state::{Served, ServerState};
use crate::serve::variables::{
    declared, history_of, records, respond, roll_back, rollback_version, write, write_body,
};

fn step_json(step: &StepSpec) -> Json {
    let (kind, module) = match &step.kind {
        StepKind::Native { type_name } => ("native", type_name.clone()),
        StepKind::Python {
            module: ModuleRef::Builtin(m) | ModuleRef::Path(m),
        } => ("python", m.clone()),
        StepKind::Python {
            module: ModuleRef::Variable(var),
        } => ("python", format!("@{var}")),
    };
    json!({
        "name": step.name,
        "kind": kind,
        "module": module,
        "signature": step.signature.to_string(),
    })
}

/// One program: its signature, steps, and variables with their history.
fn program_json(name: &str, served: &Served) -> Result<Json, ApiError> {
    let spec = served.program.program_spec();
    let mut variables = Vec::new();
    for (var, mut record) in records(served)? {
        record["name"] = json!(var);
        record["history"] = history_of(served, &var, HISTORY_SHOWN)?;
        variables.push(record);
    }
    // In declaration order, as the program lists them.
    variables.sort_by_key(|v| {
        spec.variables
            .iter()
            .position(|d| v["name"] == d.name.as_str())
    });
    Ok(json!({
        "name": name,
        "program": spec.name,
        "signature": signature(spec),
        "steps": spec.steps.iter().map(step_json).collect::<Vec<_>>(),
        "variables": variables,
    }))
}

/// `GET /dashboard/api/overview`: who is signed in, the programs, the studies' names.
pub(crate) async fn overview(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Response {
    respond((|| {
        let role = require_viewer(&state, &headers)?;
        let programs = state
            .programs
            .iter()
            .map(|(name, served)| program_json(name, served))
            .collect::<Result<Vec<_>, _>>()?;
        let studies: Vec<&str> = state
            .dashboard
            .studies
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        Ok(json!({
            "role": role.name(),
            "can_write": role == Role::Admin,
            "signed_in": state.token.is_some() || role == Role::Admin,
            "programs": programs,
            "studies": studies,
        }))
    })())
}

/// `GET /dashboard/api/runs`: the recent runs, newest first.
pub(crate) async fn runs(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    respond(
        require_viewer(&state, &headers).map(|_| Json::Array(state.dashboard.runs.newest_first())),
    )
}

/// `GET /dashboard/api/studies`: every study with its trials and plots.
pub(crate) async fn studies(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Err(error) = require_viewer(&state, &headers) {
        return error.into_response();
    }
    let mut out = Vec::with_capacity(state.dashboard.studies.len());
    for (name, study) in &state.dashboard.studies {
        out.push(study_json(name, study).await);
    }
    axum::Json(Json::Array(out)).into_response()
}

/// The program `name`, which must declare `var`, for a write by this request: an admin
/// session, same origin.
fn written<'s>(
    state: &'s ServerState,
    headers: &HeaderMap,
    name: &str,
    var: &str,
) -> Result<&'s Served, ApiError> {
    require_writer(state, headers)?;
    declared(served(state, name)?, var)
}

/// The text typed in the form as the JSON of a `/v1` write: as it is for a text variable
/// (`string`, `choice`, `module`), else read as JSON (`0.7`, `true`, `[0.1, 0.2]`).
fn typed(var: &str, ty: VarType, text: &str) -> Result<Json, ApiError> {
    match ty {
        VarType::String | VarType::Choice | VarType::Module => Ok(json!(text)),
        _ => serde_json::from_str(text.trim()).map_err(|_| {
            ApiError::invalid_input(format!(
                "`{var}` is a {} variable: `{text}` is not one",
                ty.name()
            ))
            .on(var)
        }),
    }
}

/// `PUT /dashboard/api/programs/{name}/variables/{var}` with `{"text", "expected_version"?}`
/// (admin session, same origin): the form's edit.
pub(crate) async fn edit(
    State(state): State<Arc<ServerState>>,
    Path((name, var)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond((|| {
        let served = written(&state, &headers, &name, &var)?;
        let (text, expected) = write_body(body, &var, "text")?;
        let Json::String(text) = text else {
            return Err(ApiError::invalid_input(format!(
                "`text` is the new value of `{var}` as text, not {text}"
            ))
            .on(&var));
        };
        let ty = served
            .program
            .program_context()
            .record(&var)
            .map_err(|e| ApiError::from_variables(&e))?
            .ty;
        let value = typed(&var, ty, &text)?;
        let version = write(served, &var, &value, expected)?;
        Ok(json!({"version": version}))
    })())
}

/// `POST /dashboard/api/programs/{name}/variables/{var}/rollback` with `{"version"}` (admin
/// session, same origin).
pub(crate) async fn rollback(
    State(state): State<Arc<ServerState>>,
    Path((name, var)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond((|| {
        let served = written(&state, &headers, &name, &var)?;
        let version = rollback_version(&var, body)?;
        let version = roll_back(served, &var, version)?;
        Ok(json!({"version": version}))
    })())
}
