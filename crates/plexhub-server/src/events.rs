//! The event bus in the hub: CloudEvents envelopes for what plugins publish and what the hub
//! announces, and the delivery worker that POSTs queued deliveries to subscribers, signed like
//! gateway calls. Delivery state lives in the database: a hub claims due deliveries for a
//! lease, so any number of hubs share the work and a restarted hub resumes where it stopped.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Request, Uri};
use plexhub_core::events::backoff_ms;
use plexhub_core::ids::PluginId;
use plexhub_core::signing::{SIGNATURE_HEADER, SignedRequest};
use plexhub_core::tenant::TenantId;
use plexhub_store::feed::{Change, FeedEvent};
use plexhub_store::{ClaimedDelivery, DeliveryOutcome, NewEvent};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, Semaphore, mpsc};

use crate::state::{AppState, rfc3339};

/// The `source` of the hub's own events.
pub const HUB_SOURCE: &str = "plexhub";
/// Deliveries claimed at a time.
const CLAIM_BATCH: usize = 512;
/// Outcomes recorded in one transaction at most.
const COMPLETE_BATCH: usize = 512;
/// Least time between two claims while more than three quarters of the deliveries allowed in
/// flight are: under load, claims come fewer and larger (each scans the queue).
const CLAIM_GAP: Duration = Duration::from_millis(10);
/// How often the lag of every subscription is published as a metric.
const LAG_EVERY: Duration = Duration::from_secs(10);

/// What a publisher sends for one event; the hub adds `specversion`, `source`, `time`,
/// `tenantid` (and `id` when missing).
#[derive(Debug, Clone)]
pub struct Draft {
    /// `id`: unique per source; a repeated one is accepted once.
    pub id: Option<String>,
    /// `type`, already checked.
    pub event_type: String,
    /// `data`.
    pub data: Value,
    /// `datacontenttype` (default `application/json`).
    pub content_type: Option<String>,
    /// `subject`.
    pub subject: Option<String>,
    /// `partitionkey`: events of one key reach each subscriber in order.
    pub partition_key: Option<String>,
    /// `correlationid` (default: the event's id).
    pub correlation_id: Option<String>,
    /// `causationid`.
    pub causation_id: Option<String>,
}

impl Draft {
    /// A draft with just a type and data.
    pub fn new(event_type: &str, data: Value) -> Self {
        Self {
            id: None,
            event_type: event_type.to_owned(),
            data,
            content_type: None,
            subject: None,
            partition_key: None,
            correlation_id: None,
            causation_id: None,
        }
    }

    /// The stored event: the CloudEvents 1.0 JSON envelope with the hub's attributes.
    pub fn into_event(self, tenant: TenantId, source: &str, now_ms: i64) -> NewEvent {
        let id = self.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut envelope = Map::new();
        envelope.insert("specversion".into(), json!("1.0"));
        envelope.insert("id".into(), json!(id));
        envelope.insert("source".into(), json!(source));
        envelope.insert("type".into(), json!(self.event_type));
        envelope.insert("time".into(), json!(rfc3339(now_ms)));
        envelope.insert(
            "datacontenttype".into(),
            json!(self.content_type.as_deref().unwrap_or("application/json")),
        );
        if let Some(subject) = &self.subject {
            envelope.insert("subject".into(), json!(subject));
        }
        envelope.insert("tenantid".into(), json!(tenant.to_string()));
        envelope.insert(
            "correlationid".into(),
            json!(self.correlation_id.as_deref().unwrap_or(&id)),
        );
        if let Some(causation) = &self.causation_id {
            envelope.insert("causationid".into(), json!(causation));
        }
        if let Some(key) = &self.partition_key {
            envelope.insert("partitionkey".into(), json!(key));
        }
        envelope.insert("data".into(), self.data);
        NewEvent {
            event_id: id,
            source: source.to_owned(),
            event_type: self.event_type,
            partition_key: self.partition_key,
            published_at_ms: now_ms,
            envelope: Value::Object(envelope).to_string(),
        }
    }
}

/// Publishes one of the hub's own events (`plexhub.plugin.installed` …), stored and delivered
/// like any other. A failure is logged: what it announces has already happened.
pub async fn announce(state: &AppState, tenant: TenantId, event_type: &str, data: Value) {
    let now = state.clock.now_ms();
    let event = Draft::new(event_type, data).into_event(tenant, HUB_SOURCE, now);
    match state.bus.publish_events(tenant, &[event], now).await {
        Ok(_) => {
            state.metrics.events("published", 1);
            state.changed(Change::Events { tenant }).await;
        }
        Err(error) => tracing::warn!(%error, %tenant, event_type, "cannot record a hub event"),
    }
}

