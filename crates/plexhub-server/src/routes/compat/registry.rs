//! The seed's five registry routes.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use plexhub_core::ids::PluginId;
use plexhub_core::registry::{InstanceId, ServiceStatus};
use plexhub_store::{InstanceRegistration, ServiceRegistration};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::registry::{
    self, Dialect, DiscoveredService, EndpointInput, allowed_base_url, installation_of,
    parse_endpoints, parse_range, parse_service_name, parse_status, parse_version,
    service_not_found, services_change,
};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_service))
        .routes(routes!(deregister_service))
        .routes(routes!(discover_service))
        .routes(routes!(list_services))
        .routes(routes!(heartbeat))
}

/// Body of the seed's register call. Unknown fields are ignored, as in the original.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterService {
    /// Must be the calling plugin (any installed plugin for the admin).
    plugin_id: String,
    /// Two dot-separated lowercase segments, e.g. `crm.contacts`.
    service_name: String,
    /// Semantic version.
    version: String,
    /// Omitted: the previous URL, else the installation's. Must be an allowed origin.
    base_url: Option<String>,
    /// A non-empty list replaces the previous endpoints; omitted or empty keeps them.
    endpoints: Option<Vec<EndpointInput>>,
    metadata: Option<Map<String, Value>>,
}

/// Answer of the register call.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterReply {
    success: bool,
    service_id: String,
    message: &'static str,
    /// How often to send heartbeats.
    heartbeat_interval_seconds: i64,
}

/// The seed's acknowledgement body.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Acknowledged {
    success: bool,
    message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_interval_seconds: Option<i64>,
}

/// The seed's discovery answer.
#[derive(Serialize, ToSchema)]
pub struct Discovered {
    service: DiscoveredService,
}

/// The seed's listing answer.
#[derive(Serialize, ToSchema)]
pub struct ServiceList {
    services: Vec<DiscoveredService>,
    count: usize,
}

/// Filters of the listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct ListFilter {
    /// Only this plugin's services.
    plugin_id: Option<String>,
    /// HEALTHY, DEGRADED or UNAVAILABLE.
    status: Option<String>,
}

/// Discovery filter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiscoverFilter {
    /// An npm range the service version must satisfy.
    version: Option<String>,
}

fn heartbeat_seconds(state: &AppState) -> i64 {
    state.health.heartbeat_interval_ms / 1000
}

/// Register (or re-register) a service of the calling plugin.
#[utoipa::path(post, path = "/api/plugin-gateway/services/register", tag = "registry (seed-compatible)",
    request_body = RegisterService,
    responses((status = 201, body = RegisterReply),
        (status = 400, description = "invalid body, ORIGIN_NOT_ALLOWED, TENANT_REQUIRED"),
        (status = 403, description = "PLUGIN_NOT_CALLER"), (status = 404, description = "NOT_INSTALLED"),
        (status = 409, description = "SERVICE_OWNED")),
    security(("bearer" = [])))]
async fn register_service(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterService>,
) -> Result<(StatusCode, Json<RegisterReply>), ApiError> {
    let plugin_id = PluginId::parse(&body.plugin_id)
        .map_err(|e| ApiError::new(ErrorCode::InvalidBody, format!("pluginId: {e}")))?;
    scope.ensure_acts_for(&plugin_id)?;
    let name = parse_service_name(&body.service_name)?;
    let version = parse_version(&body.version)?;
    let endpoints = body
        .endpoints
        .map(parse_endpoints)
        .transpose()?
        .filter(|endpoints| !endpoints.is_empty());
    let installation = installation_of(&state, &scope.tenant, &plugin_id).await?;
    let base_url = body
        .base_url
        .as_deref()
        .map(|url| allowed_base_url(&installation, url))
        .transpose()?;
    let fallback_base_url = base_url
        .clone()
        .or_else(|| installation.base_url.clone())
        .ok_or_else(|| registry::no_base_url(&installation.plugin_id))?;
    let service_id = registry::register(
        &state,
        ServiceRegistration {
            tenant_id: scope.tenant.id,
            plugin_id,
            name,
            version,
            metadata: body.metadata.unwrap_or_default(),
            endpoints,
            instance: InstanceRegistration {
                id: InstanceId::default_instance(),
                base_url,
                fallback_base_url,
                version: None,
                metadata: Map::new(),
                initial: ServiceStatus::Healthy,
            },
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisterReply {
            success: true,
            service_id,
            message: "Service registered successfully",
            heartbeat_interval_seconds: heartbeat_seconds(&state),
        }),
    ))
}

/// Deregister a service (idempotent; only its plugin or the admin).
#[utoipa::path(delete, path = "/api/plugin-gateway/services/{pluginId}/{serviceName}", tag = "registry (seed-compatible)",
    responses((status = 200, body = Acknowledged), (status = 403, description = "PLUGIN_NOT_CALLER")),
    security(("bearer" = [])))]
