//! The seed's four shared-data routes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use plexhub_core::data::Precondition;
use plexhub_core::ids::PluginId;
use plexhub_store::DataListing;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::data::{self, EntryView, build_write, names, writer};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Keys a seed listing returns at most (the original had no paging).
const MAX_LISTED_KEYS: u32 = 10_000;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_data))
        .routes(routes!(get_data, delete_data))
        .routes(routes!(list_keys))
}

/// Body of the seed's set call. Unknown fields are ignored, as in the original.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetData {
    namespace: String,
    key: String,
    /// Any JSON except null.
    #[serde(default)]
    value: Value,
    /// Must be the calling plugin (required when the admin writes).
    owner_id: Option<String>,
    /// Seconds (number or numeric string), at most one year. Without it the entry never
    /// expires, and overwriting without it removes an existing expiry.
    ttl: Option<Value>,
}

/// The seed's acknowledgement (with the new revision).
#[derive(Serialize, ToSchema)]
pub struct Stored {
    success: bool,
    message: &'static str,
    revision: i64,
}

/// The seed's deletion acknowledgement.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    success: bool,
    message: &'static str,
}

/// The seed's key listing.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    namespace: String,
    keys: Vec<String>,
    count: usize,
}

/// Listing filter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct OwnerFilter {
    /// Only keys of this owner.
    owner_id: Option<String>,
}

/// Store a value (owner: the calling plugin).
#[utoipa::path(post, path = "/api/plugin-gateway/shared-data", tag = "shared data (seed-compatible)",
    request_body = SetData,
    responses((status = 201, body = Stored),
        (status = 400, description = "INVALID_NAME, null value, bad ttl, TENANT_REQUIRED"),
        (status = 403, description = "OWNER_MISMATCH, NOT_OWNER"), (status = 413, description = "VALUE_TOO_LARGE")),
    security(("bearer" = [])))]
async fn set_data(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SetData>,
) -> Result<(StatusCode, Json<Stored>), ApiError> {
    let owner = writer(&scope, body.owner_id.as_deref())?;
    let names = names(&body.namespace, &body.key)?;
    let write = build_write(
        &state,
        names,
        body.value,
        body.ttl.as_ref(),
        owner,
        Precondition::None,
    )?;
    let revision = data::put(&state, &scope, write).await?;
    Ok((
        StatusCode::CREATED,
        Json(Stored {
            success: true,
            message: "Data stored successfully",
            revision,
        }),
    ))
}

/// Read a value (`{namespace, key, value}` plus owner, revision, expiry; `ETag` header).
#[utoipa::path(get, path = "/api/plugin-gateway/shared-data/{namespace}/{key}", tag = "shared data (seed-compatible)",
    responses((status = 200, body = EntryView), (status = 404, description = "DATA_NOT_FOUND")),
    security(("bearer" = [])))]
async fn get_data(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (namespace, key) = names(&namespace, &key)?;
    data::read_answer(&state, &scope, &namespace, &key).await
}

/// Delete a value (its owner or the admin).
#[utoipa::path(delete, path = "/api/plugin-gateway/shared-data/{namespace}/{key}", tag = "shared data (seed-compatible)",
    responses((status = 200, body = Deleted), (status = 403, description = "NOT_OWNER"),
        (status = 404, description = "DATA_NOT_FOUND")),
    security(("bearer" = [])))]
async fn delete_data(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
) -> Result<Json<Deleted>, ApiError> {
    data::delete(&state, &scope, names(&namespace, &key)?, None).await?;
    Ok(Json(Deleted {
        success: true,
        message: "Data deleted successfully",
    }))
}

/// List the live keys of a namespace, sorted.
#[utoipa::path(get, path = "/api/plugin-gateway/shared-data/{namespace}", tag = "shared data (seed-compatible)",
    params(OwnerFilter), responses((status = 200, body = KeyList)), security(("bearer" = [])))]
async fn list_keys(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath(namespace): ApiPath<String>,
    ApiQuery(filter): ApiQuery<OwnerFilter>,
) -> Result<Json<KeyList>, ApiError> {
    let namespace = plexhub_core::data::Namespace::parse(&namespace).map_err(data::data_error)?;
    let owner = match filter.owner_id.as_deref() {
        None => None,
        Some(owner) => match PluginId::parse(owner) {
            Ok(owner) => Some(owner),
            // An owner that cannot exist owns nothing.
            Err(_) => {
                return Ok(Json(KeyList {
                    namespace: namespace.to_string(),
                    keys: Vec::new(),
                    count: 0,
                }));
            }
        },
    };
    let listing = DataListing {
        owner,
        limit: MAX_LISTED_KEYS,
        ..DataListing::default()
    };
    let now = state.clock.now_ms();
    let entries = state
        .store
        .list_data(scope.tenant.id, &namespace, &listing, now)
        .await?;
    let keys: Vec<String> = entries.into_iter().map(|e| e.key.to_string()).collect();
    Ok(Json(KeyList {
        namespace: namespace.to_string(),
        count: keys.len(),
        keys,
    }))
}
