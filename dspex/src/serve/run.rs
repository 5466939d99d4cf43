//! The run and stream routes: the request body checked against the program's declaration
//! before anything runs, the admission of runs (a place among `max_concurrent_runs`, or a
//! bounded wait in the queue, or 429), and the per-request timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::{Map, Value as Json, json};
use tokio::sync::OwnedSemaphorePermit;
use tokio_stream::wrappers::ReceiverStream;

use super::RETRY_AFTER_SECONDS;
use super::error::ApiError;
use super::json;
use super::state::{Served, ServerState};
use crate::context::Overrides;
use crate::data::Fields;
use crate::data::spans;
use crate::program::RunEvent;
use crate::util::value_json::from_json;

/// The W3C trace context header: a run continues the trace its caller sends.
const TRACEPARENT: &str = "traceparent";

/// The caller's W3C `traceparent`, if it sent one as text.
fn traceparent(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?;
    Some(value.to_owned())
}

/// Events a stream holds for a slow reader before the run waits for it.
const STREAM_BUFFER: usize = 64;

/// A run request, checked: the program's inputs, and the overrides for this run.
struct RunRequest {
    inputs: Fields,
    overrides: Overrides,
}

/// The program named `name`, or 404.
pub(crate) fn served<'s>(state: &'s ServerState, name: &str) -> Result<&'s Arc<Served>, ApiError> {
    state.programs.get(name).ok_or_else(|| {
        let names: Vec<&str> = state.programs.keys().map(String::as_str).collect();
        ApiError::not_found(format!(
            "no program `{name}`; this server serves {}",
            names.join(", ")
        ))
    })
}

