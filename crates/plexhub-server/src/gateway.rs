//! The gateway: resolves a plugin-to-plugin call (in-process state only: the caches kept fresh
//! by the change feed), decides access with `plexhub_core::access`, and forwards the request
//! to a replica with both bodies streamed, dropping what must not cross and adding who calls.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, Request, Response, StatusCode, Uri};
use futures::FutureExt as _;
use futures::future::Either;
use http_body_util::{BodyExt as _, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use plexhub_core::access::{
    AccessRequest, CallerInstallation, Decision, Denial, Target, decide, explain,
};
use plexhub_core::ids::{PluginId, ServiceName};
use plexhub_core::installation::InstallationState;
use plexhub_core::manifest::{HttpMethod, validate_manifest};
use plexhub_core::registry::ServiceStatus;
use plexhub_core::signing::{
    HmacSigner, HubKey, MAX_USER_CONTEXT_LEN, PublicKey, SIGNATURE_HEADER, SignedRequest,
    SigningScheme, SigningSecret, USER_ID_HEADER, WORKSPACE_ID_HEADER, valid_user_context,
};
use plexhub_core::tenant::Tenant;
use plexhub_store::feed::Change;
use serde_json::json;

use crate::cache::{CachedCaller, CallerProfile, Replica, ServiceEntry, TargetSigning};
use crate::caller_body::{BodyFault, FaultCell, WatchedBody};
use crate::error::{ApiError, ErrorCode};
use crate::metrics::HOT_METHODS;
use crate::request_id::REQUEST_ID_HEADER;
use crate::resilience::{Breaker, Breakers, FAILURES_TO_OPEN, RetryBudget, Transition};
use crate::settings::GatewaySettings;
use crate::state::AppState;

/// The connector to plugins: plain TCP for `http` base URLs, rustls for `https` ones.
pub type UpstreamConnector = HttpsConnector<HttpConnector>;

/// The pooled HTTP client (keep-alive, no redirects followed) and the forwarding limits.
pub struct Gateway {
    client: Client<UpstreamConnector, Body>,
    settings: GatewaySettings,
    /// The first signs; all are published.
    keys: Vec<HubKey>,
    /// Round-robin position over a service's best replicas.
    next: AtomicUsize,
    /// A circuit breaker per replica.
    breakers: Breakers,
    /// Retries allowed as a share of calls.
    budget: RetryBudget,
    /// Rate-limit buckets of this hub (used alone without Redis).
    pub local_buckets: crate::quota::LocalBuckets,
    /// Allowed routes, decided once (see [`Route`]).
    routes: quick_cache::sync::Cache<RouteKey, Arc<Route>>,
    /// Kept-alive connections to plain-`http` replicas, by address.
    pools: crate::keepalive::Pools,
}

impl Gateway {
    /// Until when (epoch ms) this hub's circuit breaker for a replica (its
    /// [`crate::cache::replica_key`]) is open; `None` while closed.
    pub fn circuit_open_until_ms(&self, replica: &str) -> Option<i64> {
        self.breakers.open_until_ms(replica)
    }

    /// A gateway with its own connection pool; `tls` for plugins served over https.
    pub fn new(settings: GatewaySettings, keys: Vec<HubKey>, tls: rustls::ClientConfig) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(settings.connect_timeout));
        tcp.set_nodelay(true);
        // https URLs pass the TCP connector to be wrapped in TLS.
        tcp.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Self {
            client,
            settings,
            keys,
            next: AtomicUsize::new(0),
            breakers: Breakers::new(),
            budget: RetryBudget::new(),
            local_buckets: crate::quota::LocalBuckets::default(),
            routes: quick_cache::sync::Cache::new(REMEMBERED_ROUTES),
            pools: crate::keepalive::Pools::default(),
        }
    }

    /// The published verification keys.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        self.keys.iter().map(HubKey::public).collect()
    }

    /// The pooled HTTP client (also used to deliver events).
    pub fn client(&self) -> &Client<UpstreamConnector, Body> {
        &self.client
    }

    /// The signature header for `request` to a target signed as `signing` says (its HMAC
    /// secrets, or the hub's first Ed25519 key), unless signing is off.
    pub fn sign(
        &self,
        signing: &TargetSigning,
        request: &SignedRequest<'_>,
        now_ms: i64,
    ) -> Option<HeaderValue> {
        if !self.settings.sign_requests {
            return None;
        }
        let header = match &signing.hmac {
            Some(signer) => signer.sign(request, now_ms),
            None => self.keys.first()?.sign(request, now_ms),
        };
        HeaderValue::try_from(header).ok()
    }

    /// The limits and timeouts.
    pub fn settings(&self) -> &GatewaySettings {
        &self.settings
    }
}

/// Who calls, in which tenant.
pub struct CallContext<'a> {
    /// The tenant.
    pub tenant: &'a Tenant,
    /// The calling plugin.
    pub caller: &'a PluginId,
}

/// How requests to `target` in `tenant` are signed (cached until a rotation or the end of an
/// overlap window). An installation from before per-installation secrets gets its first secret
/// here.
pub async fn target_signing(
    state: &AppState,
    tenant_id: plexhub_core::tenant::TenantId,
    target: &PluginId,
) -> Result<Arc<TargetSigning>, ApiError> {
    let now_ms = state.clock.now_ms();
    state
        .cache
        .signing((tenant_id, target.clone()), now_ms, || async move {
            let chosen = state.store.installation(tenant_id, target).await?;
            let scheme = chosen
                .and_then(|installation| installation.signing)
                .unwrap_or(state.gateway.settings.signing_scheme);
            if scheme == SigningScheme::Ed25519 {
                return Ok(TargetSigning {
                    hmac: None,
                    valid_until_ms: i64::MAX,
                });
            }
            let mut secrets = state
                .store
                .signing_secrets(tenant_id, target, now_ms)
                .await?;
            if secrets.is_empty() {
                let first = SigningSecret::generate();
                state
                    .store
                    .ensure_signing_secret(tenant_id, target, &first, now_ms)
                    .await?;
                secrets = state
                    .store
                    .signing_secrets(tenant_id, target, now_ms)
                    .await?;
            }
            let valid_until_ms = secrets
                .iter()
                .filter_map(|stored| stored.expires_at_ms)
                .min()
                .unwrap_or(i64::MAX);
            let secrets: Vec<SigningSecret> =
                secrets.into_iter().map(|stored| stored.secret).collect();
            Ok::<_, ApiError>(TargetSigning {
                hmac: HmacSigner::new(&secrets),
                valid_until_ms,
            })
        })
        .await
}

/// A call the gateway allowed: its route and this call's turn in the round robin.
pub struct Authorized {
    route: Arc<Route>,
    /// Where this call starts among the replicas of the best status.
    turn: usize,
}

