//! The seed-compatible API under `/api/plugin-gateway`: the original's paths and success bodies,
//! hardened (authenticated, tenant-checked, proper status codes), with errors in the original's
//! flat shape `{"error":"<message>","code":"…"}`.

use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ErrorReport, render_flat};
use crate::state::AppState;

mod registry;

/// Every compatibility route (paths relative to `/api/plugin-gateway`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(registry::router())
}

/// Response mapper: re-renders hub errors in the flat shape existing clients read.
pub async fn flatten_errors(response: Response) -> Response {
    match response.extensions().get::<ErrorReport>() {
        Some(report) => render_flat(report),
        None => response,
    }
}
