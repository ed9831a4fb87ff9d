//! The gateway: resolves a plugin-to-plugin call (in-process state only: the caches kept fresh
//! by the change feed), decides access with `plexhub_core::access`, and forwards the request
//! to a replica with both bodies streamed, dropping what must not cross and adding who calls.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt as _, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use plexhub_core::access::{
    AccessRequest, CallerInstallation, Decision, Denial, Target, decide, explain,
};
use plexhub_core::ids::{PluginId, ServiceName};
use plexhub_core::installation::InstallationState;
use plexhub_core::manifest::{HttpMethod, validate_manifest};
use plexhub_core::registry::ServiceStatus;
use plexhub_core::signing::{HubKey, PublicKey, SIGNATURE_HEADER, SignedRequest};
use plexhub_core::tenant::Tenant;
use serde_json::json;

use crate::cache::{CachedCaller, CallerProfile, ServiceEntry};
use crate::error::{ApiError, ErrorCode};
use crate::request_id::REQUEST_ID_HEADER;
use crate::settings::GatewaySettings;
use crate::state::AppState;

/// The pooled HTTP client (keep-alive, no redirects followed) and the forwarding limits.
pub struct Gateway {
    client: Client<HttpConnector, Body>,
    settings: GatewaySettings,
    /// The first signs; all are published.
    keys: Vec<HubKey>,
    /// Round-robin position over a service's best replicas.
    next: AtomicUsize,
}

impl Gateway {
    /// A gateway with its own connection pool.
    pub fn new(settings: GatewaySettings, keys: Vec<HubKey>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Self {
            client,
            settings,
            keys,
            next: AtomicUsize::new(0),
        }
    }

    /// The published verification keys.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        self.keys.iter().map(HubKey::public).collect()
    }

    /// The forwarding limits.
    pub fn settings(&self) -> &GatewaySettings {
        &self.settings
    }
}

/// Who calls, in which tenant.
pub struct CallContext<'a> {
    /// The tenant.
    pub tenant: &'a Tenant,
    /// The calling plugin.
    pub caller: &'a PluginId,
}

/// A call the gateway allowed: where it goes and how long it may take.
pub struct Authorized {
    /// The replica's base URL, without a trailing `/`.
    pub base_url: String,
    /// Time allowed for the status and headers.
    pub timeout: Duration,
    /// The plugin that owns the service.
    pub target_plugin: PluginId,
    /// The matched endpoint template (`GET /contacts/:id`), for audit and metrics.
    pub endpoint: String,
}

async fn caller_profile(
    state: &AppState,
    tenant: &Tenant,
    caller: &PluginId,
) -> Result<Arc<CachedCaller>, ApiError> {
    let key = (tenant.id, caller.clone());
    state
        .cache
        .caller(key, || async {
            let Some(installation) = state.store.installation(tenant.id, caller).await? else {
                return Ok(None);
            };
            let published = state
                .store
                .plugin_version(caller, &installation.version)
                .await?
                .ok_or_else(|| ApiError::internal(&"an installed catalog version vanished"))?;
            let manifest = validate_manifest(&published.manifest)
                .map_err(|_| ApiError::internal(&"a stored manifest no longer validates"))?;
            Ok::<_, ApiError>(Some(CallerProfile {
                state: installation.state,
                grants: installation.grants,
                dependencies: manifest.dependencies,
            }))
        })
        .await
}

async fn service_entry(
    state: &AppState,
    tenant: &Tenant,
    name: &ServiceName,
) -> Result<Arc<ServiceEntry>, ApiError> {
    let tenant_id = tenant.id;
    Ok(state
        .cache
        .service((tenant_id, name.clone()), || async move {
            state.store.service_by_name(tenant_id, name).await
        })
        .await?)
}

/// Everything a decision needs, loaded from the caches.
struct Loaded {
    caller: Arc<CachedCaller>,
    service: Arc<ServiceEntry>,
    now_ms: i64,
}

