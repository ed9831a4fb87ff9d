//! Registry operations shared by the seed-compatible and the native routes: who may register
//! what, where services may live, what discovery returns, and how services look on the wire.

use plexhub_core::ids::{PluginId, ServiceName};
use plexhub_core::installation::{BaseUrl, Installation, InstallationState};
use plexhub_core::manifest::{EndpointSpec, HttpMethod};
use plexhub_core::registry::{Instance, InstanceId, Service, ServiceStatus, check_endpoints};
use plexhub_core::tenant::Tenant;
use plexhub_core::version::{Version, VersionRange};
use plexhub_store::feed::Change;
use plexhub_store::{InstanceRegistration, Registered, ServiceRegistration, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use std::sync::Arc;

use axum::body::Bytes;

use crate::auth::TenantScope;
use crate::cache::{Rendered, ServiceEntry};
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, rfc3339};

/// An endpoint as plugins send it.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointInput {
    /// GET, POST, PUT, PATCH or DELETE.
    method: String,
    /// Path template, e.g. `/contacts/:id`.
    path: String,
    description: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
}

fn invalid(message: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidBody, message.to_string())
}

/// Parses a service name from a body or path.
pub fn parse_service_name(text: &str) -> Result<ServiceName, ApiError> {
    ServiceName::parse(text).map_err(|e| invalid(format!("serviceName {text:?}: {e}")))
}

/// Parses endpoints, rejecting unknown methods, bad paths and repeated (method, path) pairs.
pub fn parse_endpoints(inputs: Vec<EndpointInput>) -> Result<Vec<EndpointSpec>, ApiError> {
    let endpoints = inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| {
            let method = HttpMethod::parse(&input.method).ok_or_else(|| {
                invalid(format!(
                    "endpoints.{index}.method {:?}: expected GET, POST, PUT, PATCH or DELETE",
                    input.method
                ))
            })?;
            Ok(EndpointSpec {
                method,
                path: input.path,
                description: input.description,
                permissions: input.permissions,
                metadata: input.metadata,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    check_endpoints(&endpoints).map_err(invalid)?;
    Ok(endpoints)
}

/// The installation a registration is for; 404 `NOT_INSTALLED` if the plugin is not installed.
pub async fn installation_of(
    state: &AppState,
    tenant: &Tenant,
    plugin_id: &PluginId,
) -> Result<Installation, ApiError> {
    state
        .store
        .installation(tenant.id, plugin_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotInstalled,
                format!(
                    "{plugin_id} is not installed for tenant \"{}\"",
                    tenant.slug
                ),
            )
        })
}

/// Parses a URL a plugin registers and checks it against the installation's allowed origins:
/// nothing a plugin sends can make the hub call elsewhere.
pub fn allowed_base_url(installation: &Installation, text: &str) -> Result<BaseUrl, ApiError> {
    let url = BaseUrl::parse(text).map_err(invalid)?;
    if installation.allows_origin_of(&url) {
        Ok(url)
    } else {
        Err(ApiError::new(
            ErrorCode::OriginNotAllowed,
            format!(
                "{} may not be reached at {}: allowed origins are {}",
                installation.plugin_id,
                url.origin(),
                match installation.allowed_origins() {
                    origins if origins.is_empty() =>
                        "none (it was installed without a baseUrl and without allowedOrigins)"
                            .to_owned(),
                    origins => origins.join(", "),
                }
            ),
        ))
    }
}

fn owned_by_other(name: &ServiceName, owner: &PluginId) -> ApiError {
    ApiError::new(
        ErrorCode::ServiceOwned,
        format!("service {name} belongs to {owner}; choose another name"),
    )
    .with_details(json!({ "owner": owner }))
}

/// Registers a service with one replica and tells every hub instance.
pub async fn register(
    state: &AppState,
    registration: ServiceRegistration,
) -> Result<String, ApiError> {
    let now = state.clock.now_ms();
    let outcome = match state.store.register_service(&registration, now).await {
        Err(StoreError::MissingReference) => {
            return Err(ApiError::new(
                ErrorCode::NotInstalled,
                format!("{} is not installed", registration.plugin_id),
            ));
        }
        other => other?,
    };
    match outcome {
        Registered::Done { service_id } => {
            let data = json!({
                "serviceName": registration.name.to_string(),
                "pluginId": registration.plugin_id.as_str(),
                "version": registration.version.to_string(),
            });
            state
                .changed(Change::Services {
                    tenant: registration.tenant_id,
                    names: vec![registration.name],
                })
                .await;
            crate::events::announce(
                state,
                registration.tenant_id,
                "plexhub.service.registered",
                data,
            )
            .await;
            Ok(service_id)
        }
        Registered::OwnedBy(owner) => Err(owned_by_other(&registration.name, &owner)),
        Registered::NoSuchService => Err(ApiError::internal(&"registration found no service")),
    }
}

/// A replica registered through the native API.
pub struct NewInstance {
    /// Replica name.
    pub id: InstanceId,
    /// Where it is reached (must be an allowed origin).
    pub base_url: String,
    /// Its own version.
    pub version: Option<Version>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
}

/// Registers or refreshes one replica of an existing service.
pub async fn put_instance(
    state: &AppState,
    scope: &TenantScope,
    name: &ServiceName,
    instance: NewInstance,
) -> Result<(), ApiError> {
    let (service, _) = find_service(state, scope, name).await?;
    scope.ensure_acts_for(&service.plugin_id)?;
    let installation = installation_of(state, &scope.tenant, &service.plugin_id).await?;
    let base_url = allowed_base_url(&installation, &instance.base_url)?;
    let registration = InstanceRegistration {
        id: instance.id,
        base_url: Some(base_url.clone()),
        fallback_base_url: base_url,
        version: instance.version,
        metadata: instance.metadata,
        initial: ServiceStatus::Healthy,
    };
    let now = state.clock.now_ms();
    let outcome = state
        .store
        .upsert_instance(
            scope.tenant.id,
            &service.plugin_id,
            name,
            &registration,
            now,
        )
        .await?;
    match outcome {
        Registered::Done { .. } => {
            state.changed(services_change(scope, name)).await;
            Ok(())
        }
        Registered::OwnedBy(owner) => Err(owned_by_other(name, &owner)),
        Registered::NoSuchService => Err(service_not_found(name)),
    }
}

/// 404 `SERVICE_NOT_FOUND` in the seed's words.
pub fn service_not_found(name: &impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::ServiceNotFound, "Service not found")
        .with_details(json!({ "serviceName": name.to_string() }))
}

