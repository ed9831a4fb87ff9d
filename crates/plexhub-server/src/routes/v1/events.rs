//! `/api/v1/events`, `/api/v1/subscriptions`, `/api/v1/dead-letters`: publishing, the pull
//! stream with replay, subscriptions with their lag, and dead letters.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use plexhub_core::events::{Pattern, Topic, check_publish, may_read};
use plexhub_core::manifest::DependencySpec;
use plexhub_store::feed::{Change, FeedEvent};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Caller, TenantScope};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::events::Draft;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::{AppState, rfc3339};
use crate::watch::{self, Batch, ChangeLog};

/// Most events in one publish request.
const MAX_BATCH: usize = 100;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish))
        .routes(routes!(stream))
        .routes(routes!(list_subscriptions))
        .routes(routes!(list_dead_letters))
        .routes(routes!(retry_dead_letter))
        .routes(routes!(drop_dead_letter))
}

/// One event as a publisher sends it (CloudEvents attributes; the hub sets `specversion`,
/// `source`, `time` and `tenantid`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedEvent {
    /// Event type under the plugin's own `plugin.<name>.…`.
    #[serde(rename = "type")]
    event_type: String,
    /// Payload.
    #[serde(default)]
    data: Value,
    /// Unique per publisher; repeating one is harmless (accepted once). Default: a new UUID.
    id: Option<String>,
    /// `1.0` if given.
    specversion: Option<String>,
    /// Media type of `data` (default `application/json`).
    datacontenttype: Option<String>,
    /// What the event is about.
    subject: Option<String>,
    /// Events with one key reach each subscriber in publication order.
    partitionkey: Option<String>,
    /// Default: the event's id.
    correlationid: Option<String>,
    /// The event that caused this one.
    causationid: Option<String>,
}

/// What publishing did to one event.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishResult {
    id: String,
    /// Position in the tenant's log.
    seq: i64,
    /// The same id was published before: nothing new was stored.
    duplicate: bool,
}

/// Answer of a publish: every event stored.
#[derive(Serialize, ToSchema)]
pub struct PublishAnswer {
    events: Vec<PublishResult>,
}

fn check_text(field: &str, value: Option<&String>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(text) if text.is_empty() || text.chars().count() > max => Err(ApiError::new(
            ErrorCode::InvalidBody,
            format!("{field} must be 1 to {max} characters"),
        )),
        _ => Ok(()),
    }
}

fn draft(scope: &TenantScope, value: Value) -> Result<Draft, ApiError> {
    let event: PublishedEvent = serde_json::from_value(value).map_err(|error| {
        let hint = if ["source", "tenantid", "time"]
            .iter()
            .any(|field| error.to_string().contains(&format!("`{field}`")))
        {
            " (source, tenantid and time are set by the hub)"
        } else {
            ""
        };
        ApiError::new(ErrorCode::InvalidBody, format!("{error}{hint}"))
    })?;
    if event.specversion.as_deref().is_some_and(|v| v != "1.0") {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            "specversion must be \"1.0\"",
        ));
    }
    check_text("id", event.id.as_ref(), 200)?;
    check_text("partitionkey", event.partitionkey.as_ref(), 200)?;
    let topic = Topic::parse(&event.event_type)
        .map_err(|message| ApiError::new(ErrorCode::InvalidBody, format!("type: {message}")))?;
    if let Some(plugin) = scope.calling_plugin() {
        check_publish(plugin, &topic).map_err(|denial| {
            ApiError::new(ErrorCode::TopicNotOwned, format!("{}: {denial}", topic))
        })?;
    }
    Ok(Draft {
        id: event.id,
        event_type: event.event_type,
        data: event.data,
        content_type: event.datacontenttype,
        subject: event.subject,
        partition_key: event.partitionkey,
        correlation_id: event.correlationid,
        causation_id: event.causationid,
    })
}

/// Publish one event, or a batch of up to 100 (a JSON array). 202 once every event is stored
/// in the database; deliveries follow.
#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = PublishedEvent,
    responses((status = 202, body = PublishAnswer),
        (status = 400, description = "INVALID_BODY", body = ErrorEnvelope),
        (status = 403, description = "TOPIC_NOT_OWNED, FORBIDDEN (the admin does not publish)", body = ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE: one event over the size limit", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn publish(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Response, ApiError> {
    let Some(source) = scope.calling_plugin().cloned() else {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "events are published by plugins, with their own credential",
        ));
    };
    let items = match body {
        Value::Array(items) => items,
        single => vec![single],
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            format!("send 1 to {MAX_BATCH} events, got {}", items.len()),
        ));
    }
    let now = state.clock.now_ms();
    let tenant = scope.tenant.id;
    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let draft = draft(&scope, item).map_err(|error| {
            ApiError::new(error.code(), format!("event {index}: {}", error.message()))
        })?;
        let event = draft.into_event(tenant, source.as_str(), now);
        if event.envelope.len() > state.events.max_event_bytes {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "event {index} is {} bytes; the limit is {}",
                    event.envelope.len(),
                    state.events.max_event_bytes
                ),
            ));
        }
        events.push(event);
    }
    let published = state.bus.publish_events(tenant, &events, now).await?;
    let fresh = published.iter().filter(|p| !p.duplicate).count();
    state
        .metrics
        .events("published", u64::try_from(fresh).unwrap_or(0));
    if fresh > 0 {
        state.changed(Change::Events { tenant }).await;
    }
    let events = events
        .iter()
        .zip(&published)
        .map(|(event, outcome)| PublishResult {
            id: event.event_id.clone(),
            seq: outcome.seq,
            duplicate: outcome.duplicate,
        })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(PublishAnswer { events })).into_response())
}

