//! `/api/v1/ui/remotes`: the module-federation remotes the tenant's web shell loads, one per
//! ACTIVE installation whose manifest declares a `frontend`; with an `ETag`, and a stream that
//! tells an open shell when the answer changed (activation, deactivation, uninstall) on any
//! hub instance.
//!
//! Readable by the tenant's plugins, by the admin for a tenant (`X-Tenant-Slug`) and by the
//! tenant's read-only shell credentials.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header::{ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use plexhub_core::installation::InstallationState;
use plexhub_core::manifest::{FrontendRoute, MenuEntry, validate_manifest};
use plexhub_core::tenant::Tenant;
use plexhub_store::feed::{Change, FeedEvent};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, admin_acting_tenant};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::state::AppState;

/// How often a remotes stream recomputes without a notification (a missed one only delays).
const POLL: Duration = Duration::from_secs(2);
/// How often a remotes stream sends a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_remotes))
        .routes(routes!(stream_remotes))
}

/// One plugin's UI remote.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteView {
    plugin_id: String,
    /// The installed version.
    version: String,
    /// The federation container's name.
    scope: String,
    /// The remote entry script (https, within the installation's allowed origins).
    remote_entry: String,
    /// Subresource integrity of the entry (`sha384-…`), when the manifest pins it.
    #[serde(skip_serializing_if = "Option::is_none")]
    integrity: Option<String>,
    /// Exposed module → source path.
    exposed_modules: BTreeMap<String, String>,
    /// `{path, module, title?}` in manifest order.
    #[schema(value_type = Vec<Object>)]
    routes: Vec<FrontendRoute>,
    /// `{label, path, icon?, order}` in manifest order.
    #[schema(value_type = Vec<Object>)]
    menu: Vec<MenuEntry>,
}

/// The tenant's remotes, sorted by plugin id, and their `ETag`.
#[derive(Serialize, ToSchema)]
pub struct RemoteList {
    /// The strong `ETag` of this answer (also in the header).
    etag: String,
    remotes: Vec<RemoteView>,
}

/// The tenant whose remotes the caller reads: a plugin's or a shell's own, or the one the
/// admin names with `X-Tenant-Slug`.
async fn reader_tenant(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<Arc<Tenant>, ApiError> {
    match caller {
        Caller::Plugin(plugin) => Ok(plugin.tenant.clone()),
        Caller::Shell(shell) => Ok(shell.tenant.clone()),
        Caller::Admin => admin_acting_tenant(state, headers).await?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::TenantRequired,
                "name the tenant whose remotes to read with the X-Tenant-Slug header",
            )
        }),
    }
}

/// The remotes of the tenant's ACTIVE installations, sorted by plugin id, with their ETag.
async fn remotes(state: &AppState, tenant: &Tenant) -> Result<RemoteList, ApiError> {
    let mut remotes = Vec::new();
    // Installations come ordered by plugin id.
    for installation in state.store.installations(tenant.id).await? {
        if installation.state != InstallationState::Active {
            continue;
        }
        let Some(published) = state
            .store
            .plugin_version(&installation.plugin_id, &installation.version)
            .await?
        else {
            continue;
        };
        // A version published before its `frontend` was validated (an http remote, say) is
        // left out of the shell rather than failing the tenant's whole answer.
        let Ok(manifest) = validate_manifest(&published.manifest) else {
            tracing::warn!(
                plugin = %installation.plugin_id,
                version = %installation.version,
                "a stored manifest no longer validates; its UI remote is not offered to the shell"
            );
            continue;
        };
        let Some(frontend) = manifest.frontend else {
            continue;
        };
        remotes.push(RemoteView {
            plugin_id: installation.plugin_id.to_string(),
            version: installation.version.to_string(),
            scope: frontend.scope,
            remote_entry: frontend.remote_entry,
            integrity: frontend.integrity,
            exposed_modules: frontend.exposed_modules,
            routes: frontend.routes,
            menu: frontend.menu,
        });
    }
    let body = serde_json::to_vec(&remotes)
        .map_err(|error| ApiError::internal(&format!("remotes do not serialize: {error}")))?;
    let digest = Sha256::digest(&body);
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Ok(RemoteList {
        etag: format!("\"{hex}\""),
        remotes,
    })
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

/// The tenant's UI remotes: each ACTIVE installation whose manifest declares a `frontend`,
/// sorted by plugin id, with plugin id, version, remote entry, integrity, exposed modules,
/// routes and menu. Answers 304 to an `If-None-Match` that names the current `ETag`.
#[utoipa::path(get, path = "/api/v1/ui/remotes", tag = "ui",
    responses((status = 200, body = RemoteList, headers(("ETag" = String, description = "strong tag of the answer"))),
              (status = 304, description = "If-None-Match names the current ETag"),
              (status = 400, description = "TENANT_REQUIRED (admin without X-Tenant-Slug)", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_remotes(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = reader_tenant(&state, &caller, &headers).await?;
    let list = remotes(&state, &tenant).await?;
    let etag = HeaderValue::from_str(&list.etag)
        .map_err(|_| ApiError::internal(&"an ETag is a header value"))?;
    if not_modified(&headers, &list.etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(ETAG, etag)]).into_response());
    }
    Ok(([(ETAG, etag)], Json(list)).into_response())
}

