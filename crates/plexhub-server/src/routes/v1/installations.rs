//! `/api/v1/tenants/{slug}/installations`: installing catalog plugins for a tenant, their
//! lifecycle and their credentials (admin only).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use plexhub_core::credential::{CredentialId, IssuedCredential};
use plexhub_core::ids::PluginId;
use plexhub_core::installation::{
    BaseUrl, Installation, InstallationState, LifecycleAction, choose_version, parse_origin,
    unmet_dependencies, validate_grant,
};
use plexhub_core::manifest::validate_manifest;
use plexhub_core::tenant::Tenant;
use plexhub_core::version::{Version, VersionRange};
use plexhub_store::feed::Change;
use plexhub_store::{CredentialRecord, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tenants::find_tenant;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath};
use crate::registry::register_manifest_services;
use crate::state::{AppState, rfc3339};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(install_plugin, list_installations))
        .routes(routes!(get_installation, uninstall_plugin))
        .routes(routes!(activate_installation))
        .routes(routes!(deactivate_installation))
        .routes(routes!(issue_credential, list_credentials))
        .routes(routes!(revoke_credential))
}

/// Body of an install request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstallRequest {
    /// Catalog plugin id.
    plugin_id: String,
    /// A version or npm range; the highest match is installed (default: latest release).
    version: Option<String>,
    /// Where the plugin is reachable (http or https).
    base_url: String,
    /// Browser origins allowed to reach the plugin.
    #[serde(default)]
    allowed_origins: Vec<String>,
    /// Permissions granted to this installation for calls to other plugins.
    #[serde(default)]
    grants: Vec<String>,
    /// Activate right away (default false: state INSTALLED).
    #[serde(default)]
    activate: bool,
}

/// An installation as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallationView {
    /// Tenant slug.
    tenant: String,
    plugin_id: String,
    version: String,
    #[schema(example = "ACTIVE")]
    state: String,
    base_url: String,
    allowed_origins: Vec<String>,
    grants: Vec<String>,
    installed_at: String,
}

impl InstallationView {
    fn new(tenant: &Tenant, installation: &Installation) -> Self {
        Self {
            tenant: tenant.slug.to_string(),
            plugin_id: installation.plugin_id.to_string(),
            version: installation.version.to_string(),
            state: installation.state.as_str().to_owned(),
            base_url: installation.base_url.as_str().to_owned(),
            allowed_origins: installation.allowed_origins.clone(),
            grants: installation.grants.clone(),
            installed_at: rfc3339(installation.installed_at_ms),
        }
    }
}

/// A credential with its secret token: shown exactly once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewCredential {
    id: String,
    /// `phk_<id>.<secret>`; store it now, the hub keeps only a hash.
    token: String,
    created_at: String,
}

/// Result of an install.
#[derive(Serialize, ToSchema)]
pub struct Installed {
    installation: InstallationView,
    credential: NewCredential,
}

/// The installations of a tenant.
#[derive(Serialize, ToSchema)]
pub struct InstallationList {
    installations: Vec<InstallationView>,
}

/// A credential without its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    id: String,
    created_at: String,
    /// Last successful use (refreshed at most once a minute).
    last_used_at: Option<String>,
}

/// The credentials of an installation.
#[derive(Serialize, ToSchema)]
pub struct CredentialList {
    credentials: Vec<CredentialView>,
}

fn invalid(message: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidBody, message.to_string())
}

fn not_installed(tenant: &Tenant, plugin_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotInstalled,
        format!(
            "{plugin_id} is not installed for tenant \"{}\"",
            tenant.slug
        ),
    )
}

fn new_credential(
    tenant: &Tenant,
    plugin_id: &PluginId,
    now_ms: i64,
) -> (IssuedCredential, CredentialRecord) {
    let issued = IssuedCredential::generate();
    let record = CredentialRecord {
        id: issued.id.clone(),
        tenant_id: tenant.id,
        plugin_id: plugin_id.clone(),
        hash: issued.hash.clone(),
        created_at_ms: now_ms,
        last_used_at_ms: None,
    };
    (issued, record)
}

