//! `/api/v1/plugins`: the global plugin catalog (admin only).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use plexhub_core::ids::PluginId;
use plexhub_core::manifest::{ManifestError, validate_manifest};
use plexhub_core::version::Version;
use plexhub_store::{PublishOutcome, PublishedVersion};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Admin;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath};
use crate::state::{AppState, rfc3339};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish_plugin, list_plugins))
        .routes(routes!(validate_plugin))
        .routes(routes!(get_plugin))
        .routes(routes!(get_plugin_version))
}

/// Result of publishing: which version is now in the catalog.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    plugin_id: String,
    version: String,
}

/// Result of validating a manifest.
#[derive(Serialize, ToSchema)]
pub struct Validation {
    valid: bool,
    errors: Vec<ManifestProblem>,
}

/// One manifest problem, with the dotted path of the offending field.
#[derive(Serialize, ToSchema)]
pub struct ManifestProblem {
    #[schema(example = "api.services.0.name")]
    path: String,
    message: String,
}

impl From<ManifestError> for ManifestProblem {
    fn from(error: ManifestError) -> Self {
        Self {
            path: error.path,
            message: error.message,
        }
    }
}

/// One catalog version with its manifest.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    plugin_id: String,
    version: String,
    published_at: String,
    manifest: Value,
}

impl From<&PublishedVersion> for VersionView {
    fn from(published: &PublishedVersion) -> Self {
        Self {
            plugin_id: published.plugin_id.to_string(),
            version: published.version.to_string(),
            published_at: rfc3339(published.published_at_ms),
            manifest: published.manifest.clone(),
        }
    }
}

/// A plugin with all its published versions, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    plugin_id: String,
    /// Name from the latest version's manifest.
    name: String,
    /// Highest published version.
    latest_version: String,
    versions: Vec<VersionView>,
}

/// The catalog.
#[derive(Serialize, ToSchema)]
pub struct PluginList {
    plugins: Vec<PluginSummary>,
}

/// A plugin in the catalog listing.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginSummary {
    plugin_id: String,
    name: String,
    description: String,
    latest_version: String,
    versions: Vec<String>,
}

fn manifest_text(manifest: &Value, field: &str) -> String {
    manifest[field].as_str().unwrap_or_default().to_owned()
}

fn latest(versions: &[PublishedVersion]) -> Option<&PublishedVersion> {
    versions.iter().max_by(|a, b| a.version.cmp(&b.version))
}

/// Publish one plugin version from its manifest.
#[utoipa::path(post, path = "/api/v1/plugins", tag = "catalog", request_body = Object,
    responses((status = 201, body = Published), (status = 200, description = "identical version already published", body = Published),
              (status = 400, description = "INVALID_MANIFEST, details.errors lists every problem", body = ErrorEnvelope),
              (status = 409, description = "VERSION_EXISTS", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn publish_plugin(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(manifest): ApiJson<Value>,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    let parsed = validate_manifest(&manifest).map_err(|errors| {
        let count = errors.len();
        let errors: Vec<ManifestProblem> = errors.into_iter().map(ManifestProblem::from).collect();
        ApiError::new(
            ErrorCode::InvalidManifest,
            format!("the manifest has {count} problem(s)"),
        )
        .with_details(json!({ "errors": errors }))
    })?;
    let published = PublishedVersion {
        plugin_id: parsed.id.clone(),
        version: parsed.version.clone(),
        manifest,
        published_at_ms: state.clock.now_ms(),
    };
    let body = Json(Published {
        plugin_id: parsed.id.to_string(),
        version: parsed.version.to_string(),
    });
    match state.store.publish_version(&published).await? {
        PublishOutcome::Created => Ok((StatusCode::CREATED, body)),
        PublishOutcome::Unchanged => Ok((StatusCode::OK, body)),
        PublishOutcome::Conflict => Err(ApiError::new(
            ErrorCode::VersionExists,
            format!(
                "{} {} is already published with different content; publish a new version",
                parsed.id, parsed.version
            ),
        )),
    }
}

/// Validate a manifest without publishing it.
#[utoipa::path(post, path = "/api/v1/plugins/validate", tag = "catalog", request_body = Object,
    responses((status = 200, body = Validation)), security(("bearer" = [])))]
async fn validate_plugin(_: Admin, ApiJson(manifest): ApiJson<Value>) -> Json<Validation> {
    let errors = validate_manifest(&manifest).err().unwrap_or_default();
    Json(Validation {
        valid: errors.is_empty(),
        errors: errors.into_iter().map(ManifestProblem::from).collect(),
    })
}

/// List the catalog.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "catalog",
    responses((status = 200, body = PluginList)), security(("bearer" = [])))]
async fn list_plugins(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<PluginList>, ApiError> {
    let mut by_plugin: BTreeMap<PluginId, Vec<PublishedVersion>> = BTreeMap::new();
    for version in state.store.all_versions().await? {
        by_plugin
            .entry(version.plugin_id.clone())
            .or_default()
            .push(version);
    }
    let plugins = by_plugin
        .into_iter()
        .filter_map(|(plugin_id, versions)| {
            let newest = latest(&versions)?;
            Some(PluginSummary {
                plugin_id: plugin_id.to_string(),
                name: manifest_text(&newest.manifest, "name"),
                description: manifest_text(&newest.manifest, "description"),
                latest_version: newest.version.to_string(),
                versions: versions.iter().map(|v| v.version.to_string()).collect(),
            })
        })
        .collect();
    Ok(Json(PluginList { plugins }))
}

fn plugin_not_found(plugin_id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::PluginNotFound,
        format!("plugin \"{plugin_id}\" is not in the catalog"),
    )
}

/// Show a plugin with all its versions.
#[utoipa::path(get, path = "/api/v1/plugins/{pluginId}", tag = "catalog",
    responses((status = 200, body = PluginView), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_plugin(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(plugin_id): ApiPath<String>,
) -> Result<Json<PluginView>, ApiError> {
    let id = PluginId::parse(&plugin_id).map_err(|_| plugin_not_found(&plugin_id))?;
    let versions = state.store.plugin_versions(&id).await?;
    let newest = latest(&versions).ok_or_else(|| plugin_not_found(&plugin_id))?;
    Ok(Json(PluginView {
        plugin_id: id.to_string(),
        name: manifest_text(&newest.manifest, "name"),
        latest_version: newest.version.to_string(),
        versions: versions.iter().map(VersionView::from).collect(),
    }))
}

/// Show one version of a plugin with its manifest.
#[utoipa::path(get, path = "/api/v1/plugins/{pluginId}/versions/{version}", tag = "catalog",
    responses((status = 200, body = VersionView), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_plugin_version(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((plugin_id, version)): ApiPath<(String, String)>,
) -> Result<Json<VersionView>, ApiError> {
    let not_found = || {
        ApiError::new(
            ErrorCode::VersionNotFound,
            format!("{plugin_id} has no published version \"{version}\""),
        )
    };
    let id = PluginId::parse(&plugin_id).map_err(|_| plugin_not_found(&plugin_id))?;
    let parsed = Version::parse(&version).map_err(|_| not_found())?;
    let found = state.store.plugin_version(&id, &parsed).await?;
    found
        .map(|v| Json(VersionView::from(&v)))
        .ok_or_else(not_found)
}