/// Filters of the event stream.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Event types to follow (`*` one segment, final `#` the rest); default: all the caller
    /// may read.
    pattern: Option<String>,
    /// Without `Last-Event-ID`: replay the retained events published from this time on
    /// (RFC 3339, e.g. `2026-12-06T18:00:00Z`) first.
    since: Option<String>,
}

/// The tenant's event log as a stream, filtered.
struct EventLog {
    state: AppState,
    scope: TenantScope,
    pattern: Pattern,
    /// The reader's manifest dependencies (`None`: the admin reads everything).
    reader: Option<(plexhub_core::ids::PluginId, Vec<DependencySpec>)>,
}

impl ChangeLog for EventLog {
    fn concerns(&self, event: &FeedEvent) -> bool {
        match event {
            FeedEvent::Change(Change::Events { tenant }) => *tenant == self.scope.tenant.id,
            FeedEvent::Change(_) => false,
            FeedEvent::Connected | FeedEvent::Disconnected => true,
        }
    }

    async fn read_after(&self, after: i64) -> Batch {
        let tenant = self.scope.tenant.id;
        if after == i64::MAX {
            return match self.state.bus.latest_event_seq(tenant).await {
                Ok(current) => Batch::Reset { current },
                Err(_) => Batch::Failed,
            };
        }
        let read = self
            .state
            .bus
            .events_since(tenant, after.max(0), watch::BATCH)
            .await;
        let Ok(stored) = read else {
            return Batch::Failed;
        };
        let more = stored.len() == watch::BATCH as usize;
        let last = stored.last().map_or(after, |event| event.seq);
        let events = stored
            .iter()
            .filter(|stored| self.pattern.matches(&stored.event.event_type))
            .filter(|stored| {
                self.reader.as_ref().is_none_or(|(plugin, dependencies)| {
                    may_read(plugin, dependencies, &stored.event.event_type)
                })
            })
            .map(|stored| {
                Event::default()
                    .id(stored.seq.to_string())
                    .event(stored.event.event_type.clone())
                    .data(stored.event.envelope.clone())
            })
            .collect();
        Batch::Events { events, last, more }
    }
}

/// Server-Sent Events of the tenant's events the caller may read (the hub's, its own, those
/// of plugins its manifest depends on), from now on; with `Last-Event-ID: <seq>` it replays
/// the retained log after that position first (`0`: everything retained), with `?since=<time>`
/// the retained events published from that time on.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", params(StreamQuery),
    responses((status = 200, description = "text/event-stream: `id` = seq, `event` = type, `data` = the CloudEvent"),
        (status = 400, description = "INVALID_PARAMETER", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn stream(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, std::convert::Infallible>>>, ApiError> {
    let pattern = Pattern::parse(query.pattern.as_deref().unwrap_or("#")).map_err(|message| {
        ApiError::new(ErrorCode::InvalidParameter, format!("pattern: {message}"))
    })?;
    let reader = match &scope.caller {
        Caller::Admin => None,
        // Refused when the scope is made already; never read as the admin.
        Caller::Shell(_) => {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "a shell credential does not read events",
            ));
        }
        Caller::Plugin(plugin) => {
            let profile =
                crate::gateway::caller_profile(&state, &scope.tenant, &plugin.plugin_id).await?;
            let dependencies = profile
                .as_ref()
                .as_ref()
                .map(|profile| profile.dependencies.clone())
                .unwrap_or_default();
            Some((plugin.plugin_id.clone(), dependencies))
        }
    };
    let since = match query.since.as_deref() {
        None => None,
        Some(text) => {
            let time = humantime::parse_rfc3339_weak(text).map_err(|error| {
                ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("since: {error} (RFC 3339, e.g. 2026-12-06T18:00:00Z)"),
                )
            })?;
            let ms = time
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| {
                    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
                });
            Some(ms)
        }
    };
    let resume = match (watch::resume_id(&headers), since) {
        (Some(id), _) => Some(id),
        (None, Some(ms)) => Some(state.bus.event_seq_at(scope.tenant.id, ms).await?),
        (None, None) => None,
    };
    let log = EventLog {
        state: state.clone(),
        scope,
        pattern,
        reader,
    };
    Ok(watch::follow(state, log, resume).await)
}

/// A subscription with its counters.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    id: String,
    plugin_id: String,
    pattern: String,
    endpoint: String,
    max_attempts: u32,
    /// Events acknowledged.
    delivered: i64,
    /// Events sent to the dead letters.
    dead_lettered: i64,
    /// Deliveries waiting.
    lag: i64,
    created_at: String,
}

