//! The dashboard's page, its sign-in page and its assets (HTML, CSS, script), built into the
//! binary.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::auth::viewer;
use crate::serve::error::ApiError;
use crate::serve::state::ServerState;

const DASHBOARD_HTML: &str = include_str!("assets/dashboard.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");

/// Where the sign-in page puts its message.
const MESSAGE_SLOT: &str = "<!--message-->";

/// The pages run only their own script and style, and no other site may frame them.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// An HTML page with the dashboard's security headers (`Referrer-Policy: same-origin`, not
/// `no-referrer`, under which a browser sends `Origin: null` with the page's own forms).
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "same-origin"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Text for an HTML page: `&`, `<`, `>`, `"` and `'` escaped.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The sign-in page with `message` (shown as text).
pub(crate) fn login_page(status: StatusCode, message: &str) -> Response {
    let message = if message.is_empty() {
        String::new()
    } else {
        format!(
            r#"<p class="error" role="alert" id="login-error">{}</p>"#,
            escape_html(message)
        )
    };
    html(status, LOGIN_HTML.replace(MESSAGE_SLOT, &message))
}

/// `GET /dashboard`: the dashboard for a signed-in browser, else the sign-in page. A query
/// string is refused: tokens never go in a URL.
pub(crate) async fn page(
    State(state): State<Arc<ServerState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if uri.query().is_some() {
        return login_page(
            StatusCode::BAD_REQUEST,
            "The dashboard takes no query string: sign in with the form (a token never goes in a URL).",
        );
    }
    match viewer(&state, &headers) {
        Some(_) => html(StatusCode::OK, DASHBOARD_HTML.to_owned()),
        None => login_page(StatusCode::UNAUTHORIZED, ""),
    }
}

/// `GET /dashboard/assets/{asset}`: the script and the style sheet (no data in them, so no
/// session needed).
pub(crate) async fn asset(Path(asset): Path<String>) -> Response {
    let (content_type, body) = match asset.as_str() {
        "dashboard.js" => ("text/javascript; charset=utf-8", DASHBOARD_JS),
        "dashboard.css" => ("text/css; charset=utf-8", DASHBOARD_CSS),
        _ => {
            return ApiError::not_found(format!("the dashboard has no asset `{asset}`"))
                .into_response();
        }
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(
            escape_html(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
