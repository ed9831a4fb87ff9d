//! Gateway quotas: token buckets per (tenant, calling plugin) and per tenant. Each tenant's
//! limits override the hub's settings. With Redis every hub takes from the same buckets (one
//! budget, not one per instance); while Redis cannot be reached each hub limits on its own
//! (calls go on, a warning is logged).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::Either;
use plexhub_core::ids::PluginId;
use plexhub_core::tenant::{RateLimit, Tenant};
use serde_json::json;

use crate::error::{ApiError, ErrorCode};
use crate::settings::GatewaySettings;
use crate::state::AppState;

/// How long a hub waits for Redis before limiting on its own.
const REDIS_TIMEOUT: Duration = Duration::from_millis(200);
/// Buckets kept in process before the table is reset (a reset only forgives debts).
const LOCAL_CAPACITY: usize = 100_000;

/// In-process buckets: key → theoretical arrival time (µs).
#[derive(Default)]
pub struct LocalBuckets {
    arrivals: Mutex<HashMap<String, i64>>,
}

impl LocalBuckets {
    /// Takes one request from the given buckets (all or none); `Err(µs)` to wait.
    fn admit(&self, buckets: &[(String, RateLimit)], now_us: i64) -> Result<(), i64> {
        let Ok(mut arrivals) = self.arrivals.lock() else {
            return Ok(());
        };
        if arrivals.len() > LOCAL_CAPACITY {
            arrivals.clear();
        }
        let mut next = Vec::with_capacity(buckets.len());
        let mut wait = 0;
        for (key, limit) in buckets {
            match limit.admit(arrivals.get(key).copied(), now_us) {
                Ok(arrival) => next.push((key, arrival)),
                Err(more) => wait = wait.max(more),
            }
        }
        if wait > 0 {
            return Err(wait);
        }
        for (key, arrival) in next {
            arrivals.insert(key.clone(), arrival);
        }
        Ok(())
    }
}

/// The limits that apply to a tenant: its own, else the hub's.
fn limits(settings: &GatewaySettings, tenant: &Tenant) -> (Option<RateLimit>, Option<RateLimit>) {
    (
        tenant
            .rate_limits
            .per_caller
            .or(settings.rate_limit_per_caller),
        tenant
            .rate_limits
            .per_tenant
            .or(settings.rate_limit_per_tenant),
    )
}

#[cold]
#[inline(never)]
fn rate_limited(wait_us: i64, scope: &str) -> ApiError {
    let seconds = (wait_us + 999_999) / 1_000_000;
    ApiError::new(
        ErrorCode::RateLimited,
        format!("the {scope} rate limit is reached; retry in {seconds} s"),
    )
    .with_details(json!({ "retryAfterSeconds": seconds.max(1) }))
}

/// Admits one gateway call of `caller` in `tenant`, or 429 `RATE_LIMITED` with `Retry-After`.
/// Decided at once (the future is ready) without a limit or without Redis; only Redis's round
/// trip is a wait, boxed and out of line (`cold::wait`), so it sizes no other call's future.
pub fn admit<'a>(
    state: &'a AppState,
    tenant: &'a Tenant,
    caller: &'a PluginId,
) -> impl Future<Output = Result<(), ApiError>> + Send + 'a {
    let (per_caller, per_tenant) = limits(state.gateway.settings(), tenant);
    if per_caller.is_none() && per_tenant.is_none() {
        return Either::Left(std::future::ready(Ok(())));
    }
    let scope = match (per_caller, per_tenant) {
        (Some(_), Some(_)) => "caller's or tenant's",
        (Some(_), None) => "caller's",
        _ => "tenant's",
    };
    let buckets: Vec<(String, RateLimit)> = [
        per_caller.map(|limit| (format!("plexhub:rl:c:{}:{caller}", tenant.id), limit)),
        per_tenant.map(|limit| (format!("plexhub:rl:t:{}", tenant.id), limit)),
    ]
    .into_iter()
    .flatten()
    .collect();
    match &state.redis {
        None => Either::Left(std::future::ready(admit_here(state, &buckets, scope))),
        Some(redis) => Either::Right(crate::cold::wait(async move {
            let shared = |index: usize| {
                buckets
                    .get(index)
                    .map(|(key, limit)| (key.as_str(), limit.interval_us(), limit.tolerance_us()))
            };
            match redis.admit([shared(0), shared(1)], REDIS_TIMEOUT).await {
                Ok(None) => Ok(()),
                Ok(Some(wait)) => Err(rate_limited(wait, scope)),
                Err(error) => {
                    tracing::warn!(%error, "rate limits fall back to this hub alone while Redis is unreachable");
                    admit_here(state, &buckets, scope)
                }
            }
        })),
    }
}

/// [`admit`] by this hub's own buckets.
fn admit_here(
    state: &AppState,
    buckets: &[(String, RateLimit)],
    scope: &str,
) -> Result<(), ApiError> {
    let now_us = state.clock.now_ms().saturating_mul(1000);
    state
        .gateway
        .local_buckets
        .admit(buckets, now_us)
        .map_err(|wait| rate_limited(wait, scope))
}
