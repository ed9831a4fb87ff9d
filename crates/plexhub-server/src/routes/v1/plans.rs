//! `/api/v1/tenants/{slug}/plans`: what installing, uninstalling or upgrading a plugin would
//! take in a tenant, computed without changing anything (admin only).

use axum::Json;
use axum::extract::State;
use plexhub_core::dependency::{
    InstalledVersions, PlanStep, UninstallCheck, UpgradeCheck, check_uninstall, check_upgrade,
    plan_install, uninstall_order,
};
use plexhub_core::ids::PluginId;
use plexhub_core::version::{Version, VersionRange};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tenants::find_tenant;
use crate::auth::Admin;
use crate::dependencies::{catalog, installed_versions, plan_error, unknown_plugin};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plan_install_route))
        .routes(routes!(plan_uninstall))
        .routes(routes!(plan_upgrade))
}

/// Body of an install plan request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct InstallPlanRequest {
    plugin_id: String,
    /// A version or npm range (default: the highest release that fits).
    version: Option<String>,
}

/// An install plan: dependencies first, the plugin last.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstallPlan {
    plugin_id: String,
    /// `{pluginId, version, action: "install"|"keep"}`.
    #[schema(value_type = Vec<Object>)]
    steps: Vec<PlanStep>,
}

/// Body of an uninstall plan request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UninstallPlanRequest {
    plugin_id: String,
    /// Also give the order in which dependents would be removed first.
    #[serde(default)]
    cascade: bool,
}

/// An uninstall plan.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UninstallPlan {
    plugin_id: String,
    /// `{canUninstall, blockedBy, details, warnings}`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    check: UninstallCheck,
    /// With `cascade`: every plugin to remove, dependents first, the plugin last.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    order: Option<Vec<PluginId>>,
}

/// Body of an upgrade plan request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpgradePlanRequest {
    plugin_id: String,
    /// The exact catalog version to move to.
    version: String,
}

/// An upgrade plan.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePlan {
    plugin_id: String,
    from: String,
    to: String,
    /// `{ok, breaks:[{pluginId, version, range, required}], unmet}`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    check: UpgradeCheck,
    /// Set when `to` cannot be installed, saying why (`2.1.0 is yanked`); `ok` is then false.
    #[serde(skip_serializing_if = "Option::is_none")]
    unavailable: Option<String>,
    /// With `unavailable`: the nearest installable version (the highest below `to`, else the
    /// lowest above it), to plan instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    proposal: Option<String>,
}

fn invalid(message: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidBody, message.to_string())
}

/// The tenant's installed versions and the named plugin among them (404 `TENANT_NOT_FOUND` or
/// `NOT_INSTALLED`).
async fn installed_plugin(
    state: &AppState,
    slug: &str,
    plugin_id: &str,
) -> Result<(InstalledVersions, PluginId), ApiError> {
    let tenant = find_tenant(state, slug).await?;
    let installed = installed_versions(state, tenant.id).await?;
    let id = PluginId::parse(plugin_id)
        .ok()
        .filter(|id| installed.contains_key(id))
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotInstalled,
                format!("{plugin_id} is not installed for tenant \"{slug}\""),
            )
        })?;
    Ok((installed, id))
}

/// Plan installing a plugin: versions chosen by the PubGrub solver (the highest that satisfy
/// every constraint, keeping what is installed), or why none fit.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/plans/install", tag = "plans",
    request_body = InstallPlanRequest,
    responses((status = 200, body = InstallPlan),
        (status = 404, description = "TENANT_NOT_FOUND, PLUGIN_NOT_FOUND", body = ErrorEnvelope),
        (status = 409, description = "DEPENDENCY_CONFLICT with details.explanation {text, facts}", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn plan_install_route(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<InstallPlanRequest>,
) -> Result<Json<InstallPlan>, ApiError> {
    let tenant = find_tenant(&state, &slug).await?;
    let plugin_id = PluginId::parse(&body.plugin_id).map_err(invalid)?;
    let requested = body
        .version
        .as_deref()
        .map(VersionRange::parse)
        .transpose()
        .map_err(invalid)?;
    let catalog = catalog(&state).await?;
    let installed = installed_versions(&state, tenant.id).await?;
    let steps =
        plan_install(&catalog, &plugin_id, requested.as_ref(), &installed).map_err(plan_error)?;
    Ok(Json(InstallPlan {
        plugin_id: body.plugin_id,
        steps,
    }))
}

/// Plan uninstalling a plugin: what blocks it, and with `cascade` the removal order.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/plans/uninstall", tag = "plans",
    request_body = UninstallPlanRequest,
    responses((status = 200, body = UninstallPlan),
        (status = 404, description = "TENANT_NOT_FOUND, NOT_INSTALLED", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn plan_uninstall(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<UninstallPlanRequest>,
) -> Result<Json<UninstallPlan>, ApiError> {
    let (installed, plugin_id) = installed_plugin(&state, &slug, &body.plugin_id).await?;
    let catalog = catalog(&state).await?;
    let check = check_uninstall(&catalog, &plugin_id, &installed);
    let order = body
        .cascade
        .then(|| uninstall_order(&catalog, &plugin_id, &installed));
    Ok(Json(UninstallPlan {
        plugin_id: body.plugin_id,
        check,
        order,
    }))
}

/// Plan moving an installed plugin to another catalog version: which installed dependents'
/// ranges it breaks, and which of its new dependencies are unmet. A version new installs may
/// not pick (yanked, not published) is not ok, and the plan proposes the nearest installable
/// one.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/plans/upgrade", tag = "plans",
    request_body = UpgradePlanRequest,
    responses((status = 200, body = UpgradePlan),
        (status = 404, description = "TENANT_NOT_FOUND, NOT_INSTALLED, VERSION_NOT_FOUND", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn plan_upgrade(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<UpgradePlanRequest>,
) -> Result<Json<UpgradePlan>, ApiError> {
    let (installed, plugin_id) = installed_plugin(&state, &slug, &body.plugin_id).await?;
    let to = Version::parse(&body.version).map_err(invalid)?;
    let catalog = catalog(&state).await?;
    if !catalog.contains(&plugin_id) {
        return Err(unknown_plugin(&body.plugin_id));
    }
    if !catalog.versions(&plugin_id).any(|v| *v == to) {
        return Err(ApiError::new(
            ErrorCode::VersionNotFound,
            format!("{plugin_id} {to} is not in the catalog"),
        ));
    }
    let mut check = check_upgrade(&catalog, &plugin_id, &to, &installed);
    let from = &installed[&plugin_id];
    let unavailable = catalog.unavailable(&plugin_id, &to);
    let proposal = unavailable
        .and_then(|_| catalog.nearest_installable(&plugin_id, &to, Some(from)))
        .map(ToString::to_string);
    if unavailable.is_some() {
        check.ok = false;
    }
    Ok(Json(UpgradePlan {
        from: from.to_string(),
        to: to.to_string(),
        plugin_id: body.plugin_id,
        check,
        unavailable: unavailable.map(|why| format!("{to} is {why}")),
        proposal,
    }))
}
