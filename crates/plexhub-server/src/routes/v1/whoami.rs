//! `GET /api/v1/whoami`: what the presented credential is.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, admin_acting_tenant};
use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(whoami))
}

/// The caller's identity.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    /// `admin` or `plugin`.
    #[schema(example = "plugin")]
    kind: &'static str,
    /// Tenant slug: the credential's, or for an admin the one named by `X-Tenant-Slug`.
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    /// The calling plugin (plugin credentials only).
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin_id: Option<String>,
    /// The credential presented (plugin credentials only).
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_id: Option<String>,
}

/// Tell who the credential belongs to.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "identity",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorEnvelope),
              (status = 403, description = "TENANT_MISMATCH, TENANT_SUSPENDED", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn whoami(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<WhoAmI>, ApiError> {
    Ok(Json(match caller {
        Caller::Admin => WhoAmI {
            kind: "admin",
            tenant: admin_acting_tenant(&state, &headers)
                .await?
                .map(|t| t.slug.to_string()),
            plugin_id: None,
            credential_id: None,
        },
        Caller::Plugin(plugin) => WhoAmI {
            kind: "plugin",
            tenant: Some(plugin.tenant.slug.to_string()),
            plugin_id: Some(plugin.plugin_id.to_string()),
            credential_id: Some(plugin.credential_id.to_string()),
        },
    }))
}
