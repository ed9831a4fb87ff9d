//! `/api/v1/plugins`: the global plugin catalog (admin only): publishing, search, and the
//! lifecycle of each version (review, deprecation, yank) with its audit trail.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use plexhub_core::catalog::{CatalogAction, Standing, VersionStatus, check_note, manifest_digest};
use plexhub_core::ids::PluginId;
use plexhub_core::manifest::{ManifestError, validate_manifest};
use plexhub_core::version::Version;
use plexhub_store::{
    PublishOutcome, PublishedVersion, VersionChange, VersionNotes, VersionTransition,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Admin;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::{AppState, rfc3339};

/// Who the audit trail names when a request does not say (the admin token is shared).
const DEFAULT_ACTOR: &str = "admin";

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish_plugin, list_plugins))
        .routes(routes!(validate_plugin))
        .routes(routes!(get_plugin))
        .routes(routes!(get_plugin_version))
        .routes(routes!(transition_version, list_transitions))
}

/// Result of publishing: which version is now in the catalog, where it stands and its digest.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    plugin_id: String,
    version: String,
    /// `PUBLISHED`, or `DRAFT` when the hub runs with `catalog_review`.
    #[schema(example = "PUBLISHED")]
    status: String,
    /// `sha256:<hex>` of the manifest.
    digest: String,
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

/// A deprecated version's message and what to use instead.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeprecationView {
    message: String,
    /// A plugin id or version to use instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    replacement: Option<String>,
}

impl DeprecationView {
    /// The deprecation of a version, if it is deprecated.
    pub fn of(version: &PublishedVersion) -> Option<Self> {
        (version.standing.status == VersionStatus::Deprecated).then(|| Self {
            message: version.notes.deprecation.clone().unwrap_or_default(),
            replacement: version.notes.replacement.clone(),
        })
    }
}

/// One catalog version with its manifest and where it stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    plugin_id: String,
    version: String,
    published_at: String,
    /// `DRAFT`, `PENDING_REVIEW`, `PUBLISHED`, `DEPRECATED` or `REJECTED`.
    #[schema(example = "PUBLISHED")]
    status: String,
    /// Yanked: no new install or plan picks it; installations of it keep running.
    yanked: bool,
    /// Whether a new install may pick it (published or deprecated, not yanked).
    installable: bool,
    /// What may be done next (`submit`, `approve`, `reject`, `deprecate`, `yank`, `unyank`).
    allowed_actions: Vec<String>,
    /// `sha256:<hex>` of the manifest: equal manifests, equal digests.
    digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    deprecation: Option<DeprecationView>,
    /// The reviewer's reason, when rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    rejection: Option<String>,
    /// Why it is yanked, while it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    yank_reason: Option<String>,
    manifest: Value,
}

impl From<&PublishedVersion> for VersionView {
    fn from(published: &PublishedVersion) -> Self {
        Self {
            plugin_id: published.plugin_id.to_string(),
            version: published.version.to_string(),
            published_at: rfc3339(published.published_at_ms),
            status: published.standing.status.as_str().to_owned(),
            yanked: published.standing.yanked,
            installable: published.standing.installable(),
            allowed_actions: published
                .standing
                .allowed()
                .into_iter()
                .map(|action| action.as_str().to_owned())
                .collect(),
            digest: published.digest.clone(),
            deprecation: DeprecationView::of(published),
            rejection: published.notes.rejection.clone(),
            yank_reason: published
                .standing
                .yanked
                .then(|| published.notes.yank_reason.clone())
                .flatten(),
            manifest: published.manifest.clone(),
        }
    }
}

/// A plugin with all its catalog versions, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    plugin_id: String,
    /// Name from the latest version's manifest.
    name: String,
    /// Highest installable version (highest of any status when none is installable).
    latest_version: String,
    /// Set when the latest version is deprecated.
    #[serde(skip_serializing_if = "Option::is_none")]
    deprecation: Option<DeprecationView>,
    versions: Vec<VersionView>,
}

