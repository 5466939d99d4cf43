//! The dashboard's routes.

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};

use super::{api, auth, live, pages};
use crate::serve::state::ServerState;

/// The dashboard's routes; each checks its own session (the cookie), never a bearer token.
pub(crate) fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/dashboard", get(pages::page))
        .route("/dashboard/assets/{asset}", get(pages::asset))
        .route("/dashboard/login", post(auth::login))
        .route("/dashboard/logout", post(auth::logout))
        .route("/dashboard/events", get(live::events))
        .route("/dashboard/api/overview", get(api::overview))
        .route("/dashboard/api/runs", get(api::runs))
        .route("/dashboard/api/studies", get(api::studies))
        .route(
            "/dashboard/api/programs/{name}/variables/{var}",
            put(api::edit),
        )
        .route(
            "/dashboard/api/programs/{name}/variables/{var}/rollback",
            post(api::rollback),
        )
}