/// The change that invalidates one service of the scope's tenant.
pub fn services_change(scope: &TenantScope, name: &ServiceName) -> Change {
    Change::Services {
        tenant: scope.tenant.id,
        names: vec![name.clone()],
    }
}

/// The cache entry of a service of the scope's tenant (present or not).
pub async fn service_entry(
    state: &AppState,
    scope: &TenantScope,
    name: &ServiceName,
) -> Result<Arc<ServiceEntry>, ApiError> {
    let tenant = scope.tenant.id;
    Ok(state
        .cache
        .service((tenant, name.clone()), || async move {
            state.store.service_by_name(tenant, name).await
        })
        .await?)
}

/// A service of the scope's tenant (any state), through the cache.
pub async fn find_service(
    state: &AppState,
    scope: &TenantScope,
    name: &ServiceName,
) -> Result<(Service, InstallationState), ApiError> {
    let entry = service_entry(state, scope, name).await?;
    entry.found.clone().ok_or_else(|| service_not_found(name))
}

/// The seed's discovery answer `{"service": …}` as JSON, rendered once per status window of
/// the cached entry, so the hot path neither clones nor serialises.
pub async fn discovery_answer(
    state: &AppState,
    scope: &TenantScope,
    name: &ServiceName,
    range: Option<&VersionRange>,
) -> Result<Bytes, ApiError> {
    let entry = service_entry(state, scope, name).await?;
    let Some((service, installation)) = &entry.found else {
        return Err(service_not_found(name));
    };
    if *installation != InstallationState::Active
        || range.is_some_and(|range| !range.satisfies(&service.version))
    {
        return Err(service_not_found(name));
    }
    let now = state.clock.now_ms();
    let rendered = entry.rendered(now, || {
        let view = DiscoveredService::new(state, service, Dialect::Seed);
        Rendered {
            until_ms: service.status_stable_until(&state.health, now),
            status: service.status(&state.health, now),
            body: Bytes::from(json!({ "service": view }).to_string()),
        }
    });
    if rendered.status.is_discoverable() {
        Ok(rendered.body.clone())
    } else {
        Err(service_not_found(name))
    }
}