/// A page of the catalog.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginList {
    plugins: Vec<PluginSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// A plugin in the catalog listing.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginSummary {
    plugin_id: String,
    name: String,
    description: String,
    /// The latest version's manifest `tags`.
    tags: Vec<String>,
    /// Highest installable version (highest of any status when none is installable).
    latest_version: String,
    /// Status of `latestVersion`.
    #[schema(example = "PUBLISHED")]
    status: String,
    /// Set when `latestVersion` is deprecated.
    #[serde(skip_serializing_if = "Option::is_none")]
    deprecation: Option<DeprecationView>,
    /// Every catalog version, oldest first.
    versions: Vec<String>,
    /// The versions a new install may pick.
    installable_versions: Vec<String>,
}

/// Search and paging of the catalog listing.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogQuery {
    /// Words that must each appear (case-insensitive) in the id, name, description or tags of
    /// the plugin's latest version.
    q: Option<String>,
    /// Only plugins whose latest version has this tag.
    tag: Option<String>,
    /// Only plugins with a version in this status (`DRAFT`, `PENDING_REVIEW`, `PUBLISHED`,
    /// `DEPRECATED`, `REJECTED`).
    status: Option<String>,
    /// Page size, 1–500 (default 100).
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

fn manifest_text(manifest: &Value, field: &str) -> String {
    manifest[field].as_str().unwrap_or_default().to_owned()
}

fn manifest_tags(manifest: &Value) -> Vec<String> {
    manifest["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The version listings describe (see [`plexhub_core::catalog::latest`]).
fn latest(versions: &[PublishedVersion]) -> Option<&PublishedVersion> {
    plexhub_core::catalog::latest(versions, |v| &v.version, |v| v.standing.installable())
}

fn invalid_parameter(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message.into())
}

/// Publish one plugin version from its manifest: `PUBLISHED` at once, or `DRAFT` waiting for
/// review when the hub runs with `catalog_review`. Announced as `core.plugin.published` when
/// it is published.
#[utoipa::path(post, path = "/api/v1/plugins", tag = "catalog", request_body = Object,
    responses((status = 201, body = Published), (status = 200, description = "identical version already in the catalog", body = Published),
              (status = 400, description = "INVALID_MANIFEST, details.errors lists every problem", body = ErrorEnvelope),
              (status = 409, description = "VERSION_EXISTS (same version, other digest)", body = ErrorEnvelope)),
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
    let standing = if state.catalog_review {
        Standing {
            status: VersionStatus::Draft,
            yanked: false,
        }
    } else {
        Standing::PUBLISHED
    };
    let published = PublishedVersion {
        plugin_id: parsed.id.clone(),
        version: parsed.version.clone(),
        digest: manifest_digest(&manifest),
        manifest,
        published_at_ms: state.clock.now_ms(),
        standing,
        notes: VersionNotes::default(),
    };
    match state
        .store
        .publish_version(&published, DEFAULT_ACTOR)
        .await?
    {
        PublishOutcome::Created => {
            tracing::info!(plugin = %parsed.id, version = %parsed.version, status = %standing.status, "catalog version stored");
            if standing.status == VersionStatus::Published {
                announce_catalog(&state, "core.plugin.published", &published, json!({})).await;
            }
            Ok((StatusCode::CREATED, Json(published_answer(&published))))
        }
        PublishOutcome::Unchanged => {
            let stored = state
                .store
                .plugin_version(&parsed.id, &parsed.version)
                .await?
                .unwrap_or(published);
            Ok((StatusCode::OK, Json(published_answer(&stored))))
        }
        PublishOutcome::Conflict => Err(ApiError::new(
            ErrorCode::VersionExists,
            format!(
                "{} {} is already in the catalog with a different manifest (digest {}); publish a new version",
                parsed.id, parsed.version, published.digest
            ),
        )),
    }
}

fn published_answer(version: &PublishedVersion) -> Published {
    Published {
        plugin_id: version.plugin_id.to_string(),
        version: version.version.to_string(),
        status: version.standing.status.as_str().to_owned(),
        digest: version.digest.clone(),
    }
}

