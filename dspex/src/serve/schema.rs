//! What the server tells about its programs: each one's signature and the JSON Schemas of its
//! inputs and outputs (from the fields' declared types), and an OpenAPI 3.1 document of every
//! route.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use dspex_core::SignatureField;
use dspex_core::program::ProgramSpec;
use serde_json::{Map, Value as Json, json};

use super::state::{Served, ServerState};

/// The JSON Schema of an object with these fields, all required, no others.
fn object_schema(fields: &[&SignatureField]) -> Json {
    let properties: Map<String, Json> = fields
        .iter()
        .map(|f| (f.name.clone(), f.ty.json_schema()))
        .collect();
    let required: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The program's signature as DSPy writes it (`question: str -> answer: str`).
pub(crate) fn signature(spec: &ProgramSpec) -> String {
    let side = |fields: Vec<&SignatureField>| {
        fields
            .iter()
            .map(|f| format!("{}: {}", f.name, f.ty))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{} -> {}",
        side(spec.input_fields()),
        side(spec.output_fields())
    )
}

/// `GET /v1/programs`.
pub(crate) async fn programs(State(state): State<Arc<ServerState>>) -> Response {
    let list: Vec<Json> = state
        .programs
        .iter()
        .map(|(name, served)| {
            let spec = served.program.program_spec();
            json!({
                "name": name,
                "signature": signature(spec),
                "input_schema": object_schema(&spec.input_fields()),
                "output_schema": object_schema(&spec.output_fields()),
            })
        })
        .collect();
    axum::Json(list).into_response()
}

/// `GET /openapi.json`.
pub(crate) async fn openapi_document(State(state): State<Arc<ServerState>>) -> Response {
    axum::Json(state.openapi.clone()).into_response()
}

fn json_content(schema: Json) -> Json {
    json!({"application/json": {"schema": schema}})
}

fn error_responses(statuses: &[&str]) -> Map<String, Json> {
    statuses
        .iter()
        .map(|status| {
            (
                (*status).to_owned(),
                json!({
                    "description": "An error",
                    "content": json_content(json!({"$ref": "#/components/schemas/Error"})),
                }),
            )
        })
        .collect()
}

fn responses(ok: Json, errors: &[&str]) -> Json {
    let mut responses = error_responses(errors);
    responses.insert("200".to_owned(), ok);
    Json::Object(responses)
}

fn ok_json(description: &str, schema: Json) -> Json {
    json!({"description": description, "content": json_content(schema)})
}

const RUN_ERRORS: &[&str] = &[
    "400", "401", "404", "413", "422", "429", "500", "503", "504",
];
const READ_ERRORS: &[&str] = &["401", "404", "422", "503"];
const WRITE_ERRORS: &[&str] = &["400", "401", "403", "404", "409", "413", "422", "503"];

fn path_param(name: &str, description: &str) -> Json {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}})
}

/// The paths of one program: its run and stream with its typed inputs and outputs.
fn program_paths(name: &str, spec: &ProgramSpec, paths: &mut Map<String, Json>) {
    let request = json!({
        "type": "object",
        "properties": {
            "inputs": object_schema(&spec.input_fields()),
            "overrides": {"type": "object", "description": "Values of declared variables for this run only"},
        },
        "required": ["inputs"],
        "additionalProperties": false,
    });
    let output = object_schema(&spec.output_fields());
    let body = json!({"required": true, "content": json_content(request)});
    paths.insert(
        format!("/v1/programs/{name}/run"),
        json!({"post": {
            "operationId": format!("run_{name}"),
            "summary": format!("Runs program `{name}` ({})", signature(spec)),
            "parameters": [{"name": "trace", "in": "query", "required": false,
                "schema": {"type": "boolean"}, "description": "Adds the run's trace"}],
            "requestBody": body,
            "responses": responses(ok_json("The outputs", json!({
                "type": "object",
                "properties": {"outputs": output, "trace": {"type": "object"}},
                "required": ["outputs"],
            })), RUN_ERRORS),
        }}),
    );
    paths.insert(
        format!("/v1/programs/{name}/stream"),
        json!({"post": {
            "operationId": format!("stream_{name}"),
            "summary": format!("Streams a run of program `{name}` as server-sent events"),
            "requestBody": body,
            "responses": responses(json!({
                "description": "Events step_started, chunk, step_finished, finished, error",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            }), RUN_ERRORS),
        }}),
    );
}

