//! The seed's five dependency routes, hardened: registration is admin-only, validated and
//! transactional; listings end on cycles; resolution sees the tenant's installations and never
//! fails on an optional dependency.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use plexhub_core::dependency::{
    Edge, EdgeSource, Resolution, UninstallCheck, check_registration, check_uninstall, resolve,
};
use plexhub_core::ids::PluginId;
use plexhub_core::version::VersionRange;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Admin, Caller, TenantScope};
use crate::dependencies::{catalog, installed_versions, unknown_plugin};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register_dependencies))
        .routes(routes!(list_dependencies))
        .routes(routes!(list_dependents))
        .routes(routes!(resolve_dependencies))
        .routes(routes!(can_uninstall))
}

/// Body of the seed's registration call.
#[derive(Deserialize, ToSchema)]
pub struct RegisterDependencies {
    /// The new edges; each plugin named as `pluginId` loses its previously registered ones.
    dependencies: Vec<RegisteredDependency>,
}

/// One registered edge.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredDependency {
    plugin_id: String,
    depends_on_plugin_id: String,
    /// An npm range.
    version: String,
    /// Default true.
    required: Option<bool>,
}

/// The seed's acknowledgement.
#[derive(Serialize, ToSchema)]
pub struct Registered {
    success: bool,
    message: &'static str,
}

/// One dependency as the seed lists it, with where it comes from.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyView {
    plugin_id: String,
    depends_on_plugin_id: String,
    version: String,
    required: bool,
    /// `manifest` or `registered`.
    #[schema(value_type = String, example = "manifest")]
    source: EdgeSource,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl From<&Edge> for DependencyView {
    fn from(edge: &Edge) -> Self {
        Self {
            plugin_id: edge.from.to_string(),
            depends_on_plugin_id: edge.to.to_string(),
            version: edge.range.to_string(),
            required: edge.required,
            source: edge.source,
            service_name: edge.service_name.as_ref().map(ToString::to_string),
            reason: edge.reason.clone(),
        }
    }
}

/// A plugin's dependencies.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyList {
    plugin_id: String,
    dependencies: Vec<DependencyView>,
    count: usize,
}

/// The plugins that depend on one.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependentList {
    plugin_id: String,
    dependents: Vec<String>,
    count: usize,
}

/// `?recursive=true` (only that exact text) lists transitive dependencies too.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecursiveFilter {
    recursive: Option<String>,
}

fn problem(path: String, message: impl std::fmt::Display) -> serde_json::Value {
    json!({ "path": path, "message": message.to_string() })
}

/// Register extra dependency edges (admin). Replaces, in one transaction, every registered
/// edge of each plugin named in the batch; they apply to every version of it.
#[utoipa::path(post, path = "/api/plugin-gateway/dependencies", tag = "dependencies (seed-compatible)",
    request_body = RegisterDependencies,
    responses((status = 201, body = Registered),
        (status = 400, description = "INVALID_DEPENDENCIES: a duplicate pair, an invalid range, a self-dependency or an unknown plugin; nothing changed"),
        (status = 403, description = "not the admin")),
    security(("bearer" = [])))]
async fn register_dependencies(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterDependencies>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let mut errors = Vec::new();
    let mut edges = Vec::new();
    for (index, raw) in body.dependencies.iter().enumerate() {
        let at = |field: &str| format!("dependencies[{index}].{field}");
        let from = PluginId::parse(&raw.plugin_id).map_err(|e| problem(at("pluginId"), e));
        let to = PluginId::parse(&raw.depends_on_plugin_id)
            .map_err(|e| problem(at("dependsOnPluginId"), e));
        let range = VersionRange::parse(&raw.version).map_err(|e| problem(at("version"), e));
        match (from, to, range) {
            (Ok(from), Ok(to), Ok(range)) => edges.push((
                index,
                Edge {
                    from,
                    to,
                    range,
                    required: raw.required.unwrap_or(true),
                    service_name: None,
                    reason: None,
                    source: EdgeSource::Registered,
                },
            )),
            (from, to, range) => {
                errors.extend([from.err(), to.err(), range.err()].into_iter().flatten());
            }
        }
    }
    let catalog = catalog(&state).await?;
    let parsed: Vec<Edge> = edges.iter().map(|(_, edge)| edge.clone()).collect();
    for (at, refusal) in check_registration(&parsed, &catalog) {
        errors.push(problem(format!("dependencies[{}]", edges[at].0), refusal));
    }
    if !errors.is_empty() {
        let first = errors[0]["message"].as_str().unwrap_or_default().to_owned();
        return Err(ApiError::new(
            ErrorCode::InvalidDependencies,
            format!("invalid dependencies (nothing was changed): {first}"),
        )
        .with_details(json!({ "errors": errors })));
    }
    let plugins: Vec<PluginId> = parsed
        .iter()
        .map(|edge| edge.from.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let now = state.clock.now_ms();
    state
        .store
        .replace_registered_dependencies(&plugins, &parsed, now)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            success: true,
            message: "Dependencies registered",
        }),
    ))
}