/// Tells every tenant's subscribers about a catalog change (the catalog is global, so each
/// tenant's bus carries it). A failure is logged: the change has happened.
async fn announce_catalog(
    state: &AppState,
    event_type: &str,
    version: &PublishedVersion,
    extra: Value,
) {
    let mut data = json!({
        "pluginId": version.plugin_id.as_str(),
        "version": version.version.to_string(),
        "status": version.standing.status.as_str(),
        "yanked": version.standing.yanked,
        "digest": version.digest,
    });
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    let mut after: Option<plexhub_core::tenant::TenantSlug> = None;
    loop {
        let page = match state.store.list_tenants(after.as_ref(), 500).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, event_type, "cannot list tenants to announce a catalog change");
                return;
            }
        };
        for tenant in &page {
            crate::events::announce(state, tenant.id, event_type, data.clone()).await;
        }
        match page.last() {
            Some(last) if page.len() == 500 => after = Some(last.slug.clone()),
            _ => return,
        }
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

/// Search the catalog, ordered by plugin id, a page at a time: `q` over id, name, description
/// and tags, `tag`, `status`.
#[utoipa::path(get, path = "/api/v1/plugins", tag = "catalog", params(CatalogQuery),
    responses((status = 200, body = PluginList),
              (status = 400, description = "INVALID_PARAMETER", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_plugins(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CatalogQuery>,
) -> Result<Json<PluginList>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(invalid_parameter("limit must be between 1 and 500"));
    }
    let status = query
        .status
        .as_deref()
        .map(|text| {
            VersionStatus::parse(text).ok_or_else(|| {
                invalid_parameter(format!(
                    "status must be one of DRAFT, PENDING_REVIEW, PUBLISHED, DEPRECATED, REJECTED, got \"{text}\""
                ))
            })
        })
        .transpose()?;
    let words: Vec<String> = query
        .q
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let mut by_plugin: BTreeMap<PluginId, Vec<PublishedVersion>> = BTreeMap::new();
    for version in state.store.all_versions().await? {
        by_plugin
            .entry(version.plugin_id.clone())
            .or_default()
            .push(version);
    }
    let cursor = query.cursor.as_deref().unwrap_or_default();
    let mut matching = by_plugin
        .iter()
        .filter(|(plugin_id, _)| plugin_id.as_str() > cursor)
        .filter_map(|(plugin_id, versions)| {
            let newest = latest(versions)?;
            let tags = manifest_tags(&newest.manifest);
            let name = manifest_text(&newest.manifest, "name");
            let description = manifest_text(&newest.manifest, "description");
            if let Some(wanted) = status
                && !versions.iter().any(|v| v.standing.status == wanted)
            {
                return None;
            }
            if let Some(tag) = &query.tag
                && !tags.contains(tag)
            {
                return None;
            }
            let haystack =
                format!("{plugin_id}\n{name}\n{description}\n{}", tags.join("\n")).to_lowercase();
            if !words.iter().all(|word| haystack.contains(word.as_str())) {
                return None;
            }
            Some(PluginSummary {
                plugin_id: plugin_id.to_string(),
                name,
                description,
                tags,
                latest_version: newest.version.to_string(),
                status: newest.standing.status.as_str().to_owned(),
                deprecation: DeprecationView::of(newest),
                versions: versions.iter().map(|v| v.version.to_string()).collect(),
                installable_versions: versions
                    .iter()
                    .filter(|v| v.standing.installable())
                    .map(|v| v.version.to_string())
                    .collect(),
            })
        });
    let plugins: Vec<PluginSummary> = matching.by_ref().take(limit as usize).collect();
    let next_cursor = if matching.next().is_some() {
        plugins.last().map(|p| p.plugin_id.clone())
    } else {
        None
    };
    Ok(Json(PluginList {
        plugins,
        next_cursor,
    }))
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
        deprecation: DeprecationView::of(newest),
        versions: versions.iter().map(VersionView::from).collect(),
    }))
}

