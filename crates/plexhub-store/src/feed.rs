//! The change feed: how one hub instance tells the others (and its own watchers) that
//! something changed, so caches are invalidated everywhere. In-process it is a tokio broadcast;
//! in scaled mode every change is also published on a Redis channel that all instances follow.
//! While the Redis subscription is down, [`ChangeFeed::is_connected`] is false and caches must
//! not be trusted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use plexhub_core::data::{DataKey, Namespace};
use plexhub_core::ids::ServiceName;
use plexhub_core::tenant::TenantId;
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// The Redis channel all hub instances share.
const CHANNEL: &str = "plexhub:changes";
/// Queue length per local subscriber before it is told it lagged.
const LOCAL_CAPACITY: usize = 4096;
/// How long publishing to Redis may take before the change is only delivered locally.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// Changes waiting to be published to Redis before a writer waits for room.
const OUTBOX_CAPACITY: usize = 16_384;
/// After a failed publish, how long queued changes are dropped instead of tried (the other
/// instances' subscriptions are down too, and they clear their caches when they reconnect).
const PUBLISH_BACKOFF: Duration = Duration::from_millis(250);
/// Pause between attempts to re-subscribe after the Redis connection dropped.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// Every instance publishes a beat this often, so that followers can tell a silent channel
/// from a dead (or frozen) Redis.
const BEAT_EVERY: Duration = Duration::from_millis(100);
/// A subscription that hears nothing (not even a beat) for this long counts as lost: caches are
/// bypassed until it is back. It bounds how long a frozen Redis can leave a stale cache trusted.
const SILENCE_LIMIT: Duration = Duration::from_millis(500);
/// What a beat carries (not a change).
const BEAT: &str = "beat";

/// Something that changed; the cache keys it invalidates follow from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// Registry entries of these services changed.
    Services {
        /// Their tenant.
        tenant: TenantId,
        /// The services.
        names: Vec<ServiceName>,
    },
    /// Something tenant-wide changed (installations, status, deletion): forget the tenant.
    Tenant {
        /// The tenant.
        tenant: TenantId,
    },
    /// A shared-data entry was written, deleted or expired.
    Data {
        /// Its tenant.
        tenant: TenantId,
        /// Namespace.
        namespace: Namespace,
        /// Key.
        key: DataKey,
    },
    /// Events were published in a tenant: hubs look for deliveries, streams read the log.
    Events {
        /// The tenant.
        tenant: TenantId,
    },
    /// A credential was revoked.
    CredentialRevoked {
        /// Its id.
        id: String,
    },
    /// A hub's circuit breaker for a plugin replica opened (until `open_until_ms`) or closed
    /// (`open_until_ms` 0): the other hubs stop (or resume) calling it too.
    Breaker {
        /// The replica's breaker key.
        replica: String,
        /// When calls may probe again, epoch ms; 0 when closed.
        open_until_ms: i64,
    },
}

/// What subscribers receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// A change, from this instance or another.
    Change(Change),
    /// The Redis subscription is (again) established: caches may be trusted after clearing.
    Connected,
    /// The Redis subscription is lost: caches must not be trusted until `Connected`.
    Disconnected,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    change: Change,
}

struct RedisLink {
    client: redis::Client,
    publisher: OnceCell<redis::aio::ConnectionManager>,
    origin: String,
    /// Encoded changes for the publishing task: a write never waits on Redis itself.
    outbox: mpsc::Sender<String>,
}

/// A handle on the feed; cheap to clone.
#[derive(Clone)]
pub struct ChangeFeed {
    local: broadcast::Sender<FeedEvent>,
    redis: Option<Arc<RedisLink>>,
    connected: Arc<AtomicBool>,
}

impl ChangeFeed {
    /// A feed for a single hub instance.
    pub fn in_process() -> Self {
        Self {
            local: broadcast::channel(LOCAL_CAPACITY).0,
            redis: None,
            connected: Arc::new(AtomicBool::new(true)),
        }
    }

    /// A feed shared with other instances through Redis. Follows the channel in a background
    /// task until `shutdown` is cancelled, reconnecting after failures.
    pub fn with_redis(client: redis::Client, shutdown: CancellationToken) -> Self {
        let (outbox, queued) = mpsc::channel(OUTBOX_CAPACITY);
        let link = Arc::new(RedisLink {
            client,
            publisher: OnceCell::new(),
            origin: uuid::Uuid::new_v4().to_string(),
            outbox,
        });
        let feed = Self {
            local: broadcast::channel(LOCAL_CAPACITY).0,
            redis: Some(link.clone()),
            connected: Arc::new(AtomicBool::new(false)),
        };
        tokio::spawn(feed.clone().follow_redis(shutdown.clone()));
        tokio::spawn(publish_queued(link.clone(), queued));
        tokio::spawn(beat(link, shutdown));
        feed
    }