async fn deregister_service(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath((plugin_id, service_name)): ApiPath<(String, String)>,
) -> Result<Json<Acknowledged>, ApiError> {
    if let Some(caller) = scope.calling_plugin()
        && caller.as_str() != plugin_id
    {
        return Err(ApiError::new(
            ErrorCode::PluginNotCaller,
            format!("{caller} cannot deregister services of {plugin_id}"),
        ));
    }
    if let Ok(name) = parse_service_name(&service_name) {
        let owned = state
            .store
            .service_by_name(scope.tenant.id, &name)
            .await?
            .is_some_and(|(service, _)| service.plugin_id.as_str() == plugin_id);
        let now = state.clock.now_ms();
        if owned
            && state
                .store
                .deregister_service(scope.tenant.id, &name, now)
                .await?
        {
            state.changed(services_change(&scope, &name)).await;
            let data = json!({ "serviceName": name.to_string(), "pluginId": plugin_id });
            crate::events::announce(
                &state,
                scope.tenant.id,
                "plexhub.service.deregistered",
                data,
            )
            .await;
        }
    }
    Ok(Json(Acknowledged {
        success: true,
        message: "Service deregistered successfully",
        heartbeat_interval_seconds: None,
    }))
}

/// Discover a service by name (ACTIVE installations, HEALTHY or DEGRADED only).
#[utoipa::path(get, path = "/api/plugin-gateway/services/discover/{serviceName}", tag = "registry (seed-compatible)",
    params(DiscoverFilter),
    responses((status = 200, body = Discovered), (status = 404, description = "SERVICE_NOT_FOUND")),
    security(("bearer" = [])))]
async fn discover_service(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath(service_name): ApiPath<String>,
    ApiQuery(filter): ApiQuery<DiscoverFilter>,
) -> Result<Response, ApiError> {
    let name = parse_service_name(&service_name).map_err(|_| service_not_found(&service_name))?;
    let range = parse_range(filter.version.as_deref())?;
    let body = registry::discovery_answer(&state, &scope, &name, range.as_ref()).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// List the tenant's services by name, UNAVAILABLE ones included.
#[utoipa::path(get, path = "/api/plugin-gateway/services", tag = "registry (seed-compatible)", params(ListFilter),
    responses((status = 200, body = ServiceList), (status = 400, description = "invalid status")),
    security(("bearer" = [])))]
async fn list_services(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiQuery(filter): ApiQuery<ListFilter>,
) -> Result<Json<ServiceList>, ApiError> {
    let wanted = parse_status(filter.status.as_deref(), Dialect::Seed)?;
    let now = state.clock.now_ms();
    let services: Vec<DiscoveredService> = state
        .store
        .services(scope.tenant.id)
        .await?
        .iter()
        .filter(|(s, _)| {
            filter
                .plugin_id
                .as_deref()
                .is_none_or(|p| s.plugin_id.as_str() == p)
        })
        .filter(|(s, _)| wanted.is_none_or(|w| s.status(&state.health, now).seed_form() == w))
        .map(|(s, _)| DiscoveredService::new(&state, s, Dialect::Seed))
        .collect();
    Ok(Json(ServiceList {
        count: services.len(),
        services,
    }))
}

/// Heartbeat of a service (its `default` replica, or all replicas when it has none): revives
/// it to HEALTHY.
#[utoipa::path(post, path = "/api/plugin-gateway/services/{serviceId}/heartbeat", tag = "registry (seed-compatible)",
    responses((status = 200, body = Acknowledged), (status = 403, description = "PLUGIN_NOT_CALLER"),
        (status = 404, description = "SERVICE_NOT_FOUND")),
    security(("bearer" = [])))]
async fn heartbeat(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath(service_id): ApiPath<String>,
) -> Result<Json<Acknowledged>, ApiError> {
    let (service, _) = state
        .store
        .service_by_id(scope.tenant.id, &service_id)
        .await?
        .ok_or_else(|| service_not_found(&service_id))?;
    scope.ensure_acts_for(&service.plugin_id)?;
    let default = InstanceId::default_instance();
    let instance = service
        .instances
        .iter()
        .any(|i| i.id == default)
        .then_some(&default);
    let now = state.clock.now_ms();
    state
        .store
        .record_health(
            scope.tenant.id,
            &service.id,
            instance,
            ServiceStatus::Healthy,
            None,
            now,
        )
        .await?;
    state.changed(services_change(&scope, &service.name)).await;
    Ok(Json(Acknowledged {
        success: true,
        message: "Heartbeat received",
        heartbeat_interval_seconds: Some(heartbeat_seconds(&state)),
    }))
}