fn catalog_plugin(
    catalog: &plexhub_core::dependency::Catalog,
    raw: &str,
) -> Result<PluginId, ApiError> {
    PluginId::parse(raw)
        .ok()
        .filter(|id| catalog.contains(id))
        .ok_or_else(|| unknown_plugin(raw))
}

/// A plugin's dependencies: its latest version's manifest and its registered edges; with
/// `recursive=true` also theirs, each plugin once, ending on cycles.
#[utoipa::path(get, path = "/api/plugin-gateway/dependencies/{pluginId}", tag = "dependencies (seed-compatible)",
    params(RecursiveFilter),
    responses((status = 200, body = DependencyList), (status = 404, description = "PLUGIN_NOT_FOUND")),
    security(("bearer" = [])))]
async fn list_dependencies(
    _: Caller,
    State(state): State<AppState>,
    ApiPath(plugin_id): ApiPath<String>,
    ApiQuery(filter): ApiQuery<RecursiveFilter>,
) -> Result<Json<DependencyList>, ApiError> {
    let catalog = catalog(&state).await?;
    let id = catalog_plugin(&catalog, &plugin_id)?;
    let recursive = filter.recursive.as_deref() == Some("true");
    let dependencies: Vec<DependencyView> = catalog
        .dependencies(&id, recursive)
        .into_iter()
        .map(DependencyView::from)
        .collect();
    Ok(Json(DependencyList {
        plugin_id,
        count: dependencies.len(),
        dependencies,
    }))
}

/// The plugins whose latest version (or registered edges) depend on this one.
#[utoipa::path(get, path = "/api/plugin-gateway/dependencies/{pluginId}/dependents", tag = "dependencies (seed-compatible)",
    responses((status = 200, body = DependentList), (status = 404, description = "PLUGIN_NOT_FOUND")),
    security(("bearer" = [])))]
async fn list_dependents(
    _: Caller,
    State(state): State<AppState>,
    ApiPath(plugin_id): ApiPath<String>,
) -> Result<Json<DependentList>, ApiError> {
    let catalog = catalog(&state).await?;
    let id = catalog_plugin(&catalog, &plugin_id)?;
    let dependents: Vec<String> = catalog
        .dependents(&id)
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(Json(DependentList {
        plugin_id,
        count: dependents.len(),
        dependents,
    }))
}

/// Resolve a plugin against the tenant's installations: 200 with `installOrder` when every
/// required dependency is installed within range and nothing is circular, else 400 with the
/// original's messages. Optional dependencies only ever add warnings.
#[utoipa::path(post, path = "/api/plugin-gateway/dependencies/{pluginId}/resolve", tag = "dependencies (seed-compatible)",
    responses((status = 200, body = Object, description = "{valid:true, errors:[], warnings, installOrder}"),
        (status = 400, body = Object, description = "{valid:false, errors, warnings}"),
        (status = 404, description = "PLUGIN_NOT_FOUND")),
    security(("bearer" = [])))]
async fn resolve_dependencies(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath(plugin_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    let id = PluginId::parse(&plugin_id).map_err(|_| unknown_plugin(&plugin_id))?;
    let catalog = catalog(&state).await?;
    let installed = installed_versions(&state, scope.tenant.id).await?;
    let resolution: Resolution =
        resolve(&catalog, &id, &installed).map_err(|_| unknown_plugin(&plugin_id))?;
    let status = if resolution.valid {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((status, Json(resolution)).into_response())
}

/// Whether a plugin can be uninstalled from the tenant: installed plugins that require it
/// block (`blockedBy`); optional dependents are warnings.
#[utoipa::path(post, path = "/api/plugin-gateway/dependencies/{pluginId}/can-uninstall", tag = "dependencies (seed-compatible)",
    responses((status = 200, body = Object, description = "{canUninstall, blockedBy, details, warnings}"),
        (status = 404, description = "NOT_INSTALLED")),
    security(("bearer" = [])))]
async fn can_uninstall(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath(plugin_id): ApiPath<String>,
) -> Result<Json<UninstallCheck>, ApiError> {
    let installed = installed_versions(&state, scope.tenant.id).await?;
    let not_installed = || {
        ApiError::new(
            ErrorCode::NotInstalled,
            format!(
                "{plugin_id} is not installed for tenant \"{}\"",
                scope.tenant.slug
            ),
        )
    };
    let id = PluginId::parse(&plugin_id).map_err(|_| not_installed())?;
    if !installed.contains_key(&id) {
        return Err(not_installed());
    }
    let catalog = catalog(&state).await?;
    Ok(Json(check_uninstall(&catalog, &id, &installed)))
}
