//! In-process caches for the hot paths (authentication, discovery). They never serve what the
//! store no longer says: every change invalidates them here at once and on other instances
//! through the change feed; while the feed is disconnected they are bypassed; and a load that
//! raced with an invalidation is not stored (generation check).

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use axum::body::Bytes;
use futures::future::Either;
use plexhub_core::credential::SecretCheck;
use plexhub_core::data::{DataKey, Entry, Namespace};
use plexhub_core::ids::{PluginId, ServiceName};
use plexhub_core::installation::InstallationState;
use plexhub_core::manifest::DependencySpec;
use plexhub_core::registry::{Service, ServiceStatus};
use plexhub_core::tenant::{Tenant, TenantId};
use plexhub_store::CredentialRecord;
use plexhub_store::feed::{Change, ChangeFeed, FeedEvent};
use quick_cache::sync::Cache;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::auth::PluginCaller;

/// Entries per cache before the least useful are evicted. Entries have no time limit:
/// correctness comes from invalidation, not from expiry.
const CAPACITY: usize = 100_000;

/// A services-cache key borrowed from a request: hashes as `(TenantId, ServiceName)` does.
#[derive(Hash)]
struct ServiceKey<'a>(TenantId, &'a str);

impl quick_cache::Equivalent<(TenantId, ServiceName)> for ServiceKey<'_> {
    fn equivalent(&self, key: &(TenantId, ServiceName)) -> bool {
        self.0 == key.0 && self.1 == key.1.as_str()
    }
}

/// A tenant's services and their installations' states.
pub type TenantServices = Vec<(Service, InstallationState)>;

/// A registry lookup as cached: the service (or its absence) and its installation's state.
pub type CachedService = Option<(Service, InstallationState)>;

/// A cached registry lookup, with the discovery answer rendered once per status window and the
/// gateway's view of its replicas made once.
pub struct ServiceEntry {
    /// What the store said.
    pub found: CachedService,
    rendered: RwLock<Option<Arc<Rendered>>>,
    replicas: OnceLock<Vec<Arc<Replica>>>,
}

/// A replica as the gateway forwards to it.
pub struct Replica {
    /// Circuit-breaker key: tenant, service and replica id.
    pub key: String,
    /// Base URL without a trailing `/`.
    pub base_url: String,
    /// The registry's ids, to mark the replica DEGRADED while its breaker is open.
    pub service_id: String,
    /// The replica's id.
    pub instance: plexhub_core::registry::InstanceId,
    /// The `Host` header its requests carry (host, and port unless the scheme's default), made
    /// once instead of by the HTTP client on every request.
    pub host: Option<axum::http::HeaderValue>,
    /// Set while the registry has never heard from the replica (UNKNOWN): its first answered
    /// call confirms it, once per cached entry.
    pub unconfirmed: std::sync::atomic::AtomicBool,
    /// For a plain-`http` replica: its kept-alive connections, and the path its base URL puts
    /// before every forwarded path (`https` replicas go through the gateway's TLS client).
    pub plain: Option<(Arc<crate::keepalive::Connections>, String)>,
}

/// A replica's circuit-breaker key: tenant, service and replica id.
pub fn replica_key(
    tenant: TenantId,
    service: &ServiceName,
    instance: &plexhub_core::registry::InstanceId,
) -> String {
    format!("{tenant}/{service}/{instance}")
}

/// The `Host` header for requests to `base_url`, as the HTTP client would write it.
fn host_header(base_url: &str) -> Option<axum::http::HeaderValue> {
    let uri: axum::http::Uri = base_url.parse().ok()?;
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    match uri.port_u16().filter(|port| *port != default_port) {
        Some(port) => axum::http::HeaderValue::try_from(format!("{host}:{port}")).ok(),
        None => axum::http::HeaderValue::from_str(host).ok(),
    }
}

/// The connections and the path prefix of a plain-`http` base URL.
fn plain_http(
    base_url: &str,
    pools: &crate::keepalive::Pools,
) -> Option<(Arc<crate::keepalive::Connections>, String)> {
    let uri: axum::http::Uri = base_url.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    let host = uri.authority()?.host();
    let address = format!("{host}:{}", uri.port_u16().unwrap_or(80));
    let prefix = uri.path().trim_end_matches('/').to_owned();
    Some((pools.for_address(&address), prefix))
}

/// A rendered discovery answer and how long it stays true.
pub struct Rendered {
    /// Exclusive end of validity: the first moment a replica's status may change.
    pub until_ms: i64,
    /// The service status it shows.
    pub status: ServiceStatus,
    /// The JSON body.
    pub body: Bytes,
}

