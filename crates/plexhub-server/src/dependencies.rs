//! What the dependency routes share: the catalog snapshot the resolver works on, the tenant's
//! installed versions, and dependency failures as API errors.

use plexhub_core::dependency::{Catalog, InstalledVersions, PlanError, UninstallCheck};
use plexhub_core::ids::PluginId;
use plexhub_core::manifest::validate_manifest;
use plexhub_core::tenant::TenantId;
use serde_json::json;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Every catalog version with its manifest's dependencies, those no new install may pick
/// marked with why (yanked, not published…), plus the registered edges.
pub async fn catalog(state: &AppState) -> Result<Catalog, ApiError> {
    let mut catalog = Catalog::new();
    for published in state.store.all_versions().await? {
        let manifest = validate_manifest(&published.manifest).map_err(|_| {
            ApiError::internal(&format!(
                "stored manifest of {} {} no longer validates",
                published.plugin_id, published.version
            ))
        })?;
        catalog.add_version(
            &published.plugin_id,
            published.version.clone(),
            &manifest.dependencies,
        );
        if let Some(why) = published.standing.unavailable_reason() {
            catalog.mark_unavailable(&published.plugin_id, published.version, why);
        }
    }
    catalog.add_registered(state.store.registered_dependencies().await?);
    Ok(catalog)
}

/// The tenant's installed plugins and versions (whatever their state).
pub async fn installed_versions(
    state: &AppState,
    tenant_id: TenantId,
) -> Result<InstalledVersions, ApiError> {
    Ok(state
        .store
        .installations(tenant_id)
        .await?
        .into_iter()
        .map(|installation| (installation.plugin_id, installation.version))
        .collect())
}

/// `PLUGIN_NOT_FOUND` for a plugin id that is not in the catalog (or not even a plugin id).
pub fn unknown_plugin(plugin_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::PluginNotFound,
        format!("plugin \"{plugin_id}\" is not in the catalog; publish it first"),
    )
}

/// A plan failure as an API error: 404 for an unknown plugin, else 409 `DEPENDENCY_CONFLICT`
/// with the explanation (or the cycle) in `details`.
pub fn plan_error(error: PlanError) -> ApiError {
    match error {
        PlanError::Unknown(unknown) => unknown_plugin(unknown.0.as_str()),
        PlanError::NoSolution(explanation) => ApiError::new(
            ErrorCode::DependencyConflict,
            format!("no versions satisfy every constraint. {}", explanation.text),
        )
        .with_details(json!({ "explanation": explanation })),
        PlanError::Cycle(cycle) => {
            let message = PlanError::Cycle(cycle.clone()).to_string();
            ApiError::new(ErrorCode::DependencyConflict, message)
                .with_details(json!({ "cycle": cycle }))
        }
        installed @ PlanError::InstalledElsewhere { .. } => {
            ApiError::new(ErrorCode::DependencyConflict, installed.to_string())
        }
    }
}

/// 409 `HAS_DEPENDENTS`: installed plugins require `target`.
pub fn has_dependents(target: &PluginId, check: &UninstallCheck) -> ApiError {
    let names: Vec<&str> = check.blocked_by.iter().map(PluginId::as_str).collect();
    ApiError::new(
        ErrorCode::HasDependents,
        format!(
            "{target} is required by {}: uninstall {} first, or pass ?cascade=true to remove them with it",
            names.join(", "),
            if names.len() == 1 { "it" } else { "them" }
        ),
    )
    .with_details(json!({ "blockedBy": check.blocked_by, "details": check.details }))
}