/// What every allowed call of one route (tenant, caller, service, named target, method and
/// path) shares: decided once, remembered until a change the decision depends on (a registry
/// change of its service replaces the service's cache entry; an installation, grant, credential
/// or tenant change moves the cache's route generation) or the first moment a replica's status
/// or the signing secrets may change.
pub struct Route {
    /// Discoverable replicas, best status first.
    replicas: Vec<Arc<Replica>>,
    /// How many lead with the best status (the round robin runs among them).
    best: usize,
    /// The tenant and service, to announce registry changes.
    tenant: plexhub_core::tenant::TenantId,
    service: ServiceName,
    /// Time allowed for the status and headers.
    timeout: Duration,
    /// The plugin that owns the service.
    target_plugin: PluginId,
    /// How the request is signed for the target installation.
    signing: Arc<TargetSigning>,
    /// The cache's route generation it was decided under (`None`: not to be remembered).
    generation: Option<u64>,
    /// The registry lookup it was decided from: a change of the service replaces it.
    service_entry: Arc<ServiceEntry>,
    /// Exclusive end of its validity (epoch ms).
    valid_until_ms: i64,
    /// The headers naming the tenant and the caller, made once for every call of the route.
    identity: IdentityHeaders,
    /// The names its calls are audited with, made once for every call of the route.
    audited: AuditedNames,
}

/// The names an allowed call's audit record carries, shared by every call of a route (a clone
/// is a reference count, not a copy).
struct AuditedNames {
    caller: Arc<str>,
    target: Arc<str>,
    service: Arc<str>,
    /// The matched endpoint template (`GET /contacts/:id`), also for metrics.
    endpoint: Arc<str>,
}

/// The values of the headers that tell a plugin who calls: validated and copied once per route,
/// then shared by every forwarded request (a clone is a reference count).
struct IdentityHeaders {
    tenant_id: Option<HeaderValue>,
    tenant_slug: Option<HeaderValue>,
    caller: Option<HeaderValue>,
}

impl IdentityHeaders {
    fn of(call: &CallContext<'_>) -> Self {
        let mut tenant_id = [0; 36];
        Self {
            tenant_id: HeaderValue::from_str(call.tenant.id.encode(&mut tenant_id)).ok(),
            tenant_slug: HeaderValue::from_str(call.tenant.slug.as_str()).ok(),
            caller: HeaderValue::from_str(call.caller.as_str()).ok(),
        }
    }
}

impl Authorized {
    /// Time allowed for the status and headers.
    pub fn timeout(&self) -> Duration {
        self.route.timeout
    }

    /// The plugin that owns the service.
    pub fn target_plugin(&self) -> &PluginId {
        &self.route.target_plugin
    }

    /// The matched endpoint template (`GET /contacts/:id`).
    pub fn endpoint(&self) -> &str {
        &self.route.audited.endpoint
    }

    /// How many replicas the call may try.
    fn replica_count(&self) -> usize {
        self.route.replicas.len()
    }

    /// The replica at `index` in this call's order: the best ones rotated by its turn, then
    /// the others.
    fn replica(&self, index: usize) -> &Arc<Replica> {
        let best = self.route.best;
        let index = if index < best {
            (index + self.turn) % best
        } else {
            index
        };
        &self.route.replicas[index]
    }
}

/// What a remembered route is found by.
#[derive(PartialEq, Eq, Hash)]
struct RouteKey {
    tenant: plexhub_core::tenant::TenantId,
    caller: PluginId,
    service: ServiceName,
    expected: Option<PluginId>,
    method: HttpMethod,
    path: String,
}

/// [`RouteKey`] borrowed from a request, to look a route up without copying; it hashes as the
/// key does (same fields, same order, `str` for each string).
#[derive(Hash)]
struct RouteLookup<'a> {
    tenant: plexhub_core::tenant::TenantId,
    caller: &'a str,
    service: &'a str,
    expected: Option<&'a str>,
    method: HttpMethod,
    path: &'a str,
}

impl quick_cache::Equivalent<RouteKey> for RouteLookup<'_> {
    fn equivalent(&self, key: &RouteKey) -> bool {
        self.tenant == key.tenant
            && self.method == key.method
            && self.path == key.path
            && self.service == key.service.as_str()
            && self.caller == key.caller.as_str()
            && self.expected == key.expected.as_ref().map(PluginId::as_str)
    }
}

impl RouteLookup<'_> {
    fn to_key(
        &self,
        call: &CallContext<'_>,
        service: &ServiceName,
        expected: Option<&PluginId>,
    ) -> RouteKey {
        RouteKey {
            tenant: self.tenant,
            caller: call.caller.clone(),
            service: service.clone(),
            expected: expected.cloned(),
            method: self.method,
            path: self.path.to_owned(),
        }
    }
}

/// Routes remembered at most (the least used are evicted first).
const REMEMBERED_ROUTES: usize = 10_000;

/// The calling plugin's installation state, grants and manifest dependencies (cached).
pub(crate) async fn caller_profile(
    state: &AppState,
    tenant: &Tenant,
    caller: &PluginId,
) -> Result<Arc<CachedCaller>, ApiError> {
    let key = (tenant.id, caller.clone());
    state
        .cache
        .caller(key, || async {
            let Some(installation) = state.store.installation(tenant.id, caller).await? else {
                return Ok(None);
            };
            let published = state
                .store
                .plugin_version(caller, &installation.version)
                .await?
                .ok_or_else(|| ApiError::internal(&"an installed catalog version vanished"))?;
            let manifest = validate_manifest(&published.manifest)
                .map_err(|_| ApiError::internal(&"a stored manifest no longer validates"))?;
            Ok::<_, ApiError>(Some(CallerProfile {
                state: installation.state,
                grants: installation.grants,
                dependencies: manifest.dependencies,
            }))
        })
        .await
}

async fn service_entry(
    state: &AppState,
    tenant: &Tenant,
    name: &ServiceName,
) -> Result<Arc<ServiceEntry>, ApiError> {
    let tenant_id = tenant.id;
    Ok(state
        .cache
        .service((tenant_id, name.clone()), || async move {
            state.store.service_by_name(tenant_id, name).await
        })
        .await?)
}

/// Everything a decision needs, loaded from the caches.
struct Loaded {
    caller: Arc<CachedCaller>,
    service: Arc<ServiceEntry>,
    now_ms: i64,
}

impl Loaded {
    async fn new(
        state: &AppState,
        call: &CallContext<'_>,
        service: &ServiceName,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            caller: caller_profile(state, call.tenant, call.caller).await?,
            service: service_entry(state, call.tenant, service).await?,
            now_ms: state.clock.now_ms(),
        })
    }

    fn request<'a>(
        &'a self,
        state: &AppState,
        call: &'a CallContext<'a>,
        service_name: &'a ServiceName,
        expected_plugin: Option<&'a PluginId>,
        method: HttpMethod,
        path: &'a str,
    ) -> Result<AccessRequest<'a>, ApiError> {
        let Some(profile) = self.caller.as_ref() else {
            return Err(ApiError::new(
                ErrorCode::CallerNotActive,
                format!(
                    "{} is not installed for tenant \"{}\"",
                    call.caller, call.tenant.slug
                ),
            ));
        };
        // A service of a plugin that is not ACTIVE is not discoverable.
        let target = self
            .service
            .found
            .as_ref()
            .filter(|(_, installation)| *installation == InstallationState::Active)
            .map(|(service, _)| Target {
                plugin_id: &service.plugin_id,
                endpoints: &service.endpoints,
                available: service.status(&state.health, self.now_ms).is_discoverable(),
            });
        Ok(AccessRequest {
            caller: CallerInstallation {
                plugin_id: call.caller,
                state: profile.state,
                dependencies: &profile.dependencies,
                grants: &profile.grants,
            },
            service_name,
            target,
            expected_plugin,
            method,
            path,
        })
    }
}

