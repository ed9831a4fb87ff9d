//! `/api/v1/proxy/{serviceName}/{*path}`: an ordinary HTTP request to another plugin's service,
//! forwarded with both bodies streamed; and `/api/v1/access/explain`, why such a call is
//! allowed or denied.

use std::borrow::Cow;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use plexhub_core::ids::{PluginId, ServiceName};
use plexhub_core::text::find_ascii;
use plexhub_store::{CallCursor, CallQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, TenantScope};
use crate::error::{ApiError, ErrorCode};
use crate::extract::ApiQuery;
use crate::gateway::{self, Attempt, CallContext};
use crate::registry::parse_service_name;
use crate::state::{AppState, rfc3339};

/// Where the proxy routes live.
pub const PREFIX: &str = "/api/v1/proxy/";

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(proxy))
        .routes(routes!(proxy_root))
        .routes(routes!(explain_access))
        .routes(routes!(list_calls))
}

/// The calling plugin: the credential's, or for the admin the one named by
/// `X-Caller-Plugin-ID`.
pub fn calling_plugin<'s>(
    scope: &'s TenantScope,
    named: Option<&str>,
) -> Result<Cow<'s, PluginId>, ApiError> {
    if let Some(plugin) = scope.calling_plugin() {
        if let Some(named) = named
            && named != plugin.as_str()
        {
            return Err(ApiError::new(
                ErrorCode::CallerMismatch,
                format!("the credential belongs to {plugin}, not {named}"),
            ));
        }
        return Ok(Cow::Borrowed(plugin));
    }
    let named = named.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            "an admin calling through the gateway must name the calling plugin",
        )
    })?;
    PluginId::parse(named)
        .map(Cow::Owned)
        .map_err(|error| ApiError::new(ErrorCode::InvalidParameter, error.to_string()))
}

fn named_caller(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(crate::gateway::CALLER_HEADER)
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
        (status = 502, description = "UPSTREAM_UNREACHABLE, UPSTREAM_FAILED, UPSTREAM_TLS, UPSTREAM_RESPONSE_TOO_LARGE"),
        (status = 503, description = "SERVICE_UNAVAILABLE"), (status = 504, description = "UPSTREAM_TIMEOUT")),
    security(("bearer" = [])))]
async fn proxy(
    scope: TenantScope,
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    forward(scope, &state, &parts, body).await
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
    let (parts, body) = request.into_parts();
    forward(scope, &state, &parts, body).await
}

/// A proxied call that passed the access decision: who calls, what was asked, where it goes.
pub(crate) struct Admitted<'a> {
    /// The calling plugin (borrowed from the credential's scope when it is the caller).
    pub caller: Cow<'a, PluginId>,
    /// The service and path asked for, as the audit log records them.
    pub service: ServiceName,
    /// The path on the service (percent-encoding kept), as access decided it and the audit
    /// log records it.
    pub path: &'a str,
    /// That path and the request's query: what the target receives.
    pub path_and_query: Cow<'a, str>,
    /// The request id.
    pub request_id: &'a str,
    /// Where it may go.
    pub route: gateway::Authorized,
}

/// Parses and decides a proxied call (the path is `PREFIX` + service + path on the service); a
/// refusal is audited here.
pub(crate) async fn admit<'a>(
    scope: &'a TenantScope,
    state: &AppState,
    parts: &'a Parts,
    started: Instant,
) -> Result<Admitted<'a>, ApiError> {
    // The raw path (percent-encoding kept): what the target will see, and what access checks.
    let rest = parts.uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let (service, path, root) = match find_ascii(rest, b'/') {
        Some(at) => (&rest[..at], &rest[at..], false),
        None => (rest, "/", true),
    };
    let service =
        parse_service_name(service).map_err(|_| crate::registry::service_not_found(&service))?;
    let caller = calling_plugin(scope, named_caller(&parts.headers))?;
    let call = CallContext {
        tenant: &scope.tenant,
        caller: &caller,
    };
    let request_id = parts
        .headers
        .get(&crate::request_id::REQUEST_ID_HEADER)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    let route = match gateway::authorize(state, &call, &service, None, &parts.method, path).await {
        Ok(route) => route,
        Err(error) => {
            let attempt = Attempt {
                kind: "proxy",
                service: service.as_str(),
                method: &parts.method,
                path,
                request_id,
                started,
            };
            refused(state, &call, &attempt, &error).await;
            return Err(error);
        }
    };
    let path_and_query = forwarded_target(&parts.uri, path, root);
    Ok(Admitted {
        caller,
        service,
        path,
        path_and_query,
        request_id,
        route,
    })
}

/// Audits a refused call (out of line: every call runs through its caller's code).
#[cold]
#[inline(never)]
fn refused(
    state: &AppState,
    call: &CallContext<'_>,
    attempt: &Attempt<'_>,
    error: &ApiError,
) -> impl Future<Output = ()> + Send + 'static {
    gateway::audit(state, call, attempt, None, error.code().status().as_u16())
}

/// The path and query the target receives: `path` (the request's path after the service name,
/// or `/` for the service's `root`) and the request's query. Borrowed from the request: `path`
/// ends the request's path, which begins its path and query; only the root with a query is made.
fn forwarded_target<'a>(uri: &'a Uri, path: &'a str, root: bool) -> Cow<'a, str> {
    match (root, uri.query()) {
        (true, Some(query)) => Cow::Owned(format!("/?{query}")),
        (true, None) => Cow::Borrowed("/"),
        (false, _) => {
            let full = uri.path_and_query().map_or(path, |full| full.as_str());
            Cow::Borrowed(&full[uri.path().len() - path.len()..])
        }
    }
}

