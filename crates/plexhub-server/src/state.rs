//! The shared state of one hub instance: a cheap `Clone` handle passed to every handler.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRef;
use plexhub_store::Store;
use plexhub_store::redis::RedisHandle;

use crate::metrics::Metrics;
use crate::settings::Secret;

/// Everything handlers need; cloning copies a few `Arc`s.
#[derive(Clone)]
pub struct AppState {
    /// Tenants, catalog, installations, credentials.
    pub store: Arc<dyn Store>,
    /// The operator's token.
    pub admin_token: Arc<Secret>,
    /// Redis, in scaled mode.
    pub redis: Option<RedisHandle>,
    /// Prometheus registry.
    pub metrics: Arc<Metrics>,
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

/// Wall-clock time in epoch milliseconds, the unit of every stored time.
pub fn now_ms() -> i64 {
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