impl Loaded {
    async fn new(
        state: &AppState,
        call: &CallContext<'_>,
        service: &ServiceName,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            caller: caller_profile(state, call.tenant, call.caller).await?,
            service: service_entry(state, call.tenant, service).await?,
            now_ms: state.clock.now_ms(),
        })
    }

    fn request<'a>(
        &'a self,
        state: &AppState,
        call: &'a CallContext<'a>,
        service_name: &'a ServiceName,
        expected_plugin: Option<&'a PluginId>,
        method: HttpMethod,
        path: &'a str,
    ) -> Result<AccessRequest<'a>, ApiError> {
        let Some(profile) = self.caller.as_ref() else {
            return Err(ApiError::new(
                ErrorCode::CallerNotActive,
                format!(
                    "{} is not installed for tenant \"{}\"",
                    call.caller, call.tenant.slug
                ),
            ));
        };
        // A service of a plugin that is not ACTIVE is not discoverable.
        let target = self
            .service
            .found
            .as_ref()
            .filter(|(_, installation)| *installation == InstallationState::Active)
            .map(|(service, _)| Target {
                plugin_id: &service.plugin_id,
                endpoints: &service.endpoints,
                available: service.status(&state.health, self.now_ms).is_discoverable(),
            });
        Ok(AccessRequest {
            caller: CallerInstallation {
                plugin_id: call.caller,
                state: profile.state,
                dependencies: &profile.dependencies,
                grants: &profile.grants,
            },
            service_name,
            target,
            expected_plugin,
            method,
            path,
        })
    }
}

/// The method as manifests spell it; others match no endpoint.
fn manifest_method(method: &Method) -> Option<HttpMethod> {
    HttpMethod::parse(method.as_str())
}

fn denial_error(denial: &Denial, service: &ServiceName, caller: &PluginId) -> ApiError {
    match denial {
        Denial::ServiceNotFound => crate::registry::service_not_found(service),
        Denial::PluginMismatch => ApiError::new(
            ErrorCode::PluginMismatch,
            format!("{service} does not belong to the plugin named as its target"),
        ),
        Denial::CallerNotActive => ApiError::new(
            ErrorCode::CallerNotActive,
            format!("{caller} is not ACTIVE in this tenant: activate it to call other plugins"),
        ),
        Denial::AccessDenied => ApiError::new(
            ErrorCode::AccessDenied,
            format!(
                "{caller} does not declare a dependency on the plugin that owns {service} (or on {service}): add it to api.dependencies"
            ),
        ),
        Denial::EndpointNotFound {
            available_endpoints,
        } => ApiError::new(
            ErrorCode::EndpointNotFound,
            format!("no endpoint of {service} matches this method and path"),
        )
        .with_details(json!({ "availableEndpoints": available_endpoints })),
        Denial::PermissionDenied { missing } => ApiError::new(
            ErrorCode::PermissionDenied,
            format!(
                "{caller} lacks {} for this endpoint: grant it at install",
                missing.join(", ")
            ),
        )
        .with_details(json!({ "missing": missing })),
        Denial::ServiceUnavailable => ApiError::new(
            ErrorCode::ServiceUnavailable,
            format!("{service} has no HEALTHY or DEGRADED replica"),
        ),
    }
}

/// Decides a call; when allowed, picks the replica (round robin over the best ones).
pub async fn authorize(
    state: &AppState,
    call: &CallContext<'_>,
    service_name: &ServiceName,
    expected_plugin: Option<&PluginId>,
    method: &Method,
    path: &str,
) -> Result<Authorized, ApiError> {
    let loaded = Loaded::new(state, call, service_name).await?;
    let Some(method) = manifest_method(method) else {
        return Err(denial_error(
            &Denial::EndpointNotFound {
                available_endpoints: Vec::new(),
            },
            service_name,
            call.caller,
        ));
    };
    let request = loaded.request(state, call, service_name, expected_plugin, method, path)?;
    let decision: Decision<'_> = decide(&request);
    if let Some(denial) = &decision.denial {
        return Err(denial_error(denial, service_name, call.caller));
    }
    let (Some((service, _)), Some(endpoint)) = (&loaded.service.found, decision.endpoint) else {
        return Err(ApiError::internal(&"an allowed call without its service"));
    };
    let status_of = |instance: &plexhub_core::registry::Instance| {
        state
            .health
            .status(instance.reported, instance.last_seen_ms, loaded.now_ms)
    };
    let best = service
        .instances
        .iter()
        .map(status_of)
        .min()
        .unwrap_or(ServiceStatus::Unavailable);
    let candidates = service
        .instances
        .iter()
        .filter(|instance| status_of(instance) == best)
        .count();
    let pick = state.gateway.next.fetch_add(1, Ordering::Relaxed) % candidates.max(1);
    let instance = service
        .instances
        .iter()
        .filter(|instance| status_of(instance) == best)
        .nth(pick)
        .ok_or_else(|| ApiError::internal(&"an available service without replicas"))?;
    let timeout = endpoint
        .metadata
        .get("timeoutMs")
        .and_then(serde_json::Value::as_u64)
        .map_or(
            state.gateway.settings.request_timeout,
            Duration::from_millis,
        );
    Ok(Authorized {
        base_url: instance.base_url.as_str().trim_end_matches('/').to_owned(),
        timeout,
        target_plugin: service.plugin_id.clone(),
        endpoint: plexhub_core::access::describe_endpoint(endpoint),
    })
}

