//! Signing in to the dashboard (a token posted by a form, answered with a session cookie for
//! `/dashboard` only), the session of a request, and the checks of a write: an admin session
//! and a same-origin request (CSRF protection).

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::sessions::Role;
use super::{COOKIE, SESSION_LIFETIME, pages};
use crate::serve::error::ApiError;
use crate::serve::state::ServerState;

/// The sign-in form: the token, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginForm {
    token: String,
}

/// The session id the request's cookie carries, if any.
fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// What the request may see: the role of its session; a server without a read token shows
/// the page to anyone (loopback only) as a reader.
pub(crate) fn viewer(state: &ServerState, headers: &HeaderMap) -> Option<Role> {
    let signed_in = session_id(headers).and_then(|id| state.dashboard.sessions.lock().role(id));
    signed_in.or_else(|| state.token.is_none().then_some(Role::Read))
}

/// A read of the dashboard's data needs a session (or a server without a read token).
pub(crate) fn require_viewer(state: &ServerState, headers: &HeaderMap) -> Result<Role, ApiError> {
    viewer(state, headers).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sign in to the dashboard first (POST /dashboard/login with a token)",
        )
    })
}

/// A write needs a same-origin request and an admin session.
pub(crate) fn require_writer(state: &ServerState, headers: &HeaderMap) -> Result<(), ApiError> {
    same_origin(headers)?;
    match require_viewer(state, headers)? {
        Role::Admin => Ok(()),
        Role::Read => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "changing a variable needs a dashboard session signed in with the admin token",
        )),
    }
}

/// Refuses a request whose `Origin` is missing or is not this server (`Host`): a page of
/// another site cannot make the browser write with its cookie.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let forbidden = |message: &str| ApiError::new(StatusCode::FORBIDDEN, "forbidden", message);
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let (Some(origin), Some(host)) = (origin, host) else {
        return Err(forbidden(
            "a dashboard write needs the `Origin` and `Host` headers of a same-origin request",
        ));
    };
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    if origin_host == Some(host) {
        Ok(())
    } else {
        Err(forbidden(
            "a dashboard write must come from the dashboard's own page (the `Origin` is another site)",
        ))
    }
}

/// The cookie of a session: `/dashboard` only, not readable by scripts, never sent by another
/// site's request.
fn session_cookie(id: &str, max_age: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .ok()
}

/// Back to the dashboard (303: the browser follows with a GET), with `cookie` set.
fn to_dashboard(cookie: Option<HeaderValue>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/dashboard")]).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /dashboard/login` with the form field `token`: the read or the admin token opens a
/// session; anything else shows the sign-in page again with the reason.
pub(crate) async fn login(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    // A sign-in posted by another site would sign the browser in to a session of its choice.
    if headers.contains_key(header::ORIGIN)
        && let Err(error) = same_origin(&headers)
    {
        return pages::login_page(StatusCode::FORBIDDEN, &error.message);
    }
    let Ok(Form(form)) = form else {
        return pages::login_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The form needs one field, `token`.",
        );
    };
    let role = if state.admin_token.as_deref() == Some(form.token.as_str()) {
        Role::Admin
    } else if state.token.as_deref() == Some(form.token.as_str()) {
        Role::Read
    } else {
        return pages::login_page(
            StatusCode::UNAUTHORIZED,
            "That token is not this server's read or admin token.",
        );
    };
    let Some(id) = state.dashboard.sessions.lock().open(role) else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the system gave no randomness for a session id",
        )
        .into_response();
    };
    to_dashboard(session_cookie(&id, SESSION_LIFETIME.as_secs()))
}

/// `POST /dashboard/logout` (same origin): ends the session and clears the cookie.
pub(crate) async fn logout(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Response {
    if let Err(error) = same_origin(&headers) {
        return error.into_response();
    }
    if let Some(id) = session_id(&headers) {
        state.dashboard.sessions.lock().close(id);
    }
    to_dashboard(session_cookie("", 0))
}
