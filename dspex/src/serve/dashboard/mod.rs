//! The web dashboard (feature `dashboard`): `/dashboard` on the server's own address shows
//! every program with its signature and variables (value, constraints, version, history),
//! edits a variable through a form the server validates, rolls one back to any kept version,
//! shows the last runs with their traces and the tuning studies given with
//! [`ServerBuilder::study`](super::ServerBuilder::study), and updates live.
//!
//! ```no_run
//! # async fn serve(qa: dspex::RunningProgram, study: dspex::tune::Study) -> dspex::Result<()> {
//! let handle = dspex::serve::Server::builder()
//!     .program("qa", qa)
//!     .study("qa-tuning", study)
//!     .token("read-secret")          // signs in to view
//!     .admin_token("admin-secret")   // signs in to edit and roll back
//!     .build()?
//!     .bind("127.0.0.1:8000")
//!     .await?;
//! // open http://127.0.0.1:8000/dashboard and sign in with a token
//! # handle.shutdown().await }
//! ```
//!
//! - **Signing in.** The page asks for a token (`POST /dashboard/login`, a form): the read
//!   token shows, the admin token also edits. It answers with an `HttpOnly`,
//!   `SameSite=Strict` session cookie for `/dashboard` only; the `/v1` routes take bearer
//!   tokens only, never the cookie. Tokens never go in a URL (the dashboard refuses a query
//!   string) and are never logged. A server without a read token shows the page to anyone
//!   who reaches it (loopback only), and edits still need the admin token.
//! - **Writes** (an edit, a rollback, signing out) need an admin session and an `Origin`
//!   header naming this server (a cross-site request is refused), and are the `/v1` routes'
//!   writes: validated alike, `written_by = "http"`, nothing changed when refused.
//! - **Live.** The page listens to `/dashboard/events` (server-sent events): each program's
//!   watch stream (so a write by any process of a fleet sharing a session shows within a
//!   second), every finished run, and the studies' trials (read every [`LIVE_POLL`]).
//! - **Runs.** The last [`MAX_RECENT_RUNS`] runs served (run and stream routes) are kept
//!   with their traces: steps, parameters used, LM calls and tokens, durations, errors. No
//!   `otel` needed.
//! - **Assets** are built into the binary (no CDN, works offline); every value is shown as
//!   text (the page's script sets `textContent`, never HTML), and the page's
//!   `Content-Security-Policy` allows only its own script. Plots are SVG drawn on the server
//!   by `plotters`.
//!
//! Modules: `router` (the routes), `sessions` (the bounded session table), `auth` (sign-in,
//! cookie, origin check),
//! `pages` (the HTML, CSS and script), `api` (the JSON the page reads and the writes),
//! `runs` (the ring of recent runs), `studies` (studies and their plots), `live` (the event
//! stream).

mod api;
mod auth;
mod live;
mod pages;
pub(crate) mod router;
mod runs;
mod sessions;
mod studies;

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::Result;
use crate::tune::Study;

/// Runs kept for the dashboard (the newest; an older one is dropped for each new one).
pub const MAX_RECENT_RUNS: usize = 50;

/// Signed-in browsers at once; signing in beyond ends the oldest session.
pub const MAX_SESSIONS: usize = 256;

/// How long a dashboard session lasts after signing in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// Open live streams (`/dashboard/events`) at once; more are refused with 429.
pub const MAX_LIVE_STREAMS: usize = 64;

/// How often a live stream reads the studies for new trials.
pub const LIVE_POLL: Duration = Duration::from_millis(500);

/// History entries shown per variable (each one can be rolled back to).
pub const HISTORY_SHOWN: usize = super::MAX_HISTORY_PAGE;

/// The name of the session cookie.
const COOKIE: &str = "dspex_dashboard";

/// The dashboard's part of the server state.
pub(crate) struct Dashboard {
    sessions: Mutex<sessions::Sessions>,
    /// The recent runs, which the run and stream routes record.
    pub(crate) runs: runs::RecentRuns,
    studies: Vec<(String, Study)>,
    live_streams: AtomicUsize,
}

impl Dashboard {
    /// Checks the studies' names (usable in a page, not repeated).
    pub(crate) fn new(studies: Vec<(String, Study)>) -> Result<Self> {
        studies::check_names(&studies)?;
        Ok(Self {
            sessions: Mutex::new(sessions::Sessions::new(MAX_SESSIONS, SESSION_LIFETIME)),
            runs: runs::RecentRuns::new(MAX_RECENT_RUNS),
            studies,
            live_streams: AtomicUsize::new(0),
        })
    }
}