/// The decision with every check written out (the explain route).
pub async fn explain_call(
    state: &AppState,
    call: &CallContext<'_>,
    service_name: &ServiceName,
    method: &Method,
    path: &str,
) -> Result<serde_json::Value, ApiError> {
    let loaded = Loaded::new(state, call, service_name).await?;
    let Some(method) = manifest_method(method) else {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "method must be GET, POST, PUT, PATCH or DELETE",
        ));
    };
    let request = loaded.request(state, call, service_name, None, method, path)?;
    let decision = explain(&request);
    let error = decision
        .denial
        .as_ref()
        .map(|denial| denial_error(denial, service_name, call.caller));
    Ok(json!({
        "allowed": decision.allowed(),
        "code": error.as_ref().map(|e| e.code()),
        "message": error.as_ref().map(ApiError::message),
        "endpoint": decision.endpoint.map(plexhub_core::access::describe_endpoint),
        "checks": decision.checks,
    }))
}

/// Headers never forwarded in either direction (hop-by-hop, RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether a caller's request header must not reach the plugin.
fn dropped_request_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    HOP_BY_HOP.contains(&name)
        || matches!(
            name,
            "host" | "authorization" | "cookie" | "x-request-id" | "traceparent" | "tracestate"
        )
        || name.starts_with("x-tenant-")
        || name.starts_with("x-caller-")
        || name.starts_with("x-plexhub-")
}

/// Names listed in a `Connection` header are hop-by-hop too.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_str(name.trim()).ok())
        .collect()
}

/// A valid W3C `traceparent` of the caller, or a new one.
fn traceparent(headers: &HeaderMap) -> HeaderValue {
    let valid = headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .filter(|text| {
            let parts: Vec<&str> = text.split('-').collect();
            let hex =
                |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
            parts.len() == 4
                && hex(parts[0], 2)
                && parts[0] != "ff"
                && hex(parts[1], 32)
                && parts[1].bytes().any(|b| b != b'0')
                && hex(parts[2], 16)
                && parts[2].bytes().any(|b| b != b'0')
                && hex(parts[3], 2)
        });
    if let Some(value) = valid.and_then(|text| HeaderValue::from_str(text).ok()) {
        return value;
    }
    let (trace, span): (u128, u64) = (rand::random(), rand::random());
    HeaderValue::from_str(&format!("00-{:032x}-{:016x}-01", trace.max(1), span.max(1)))
        .unwrap_or_else(|_| {
            HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
        })
}

fn upstream_error(code: ErrorCode, message: String) -> ApiError {
    ApiError::new(code, message)
}