/// The body as a JSON object, or 413 (over the limit), 400 (not JSON) or 422 (not an object).
pub(crate) fn json_object(
    body: Result<Bytes, BytesRejection>,
) -> Result<Map<String, Json>, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!(
                "the request body is over {} bytes",
                super::MAX_BODY_BYTES
            ))
        } else {
            ApiError::invalid_json(rejection.body_text())
        }
    })?;
    match serde_json::from_slice::<Json>(&body) {
        Ok(Json::Object(object)) => Ok(object),
        Ok(other) => Err(ApiError::invalid_input(format!(
            "the body must be a JSON object, not {other}"
        ))),
        Err(e) => Err(ApiError::invalid_json(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// `names` as a message lists them: "`a`, `b`", or "none".
fn listed(names: &[&str]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses a key of `object` that is not in `known`.
pub(crate) fn known_keys(object: &Map<String, Json>, known: &[&str]) -> Result<(), ApiError> {
    match object.keys().find(|k| !known.contains(&k.as_str())) {
        Some(key) => Err(ApiError::invalid_input(format!(
            "unknown key `{key}` in the body; expected {}",
            listed(known)
        ))
        .on(key.as_str())),
        None => Ok(()),
    }
}

/// The query parameters of a request, in order (a query that does not parse is refused, 422).
pub(crate) type QueryParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The query parameters by name, refusing one other than `known` and one given twice.
pub(crate) fn known_params(
    query: &QueryParams,
    known: &[&str],
) -> Result<BTreeMap<String, String>, ApiError> {
    let pairs = match query {
        Ok(Query(pairs)) => pairs,
        Err(rejection) => {
            return Err(ApiError::invalid_input(format!(
                "the query string does not parse: {}",
                rejection.body_text()
            )));
        }
    };
    let mut params = BTreeMap::new();
    for (key, value) in pairs {
        if !known.contains(&key.as_str()) {
            return Err(ApiError::invalid_input(format!(
                "unknown query parameter `{key}`; this route takes {}",
                listed(known)
            ))
            .on(key.as_str()));
        }
        if params.insert(key.clone(), value.clone()).is_some() {
            return Err(ApiError::invalid_input(format!(
                "query parameter `{key}` is given more than once"
            ))
            .on(key.as_str()));
        }
    }
    Ok(params)
}

/// Checks a run body against the program: inputs present, declared and of their types;
/// overrides of declared variables, valid for them.
fn run_request(served: &Served, mut body: Map<String, Json>) -> Result<RunRequest, ApiError> {
    known_keys(&body, &["inputs", "overrides"])?;
    let program = &*served.program;
    let spec = program.program_spec();
    let inputs = match body.remove("inputs") {
        Some(Json::Object(inputs)) => inputs,
        Some(other) => {
            return Err(ApiError::invalid_input(format!(
                "`inputs` must be a JSON object, not {other}"
            )));
        }
        None => return Err(ApiError::invalid_input("the body has no `inputs`")),
    };
    let declared = spec.input_fields();
    let declared_list = || {
        declared
            .iter()
            .map(|f| format!("`{}`", f.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(unknown) = inputs
        .keys()
        .find(|k| !declared.iter().any(|f| &f.name == *k))
    {
        return Err(ApiError::invalid_input(format!(
            "program `{}` takes no input `{unknown}`; its inputs are {}",
            spec.name,
            declared_list()
        ))
        .on(unknown.as_str()));
    }
    for field in &declared {
        match inputs.get(&field.name) {
            None => {
                return Err(ApiError::invalid_input(format!(
                    "input `{}` of program `{}` is missing",
                    field.name, spec.name
                ))
                .on(&field.name));
            }
            Some(value) => field
                .check(value)
                .map_err(|e| ApiError::invalid_input(e.to_string()).on(&field.name))?,
        }
    }
    let overrides = match body.remove("overrides") {
        None | Some(Json::Null) => Overrides::new(),
        Some(Json::Object(overrides)) => parse_overrides(served, overrides)?,
        Some(other) => {
            return Err(ApiError::invalid_input(format!(
                "`overrides` must be a JSON object, not {other}"
            )));
        }
    };
    Ok(RunRequest {
        inputs: inputs.into_iter().collect(),
        overrides,
    })
}

/// Overrides as the variables' types read them, validated like writes (nothing is written).
fn parse_overrides(served: &Served, overrides: Map<String, Json>) -> Result<Overrides, ApiError> {
    let program = &*served.program;
    let spec = program.program_spec();
    let ctx = program.program_context();
    let mut parsed = Overrides::new();
    for (name, value) in overrides {
        if spec.variable(&name).is_none() {
            let names: Vec<String> = spec
                .variables
                .iter()
                .map(|v| format!("`{}`", v.name))
                .collect();
            return Err(ApiError::invalid_input(format!(
                "override of `{name}`: program `{}` declares no variable `{name}`; its variables are {}",
                spec.name,
                if names.is_empty() { "none".to_owned() } else { names.join(", ") }
            ))
            .on(name));
        }
        let record = ctx
            .record(&name)
            .map_err(|e| ApiError::from_variables(&e))?;
        let value = from_json(record.ty, &value).map_err(|message| {
            ApiError::invalid_input(format!("override of `{name}`: {message}")).on(name.as_str())
        })?;
        parsed.insert(name, value);
    }
    if parsed.is_empty() {
        return Ok(parsed);
    }
    parsed
        .validate(ctx, spec)
        .map_err(|e| ApiError::from_run(&e))
}

/// Frees a queue place when dropped.
struct QueuePlace<'a>(&'a AtomicUsize);

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A place to run now, or after a wait in the queue, or 429 when the queue is full.
async fn admit(state: &ServerState) -> Result<OwnedSemaphorePermit, ApiError> {
    if let Ok(permit) = Arc::clone(&state.runs).try_acquire_owned() {
        return Ok(permit);
    }
    if state.queued.fetch_add(1, Ordering::SeqCst) >= state.max_queued_runs {
        state.queued.fetch_sub(1, Ordering::SeqCst);
        let mut busy = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
            format!(
                "{} runs are going and {} waiting, the most this server takes; retry later",
                state.runs_limit(),
                state.max_queued_runs
            ),
        );
        busy.retry_after = Some(RETRY_AFTER_SECONDS);
        return Err(busy);
    }
    let _place = QueuePlace(&state.queued);
    Arc::clone(&state.runs)
        .acquire_owned()
        .await
        .map_err(|_| ApiError::shutting_down())
}

fn timed_out(state: &ServerState) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        format!(
            "the run took longer than the server's request timeout of {:?}",
            state.request_timeout
        ),
    )
}

/// `POST /v1/programs/{name}/run`.
pub(crate) async fn run(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
    query: QueryParams,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let run = run_checked(&state, &name, &query, body);
    let result = spans::continuing(traceparent(&headers).as_deref(), run).await;
    match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(error) => {
            if state.programs.contains_key(&name) {
                state
                    .metrics
                    .run_failed(&name, error.kind, error.step.as_deref());
            }
            error.into_response()
        }
    }
}

async fn run_checked(
    state: &ServerState,
    name: &str,
    query: &QueryParams,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json, ApiError> {
    let served = served(state, name)?;
    let query = known_params(query, &["trace"])?;
    let with_trace = match query.get("trace").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::invalid_input(format!(
                "query parameter `trace` is `true` or `false`, not `{other}`"
            ))
            .on("trace"));
        }
    };
    let request = run_request(served, json_object(body)?)?;
    let run = async {
        let _permit = admit(state).await?;
        let _in_flight = state.metrics.run_started();
        let started = Instant::now();
        #[cfg(feature = "dashboard")]
        let inputs = request.inputs.clone();
        let ran = served
            .program
            .run_boxed(&request.overrides, request.inputs)
            .await
            .map_err(|e| ApiError::from_run(&e));
        #[cfg(feature = "dashboard")]
        state.dashboard.runs.record(
            name,
            &inputs,
            started.elapsed(),
            ran.as_ref().map(|(outputs, trace)| (outputs, trace)),
        );
        let (outputs, trace) = ran?;
        state
            .metrics
            .run_finished(name, started.elapsed().as_secs_f64(), &trace);
        let mut body = json!({"outputs": json::fields(&outputs)});
        if with_trace {
            body["trace"] = json::trace(&trace);
        }
        Ok(body)
    };
    tokio::select! {
        done = tokio::time::timeout(state.request_timeout, run) => {
            done.unwrap_or_else(|_| Err(timed_out(state)))
        }
        () = state.runs_cancelled() => Err(ApiError::shutting_down()),
    }
}