impl ServiceEntry {
    /// The service's replicas as the gateway forwards to them, in the order of its instances
    /// (empty when the service was not found); plain-`http` ones take their connections from
    /// `pools`.
    pub fn replicas(&self, tenant: TenantId, pools: &crate::keepalive::Pools) -> &[Arc<Replica>] {
        self.replicas.get_or_init(|| {
            let Some((service, _)) = &self.found else {
                return Vec::new();
            };
            service
                .instances
                .iter()
                .map(|instance| {
                    let base_url = instance.base_url.as_str().trim_end_matches('/').to_owned();
                    Arc::new(Replica {
                        key: replica_key(tenant, &service.name, &instance.id),
                        host: host_header(&base_url),
                        plain: plain_http(&base_url, pools),
                        unconfirmed: std::sync::atomic::AtomicBool::new(
                            instance.reported == ServiceStatus::Unknown,
                        ),
                        base_url,
                        service_id: service.id.clone(),
                        instance: instance.id.clone(),
                    })
                })
                .collect()
        })
    }

    /// The answer valid at `now_ms`, rendering it with `render` when missing or outdated.
    pub fn rendered(&self, now_ms: i64, render: impl FnOnce() -> Rendered) -> Arc<Rendered> {
        let current = self.rendered.read().map(|r| r.clone()).unwrap_or_default();
        if let Some(rendered) = current.filter(|r| now_ms < r.until_ms) {
            return rendered;
        }
        let fresh = Arc::new(render());
        if let Ok(mut slot) = self.rendered.write() {
            *slot = Some(fresh.clone());
        }
        fresh
    }
}

/// A credential as cached for authentication, with the identity it grants (shared, so that
/// authenticating a request copies nothing).
pub type CachedCredential = Option<(CredentialRecord, Arc<PluginCaller>, SecretCheck)>;

fn bounded<K, V>() -> Cache<K, V>
where
    K: Hash + Eq + Clone,
    V: Clone,
{
    Cache::new(CAPACITY)
}

/// What the gateway needs to know of a calling plugin's installation: its state, its grants
/// and the dependencies its installed version declares (`None`: not installed).
pub type CachedCaller = Option<CallerProfile>;

/// A calling plugin's installation, as the gateway checks it.
#[derive(Debug, Clone)]
pub struct CallerProfile {
    /// Lifecycle state.
    pub state: InstallationState,
    /// Permissions granted at install.
    pub grants: Vec<String>,
    /// `api.dependencies` of the installed version's manifest.
    pub dependencies: Vec<DependencySpec>,
}

/// How requests to one target installation are signed, as cached.
#[derive(Debug)]
pub struct TargetSigning {
    /// The HMAC signer of its active secrets; `None`: Ed25519 with the hub's key.
    pub hmac: Option<plexhub_core::signing::HmacSigner>,
    /// When the oldest secret in its overlap window expires: the entry is reloaded then.
    pub valid_until_ms: i64,
}

/// A shared-data lookup as cached; readers check `expires_at` themselves on every read.
pub type CachedEntry = Option<Entry>;

/// A cached shared-data lookup with its JSON answer, rendered once (an entry is immutable until
/// invalidated, and its expiry is an absolute time).
pub struct DataEntry {
    /// What the store said.
    pub found: CachedEntry,
    body: OnceLock<Bytes>,
}

impl DataEntry {
    /// The rendered answer.
    pub fn body(&self, render: impl FnOnce() -> Bytes) -> Bytes {
        self.body.get_or_init(render).clone()
    }
}

/// The hub's caches.
pub struct HubCache {
    services: Cache<(TenantId, ServiceName), Arc<ServiceEntry>>,
    data: Cache<(TenantId, Namespace, DataKey), Arc<DataEntry>>,
    credentials: Cache<String, Arc<CachedCredential>>,
    callers: Cache<(TenantId, PluginId), Arc<CachedCaller>>,
    signing: Cache<(TenantId, PluginId), Arc<TargetSigning>>,
    tenants: Cache<String, Arc<Tenant>>,
    /// Each tenant's services, as `SERVICE_NOT_FOUND` suggests from them.
    tenant_services: Cache<TenantId, Arc<TenantServices>>,
    generation: AtomicU64,
    /// Moves on every change the gateway's remembered routes may depend on but a registry
    /// change of one service (a route checks its own service's entry instead: heartbeats of
    /// other services leave it alone) and shared-data writes.
    route_generation: AtomicU64,
    feed: ChangeFeed,
    /// Serve shared data from the cache even when several instances share the database.
    cache_shared_data: bool,
}

