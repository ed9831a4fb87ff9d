//! The sweep: a background task that announces status changes implied by missed heartbeats,
//! deletes expired shared data (announcing `expired`), and prunes the change logs. Idempotent and safe to run on every hub
//! instance at once (the store claims each announcement with a guarded update).

use std::collections::BTreeMap;
use std::time::Duration;

use plexhub_store::feed::Change;

use crate::state::AppState;

/// How long registry and shared-data changes stay resumable for watchers.
const EVENT_RETENTION_MS: i64 = 60 * 60 * 1000;
/// How often the change log is pruned.
const PRUNE_EVERY_MS: i64 = 60 * 1000;

/// Runs until the hub shuts down.
pub async fn run(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = i64::MIN;
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = state.clock.now_ms();
        match state.store.sweep_health(&state.health, now).await {
            Ok(changed) => {
                let mut by_tenant = BTreeMap::<_, Vec<_>>::new();
                for (tenant, name) in changed {
                    by_tenant.entry(tenant).or_default().push(name);
                }
                for (tenant, names) in by_tenant {
                    tracing::info!(%tenant, services = ?names, "service health changed");
                    for name in &names {
                        let data = serde_json::json!({ "serviceName": name.to_string() });
                        crate::events::announce(
                            &state,
                            tenant,
                            "plexhub.service.health_changed",
                            data,
                        )
                        .await;
                    }
                    state.changed(Change::Services { tenant, names }).await;
                }
            }
            Err(error) => tracing::warn!(%error, "health sweep failed; retrying next tick"),
        }
        match state.store.sweep_expired_data(now).await {
            Ok(expired) => {
                for (tenant, namespace, key) in expired {
                    state
                        .changed(Change::Data {
                            tenant,
                            namespace,
                            key,
                        })
                        .await;
                }
            }
            Err(error) => tracing::warn!(%error, "expiry sweep failed; retrying next tick"),
        }
        if now.saturating_sub(last_prune) >= PRUNE_EVERY_MS {
            last_prune = now;
            if let Err(error) = state
                .store
                .prune_registry_events(now - EVENT_RETENTION_MS)
                .await
            {
                tracing::warn!(%error, "cannot prune the registry change log");
            }
            if let Err(error) = state
                .store
                .prune_data_events(now - EVENT_RETENTION_MS)
                .await
            {
                tracing::warn!(%error, "cannot prune the shared-data change log");
            }
            let retention_ms =
                i64::try_from(state.events.retention.as_millis()).unwrap_or(i64::MAX);
            if let Err(error) = state
                .bus
                .prune_events(now.saturating_sub(retention_ms))
                .await
            {
                tracing::warn!(%error, "cannot prune the event log");
            }
            let retention = state.gateway.settings().audit_retention;
            let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
            if let Err(error) = state
                .store
                .prune_calls(now.saturating_sub(retention_ms))
                .await
            {
                tracing::warn!(%error, "cannot prune the gateway audit log");
            }
        }
    }
}