/// The method as manifests spell it; others match no endpoint.
fn manifest_method(method: &Method) -> Option<HttpMethod> {
    HttpMethod::parse(method.as_str())
}

/// The error a denied call gets (the same for a refused call and for the explain route); an
/// unknown service is answered with what the caller (`profile`) could have meant.
async fn denial_error(
    state: &AppState,
    denial: &Denial,
    service: &ServiceName,
    call: &CallContext<'_>,
    profile: Option<&CallerProfile>,
) -> ApiError {
    let caller = call.caller;
    match denial {
        Denial::ServiceNotFound => service_not_found(state, call, service, profile).await,
        Denial::PluginMismatch => ApiError::new(
            ErrorCode::PluginMismatch,
            format!("{service} does not belong to the plugin named as its target"),
        ),
        Denial::CallerNotActive => ApiError::new(
            ErrorCode::CallerNotActive,
            format!("{caller} is not ACTIVE in this tenant: activate it to call other plugins"),
        ),
        Denial::AccessDenied => ApiError::new(
            ErrorCode::AccessDenied,
            format!(
                "{caller} does not declare a dependency on the plugin that owns {service} (or on {service}): add it to api.dependencies"
            ),
        ),
        Denial::EndpointNotFound {
            available_endpoints,
        } => ApiError::new(
            ErrorCode::EndpointNotFound,
            format!("no endpoint of {service} matches this method and path"),
        )
        .with_details(json!({ "availableEndpoints": available_endpoints })),
        Denial::PermissionDenied { missing } => ApiError::new(
            ErrorCode::PermissionDenied,
            format!(
                "{caller} lacks {} for this endpoint: grant it with `plexhub installation grants add {caller} --tenant {} {}`",
                missing.join(", "),
                call.tenant.slug,
                missing.join(" ")
            ),
        )
        .with_details(json!({ "missing": missing })),
        Denial::ServiceUnavailable => ApiError::new(
            ErrorCode::ServiceUnavailable,
            format!("{service} has no HEALTHY, UNKNOWN or DEGRADED replica"),
        ),
    }
}

/// `SERVICE_NOT_FOUND` with what the caller could have meant: the services of the tenant it
/// may call (those of the plugins its manifest depends on, ACTIVE), and the closest name among
/// them when one is close.
async fn service_not_found(
    state: &AppState,
    call: &CallContext<'_>,
    service_name: &ServiceName,
    caller: Option<&CallerProfile>,
) -> ApiError {
    let error = crate::registry::service_not_found(service_name);
    let Some(caller) = caller else {
        return error;
    };
    // Through the cache: a caller repeating unknown names does not read the registry each time.
    let tenant = call.tenant.id;
    let services = state
        .cache
        .tenant_services(tenant, || state.store.services(tenant))
        .await;
    let Ok(services) = services else {
        return error;
    };
    let callable: Vec<&str> = services
        .iter()
        .filter(|(service, installation)| {
            *installation == InstallationState::Active
                && caller.dependencies.iter().any(|dependency| {
                    dependency.plugin_id == service.plugin_id
                        && dependency
                            .service_name
                            .as_ref()
                            .is_none_or(|name| *name == service.name)
                })
        })
        .map(|(service, _)| service.name.as_str())
        .collect();
    let closest = callable
        .iter()
        .map(|name| (strsim::levenshtein(name, service_name.as_str()), *name))
        .filter(|(distance, _)| *distance <= 3)
        .min()
        .map(|(_, name)| name);
    let message = match closest {
        Some(name) => format!("Service not found: {service_name} (did you mean {name}?)"),
        None if callable.is_empty() => format!(
            "Service not found: {service_name} ({} may call no service in this tenant: add a dependency to its manifest's api.dependencies)",
            call.caller
        ),
        None => format!(
            "Service not found: {service_name} ({} may call {})",
            call.caller,
            callable.join(", ")
        ),
    };
    ApiError::new(ErrorCode::ServiceNotFound, message).with_details(json!({
        "serviceName": service_name.as_str(),
        "didYouMean": closest,
        "callable": callable,
    }))
}

/// Decides a call (a route decided before and still valid is not decided again) and admits it
/// under the rate limits; an allowed call gets its turn in the round robin over the best
/// replicas.
pub async fn authorize(
    state: &AppState,
    call: &CallContext<'_>,
    service_name: &ServiceName,
    expected_plugin: Option<&PluginId>,
    method: &Method,
    path: &str,
) -> Result<Authorized, ApiError> {
    let Some(manifest_method) = manifest_method(method) else {
        let denial = Denial::EndpointNotFound {
            available_endpoints: Vec::new(),
        };
        return Err(
            crate::cold::wait(denial_error(state, &denial, service_name, call, None)).await,
        );
    };
    let lookup = RouteLookup {
        tenant: call.tenant.id,
        caller: call.caller.as_str(),
        service: service_name.as_str(),
        expected: expected_plugin.map(PluginId::as_str),
        method: manifest_method,
        path,
    };
    let now_ms = state.clock.now_ms();
    let generation = state.cache.route_generation();
    let remembered = state.gateway.routes.get(&lookup).filter(|route| {
        route.generation.is_some()
            && route.generation == generation
            && now_ms < route.valid_until_ms
            && state
                .cache
                .holds_service(call.tenant.id, service_name, &route.service_entry)
    });
    let route = match remembered {
        Some(route) => route,
        // Boxed, like every wait off the remembered path: an async call's future is as large
        // as its largest wait, and each call's future is allocated and copied whole; and out
        // of line (`cold::wait`), so its code is not in the common path's.
        None => {
            let route = Arc::new(
                crate::cold::wait(decide_route(
                    state,
                    call,
                    service_name,
                    expected_plugin,
                    manifest_method,
                    path,
                    generation,
                ))
                .await?,
            );
            if route.generation.is_some() && route.generation == state.cache.route_generation() {
                state.gateway.routes.insert(
                    lookup.to_key(call, service_name, expected_plugin),
                    route.clone(),
                );
            }
            route
        }
    };
    crate::quota::admit(state, call.tenant, call.caller).await?;
    let turn = if route.best > 1 {
        state.gateway.next.fetch_add(1, Ordering::Relaxed) % route.best
    } else {
        0
    };
    Ok(Authorized { route, turn })
}

