//! Events: publishing the plugin's own, and receiving its subscriptions' deliveries.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use plexhub_core::events::Pattern;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::{Client, Error};
use crate::verify::HubRequest;

/// An event to publish, with the optional CloudEvents attributes (it round-trips through JSON,
/// so it can wait in an outbox).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutgoingEvent {
    /// Under the plugin's own `plugin.<name>.…`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Payload.
    pub data: Value,
    /// Unique per publisher; publishing the same id again is harmless (default: new UUID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Events with one key reach each subscriber in publication order.
    #[serde(rename = "partitionkey", skip_serializing_if = "Option::is_none")]
    pub partition_key: Option<String>,
    /// What the event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Ties events of one flow together (default: the event's id).
    #[serde(rename = "correlationid", skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The event that caused this one.
    #[serde(rename = "causationid", skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
}

/// What the hub stored for a published event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Published {
    /// The event's id.
    pub id: String,
    /// Its position in the tenant's log.
    pub seq: i64,
    /// The id had been published before; nothing new was stored.
    pub duplicate: bool,
}

impl Client {
    /// Publishes an event of this plugin (`plugin.<name>.…`), durably stored by the hub before
    /// this returns.
    ///
    /// ```no_run
    /// # async fn example(hub: plexhub_sdk::Client) -> Result<(), plexhub_sdk::Error> {
    /// hub.publish("plugin.crm.contact.created", &serde_json::json!({"id": "contact-5"})).await?;
    /// # Ok(()) }
    /// ```
    pub async fn publish<T: Serialize>(
        &self,
        event_type: &str,
        data: &T,
    ) -> Result<Published, Error> {
        let event = OutgoingEvent {
            event_type: event_type.to_owned(),
            data: serde_json::to_value(data).map_err(|e| Error::Unexpected(e.to_string()))?,
            ..OutgoingEvent::default()
        };
        let mut published = self.publish_all(&[event]).await?;
        published
            .pop()
            .ok_or_else(|| Error::Unexpected("the hub stored no event".to_owned()))
    }

    /// Publishes up to 100 events at once, in order.
    pub async fn publish_all(&self, events: &[OutgoingEvent]) -> Result<Vec<Published>, Error> {
        let body = serde_json::to_value(events).map_err(|e| Error::Unexpected(e.to_string()))?;
        let answer = self
            .send_json(reqwest::Method::POST, "/api/v1/events", &body)
            .await?;
        serde_json::from_value(answer["events"].clone())
            .map_err(|error| Error::Unexpected(format!("the hub's answer: {error}")))
    }
}

/// A delivered event (CloudEvents 1.0 with the hub's extensions).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    /// Id, unique per source.
    pub id: String,
    /// The publishing plugin, or `plexhub`.
    pub source: String,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Publication time (RFC 3339).
    pub time: String,
    /// The tenant (UUID).
    #[serde(rename = "tenantid")]
    pub tenant_id: String,
    /// Payload.
    #[serde(default)]
    pub data: Value,
    /// Partition key, if the publisher gave one.
    #[serde(rename = "partitionkey", default)]
    pub partition_key: Option<String>,
    /// Correlation id.
    #[serde(rename = "correlationid", default)]
    pub correlation_id: Option<String>,
}

type Handler = Arc<
    dyn Fn(HubRequest, Event) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// Receives a plugin's event deliveries: checks the hub's signature and calls every handler
/// whose pattern matches the event's type. A handler's error answers 500, so the hub tries
/// again later (and in the end moves the event to the dead letters); an event no handler
/// wants is acknowledged.
///
/// ```no_run
/// # fn example() -> axum::Router {
/// use plexhub_sdk::{Event, EventRouter, HubRequest};
/// EventRouter::new()
///     .on("plugin.crm.contact.*", |hub: HubRequest, event: Event| async move {
///         println!("{} in {}: {}", event.event_type, hub.tenant_slug, event.data);
///         Ok(())
///     })
///     .into_router("/events")
/// # }
/// ```
#[derive(Clone, Default)]
pub struct EventRouter {
    handlers: Vec<(Pattern, Handler)>,
}

impl std::fmt::Debug for EventRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let patterns: Vec<&str> = self.handlers.iter().map(|(p, _)| p.as_str()).collect();
        f.debug_struct("EventRouter")
            .field("patterns", &patterns)
            .finish()
    }
}

impl EventRouter {
    /// A router without handlers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a handler for the event types `pattern` matches (`*` one segment, final `#` the
    /// rest). Panics on an invalid pattern (a programming error).
    pub fn on<F, Fut>(mut self, pattern: &str, handler: F) -> Self
    where
        F: Fn(HubRequest, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let pattern = Pattern::parse(pattern)
            .unwrap_or_else(|error| panic!("invalid event pattern {pattern:?}: {error}"));
        let handler: Handler = Arc::new(move |hub, event| Box::pin(handler(hub, event)));
        self.handlers.push((pattern, handler));
        self
    }

    /// An axum router that takes deliveries at `POST path` (the subscription's `endpoint`).
    pub fn into_router<S: Clone + Send + Sync + 'static>(self, path: &str) -> Router<S> {
        Router::new()
            .route(path, post(dispatch))
            .with_state(Arc::new(self))
    }
}

async fn dispatch(
    hub: HubRequest,
    State(router): State<Arc<EventRouter>>,
    Json(event): Json<Event>,
) -> (StatusCode, Json<Value>) {
    for (pattern, handler) in &router.handlers {
        if pattern.matches(&event.event_type)
            && let Err(error) = handler(hub.clone(), event.clone()).await
        {
            let body = json!({ "error": { "code": "HANDLER_FAILED", "message": error } });
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(body));
        }
    }
    (StatusCode::OK, Json(json!({ "acknowledged": event.id })))
}
