//! `/api/v1/tenants/{slug}/installations`: installing catalog plugins for a tenant, their
//! lifecycle and their credentials (admin only).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use plexhub_core::credential::{CredentialId, IssuedCredential};
use plexhub_core::dependency::{
    PlanStep, StepAction, check_uninstall, plan_install, uninstall_order,
};
use plexhub_core::events::{Pattern, check_subscription};
use plexhub_core::ids::PluginId;
use plexhub_core::installation::{
    BaseUrl, Installation, InstallationState, LifecycleAction, check_remote_origin, choose_version,
    grantable_permissions, parse_origin, ungrantable, unmet_dependencies, validate_grant,
};
use plexhub_core::manifest::{Manifest, validate_manifest};
use plexhub_core::signing::{SigningScheme, SigningSecret};
use plexhub_core::tenant::Tenant;
use plexhub_core::version::{Version, VersionRange};
use plexhub_store::feed::Change;
use plexhub_store::{
    CredentialRecord, InstallationUpdate, NewInstallation, PublishedVersion, StoreError,
    StoredSigningSecret, SubscriptionSpec,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::plugins::DeprecationView;
use super::tenants::find_tenant;
use crate::auth::Admin;
use crate::dependencies::{self, has_dependents, installed_versions, plan_error, unknown_plugin};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
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
        .routes(routes!(rotate_signing_secret))
        .routes(routes!(set_grants))
        .routes(routes!(set_allowed_origins))
        .routes(routes!(set_base_url))
}

/// Body of an install request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstallRequest {
    /// Catalog plugin id.
    plugin_id: String,
    /// A version or npm range; the highest match is installed (default: latest release).
    version: Option<String>,
    /// Where the plugin is reachable (http or https); may be left out when its manifest exposes
    /// no service (a plugin that only calls others), and set later with `PUT …/base-url`.
    base_url: Option<String>,
    /// Browser origins allowed to reach the plugin.
    #[serde(default)]
    allowed_origins: Vec<String>,
    /// Permissions granted to this installation for calls to other plugins.
    #[serde(default)]
    grants: Vec<String>,
    /// Activate right away (default false: state INSTALLED).
    #[serde(default)]
    activate: bool,
    /// How the hub signs what it forwards to this installation: `hmac` (its own secret) or
    /// `ed25519` (the hub's published key); default: the hub's `--signing-scheme`.
    signing: Option<String>,
    /// With `?withDependencies=true`: where each plugin the plan must also install is placed,
    /// by plugin id.
    #[serde(default)]
    dependencies: BTreeMap<String, DependencyPlacement>,
}

/// Where a dependency installed with a plan is placed.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DependencyPlacement {
    /// Where the plugin is reachable (http or https); may be left out when its manifest exposes
    /// no service (a plugin that only calls others), and set later with `PUT …/base-url`.
    base_url: Option<String>,
    /// Browser origins allowed to reach the plugin.
    #[serde(default)]
    allowed_origins: Vec<String>,
    /// Permissions granted to this installation.
    #[serde(default)]
    grants: Vec<String>,
    /// Activate right away (default: as the requested plugin).
    activate: Option<bool>,
    /// `hmac` or `ed25519` (default: the hub's `--signing-scheme`).
    signing: Option<String>,
}

/// Query of an install.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct InstallOptions {
    /// Install what the plan says the plugin needs, first, all or nothing.
    #[serde(default)]
    with_dependencies: bool,
}

/// Query of an uninstall.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UninstallOptions {
    /// Remove the installed plugins that require this one first.
    #[serde(default)]
    cascade: bool,
}

/// What a cascading uninstall removed, in order.
#[derive(Serialize, ToSchema)]
pub struct Uninstalled {
    uninstalled: Vec<String>,
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
    /// Absent for a plugin installed without one (it exposes no service).
    base_url: Option<String>,
    allowed_origins: Vec<String>,
    grants: Vec<String>,
    installed_at: String,
    /// How forwarded requests are signed for it: `hmac` or `ed25519`.
    signing: String,
    /// Set when the installed catalog version is deprecated (it keeps running).
    #[serde(skip_serializing_if = "Option::is_none")]
    deprecation: Option<DeprecationView>,
    /// The installed catalog version is yanked: it keeps running, new installs skip it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    yanked: bool,
}

impl InstallationView {
    fn new(state: &AppState, tenant: &Tenant, installation: &Installation) -> Self {
        Self {
            tenant: tenant.slug.to_string(),
            plugin_id: installation.plugin_id.to_string(),
            version: installation.version.to_string(),
            state: installation.state.as_str().to_owned(),
            base_url: installation
                .base_url
                .as_ref()
                .map(|url| url.as_str().to_owned()),
            allowed_origins: installation.allowed_origins.clone(),
            grants: installation.grants.clone(),
            installed_at: rfc3339(installation.installed_at_ms),
            signing: installation
                .signing
                .unwrap_or(state.gateway.settings().signing_scheme)
                .to_string(),
            deprecation: None,
            yanked: false,
        }
    }

