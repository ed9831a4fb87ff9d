//! The shared state of one hub instance: a cheap `Clone` handle passed to every handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRef;
use plexhub_core::registry::HealthPolicy;
use plexhub_store::Store;
use plexhub_store::feed::{Change, ChangeFeed};
use plexhub_store::redis::RedisHandle;
use tokio_util::sync::CancellationToken;

use crate::cache::HubCache;
use crate::metrics::Metrics;
use crate::settings::Secret;
use crate::writer::Writer;

/// Everything handlers need. Cloning (which axum does several times per request) copies one
/// `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared parts.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    /// Tenants, catalog, installations, credentials, registry.
    pub store: Arc<dyn Store>,
    /// The event bus: `store` itself, or JetStream (`--events-url`).
    pub bus: Arc<dyn plexhub_store::EventStore>,
    /// Which bus: `database` or `jetstream`.
    pub events_backend: &'static str,
    /// The operator's token.
    pub admin_token: Arc<Secret>,
    /// Redis, in scaled mode.
    pub redis: Option<RedisHandle>,
    /// Prometheus registry.
    pub metrics: Arc<Metrics>,
    /// Change notifications between hub instances.
    pub feed: ChangeFeed,
    /// In-process caches kept honest by the feed.
    pub cache: Arc<HubCache>,
    /// Heartbeat rules.
    pub health: HealthPolicy,
    /// Largest shared-data value, in bytes.
    pub max_value_bytes: usize,
    /// Largest request body the hub parses itself, in bytes.
    pub max_body_bytes: usize,
    /// Group-commit writer of shared data.
    pub writer: Writer,
    /// Time source of every stored timestamp.
    pub clock: Clock,
    /// The plugin-to-plugin gateway's client and limits.
    pub gateway: crate::gateway::Gateway,
    /// The gateway's audit log.
    pub audit: crate::audit::AuditLog,
    /// Metric handles of the proxy route (its hot path records without label lookups).
    pub proxy_metrics: crate::metrics::RouteMetrics,
    /// Metric handles of the seed's `/call` route.
    pub call_metrics: crate::metrics::RouteMetrics,
    /// Limits and timing of the event bus.
    pub events: crate::settings::EventSettings,
    /// Published catalog versions wait for review (DRAFT) instead of being PUBLISHED at once.
    pub catalog_review: bool,
    /// Cancelled when the hub shuts down; long-lived responses (watch streams) end with it.
    pub shutdown: CancellationToken,
    /// Cancelled at the stop signal, before `shutdown`: `/readyz` answers 503 from then on
    /// while the listener still accepts for the drain grace.
    pub draining: CancellationToken,
}

impl AppState {
    /// Makes a change visible: drops stale cache entries here at once, then tells the other
    /// hub instances (and this one's watchers) through the feed.
    pub async fn changed(&self, change: Change) {
        self.cache.apply(&change);
        self.feed.publish(change).await;
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

/// Wall-clock time in epoch milliseconds, or a manual clock for tests of time-based rules.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that starts at the current time and moves only when [`Clock::advance`]d; clones
    /// share it, so several hub instances can share one.
    pub fn manual() -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(system_now_ms()))),
        }
    }

    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance(&self, milliseconds: i64) {
        if let Some(now) = &self.manual {
            now.fetch_add(milliseconds, Ordering::AcqRel);
        }
    }

    /// Now, in epoch milliseconds: the unit of every stored time.
    pub fn now_ms(&self) -> i64 {
        self.manual
            .as_ref()
            .map_or_else(system_now_ms, |now| now.load(Ordering::Acquire))
    }
}

fn system_now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// Formats epoch milliseconds as RFC 3339 with millisecond precision (UTC).
pub fn rfc3339(epoch_ms: i64) -> String {
    let time = UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(epoch_ms).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}