/// Parses an optional `?version=` range.
pub fn parse_range(text: Option<&str>) -> Result<Option<VersionRange>, ApiError> {
    text.map(VersionRange::parse)
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, e.to_string()))
}

/// Which statuses a route speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The seed-compatible routes: HEALTHY, DEGRADED, UNAVAILABLE (UNKNOWN shows as HEALTHY).
    Seed,
    /// The native API: UNKNOWN as well.
    Native,
}

impl Dialect {
    /// `status` as this dialect shows it.
    pub fn show(self, status: ServiceStatus) -> ServiceStatus {
        match self {
            Self::Seed => status.seed_form(),
            Self::Native => status,
        }
    }
}

/// Parses an optional `?status=` filter in the words of `dialect`.
pub fn parse_status(
    text: Option<&str>,
    dialect: Dialect,
) -> Result<Option<ServiceStatus>, ApiError> {
    text.map(|status| {
        let parsed = match dialect {
            Dialect::Seed => ServiceStatus::parse_report(status),
            Dialect::Native => ServiceStatus::parse(status),
        };
        parsed.ok_or_else(|| {
            let expected = match dialect {
                Dialect::Seed => "HEALTHY, DEGRADED or UNAVAILABLE",
                Dialect::Native => "HEALTHY, UNKNOWN, DEGRADED or UNAVAILABLE",
            };
            ApiError::new(
                ErrorCode::InvalidParameter,
                format!("status {status:?}: expected {expected}"),
            )
        })
    })
    .transpose()
}

/// Parses a version a plugin registers.
pub fn parse_version(text: &str) -> Result<Version, ApiError> {
    Version::parse(text).map_err(invalid)
}

/// Parses an instance id from a path.
pub fn parse_instance(text: &str) -> Result<InstanceId, ApiError> {
    InstanceId::parse(text).map_err(|e| ApiError::new(ErrorCode::InvalidParameter, e.to_string()))
}

/// An endpoint on the wire.
#[derive(Serialize, ToSchema)]
pub struct EndpointView {
    method: String,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    permissions: Vec<String>,
    metadata: Map<String, Value>,
}

fn endpoint_views(service: &Service) -> Vec<EndpointView> {
    service
        .endpoints
        .iter()
        .map(|e| EndpointView {
            method: e.method.as_str().to_owned(),
            path: e.path.clone(),
            description: e.description.clone(),
            permissions: e.permissions.clone(),
            metadata: e.metadata.clone(),
        })
        .collect()
}

/// The seed's `DiscoveredService`: the service as seen through its best replica.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredService {
    id: String,
    plugin_id: String,
    service_name: String,
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    base_url: Option<String>,
    #[schema(example = "HEALTHY")]
    status: String,
    endpoints: Vec<EndpointView>,
    metadata: Map<String, Value>,
    /// RFC 3339.
    last_seen_at: String,
}