    /// The view with where its catalog version stands (deprecated, yanked).
    async fn with_catalog(
        state: &AppState,
        tenant: &Tenant,
        installation: &Installation,
    ) -> Result<Self, ApiError> {
        let version = state
            .store
            .plugin_version(&installation.plugin_id, &installation.version)
            .await?;
        Ok(Self::new(state, tenant, installation).standing(version.as_ref()))
    }

    /// The view with where `version` (its catalog version, when found) stands.
    fn standing(mut self, version: Option<&PublishedVersion>) -> Self {
        if let Some(version) = version {
            self.deprecation = DeprecationView::of(version);
            self.yanked = version.standing.yanked;
        }
        self
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
    /// On install: the installation's HMAC signing secret, which verifies the requests the hub
    /// forwards to it (readable again only with its own credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_secret: Option<SigningSecretView>,
}

/// An HMAC signing secret, for the installation it belongs to only.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningSecretView {
    /// The id carried in signatures (`keyId=`).
    key_id: String,
    /// 32 bytes, base64url.
    secret: String,
    created_at: String,
    /// End of its overlap window after a rotation; absent while it is the current secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

impl SigningSecretView {
    /// The view of a stored secret.
    pub fn new(stored: &StoredSigningSecret) -> Self {
        Self {
            key_id: stored.secret.key_id().to_owned(),
            secret: stored.secret.secret_text(),
            created_at: rfc3339(stored.created_at_ms),
            expires_at: stored.expires_at_ms.map(rfc3339),
        }
    }
}

/// Result of an install.
#[derive(Serialize, ToSchema)]
pub struct Installed {
    installation: InstallationView,
    credential: NewCredential,
    /// With `?withDependencies=true`: the plugins installed before it, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dependencies: Vec<InstalledDependency>,
}

/// A dependency installed by a plan, with its credential.
#[derive(Serialize, ToSchema)]
pub struct InstalledDependency {
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
        id: issued.id,
        tenant_id: tenant.id,
        plugin_id: plugin_id.clone(),
        hash: issued.hash.clone(),
        created_at_ms: now_ms,
        last_used_at_ms: None,
    };
    (issued, record)
}

