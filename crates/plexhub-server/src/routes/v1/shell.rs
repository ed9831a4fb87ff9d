//! `/api/v1/tenants/{slug}/shell-credentials`: read-only credentials of a tenant's web shell
//! (admin only). A shell credential (`phs_<id>.<secret>`) reads the tenant's UI remotes and
//! nothing else; revoking it takes effect at once on every hub (it is never cached).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use plexhub_core::credential::{CredentialId, IssuedCredential};
use plexhub_store::{ShellCredentialRecord, StoreError};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tenants::find_tenant;
use crate::auth::Admin;
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extract::ApiPath;
use crate::state::{AppState, rfc3339};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_shell_credential, list_shell_credentials))
        .routes(routes!(revoke_shell_credential))
}

/// A new shell credential with its token: shown exactly once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewShellCredential {
    id: String,
    /// `phs_<id>.<secret>`; store it now, the hub keeps only a hash.
    token: String,
    created_at: String,
}

/// A shell credential without its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShellCredentialView {
    id: String,
    created_at: String,
}

/// A tenant's shell credentials.
#[derive(Serialize, ToSchema)]
pub struct ShellCredentialList {
    credentials: Vec<ShellCredentialView>,
}

/// Issue a read-only shell credential for a tenant: it reads `GET /api/v1/ui/remotes` (and its
/// stream) and `whoami`, and is refused (403 `FORBIDDEN`) everywhere else.
#[utoipa::path(post, path = "/api/v1/tenants/{slug}/shell-credentials", tag = "shell credentials",
    responses((status = 201, body = NewShellCredential), (status = 404, description = "TENANT_NOT_FOUND", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn issue_shell_credential(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
) -> Result<(StatusCode, Json<NewShellCredential>), ApiError> {
    let tenant = find_tenant(&state, &slug).await?;
    let issued = IssuedCredential::generate_shell();
    let record = ShellCredentialRecord {
        id: issued.id,
        tenant_id: tenant.id,
        hash: issued.hash,
        created_at_ms: state.clock.now_ms(),
    };
    match state.store.add_shell_credential(&record).await {
        Ok(()) => {}
        Err(StoreError::MissingReference) => {
            return Err(ApiError::new(
                ErrorCode::TenantNotFound,
                format!("tenant \"{slug}\" not found"),
            ));
        }
        Err(other) => return Err(other.into()),
    }
    tracing::info!(tenant = %tenant.slug, credential = %record.id, "shell credential issued");
    Ok((
        StatusCode::CREATED,
        Json(NewShellCredential {
            id: record.id.to_string(),
            token: issued.token,
            created_at: rfc3339(record.created_at_ms),
        }),
    ))
}

/// List a tenant's shell credentials (without secrets).
#[utoipa::path(get, path = "/api/v1/tenants/{slug}/shell-credentials", tag = "shell credentials",
    responses((status = 200, body = ShellCredentialList), (status = 404, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_shell_credentials(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(slug): ApiPath<String>,
) -> Result<Json<ShellCredentialList>, ApiError> {
    let tenant = find_tenant(&state, &slug).await?;
    let credentials = state.store.shell_credentials(tenant.id).await?;
    Ok(Json(ShellCredentialList {
        credentials: credentials
            .iter()
            .map(|c| ShellCredentialView {
                id: c.id.to_string(),
                created_at: rfc3339(c.created_at_ms),
            })
            .collect(),
    }))
}

/// Revoke a shell credential: refused on every hub from the next request.
#[utoipa::path(delete, path = "/api/v1/tenants/{slug}/shell-credentials/{id}", tag = "shell credentials",
    responses((status = 204), (status = 404, description = "TENANT_NOT_FOUND, CREDENTIAL_NOT_FOUND", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn revoke_shell_credential(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((slug, id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let tenant = find_tenant(&state, &slug).await?;
    let not_found = || {
        ApiError::new(
            ErrorCode::CredentialNotFound,
            format!("tenant \"{slug}\" has no shell credential \"{id}\""),
        )
    };
    let credential = CredentialId::parse(&id).ok_or_else(not_found)?;
    if !state
        .store
        .revoke_shell_credential(tenant.id, &credential)
        .await?
    {
        return Err(not_found());
    }
    tracing::info!(tenant = %tenant.slug, credential = %credential, "shell credential revoked");
    Ok(StatusCode::NO_CONTENT)
}