/// The paths every server has.
fn common_paths(paths: &mut Map<String, Json>) {
    let name = path_param("name", "A program");
    let var = path_param("var", "One of its variables");
    let version = json!({"type": "object", "properties": {"version": {"type": "integer", "minimum": 1}}, "required": ["version"]});
    paths.insert("/v1/programs".to_owned(), json!({"get": {
        "operationId": "programs",
        "summary": "The programs, their signatures and the JSON Schemas of their inputs and outputs",
        "responses": responses(ok_json("The programs", json!({"type": "array", "items": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "signature": {"type": "string"},
                "input_schema": {"type": "object"}, "output_schema": {"type": "object"}},
            "required": ["name", "signature", "input_schema", "output_schema"],
        }})), &["401", "503"]),
    }}));
    paths.insert("/v1/programs/{name}/variables".to_owned(), json!({"get": {
        "operationId": "variables",
        "summary": "The program's variables: value, version, type, constraints, readonly",
        "parameters": [name],
        "responses": responses(ok_json("The variables", json!({"type": "object", "additionalProperties": {
            "type": "object",
            "properties": {"value": {}, "version": {"type": "integer"}, "type": {"type": "string"},
                "constraints": {"type": "object"}, "readonly": {"type": "boolean"}},
            "required": ["value", "version", "type", "constraints", "readonly"],
        }})), READ_ERRORS),
    }}));
    paths.insert(
        "/v1/programs/{name}/variables/{var}".to_owned(),
        json!({"put": {
            "operationId": "write_variable",
            "summary": "Writes a variable (admin token), optionally only at an expected version",
            "parameters": [name, var],
            "requestBody": {"required": true, "content": json_content(json!({
                "type": "object",
                "properties": {"value": {}, "expected_version": {"type": "integer", "minimum": 1}},
                "required": ["value"],
                "additionalProperties": false,
            }))},
            "responses": responses(ok_json("The new version", version.clone()), WRITE_ERRORS),
        }}),
    );
    paths.insert("/v1/programs/{name}/variables/{var}/history".to_owned(), json!({"get": {
        "operationId": "variable_history",
        "summary": "The variable's last writes, newest first",
        "parameters": [name, var, {"name": "limit", "in": "query", "required": false,
            "schema": {"type": "integer", "minimum": 1, "maximum": super::MAX_HISTORY_PAGE}}],
        "responses": responses(ok_json("The writes", json!({"type": "array", "items": {
            "type": "object",
            "properties": {"version": {"type": "integer"}, "value": {}, "source": {"type": "string"},
                "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                "at": {"type": "string", "format": "date-time"}},
            "required": ["version", "value", "source", "metadata", "at"],
        }})), READ_ERRORS),
    }}));
    paths.insert(
        "/v1/programs/{name}/variables/{var}/rollback".to_owned(),
        json!({"post": {
            "operationId": "rollback_variable",
            "summary": "Writes the value of an earlier version again (admin token)",
            "parameters": [name, var],
            "requestBody": {"required": true, "content": json_content(version.clone())},
            "responses": responses(ok_json("The new version", version), WRITE_ERRORS),
        }}),
    );
    for (path, id, summary) in [
        ("/healthz", "healthz", "Alive (no token)"),
        (
            "/readyz",
            "readyz",
            "Every program's workers, and shared sessions, ready",
        ),
    ] {
        paths.insert(
            path.to_owned(),
            json!({"get": {
                "operationId": id,
                "summary": summary,
                "responses": responses(ok_json("Ready", json!({"type": "object"})), &["503"]),
            }}),
        );
    }
    paths.insert(
        "/metrics".to_owned(),
        json!({"get": {
            "operationId": "metrics",
            "summary": "Prometheus text format",
            "responses": responses(json!({"description": "Metrics",
                "content": {"text/plain": {"schema": {"type": "string"}}}}), &["401", "503"]),
        }}),
    );
    paths.insert("/openapi.json".to_owned(), json!({"get": {
        "operationId": "openapi",
        "summary": "This document",
        "responses": responses(ok_json("OpenAPI 3.1", json!({"type": "object"})), &["401", "503"]),
    }}));
}

/// The OpenAPI 3.1 document of a server serving `programs`.
pub(crate) fn openapi(programs: &BTreeMap<String, Arc<Served>>) -> Json {
    let mut paths = Map::new();
    common_paths(&mut paths);
    for (name, served) in programs {
        program_paths(name, served.program.program_spec(), &mut paths);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "dspex programs", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "schemas": {"Error": {
                "type": "object",
                "properties": {"error": {
                    "type": "object",
                    "properties": {"kind": {"type": "string", "enum": [
                        "invalid_json", "unauthorized", "forbidden", "not_found", "conflict",
                        "too_large", "invalid_input", "constraint", "busy", "shutting_down",
                        "timeout", "step_failed",
                    ]}, "message": {"type": "string"}, "field": {"type": "string"}},
                    "required": ["kind", "message"],
                }},
                "required": ["error"],
            }},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    })
}