/// Decides a call from the caches: access, the replicas ranked by status, the timeout and the
/// signing; `generation` is the route generation read before anything was loaded.
async fn decide_route(
    state: &AppState,
    call: &CallContext<'_>,
    service_name: &ServiceName,
    expected_plugin: Option<&PluginId>,
    method: HttpMethod,
    path: &str,
    generation: Option<u64>,
) -> Result<Route, ApiError> {
    let loaded = Loaded::new(state, call, service_name).await?;
    let request = loaded.request(state, call, service_name, expected_plugin, method, path)?;
    let decision: Decision<'_> = decide(&request);
    if let Some(denial) = &decision.denial {
        if matches!(denial, Denial::PluginMismatch)
            && let (Some((service, _)), Some(requested)) = (&loaded.service.found, expected_plugin)
        {
            return Err(ApiError::new(
                ErrorCode::PluginMismatch,
                format!(
                    "Service {service_name} belongs to {}, not {requested}",
                    service.plugin_id
                ),
            )
            .with_details(json!({
                "serviceName": service_name.as_str(),
                "owner": service.plugin_id.as_str(),
                "requested": requested.as_str(),
            })));
        }
        let profile = loaded.caller.as_ref().as_ref();
        return Err(denial_error(state, denial, service_name, call, profile).await);
    }
    let (Some((service, _)), Some(endpoint)) = (&loaded.service.found, decision.endpoint) else {
        return Err(ApiError::internal(&"an allowed call without its service"));
    };
    let status_of = |instance: &plexhub_core::registry::Instance| {
        state
            .health
            .status(instance.reported, instance.last_seen_ms, loaded.now_ms)
    };
    let mut ranked: Vec<(ServiceStatus, usize)> = service
        .instances
        .iter()
        .enumerate()
        .map(|(index, instance)| (status_of(instance), index))
        .filter(|(status, _)| status.is_discoverable())
        .collect();
    ranked.sort_by_key(|(status, _)| *status);
    let best_status = ranked.first().map(|(status, _)| *status);
    let best = ranked
        .iter()
        .filter(|(status, _)| Some(*status) == best_status)
        .count();
    let targets = loaded
        .service
        .replicas(call.tenant.id, &state.gateway.pools);
    let replicas = ranked
        .into_iter()
        .map(|(_, index)| targets[index].clone())
        .collect();
    let signing = target_signing(state, call.tenant.id, &service.plugin_id).await?;
    let timeout = endpoint
        .metadata
        .get("timeoutMs")
        .and_then(serde_json::Value::as_u64)
        .map_or(
            state.gateway.settings.request_timeout,
            Duration::from_millis,
        );
    Ok(Route {
        replicas,
        best,
        tenant: call.tenant.id,
        service: service.name.clone(),
        timeout,
        target_plugin: service.plugin_id.clone(),
        valid_until_ms: service
            .status_stable_until(&state.health, loaded.now_ms)
            .min(signing.valid_until_ms),
        signing,
        generation,
        service_entry: loaded.service.clone(),
        identity: IdentityHeaders::of(call),
        audited: AuditedNames {
            caller: call.caller.as_str().into(),
            target: service.plugin_id.as_str().into(),
            service: service.name.as_str().into(),
            endpoint: plexhub_core::access::describe_endpoint(endpoint).into(),
        },
    })
}

/// The decision with every check written out (the explain route).
pub async fn explain_call(
    state: &AppState,
    call: &CallContext<'_>,
    service_name: &ServiceName,
    method: &Method,
    path: &str,
) -> Result<serde_json::Value, ApiError> {
    let loaded = Loaded::new(state, call, service_name).await?;
    let Some(method) = manifest_method(method) else {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "method must be GET, POST, PUT, PATCH or DELETE",
        ));
    };
    let request = loaded.request(state, call, service_name, None, method, path)?;
    let decision = explain(&request);
    let error = match &decision.denial {
        Some(denial) => {
            let profile = loaded.caller.as_ref().as_ref();
            Some(denial_error(state, denial, service_name, call, profile).await)
        }
        None => None,
    };
    Ok(json!({
        "allowed": decision.allowed(),
        "code": error.as_ref().map(|e| e.code()),
        "message": error.as_ref().map(ApiError::message),
        "endpoint": decision.endpoint.map(plexhub_core::access::describe_endpoint),
        "checks": decision.checks,
    }))
}

/// Headers never forwarded in either direction (hop-by-hop, RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The caller's headers that a forwarded call reads: found in one pass over the request's few
/// headers, where a lookup of each (most of them absent) hashes its name.
pub(crate) struct CallHeaders<'a> {
    /// The request id (the hub sets one on every request).
    request_id: Option<&'a HeaderValue>,
    /// `X-User-ID`, or empty.
    user_id: &'a str,
    /// `X-Workspace-ID`, or empty.
    workspace_id: &'a str,
    /// The declared `Content-Length`, when it reads as a number.
    content_length: Option<u64>,
    /// The caller's `traceparent`, if any.
    traceparent: Option<&'a HeaderValue>,
    /// Whether the caller sent a `Connection` header (the names it lists are not forwarded).
    connection: bool,
}

impl<'a> CallHeaders<'a> {
    /// What a forwarded call reads of `headers` (the first value of each, as a lookup finds).
    /// `X-User-ID` and `X-Workspace-ID` are the calling plugin's assertion, forwarded and
    /// signed: at most one of each, of 1 to 256 visible ASCII characters.
    pub(crate) fn of(headers: &'a HeaderMap) -> Result<Self, ApiError> {
        let mut request_id = None;
        let mut content_length = None;
        let mut traceparent = None;
        let mut connection = false;
        let mut user_id = UserContext::default();
        let mut workspace_id = UserContext::default();
        for (name, value) in headers {
            match name.as_str() {
                "x-request-id" => {
                    request_id.get_or_insert(value);
                }
                "content-length" => {
                    content_length.get_or_insert(value);
                }
                "traceparent" => {
                    traceparent.get_or_insert(value);
                }
                "connection" => connection = true,
                USER_ID_HEADER => user_id.add(value),
                WORKSPACE_ID_HEADER => workspace_id.add(value),
                _ => {}
            }
        }
        Ok(Self {
            request_id,
            user_id: user_id.value(&USER_ID_HEADER_NAME)?,
            workspace_id: workspace_id.value(&WORKSPACE_ID_HEADER_NAME)?,
            content_length: length_of(content_length),
            traceparent,
            connection,
        })
    }

    fn request_id(&self) -> &'a str {
        self.request_id
            .and_then(|id| id.to_str().ok())
            .unwrap_or_default()
    }
}

/// The values of a user-context header met so far.
#[derive(Default)]
struct UserContext<'a> {
    first: Option<&'a HeaderValue>,
    repeated: bool,
}

impl<'a> UserContext<'a> {
    fn add(&mut self, value: &'a HeaderValue) {
        self.repeated |= self.first.is_some();
        self.first.get_or_insert(value);
    }

    /// The one valid value of user-context header `name`, or empty when there is none.
    fn value(self, name: &HeaderName) -> Result<&'a str, ApiError> {
        match self.first {
            None => Ok(""),
            Some(value) if !self.repeated && valid_user_context(value.as_bytes()) => {
                Ok(value.to_str().unwrap_or_default())
            }
            Some(_) => Err(invalid_user_context(name, self.repeated)),
        }
    }
}

/// The answer to a user-context header sent twice (`repeated`) or malformed.
#[cold]
#[inline(never)]
fn invalid_user_context(name: &HeaderName, repeated: bool) -> ApiError {
    let problem = if repeated {
        format!("{name} may be sent once")
    } else {
        format!("{name} must be 1 to {MAX_USER_CONTEXT_LEN} visible ASCII characters")
    };
    ApiError::new(ErrorCode::InvalidParameter, problem)
}

