//! `/api/v1/services`: the registry with replicas, health reports and a watch stream.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use futures::Stream;
use plexhub_core::registry::ServiceStatus;
use plexhub_store::feed::{Change, FeedEvent};
use plexhub_store::{EventsSince, RegistryEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::registry::{
    Dialect, NewInstance, ServiceView, find_service, parse_instance, parse_service_name,
    parse_status, parse_version, put_instance, service_not_found, services_change,
};
use crate::state::AppState;
use crate::watch::{self, Batch, ChangeLog};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_services))
        .routes(routes!(watch_services))
        .routes(routes!(get_service))
        .routes(routes!(put_service_instance, delete_service_instance))
        .routes(routes!(instance_heartbeat))
        .routes(routes!(instance_health))
}

/// Paging and filters of the service list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServicePaging {
    /// Page size, 1-500 (default 100).
    limit: Option<u32>,
    /// `nextCursor` of the previous page (a service name).
    cursor: Option<String>,
    /// Only this plugin's services.
    plugin_id: Option<String>,
    /// HEALTHY, UNKNOWN (activated, not heard from yet), DEGRADED or UNAVAILABLE.
    status: Option<String>,
}

/// One page of services, ordered by name.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePage {
    services: Vec<ServiceView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// Body of an instance registration.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PutInstance {
    /// Where this replica is reached; its origin must be allowed for the installation.
    base_url: String,
    /// The replica's version, if it differs from the service's.
    version: Option<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
}

/// A replica's answer to the registry.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceReply {
    service: ServiceView,
    /// How often to send heartbeats.
    heartbeat_interval_seconds: i64,
}

/// A plugin's report about one of its replicas.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthReport {
    /// HEALTHY, DEGRADED or UNAVAILABLE.
    status: String,
    /// Why, for people reading the registry.
    reason: Option<String>,
}

fn limit_of(limit: Option<u32>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=500).contains(&limit) {
        Ok(limit as usize)
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "limit must be between 1 and 500",
        ))
    }
}

