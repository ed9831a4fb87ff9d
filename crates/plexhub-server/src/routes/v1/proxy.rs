//! `/api/v1/proxy/{serviceName}/{*path}`: an ordinary HTTP request to another plugin's service,
//! forwarded with both bodies streamed; and `/api/v1/access/explain`, why such a call is
//! allowed or denied.

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use plexhub_core::ids::PluginId;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::ApiQuery;
use crate::gateway::{self, CallContext};
use crate::registry::parse_service_name;
use crate::state::AppState;

/// Where the proxy routes live.
const PREFIX: &str = "/api/v1/proxy/";

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(proxy))
        .routes(routes!(proxy_root))
        .routes(routes!(explain_access))
}

/// The calling plugin: the credential's, or for the admin the one named by
/// `X-Caller-Plugin-ID`.
pub fn calling_plugin(scope: &TenantScope, named: Option<&str>) -> Result<PluginId, ApiError> {
    if let Some(plugin) = scope.calling_plugin() {
        if let Some(named) = named
            && named != plugin.as_str()
        {
            return Err(ApiError::new(
                ErrorCode::CallerMismatch,
                format!("the credential belongs to {plugin}, not {named}"),
            ));
        }
        return Ok(plugin.clone());
    }
    let named = named.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            "an admin calling through the gateway must name the calling plugin",
        )
    })?;
    PluginId::parse(named)
        .map_err(|error| ApiError::new(ErrorCode::InvalidParameter, error.to_string()))
}

fn named_caller(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("x-caller-plugin-id")
        .and_then(|value| value.to_str().ok())
}

/// Forward a request to a plugin's service: method, path, query and body go to the target
/// unchanged and its answer comes back unchanged (status, body, allowed headers), both
/// streamed. The caller is the credential's plugin (an admin names one with
/// `X-Caller-Plugin-ID`); access is decided by the caller's manifest dependencies, its grants
/// and the matched endpoint's permissions.
#[utoipa::path(method(get, post, put, patch, delete), path = "/api/v1/proxy/{serviceName}/{*path}", tag = "gateway",
    responses((status = 200, description = "the plugin's answer, whatever its status"),
        (status = 403, description = "CALLER_NOT_ACTIVE, ACCESS_DENIED, PERMISSION_DENIED, CALLER_MISMATCH"),
        (status = 404, description = "SERVICE_NOT_FOUND, ENDPOINT_NOT_FOUND (details.availableEndpoints)"),
        (status = 413, description = "PAYLOAD_TOO_LARGE"),
        (status = 502, description = "UPSTREAM_UNREACHABLE, UPSTREAM_FAILED, UPSTREAM_RESPONSE_TOO_LARGE"),
        (status = 503, description = "SERVICE_UNAVAILABLE"), (status = 504, description = "UPSTREAM_TIMEOUT")),
    security(("bearer" = [])))]
async fn proxy(
    scope: TenantScope,
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    forward(scope, state, request).await
}

/// [`proxy`] for the service's root path `/`.
#[utoipa::path(method(get, post, put, patch, delete), path = "/api/v1/proxy/{serviceName}", tag = "gateway",
    responses((status = 200, description = "the plugin's answer, whatever its status")),
    security(("bearer" = [])))]
async fn proxy_root(
    scope: TenantScope,
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    forward(scope, state, request).await
}

async fn forward(
    scope: TenantScope,
    state: AppState,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    // The raw path (percent-encoding kept): what the target will see, and what access checks.
    let rest = parts.uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let (service, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    let service =
        parse_service_name(service).map_err(|_| crate::registry::service_not_found(&service))?;
    let caller = calling_plugin(&scope, named_caller(&parts.headers))?;
    let call = CallContext {
        tenant: &scope.tenant,
        caller: &caller,
    };
    let route = gateway::authorize(&state, &call, &service, None, &parts.method, path).await?;
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    gateway::forward(
        &state,
        &call,
        &route,
        parts.method.clone(),
        &path_and_query,
        &parts.headers,
        Body::new(body),
    )
    .await
}

/// What to explain.
#[derive(Deserialize, IntoParams)]
pub struct ExplainQuery {
    /// The calling plugin (a plugin credential may only ask about itself).
    caller: Option<String>,
    /// The service called.
    service: String,
    /// GET, POST, PUT, PATCH or DELETE.
    method: String,
    /// The path on the service, e.g. `/contacts/42`.
    path: String,
}

/// Why a call would be allowed or denied: the decision and every rule checked, in order.
#[utoipa::path(get, path = "/api/v1/access/explain", tag = "gateway", params(ExplainQuery),
    responses((status = 200, body = Object, description = "{allowed, code, message, endpoint, checks:[{rule, passed, detail}]}")),
    security(("bearer" = [])))]
async fn explain_access(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ExplainQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = calling_plugin(&scope, query.caller.as_deref())?;
    let service = parse_service_name(&query.service)?;
    let method = Method::from_bytes(query.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| ApiError::new(ErrorCode::InvalidParameter, "method is not an HTTP method"))?;
    let call = CallContext {
        tenant: &scope.tenant,
        caller: &caller,
    };
    let answer = gateway::explain_call(&state, &call, &service, &method, &query.path).await?;
    Ok(Json(answer))
}