    /// Whether other instances may write the same database (the feed goes through Redis).
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Whether changes of other instances currently reach this one.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Receives every change published after this call.
    pub fn subscribe(&self) -> broadcast::Receiver<FeedEvent> {
        self.local.subscribe()
    }

    /// Delivers a change to this instance's subscribers at once, and queues it for the other
    /// instances (a task publishes it to Redis): a write waits on Redis only when the queue is
    /// full. A Redis failure is logged: the other instances will have lost their subscription
    /// too and distrust their caches until they reconnect.
    pub async fn publish(&self, change: Change) {
        let _ = self.local.send(FeedEvent::Change(change.clone()));
        let Some(link) = &self.redis else { return };
        let payload = match serde_json::to_string(&Envelope {
            origin: link.origin.clone(),
            change,
        }) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "cannot encode a change");
                return;
            }
        };
        if link.outbox.send(payload).await.is_err() {
            tracing::warn!("the change feed's publisher has stopped");
        }
    }

    fn set_connected(&self, connected: bool) {
        if self.connected.swap(connected, Ordering::AcqRel) != connected {
            let event = if connected {
                tracing::info!("change feed connected to Redis");
                FeedEvent::Connected
            } else {
                tracing::warn!("change feed lost Redis; caches are bypassed until it is back");
                FeedEvent::Disconnected
            };
            let _ = self.local.send(event);
        }
    }

    async fn follow_redis(self, shutdown: CancellationToken) {
        let Some(link) = self.redis.clone() else {
            return;
        };
        while !shutdown.is_cancelled() {
            let subscribed = tokio::time::timeout(SILENCE_LIMIT, async {
                let mut pubsub = link.client.get_async_pubsub().await?;
                pubsub.subscribe(CHANNEL).await?;
                Ok::<_, redis::RedisError>(pubsub)
            })
            .await;
            match subscribed {
                Err(_) => tracing::debug!("Redis did not answer the subscription in time"),
                Ok(Err(error)) => tracing::debug!(%error, "cannot subscribe to the change feed"),
                Ok(Ok(mut pubsub)) => {
                    self.set_connected(true);
                    let mut messages = pubsub.on_message();
                    loop {
                        let message = tokio::select! {
                            () = shutdown.cancelled() => return,
                            message = tokio::time::timeout(SILENCE_LIMIT, messages.next()) => message,
                        };
                        let Ok(message) = message else {
                            tracing::warn!("the change feed went silent (no beat for 500 ms)");
                            break;
                        };
                        let Some(message) = message else { break };
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        if payload == BEAT {
                            continue;
                        }
                        match serde_json::from_str::<Envelope>(&payload) {
                            Ok(envelope) if envelope.origin != link.origin => {
                                let _ = self.local.send(FeedEvent::Change(envelope.change));
                            }
                            Ok(_) => {}
                            Err(error) => tracing::warn!(%error, "ignoring a malformed change"),
                        }
                    }
                }
            }
            self.set_connected(false);
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RECONNECT_DELAY) => {}
            }
        }
    }
}

/// Publishes queued changes to Redis in order. After a failure, what is queued in the next
/// [`PUBLISH_BACKOFF`] is dropped (logged) rather than tried one timeout at a time.
async fn publish_queued(link: Arc<RedisLink>, mut queued: mpsc::Receiver<String>) {
    let mut failing_until: Option<tokio::time::Instant> = None;
    let mut dropped = 0_u64;
    while let Some(payload) = queued.recv().await {
        if let Some(until) = failing_until {
            if tokio::time::Instant::now() < until {
                dropped += 1;
                continue;
            }
            failing_until = None;
        }
        let attempt = async {
            let publisher = link
                .publisher
                .get_or_try_init(|| redis::aio::ConnectionManager::new(link.client.clone()))
                .await?;
            publisher
                .clone()
                .publish::<_, _, ()>(CHANNEL, payload)
                .await
        };
        let failure = match tokio::time::timeout(PUBLISH_TIMEOUT, attempt).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some("timed out".to_owned()),
        };
        match failure {
            None if dropped > 0 => {
                tracing::warn!(dropped, "changes were not published while Redis failed");
                dropped = 0;
            }
            None => {}
            Some(error) => {
                tracing::warn!(%error, "cannot publish a change to Redis");
                failing_until = Some(tokio::time::Instant::now() + PUBLISH_BACKOFF);
            }
        }
    }
}

/// Publishes a beat every [`BEAT_EVERY`] (through the outbox, behind the changes) until
/// `shutdown`.
async fn beat(link: Arc<RedisLink>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(BEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        // A full outbox means Redis is failing already: the beat is not needed then.
        let _ = link.outbox.try_send(BEAT.to_owned());
    }
}