impl DiscoveredService {
    /// The view of `service` now, its status in the words of `dialect`.
    pub fn new(state: &AppState, service: &Service, dialect: Dialect) -> Self {
        let now = state.clock.now_ms();
        let best = service.best_instance(&state.health, now);
        Self {
            id: service.id.clone(),
            plugin_id: service.plugin_id.to_string(),
            service_name: service.name.to_string(),
            version: service.version.to_string(),
            base_url: best.map(|(i, _)| i.base_url.as_str().to_owned()),
            status: dialect
                .show(best.map_or(ServiceStatus::Unavailable, |(_, status)| status))
                .as_str()
                .to_owned(),
            endpoints: endpoint_views(service),
            metadata: service.metadata.clone(),
            last_seen_at: rfc3339(service.last_seen_ms().unwrap_or_default()),
        }
    }
}

/// One replica on the wire.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    instance_id: String,
    base_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[schema(example = "HEALTHY")]
    status: String,
    /// Why the plugin reported itself degraded or unavailable.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    metadata: Map<String, Value>,
    last_seen_at: String,
    /// While the answering hub's circuit breaker for this replica is open: until when (RFC
    /// 3339) calls skip it. Each hub keeps its own breakers (and adopts the others' verdicts).
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit_open_until: Option<String>,
}

/// A service with all its replicas (native API).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    #[serde(flatten)]
    #[schema(inline)]
    service: DiscoveredService,
    /// Whether discovery returns it (installation ACTIVE, a replica not UNAVAILABLE).
    discoverable: bool,
    instances: Vec<InstanceView>,
}

impl ServiceView {
    /// The view of `service` at the current time.
    pub fn new(state: &AppState, service: &Service, installation: InstallationState) -> Self {
        let now = state.clock.now_ms();
        let instance_view = |i: &Instance| InstanceView {
            instance_id: i.id.to_string(),
            base_url: i.base_url.as_str().to_owned(),
            version: i.version.as_ref().map(ToString::to_string),
            status: state
                .health
                .status(i.reported, i.last_seen_ms, now)
                .as_str()
                .to_owned(),
            reason: i.reason.clone(),
            metadata: i.metadata.clone(),
            last_seen_at: rfc3339(i.last_seen_ms),
            circuit_open_until: state
                .gateway
                .circuit_open_until_ms(&crate::cache::replica_key(
                    service.tenant_id,
                    &service.name,
                    &i.id,
                ))
                .map(rfc3339),
        };
        Self {
            discoverable: installation == InstallationState::Active
                && service.status(&state.health, now).is_discoverable(),
            service: DiscoveredService::new(state, service, Dialect::Native),
            instances: service.instances.iter().map(instance_view).collect(),
        }
    }
}

/// The refusal of a service without a URL from an installation without a `baseUrl`.
pub fn no_base_url(plugin: &PluginId) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidBody,
        format!(
            "{plugin} was installed without a baseUrl, so its services have nowhere to be reached: \
             set one (PUT …/installations/{plugin}/base-url) or register with a URL"
        ),
    )
}

/// Registers every service of an installation's manifest (on activation), with the
/// installation's URL for new replicas; with `relocate`, existing default replicas move to it
/// too (its `baseUrl` changed).
pub async fn register_manifest_services(
    state: &AppState,
    tenant: &Tenant,
    installation: &Installation,
    services: &[plexhub_core::manifest::ServiceSpec],
    relocate: bool,
) -> Result<(), ApiError> {
    let Some(base_url) = &installation.base_url else {
        if services.is_empty() {
            return Ok(());
        }
        return Err(no_base_url(&installation.plugin_id));
    };
    for spec in services {
        register(
            state,
            ServiceRegistration {
                tenant_id: tenant.id,
                plugin_id: installation.plugin_id.clone(),
                name: spec.name.clone(),
                version: spec.version.clone(),
                metadata: spec.metadata.clone(),
                endpoints: Some(spec.endpoints.clone()),
                instance: InstanceRegistration {
                    id: InstanceId::default_instance(),
                    base_url: relocate.then(|| base_url.clone()),
                    fallback_base_url: base_url.clone(),
                    version: None,
                    metadata: Map::new(),
                    // Until the plugin beats or answers a call, the hub has not heard from it.
                    initial: ServiceStatus::Unknown,
                },
            },
        )
        .await?;
    }
    Ok(())
}