/// One catalog version, or 404 `PLUGIN_NOT_FOUND` / `VERSION_NOT_FOUND`.
async fn find_version(
    state: &AppState,
    plugin_id: &str,
    version: &str,
) -> Result<PublishedVersion, ApiError> {
    let not_found = || {
        ApiError::new(
            ErrorCode::VersionNotFound,
            format!("{plugin_id} has no catalog version \"{version}\""),
        )
    };
    let id = PluginId::parse(plugin_id).map_err(|_| plugin_not_found(plugin_id))?;
    let parsed = Version::parse(version).map_err(|_| not_found())?;
    state
        .store
        .plugin_version(&id, &parsed)
        .await?
        .ok_or_else(not_found)
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
    let found = find_version(&state, &plugin_id, &version).await?;
    Ok(Json(VersionView::from(&found)))
}

/// A lifecycle transition of a catalog version.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TransitionRequest {
    /// `submit` (DRAFT → PENDING_REVIEW), `approve` (→ PUBLISHED), `reject` (→ REJECTED),
    /// `deprecate` (PUBLISHED → DEPRECATED), `yank`, `unyank`.
    #[schema(example = "approve")]
    action: String,
    /// Why: required for `reject` and `yank`, recorded in the audit trail for every action.
    reason: Option<String>,
    /// `deprecate`: the message shown on the plugin and on installations of the version.
    message: Option<String>,
    /// `deprecate`: the plugin id or version to use instead.
    replacement: Option<String>,
    /// Who acts, as the audit trail names them (default `admin`).
    by: Option<String>,
}

/// One recorded transition.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransitionView {
    step: i64,
    /// `publish` or the action.
    action: String,
    /// Status before (absent for the publication).
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    /// Status after.
    to: String,
    /// Yank flag after.
    yanked: bool,
    by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    at: String,
}

impl From<&VersionTransition> for TransitionView {
    fn from(transition: &VersionTransition) -> Self {
        Self {
            step: transition.step,
            action: transition.action.clone(),
            from: transition.from.map(|status| status.as_str().to_owned()),
            to: transition.to.status.as_str().to_owned(),
            yanked: transition.to.yanked,
            by: transition.actor.clone(),
            reason: transition.reason.clone(),
            at: rfc3339(transition.at_ms),
        }
    }
}

/// The audit trail of a catalog version.
#[derive(Serialize, ToSchema)]
pub struct TransitionList {
    transitions: Vec<TransitionView>,
}

fn invalid_body(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidBody, message.into())
}

/// A note of the request (reason, message…), checked; `required` makes it mandatory.
fn note(field: &str, text: Option<&String>, required: bool) -> Result<Option<String>, ApiError> {
    match text {
        Some(text) => {
            check_note(field, text).map_err(invalid_body)?;
            Ok(Some(text.trim().to_owned()))
        }
        None if required => Err(invalid_body(format!("{field} is required for this action"))),
        None => Ok(None),
    }
}