/// Whether a plugin's answer header must not reach the caller: hop-by-hop headers (those a
/// `Connection` header lists are found by the caller of this), cookies, and the hub's own
/// `x-plexhub-*` headers (`X-Plexhub-Error` cannot be forged by a plugin).
fn dropped_response_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    HOP_BY_HOP.contains(&name) || name == "set-cookie" || name.starts_with("x-plexhub-")
}

/// The headers the hub sets on what it forwards.
const TENANT_ID_HEADER: HeaderName = HeaderName::from_static("x-tenant-id");
const TENANT_SLUG_HEADER: HeaderName = HeaderName::from_static("x-tenant-slug");
pub(crate) const CALLER_HEADER: HeaderName = HeaderName::from_static("x-caller-plugin-id");
const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static("traceparent");
const SIGNATURE_HEADER_NAME: HeaderName = HeaderName::from_static(SIGNATURE_HEADER);
/// The user-context headers, parsed once: a lookup by `&str` parses the name on every call.
pub(crate) const USER_ID_HEADER_NAME: HeaderName = HeaderName::from_static(USER_ID_HEADER);
pub(crate) const WORKSPACE_ID_HEADER_NAME: HeaderName =
    HeaderName::from_static(WORKSPACE_ID_HEADER);

/// Whether a caller's request header must not reach the plugin.
fn dropped_request_header(name: &HeaderName) -> bool {
    let name = name.as_str();
    HOP_BY_HOP.contains(&name)
        || matches!(
            name,
            "host" | "authorization" | "cookie" | "x-request-id" | "traceparent" | "tracestate"
        )
        || name.starts_with("x-tenant-")
        || name.starts_with("x-caller-")
        || name.starts_with("x-plexhub-")
}

/// Names listed in a `Connection` header are hop-by-hop too.
fn connection_listed(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_str(name.trim()).ok())
        .collect()
}

/// The caller's `traceparent` if it is a valid W3C one, else a new one.
fn traceparent(caller: Option<&HeaderValue>) -> HeaderValue {
    let valid = caller.and_then(|value| value.to_str().ok()).filter(|text| {
        let parts: Vec<&str> = text.split('-').collect();
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        parts.len() == 4
            && hex(parts[0], 2)
            && parts[0] != "ff"
            && hex(parts[1], 32)
            && parts[1].bytes().any(|b| b != b'0')
            && hex(parts[2], 16)
            && parts[2].bytes().any(|b| b != b'0')
            && hex(parts[3], 2)
    });
    if let Some(value) = valid.and_then(|text| HeaderValue::from_str(text).ok()) {
        return value;
    }
    let (trace, span): (u128, u64) = (rand::random(), rand::random());
    new_traceparent(trace.max(1), span.max(1))
}

/// `00-{trace:032x}-{span:016x}-01`, written without the formatting machinery (this runs on
/// every call that brings no trace of its own).
fn new_traceparent(trace: u128, span: u64) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-01";
    // Byte by byte: a shift of a `u128` by a varying amount is a dozen instructions.
    let hex = |digits: &mut [u8], bytes: &[u8]| {
        for (pair, byte) in digits.chunks_exact_mut(2).zip(bytes) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
    };
    hex(&mut text[3..35], &trace.to_be_bytes());
    hex(&mut text[36..52], &span.to_be_bytes());
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| {
        HeaderValue::from_static("00-00000000000000000000000000000001-0000000000000001-01")
    })
}

fn upstream_error(code: ErrorCode, message: String) -> ApiError {
    ApiError::new(code, message)
}

/// Attempts of one call at most (the first and two retries).
const MAX_ATTEMPTS: usize = 3;
/// Pause before the first retry; doubled for the next.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);

/// Forwards a request (method, `path_and_query`, filtered headers, streamed body) to an
/// authorized replica and streams its answer back (status, body, headers minus `Set-Cookie`
/// and hop-by-hop ones). Replicas whose breaker is open are skipped. A call is retried, with
/// backoff and within the retry budget, only when that is safe: an idempotent method without
/// a body, after a refused connection or a 502/503 answer; never after a 4xx.
pub async fn forward(
    state: &AppState,
    call: &CallContext<'_>,
    route: &Authorized,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    let limits = &state.gateway.settings;
    let signed_headers = CallHeaders::of(headers)?;
    if signed_headers
        .content_length
        .is_some_and(|length| length > limits.max_request_bytes)
    {
        return Err(caller_fault(BodyFault::TooLarge, *limits));
    }
    let idempotent = matches!(
        method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
    );
    let replayable = hyper::body::Body::size_hint(&body).exact() == Some(0);
    let may_retry = idempotent && replayable;
    state.gateway.budget.deposit();
    let mut body = Some(body);
    let mut outcome: Option<Result<Response<UpstreamBody>, ApiError>> = None;
    let mut next_replica = 0;
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0..MAX_ATTEMPTS {
        let now = state.clock.now_ms();
        // The next replica whose breaker lets the call through, cycling.
        let chosen = (0..route.replica_count())
            .map(|offset| (next_replica + offset) % route.replica_count())
            .map(|index| (index, state.gateway.breakers.of(&route.replica(index).key)))
            .find(|(_, breaker)| breaker.allows(now));
        let Some((index, breaker)) = chosen else {
            break;
        };
        next_replica = index + 1;
        if attempt > 0 {
            if !may_retry || !state.gateway.budget.withdraw() {
                break;
            }
            crate::cold::wait(tokio::time::sleep(backoff)).await;
            backoff *= 2;
        }
        let replica = route.replica(index);
        let this_body = if may_retry {
            Body::empty()
        } else {
            body.take().unwrap_or_else(Body::empty)
        };
        let outgoing = outgoing_headers(
            state,
            call,
            route,
            (&method, path_and_query),
            headers,
            &signed_headers,
        );
        let result = send_once(
            state,
            route,
            replica,
            (&method, path_and_query),
            outgoing,
            this_body,
        )
        .await;
        let (healthy, retryable) = match &result {
            Ok(response) => {
                let status = response.status().as_u16();
                (!matches!(status, 502..=504), matches!(status, 502 | 503))
            }
            Err(error) if is_caller_fault(error.code()) => {
                outcome = Some(result);
                break;
            }
            Err(error) => (false, error.code() == ErrorCode::UpstreamUnreachable),
        };
        let transition = breaker.record(healthy, now);
        if transition != Transition::None {
            announce_breaker(state, route, replica, &breaker, transition, now);
        }
        // Read before the swap: the common case writes nothing to the shared replica.
        if healthy
            && replica.unconfirmed.load(Ordering::Relaxed)
            && replica.unconfirmed.swap(false, Ordering::Relaxed)
        {
            confirm_replica(state, route, replica, now);
        }
        outcome = Some(result);
        if !retryable {
            break;
        }
    }
    match outcome {
        Some(result) => answer_to_caller(call, route, limits, result?),
        None => Err(every_replica_failing(route)),
    }
}