impl HubCache {
    /// Empty caches that trust themselves only while `feed` is connected; with several
    /// instances, shared data is cached only if `cache_shared_data_when_scaled`.
    pub fn new(feed: ChangeFeed, cache_shared_data_when_scaled: bool) -> Arc<Self> {
        Arc::new(Self {
            services: bounded(),
            data: bounded(),
            credentials: bounded(),
            callers: bounded(),
            signing: bounded(),
            tenants: bounded(),
            tenant_services: bounded(),
            generation: AtomicU64::new(0),
            route_generation: AtomicU64::new(0),
            cache_shared_data: !feed.is_shared() || cache_shared_data_when_scaled,
            feed,
        })
    }

    /// Looks `key` up, or loads it with `load` and remembers the answer.
    async fn get_or_load<K, V, E, F>(
        &self,
        cache: &Cache<K, Arc<V>>,
        key: K,
        load: impl FnOnce() -> F,
    ) -> Result<Arc<V>, E>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        if !self.feed.is_connected() {
            return load().await.map(Arc::new);
        }
        if let Some(hit) = cache.get(&key) {
            return Ok(hit);
        }
        let generation = self.generation.load(Ordering::Acquire);
        let value = Arc::new(load().await?);
        // An invalidation during the load may concern this key: then the value may be stale.
        if generation == self.generation.load(Ordering::Acquire) && self.feed.is_connected() {
            cache.insert(key, value.clone());
        }
        Ok(value)
    }

    /// A registry lookup through the cache.
    pub async fn service<E, F: Future<Output = Result<CachedService, E>>>(
        &self,
        key: (TenantId, ServiceName),
        load: impl FnOnce() -> F,
    ) -> Result<Arc<ServiceEntry>, E> {
        let load = || async {
            Ok(ServiceEntry {
                found: load().await?,
                rendered: RwLock::new(None),
                replicas: OnceLock::new(),
            })
        };
        self.get_or_load(&self.services, key, load).await
    }

    /// A tenant's services through the cache (dropped on any registry change of the tenant).
    pub async fn tenant_services<E, F: Future<Output = Result<TenantServices, E>>>(
        &self,
        tenant: TenantId,
        load: impl FnOnce() -> F,
    ) -> Result<Arc<TenantServices>, E> {
        self.get_or_load(&self.tenant_services, tenant, load).await
    }

    /// Whether `entry` is still the cached lookup of `name` in `tenant` (a registry change of
    /// that service, or of the whole tenant, replaced or dropped it).
    pub fn holds_service(
        &self,
        tenant: TenantId,
        name: &ServiceName,
        entry: &Arc<ServiceEntry>,
    ) -> bool {
        self.services
            .get(&ServiceKey(tenant, name.as_str()))
            .is_some_and(|cached| Arc::ptr_eq(&cached, entry))
    }

    /// A shared-data lookup: through the cache on a single instance, from the database when
    /// several share it.
    pub async fn data<E, F: Future<Output = Result<CachedEntry, E>>>(
        &self,
        key: (TenantId, Namespace, DataKey),
        load: impl FnOnce() -> F,
    ) -> Result<Arc<DataEntry>, E> {
        let load = || async {
            Ok(DataEntry {
                found: load().await?,
                body: OnceLock::new(),
            })
        };
        // With several instances, an entry another one just wrote must be read at once (a
        // write acknowledged there, then read here, is never older): the database answers,
        // not a cache the feed invalidates a moment later (unless the operator chose speed).
        if !self.cache_shared_data {
            return load().await.map(Arc::new);
        }
        self.get_or_load(&self.data, key, load).await
    }

    /// A credential lookup through the cache. A hit is a borrowed lookup (it allocates nothing)
    /// and a ready future; a miss loads out of line (`cold::wait`), as every call authenticates
    /// through here.
    pub fn credential<'a, E, F>(
        &'a self,
        id: &str,
        load: impl FnOnce() -> F + Send + 'a,
    ) -> impl Future<Output = Result<Arc<CachedCredential>, E>> + Send + 'a
    where
        E: Send + 'a,
        F: Future<Output = Result<CachedCredential, E>> + Send + 'a,
    {
        if self.feed.is_connected()
            && let Some(hit) = self.credentials.get(id)
        {
            return Either::Left(std::future::ready(Ok(hit)));
        }
        Either::Right(crate::cold::wait(self.get_or_load(
            &self.credentials,
            id.to_owned(),
            load,
        )))
    }

    /// A calling plugin's installation through the cache (dropped on every tenant-wide change:
    /// installs, lifecycle, uninstalls).
    pub async fn caller<E, F: Future<Output = Result<CachedCaller, E>>>(
        &self,
        key: (TenantId, PluginId),
        load: impl FnOnce() -> F,
    ) -> Result<Arc<CachedCaller>, E> {
        self.get_or_load(&self.callers, key, load).await
    }

    /// How requests to a target installation are signed, through the cache (dropped on every
    /// tenant-wide change, which a rotation is); an entry past its `valid_until_ms` is loaded
    /// again.
    pub async fn signing<E, F: Future<Output = Result<TargetSigning, E>>>(
        &self,
        key: (TenantId, PluginId),
        now_ms: i64,
        load: impl FnOnce() -> F,
    ) -> Result<Arc<TargetSigning>, E> {
        if self.feed.is_connected()
            && let Some(hit) = self.signing.get(&key)
        {
            if now_ms < hit.valid_until_ms {
                return Ok(hit);
            }
            self.signing.remove(&key);
        }
        self.get_or_load(&self.signing, key, load).await
    }

    /// A tenant by slug through the cache (for the admin acting in a tenant). Only found
    /// tenants are remembered, so a tenant created on another hub is seen at once.
    pub async fn tenant<E, F: Future<Output = Result<Option<Tenant>, E>>>(
        &self,
        slug: &str,
        load: impl FnOnce() -> F,
    ) -> Result<Option<Arc<Tenant>>, E> {
        if self.feed.is_connected()
            && let Some(hit) = self.tenants.get(slug)
        {
            return Ok(Some(hit));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(tenant) = load().await? else {
            return Ok(None);
        };
        let tenant = Arc::new(tenant);
        if generation == self.generation.load(Ordering::Acquire) && self.feed.is_connected() {
            self.tenants.insert(slug.to_owned(), tenant.clone());
        }
        Ok(Some(tenant))
    }

    /// Replaces a cached credential (after its `lastUsedAt` moved).
    pub fn refresh_credential(&self, id: &str, value: CachedCredential) {
        if self.credentials.contains_key(id) {
            self.credentials.insert(id.to_owned(), Arc::new(value));
        }
    }

    /// The generation a route decided now is remembered under, and checked against when it is
    /// used again; `None` while the feed is disconnected (nothing may be remembered then).
    pub fn route_generation(&self) -> Option<u64> {
        self.feed
            .is_connected()
            .then(|| self.route_generation.load(Ordering::Acquire))
    }

    /// Drops what `change` makes stale.
    pub fn apply(&self, change: &Change) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if !matches!(
            change,
            Change::Services { .. }
                | Change::Data { .. }
                | Change::Breaker { .. }
                | Change::Events { .. }
        ) {
            self.route_generation.fetch_add(1, Ordering::AcqRel);
        }
        match change {
            Change::Services { tenant, names } => {
                self.tenant_services.remove(tenant);
                for name in names {
                    self.services.remove(&(*tenant, name.clone()));
                }
            }
            // Tenant-wide changes are rare (installs, suspensions): clearing everything is
            // simpler than indexing entries by tenant, and always correct.
            Change::Tenant { .. } => self.clear(),
            Change::Data {
                tenant,
                namespace,
                key,
            } => {
                self.data.remove(&(*tenant, namespace.clone(), key.clone()));
            }
            Change::CredentialRevoked { id } => {
                self.credentials.remove(id);
            }
            // Circuit breakers live in the gateway, not in these caches.
            Change::Breaker { .. } | Change::Events { .. } => {}
        }
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.route_generation.fetch_add(1, Ordering::AcqRel);
        self.services.clear();
        self.data.clear();
        self.credentials.clear();
        self.callers.clear();
        self.signing.clear();
        self.tenants.clear();
        self.tenant_services.clear();
    }

    /// Follows the feed until `shutdown`, invalidating as changes arrive.
    pub async fn follow(self: Arc<Self>, shutdown: CancellationToken) {
        let mut events = self.feed.subscribe();
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(FeedEvent::Change(change)) => self.apply(&change),
                Ok(FeedEvent::Connected | FeedEvent::Disconnected) | Err(RecvError::Lagged(_)) => {
                    self.clear();
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_header;

    #[test]
    fn the_host_header_is_what_the_http_client_would_write() {
        let host = |url| host_header(url).map(|value| value.to_str().expect("ASCII").to_owned());
        assert_eq!(
            host("http://127.0.0.1:8080").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(host("http://crm.internal").as_deref(), Some("crm.internal"));
        assert_eq!(
            host("http://crm.internal:80/base").as_deref(),
            Some("crm.internal")
        );
        assert_eq!(
            host("https://crm.internal:443").as_deref(),
            Some("crm.internal")
        );
        assert_eq!(
            host("https://crm.internal:80").as_deref(),
            Some("crm.internal:80")
        );
        assert_eq!(host("http://[::1]:9000").as_deref(), Some("[::1]:9000"));
    }
}