fn credential_shown_once(
    issued: IssuedCredential,
    record: &CredentialRecord,
    signing_secret: Option<&SigningSecret>,
) -> NewCredential {
    NewCredential {
        id: issued.id.to_string(),
        token: issued.token,
        created_at: rfc3339(record.created_at_ms),
        signing_secret: signing_secret.map(|secret| {
            SigningSecretView::new(&StoredSigningSecret {
                secret: secret.clone(),
                created_at_ms: record.created_at_ms,
                expires_at_ms: None,
            })
        }),
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

/// Install a catalog plugin for a tenant; returns its first credential. With
/// `?withDependencies=true`, first installs what the install plan says it needs (each placed by
/// `dependencies`), all or nothing.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/installations", tag = "installations",
    params(InstallOptions), request_body = InstallRequest,
    responses((status = 201, body = Installed),
              (status = 400, description = "INVALID_BODY (also: a plugin the plan installs has no entry in dependencies), ORIGIN_NOT_ALLOWED (the manifest's frontend.remoteEntry is outside the allowed origins; details.path)", body = ErrorEnvelope),
              (status = 404, description = "TENANT_NOT_FOUND, PLUGIN_NOT_FOUND, VERSION_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "ALREADY_INSTALLED, DEPENDENCY_UNMET, DEPENDENCY_CONFLICT", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn install_plugin(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
    ApiQuery(options): ApiQuery<InstallOptions>,
    ApiJson(body): ApiJson<InstallRequest>,
) -> Result<(StatusCode, Json<Installed>), ApiError> {
    let tenant = find_tenant(&state, &slug).await?;
    let plugin_id = PluginId::parse(&body.plugin_id).map_err(invalid)?;
    let root = Placement::parse(
        "",
        body.base_url.as_deref(),
        &body.allowed_origins,
        &body.grants,
        body.signing.as_deref(),
    )?;
    let requested = body
        .version
        .as_deref()
        .map(VersionRange::parse)
        .transpose()
        .map_err(invalid)?;
    if options.with_dependencies {
        return install_with_dependencies(&state, &tenant, plugin_id, requested, root, body).await;
    }
    if !body.dependencies.is_empty() {
        return Err(invalid(
            "\"dependencies\" places the plugins a plan installs: add ?withDependencies=true",
        ));
    }

    let published = state.store.plugin_versions(&plugin_id).await?;
    if published.is_empty() {
        return Err(unknown_plugin(plugin_id.as_str()));
    }
    let versions: Vec<Version> = published
        .iter()
        .filter(|p| p.standing.installable())
        .map(|p| p.version.clone())
        .collect();
    let chosen = choose_version(&versions, requested.as_ref()).ok_or_else(|| {
        no_installable_version(&plugin_id, requested.as_ref(), &published, &versions)
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
                "cannot install {plugin_id} {chosen}: unmet dependencies: {}; \
                 POST /api/v1/tenants/{}/plans/install shows a plan, ?withDependencies=true applies it",
                names.join(", "),
                tenant.slug
            ),
        )
        .with_details(json!({ "unmet": unmet })));
    }

    let now = state.clock.now_ms();
    let installation = root.installation(&tenant, plugin_id, chosen.clone(), body.activate, now);
    let mut installed = apply_installs(&state, &tenant, vec![installation], now).await?;
    let (installation, credential) = installed.remove(0);
    Ok((
        StatusCode::CREATED,
        Json(Installed {
            installation,
            credential,
            dependencies: Vec::new(),
        }),
    ))
}

/// A validated placement: where an installation is reachable and what it is granted.
struct Placement {
    base_url: Option<BaseUrl>,
    allowed_origins: Vec<String>,
    grants: Vec<String>,
    signing: Option<SigningScheme>,
}

impl Placement {
    /// Validates a placement; `at` prefixes messages (`dependencies.plugin-crm.`).
    fn parse(
        at: &str,
        base_url: Option<&str>,
        allowed_origins: &[String],
        grants: &[String],
        signing: Option<&str>,
    ) -> Result<Self, ApiError> {
        let fail = |error: &dyn std::fmt::Display| invalid(format!("{at}{error}"));
        let signing = signing
            .map(|text| {
                SigningScheme::parse(text)
                    .ok_or_else(|| fail(&"signing must be \"hmac\" or \"ed25519\""))
            })
            .transpose()?;
        let base_url = base_url
            .map(BaseUrl::parse)
            .transpose()
            .map_err(|e| fail(&e))?;
        let allowed_origins = allowed_origins
            .iter()
            .map(|origin| parse_origin(origin))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(&e))?;
        for grant in grants {
            validate_grant(grant).map_err(|e| fail(&e))?;
        }
        Ok(Self {
            base_url,
            allowed_origins,
            grants: grants.to_vec(),
            signing,
        })
    }

    fn installation(
        self,
        tenant: &Tenant,
        plugin_id: PluginId,
        version: Version,
        activate: bool,
        now_ms: i64,
    ) -> Installation {
        Installation {
            tenant_id: tenant.id,
            plugin_id,
            version,
            state: if activate {
                InstallationState::Active
            } else {
                InstallationState::Installed
            },
            base_url: self.base_url,
            allowed_origins: self.allowed_origins,
            grants: self.grants,
            installed_at_ms: now_ms,
            updated_at_ms: now_ms,
            signing: self.signing,
        }
    }
}

/// Stores installations (each with a new credential) in one transaction, registers the
/// services of those that are active, and returns their views with the credentials.
async fn apply_installs(
    state: &AppState,
    tenant: &Tenant,
    installations: Vec<Installation>,
    now_ms: i64,
) -> Result<Vec<(InstallationView, NewCredential)>, ApiError> {
    // Each installed version's manifest, read once: checked now, applied on activation.
    let mut manifests = Vec::with_capacity(installations.len());
    for installation in &installations {
        let manifest = installed_manifest(state, installation).await?;
        check_subscriptions(installation, &manifest)?;
        check_remote(
            &installation.plugin_id,
            &manifest,
            &installation.allowed_origins,
            installation.base_url.as_ref(),
        )?;
        if installation.base_url.is_none() && !manifest.services.is_empty() {
            let names: Vec<&str> = manifest.services.iter().map(|s| s.name.as_str()).collect();
            return Err(invalid(format!(
                "{} needs a baseUrl: its manifest exposes {}",
                installation.plugin_id,
                names.join(", ")
            )));
        }
        manifests.push(manifest);
    }
    let mut issued = Vec::with_capacity(installations.len());
    let mut rows = Vec::with_capacity(installations.len());
    for installation in installations {
        let (credential, record) = new_credential(tenant, &installation.plugin_id, now_ms);
        issued.push(credential);
        rows.push(NewInstallation {
            installation,
            credential: record,
            signing_secret: SigningSecret::generate(),
        });
    }
    match state.store.install(&rows).await {
        Ok(()) => {}
        Err(StoreError::Duplicate) => {
            return Err(ApiError::new(
                ErrorCode::AlreadyInstalled,
                format!(
                    "one of the plugins was installed for tenant \"{}\" meanwhile; nothing was installed",
                    tenant.slug
                ),
            ));
        }
        Err(StoreError::MissingReference) => {
            return Err(ApiError::new(
                ErrorCode::TenantNotFound,
                format!("tenant \"{}\" not found", tenant.slug),
            ));
        }
        Err(other) => return Err(other.into()),
    }
    for (NewInstallation { installation, .. }, manifest) in rows.iter().zip(&manifests) {
        if installation.state == InstallationState::Active {
            activate_services(state, tenant, installation, manifest).await?;
        }
    }
    state.changed(Change::Tenant { tenant: tenant.id }).await;
    for NewInstallation { installation, .. } in &rows {
        announce_lifecycle(state, tenant, installation, "installed").await;
        if installation.state == InstallationState::Active {
            announce_lifecycle(state, tenant, installation, "activated").await;
        }
    }
    let mut answers = Vec::with_capacity(rows.len());
    for (row, credential) in rows.iter().zip(issued) {
        let installation = &row.installation;
        tracing::info!(tenant = %tenant.slug, plugin = %installation.plugin_id, version = %installation.version, "plugin installed");
        answers.push((
            InstallationView::new(state, tenant, installation),
            credential_shown_once(credential, &row.credential, Some(&row.signing_secret)),
        ));
    }
    Ok(answers)
}

