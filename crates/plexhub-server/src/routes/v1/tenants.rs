//! `/api/v1/tenants`: tenant administration (admin only).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use plexhub_core::tenant::{
    RateLimit, RateLimits, Tenant, TenantId, TenantSlug, TenantStatus, validate_tenant_name,
};
use plexhub_store::StoreError;
use plexhub_store::feed::Change;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Admin;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::{AppState, rfc3339};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant, list_tenants))
        .routes(routes!(get_tenant, update_tenant, delete_tenant))
}

/// A tenant as the API shows it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantView {
    id: String,
    slug: String,
    name: String,
    #[schema(example = "active")]
    status: String,
    /// RFC 3339.
    created_at: String,
    /// Gateway quotas (`{perCaller?:{rps,burst}, perTenant?:{rps,burst}}`); absent ones fall
    /// back to the hub's settings.
    #[schema(value_type = Object)]
    rate_limits: RateLimits,
}

impl From<&Tenant> for TenantView {
    fn from(tenant: &Tenant) -> Self {
        Self {
            id: tenant.id.to_string(),
            slug: tenant.slug.to_string(),
            name: tenant.name.clone(),
            status: tenant.status.as_str().to_owned(),
            created_at: rfc3339(tenant.created_at_ms),
            rate_limits: tenant.rate_limits,
        }
    }
}

/// Body of `POST /api/v1/tenants`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// `[a-z0-9][a-z0-9-]{1,62}`.
    slug: String,
    /// Display name; defaults to the slug.
    name: Option<String>,
}

/// Body of `PATCH /api/v1/tenants/{slug}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpdateTenant {
    /// New display name.
    name: Option<String>,
    /// `active` or `suspended`.
    status: Option<String>,
    /// Replaces the tenant's gateway quotas: `{perCaller?:{rps,burst}, perTenant?:{rps,burst}}`;
    /// `{}` returns to the hub's settings.
    #[schema(value_type = Option<Object>)]
    rate_limits: Option<RateLimits>,
}

/// Paging of `GET /api/v1/tenants`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TenantPaging {
    /// Page size, 1-500 (default 50).
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// One page of tenants, ordered by slug.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantPage {
    tenants: Vec<TenantView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

fn invalid_name(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidBody, error.to_string())
}

/// Loads a tenant by slug; 404 `TENANT_NOT_FOUND` when it does not exist (or cannot).
pub async fn find_tenant(state: &AppState, slug: &str) -> Result<Tenant, ApiError> {
    let not_found = || {
        ApiError::new(
            ErrorCode::TenantNotFound,
            format!("tenant \"{slug}\" not found"),
        )
    };
    let slug = TenantSlug::parse(slug).map_err(|_| not_found())?;
    state
        .store
        .tenant_by_slug(&slug)
        .await?
        .ok_or_else(not_found)
}

/// Create a tenant.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, body = TenantView), (status = 400, body = ErrorEnvelope),
              (status = 409, description = "TENANT_EXISTS", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn create_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let slug = TenantSlug::parse(&body.slug)
        .map_err(|e| ApiError::new(ErrorCode::InvalidSlug, e.to_string()))?;
    let name = body.name.unwrap_or_else(|| slug.to_string());
    validate_tenant_name(&name).map_err(invalid_name)?;
    let tenant = Tenant {
        id: TenantId::new_random(),
        slug,
        name,
        status: TenantStatus::Active,
        created_at_ms: state.clock.now_ms(),
        rate_limits: RateLimits::default(),
    };
    match state.store.create_tenant(&tenant).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(TenantView::from(&tenant)))),
        Err(StoreError::Duplicate) => Err(ApiError::new(
            ErrorCode::TenantExists,
            format!("tenant \"{}\" already exists", tenant.slug),
        )),
        Err(other) => Err(other.into()),
    }
}

/// List tenants, ordered by slug, a page at a time.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(TenantPaging),
    responses((status = 200, body = TenantPage)), security(("bearer" = [])))]
async fn list_tenants(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(paging): ApiQuery<TenantPaging>,
) -> Result<Json<TenantPage>, ApiError> {
    let limit = paging.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "limit must be between 1 and 500",
        ));
    }
    let after = paging
        .cursor
        .as_deref()
        .map(TenantSlug::parse)
        .transpose()
        .map_err(|_| ApiError::new(ErrorCode::InvalidParameter, "invalid cursor"))?;
    // One extra row tells whether another page exists.
    let mut tenants = state.store.list_tenants(after.as_ref(), limit + 1).await?;
    let next_cursor = if tenants.len() > limit as usize {
        tenants.truncate(limit as usize);
        tenants.last().map(|t| t.slug.to_string())
    } else {
        None
    };
    Ok(Json(TenantPage {
        tenants: tenants.iter().map(TenantView::from).collect(),
        next_cursor,
    }))
}

/// Show one tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{slug}", tag = "tenants",
    responses((status = 200, body = TenantView), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = find_tenant(&state, &slug).await?;
    Ok(Json(TenantView::from(&tenant)))
}

/// Rename a tenant or change its status (`active` | `suspended`).
#[utoipa::path(patch, path = "/api/v1/tenants/{slug}", tag = "tenants", request_body = UpdateTenant,
    responses((status = 200, body = TenantView), (status = 400, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn update_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<Json<TenantView>, ApiError> {
    let mut tenant = find_tenant(&state, &slug).await?;
    if let Some(name) = body.name {
        validate_tenant_name(&name).map_err(invalid_name)?;
        tenant.name = name;
    }
    if let Some(status) = body.status {
        tenant.status = TenantStatus::parse(&status)
            .map_err(|e| ApiError::new(ErrorCode::InvalidBody, e.to_string()))?;
    }
    if let Some(limits) = body.rate_limits {
        for limit in [limits.per_caller, limits.per_tenant].into_iter().flatten() {
            RateLimit::new(limit.rps, limit.burst)
                .map_err(|e| ApiError::new(ErrorCode::InvalidBody, e.to_string()))?;
        }
        tenant.rate_limits = limits;
    }
    if !state
        .store
        .update_tenant(&tenant, state.clock.now_ms())
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::TenantNotFound,
            format!("tenant \"{slug}\" not found"),
        ));
    }
    state.changed(Change::Tenant { tenant: tenant.id }).await;
    Ok(Json(TenantView::from(&tenant)))
}

/// Delete a tenant and everything that belongs to it.
#[utoipa::path(delete, path = "/api/v1/tenants/{slug}", tag = "tenants",
    responses((status = 204), (status = 404, body = ErrorEnvelope)), security(("bearer" = [])))]
async fn delete_tenant(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let tenant = find_tenant(&state, &slug).await?;
    if state.store.delete_tenant(tenant.id).await? {
        if let Err(error) = state.bus.forget_tenant(tenant.id).await {
            // The tenant is gone; only its events' space is not freed.
            tracing::warn!(%error, tenant = %tenant.id, "cannot delete the tenant's event streams");
        }
        state.changed(Change::Tenant { tenant: tenant.id }).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            ErrorCode::TenantNotFound,
            format!("tenant \"{slug}\" not found"),
        ))
    }
}