/// The plugin's answer as the caller receives it: refused when it declares more than the
/// limit, without hop-by-hop and hub-only headers, its body limited.
fn answer_to_caller(
    call: &CallContext<'_>,
    route: &Authorized,
    limits: &GatewaySettings,
    response: Response<UpstreamBody>,
) -> Result<Response<Body>, ApiError> {
    let (mut parts, incoming) = response.into_parts();
    // Every call is in the audit log; a log line per call only when asked for.
    if tracing::enabled!(tracing::Level::DEBUG) {
        log_forwarded(call, route, parts.status);
    }
    let declared = length_of(parts.headers.get(header::CONTENT_LENGTH));
    if declared.is_some_and(|length| length > limits.max_response_bytes) {
        return Err(answer_too_large(route, limits));
    }
    // One pass over the answer's few headers; most answers have nothing to drop.
    if parts.headers.keys().any(dropped_response_header) {
        drop_response_headers(&mut parts.headers);
    }
    let max_response = usize::try_from(limits.max_response_bytes).unwrap_or(usize::MAX);
    let body = Body::new(Limited::new(incoming, max_response).map_err(axum::Error::new));
    Ok(Response::from_parts(parts, body))
}

/// A declared `Content-Length`, when it reads as a number.
fn length_of(value: Option<&HeaderValue>) -> Option<u64> {
    value
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse().ok())
}

// The functions below run on the rare paths of a call (a failure, a debug log line), but for
// the last one.
// They are kept out of line and marked cold, so the common path's code stays compact: a call
// runs through more code than the instruction cache holds, and every line of it that holds
// only a rare path is one more miss per call (`docs/OPERATIONS.md`, "Where the gateway loses").

/// The debug log line of a forwarded call.
#[cold]
#[inline(never)]
fn log_forwarded(call: &CallContext<'_>, route: &Authorized, status: StatusCode) {
    tracing::debug!(
        tenant = %call.tenant.slug,
        caller = %call.caller,
        target = %route.target_plugin(),
        endpoint = %route.endpoint(),
        status = status.as_u16(),
        "call forwarded"
    );
}

/// The answer when no replica's breaker lets a call through.
#[cold]
#[inline(never)]
fn every_replica_failing(route: &Authorized) -> ApiError {
    ApiError::new(
        ErrorCode::ServiceUnavailable,
        format!(
            "every replica of {} is failing (circuit open); retry in a few seconds",
            route.route.service
        ),
    )
}

/// The answer when a plugin declares a body over the limit.
#[cold]
#[inline(never)]
fn answer_too_large(route: &Authorized, limits: &GatewaySettings) -> ApiError {
    upstream_error(
        ErrorCode::UpstreamResponseTooLarge,
        format!(
            "{} answered more than {} bytes",
            route.target_plugin(),
            limits.max_response_bytes
        ),
    )
}

/// Removes from a plugin's answer the headers that must not reach the caller (out of line, not
/// cold: a plugin that answers with `Connection: keep-alive` or chunked needs it on every call).
#[inline(never)]
fn drop_response_headers(headers: &mut HeaderMap) {
    let listed = connection_listed(headers);
    let dropped: Vec<HeaderName> = headers
        .keys()
        .filter(|name| dropped_response_header(name) || listed.contains(name))
        .cloned()
        .collect();
    for name in dropped {
        headers.remove(name);
    }
}

/// Marks HEALTHY a replica the registry had never heard from (UNKNOWN), now that it answered a
/// call (in the background: the answer does not wait for it).
#[cold]
#[inline(never)]
fn confirm_replica(state: &AppState, route: &Authorized, replica: &Replica, now_ms: i64) {
    record_replica_health(
        state,
        route,
        replica,
        ServiceStatus::Healthy,
        None,
        None,
        now_ms,
    );
}

/// Marks a replica DEGRADED in the registry while its breaker is open, HEALTHY when it closes
/// (in the background: the answer does not wait for it).
#[cold]
#[inline(never)]
fn announce_breaker(
    state: &AppState,
    route: &Authorized,
    replica: &Replica,
    breaker: &Breaker,
    transition: Transition,
    now_ms: i64,
) {
    let (status, reason) = match transition {
        Transition::Opened => (
            ServiceStatus::Degraded,
            Some(format!(
                "the hub's circuit breaker opened after {FAILURES_TO_OPEN} consecutive failures"
            )),
        ),
        Transition::Closed => (ServiceStatus::Healthy, None),
        Transition::None => return,
    };
    tracing::warn!(service = %route.route.service, replica = %replica.instance, ?transition, "circuit breaker");
    let verdict = Change::Breaker {
        replica: replica.key.clone(),
        open_until_ms: breaker.open_until_ms(),
    };
    record_replica_health(state, route, replica, status, reason, Some(verdict), now_ms);
}

/// In the background: publishes `verdict` to the other hubs (this one already holds it), then
/// records the replica's `status` in the registry and announces the change.
fn record_replica_health(
    state: &AppState,
    route: &Authorized,
    replica: &Replica,
    status: ServiceStatus,
    reason: Option<String>,
    verdict: Option<Change>,
    now_ms: i64,
) {
    let state = state.clone();
    let (tenant, service_id, instance, name) = (
        route.route.tenant,
        replica.service_id.clone(),
        replica.instance.clone(),
        route.route.service.clone(),
    );
    tokio::spawn(async move {
        if let Some(verdict) = verdict {
            state.feed.publish(verdict).await;
        }
        let recorded = state
            .store
            .record_health(
                tenant,
                &service_id,
                Some(&instance),
                status,
                reason.as_deref(),
                now_ms,
            )
            .await;
        match recorded {
            Ok(_) => {
                state
                    .changed(Change::Services {
                        tenant,
                        names: vec![name],
                    })
                    .await;
            }
            Err(error) => {
                tracing::warn!(%error, service = %name, %status, "cannot record a replica's health in the registry");
            }
        }
    });
}

/// The headers the plugin receives (but the signature): the caller's minus what must not
/// cross, plus who calls (the route's [`IdentityHeaders`]), the request id and the trace.
fn forwarded_headers(route: &Authorized, headers: &HeaderMap, signed: &CallHeaders) -> HeaderMap {
    let listed = if signed.connection {
        connection_listed(headers)
    } else {
        Vec::new()
    };
    let mut forwarded = HeaderMap::with_capacity(headers.len() + 6);
    for (name, value) in headers {
        if !dropped_request_header(name) && !listed.contains(name) {
            forwarded.append(name.clone(), value.clone());
        }
    }
    let identity = &route.route.identity;
    for (name, value) in [
        (TENANT_ID_HEADER, &identity.tenant_id),
        (TENANT_SLUG_HEADER, &identity.tenant_slug),
        (CALLER_HEADER, &identity.caller),
    ] {
        if let Some(value) = value {
            forwarded.insert(name, value.clone());
        }
    }
    if let Some(id) = signed.request_id {
        forwarded.insert(REQUEST_ID_HEADER.clone(), id.clone());
    }
    forwarded.insert(TRACEPARENT_HEADER, traceparent(signed.traceparent));
    forwarded
}

/// The headers of one attempt, signed: what the plugin receives.
pub(crate) fn outgoing_headers(
    state: &AppState,
    call: &CallContext<'_>,
    route: &Authorized,
    (method, path_and_query): (&Method, &str),
    headers: &HeaderMap,
    signed: &CallHeaders,
) -> HeaderMap {
    let mut outgoing = forwarded_headers(route, headers, signed);
    if let Some(signature) = attempt_signature(state, call, route, (method, path_and_query), signed)
    {
        outgoing.insert(SIGNATURE_HEADER_NAME, signature);
    }
    outgoing
}