/// List the tenant's services with their replicas, by name, a page at a time.
#[utoipa::path(get, path = "/api/v1/services", tag = "registry", params(ServicePaging),
    responses((status = 200, body = ServicePage), (status = 400, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_services(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiQuery(paging): ApiQuery<ServicePaging>,
) -> Result<Json<ServicePage>, ApiError> {
    let limit = limit_of(paging.limit)?;
    let wanted = parse_status(paging.status.as_deref(), Dialect::Native)?;
    let now = state.clock.now_ms();
    let mut matching: Vec<_> = state
        .store
        .services(scope.tenant.id)
        .await?
        .into_iter()
        .filter(|(s, _)| paging.cursor.as_deref().is_none_or(|c| s.name.as_str() > c))
        .filter(|(s, _)| {
            paging
                .plugin_id
                .as_deref()
                .is_none_or(|p| s.plugin_id.as_str() == p)
        })
        .filter(|(s, _)| wanted.is_none_or(|w| s.status(&state.health, now) == w))
        .collect();
    let next_cursor = (matching.len() > limit).then(|| matching[limit - 1].0.name.to_string());
    matching.truncate(limit);
    Ok(Json(ServicePage {
        services: matching
            .iter()
            .map(|(s, installation)| ServiceView::new(&state, s, *installation))
            .collect(),
        next_cursor,
    }))
}

/// Show one service with its replicas (whether discoverable or not).
#[utoipa::path(get, path = "/api/v1/services/{serviceName}", tag = "registry",
    responses((status = 200, body = ServiceView), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_service(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath(service_name): ApiPath<String>,
) -> Result<Json<ServiceView>, ApiError> {
    let name = parse_service_name(&service_name).map_err(|_| service_not_found(&service_name))?;
    let (service, installation) = find_service(&state, &scope, &name).await?;
    Ok(Json(ServiceView::new(&state, &service, installation)))
}

/// Register or refresh one replica of a registered service.
#[utoipa::path(put, path = "/api/v1/services/{serviceName}/instances/{instanceId}", tag = "registry",
    request_body = PutInstance,
    responses((status = 200, body = InstanceReply), (status = 400, body = ErrorEnvelope),
        (status = 403, description = "PLUGIN_NOT_CALLER", body = ErrorEnvelope),
        (status = 404, description = "SERVICE_NOT_FOUND", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn put_service_instance(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath((service_name, instance_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<PutInstance>,
) -> Result<Json<InstanceReply>, ApiError> {
    let name = parse_service_name(&service_name).map_err(|_| service_not_found(&service_name))?;
    let id = parse_instance(&instance_id)?;
    let version = body.version.as_deref().map(parse_version).transpose()?;
    put_instance(
        &state,
        &scope,
        &name,
        NewInstance {
            id,
            base_url: body.base_url,
            version,
            metadata: body.metadata,
        },
    )
    .await?;
    let (service, installation) = find_service(&state, &scope, &name).await?;
    Ok(Json(InstanceReply {
        service: ServiceView::new(&state, &service, installation),
        heartbeat_interval_seconds: state.health.heartbeat_interval_ms / 1000,
    }))
}

/// Remove one replica.
#[utoipa::path(delete, path = "/api/v1/services/{serviceName}/instances/{instanceId}", tag = "registry",
    responses((status = 204), (status = 403, body = ErrorEnvelope),
        (status = 404, description = "SERVICE_NOT_FOUND, INSTANCE_NOT_FOUND", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn delete_service_instance(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath((service_name, instance_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let name = parse_service_name(&service_name).map_err(|_| service_not_found(&service_name))?;
    let id = parse_instance(&instance_id)?;
    let (service, _) = find_service(&state, &scope, &name).await?;
    scope.ensure_acts_for(&service.plugin_id)?;
    let now = state.clock.now_ms();
    if state
        .store
        .remove_instance(scope.tenant.id, &name, &id, now)
        .await?
    {
        state.changed(services_change(&scope, &name)).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(instance_not_found(&name, &instance_id))
    }
}

fn instance_not_found(name: &impl std::fmt::Display, instance: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InstanceNotFound,
        format!("service {name} has no instance \"{instance}\""),
    )
}

async fn report(
    state: &AppState,
    scope: &TenantScope,
    service_name: &str,
    instance_id: &str,
    status: ServiceStatus,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    let name = parse_service_name(service_name).map_err(|_| service_not_found(&service_name))?;
    let id = parse_instance(instance_id)?;
    let (service, _) = find_service(state, scope, &name).await?;
    scope.ensure_acts_for(&service.plugin_id)?;
    let now = state.clock.now_ms();
    let updated = state
        .store
        .record_health(scope.tenant.id, &service.id, Some(&id), status, reason, now)
        .await?;
    if updated == 0 {
        return Err(instance_not_found(&name, instance_id));
    }
    state.changed(services_change(scope, &name)).await;
    Ok(())
}

/// Heartbeat of one replica: records it and revives it to HEALTHY.
#[utoipa::path(post, path = "/api/v1/services/{serviceName}/instances/{instanceId}/heartbeat", tag = "registry",
    responses((status = 200, description = "recorded"), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn instance_heartbeat(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath((service_name, instance_id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    report(
        &state,
        &scope,
        &service_name,
        &instance_id,
        ServiceStatus::Healthy,
        None,
    )
    .await?;
    Ok(Json(json!({
        "status": ServiceStatus::Healthy,
        "heartbeatIntervalSeconds": state.health.heartbeat_interval_ms / 1000,
    })))
}

/// A plugin reports a replica's own state (counts as a heartbeat).
#[utoipa::path(post, path = "/api/v1/services/{serviceName}/instances/{instanceId}/health", tag = "registry",
    request_body = HealthReport,
    responses((status = 200, description = "recorded"), (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn instance_health(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath((service_name, instance_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<HealthReport>,
) -> Result<Json<Value>, ApiError> {
    let status = ServiceStatus::parse_report(&body.status).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidBody,
            format!(
                "status {:?}: expected HEALTHY, DEGRADED or UNAVAILABLE",
                body.status
            ),
        )
    })?;
    let reason = body.reason.filter(|_| status != ServiceStatus::Healthy);
    report(
        &state,
        &scope,
        &service_name,
        &instance_id,
        status,
        reason.as_deref(),
    )
    .await?;
    Ok(Json(json!({ "status": status, "reason": reason })))
}

/// The tenant's registry change log, rendered with each changed service.
struct RegistryLog {
    state: AppState,
    scope: TenantScope,
}

impl RegistryLog {
    async fn event_for(&self, change: &RegistryEvent) -> Event {
        let service = if change.kind.removes() {
            None
        } else {
            find_service(&self.state, &self.scope, &change.service_name)
                .await
                .ok()
                .map(|(service, installation)| {
                    ServiceView::new(&self.state, &service, installation)
                })
        };
        let data = match service {
            Some(view) => json!({ "type": change.kind.as_str(), "service": view }),
            None => json!({
                "type": change.kind.as_str(),
                "service": { "serviceName": change.service_name, "pluginId": change.plugin_id },
            }),
        };
        Event::default()
            .id(change.seq.to_string())
            .event(change.kind.as_str())
            .data(data.to_string())
    }
}

impl ChangeLog for RegistryLog {
    fn concerns(&self, event: &FeedEvent) -> bool {
        match event {
            FeedEvent::Change(Change::Services { tenant, .. } | Change::Tenant { tenant }) => {
                *tenant == self.scope.tenant.id
            }
            FeedEvent::Change(
                Change::CredentialRevoked { .. }
                | Change::Data { .. }
                | Change::Breaker { .. }
                | Change::Events { .. },
            ) => false,
            FeedEvent::Connected | FeedEvent::Disconnected => true,
        }
    }

    async fn read_after(&self, after: i64) -> Batch {
        let read = self
            .state
            .store
            .registry_events_since(self.scope.tenant.id, after, watch::BATCH)
            .await;
        match read {
            Ok(EventsSince::Events(changes)) => {
                let mut events = Vec::with_capacity(changes.len());
                for change in &changes {
                    events.push(self.event_for(change).await);
                }
                Batch::Events {
                    last: changes.last().map_or(after, |c| c.seq),
                    more: changes.len() == watch::BATCH as usize,
                    events,
                }
            }
            Ok(EventsSince::Reset { current }) => Batch::Reset { current },
            Err(error) => {
                tracing::warn!(%error, "watch cannot read the registry change log; retrying");
                Batch::Failed
            }
        }
    }
}

/// Server-Sent Events of the tenant's registry changes (`registered`, `updated`,
/// `health_changed`, `deregistered`, and `activated`, `deactivated`, `uninstalled` for its
/// plugin's installation), each with the changed service; resumable with
/// `Last-Event-ID`; `reset` when that id is too old (re-list, then continue).
#[utoipa::path(get, path = "/api/v1/services/watch", tag = "registry",
    responses((status = 200, description = "text/event-stream of registry changes", content_type = "text/event-stream")),
    security(("bearer" = [])))]
async fn watch_services(
    scope: TenantScope,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let log = RegistryLog {
        state: state.clone(),
        scope,
    };
    watch::follow(state, log, watch::resume_id(&headers)).await
}
