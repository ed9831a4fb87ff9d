//! The web dashboard at `/ui`: server-rendered HTML (maud) with vendored htmx.
//!
//! Every page is a view over the API: it asks the same router and handlers that serve
//! `/api/v1` (dispatched in process, acting as the admin, see [`api`]) and renders their answer,
//! so no rule is implemented twice and a page cannot show what the API would refuse. The admin
//! token only signs in: the browser then holds a session cookie whose hash is stored through the
//! store (shared by every hub on the database), and every state-changing request carries the
//! session's CSRF token.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Extension, Router, middleware};

use crate::state::AppState;

mod api;
mod assets;
mod graph;
mod layout;
mod pages;
mod session;

/// What the dashboard's handlers share.
#[derive(Clone)]
pub(crate) struct Ui(Arc<UiShared>);

impl std::ops::Deref for Ui {
    type Target = UiShared;

    fn deref(&self) -> &UiShared {
        &self.0
    }
}

/// The parts of [`Ui`].
pub(crate) struct UiShared {
    /// The hub's state (store, clock, metrics).
    state: AppState,
    /// The API's routes, called in process.
    api: api::ApiClient,
    /// How long a session lasts after sign-in.
    session_ttl: Duration,
    /// Failed sign-ins of this hub.
    login_failures: session::LoginLimiter,
}

/// The dashboard's routes: the sign-in page and assets are public, everything else needs a
/// session (303 to the sign-in page without one) and a CSRF token on anything but GET.
pub(crate) fn router(
    state: AppState,
    api_routes: Router,
    session_ttl: Duration,
) -> Router<AppState> {
    let ui = Ui(Arc::new(UiShared {
        state,
        api: api::ApiClient::new(api_routes),
        session_ttl,
        login_failures: session::LoginLimiter::default(),
    }));
    let signed_in = Router::new()
        .route("/ui", get(pages::overview))
        .route("/ui/overview/stream", get(pages::overview_stream))
        .route("/ui/tenants", get(pages::tenants))
        .route("/ui/tenants/{slug}", get(pages::tenant))
        .route(
            "/ui/tenants/{slug}/installations/{plugin}",
            get(pages::installation),
        )
        .route(
            "/ui/tenants/{slug}/installations/{plugin}/activate",
            post(pages::activate),
        )
        .route(
            "/ui/tenants/{slug}/installations/{plugin}/deactivate",
            post(pages::deactivate),
        )
        .route(
            "/ui/tenants/{slug}/installations/{plugin}/uninstall",
            get(pages::uninstall_plan).post(pages::uninstall),
        )
        .route(
            "/ui/tenants/{slug}/installations/{plugin}/credentials",
            post(pages::issue_credential),
        )
        .route(
            "/ui/tenants/{slug}/installations/{plugin}/credentials/{credential}/revoke",
            post(pages::revoke_credential),
        )
        .route("/ui/tenants/{slug}/services", get(pages::services))
        .route("/ui/tenants/{slug}/graph", get(graph::graph))
        .route("/ui/tenants/{slug}/access", get(pages::access))
        .route("/ui/tenants/{slug}/events", get(pages::events))
        .route(
            "/ui/tenants/{slug}/dead-letters/{id}/retry",
            post(pages::retry_dead_letter),
        )
        .route(
            "/ui/tenants/{slug}/dead-letters/{id}/delete",
            post(pages::delete_dead_letter),
        )
        .route("/ui/catalog", get(pages::catalog).post(pages::publish))
        .route("/ui/catalog/{plugin}", get(pages::plugin))
        .route("/ui/calls", get(pages::calls))
        .route("/ui/logout", post(session::logout))
        .route_layer(middleware::from_fn(session::require_session));
    Router::new()
        .merge(signed_in)
        .route("/ui/login", get(session::login_form).post(session::login))
        .route("/ui/assets/{file}", get(assets::serve))
        .layer(Extension(ui))
}
