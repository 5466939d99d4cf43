//! The variable routes: read a program's variables, write one (admin token, compare-and-set),
//! read its history, roll it back. A write over HTTP is a Rust write with metadata
//! `written_by = "http"`; a refused one changes nothing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::error::ApiError;
use super::handle::require_admin;
use super::json;
use super::run::{QueryParams, json_object, known_keys, known_params, served};
use super::state::{Served, ServerState};
use super::{DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE};
use crate::context::Context;
use crate::state::provider::{SetOptions, VarRecord};
use crate::util::value_json::from_json;

/// The metadata key and value of a write over HTTP.
const WRITTEN_BY: (&str, &str) = ("written_by", "http");

/// The JSON body, or the error.
pub(crate) fn respond(result: Result<Json, ApiError>) -> Response {
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The variable `var` of the program, which must declare it, or 404.
pub(crate) fn declared<'s>(served: &'s Served, var: &str) -> Result<&'s Served, ApiError> {
    let spec = served.program.program_spec();
    if spec.variable(var).is_some() {
        Ok(served)
    } else {
        Err(ApiError::not_found(format!(
            "program `{}` declares no variable `{var}`",
            spec.name
        ))
        .on(var))
    }
}

/// The record of `var` if HTTP may write it: a read-only variable is written by the program's
/// Rust code only, so a write over HTTP is 403.
fn writable(ctx: &Context, var: &str) -> Result<VarRecord, ApiError> {
    let record = ctx.record(var).map_err(|e| ApiError::from_variables(&e))?;
    if record.readonly {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("variable `{var}` is read-only: only the program's Rust code writes it"),
        )
        .on(var));
    }
    Ok(record)
}

/// `GET /v1/programs/{name}/variables`.
pub(crate) async fn list(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
    query: QueryParams,
) -> Response {
    respond((|| {
        let served = served(&state, &name)?;
        known_params(&query, &[])?;
        Ok(Json::Object(records(served)?))
    })())
}

/// Every variable of a program as `GET /variables` shows it, by name.
pub(crate) fn records(served: &Served) -> Result<Map<String, Json>, ApiError> {
    let program = &*served.program;
    let ctx = program.program_context();
    let mut out = Map::new();
    for variable in &program.program_spec().variables {
        let record = ctx
            .record(&variable.name)
            .map_err(|e| ApiError::from_variables(&e))?;
        out.insert(variable.name.clone(), json::variable(&record));
    }
    Ok(out)
}

/// `PUT /v1/programs/{name}/variables/{var}` with `{"value", "expected_version"?}`.
pub(crate) async fn put(
    State(state): State<Arc<ServerState>>,
    Path((name, var)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond((|| {
        require_admin(&state, &headers)?;
        let served = declared(served(&state, &name)?, &var)?;
        let (value, expected) = write_body(body, &var, "value")?;
        let version = write(served, &var, &value, expected)?;
        Ok(json!({"version": version}))
    })())
}

/// A write's body: `{FIELD, "expected_version"?}` and no other key; FIELD's value (the new
/// value of `var`, in some form) and the version the write expects, if it gives one.
pub(crate) fn write_body(
    body: Result<Bytes, BytesRejection>,
    var: &str,
    field: &str,
) -> Result<(Json, Option<u64>), ApiError> {
    let mut body = json_object(body)?;
    known_keys(&body, &[field, "expected_version"])?;
    let value = body.remove(field).ok_or_else(|| {
        ApiError::invalid_input(format!("the body has no `{field}` for `{var}`")).on(var)
    })?;
    let expected = expected_version(var, body.remove("expected_version"))?;
    Ok((value, expected))
}

/// The `expected_version` of a write body, if it gives one.
fn expected_version(var: &str, given: Option<Json>) -> Result<Option<u64>, ApiError> {
    match given {
        None | Some(Json::Null) => Ok(None),
        Some(version) => version.as_u64().map(Some).ok_or_else(|| {
            ApiError::invalid_input(format!(
                "`expected_version` is a version number, not {version}"
            ))
            .on(var)
        }),
    }
}

/// Writes `value` (JSON, read as the variable's type) to `var` of a program that declares it,
/// as an HTTP write (`written_by = "http"`), compare-and-set when `expected` is given; the
/// new version.
pub(crate) fn write(
    served: &Served,
    var: &str,
    value: &Json,
    expected: Option<u64>,
) -> Result<u64, ApiError> {
    let options = expected.map_or_else(SetOptions::default, SetOptions::expect_version);
    let options = options.with_metadata(WRITTEN_BY.0, WRITTEN_BY.1);
    let ctx = served.program.program_context();
    let record = writable(ctx, var)?;
    let value = from_json(record.ty, value)
        .map_err(|message| ApiError::invalid_input(format!("{var}: {message}")).on(var))?;
    ctx.set_with(var, value, &options)
        .map_err(|e| ApiError::from_variables(&e))
}

/// `GET /v1/programs/{name}/variables/{var}/history?limit=n`, newest first.
pub(crate) async fn history(
    State(state): State<Arc<ServerState>>,
    Path((name, var)): Path<(String, String)>,
    query: QueryParams,
) -> Response {
    respond((|| {
        let served = declared(served(&state, &name)?, &var)?;
        let query = known_params(&query, &["limit"])?;
        let limit = match query.get("limit") {
            None => DEFAULT_HISTORY_PAGE,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_HISTORY_PAGE).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid_input(format!(
                        "query parameter `limit` is a number from 1 to {MAX_HISTORY_PAGE}, not `{text}`"
                    ))
                    .on("limit"));
                }
            },
        };
        history_of(served, &var, limit)
    })())
}

/// The last `limit` history entries of `var`, newest first, as JSON.
pub(crate) fn history_of(served: &Served, var: &str, limit: usize) -> Result<Json, ApiError> {
    let entries = served
        .program
        .program_context()
        .history(var, limit)
        .map_err(|e| ApiError::from_variables(&e))?;
    Ok(Json::Array(
        entries.iter().map(json::history_entry).collect(),
    ))
}

/// `POST /v1/programs/{name}/variables/{var}/rollback` with `{"version": n}`.
pub(crate) async fn rollback(
    State(state): State<Arc<ServerState>>,
    Path((name, var)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    respond((|| {
        require_admin(&state, &headers)?;
        let served = declared(served(&state, &name)?, &var)?;
        let version = rollback_version(&var, body)?;
        let version = roll_back(served, &var, version)?;
        Ok(json!({"version": version}))
    })())
}

/// The version a rollback body (`{"version": n}`) asks `var` to go back to.
pub(crate) fn rollback_version(
    var: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<u64, ApiError> {
    let body = json_object(body)?;
    known_keys(&body, &["version"])?;
    body.get("version").and_then(Json::as_u64).ok_or_else(|| {
        ApiError::invalid_input(format!(
            "the body needs `version`, the version of `{var}` to go back to"
        ))
        .on(var)
    })
}

/// Rolls `var` of a program that declares it back to `version`; the new version.
pub(crate) fn roll_back(served: &Served, var: &str, version: u64) -> Result<u64, ApiError> {
    let ctx = served.program.program_context();
    writable(ctx, var)?;
    ctx.rollback(var, version)
        .map_err(|e| ApiError::from_variables(&e))
}