fn credential_shown_once(issued: IssuedCredential, record: &CredentialRecord) -> NewCredential {
    NewCredential {
        id: issued.id.to_string(),
        token: issued.token,
        created_at: rfc3339(record.created_at_ms),
    }
}

async fn find_installation(
    state: &AppState,
    slug: &str,
    plugin_id: &str,
) -> Result<(Tenant, Installation), ApiError> {
    let tenant = find_tenant(state, slug).await?;
    let id = PluginId::parse(plugin_id).map_err(|_| not_installed(&tenant, plugin_id))?;
    match state.store.installation(tenant.id, &id).await? {
        Some(installation) => Ok((tenant, installation)),
        None => Err(not_installed(&tenant, plugin_id)),
    }
}

/// Install a catalog plugin for a tenant; returns its first credential.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/installations", tag = "installations",
    request_body = InstallRequest,
    responses((status = 201, body = Installed), (status = 400, body = ErrorEnvelope),
              (status = 404, description = "TENANT_NOT_FOUND, PLUGIN_NOT_FOUND, VERSION_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "ALREADY_INSTALLED, DEPENDENCY_UNMET", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn install_plugin(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<InstallRequest>,
) -> Result<(StatusCode, Json<Installed>), ApiError> {
    let tenant = find_tenant(&state, &slug).await?;
    let plugin_id = PluginId::parse(&body.plugin_id).map_err(invalid)?;
    let base_url = BaseUrl::parse(&body.base_url).map_err(invalid)?;
    let allowed_origins = body
        .allowed_origins
        .iter()
        .map(|origin| parse_origin(origin))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    for grant in &body.grants {
        validate_grant(grant).map_err(invalid)?;
    }
    let requested = body
        .version
        .as_deref()
        .map(VersionRange::parse)
        .transpose()
        .map_err(invalid)?;

    let published = state.store.plugin_versions(&plugin_id).await?;
    if published.is_empty() {
        return Err(ApiError::new(
            ErrorCode::PluginNotFound,
            format!("plugin \"{plugin_id}\" is not in the catalog; publish it first"),
        ));
    }
    let versions: Vec<Version> = published.iter().map(|p| p.version.clone()).collect();
    let chosen = choose_version(&versions, requested.as_ref()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::VersionNotFound,
            format!(
                "no published version of {plugin_id} matches \"{}\"",
                body.version.as_deref().unwrap_or_default()
            ),
        )
        .with_details(
            json!({ "available": versions.iter().map(ToString::to_string).collect::<Vec<_>>() }),
        )
    })?;
    let chosen_version = published
        .iter()
        .find(|p| &p.version == chosen)
        .ok_or_else(|| ApiError::internal(&"chosen version vanished"))?;
    let manifest = validate_manifest(&chosen_version.manifest).map_err(|_| {
        ApiError::internal(&format!(
            "stored manifest of {plugin_id} {chosen} no longer validates"
        ))
    })?;

    if state
        .store
        .installation(tenant.id, &plugin_id)
        .await?
        .is_some()
    {
        return Err(already_installed(&tenant, &plugin_id));
    }
    let installed: Vec<(PluginId, Version)> = state
        .store
        .installations(tenant.id)
        .await?
        .into_iter()
        .map(|i| (i.plugin_id, i.version))
        .collect();
    let unmet = unmet_dependencies(&manifest.dependencies, &installed);
    if !unmet.is_empty() {
        let names: Vec<String> = unmet
            .iter()
            .map(|u| format!("{} {}", u.plugin_id, u.range))
            .collect();
        return Err(ApiError::new(
            ErrorCode::DependencyUnmet,
            format!(
                "cannot install {plugin_id} {chosen}: unmet dependencies: {}",
                names.join(", ")
            ),
        )
        .with_details(json!({ "unmet": unmet })));
    }

    let now = state.clock.now_ms();
    let installation = Installation {
        tenant_id: tenant.id,
        plugin_id: plugin_id.clone(),
        version: chosen.clone(),
        state: if body.activate {
            InstallationState::Active
        } else {
            InstallationState::Installed
        },
        base_url,
        allowed_origins,
        grants: body.grants,
        installed_at_ms: now,
        updated_at_ms: now,
    };
    let (issued, record) = new_credential(&tenant, &plugin_id, now);
    match state.store.install(&installation, &record).await {
        Ok(()) => {}
        Err(StoreError::Duplicate) => return Err(already_installed(&tenant, &plugin_id)),
        Err(StoreError::MissingReference) => {
            return Err(ApiError::new(
                ErrorCode::TenantNotFound,
                format!("tenant \"{slug}\" not found"),
            ));
        }
        Err(other) => return Err(other.into()),
    }
    if installation.state == InstallationState::Active {
        register_manifest_services(&state, &tenant, &installation, &manifest.services).await?;
    }
    state.changed(Change::Tenant { tenant: tenant.id }).await;
    tracing::info!(tenant = %tenant.slug, plugin = %plugin_id, version = %chosen, "plugin installed");
    Ok((
        StatusCode::CREATED,
        Json(Installed {
            installation: InstallationView::new(&tenant, &installation),
            credential: credential_shown_once(issued, &record),
        }),
    ))
}