/// The signature of one attempt (each attempt is signed anew: a plugin refuses a signature it
/// has seen, and a retry may reach the same replica).
fn attempt_signature(
    state: &AppState,
    call: &CallContext<'_>,
    route: &Authorized,
    (method, path_and_query): (&Method, &str),
    signed: &CallHeaders,
) -> Option<HeaderValue> {
    if !state.gateway.settings.sign_requests {
        return None;
    }
    let (path, query) =
        plexhub_core::text::split_once_ascii(path_and_query, b'?').unwrap_or((path_and_query, ""));
    let mut tenant_id = [0; 36];
    let tenant_id = call.tenant.id.encode(&mut tenant_id);
    let request = SignedRequest {
        method: method.as_str(),
        path,
        query,
        tenant_id,
        caller: call.caller.as_str(),
        request_id: signed.request_id(),
        user_id: signed.user_id,
        workspace_id: signed.workspace_id,
    };
    state
        .gateway
        .sign(&route.route.signing, &request, state.clock.now_ms())
}

/// One attempt against one replica: the request goes out now (on an idle connection of a
/// plain-http replica, before this returns) and the future waits for the answer.
///
/// Built from combinators rather than as an `async fn`: every call's future is allocated and
/// copied whole per request, and an `async fn` would hold its arguments twice and the built
/// request beside the exchange that took it.
fn send_once<'a>(
    state: &'a AppState,
    route: &'a Authorized,
    replica: &'a Replica,
    target: (&Method, &str),
    headers: HeaderMap,
    body: Body,
) -> impl Future<Output = Result<Response<UpstreamBody>, ApiError>> + Send + 'a {
    match start_exchange(state, replica, target, headers, body) {
        Ok(Exchange { answer, fault }) => Either::Left(
            tokio::time::timeout(route.timeout(), answer)
                .map(move |answer| answer_of(state, route, replica, answer, fault.as_deref())),
        ),
        Err(error) => Either::Right(std::future::ready(Err(error))),
    }
}

/// An attempt under way.
struct Exchange<A> {
    /// The answer to wait for.
    answer: A,
    /// Where a watched request body reports a fault of the caller's.
    fault: Option<Arc<FaultCell>>,
}

/// The request of one attempt, handed to the replica's connections (or the TLS client).
fn start_exchange<'a>(
    state: &'a AppState,
    replica: &'a Replica,
    (method, path_and_query): (&Method, &str),
    headers: HeaderMap,
    body: Body,
) -> Result<
    Exchange<impl Future<Output = Result<Response<UpstreamBody>, Failure>> + Send + 'a>,
    ApiError,
> {
    let limits = &state.gateway.settings;
    // Plain http goes out in origin form on the replica's own connections; https through the
    // TLS client, with the absolute URI it connects by.
    let base = match &replica.plain {
        Some((_, prefix)) => prefix.as_str(),
        None => replica.base_url.as_str(),
    };
    let mut target = String::with_capacity(base.len() + path_and_query.len());
    target.push_str(base);
    target.push_str(path_and_query);
    // Parsed in place: the URI keeps the string's buffer.
    let uri = Uri::try_from(target)
        .map_err(|_| ApiError::new(ErrorCode::InvalidParameter, "the path cannot be forwarded"))?;
    let mut outgoing = Request::builder().method(method.clone()).uri(uri);
    if let Some(target) = outgoing.headers_mut() {
        *target = headers;
        if let Some(host) = &replica.host {
            target.insert(header::HOST, host.clone());
        }
    }
    // An empty body (most calls) needs no watching.
    let (body, fault) = if hyper::body::Body::size_hint(&body).exact() == Some(0) {
        (body, None)
    } else {
        let fault = Arc::new(FaultCell::default());
        let watched = WatchedBody::new(
            body,
            limits.max_request_bytes,
            limits.request_body_timeout,
            fault.clone(),
        );
        (Body::new(watched), Some(fault))
    };
    let outgoing = outgoing
        .body(body)
        .map_err(|error| ApiError::internal(&error))?;
    let answer = match &replica.plain {
        Some((connections, _)) => Either::Left(
            connections
                .send(outgoing, limits.connect_timeout)
                .map(|answer| {
                    answer
                        .map(|answer| answer.map(UpstreamBody::Left))
                        .map_err(Failure::Plain)
                }),
        ),
        None => Either::Right(state.gateway.client.request(outgoing).map(|answer| {
            answer
                .map(|answer| answer.map(UpstreamBody::Right))
                .map_err(Failure::Pooled)
        })),
    };
    Ok(Exchange { answer, fault })
}

/// What one attempt ends with: the answer, or the error that says why there is none.
fn answer_of(
    state: &AppState,
    route: &Authorized,
    replica: &Replica,
    answer: Result<Result<Response<UpstreamBody>, Failure>, tokio::time::error::Elapsed>,
    fault: Option<&FaultCell>,
) -> Result<Response<UpstreamBody>, ApiError> {
    if let Some(fault) = fault.and_then(FaultCell::get) {
        return Err(caller_fault(fault, state.gateway.settings));
    }
    match answer {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(failure)) => Err(attempt_failed(route, replica, &failure)),
        Err(_) => Err(attempt_timed_out(route)),
    }
}

/// The answer when a plugin did not answer in time.
#[cold]
#[inline(never)]
fn attempt_timed_out(route: &Authorized) -> ApiError {
    upstream_error(
        ErrorCode::UpstreamTimeout,
        format!(
            "{} did not answer within {} ms",
            route.target_plugin(),
            route.timeout().as_millis()
        ),
    )
}

/// Why an attempt got no answer, as the caller is told.
#[cold]
#[inline(never)]
fn attempt_failed(route: &Authorized, replica: &Replica, failure: &Failure) -> ApiError {
    if let Failure::Pooled(error) = failure
        && let Some(reason) = crate::upstream_tls::tls_failure(error)
    {
        return upstream_error(
            ErrorCode::UpstreamTls,
            format!("TLS with {} failed: {reason}", route.target_plugin()),
        );
    }
    let (code, causes) = match failure {
        Failure::Plain(error @ crate::keepalive::SendError::Connect(_)) => {
            (ErrorCode::UpstreamUnreachable, with_causes(error))
        }
        Failure::Plain(error) => (ErrorCode::UpstreamFailed, with_causes(error)),
        Failure::Pooled(error) if error.is_connect() => {
            (ErrorCode::UpstreamUnreachable, with_causes(error))
        }
        Failure::Pooled(error) => (ErrorCode::UpstreamFailed, with_causes(error)),
    };
    upstream_error(
        code,
        format!(
            "{} could not be reached at {}: {causes}",
            route.target_plugin(),
            replica.base_url,
        ),
    )
}

/// A plugin's answer body, from a plain-http replica's own connections or the TLS client: put
/// in the caller's answer (limited) in one allocation.
type UpstreamBody = http_body_util::Either<crate::keepalive::PooledBody, hyper::body::Incoming>;