/// A remotes stream's state: the tenant, the last answer sent, and its wake-ups.
struct Follower {
    state: AppState,
    tenant: Arc<Tenant>,
    sent: Option<String>,
    feed: tokio::sync::broadcast::Receiver<FeedEvent>,
    poll: tokio::time::Interval,
}

impl Follower {
    /// Whether a feed event may change this tenant's remotes (a lost or reconnected feed may
    /// have hidden one).
    fn concerns(&self, event: &FeedEvent) -> bool {
        match event {
            FeedEvent::Change(Change::Tenant { tenant }) => *tenant == self.tenant.id,
            FeedEvent::Change(_) => false,
            FeedEvent::Connected | FeedEvent::Disconnected => true,
        }
    }

    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if self.sent.is_some() {
                tokio::select! {
                    () = self.state.shutdown.cancelled() => return None,
                    received = self.feed.recv() => match received {
                        Ok(event) if !self.concerns(&event) => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return None,
                    },
                    _ = self.poll.tick() => {}
                }
            }
            let list = match remotes(&self.state, &self.tenant).await {
                Ok(list) => list,
                Err(error) => {
                    tracing::warn!(tenant = %self.tenant.slug, ?error, "cannot compute UI remotes for a stream");
                    // Retried on the next wake-up; a first answer waits for it.
                    self.sent.get_or_insert_with(String::new);
                    continue;
                }
            };
            if self.sent.as_deref() == Some(list.etag.as_str()) {
                continue;
            }
            let Ok(data) = serde_json::to_string(&list) else {
                continue;
            };
            let event = Event::default()
                .id(list.etag.clone())
                .event("remotes")
                .data(data);
            self.sent = Some(list.etag);
            return Some((Ok(event), self));
        }
    }
}

/// Server-Sent Events of the tenant's remotes: `event: remotes` with the whole answer (as
/// `GET /api/v1/ui/remotes`, `id` = its ETag) at once, then each time it changes on any hub
/// instance (an activation, a deactivation, an uninstall), so an open shell never polls.
#[utoipa::path(get, path = "/api/v1/ui/remotes/stream", tag = "ui",
    responses((status = 200, description = "text/event-stream: `event: remotes`, `id` = ETag, `data` = {etag, remotes}"),
              (status = 400, description = "TENANT_REQUIRED (admin without X-Tenant-Slug)", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn stream_remotes(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let tenant = reader_tenant(&state, &caller, &headers).await?;
    // Subscribed before the first answer is computed, so no change in between is missed.
    let feed = state.feed.subscribe();
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let follower = Follower {
        state,
        tenant,
        sent: None,
        feed,
        poll,
    };
    Ok(Sse::new(futures::stream::unfold(follower, Follower::next))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}