fn already_installed(tenant: &Tenant, plugin_id: &PluginId) -> ApiError {
    ApiError::new(
        ErrorCode::AlreadyInstalled,
        format!(
            "{plugin_id} is already installed for tenant \"{}\"",
            tenant.slug
        ),
    )
}

/// List a tenant's installations.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/installations", tag = "installations",
    responses((status = 200, body = InstallationList), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_installations(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<InstallationList>, ApiError> {
    let tenant = find_tenant(&state, &slug).await?;
    let installations = state.store.installations(tenant.id).await?;
    Ok(Json(InstallationList {
        installations: installations
            .iter()
            .map(|i| InstallationView::new(&tenant, i))
            .collect(),
    }))
}

/// Show one installation.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/installations/{pluginId}", tag = "installations",
    responses((status = 200, body = InstallationView), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_installation(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, plugin_id)): ApiPath<(String, String)>,
) -> Result<Json<InstallationView>, ApiError> {
    let (tenant, installation) = find_installation(&state, &slug, &plugin_id).await?;
    Ok(Json(InstallationView::new(&tenant, &installation)))
}

/// Uninstall a plugin: the installation and its credentials are removed.
#[utoipa::path(delete, path = "/api/v1/tenants/{slug}/installations/{pluginId}", tag = "installations",
    responses((status = 204), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
async fn uninstall_plugin(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, plugin_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (tenant, installation) = find_installation(&state, &slug, &plugin_id).await?;
    let now = state.clock.now_ms();
    if !state
        .store
        .uninstall(tenant.id, &installation.plugin_id, now)
        .await?
    {
        return Err(not_installed(&tenant, &plugin_id));
    }
    state.changed(Change::Tenant { tenant: tenant.id }).await;
    tracing::info!(tenant = %tenant.slug, plugin = %plugin_id, "plugin uninstalled");
    Ok(StatusCode::NO_CONTENT)
}

/// Registers the services of an installation's manifest, before it becomes ACTIVE.
async fn activate_services(
    state: &AppState,
    tenant: &Tenant,
    installation: &Installation,
) -> Result<(), ApiError> {
    let published = state
        .store
        .plugin_version(&installation.plugin_id, &installation.version)
        .await?
        .ok_or_else(|| ApiError::internal(&"the installed catalog version vanished"))?;
    let manifest = validate_manifest(&published.manifest)
        .map_err(|_| ApiError::internal(&"a stored manifest no longer validates"))?;
    register_manifest_services(state, tenant, installation, &manifest.services).await
}

async fn change_state(
    state: &AppState,
    slug: &str,
    plugin_id: &str,
    action: LifecycleAction,
) -> Result<Json<InstallationView>, ApiError> {
    let (tenant, mut installation) = find_installation(state, slug, plugin_id).await?;
    let next = installation.state.apply(action).map_err(|e| {
        ApiError::new(ErrorCode::InvalidTransition, format!("{plugin_id}: {e}"))
            .with_details(json!({ "state": installation.state.as_str() }))
    })?;
    if next != installation.state {
        if next == InstallationState::Active {
            activate_services(state, &tenant, &installation).await?;
        }
        let now = state.clock.now_ms();
        let changed = state
            .store
            .set_installation_state(
                tenant.id,
                &installation.plugin_id,
                installation.state,
                next,
                now,
            )
            .await?;
        if !changed {
            return Err(ApiError::new(
                ErrorCode::InvalidTransition,
                format!("{plugin_id} changed state concurrently; read it again and retry"),
            ));
        }
        installation.state = next;
        installation.updated_at_ms = now;
        state.changed(Change::Tenant { tenant: tenant.id }).await;
    }
    Ok(Json(InstallationView::new(&tenant, &installation)))
}

/// Activate an installation (INSTALLED or DISABLED → ACTIVE).
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/installations/{pluginId}/activate", tag = "installations",
    responses((status = 200, body = InstallationView), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "INVALID_TRANSITION", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn activate_installation(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, plugin_id)): ApiPath<(String, String)>,
) -> Result<Json<InstallationView>, ApiError> {
    change_state(&state, &slug, &plugin_id, LifecycleAction::Activate).await
}

/// Deactivate an installation (ACTIVE → DISABLED).
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/installations/{pluginId}/deactivate", tag = "installations",
    responses((status = 200, body = InstallationView), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "INVALID_TRANSITION", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn deactivate_installation(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, plugin_id)): ApiPath<(String, String)>,
) -> Result<Json<InstallationView>, ApiError> {
    change_state(&state, &slug, &plugin_id, LifecycleAction::Deactivate).await
}

