//! The HTTP surface: which routes exist, which are authenticated, and the layers around them.

use std::any::Any;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ApiError, ErrorCode};
use crate::request_id::REQUEST_ID_HEADER;
use crate::state::AppState;
use crate::{auth, metrics, request_id};

pub(crate) mod compat;
mod ops;
pub(crate) mod v1;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "plexhub",
        description = "Plugin communication hub: tenants, plugin catalog, installations, credentials. \
            Every /api route needs `Authorization: Bearer <token>` (the admin token or a plugin \
            credential `phk_<id>.<secret>`). Errors on /api/v1 are \
            `{\"error\":{\"code\",\"message\",\"details?\"}}`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "tenants", description = "Tenant administration (admin)"),
        (name = "catalog", description = "Plugin catalog: published manifest versions (admin)"),
        (name = "installations", description = "Plugins installed per tenant and their lifecycle (admin)"),
        (name = "credentials", description = "Installation credentials (admin)"),
        (name = "identity", description = "Who is calling"),
        (name = "registry", description = "Services, replicas, health and watch (plugin credential, or admin with X-Tenant-Slug)"),
        (name = "registry (seed-compatible)", description = "The original /api/plugin-gateway registry routes; errors are {\"error\":\"<message>\",\"code\":…}"),
        (name = "dependencies (seed-compatible)", description = "The original /api/plugin-gateway dependency routes, hardened; errors are flat"),
        (name = "gateway (seed-compatible)", description = "The original POST /api/plugin-gateway/call, hardened; errors are flat"),
        (name = "gateway", description = "Plugin-to-plugin calls: the streaming proxy and access explanations"),
        (name = "plans", description = "Install, uninstall and upgrade plans for a tenant (admin)"),
        (name = "operations", description = "Health, readiness, metrics (no authentication)")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole application router, with its OpenAPI document served at `/openapi.json` and `/docs`.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    // Routes carry their full paths instead of being nested: a nested router costs a prefix
    // strip and a second dispatch on every request.
    let (native, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(v1::router())
        .split_for_parts();
    let (compat, compat_openapi) = compat::router().split_for_parts();
    let (ops, ops_openapi) = ops::router().split_for_parts();
    openapi.merge(compat_openapi);
    openapi.merge(ops_openapi);

    Router::new()
        .merge(native)
        .merge(compat)
        .merge(ops)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::record,
        ))
        // Authentication and the compatibility error shape wrap the whole router (selected by
        // path prefix) rather than each route: a per-route layer clones the route's boxed
        // service stack on every request, which measurably slowed the hot paths (bench/).
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn(compat::flatten_errors))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}

fn request_span(request: &Request) -> tracing::Span {
    let id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
}

async fn route_not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not accept that method",
    )
}

/// A panic, as the 500 the caller gets (the cause is logged, never shown).
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let cause = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    ApiError::internal(&format!("handler panicked: {cause}")).into_response()
}
