//! `GET /api/v1/whoami`: what the presented credential is; `GET /api/v1/self/signing-secrets`:
//! the calling installation's own HMAC signing secrets.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::installations::SigningSecretView;
use crate::auth::{Caller, admin_acting_tenant};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(whoami))
        .routes(routes!(own_signing_secrets))
}

/// The caller's identity.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WhoAmI {
    /// `admin`, `plugin` or `shell`.
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
        Caller::Shell(shell) => WhoAmI {
            kind: "shell",
            tenant: Some(shell.tenant.slug.to_string()),
            plugin_id: None,
            credential_id: Some(shell.credential_id.to_string()),
        },
    }))
}

/// The calling installation's signing secrets.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnSigningSecrets {
    /// How the hub signs what it forwards to this installation: `hmac` or `ed25519`.
    scheme: String,
    /// Secrets that verify `v2` signatures, newest first (the current one, and those still in
    /// their overlap window after a rotation).
    secrets: Vec<SigningSecretView>,
}

/// The HMAC secrets that verify what the hub forwards to the calling installation: readable
/// only with that installation's own credential (the admin gets 403 `FORBIDDEN`).
#[utoipa::path(get, path = "/api/v1/self/signing-secrets", tag = "identity",
    responses((status = 200, body = OwnSigningSecrets),
              (status = 403, description = "FORBIDDEN: not a plugin credential", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn own_signing_secrets(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<OwnSigningSecrets>, ApiError> {
    let Caller::Plugin(plugin) = caller else {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "signing secrets are readable only with the installation's own credential",
        ));
    };
    let (tenant, plugin_id) = (plugin.tenant.id, &plugin.plugin_id);
    // Creates the first secret of an installation from before per-installation secrets.
    let signing = crate::gateway::target_signing(&state, tenant, plugin_id).await?;
    let now = state.clock.now_ms();
    let secrets = state.store.signing_secrets(tenant, plugin_id, now).await?;
    let scheme = if signing.hmac.is_some() {
        "hmac"
    } else {
        "ed25519"
    };
    Ok(Json(OwnSigningSecrets {
        scheme: scheme.to_owned(),
        secrets: secrets.iter().map(SigningSecretView::new).collect(),
    }))
}