/// The server-sent event of one run event.
fn sse_event(event: crate::error::Result<RunEvent<Fields>>) -> Event {
    let (name, data) = match event {
        Ok(RunEvent::StepStarted { step }) => ("step_started", json!({"step": step})),
        Ok(RunEvent::Chunk { step, field, text }) => {
            ("chunk", json!({"step": step, "field": field, "text": text}))
        }
        Ok(RunEvent::StepFinished { step, outputs }) => (
            "step_finished",
            json!({"step": step, "outputs": json::fields(&outputs)}),
        ),
        Ok(RunEvent::Finished { output, trace }) => (
            "finished",
            json!({"output": json::fields(&output), "trace": json::trace(&trace)}),
        ),
        Err(e) => ("error", json!({"error": ApiError::from_run(&e).body()})),
    };
    Event::default().event(name).data(data.to_string())
}

/// `POST /v1/programs/{name}/stream`: input errors and a full server are answered with a
/// status; then the events of the run, ending with `finished` or `error`.
pub(crate) async fn stream(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
    query: QueryParams,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let opened = async {
        let served = Arc::clone(served(&state, &name)?);
        known_params(&query, &[])?;
        let request = run_request(&served, json_object(body)?)?;
        let deadline = tokio::time::Instant::now() + state.request_timeout;
        let permit = tokio::time::timeout_at(deadline, admit(&state))
            .await
            .unwrap_or_else(|_| Err(timed_out(&state)))?;
        Ok::<_, ApiError>((served, request, deadline, permit))
    };
    let (served, request, deadline, permit) = match opened.await {
        Ok(opened) => opened,
        Err(error) => {
            if state.programs.contains_key(&name) {
                state
                    .metrics
                    .run_failed(&name, error.kind, error.step.as_deref());
            }
            return error.into_response();
        }
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<Event>(STREAM_BUFFER);
    let in_flight = state.enter();
    let task_state = Arc::clone(&state);
    let traceparent = traceparent(&headers);
    let relay = async move {
        let _permit = permit;
        let _in_flight = in_flight;
        let _running = task_state.metrics.run_started();
        let started = Instant::now();
        let RunRequest { inputs, overrides } = request;
        #[cfg(feature = "dashboard")]
        let shown_inputs = inputs.clone();
        let mut events = served.program.stream_boxed(&overrides, inputs);
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout_at(deadline, events.next()) => next.map_err(|_| timed_out(&task_state)),
                () = task_state.runs_cancelled() => Err(ApiError::shutting_down()),
            };
            let event = match next {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(error) => {
                    task_state
                        .metrics
                        .run_failed(&name, error.kind, error.step.as_deref());
                    let data = json!({"error": error.body()}).to_string();
                    let _ = sender
                        .send(Event::default().event("error").data(data))
                        .await;
                    break;
                }
            };
            match &event {
                Ok(RunEvent::Finished { output, trace }) => {
                    task_state
                        .metrics
                        .run_finished(&name, started.elapsed().as_secs_f64(), trace);
                    #[cfg(feature = "dashboard")]
                    task_state.dashboard.runs.record(
                        &name,
                        &shown_inputs,
                        started.elapsed(),
                        Ok((output, trace)),
                    );
                    #[cfg(not(feature = "dashboard"))]
                    let _ = output; // what the dashboard's recent runs show
                }
                Err(e) => {
                    let error = ApiError::from_run(e);
                    task_state
                        .metrics
                        .run_failed(&name, error.kind, error.step.as_deref());
                    #[cfg(feature = "dashboard")]
                    task_state.dashboard.runs.record(
                        &name,
                        &shown_inputs,
                        started.elapsed(),
                        Err(&error),
                    );
                }
                Ok(_) => {}
            }
            let event = sse_event(event);
            // The client went away: dropping the stream cancels the run.
            if sender.send(event).await.is_err() {
                break;
            }
        }
    };
    tokio::spawn(async move { spans::continuing(traceparent.as_deref(), relay).await });
    Sse::new(ReceiverStream::new(receiver).map(Ok::<_, std::convert::Infallible>)).into_response()
}