/// Why an attempt got no answer, by the client that made it.
enum Failure {
    /// A plain-http replica's own connections.
    Plain(crate::keepalive::SendError),
    /// The pooled TLS client.
    Pooled(hyper_util::client::legacy::Error),
}

/// An error and its causes, `outer: inner: …` (hyper's own message alone says only
/// "client error (Connect)").
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let next = inner.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = inner.source();
    }
    text
}

/// The answer to a caller whose own body failed (never the plugin's fault).
#[cold]
#[inline(never)]
fn caller_fault(fault: BodyFault, limits: GatewaySettings) -> ApiError {
    match fault {
        BodyFault::TooLarge => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "the request body exceeds {} bytes",
                limits.max_request_bytes
            ),
        ),
        BodyFault::Malformed => ApiError::new(
            ErrorCode::MalformedBody,
            "the request body could not be read (broken framing or connection)",
        ),
        BodyFault::Stalled => ApiError::new(
            ErrorCode::RequestBodyTimeout,
            format!(
                "the request body stopped arriving for {} ms",
                limits.request_body_timeout.as_millis()
            ),
        ),
    }
}

/// Whether an error is the caller's doing (its body), which says nothing of the plugin.
fn is_caller_fault(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::PayloadTooLarge | ErrorCode::MalformedBody | ErrorCode::RequestBodyTimeout
    )
}

/// A gateway call being served, as the audit log records it.
pub struct Attempt<'a> {
    /// `proxy` or `call`.
    pub kind: &'static str,
    /// The service asked for.
    pub service: &'a str,
    /// HTTP method.
    pub method: &'a Method,
    /// The path asked for (without query).
    pub path: &'a str,
    /// The request id.
    pub request_id: &'a str,
    /// When the hub started serving it.
    pub started: std::time::Instant,
}

/// The audit log's name of `method`: shared for the methods the gateway serves most.
fn method_name(method: &Method) -> Arc<str> {
    static NAMES: std::sync::LazyLock<Vec<Arc<str>>> = std::sync::LazyLock::new(|| {
        HOT_METHODS
            .iter()
            .map(|method| method.as_str().into())
            .collect()
    });
    match HOT_METHODS.iter().position(|hot| hot == method) {
        Some(index) => NAMES[index].clone(),
        None => method.as_str().into(),
    }
}

/// Records a finished gateway call: the audit log (tenant, caller, target, service, method,
/// path, matched endpoint, status, duration, request id) and the latency histogram. Recorded
/// when called; the future waits only while the audit queue is full.
pub fn audit(
    state: &AppState,
    call: &CallContext<'_>,
    attempt: &Attempt<'_>,
    route: Option<&Authorized>,
    status: u16,
) -> impl Future<Output = ()> + Send + 'static {
    let elapsed = attempt.started.elapsed();
    let metrics = if attempt.kind == "call" {
        &state.call_metrics
    } else {
        &state.proxy_metrics
    };
    metrics.gateway_call(status, elapsed.as_secs_f64());
    // An allowed call's names are its route's; a refused one's are made here.
    let audited = route.map(|route| &route.route.audited);
    let record = plexhub_store::CallRecord {
        tenant_id: call.tenant.id,
        at_ms: state.clock.now_ms(),
        caller: audited.map_or_else(|| call.caller.as_str().into(), |names| names.caller.clone()),
        target: audited.map(|names| names.target.clone()),
        service: audited.map_or_else(|| attempt.service.into(), |names| names.service.clone()),
        method: method_name(attempt.method),
        path: attempt.path.to_owned(),
        endpoint: audited.map(|names| names.endpoint.clone()),
        status,
        duration_us: i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX),
        request_id: attempt.request_id.to_owned(),
    };
    state.audit.record(record)
}

/// Follows the change feed until `shutdown`, adopting the circuit-breaker verdicts of other
/// hubs, so a replica one hub found failing is spared by all.
pub async fn follow_breakers(state: AppState, shutdown: tokio_util::sync::CancellationToken) {
    let mut events = state.feed.subscribe();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(plexhub_store::feed::FeedEvent::Change(Change::Breaker {
                replica,
                open_until_ms,
            })) => state.gateway.breakers.of(&replica).adopt(open_until_ms),
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::CallHeaders;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn one_pass_finds_what_a_lookup_of_each_header_would() {
        let trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let sent = headers(&[
            ("x-request-id", "first"),
            ("x-request-id", "second"),
            ("content-length", "12"),
            ("content-length", "13"),
            ("traceparent", trace),
            (
                "traceparent",
                "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01",
            ),
            ("x-user-id", "user-7"),
            ("x-workspace-id", "ws-1"),
            ("connection", "x-private"),
            ("x-other", "ignored"),
        ]);
        let found = CallHeaders::of(&sent).expect("valid user context");
        // The scan's names are the ones the rest of the hub uses.
        assert_eq!(
            crate::request_id::REQUEST_ID_HEADER.as_str(),
            "x-request-id"
        );
        assert_eq!(super::TRACEPARENT_HEADER.as_str(), "traceparent");
        assert_eq!(found.request_id(), "first");
        assert_eq!(found.content_length, Some(12));
        assert_eq!((found.user_id, found.workspace_id), ("user-7", "ws-1"));
        assert!(found.connection);
        assert_eq!(super::traceparent(found.traceparent), trace);
        assert_ne!(
            super::traceparent(Some(&HeaderValue::from_static("not-a-trace"))),
            "not-a-trace"
        );

        let unreadable = headers(&[("content-length", "abc")]);
        let found = CallHeaders::of(&unreadable).expect("no user context");
        assert_eq!(found.content_length, None);

        let empty = HeaderMap::new();
        let none = CallHeaders::of(&empty).expect("no user context");
        assert_eq!((none.request_id(), none.user_id), ("", ""));
        assert_eq!((none.content_length, none.connection), (None, false));
    }

    #[test]
    fn a_user_context_header_is_sent_once_and_well_formed() {
        let twice = headers(&[("x-workspace-id", "ws-1"), ("x-workspace-id", "ws-1")]);
        let error = CallHeaders::of(&twice).err().expect("refused");
        assert!(error.message().contains("may be sent once"), "{error:?}");
        let twice_malformed = headers(&[("x-user-id", "a b"), ("x-user-id", "a b")]);
        let error = CallHeaders::of(&twice_malformed).err().expect("refused");
        assert!(error.message().contains("may be sent once"), "{error:?}");
        for value in ["has space", ""] {
            let mut malformed = HeaderMap::new();
            malformed.insert("x-user-id", HeaderValue::from_str(value).expect("a value"));
            let error = CallHeaders::of(&malformed).err().expect("refused");
            assert!(error.message().contains("visible ASCII"), "{error:?}");
        }
    }

    #[test]
    fn a_new_traceparent_is_the_ids_in_hex() {
        let (trace, span) = (
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210_u128,
            0xa1b2_c3d4_e5f6_0718_u64,
        );
        let expected = format!("00-{trace:032x}-{span:016x}-01");
        assert_eq!(
            super::new_traceparent(trace, span).to_str().ok(),
            Some(expected.as_str())
        );
        assert_eq!(
            super::new_traceparent(1, 1).to_str().ok(),
            Some("00-00000000000000000000000000000001-0000000000000001-01")
        );
    }
}