/// Forwards `request` (method, `path_and_query`, filtered headers, streamed body) to the
/// authorized replica and streams its answer back (status, body, headers minus `Set-Cookie`
/// and hop-by-hop ones).
pub async fn forward(
    state: &AppState,
    call: &CallContext<'_>,
    route: &Authorized,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    let limits = state.gateway.settings;
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > limits.max_request_bytes) {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request body exceeds {} bytes",
                limits.max_request_bytes
            ),
        ));
    }
    let uri = Uri::from_str(&format!("{}{path_and_query}", route.base_url))
        .map_err(|_| ApiError::new(ErrorCode::InvalidParameter, "the path cannot be forwarded"))?;
    let listed = connection_listed(headers);
    let mut outgoing = Request::builder().method(method.clone()).uri(uri);
    if let Some(forwarded) = outgoing.headers_mut() {
        for (name, value) in headers {
            if !dropped_request_header(name) && !listed.contains(name) {
                forwarded.append(name.clone(), value.clone());
            }
        }
        if let Ok(value) = HeaderValue::from_str(&call.tenant.id.to_string()) {
            forwarded.insert("x-tenant-id", value);
        }
        if let Ok(value) = HeaderValue::from_str(call.tenant.slug.as_str()) {
            forwarded.insert("x-tenant-slug", value);
        }
        if let Ok(value) = HeaderValue::from_str(call.caller.as_str()) {
            forwarded.insert("x-caller-plugin-id", value);
        }
        let request_id = headers.get(&REQUEST_ID_HEADER);
        if let Some(id) = request_id {
            forwarded.insert(REQUEST_ID_HEADER.clone(), id.clone());
        }
        forwarded.insert("traceparent", traceparent(headers));
        if let Some(key) = state.gateway.keys.first().filter(|_| limits.sign_requests) {
            let (path, query) = path_and_query
                .split_once('?')
                .unwrap_or((path_and_query, ""));
            let tenant_id = call.tenant.id.to_string();
            let signed = SignedRequest {
                method: method.as_str(),
                path,
                query,
                tenant_id: &tenant_id,
                caller: call.caller.as_str(),
                request_id: request_id
                    .and_then(|id| id.to_str().ok())
                    .unwrap_or_default(),
            };
            let signature = key.sign(&signed, state.clock.now_ms());
            if let Ok(value) = HeaderValue::from_str(&signature) {
                forwarded.insert(SIGNATURE_HEADER, value);
            }
        }
    }
    let max_request = usize::try_from(limits.max_request_bytes).unwrap_or(usize::MAX);
    let outgoing = outgoing
        .body(Body::new(Limited::new(body, max_request)))
        .map_err(|error| ApiError::internal(&error))?;
    let answer = tokio::time::timeout(route.timeout, state.gateway.client.request(outgoing)).await;
    let response = match answer {
        Err(_) => {
            return Err(upstream_error(
                ErrorCode::UpstreamTimeout,
                format!(
                    "{} did not answer within {} ms",
                    route.target_plugin,
                    route.timeout.as_millis()
                ),
            ));
        }
        Ok(Err(error)) => {
            let too_large = std::error::Error::source(&error)
                .and_then(|source| source.downcast_ref::<axum::Error>())
                .is_some_and(|inner| inner.to_string().contains("length limit"));
            if too_large {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "the request body exceeds {} bytes",
                        limits.max_request_bytes
                    ),
                ));
            }
            let code = if error.is_connect() {
                ErrorCode::UpstreamUnreachable
            } else {
                ErrorCode::UpstreamFailed
            };
            return Err(upstream_error(
                code,
                format!("{} could not be reached: {error}", route.target_plugin),
            ));
        }
        Ok(Ok(response)) => response,
    };
    let (mut parts, incoming) = response.into_parts();
    tracing::info!(
        tenant = %call.tenant.slug,
        caller = %call.caller,
        target = %route.target_plugin,
        endpoint = %route.endpoint,
        status = parts.status.as_u16(),
        "call forwarded"
    );
    let answered_length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if answered_length.is_some_and(|length| length > limits.max_response_bytes) {
        return Err(upstream_error(
            ErrorCode::UpstreamResponseTooLarge,
            format!(
                "{} answered more than {} bytes",
                route.target_plugin, limits.max_response_bytes
            ),
        ));
    }
    let listed = connection_listed(&parts.headers);
    for name in HOP_BY_HOP.iter().copied().chain(["set-cookie"]) {
        parts.headers.remove(name);
    }
    for name in &listed {
        parts.headers.remove(name);
    }
    let max_response = usize::try_from(limits.max_response_bytes).unwrap_or(usize::MAX);
    let body = Body::new(Limited::new(incoming, max_response).map_err(axum::Error::new));
    Ok(Response::from_parts(parts, body))
}