/// Move a catalog version through its lifecycle: `submit`, `approve`, `reject` (with a
/// reason), `deprecate` (with a message and an optional replacement), `yank` (with a reason),
/// `unyank`. Each transition is recorded with who and why; one that the version's standing
/// does not allow is 409 `INVALID_TRANSITION` naming the allowed ones (`details.allowed`).
/// Announced as `core.plugin.published`, `core.plugin.deprecated` or `core.plugin.yanked`.
#[utoipa::path(post, path = "/api/v1/plugins/{pluginId}/versions/{version}/transitions", tag = "catalog",
    request_body = TransitionRequest,
    responses((status = 200, body = VersionView),
              (status = 400, description = "INVALID_BODY (unknown action, missing reason or message)", body = ErrorEnvelope),
              (status = 404, description = "PLUGIN_NOT_FOUND, VERSION_NOT_FOUND", body = ErrorEnvelope),
              (status = 409, description = "INVALID_TRANSITION with details.status, details.yanked, details.allowed", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn transition_version(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((plugin_id, version)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<TransitionRequest>,
) -> Result<Json<VersionView>, ApiError> {
    let action = CatalogAction::parse(&body.action).ok_or_else(|| {
        invalid_body(format!(
            "action must be one of submit, approve, reject, deprecate, yank, unyank, got \"{}\"",
            body.action
        ))
    })?;
    let reason = note(
        "reason",
        body.reason.as_ref(),
        matches!(action, CatalogAction::Reject | CatalogAction::Yank),
    )?;
    let deprecation = action == CatalogAction::Deprecate;
    let message = note("message", body.message.as_ref(), deprecation)?;
    let replacement = note("replacement", body.replacement.as_ref(), false)?;
    if !deprecation && (message.is_some() || replacement.is_some()) {
        return Err(invalid_body(
            "message and replacement belong to the deprecate action",
        ));
    }
    let actor = note("by", body.by.as_ref(), false)?.unwrap_or_else(|| DEFAULT_ACTOR.to_owned());
    let mut current = find_version(&state, &plugin_id, &version).await?;
    let to = current.standing.apply(action).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidTransition,
            format!("{} {}: {error}", current.plugin_id, current.version),
        )
        .with_details(json!({
            "status": error.from.status.as_str(),
            "yanked": error.from.yanked,
            "allowed": error.allowed.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        }))
    })?;
    let mut notes = current.notes.clone();
    match action {
        CatalogAction::Reject => notes.rejection = reason.clone(),
        CatalogAction::Deprecate => {
            notes.deprecation = message;
            notes.replacement = replacement;
        }
        CatalogAction::Yank => notes.yank_reason = reason.clone(),
        CatalogAction::Unyank => notes.yank_reason = None,
        CatalogAction::Submit | CatalogAction::Approve => {}
    }
    let change = VersionChange {
        plugin_id: current.plugin_id.clone(),
        version: current.version.clone(),
        action,
        from: current.standing,
        to,
        notes: notes.clone(),
        actor,
        reason: reason.or_else(|| notes.deprecation.clone().filter(|_| deprecation)),
        at_ms: state.clock.now_ms(),
    };
    if !state.store.transition_version(&change).await? {
        return Err(ApiError::new(
            ErrorCode::InvalidTransition,
            format!(
                "{} {} changed meanwhile; read it again and retry",
                current.plugin_id, current.version
            ),
        ));
    }
    tracing::info!(plugin = %change.plugin_id, version = %change.version, %action, by = %change.actor, to = %to, "catalog version changed");
    current.standing = to;
    current.notes = notes;
    let event = match action {
        CatalogAction::Approve => Some(("core.plugin.published", json!({}))),
        CatalogAction::Deprecate => Some((
            "core.plugin.deprecated",
            json!({ "message": current.notes.deprecation, "replacement": current.notes.replacement }),
        )),
        CatalogAction::Yank => Some((
            "core.plugin.yanked",
            json!({ "reason": current.notes.yank_reason }),
        )),
        CatalogAction::Submit | CatalogAction::Reject | CatalogAction::Unyank => None,
    };
    if let Some((event_type, extra)) = event {
        announce_catalog(&state, event_type, &current, extra).await;
    }
    Ok(Json(VersionView::from(&current)))
}

/// The audit trail of a catalog version: its publication and every transition, oldest first,
/// with who and why.
#[utoipa::path(get, path = "/api/v1/plugins/{pluginId}/versions/{version}/transitions", tag = "catalog",
    responses((status = 200, body = TransitionList), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_transitions(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((plugin_id, version)): ApiPath<(String, String)>,
) -> Result<Json<TransitionList>, ApiError> {
    let found = find_version(&state, &plugin_id, &version).await?;
    let trail = state
        .store
        .version_transitions(&found.plugin_id, &found.version)
        .await?;
    Ok(Json(TransitionList {
        transitions: trail.iter().map(TransitionView::from).collect(),
    }))
}
