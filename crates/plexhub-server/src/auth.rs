//! Authentication of every `/api` request, before anything else looks at it.
//!
//! The bearer credential decides who calls: the admin token, a plugin credential that fixes
//! tenant and plugin, or a tenant's read-only shell credential (its web shell reads the
//! plugins' UI remotes with it, and nothing else). `X-Tenant-Slug` never chooses a tenant for
//! a plugin or a shell; it must agree.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use axum::middleware::Next;
use axum::response::Response;
use plexhub_core::credential::{CredentialId, PresentedCredential, SecretCheck, tokens_match};
use plexhub_core::ids::PluginId;
use plexhub_core::tenant::{Tenant, TenantSlug, TenantStatus};
use plexhub_store::StoreError;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// Header through which seed-era clients name their tenant (parsed once: a lookup by `&str`
/// parses the name on every call).
pub const TENANT_HEADER: HeaderName = HeaderName::from_static("x-tenant-slug");

/// `lastUsedAt` is refreshed at most this often, so authentication rarely writes.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// Who is calling, established by [`authenticate`].
#[derive(Debug, Clone)]
pub enum Caller {
    /// The operator.
    Admin,
    /// An installed plugin acting within its tenant.
    Plugin(Arc<PluginCaller>),
    /// A tenant's web shell (read-only: its plugins' UI remotes).
    Shell(Arc<ShellCaller>),
}

/// A shell credential's identity.
#[derive(Debug, Clone)]
pub struct ShellCaller {
    /// The tenant whose shell it is.
    pub tenant: Arc<Tenant>,
    /// The credential used.
    pub credential_id: CredentialId,
}

/// The only paths a shell credential may use (everything else is 403 `FORBIDDEN`).
const SHELL_PATHS: [&str; 3] = [
    "/api/v1/ui/remotes",
    "/api/v1/ui/remotes/stream",
    "/api/v1/whoami",
];

#[cold]
#[inline(never)]
fn shell_forbidden() -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        "a shell credential only reads the tenant's UI remotes (/api/v1/ui/remotes)",
    )
}

/// A plugin credential's identity.
#[derive(Debug, Clone)]
pub struct PluginCaller {
    /// The tenant the credential belongs to.
    pub tenant: Arc<Tenant>,
    /// The plugin the credential belongs to.
    pub plugin_id: PluginId,
    /// The credential used.
    pub credential_id: CredentialId,
}

#[cold]
#[inline(never)]
fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, message)
}

fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthenticated("missing Authorization: Bearer <token> header"))?;
    let text = value
        .to_str()
        .map_err(|_| unauthenticated("malformed Authorization header"))?;
    let (scheme, token) = plexhub_core::text::split_once_ascii(text, b' ')
        .ok_or_else(|| unauthenticated("expected Authorization: Bearer <token>"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(unauthenticated("expected Authorization: Bearer <token>"));
    }
    Ok(token.trim())
}

/// The `X-Tenant-Slug` header, if present. An unreadable value is treated as a slug that
/// matches nothing.
pub fn tenant_header(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(TENANT_HEADER)
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
}

/// Who the request's bearer credential says is calling (401/403 otherwise).
pub(crate) async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = bearer_token(headers)?;
    // A shell's wait is out of line (`cold::wait`), like a credential's load in the cache:
    // every call runs through this function's code.
    if let Some(presented) = PresentedCredential::parse_shell(token) {
        return crate::cold::wait(identify_shell(state, headers, presented)).await;
    }
    let Some(presented) = PresentedCredential::parse(token) else {
        return if tokens_match(token, state.admin_token.expose()) {
            Ok(Caller::Admin)
        } else {
            Err(unauthenticated("unknown credential"))
        };
    };
    let id = &presented.id;
    let cached = state
        .cache
        .credential(id.as_str(), || async move {
            let found = state.store.credential_with_tenant(id).await?;
            Ok::<_, StoreError>(found.map(|(record, tenant)| {
                let caller = Arc::new(PluginCaller {
                    tenant: Arc::new(tenant),
                    plugin_id: record.plugin_id.clone(),
                    credential_id: record.id,
                });
                let check = SecretCheck::new(record.hash.clone());
                (record, caller, check)
            }))
        })
        .await?;
    let Some((credential, caller, check)) = cached
        .as_ref()
        .as_ref()
        .filter(|(_, _, check)| check.matches(presented.secret))
    else {
        return Err(unauthenticated("unknown or revoked credential"));
    };
    let tenant = &caller.tenant;
    if tenant.status == TenantStatus::Suspended {
        return Err(suspended(tenant));
    }
    check_claimed_tenant(headers, tenant)?;
    let now = state.clock.now_ms();
    if credential
        .last_used_at_ms
        .is_none_or(|last| now - last >= LAST_USED_GRANULARITY_MS)
    {
        state.store.touch_credential(&credential.id, now).await?;
        let mut touched = credential.clone();
        touched.last_used_at_ms = Some(now);
        state.cache.refresh_credential(
            credential.id.as_str(),
            Some((touched, caller.clone(), check.clone())),
        );
    }
    Ok(Caller::Plugin(caller.clone()))
}

/// 403 `TENANT_SUSPENDED`.
#[cold]
#[inline(never)]
fn suspended(tenant: &Tenant) -> ApiError {
    ApiError::new(
        ErrorCode::TenantSuspended,
        format!("tenant \"{}\" is suspended", tenant.slug),
    )
}