/// The tenant's subscriptions.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    subscriptions: Vec<SubscriptionView>,
}

/// The tenant's subscriptions (created from manifests on activation) with their lag.
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "events",
    responses((status = 200, body = SubscriptionList)), security(("bearer" = [])))]
async fn list_subscriptions(
    scope: TenantScope,
    State(state): State<AppState>,
) -> Result<Json<SubscriptionList>, ApiError> {
    let subscriptions = state.bus.subscriptions(Some(scope.tenant.id)).await?;
    Ok(Json(SubscriptionList {
        subscriptions: subscriptions
            .into_iter()
            .map(|s| SubscriptionView {
                id: s.id,
                plugin_id: s.plugin_id,
                pattern: s.spec.pattern,
                endpoint: s.spec.endpoint,
                max_attempts: s.spec.max_attempts,
                delivered: s.delivered,
                dead_lettered: s.dead_lettered,
                lag: s.pending,
                created_at: rfc3339(s.created_at_ms),
            })
            .collect(),
    }))
}

/// Filters of the dead-letter list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Only this subscription's.
    subscription: Option<String>,
    /// At most this many (1-1000, default 100), oldest first.
    limit: Option<u32>,
}

/// An event a subscription gave up on.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    id: String,
    subscription_id: String,
    plugin_id: String,
    seq: i64,
    attempts: u32,
    last_error: String,
    failed_at: String,
    /// The CloudEvent.
    event: Value,
}

/// Dead letters.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterList {
    dead_letters: Vec<DeadLetterView>,
}

fn dead_letter_view(letter: plexhub_store::DeadLetter) -> DeadLetterView {
    DeadLetterView {
        id: letter.id,
        subscription_id: letter.subscription_id,
        plugin_id: letter.plugin_id,
        seq: letter.event.seq,
        attempts: letter.attempts,
        last_error: letter.last_error,
        failed_at: rfc3339(letter.failed_at_ms),
        event: serde_json::from_str(&letter.event.event.envelope).unwrap_or(Value::Null),
    }
}

/// The tenant's dead letters (a plugin sees those of its own subscriptions).
#[utoipa::path(get, path = "/api/v1/dead-letters", tag = "events", params(DeadLetterQuery),
    responses((status = 200, body = DeadLetterList)), security(("bearer" = [])))]
async fn list_dead_letters(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DeadLetterQuery>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let letters = state
        .bus
        .dead_letters(scope.tenant.id, query.subscription.as_deref(), limit)
        .await?;
    let caller = scope.calling_plugin().map(ToString::to_string);
    Ok(Json(DeadLetterList {
        dead_letters: letters
            .into_iter()
            .filter(|letter| {
                caller
                    .as_ref()
                    .is_none_or(|plugin| *plugin == letter.plugin_id)
            })
            .map(dead_letter_view)
            .collect(),
    }))
}

/// The dead letter `id` of the tenant, if the caller is the admin or its subscriber.
async fn own_dead_letter(
    scope: &TenantScope,
    state: &AppState,
    id: &str,
) -> Result<plexhub_store::DeadLetter, ApiError> {
    let letter = state
        .bus
        .dead_letter(scope.tenant.id, id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::DeadLetterNotFound,
                format!("no dead letter {id} in this tenant"),
            )
        })?;
    match scope.calling_plugin() {
        Some(plugin) if plugin.as_str() != letter.plugin_id => Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "dead letter {id} belongs to {}'s subscription",
                letter.plugin_id
            ),
        )),
        _ => Ok(letter),
    }
}

/// Queue a dead letter's event again for its subscription (attempts start over).
#[utoipa::path(post, path = "/api/v1/dead-letters/{id}/retry", tag = "events",
    responses((status = 202, description = "queued again"),
        (status = 403, description = "FORBIDDEN: another plugin's", body = ErrorEnvelope),
        (status = 404, description = "DEAD_LETTER_NOT_FOUND", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn retry_dead_letter(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    own_dead_letter(&scope, &state, &id).await?;
    let now = state.clock.now_ms();
    if !state
        .bus
        .retry_dead_letter(scope.tenant.id, &id, now)
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::DeadLetterNotFound,
            format!("dead letter {id} was retried or dropped meanwhile"),
        ));
    }
    state
        .changed(Change::Events {
            tenant: scope.tenant.id,
        })
        .await;
    Ok((StatusCode::ACCEPTED, Json(json!({ "retried": id }))).into_response())
}

/// Delete a dead letter.
#[utoipa::path(delete, path = "/api/v1/dead-letters/{id}", tag = "events",
    responses((status = 204, description = "deleted"),
        (status = 403, description = "FORBIDDEN: another plugin's", body = ErrorEnvelope),
        (status = 404, description = "DEAD_LETTER_NOT_FOUND", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn drop_dead_letter(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    own_dead_letter(&scope, &state, &id).await?;
    if state.bus.drop_dead_letter(scope.tenant.id, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            ErrorCode::DeadLetterNotFound,
            format!("dead letter {id} was retried or dropped meanwhile"),
        ))
    }
}
