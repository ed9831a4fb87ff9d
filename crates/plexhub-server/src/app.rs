//! Building and running one hub instance.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use plexhub_store::feed::ChangeFeed;
use plexhub_store::jetstream::{JetStreamBus, JetStreamSettings};
use plexhub_store::redis::{RedisError, RedisHandle};
use plexhub_store::{EventStore, StoreError};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cache::HubCache;
use crate::metrics::Metrics;
use crate::settings::Settings;
use crate::state::{AppState, Shared};
use crate::writer::{WriteRequest, Writer};

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    /// The event bus (JetStream) could not be reached.
    #[error("cannot connect to the event bus: {0}")]
    EventBus(#[source] StoreError),
    /// The Redis URL is invalid.
    #[error("cannot use Redis: {0}")]
    Redis(#[from] RedisError),
    /// The settings for TLS to plugins cannot be used.
    #[error("cannot set up TLS to plugins: {0}")]
    UpstreamTls(#[from] crate::upstream_tls::TlsSetupError),
    /// The listen address is unavailable.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The requested address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// How the hub was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// By its orchestrator (SIGTERM): `/readyz` answers 503 and the listener keeps accepting
    /// for the drain grace, so load balancers stop routing to it first.
    Orchestrated,
    /// By an operator at a terminal (Ctrl-C): the listener closes at once (requests and
    /// deliveries in flight still finish within the drain timeout).
    Interactive,
}

/// A shutdown future that says nothing is an orchestrated stop.
impl From<()> for Stop {
    fn from((): ()) -> Self {
        Self::Orchestrated
    }
}

/// A hub bound to its listener, ready to serve.
pub struct Application {
    listener: TcpListener,
    pub(crate) router: Router,
    local_addr: SocketAddr,
    pub(crate) state: AppState,
    sweep_interval: Duration,
    connection_limits: crate::connections::ConnectionLimits,
    write_requests: mpsc::Receiver<WriteRequest>,
    pub(crate) audited_calls: mpsc::Receiver<plexhub_store::CallRecord>,
}

impl Application {
    /// Opens storage (applying migrations), connects the change feed and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let store = plexhub_store::open(settings.database_url.expose()).await?;
        let shutdown = CancellationToken::new();
        let redis = settings
            .redis_url
            .as_ref()
            .map(|url| RedisHandle::new(url.expose()))
            .transpose()?;
        let feed = match &redis {
            Some(redis) => ChangeFeed::with_redis(redis.client(), shutdown.clone()),
            None => ChangeFeed::in_process(),
        };
        let bus: Arc<dyn EventStore> = match &settings.events_url {
            Some(url) => Arc::new(
                JetStreamBus::connect(
                    url.expose(),
                    store.clone(),
                    jetstream_settings(&settings.events),
                    shutdown.clone(),
                )
                .await
                .map_err(StartError::EventBus)?,
            ),
            None => store.clone(),
        };
        let (writer, write_requests) = Writer::new();
        let (audit, audited_calls) = crate::audit::AuditLog::new();
        let metrics = Metrics::new();
        let state = AppState::new(Shared {
            store,
            bus,
            events_backend: if settings.events_url.is_some() {
                "jetstream"
            } else {
                "database"
            },
            admin_token: Arc::new(settings.admin_token.clone()),
            redis,
            proxy_metrics: metrics.route("/api/v1/proxy/{serviceName}/{*path}", "proxy"),
            call_metrics: metrics.route("/api/plugin-gateway/call", "call"),
            metrics,
            cache: HubCache::new(feed.clone(), settings.cache_shared_data_when_scaled),
            feed,
            health: settings.health,
            max_value_bytes: settings.max_value_bytes,
            max_body_bytes: settings.max_body_bytes,
            writer,
            clock: settings.clock.clone(),
            gateway: crate::gateway::Gateway::new(
                settings.gateway,
                settings.signing_keys.clone(),
                settings.upstream_tls.client_config()?,
            ),
            audit,
            events: settings.events,
            catalog_review: settings.catalog_review,
            shutdown,
            draining: CancellationToken::new(),
        });
        let listener =
            crate::connections::listen(settings.listen).map_err(|source| StartError::Bind {
                address: settings.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            address: settings.listen,
            source,
        })?;
        tracing::info!(backend = state.store.backend(), events = state.events_backend, %local_addr, "hub ready");
        Ok(Self {
            listener,
            router: crate::routes::router(
                state.clone(),
                settings.max_body_bytes,
                settings.ui_session_ttl,
            ),
            local_addr,
            state,
            sweep_interval: settings.sweep_interval,
            connection_limits: settings.connections,
            write_requests,
            audited_calls,
        })
    }

    /// Opens the database and applies the migrations it lacks, without starting anything (a
    /// deployment's migration job); returns the backend's name.
    pub async fn migrate(database_url: &str) -> Result<&'static str, StartError> {
        Ok(plexhub_store::open(database_url).await?.backend())
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes; then `/readyz` answers 503 while the listener still
    /// accepts for the drain grace, then the listener closes, watch streams and background jobs
    /// end, and requests and event deliveries in flight get up to the drain timeout to finish;
    /// last, the queued audit records are written.
    /// A `shutdown` that ends with [`Stop::Interactive`] skips the grace.
    pub async fn run_until<S: Into<Stop>>(
        self,
        shutdown: impl Future<Output = S> + Send + 'static,
    ) -> std::io::Result<()> {
        let token = self.state.shutdown.clone();
        let limits = self.connection_limits;
        let jobs = [
            tokio::spawn(self.state.cache.clone().follow(token.clone())),
            tokio::spawn(crate::sweep::run(self.state.clone(), self.sweep_interval)),
            tokio::spawn(crate::events::run(self.state.clone())),
            tokio::spawn(crate::gateway::follow_breakers(
                self.state.clone(),
                token.clone(),
            )),
        ];
        // The jobs end once the listener closes; the event worker then waits for its deliveries
        // in flight, within the same drain timeout as the connections.
        let stopped = token.clone();
        let jobs = tokio::spawn(async move {
            stopped.cancelled().await;
            let all = async {
                for job in jobs {
                    let _ = job.await;
                }
            };
            if tokio::time::timeout(limits.drain_timeout, all)
                .await
                .is_err()
            {
                tracing::warn!(
                    "event deliveries still in flight after the drain timeout are left to their lease"
                );
            }
        });
        // Stopped once the server has drained: by then every request, and so every queued write,
        // has been answered.
        let writer = tokio::spawn(crate::writer::run(self.state.clone(), self.write_requests));
        let audit_stop = tokio_util::sync::CancellationToken::new();
        let audit = tokio::spawn(crate::audit::run(
            self.state.clone(),
            self.audited_calls,
            audit_stop.clone(),
        ));
        let stop = token.clone();
        let draining = self.state.draining.clone();
        let front = crate::front::Front::new(self.state.clone(), self.router);
        crate::connections::serve(self.listener, front, limits, async move {
            let request = shutdown.await.into();
            draining.cancel();
            if request == Stop::Orchestrated && !limits.drain_grace.is_zero() {
                tracing::info!(
                    grace_ms = limits.drain_grace.as_millis(),
                    "draining: /readyz answers 503; still accepting during the grace"
                );
                tokio::time::sleep(limits.drain_grace).await;
            }
            tracing::info!("listener closed; finishing in-flight requests and deliveries");
            stop.cancel();
        })
        .await;
        token.cancel();
        let _ = jobs.await;
        writer.abort();
        audit_stop.cancel();
        let _ = audit.await;
        Ok(())
    }
}

/// The JetStream bus's settings from the event bus's: a hub holds a delivery as long as a
/// database lease lasts (an attempt's timeout and time to record its outcome).
fn jetstream_settings(events: &crate::settings::EventSettings) -> JetStreamSettings {
    JetStreamSettings {
        partitions: events.partitions,
        retention: events.retention,
        max_bytes: events
            .max_log_bytes
            .map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX)),
        replicas: events.replicas,
        ack_wait: events.delivery_timeout + Duration::from_secs(3),
        max_in_flight: events.max_in_flight,
        ..JetStreamSettings::default()
    }
}