/// 403 `TENANT_MISMATCH` when `X-Tenant-Slug` names another tenant than the credential's.
fn check_claimed_tenant(headers: &HeaderMap, tenant: &Tenant) -> Result<(), ApiError> {
    match tenant_header(headers) {
        Some(claimed) if claimed != tenant.slug.as_str() => Err(tenant_mismatch(claimed, tenant)),
        _ => Ok(()),
    }
}

/// 403 `TENANT_MISMATCH`.
#[cold]
#[inline(never)]
fn tenant_mismatch(claimed: &str, tenant: &Tenant) -> ApiError {
    ApiError::new(
        ErrorCode::TenantMismatch,
        format!(
            "X-Tenant-Slug \"{claimed}\" does not match the credential's tenant \"{}\"",
            tenant.slug
        ),
    )
}

/// A shell credential's caller. Looked up in the database on every use: a shell makes a
/// request per page load and keeps one stream open, so there is no hot path to cache for, and
/// revocation takes effect at once on every hub.
async fn identify_shell(
    state: &AppState,
    headers: &HeaderMap,
    presented: PresentedCredential<'_>,
) -> Result<Caller, ApiError> {
    let found = state
        .store
        .shell_credential_with_tenant(&presented.id)
        .await?;
    let Some((credential, tenant)) = found.filter(|(c, _)| c.hash.matches(presented.secret)) else {
        return Err(unauthenticated("unknown or revoked credential"));
    };
    if tenant.status == TenantStatus::Suspended {
        return Err(suspended(&tenant));
    }
    check_claimed_tenant(headers, &tenant)?;
    Ok(Caller::Shell(Arc::new(ShellCaller {
        tenant: Arc::new(tenant),
        credential_id: credential.id,
    })))
}

/// Every path under this prefix needs a credential.
const AUTHENTICATED_PREFIX: &str = "/api/";

/// Middleware around the router: rejects unauthenticated requests to any `/api/` path (known
/// route or not) and records the caller; other paths (health, metrics, docs) pass.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !request.uri().path().starts_with(AUTHENTICATED_PREFIX) {
        return Ok(next.run(request).await);
    }
    let caller = identify(&state, request.headers()).await?;
    if matches!(caller, Caller::Shell(_)) && !SHELL_PATHS.contains(&request.uri().path()) {
        return Err(shell_forbidden());
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| unauthenticated("not authenticated"))
    }
}

/// Extractor for admin-only routes: a plugin credential gets 403 `FORBIDDEN`.
pub struct Admin;

impl<S: Send + Sync> FromRequestParts<S> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Admin => Ok(Admin),
            Caller::Plugin(_) | Caller::Shell(_) => Err(ApiError::new(
                ErrorCode::Forbidden,
                "this route needs the admin token",
            )),
        }
    }
}

/// The tenant an admin acts for through `X-Tenant-Slug`, if the header is sent.
/// An unknown slug is 404 `TENANT_NOT_FOUND`.
pub async fn admin_acting_tenant(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Arc<Tenant>>, ApiError> {
    let Some(claimed) = tenant_header(headers) else {
        return Ok(None);
    };
    let not_found = || {
        ApiError::new(
            ErrorCode::TenantNotFound,
            format!("tenant \"{claimed}\" not found"),
        )
    };
    let slug = TenantSlug::parse(claimed).map_err(|_| not_found())?;
    let tenant = state
        .cache
        .tenant(claimed, || state.store.tenant_by_slug(&slug))
        .await?;
    tenant.map(Some).ok_or_else(not_found)
}

/// The tenant a tenant-scoped request acts in: a plugin credential's own tenant, or for the admin
/// the one named by `X-Tenant-Slug` (400 `TENANT_REQUIRED` without it, 404 `TENANT_NOT_FOUND`
/// for an unknown slug).
pub struct TenantScope {
    /// The tenant.
    pub tenant: Arc<Tenant>,
    /// Who acts in it.
    pub caller: Caller,
}

impl TenantScope {
    /// The calling plugin, or `None` for the admin.
    pub fn calling_plugin(&self) -> Option<&PluginId> {
        match &self.caller {
            Caller::Admin | Caller::Shell(_) => None,
            Caller::Plugin(plugin) => Some(&plugin.plugin_id),
        }
    }

    /// Refuses a plugin acting for another plugin (403 `PLUGIN_NOT_CALLER`); the admin may act
    /// for any plugin of the tenant.
    pub fn ensure_acts_for(&self, plugin_id: &PluginId) -> Result<(), ApiError> {
        match self.calling_plugin() {
            Some(caller) if caller != plugin_id => Err(ApiError::new(
                ErrorCode::PluginNotCaller,
                format!(
                    "{caller} cannot act for {plugin_id}: a plugin manages only its own services"
                ),
            )),
            _ => Ok(()),
        }
    }
}

impl TenantScope {
    /// The scope of `caller`, whose request carries `headers`.
    pub async fn of(
        state: &AppState,
        caller: Caller,
        headers: &HeaderMap,
    ) -> Result<Self, ApiError> {
        let tenant = match &caller {
            Caller::Plugin(plugin) => plugin.tenant.clone(),
            // A shell acts nowhere: it only reads the remotes of its own tenant.
            Caller::Shell(_) => return Err(shell_forbidden()),
            Caller::Admin => admin_acting_tenant(state, headers).await?.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::TenantRequired,
                    "name the tenant to act for with the X-Tenant-Slug header",
                )
            })?,
        };
        Ok(Self { tenant, caller })
    }
}

impl FromRequestParts<AppState> for TenantScope {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Self::of(state, caller, &parts.headers).await
    }
}