/// Runs the delivery worker until the hub shuts down, then lets deliveries in flight finish.
pub async fn run(state: AppState) {
    let settings = state.events;
    let permits = Arc::new(Semaphore::new(settings.max_in_flight));
    let wake = Arc::new(Notify::new());
    let (done, outcomes) = mpsc::unbounded_channel();
    // Deliveries a completion handed over to this hub (the next of a key), already leased.
    let (handed_over, mut next_of_keys) = mpsc::unbounded_channel();
    let lease_ms = lease_ms(&state);
    let completer = tokio::spawn(record_outcomes(
        state.clone(),
        outcomes,
        wake.clone(),
        (handed_over, lease_ms),
    ));
    let mut feed = state.feed.subscribe();
    let mut lag = tokio::time::interval(LAG_EVERY);
    lag.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_claim = tokio::time::Instant::now();
    loop {
        // Under load (little room left), let completions gather so the claim is larger.
        if permits.available_permits() < settings.max_in_flight / 4 {
            tokio::time::sleep_until(last_claim + CLAIM_GAP).await;
        }
        last_claim = tokio::time::Instant::now();
        let room = permits.available_permits().min(CLAIM_BATCH);
        let mut full = false;
        if room > 0 {
            let now = state.clock.now_ms();
            let limit = u32::try_from(room).unwrap_or(u32::MAX);
            match state.bus.claim_deliveries(now, lease_ms, limit).await {
                Ok(claimed) => {
                    full = claimed.len() == room;
                    for delivery in claimed {
                        if !dispatch(&state, &permits, &done, delivery).await {
                            break;
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot claim event deliveries; retrying"),
            }
        }
        if full {
            continue;
        }
        // Wait for a reason to look again: new events, a completed delivery, a retry's time.
        let poll = tokio::time::sleep(settings.poll_interval);
        tokio::pin!(poll);
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => {
                    finish(&permits, settings.max_in_flight, settings.delivery_timeout).await;
                    drop(done);
                    let _ = completer.await;
                    return;
                }
                () = wake.notified() => break,
                () = state.bus.deliveries_waiting() => break,
                Some(next) = next_of_keys.recv() => {
                    for delivery in next {
                        if !dispatch(&state, &permits, &done, delivery).await {
                            break;
                        }
                    }
                }
                () = &mut poll => break,
                _ = lag.tick() => publish_lag(&state).await,
                received = feed.recv() => match received {
                    Ok(FeedEvent::Change(Change::Events { .. })) | Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => break,
                    Ok(_) => {}
                },
            }
        }
    }
}

/// Sends one claimed delivery in the background once there is room; its outcome goes to
/// `done`. False once the hub is stopping (no more room is given).
async fn dispatch(
    state: &AppState,
    permits: &Arc<Semaphore>,
    done: &mpsc::UnboundedSender<(ClaimedDelivery, DeliveryOutcome)>,
    delivery: ClaimedDelivery,
) -> bool {
    let Ok(permit) = permits.clone().acquire_owned().await else {
        return false;
    };
    let (state, done) = (state.clone(), done.clone());
    tokio::spawn(async move {
        let outcome = attempt(&state, &delivery).await;
        let _ = done.send((delivery, outcome));
        drop(permit);
    });
    true
}

/// How long a claim lasts: longer than an attempt can take (the delivery timeout bounds it,
/// connection included) plus time to record its outcome. A hub that dies holding claims
/// delays those deliveries by at most this.
fn lease_ms(state: &AppState) -> i64 {
    i64::try_from(state.events.delivery_timeout.as_millis())
        .unwrap_or(i64::MAX / 4)
        .saturating_add(3_000)
}

/// Waits (bounded) for the deliveries in flight at shutdown.
async fn finish(permits: &Semaphore, total: usize, timeout: Duration) {
    let all = u32::try_from(total).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(timeout, permits.acquire_many(all)).await;
}

async fn publish_lag(state: &AppState) {
    if let Ok(subscriptions) = state.bus.subscriptions(None).await {
        let lags: Vec<(String, i64)> = subscriptions
            .into_iter()
            .map(|subscription| (subscription.id, subscription.pending))
            .collect();
        state.metrics.subscription_lag(&lags);
    }
}

/// One attempt, and what follows from it.
async fn attempt(state: &AppState, delivery: &ClaimedDelivery) -> DeliveryOutcome {
    let result = post(state, delivery).await;
    let now = state.clock.now_ms();
    match result {
        Ok(()) => {
            state.metrics.events("delivered", 1);
            let waited = now.saturating_sub(delivery.published_at_ms).max(0);
            state.metrics.event_delivered_after(waited as f64 / 1000.0);
            DeliveryOutcome::Acknowledged
        }
        Err(error) => {
            state.metrics.events("failed", 1);
            let attempts = delivery.attempts + 1;
            tracing::info!(subscription = %delivery.subscription_id, seq = delivery.seq, attempts, %error, "event delivery failed");
            if attempts >= delivery.max_attempts {
                state.metrics.events("dead_lettered", 1);
                DeliveryOutcome::DeadLetter { error }
            } else {
                let millis =
                    |duration: Duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
                let wait = backoff_ms(
                    attempts,
                    millis(state.events.retry_base),
                    millis(state.events.retry_max),
                );
                DeliveryOutcome::Retry {
                    retry_at_ms: now.saturating_add(wait),
                    error,
                }
            }
        }
    }
}

/// POSTs the event to the subscriber; `Ok` on a 2xx answer.
async fn post(state: &AppState, delivery: &ClaimedDelivery) -> Result<(), String> {
    let url = format!(
        "{}{}",
        delivery.base_url.trim_end_matches('/'),
        delivery.endpoint
    );
    let uri: Uri = url
        .parse()
        .map_err(|error| format!("cannot deliver to {url}: {error}"))?;
    let tenant_id = delivery.tenant_id.to_string();
    let request_id = format!("evt-{}-{}", delivery.seq, delivery.subscription_id);
    let mut request = Request::post(uri)
        .header(CONTENT_TYPE, "application/cloudevents+json; charset=utf-8")
        .header("x-tenant-id", &tenant_id)
        .header("x-request-id", &request_id)
        .header("x-plexhub-subscription", &delivery.subscription_id)
        .header(
            "x-plexhub-delivery-attempt",
            (delivery.attempts + 1).to_string(),
        );
    for (name, value) in [
        ("x-tenant-slug", delivery.tenant_slug.as_str()),
        ("x-caller-plugin-id", delivery.source.as_str()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            request = request.header(name, value);
        }
    }
    let signed = SignedRequest {
        method: "POST",
        path: &delivery.endpoint,
        query: "",
        tenant_id: &tenant_id,
        caller: &delivery.source,
        request_id: &request_id,
        user_id: "",
        workspace_id: "",
    };
    let subscriber = PluginId::parse(&delivery.plugin_id)
        .map_err(|error| format!("cannot sign for {}: {error}", delivery.plugin_id))?;
    let signing = crate::gateway::target_signing(state, delivery.tenant_id, &subscriber)
        .await
        .map_err(|error| format!("cannot sign the delivery: {}", error.message()))?;
    if let Some(signature) = state.gateway.sign(&signing, &signed, state.clock.now_ms()) {
        request = request.header(SIGNATURE_HEADER, signature);
    }
    let request = request
        .body(Body::from(delivery.envelope.clone()))
        .map_err(|error| format!("cannot build the delivery: {error}"))?;
    let timeout = state.events.delivery_timeout;
    match tokio::time::timeout(timeout, state.gateway.client().request(request)).await {
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        Ok(Err(error)) => Err(format!("cannot reach the subscriber at {url}: {error}")),
        Ok(Ok(answer)) if answer.status().is_success() => Ok(()),
        Ok(Ok(answer)) => Err(format!("the subscriber answered {}", answer.status())),
    }
}

/// Records outcomes in batches (whatever is queued, in one transaction) and passes the
/// deliveries the completion handed to this hub (the next of each key that ended) to the
/// worker. Once the hub is stopping nothing is handed over to it (the next of a key stays due
/// for the other hubs), and the worker is woken instead.
async fn record_outcomes(
    state: AppState,
    mut outcomes: mpsc::UnboundedReceiver<(ClaimedDelivery, DeliveryOutcome)>,
    wake: Arc<Notify>,
    (handed_over, lease_ms): (mpsc::UnboundedSender<Vec<ClaimedDelivery>>, i64),
) {
    while let Some(first) = outcomes.recv().await {
        let mut batch = vec![first];
        while batch.len() < COMPLETE_BATCH {
            match outcomes.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (mut tries, mut recorded) = (0, false);
        loop {
            // The next delivery of each key that ends here comes back leased to this hub: it
            // is sent at once, without a claim.
            match state
                .bus
                .complete_deliveries(
                    &batch,
                    state.clock.now_ms(),
                    (!state.shutdown.is_cancelled()).then_some(lease_ms),
                )
                .await
            {
                Ok(next) => {
                    if !next.is_empty() {
                        let _ = handed_over.send(next);
                    }
                    recorded = true;
                    break;
                }
                Err(error) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(%error, "cannot record delivery outcomes; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => {
                    // The leases run out and the deliveries are made again: at least once.
                    tracing::error!(%error, count = batch.len(), "delivery outcomes lost; they will be delivered again");
                    break;
                }
            }
        }
        // The next delivery of a key that ended was handed over; a wake-up is for room freed by
        // unkeyed deliveries, for what could not be handed over (the hub stopping), or when the
        // outcomes could not be recorded.
        let unkeyed = batch
            .iter()
            .any(|(delivery, _)| delivery.partition_key.is_empty());
        if unkeyed || !recorded || state.shutdown.is_cancelled() {
            wake.notify_one();
        }
    }
}