/// Installs a plugin and what its install plan adds, dependencies first, all or nothing.
async fn install_with_dependencies(
    state: &AppState,
    tenant: &Tenant,
    plugin_id: PluginId,
    requested: Option<VersionRange>,
    root: Placement,
    body: InstallRequest,
) -> Result<(StatusCode, Json<Installed>), ApiError> {
    let catalog = dependencies::catalog(state).await?;
    let installed = installed_versions(state, tenant.id).await?;
    if installed.contains_key(&plugin_id) {
        return Err(already_installed(tenant, &plugin_id));
    }
    let steps =
        plan_install(&catalog, &plugin_id, requested.as_ref(), &installed).map_err(plan_error)?;
    let to_install: Vec<&PlanStep> = steps
        .iter()
        .filter(|step| step.action == StepAction::Install)
        .collect();
    let missing: Vec<&&PlanStep> = to_install
        .iter()
        .filter(|step| step.plugin_id != plugin_id)
        .filter(|step| !body.dependencies.contains_key(step.plugin_id.as_str()))
        .collect();
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .map(|step| format!("{} {}", step.plugin_id, step.version))
            .collect();
        return Err(invalid(format!(
            "the plan also installs {}: give each a placement in \"dependencies\" \
             (e.g. {{\"{}\": {{\"baseUrl\": \"http://…\"}}}})",
            names.join(", "),
            missing[0].plugin_id
        ))
        .with_details(json!({ "missing": missing, "steps": steps })));
    }
    if let Some(extra) = body.dependencies.keys().find(|id| {
        !to_install
            .iter()
            .any(|step| step.plugin_id.as_str() == id.as_str())
    }) {
        return Err(invalid(format!(
            "dependencies.{extra}: the plan does not install it"
        ))
        .with_details(json!({ "steps": steps })));
    }
    let now = state.clock.now_ms();
    let mut placements = body.dependencies;
    let mut root = Some(root);
    let mut installations = Vec::with_capacity(to_install.len());
    for step in &to_install {
        let (placement, activate) = if step.plugin_id == plugin_id {
            let placement = root
                .take()
                .ok_or_else(|| ApiError::internal(&"the plan names the plugin twice"))?;
            (placement, body.activate)
        } else {
            let entry = placements
                .remove(step.plugin_id.as_str())
                .ok_or_else(|| ApiError::internal(&"a placement vanished"))?;
            let at = format!("dependencies.{}.", step.plugin_id);
            let placement = Placement::parse(
                &at,
                entry.base_url.as_deref(),
                &entry.allowed_origins,
                &entry.grants,
                entry.signing.as_deref(),
            )?;
            (placement, entry.activate.unwrap_or(body.activate))
        };
        installations.push(placement.installation(
            tenant,
            step.plugin_id.clone(),
            step.version.clone(),
            activate,
            now,
        ));
    }
    let mut answers = apply_installs(state, tenant, installations, now).await?;
    let (installation, credential) = answers
        .pop()
        .ok_or_else(|| ApiError::internal(&"an install plan without its plugin"))?;
    Ok((
        StatusCode::CREATED,
        Json(Installed {
            installation,
            credential,
            dependencies: answers
                .into_iter()
                .map(|(installation, credential)| InstalledDependency {
                    installation,
                    credential,
                })
                .collect(),
        }),
    ))
}

