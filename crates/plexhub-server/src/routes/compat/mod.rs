//! The seed-compatible API under `/api/plugin-gateway`: the original's paths and success bodies,
//! hardened (authenticated, tenant-checked, proper status codes), with errors in the original's
//! flat shape `{"error":"<message>","code":"…"}`.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ErrorReport, render_flat};
use crate::state::AppState;

pub(crate) mod call;
mod data;
mod dependencies;
mod registry;

/// Every compatibility route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(registry::router())
        .merge(data::router())
        .merge(dependencies::router())
        .merge(call::router())
}

/// Where the compatibility routes live.
pub const PREFIX: &str = "/api/plugin-gateway/";

/// Middleware: under [`PREFIX`], re-renders hub errors (including authentication's) in the
/// flat shape existing clients read.
pub async fn flatten_errors(request: Request, next: Next) -> Response {
    let compatible = request.uri().path().starts_with(PREFIX);
    let response = next.run(request).await;
    match response.extensions().get::<ErrorReport>() {
        Some(report) if compatible => render_flat(report),
        _ => response,
    }
}