/// Issue another credential for an installation (rotation: revoke the old one afterwards).
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/installations/{pluginId}/credentials", tag = "credentials",
    responses((status = 201, body = NewCredential), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn issue_credential(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, plugin_id)): ApiPath<(String, String)>,
) -> Result<(StatusCode, Json<NewCredential>), ApiError> {
    let (tenant, installation) = find_installation(&state, &slug, &plugin_id).await?;
    let (issued, record) = new_credential(&tenant, &installation.plugin_id, state.clock.now_ms());
    match state.store.add_credential(&record).await {
        Ok(()) => Ok((
            StatusCode::CREATED,
            Json(credential_shown_once(issued, &record)),
        )),
        Err(StoreError::MissingReference) => Err(not_installed(&tenant, &plugin_id)),
        Err(other) => Err(other.into()),
    }
}

/// List an installation's credentials (without secrets).
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/installations/{pluginId}/credentials", tag = "credentials",
    responses((status = 200, body = CredentialList), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_credentials(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, plugin_id)): ApiPath<(String, String)>,
) -> Result<Json<CredentialList>, ApiError> {
    let (tenant, installation) = find_installation(&state, &slug, &plugin_id).await?;
    let credentials = state
        .store
        .credentials(tenant.id, &installation.plugin_id)
        .await?;
    Ok(Json(CredentialList {
        credentials: credentials
            .iter()
            .map(|c| CredentialView {
                id: c.id.to_string(),
                created_at: rfc3339(c.created_at_ms),
                last_used_at: c.last_used_at_ms.map(rfc3339),
            })
            .collect(),
    }))
}

/// Revoke a credential; it is refused from the next request on.
#[utoipa::path(delete, path = "/api/v1/tenants/{slug}/installations/{pluginId}/credentials/{credentialId}",
    tag = "credentials",
    responses((status = 204), (status = 404, description = "CREDENTIAL_NOT_FOUND", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn revoke_credential(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, plugin_id, credential_id)): ApiPath<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    let (tenant, installation) = find_installation(&state, &slug, &plugin_id).await?;
    let not_found = || {
        ApiError::new(
            ErrorCode::CredentialNotFound,
            format!("{plugin_id} has no credential \"{credential_id}\""),
        )
    };
    let id = CredentialId::parse(&credential_id).ok_or_else(not_found)?;
    if state
        .store
        .revoke_credential(tenant.id, &installation.plugin_id, &id)
        .await?
    {
        state
            .changed(Change::CredentialRevoked { id: id.to_string() })
            .await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}