/// Forwards the request of `parts` and `body` for the caller of `scope` (both proxy routes,
/// and the front door's hot path, which holds the parts and lends them).
pub(crate) async fn forward(
    scope: TenantScope,
    state: &AppState,
    parts: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let admitted = admit(&scope, state, parts, started).await?;
    let call = CallContext {
        tenant: &scope.tenant,
        caller: &admitted.caller,
    };
    let attempt = Attempt {
        kind: "proxy",
        service: admitted.service.as_str(),
        method: &parts.method,
        path: admitted.path,
        request_id: admitted.request_id,
        started,
    };
    let answer = gateway::forward(
        state,
        &call,
        &admitted.route,
        parts.method.clone(),
        &admitted.path_and_query,
        &parts.headers,
        body,
    )
    .await;
    let status = match &answer {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.code().status().as_u16(),
    };
    gateway::audit(state, &call, &attempt, Some(&admitted.route), status).await;
    answer
}

/// What to explain.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
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

/// Filters of the audit log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CallFilter {
    /// Tenant slug.
    tenant: Option<String>,
    /// Calling plugin.
    caller: Option<String>,
    /// Called plugin.
    target: Option<String>,
    /// A status (`404`) or a class (`5xx`).
    status: Option<String>,
    /// RFC 3339 time or epoch milliseconds.
    since: Option<String>,
    /// 1-1000, default 100.
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// One audited call.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallView {
    tenant_id: String,
    at: String,
    caller: String,
    target: Option<String>,
    service: String,
    method: String,
    path: String,
    endpoint: Option<String>,
    status: u16,
    duration_ms: f64,
    request_id: String,
}

/// Audited calls, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallList {
    calls: Vec<CallView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// A page's cursor: the last call's time (epoch ms) and request id, `<ms>.<requestId>`.
fn call_cursor(text: &str) -> Result<CallCursor, ApiError> {
    text.split_once('.')
        .and_then(|(at, request_id)| {
            Some(CallCursor {
                at_ms: at.parse().ok()?,
                request_id: request_id.to_owned(),
            })
        })
        .ok_or_else(|| invalid("invalid cursor: pass the nextCursor of the previous page"))
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message)
}

fn status_range(text: &str) -> Result<(u16, u16), ApiError> {
    let bad = || invalid("status must be a code such as 404 or a class such as 5xx");
    if let Some(class) = text.strip_suffix("xx") {
        let class: u16 = class.parse().map_err(|_| bad())?;
        if !(1..=5).contains(&class) {
            return Err(bad());
        }
        return Ok((class * 100, class * 100 + 99));
    }
    let code: u16 = text.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&code) {
        return Err(bad());
    }
    Ok((code, code))
}

fn since_ms(text: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    humantime::parse_rfc3339_weak(text)
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|since| i64::try_from(since.as_millis()).ok())
        .ok_or_else(|| invalid("since must be an RFC 3339 time or epoch milliseconds"))
}

/// The gateway's audit log (admin): who called what, the matched endpoint, the status and
/// how long it took.
#[utoipa::path(get, path = "/api/v1/calls", tag = "gateway", params(CallFilter),
    responses((status = 200, body = CallList), (status = 400, description = "INVALID_PARAMETER"),
        (status = 404, description = "TENANT_NOT_FOUND")),
    security(("bearer" = [])))]
async fn list_calls(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<CallFilter>,
) -> Result<Json<CallList>, ApiError> {
    let tenant_id = match &filter.tenant {
        Some(slug) => Some(super::tenants::find_tenant(&state, slug).await?.id),
        None => None,
    };
    let limit = filter.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(invalid("limit must be 1-1000"));
    }
    let query = CallQuery {
        tenant_id,
        caller: filter.caller,
        target: filter.target,
        status: filter.status.as_deref().map(status_range).transpose()?,
        since_ms: filter.since.as_deref().map(since_ms).transpose()?,
        after: filter.cursor.as_deref().map(call_cursor).transpose()?,
        // One extra row tells whether another page exists.
        limit: limit + 1,
    };
    let mut calls = state.store.calls(&query).await?;
    let next_cursor = if calls.len() > limit as usize {
        calls.truncate(limit as usize);
        calls
            .last()
            .map(|call| format!("{}.{}", call.at_ms, call.request_id))
    } else {
        None
    };
    Ok(Json(CallList {
        next_cursor,
        calls: calls
            .into_iter()
            .map(|call| CallView {
                tenant_id: call.tenant_id.to_string(),
                at: rfc3339(call.at_ms),
                caller: call.caller.to_string(),
                target: call.target.as_deref().map(str::to_owned),
                service: call.service.to_string(),
                method: call.method.to_string(),
                path: call.path,
                endpoint: call.endpoint.as_deref().map(str::to_owned),
                status: call.status,
                duration_ms: call.duration_us as f64 / 1000.0,
                request_id: call.request_id,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_gets_what_follows_the_service_and_the_query() {
        for (asked, path, root, forwarded) in [
            (
                "/api/v1/proxy/crm/contacts",
                "/contacts",
                false,
                "/contacts",
            ),
            (
                "/api/v1/proxy/crm/contacts/?a=1&b=%20",
                "/contacts/",
                false,
                "/contacts/?a=1&b=%20",
            ),
            ("/api/v1/proxy/crm/c%2Fd?", "/c%2Fd", false, "/c%2Fd?"),
            ("/api/v1/proxy/crm", "/", true, "/"),
            ("/api/v1/proxy/crm?x=y", "/", true, "/?x=y"),
        ] {
            let uri: Uri = asked.parse().expect("a URI");
            let target = forwarded_target(&uri, path, root);
            assert_eq!(target, forwarded, "{asked}");
            assert_eq!(
                matches!(target, Cow::Borrowed(_)),
                forwarded != "/?x=y",
                "{asked}"
            );
        }
    }
}