/// 404 `VERSION_NOT_FOUND` for an install that no installable version matches, saying which
/// matching versions exist and why each cannot be installed (yanked, pending review…).
fn no_installable_version(
    plugin_id: &PluginId,
    requested: Option<&VersionRange>,
    published: &[plexhub_store::PublishedVersion],
    installable: &[Version],
) -> ApiError {
    let wanted = requested.map_or("any version", VersionRange::as_str);
    let blocked: Vec<(&plexhub_store::PublishedVersion, &str)> = published
        .iter()
        .filter(|p| requested.is_none_or(|range| range.satisfies(&p.version)))
        .filter_map(|p| Some((p, p.standing.unavailable_reason()?)))
        .collect();
    let why: Vec<String> = blocked
        .iter()
        .map(|(p, reason)| format!("{} is {reason}", p.version))
        .collect();
    let message = if why.is_empty() {
        format!("no catalog version of {plugin_id} matches \"{wanted}\"")
    } else {
        format!(
            "no installable version of {plugin_id} matches \"{wanted}\": {}",
            why.join(", ")
        )
    };
    ApiError::new(ErrorCode::VersionNotFound, message).with_details(json!({
        "available": installable.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "unavailable": blocked.iter().map(|(p, reason)| json!({
            "version": p.version.to_string(),
            "status": p.standing.status.as_str(),
            "yanked": p.standing.yanked,
            "reason": reason,
        })).collect::<Vec<_>>(),
    }))
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
    // One read of the catalog for the whole list, not one per installation.
    let catalog = state.store.all_versions().await?;
    let by_version: std::collections::HashMap<(&PluginId, &Version), &PublishedVersion> = catalog
        .iter()
        .map(|version| ((&version.plugin_id, &version.version), version))
        .collect();
    Ok(Json(InstallationList {
        installations: installations
            .iter()
            .map(|installation| {
                let version = by_version
                    .get(&(&installation.plugin_id, &installation.version))
                    .copied();
                InstallationView::new(&state, &tenant, installation).standing(version)
            })
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
    Ok(Json(
        InstallationView::with_catalog(&state, &tenant, &installation).await?,
    ))
}

/// Uninstall a plugin: the installation, its credentials, services and shared data are
/// removed. Refused with 409 `HAS_DEPENDENTS` while installed plugins require it, unless
/// `?cascade=true`, which removes those dependents first (all in one transaction) and answers
/// 200 with what it removed.
#[utoipa::path(delete, path = "/api/v1/tenants/{slug}/installations/{pluginId}", tag = "installations",
    params(UninstallOptions),
    responses((status = 204), (status = 200, body = Uninstalled, description = "with ?cascade=true"),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "HAS_DEPENDENTS", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn uninstall_plugin(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, plugin_id)): ApiPath<(String, String)>,
    ApiQuery(options): ApiQuery<UninstallOptions>,
) -> Result<Response, ApiError> {
    let (tenant, installation) = find_installation(&state, &slug, &plugin_id).await?;
    let catalog = dependencies::catalog(&state).await?;
    let installed = installed_versions(&state, tenant.id).await?;
    let check = check_uninstall(&catalog, &installation.plugin_id, &installed);
    let order = if check.can_uninstall {
        vec![installation.plugin_id.clone()]
    } else if options.cascade {
        uninstall_order(&catalog, &installation.plugin_id, &installed)
    } else {
        return Err(has_dependents(&installation.plugin_id, &check));
    };
    let now = state.clock.now_ms();
    if !state.store.uninstall(tenant.id, &order, now).await? {
        return Err(not_installed(&tenant, &plugin_id));
    }
    state.changed(Change::Tenant { tenant: tenant.id }).await;
    for removed in &order {
        tracing::info!(tenant = %tenant.slug, plugin = %removed, "plugin uninstalled");
        let data = json!({ "pluginId": removed.as_str(), "tenant": tenant.slug.as_str() });
        crate::events::announce(&state, tenant.id, "plexhub.plugin.uninstalled", data).await;
    }
    if options.cascade {
        let uninstalled = order.iter().map(ToString::to_string).collect();
        return Ok(Json(Uninstalled { uninstalled }).into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The manifest of an installation's catalog version.
async fn installed_manifest(
    state: &AppState,
    installation: &Installation,
) -> Result<Manifest, ApiError> {
    let published = state
        .store
        .plugin_version(&installation.plugin_id, &installation.version)
        .await?
        .ok_or_else(|| ApiError::internal(&"the installed catalog version vanished"))?;
    validate_manifest(&published.manifest)
        .map_err(|_| ApiError::internal(&"a stored manifest no longer validates"))
}

/// Refuses (400 `ORIGIN_NOT_ALLOWED`, at `frontend.remoteEntry`) a UI remote served from an
/// origin the installation does not allow: its allowed origins, or without any, its baseUrl's.
fn check_remote(
    plugin_id: &PluginId,
    manifest: &Manifest,
    allowed_origins: &[String],
    base_url: Option<&BaseUrl>,
) -> Result<(), ApiError> {
    let Some(frontend) = &manifest.frontend else {
        return Ok(());
    };
    check_remote_origin(&frontend.remote_entry, allowed_origins, base_url).map_err(|reason| {
        ApiError::new(
            ErrorCode::OriginNotAllowed,
            format!("{plugin_id}: frontend.remoteEntry: {reason}"),
        )
        .with_details(json!({
            "pluginId": plugin_id.as_str(),
            "path": "frontend.remoteEntry",
            "remoteEntry": frontend.remote_entry,
        }))
    })
}

/// Refuses an installation whose manifest subscribes to events the plugin may not read: the
/// hub's, its own, and those of plugins it declares a dependency on are allowed.
fn check_subscriptions(installation: &Installation, manifest: &Manifest) -> Result<(), ApiError> {
    for declared in &manifest.events.subscriptions {
        let pattern = Pattern::parse(&declared.pattern)
            .map_err(|_| ApiError::internal(&"a stored manifest's pattern no longer parses"))?;
        check_subscription(&installation.plugin_id, &manifest.dependencies, &pattern).map_err(
            |reason| {
                ApiError::new(ErrorCode::SubscriptionNotAllowed, reason)
                    .with_details(json!({ "pattern": declared.pattern }))
            },
        )?;
    }
    Ok(())
}

/// Registers the services of an installation's manifest and creates its event subscriptions,
/// before it becomes ACTIVE.
async fn activate_services(
    state: &AppState,
    tenant: &Tenant,
    installation: &Installation,
    manifest: &Manifest,
) -> Result<(), ApiError> {
    register_manifest_services(state, tenant, installation, &manifest.services, false).await?;
    let subscriptions: Vec<SubscriptionSpec> = manifest
        .events
        .subscriptions
        .iter()
        .map(|declared| SubscriptionSpec {
            pattern: declared.pattern.clone(),
            endpoint: declared.endpoint.clone(),
            max_attempts: declared.max_attempts,
        })
        .collect();
    state
        .bus
        .replace_subscriptions(
            tenant.id,
            &installation.plugin_id,
            &subscriptions,
            state.clock.now_ms(),
        )
        .await?;
    Ok(())
}

/// Announces a lifecycle change as the hub's event `plexhub.plugin.<action>`.
async fn announce_lifecycle(
    state: &AppState,
    tenant: &Tenant,
    installation: &Installation,
    action: &str,
) {
    let data = json!({
        "pluginId": installation.plugin_id.as_str(),
        "version": installation.version.to_string(),
        "state": installation.state.as_str(),
        "tenant": tenant.slug.as_str(),
    });
    crate::events::announce(state, tenant.id, &format!("plexhub.plugin.{action}"), data).await;
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
            let manifest = installed_manifest(state, &installation).await?;
            activate_services(state, &tenant, &installation, &manifest).await?;
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
        let action = if next == InstallationState::Active {
            "activated"
        } else {
            "deactivated"
        };
        announce_lifecycle(state, &tenant, &installation, action).await;
    }
    Ok(Json(InstallationView::new(state, &tenant, &installation)))
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
            Json(credential_shown_once(issued, &record, None)),
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

/// A rotation's result.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotatedSigningSecret {
    /// The new current secret: give it to the plugin (it can also read it with its own
    /// credential at `GET /api/v1/self/signing-secrets`).
    signing_secret: SigningSecretView,
    /// Older secrets that still sign, beside the new one, until their `expiresAt`.
    still_signing: Vec<String>,
}

/// Rotate an installation's HMAC signing secret without downtime: the new secret signs at once;
/// the previous one keeps signing beside it (one `sig` per secret) until the overlap window
/// (`--signing-overlap`, default 24 h) ends. Effective on every hub instance within a second.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/installations/{pluginId}/signing-secret/rotate",
    tag = "credentials",
    responses((status = 200, body = RotatedSigningSecret),
              (status = 404, description = "TENANT_NOT_FOUND, NOT_INSTALLED", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn rotate_signing_secret(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, plugin_id)): ApiPath<(String, String)>,
) -> Result<Json<RotatedSigningSecret>, ApiError> {
    let (tenant, installation) = find_installation(&state, &slug, &plugin_id).await?;
    let now = state.clock.now_ms();
    let overlap_ms =
        i64::try_from(state.gateway.settings().signing_overlap.as_millis()).unwrap_or(i64::MAX);
    let next = SigningSecret::generate();
    let rotated = state
        .store
        .rotate_signing_secret(
            tenant.id,
            &installation.plugin_id,
            &next,
            now,
            now.saturating_add(overlap_ms),
        )
        .await?;
    if !rotated {
        return Err(not_installed(&tenant, &plugin_id));
    }
    state.changed(Change::Tenant { tenant: tenant.id }).await;
    let active = state
        .store
        .signing_secrets(tenant.id, &installation.plugin_id, now)
        .await?;
    let still_signing: Vec<String> = active
        .iter()
        .filter(|stored| stored.secret.key_id() != next.key_id())
        .map(|stored| stored.secret.key_id().to_owned())
        .collect();
    tracing::info!(tenant = %tenant.slug, plugin = %installation.plugin_id, key_id = next.key_id(), "signing secret rotated");
    crate::events::announce(
        &state,
        tenant.id,
        "plexhub.plugin.signing-secret-rotated",
        json!({
            "pluginId": installation.plugin_id.as_str(),
            "keyId": next.key_id(),
            "stillSigning": still_signing,
        }),
    )
    .await;
    Ok(Json(RotatedSigningSecret {
        signing_secret: SigningSecretView::new(&StoredSigningSecret {
            secret: next,
            created_at_ms: now,
            expires_at_ms: None,
        }),
        still_signing,
    }))
}

/// The whole set of an installation's grants.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantsRequest {
    /// Permissions granted for calls to other plugins; each must be required by an endpoint of a
    /// service the plugin's manifest depends on.
    grants: Vec<String>,
}

/// The whole set of an installation's allowed origins.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AllowedOriginsRequest {
    /// Origins (`scheme://host[:port]`) the plugin may register services at and browsers may
    /// reach it from; empty: the origin of its `baseUrl`.
    allowed_origins: Vec<String>,
}

/// Replace an installation's grants without reinstalling it: effective for its next call on
/// every hub instance (within a second), shown by `/access/explain`, announced as the hub
/// event `plexhub.plugin.grants-changed`. A grant no endpoint of its dependencies requires is
/// refused (`details.grantable` lists those that are).
#[utoipa::path(put, path = "/api/v1/tenants/{slug}/installations/{pluginId}/grants", tag = "installations",
    request_body = GrantsRequest,
    responses((status = 200, body = InstallationView),
              (status = 400, description = "INVALID_BODY, UNKNOWN_GRANT (details.unknown, details.grantable)", body = ErrorEnvelope),
              (status = 404, description = "TENANT_NOT_FOUND, NOT_INSTALLED", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn set_grants(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, plugin_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<GrantsRequest>,
) -> Result<Json<InstallationView>, ApiError> {
    let (tenant, installation) = find_installation(&state, &slug, &plugin_id).await?;
    let mut grants = Vec::with_capacity(body.grants.len());
    for grant in body.grants {
        validate_grant(&grant).map_err(invalid)?;
        if !grants.contains(&grant) {
            grants.push(grant);
        }
    }
    let manifest = installed_manifest(&state, &installation).await?;
    // A plugin depended on for several of its services is read once.
    let depended: std::collections::BTreeSet<&PluginId> =
        manifest.dependencies.iter().map(|d| &d.plugin_id).collect();
    let mut candidates = Vec::new();
    for plugin_id in depended {
        for published in state.store.plugin_versions(plugin_id).await? {
            if let Ok(candidate) = validate_manifest(&published.manifest) {
                candidates.push(candidate);
            }
        }
    }
    let grantable = grantable_permissions(&manifest.dependencies, &candidates);
    let unknown = ungrantable(&grants, &grantable);
    if !unknown.is_empty() {
        return Err(ApiError::new(
            ErrorCode::UnknownGrant,
            format!(
                "no endpoint of a service {plugin_id} depends on requires {}: grant one of {}",
                unknown.join(", "),
                if grantable.is_empty() {
                    "(none: its manifest depends on no endpoint with permissions)".to_owned()
                } else {
                    grantable.join(", ")
                }
            ),
        )
        .with_details(json!({ "unknown": unknown, "grantable": grantable })));
    }
    let update = InstallationUpdate {
        grants: Some(grants),
        ..InstallationUpdate::default()
    };
    let updated = update_installation(&state, &tenant, installation, update).await?;
    tracing::info!(tenant = %tenant.slug, plugin = %updated.plugin_id, grants = ?updated.grants, "grants changed");
    let data = json!({ "pluginId": updated.plugin_id.as_str(), "grants": updated.grants });
    crate::events::announce(&state, tenant.id, "plexhub.plugin.grants-changed", data).await;
    Ok(Json(InstallationView::new(&state, &tenant, &updated)))
}

/// Replace an installation's allowed origins without reinstalling it (effective on every hub
/// instance within a second; replicas registered before keep their URLs). Announced as the hub
/// event `plexhub.plugin.allowed-origins-changed`.
#[utoipa::path(put, path = "/api/v1/tenants/{slug}/installations/{pluginId}/allowed-origins", tag = "installations",
    request_body = AllowedOriginsRequest,
    responses((status = 200, body = InstallationView),
              (status = 400, description = "INVALID_BODY, ORIGIN_NOT_ALLOWED (the UI remote would fall outside them)", body = ErrorEnvelope),
              (status = 404, description = "TENANT_NOT_FOUND, NOT_INSTALLED", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn set_allowed_origins(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, plugin_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<AllowedOriginsRequest>,
) -> Result<Json<InstallationView>, ApiError> {
    let (tenant, installation) = find_installation(&state, &slug, &plugin_id).await?;
    let mut origins = Vec::with_capacity(body.allowed_origins.len());
    for origin in &body.allowed_origins {
        let origin = parse_origin(origin).map_err(invalid)?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    let manifest = installed_manifest(&state, &installation).await?;
    check_remote(
        &installation.plugin_id,
        &manifest,
        &origins,
        installation.base_url.as_ref(),
    )?;
    let update = InstallationUpdate {
        allowed_origins: Some(origins),
        ..InstallationUpdate::default()
    };
    let updated = update_installation(&state, &tenant, installation, update).await?;
    tracing::info!(tenant = %tenant.slug, plugin = %updated.plugin_id, origins = ?updated.allowed_origins, "allowed origins changed");
    let data = json!({
        "pluginId": updated.plugin_id.as_str(),
        "allowedOrigins": updated.allowed_origins,
    });
    crate::events::announce(
        &state,
        tenant.id,
        "plexhub.plugin.allowed-origins-changed",
        data,
    )
    .await;
    Ok(Json(InstallationView::new(&state, &tenant, &updated)))
}

/// Where an installation is reachable.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BaseUrlRequest {
    /// An absolute http(s) URL.
    base_url: String,
}

/// Set where an installation is reachable without reinstalling it: a plugin installed without
/// one (it exposed no service) that starts serving, or one that moved. The services its
/// manifest declares move there at once when it is ACTIVE (on every hub instance within a
/// second); announced as `plexhub.plugin.base-url-changed`.
#[utoipa::path(put, path = "/api/v1/tenants/{slug}/installations/{pluginId}/base-url", tag = "installations",
    request_body = BaseUrlRequest,
    responses((status = 200, body = InstallationView),
              (status = 400, description = "INVALID_BODY, ORIGIN_NOT_ALLOWED (the UI remote would fall outside the new origin)", body = ErrorEnvelope),
              (status = 404, description = "TENANT_NOT_FOUND, NOT_INSTALLED", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn set_base_url(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, plugin_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<BaseUrlRequest>,
) -> Result<Json<InstallationView>, ApiError> {
    let (tenant, installation) = find_installation(&state, &slug, &plugin_id).await?;
    let base_url = BaseUrl::parse(&body.base_url).map_err(invalid)?;
    check_remote(
        &installation.plugin_id,
        &installed_manifest(&state, &installation).await?,
        &installation.allowed_origins,
        Some(&base_url),
    )?;
    let update = InstallationUpdate {
        base_url: Some(base_url),
        ..InstallationUpdate::default()
    };
    let updated = update_installation(&state, &tenant, installation, update).await?;
    if updated.state == InstallationState::Active {
        let manifest = installed_manifest(&state, &updated).await?;
        // Registering announces the moved services itself.
        register_manifest_services(&state, &tenant, &updated, &manifest.services, true).await?;
    }
    let url = updated.base_url.as_ref().map(BaseUrl::as_str);
    tracing::info!(tenant = %tenant.slug, plugin = %updated.plugin_id, base_url = ?url, "base URL changed");
    let data = json!({ "pluginId": updated.plugin_id.as_str(), "baseUrl": url });
    crate::events::announce(&state, tenant.id, "plexhub.plugin.base-url-changed", data).await;
    Ok(Json(InstallationView::new(&state, &tenant, &updated)))
}

/// Stores `update` and tells every instance's caches; the installation as it now is.
async fn update_installation(
    state: &AppState,
    tenant: &Tenant,
    mut installation: Installation,
    update: InstallationUpdate,
) -> Result<Installation, ApiError> {
    let now = state.clock.now_ms();
    if !state
        .store
        .update_installation(tenant.id, &installation.plugin_id, &update, now)
        .await?
    {
        return Err(not_installed(tenant, installation.plugin_id.as_str()));
    }
    state.changed(Change::Tenant { tenant: tenant.id }).await;
    if let Some(grants) = update.grants {
        installation.grants = grants;
    }
    if let Some(origins) = update.allowed_origins {
        installation.allowed_origins = origins;
    }
    if let Some(base_url) = update.base_url {
        installation.base_url = Some(base_url);
    }
    installation.updated_at_ms = now;
    Ok(installation)
}
