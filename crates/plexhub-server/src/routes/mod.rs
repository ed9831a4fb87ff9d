//! The HTTP surface: which routes exist, which are authenticated, and the layers around them.

use std::any::Any;
use std::time::Duration;

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
        (name = "ui", description = "The web shell's plugin remotes (plugin, shell credential, or admin with X-Tenant-Slug)"),
        (name = "shell credentials", description = "Read-only credentials of a tenant's web shell (admin)"),
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

/// Operations the router serves on one path and the document shows on another, as
/// (method, served path, documented path): a batch read is routed as a POST on any key (so
/// `batch-get` stays usable as a key name for the other methods) but is only meant for one.
pub const DOCUMENTED_ELSEWHERE: &[(&str, &str, &str)] = &[(
    "post",
    "/api/v1/data/{namespace}/{key}",
    "/api/v1/data/{namespace}/batch-get",
)];

/// Every route's handlers with their OpenAPI operations: one registration feeds both, so the
/// router cannot serve what the document omits.
fn routes_and_operations() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    // Routes carry their full paths instead of being nested: a nested router costs a prefix
    // strip and a second dispatch on every request.
    let (native, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(v1::router())
        .split_for_parts();
    let (compat, compat_openapi) = compat::router().split_for_parts();
    let (ops, ops_openapi) = ops::router().split_for_parts();
    openapi.merge(compat_openapi);
    openapi.merge(ops_openapi);
    (native.merge(compat).merge(ops), openapi)
}

/// The (method, path template) pairs the router serves besides `/docs` and `/openapi.json`, in
/// axum's spelling (`{*path}` for a catch-all): what the served document must list.
pub fn served_routes() -> Vec<(String, String)> {
    let (_, openapi) = routes_and_operations();
    let document = serde_json::to_value(&openapi).unwrap_or_default();
    let mut served = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for method in item
            .as_object()
            .into_iter()
            .flatten()
            .map(|(method, _)| method)
        {
            if method != "parameters" {
                served.push((method.clone(), path.clone()));
            }
        }
    }
    served
}

/// The whole application router, with its OpenAPI document served at `/openapi.json` and `/docs`
/// and the web dashboard at `/ui`.
pub fn router(state: AppState, max_body_bytes: usize, ui_session_ttl: Duration) -> Router {
    let (routes, openapi) = routes_and_operations();
    let document = completed_document(&openapi);
    let dashboard = crate::ui::router(
        state.clone(),
        routes.clone().with_state(state.clone()),
        ui_session_ttl,
    );

    Router::new()
        .merge(routes)
        .merge(dashboard)
        .merge(SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", document))
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

/// The document as served: every path template's placeholders declared as path parameters
/// (the handlers take them through `ApiPath` tuples, which utoipa cannot describe), axum's
/// catch-all `{*path}` written as OpenAPI's `{path}`, and every response described.
fn completed_document(openapi: &utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut document = serde_json::to_value(openapi).unwrap_or_default();
    let Some(paths) = document
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return document;
    };
    for (method, served, documented) in DOCUMENTED_ELSEWHERE {
        let operation = paths
            .get_mut(*served)
            .and_then(serde_json::Value::as_object_mut)
            .and_then(|item| item.remove(*method));
        if let Some(operation) = operation {
            paths.insert(
                (*documented).to_owned(),
                serde_json::json!({ *method: operation }),
            );
        }
    }
    let templates: Vec<String> = paths.keys().cloned().collect();
    // One handler may serve several methods: its operation id gets the method to stay unique.
    let mut operation_ids = std::collections::HashSet::new();
    for template in templates {
        let Some(mut item) = paths.remove(&template) else {
            continue;
        };
        let names: Vec<String> = template
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}'))
            .map(|(name, _)| name.trim_start_matches('*').to_owned())
            .collect();
        if let Some(operations) = item.as_object_mut() {
            for (method, operation) in operations.iter_mut() {
                let Some(operation) = operation.as_object_mut() else {
                    continue;
                };
                describe_responses(operation);
                if let Some(id) = operation.get("operationId").and_then(|id| id.as_str()) {
                    let id = id.to_owned();
                    if !operation_ids.insert(id.clone()) {
                        let unique = format!("{id}_{method}");
                        operation_ids.insert(unique.clone());
                        operation.insert("operationId".into(), unique.into());
                    }
                }
                let parameters = operation
                    .entry("parameters")
                    .or_insert_with(|| serde_json::Value::Array(Vec::new()));
                let Some(parameters) = parameters.as_array_mut() else {
                    continue;
                };
                for name in &names {
                    let declared = parameters
                        .iter()
                        .any(|p| p["name"] == name.as_str() && p["in"] == "path");
                    if !declared {
                        parameters.push(serde_json::json!({
                            "name": name, "in": "path", "required": true,
                            "schema": {"type": "string"},
                        }));
                    }
                }
            }
        }
        paths.insert(template.replace("{*", "{"), item);
    }
    document
}

/// Every response of `operation` gets a description (OpenAPI requires one): its status's reason
/// phrase when the annotation gave none.
fn describe_responses(operation: &mut serde_json::Map<String, serde_json::Value>) {
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        let missing = response
            .get("description")
            .and_then(serde_json::Value::as_str)
            .is_none_or(str::is_empty);
        if missing {
            let reason = status
                .parse::<u16>()
                .ok()
                .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
                .and_then(|code| code.canonical_reason())
                .unwrap_or("response");
            response.insert("description".into(), reason.into());
        }
    }
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
