//! The event bus on NATS JetStream: the events port ([`EventStore`]) for deployments that
//! outgrow a database used as a queue. The log, the delivery state and the dead letters live in
//! JetStream; subscriptions (declared by manifests, changed with installations) and their
//! counters stay in the database beside the installations they belong to.
//!
//! Layout, per tenant (its id in hex, `T`), so one tenant's consumers can never bind another's
//! subjects (a consumer's filter lies inside its stream's subjects):
//! - stream `PLEXHUB_EV_T`, subjects `plexhub.ev.T.>`: the log. An event of type `a.b.c` is
//!   stored on `plexhub.ev.T.<part>.a.b.c`, `<part>` = `u` without a partition key, else the
//!   key's partition `0`…`partitions-1` (a hash of the key). Its stream sequence is its position.
//! - stream `PLEXHUB_RT_T`, subjects `plexhub.rt.T.>`: retried dead letters, one subject per
//!   subscription, so a retry reaches that subscription alone.
//! - stream `PLEXHUB_DL_T`, subjects `plexhub.dl.T.>`: dead letters (one message each, on
//!   `plexhub.dl.T.<subscription>`; its sequence is its id). Never aged out.
//!
//! Each subscription has durable pull consumers shared by every hub: one per partition with
//! one message in flight at most (so each key is delivered in order, a retry holding its
//! partition), one for unkeyed events and one for its retries (many in flight). A hub pulls
//! from every consumer and hands what it receives to the delivery worker through
//! [`EventStore::claim_deliveries`]; [`EventStore::complete_deliveries`] acknowledges, asks for
//! a redelivery after the backoff (`NAK` with a delay), or stores a dead letter and then
//! terminates the message. The hub counts attempts itself (the message's delivery count) and
//! the consumers redeliver without limit: JetStream's own `max_deliver` would drop the message
//! with only an advisory, which a crashed hub would miss.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::message::Acker;
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use async_nats::jetstream::{self, AckKind, Context};
use async_trait::async_trait;
use futures::StreamExt;
use plexhub_core::events::Pattern;
use plexhub_core::ids::PluginId;
use plexhub_core::tenant::TenantId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{
    ClaimedDelivery, DeadLetter, DeliveryOutcome, EventStore, NewEvent, OutcomeCount, Published,
    Store, StoreError, StoreResult, StoredEvent, Subscription, SubscriptionSpec,
    SubscriptionTarget,
};

/// Header with the publication time (epoch ms, the hub's clock).
const PUBLISHED_HEADER: &str = "Plexhub-Published";
/// Header of a retried dead letter: the event's position in the log.
const SEQ_HEADER: &str = "Plexhub-Seq";
/// How long a hub waits before it pulls again from a consumer that failed.
const PULL_PAUSE: Duration = Duration::from_secs(1);
/// How often a hub reads the subscriptions again (new ones, gone ones, activations).
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// Streams, partitions and limits of the JetStream bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JetStreamSettings {
    /// Partitions of each subscription's keyed events: at most this many keyed deliveries of
    /// one subscription are in flight at once (one per partition).
    pub partitions: u16,
    /// How long events stay in a tenant's log (the stream's `max_age`).
    pub retention: Duration,
    /// Largest size of a tenant's log in bytes (the oldest go first); `None`: unlimited.
    pub max_bytes: Option<i64>,
    /// Copies of each stream in a JetStream cluster.
    pub replicas: usize,
    /// How long a repeated event id of one source is recognised as a duplicate.
    pub duplicate_window: Duration,
    /// How long a hub may hold a delivery before JetStream gives it to another hub (longer than
    /// an attempt can take).
    pub ack_wait: Duration,
    /// Unkeyed deliveries (and retried dead letters) of one subscription in flight at most,
    /// and deliveries a hub receives ahead of its worker.
    pub max_in_flight: usize,
}

impl Default for JetStreamSettings {
    fn default() -> Self {
        Self {
            partitions: 16,
            retention: Duration::from_secs(7 * 24 * 3600),
            max_bytes: None,
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            ack_wait: Duration::from_secs(13),
            max_in_flight: 512,
        }
    }
}

/// A failure of the JetStream bus (connection, stream or consumer requests, publish acks).
#[derive(Debug, thiserror::Error)]
#[error("event bus (JetStream): {0}")]
pub struct BusError(String);

fn bus_error(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Bus(BusError(format!("{what}: {error}")))
}

/// The event bus on JetStream. Cheap to clone; its pullers stop with the token it was given.
#[derive(Clone)]
pub struct JetStreamBus {
    inner: Arc<Inner>,
}

/// A received delivery and the handle that acknowledges it.
type Received = (ClaimedDelivery, Acker);

struct Inner {
    store: Arc<dyn Store>,
    js: Context,
    settings: JetStreamSettings,
    /// Tenants whose streams this hub has created or updated since it started.
    streams: Mutex<HashSet<TenantId>>,
    /// Subscriptions by id, as last read from the database.
    targets: Mutex<HashMap<String, SubscriptionTarget>>,
    /// When the subscriptions were last read (start of the read); reads are serialized.
    loaded: tokio::sync::Mutex<tokio::time::Instant>,
    /// The pullers of each subscription.
    pullers: Mutex<HashMap<String, CancellationToken>>,
    received: mpsc::Sender<Received>,
    inbox: tokio::sync::Mutex<mpsc::Receiver<Received>>,
    arrived: Notify,
    /// Deliveries handed to the worker, by lease token.
    held: Mutex<HashMap<String, Acker>>,
    /// Outcomes not yet added to the subscriptions' counters in the database, by
    /// subscription: (delivered, dead-lettered). Written by a task of their own, so that no
    /// acknowledgement waits for the database.
    counts: Mutex<HashMap<String, (i64, i64)>>,
    /// Rung when there are counts to write.
    counted: Notify,
    /// Held while counts are written (a reader of the counters waits for this hub's).
    counting: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
}

/// What the envelope says that the bus needs.
#[derive(Deserialize)]
struct EnvelopeIds {
    id: String,
    source: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    partitionkey: Option<String>,
}

/// A dead letter as stored in `PLEXHUB_DL_T`.
#[derive(Serialize, Deserialize)]
struct StoredDeadLetter {
    subscription_id: String,
    plugin_id: String,
    seq: i64,
    attempts: u32,
    last_error: String,
    failed_at_ms: i64,
    event_id: String,
    source: String,
    event_type: String,
    partition_key: Option<String>,
    published_at_ms: i64,
    envelope: String,
}

fn tenant_hex(tenant: TenantId) -> String {
    tenant.to_string().replace('-', "")
}

fn name_hex(id: &str) -> String {
    id.replace('-', "")
}

fn event_stream(tenant: TenantId) -> String {
    format!("PLEXHUB_EV_{}", tenant_hex(tenant))
}

fn retry_stream(tenant: TenantId) -> String {
    format!("PLEXHUB_RT_{}", tenant_hex(tenant))
}

fn dead_letter_stream(tenant: TenantId) -> String {
    format!("PLEXHUB_DL_{}", tenant_hex(tenant))
}

/// The NATS form of a subscription pattern: `*` stays, a final `#` becomes `>`.
fn nats_pattern(pattern: &str) -> String {
    pattern
        .split('.')
        .map(|segment| if segment == "#" { ">" } else { segment })
        .collect::<Vec<_>>()
        .join(".")
}

fn digest(parts: &[&str]) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize().into()
}

/// The partition of a key: the same on every hub and in every version.
fn partition_of(key: &str, partitions: u16) -> u16 {
    let hash = digest(&[key]);
    let head = u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"));
    u16::try_from(head % u64::from(partitions.max(1))).expect("below a u16")
}

/// The `Nats-Msg-Id` of an event: JetStream stores a repeated one once (within the window).
fn message_id(source: &str, event_id: &str) -> String {
    digest(&[source, event_id])
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// One consumer of a subscription: its durable name, filter and whether it keeps order.
struct ConsumerSpec {
    stream: String,
    name: String,
    filter: String,
    ordered: bool,
}

/// The subjects of a tenant's stream (`ev`, `rt` or `dl`): everything its consumers may bind.
fn stream_subjects(kind: &str, tenant: TenantId) -> String {
    format!("plexhub.{kind}.{}.>", tenant_hex(tenant))
}

/// The consumers of one subscription.
fn consumer_specs(target: &SubscriptionTarget, partitions: u16) -> Vec<ConsumerSpec> {
    let tenant = tenant_hex(target.tenant_id);
    let id = name_hex(&target.id);
    let pattern = nats_pattern(&target.spec.pattern);
    let mut specs: Vec<ConsumerSpec> = (0..partitions)
        .map(|part| ConsumerSpec {
            stream: event_stream(target.tenant_id),
            name: format!("{id}_{part}"),
            filter: format!("plexhub.ev.{tenant}.{part}.{pattern}"),
            ordered: true,
        })
        .collect();
    specs.push(ConsumerSpec {
        stream: event_stream(target.tenant_id),
        name: format!("{id}_u"),
        filter: format!("plexhub.ev.{tenant}.u.{pattern}"),
        ordered: false,
    });
    specs.push(ConsumerSpec {
        stream: retry_stream(target.tenant_id),
        name: format!("{id}_r"),
        filter: format!("plexhub.rt.{tenant}.{id}"),
        ordered: false,
    });
    specs
}

impl Inner {
    fn consumers(&self, target: &SubscriptionTarget) -> Vec<ConsumerSpec> {
        consumer_specs(target, self.settings.partitions)
    }

    fn consumer_config(&self, spec: &ConsumerSpec) -> pull::Config {
        let in_flight = if spec.ordered {
            1
        } else {
            self.settings.max_in_flight
        };
        pull::Config {
            durable_name: Some(spec.name.clone()),
            filter_subject: spec.filter.clone(),
            deliver_policy: DeliverPolicy::New,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.settings.ack_wait,
            max_deliver: -1,
            max_ack_pending: i64::try_from(in_flight).unwrap_or(i64::MAX),
            ..pull::Config::default()
        }
    }

    /// Creates (or updates) a tenant's three streams, once per hub run.
    async fn ensure_streams(&self, tenant: TenantId) -> StoreResult<()> {
        if self.streams.lock().expect("streams").contains(&tenant) {
            return Ok(());
        }
        let limited = |name: String, subjects: String, max_age: Duration| stream::Config {
            name,
            subjects: vec![subjects],
            max_age,
            max_bytes: self.settings.max_bytes.unwrap_or(-1),
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            num_replicas: self.settings.replicas,
            duplicate_window: self.settings.duplicate_window,
            ..stream::Config::default()
        };
        let configs = [
            limited(
                event_stream(tenant),
                stream_subjects("ev", tenant),
                self.settings.retention,
            ),
            limited(
                retry_stream(tenant),
                stream_subjects("rt", tenant),
                self.settings.retention,
            ),
            stream::Config {
                max_bytes: -1,
                ..limited(
                    dead_letter_stream(tenant),
                    stream_subjects("dl", tenant),
                    Duration::ZERO,
                )
            },
        ];
        for config in configs {
            let name = config.name.clone();
            self.js
                .create_or_update_stream(config)
                .await
                .map_err(|error| bus_error(&format!("cannot create stream {name}"), error))?;
        }
        self.streams.lock().expect("streams").insert(tenant);
        Ok(())
    }

    /// Reads the subscriptions again, and deletes the consumers of those gone (replaced, or
    /// uninstalled with their installation; whichever hub sees it first, the others find
    /// nothing to delete).
    async fn reload(&self) -> StoreResult<()> {
        let mut loaded = self.loaded.lock().await;
        let started = tokio::time::Instant::now();
        let targets: HashMap<String, SubscriptionTarget> = self
            .store
            .subscription_targets()
            .await?
            .into_iter()
            .map(|target| (target.id.clone(), target))
            .collect();
        let gone: Vec<SubscriptionTarget> = {
            let mut cached = self.targets.lock().expect("targets");
            let gone = cached
                .values()
                .filter(|target| !targets.contains_key(&target.id))
                .cloned()
                .collect();
            *cached = targets;
            gone
        };
        *loaded = started;
        drop(loaded);
        for target in &gone {
            for spec in self.consumers(target) {
                if let Ok(stream) = self.js.get_stream_no_info(&spec.stream).await {
                    let _ = stream.delete_consumer(&spec.name).await;
                }
            }
        }
        Ok(())
    }

    /// The subscription a delivery received at `arrived` is for, if it is ACTIVE: read again
    /// unless the last read started after the delivery arrived (an installation activated on
    /// another hub is seen).
    async fn active_target(
        &self,
        id: &str,
        arrived: tokio::time::Instant,
    ) -> Option<SubscriptionTarget> {
        let cached = |inner: &Self| {
            inner
                .targets
                .lock()
                .expect("targets")
                .get(id)
                .filter(|target| target.active)
                .cloned()
        };
        if let Some(target) = cached(self) {
            return Some(target);
        }
        let stale = *self.loaded.lock().await < arrived;
        if stale && let Err(error) = self.reload().await {
            tracing::warn!(%error, "cannot read the subscriptions");
        }
        cached(self)
    }

    /// Makes one received message a delivery for the worker, or drops it when its
    /// subscription is gone or inactive (as the SQL bus queues nothing for those).
    async fn receive(&self, subscription_id: &str, message: jetstream::Message) {
        let arrived = tokio::time::Instant::now();
        let (stream_seq, delivered) = match message.info() {
            Ok(info) => (info.stream_sequence, info.delivered),
            Err(error) => {
                tracing::warn!(%error, "a JetStream message without its metadata; dropped");
                return;
            }
        };
        let (message, acker) = message.split();
        let Some(target) = self.active_target(subscription_id, arrived).await else {
            let _ = acker.ack().await;
            return;
        };
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(name))
                .and_then(|value| value.as_str().parse::<i64>().ok())
        };
        let envelope = String::from_utf8_lossy(&message.payload).into_owned();
        let Ok(ids) = serde_json::from_str::<EnvelopeIds>(&envelope) else {
            tracing::warn!(subject = %message.subject, "an event that is not a CloudEvent; dropped");
            let _ = acker.ack_with(AckKind::Term).await;
            return;
        };
        let seq = header(SEQ_HEADER).unwrap_or(i64::try_from(stream_seq).unwrap_or(i64::MAX));
        let delivery = ClaimedDelivery {
            subscription_id: target.id,
            seq,
            partition_key: ids.partitionkey.unwrap_or_default(),
            tenant_id: target.tenant_id,
            tenant_slug: target.tenant_slug,
            plugin_id: target.plugin_id,
            base_url: target.base_url,
            endpoint: target.spec.endpoint,
            attempts: u32::try_from(delivered.saturating_sub(1)).unwrap_or(0),
            max_attempts: target.spec.max_attempts,
            source: ids.source,
            event_id: ids.id,
            published_at_ms: header(PUBLISHED_HEADER).unwrap_or_default(),
            envelope,
            lease_token: uuid::Uuid::new_v4().to_string(),
        };
        if self.received.send((delivery, acker)).await.is_ok() {
            self.arrived.notify_one();
        }
    }

    /// Pulls from one consumer until the subscription goes or the hub stops; after a failure
    /// (NATS restarting, the consumer deleted) it pulls again.
    async fn pull(
        self: Arc<Self>,
        subscription_id: String,
        spec: ConsumerSpec,
        stop: CancellationToken,
    ) {
        let config = self.consumer_config(&spec);
        let batch = if spec.ordered { 8 } else { 128 };
        while !stop.is_cancelled() {
            let messages = async {
                let stream = self.js.get_stream_no_info(&spec.stream).await?;
                let consumer = stream
                    .get_or_create_consumer(&spec.name, config.clone())
                    .await?;
                let messages = consumer
                    .stream()
                    .max_messages_per_batch(batch)
                    .messages()
                    .await?;
                Ok::<_, async_nats::Error>(messages)
            };
            let mut messages = tokio::select! {
                () = stop.cancelled() => return,
                opened = messages => match opened {
                    Ok(messages) => messages,
                    Err(error) => {
                        tracing::debug!(%error, consumer = spec.name, "cannot pull; trying again");
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(PULL_PAUSE) => continue,
                        }
                    }
                },
            };
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(message)) => self.receive(&subscription_id, message).await,
                    Some(Err(error)) => {
                        tracing::debug!(%error, consumer = spec.name, "pulling failed; pulling again");
                        tokio::time::sleep(PULL_PAUSE).await;
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    /// Starts pulling for new subscriptions and stops for those gone.
    fn sync_pullers(self: &Arc<Self>) {
        let targets: Vec<SubscriptionTarget> = self
            .targets
            .lock()
            .expect("targets")
            .values()
            .cloned()
            .collect();
        let mut pullers = self.pullers.lock().expect("pullers");
        let current: HashSet<&str> = targets.iter().map(|target| target.id.as_str()).collect();
        pullers.retain(|id, stop| {
            let keep = current.contains(id.as_str());
            if !keep {
                stop.cancel();
            }
            keep
        });
        for target in &targets {
            if pullers.contains_key(&target.id) {
                continue;
            }
            let stop = self.shutdown.child_token();
            for spec in self.consumers(target) {
                tokio::spawn(self.clone().pull(target.id.clone(), spec, stop.clone()));
            }
            pullers.insert(target.id.clone(), stop);
        }
    }

    fn add_counts(&self, counts: HashMap<String, (i64, i64)>) {
        let mut pending = self.counts.lock().expect("counts");
        for (id, (delivered, dead)) in counts {
            if delivered + dead > 0 {
                let count = pending.entry(id).or_default();
                count.0 += delivered;
                count.1 += dead;
            }
        }
        if !pending.is_empty() {
            self.counted.notify_one();
        }
    }

    /// Adds the outcomes counted so far to the database's counters; kept for the next time
    /// when the database refuses.
    async fn flush_counts(&self) -> StoreResult<()> {
        let _writing = self.counting.lock().await;
        let counts: Vec<OutcomeCount> = self
            .counts
            .lock()
            .expect("counts")
            .drain()
            .map(
                |(subscription_id, (delivered, dead_lettered))| OutcomeCount {
                    subscription_id,
                    delivered,
                    dead_lettered,
                },
            )
            .collect();
        if counts.is_empty() {
            return Ok(());
        }
        let written = self.store.count_outcomes(&counts).await;
        if written.is_err() {
            self.add_counts(
                counts
                    .into_iter()
                    .map(|count| {
                        (
                            count.subscription_id,
                            (count.delivered, count.dead_lettered),
                        )
                    })
                    .collect(),
            );
        }
        written
    }

    /// Writes the counts as they come (in batches while the database is busy) until the hub
    /// stops, then the last ones.
    async fn write_counts(self: Arc<Self>) {
        loop {
            let stopping = tokio::select! {
                () = self.shutdown.cancelled() => true,
                () = self.counted.notified() => false,
            };
            if let Err(error) = self.flush_counts().await {
                tracing::warn!(%error, "cannot count delivery outcomes; trying again");
                tokio::time::sleep(PULL_PAUSE).await;
            }
            if stopping {
                // Outcomes the worker records while it finishes come after this: wait for them.
                tokio::time::sleep(self.settings.ack_wait).await;
                let _ = self.flush_counts().await;
                return;
            }
        }
    }

    /// Keeps the pullers in step with the subscriptions until the hub stops, then gives back
    /// what the worker has not taken (another hub takes it at once).
    async fn follow(self: Arc<Self>) {
        let mut every = tokio::time::interval(REFRESH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => break,
                _ = every.tick() => {
                    match self.reload().await {
                        Ok(()) => self.sync_pullers(),
                        Err(error) => tracing::warn!(%error, "cannot read the subscriptions"),
                    }
                }
            }
        }
        let mut inbox = self.inbox.lock().await;
        while let Ok((_, acker)) = inbox.try_recv() {
            let _ = acker.ack_with(AckKind::Nak(None)).await;
        }
    }

    /// Messages of an ephemeral consumer on `stream` from `start` (1 = the first), at most
    /// `limit`, filtered; nothing when the stream does not exist.
    async fn read(
        &self,
        stream: &str,
        filter: String,
        start: u64,
        limit: u32,
    ) -> StoreResult<Vec<jetstream::Message>> {
        self.read_from(
            stream,
            filter,
            DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            start,
            limit,
        )
        .await
    }

    /// [`Inner::read`] from where `policy` says (and nothing when the stream ends before
    /// `start`).
    async fn read_from(
        &self,
        stream: &str,
        filter: String,
        policy: DeliverPolicy,
        start: u64,
        limit: u32,
    ) -> StoreResult<Vec<jetstream::Message>> {
        let stream = match self.js.get_stream(stream).await {
            Ok(stream) => stream,
            Err(error) if is_not_found(&error) => return Ok(Vec::new()),
            Err(error) => return Err(bus_error("cannot read the stream", error)),
        };
        if stream.cached_info().state.last_sequence < start {
            return Ok(Vec::new());
        }
        let consumer = stream
            .create_consumer(pull::Config {
                filter_subject: filter,
                deliver_policy: policy,
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(10),
                ..pull::Config::default()
            })
            .await
            .map_err(|error| bus_error("cannot read the stream", error))?;
        let mut batch = consumer
            .fetch()
            .max_messages(usize::try_from(limit).unwrap_or(usize::MAX))
            .messages()
            .await
            .map_err(|error| bus_error("cannot read the stream", error))?;
        let mut messages = Vec::new();
        while let Some(message) = batch.next().await {
            messages.push(message.map_err(|error| bus_error("cannot read the stream", error))?);
        }
        let name = consumer.cached_info().name.clone();
        let _ = stream.delete_consumer(&name).await;
        Ok(messages)
    }

    async fn publish_dead_letter(
        &self,
        delivery: &ClaimedDelivery,
        error: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        let ids: Option<EnvelopeIds> = serde_json::from_str(&delivery.envelope).ok();
        let letter = StoredDeadLetter {
            subscription_id: delivery.subscription_id.clone(),
            plugin_id: delivery.plugin_id.clone(),
            seq: delivery.seq,
            attempts: delivery.attempts + 1,
            last_error: error.to_owned(),
            failed_at_ms: now_ms,
            event_id: delivery.event_id.clone(),
            source: delivery.source.clone(),
            event_type: ids.map(|ids| ids.event_type).unwrap_or_default(),
            partition_key: Some(delivery.partition_key.clone()).filter(|key| !key.is_empty()),
            published_at_ms: delivery.published_at_ms,
            envelope: delivery.envelope.clone(),
        };
        let payload = serde_json::to_vec(&letter)
            .map_err(|error| bus_error("cannot encode a dead letter", error))?;
        self.ensure_streams(delivery.tenant_id).await?;
        let subject = format!(
            "plexhub.dl.{}.{}",
            tenant_hex(delivery.tenant_id),
            name_hex(&delivery.subscription_id)
        );
        self.js
            .publish(subject, payload.into())
            .await
            .map_err(|error| bus_error("cannot store a dead letter", error))?
            .await
            .map_err(|error| bus_error("cannot store a dead letter", error))?;
        Ok(())
    }
}

fn is_not_found(error: &async_nats::jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        async_nats::jetstream::context::GetStreamErrorKind::JetStream(inner)
            if inner.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

fn dead_letter_from(message: &[u8], id: u64, tenant_id: TenantId) -> Option<DeadLetter> {
    let letter: StoredDeadLetter = serde_json::from_slice(message).ok()?;
    Some(DeadLetter {
        id: id.to_string(),
        subscription_id: letter.subscription_id,
        plugin_id: letter.plugin_id,
        tenant_id,
        event: StoredEvent {
            seq: letter.seq,
            event: NewEvent {
                event_id: letter.event_id,
                source: letter.source,
                event_type: letter.event_type,
                partition_key: letter.partition_key,
                published_at_ms: letter.published_at_ms,
                envelope: letter.envelope,
            },
        },
        attempts: letter.attempts,
        last_error: letter.last_error,
        failed_at_ms: letter.failed_at_ms,
    })
}

impl JetStreamBus {
    /// Connects to `url` (`nats://host:port`), reads the subscriptions and starts pulling their
    /// deliveries; the pullers stop when `shutdown` is cancelled.
    pub async fn connect(
        url: &str,
        store: Arc<dyn Store>,
        settings: JetStreamSettings,
        shutdown: CancellationToken,
    ) -> StoreResult<Self> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(|error| bus_error("cannot connect to NATS", error))?;
        let js = jetstream::new(client);
        let (received, inbox) = mpsc::channel(settings.max_in_flight.max(1));
        let inner = Arc::new(Inner {
            store,
            js,
            settings,
            streams: Mutex::new(HashSet::new()),
            targets: Mutex::new(HashMap::new()),
            loaded: tokio::sync::Mutex::new(tokio::time::Instant::now()),
            pullers: Mutex::new(HashMap::new()),
            received,
            inbox: tokio::sync::Mutex::new(inbox),
            arrived: Notify::new(),
            held: Mutex::new(HashMap::new()),
            counts: Mutex::new(HashMap::new()),
            counted: Notify::new(),
            counting: tokio::sync::Mutex::new(()),
            shutdown,
        });
        inner.reload().await?;
        inner.sync_pullers();
        tokio::spawn(inner.clone().follow());
        tokio::spawn(inner.clone().write_counts());
        Ok(Self { inner })
    }
}

#[async_trait]
impl EventStore for JetStreamBus {
    async fn publish_events(
        &self,
        tenant_id: TenantId,
        events: &[NewEvent],
        _now_ms: i64,
    ) -> StoreResult<Vec<Published>> {
        let inner = &self.inner;
        inner.ensure_streams(tenant_id).await?;
        let tenant = tenant_hex(tenant_id);
        // Published one after the other without waiting (the server keeps their order), then
        // the acknowledgements are awaited: answered only once JetStream stored every event.
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let part = match event.partition_key.as_deref().filter(|key| !key.is_empty()) {
                Some(key) => partition_of(key, inner.settings.partitions).to_string(),
                None => "u".to_owned(),
            };
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                message_id(&event.source, &event.event_id).as_str(),
            );
            headers.insert(PUBLISHED_HEADER, event.published_at_ms.to_string().as_str());
            let subject = format!("plexhub.ev.{tenant}.{part}.{}", event.event_type);
            let ack = inner
                .js
                .publish_with_headers(subject, headers, event.envelope.clone().into())
                .await
                .map_err(|error| bus_error("cannot publish", error))?;
            acks.push(ack);
        }
        let targets: Vec<Pattern> = inner
            .targets
            .lock()
            .expect("targets")
            .values()
            .filter(|target| target.tenant_id == tenant_id && target.active)
            .filter_map(|target| Pattern::parse(&target.spec.pattern).ok())
            .collect();
        let mut published = Vec::with_capacity(acks.len());
        for (event, ack) in events.iter().zip(acks) {
            let ack = ack
                .await
                .map_err(|error| bus_error("JetStream did not store the event", error))?;
            let deliveries = if ack.duplicate {
                0
            } else {
                targets
                    .iter()
                    .filter(|pattern| pattern.matches(&event.event_type))
                    .count()
            };
            published.push(Published {
                seq: i64::try_from(ack.sequence).unwrap_or(i64::MAX),
                duplicate: ack.duplicate,
                deliveries: u32::try_from(deliveries).unwrap_or(u32::MAX),
            });
        }
        Ok(published)
    }

    async fn replace_subscriptions(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
        specs: &[SubscriptionSpec],
        now_ms: i64,
    ) -> StoreResult<()> {
        let inner = &self.inner;
        inner.ensure_streams(tenant_id).await?;
        // Read first, so that the subscriptions this replaces are known and their consumers
        // deleted by the read after it.
        inner.reload().await?;
        inner
            .store
            .replace_subscriptions(tenant_id, plugin_id, specs, now_ms)
            .await?;
        inner.reload().await?;
        let after: Vec<SubscriptionTarget> = inner
            .targets
            .lock()
            .expect("targets")
            .values()
            .filter(|target| {
                target.tenant_id == tenant_id && target.plugin_id == plugin_id.as_str()
            })
            .cloned()
            .collect();
        // The consumers exist before the call returns: every event published from now on is
        // kept for the subscription, whichever hub pulls it.
        for target in &after {
            for spec in inner.consumers(target) {
                let stream = inner
                    .js
                    .get_stream_no_info(&spec.stream)
                    .await
                    .map_err(|error| bus_error("cannot open a stream", error))?;
                stream
                    .get_or_create_consumer(&spec.name, inner.consumer_config(&spec))
                    .await
                    .map_err(|error| bus_error("cannot create a consumer", error))?;
            }
        }
        inner.sync_pullers();
        Ok(())
    }

    async fn subscriptions(&self, tenant_id: Option<TenantId>) -> StoreResult<Vec<Subscription>> {
        let inner = &self.inner;
        // This hub's own outcomes are in the counters read (the others' within moments).
        inner.flush_counts().await?;
        let mut subscriptions = inner.store.subscriptions(tenant_id).await?;
        let targets = inner.targets.lock().expect("targets").clone();
        let lags = subscriptions.iter().map(|subscription| async {
            let Some(target) = targets.get(&subscription.id) else {
                return 0;
            };
            let mut lag = 0;
            for spec in inner.consumers(target) {
                let Ok(stream) = inner.js.get_stream_no_info(&spec.stream).await else {
                    continue;
                };
                if let Ok(info) = stream.consumer_info(&spec.name).await {
                    let pending = info.num_pending.saturating_add(info.num_ack_pending as u64);
                    lag += i64::try_from(pending).unwrap_or(i64::MAX);
                }
            }
            lag
        });
        let lags = futures::future::join_all(lags).await;
        for (subscription, lag) in subscriptions.iter_mut().zip(lags) {
            subscription.pending = lag;
        }
        Ok(subscriptions)
    }

    async fn claim_deliveries(
        &self,
        _now_ms: i64,
        _lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let inner = &self.inner;
        let mut inbox = inner.inbox.lock().await;
        let mut claimed = Vec::new();
        let mut held = Vec::new();
        while claimed.len() < usize::try_from(limit).unwrap_or(usize::MAX) {
            let Ok((delivery, acker)) = inbox.try_recv() else {
                break;
            };
            held.push((delivery.lease_token.clone(), acker));
            claimed.push(delivery);
        }
        if !inbox.is_empty() {
            inner.arrived.notify_one();
        }
        inner.held.lock().expect("held").extend(held);
        Ok(claimed)
    }

    async fn complete_deliveries(
        &self,
        outcomes: &[(ClaimedDelivery, DeliveryOutcome)],
        now_ms: i64,
        _lease_next_ms: Option<i64>,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let inner = &self.inner;
        let mut counts: HashMap<String, (i64, i64)> = HashMap::new();
        for (delivery, outcome) in outcomes {
            let acker = inner
                .held
                .lock()
                .expect("held")
                .remove(&delivery.lease_token);
            let Some(acker) = acker else {
                continue;
            };
            let count = counts.entry(delivery.subscription_id.clone()).or_default();
            match outcome {
                DeliveryOutcome::Acknowledged => {
                    count.0 += 1;
                    let _ = acker.ack().await;
                }
                DeliveryOutcome::Retry { retry_at_ms, .. } => {
                    let wait = u64::try_from(retry_at_ms.saturating_sub(now_ms)).unwrap_or(0);
                    let _ = acker
                        .ack_with(AckKind::Nak(Some(Duration::from_millis(wait))))
                        .await;
                }
                DeliveryOutcome::DeadLetter { error } => {
                    match inner.publish_dead_letter(delivery, error, now_ms).await {
                        Ok(()) => {
                            count.1 += 1;
                            let _ = acker.ack_with(AckKind::Term).await;
                        }
                        Err(error) => {
                            // Not stored: delivered again (and given up again) later.
                            tracing::warn!(%error, "cannot store a dead letter");
                            let _ = acker.ack_with(AckKind::Nak(None)).await;
                        }
                    }
                }
            }
        }
        inner.add_counts(counts);
        Ok(Vec::new())
    }

    async fn dead_letters(
        &self,
        tenant_id: TenantId,
        subscription_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeadLetter>> {
        let filter = format!(
            "plexhub.dl.{}.{}",
            tenant_hex(tenant_id),
            subscription_id.map_or_else(|| "*".to_owned(), name_hex)
        );
        let messages = self
            .inner
            .read(&dead_letter_stream(tenant_id), filter, 1, limit)
            .await?;
        Ok(messages
            .iter()
            .filter_map(|message| {
                let seq = message.info().ok()?.stream_sequence;
                dead_letter_from(&message.payload, seq, tenant_id)
            })
            .collect())
    }

    async fn dead_letter(&self, tenant_id: TenantId, id: &str) -> StoreResult<Option<DeadLetter>> {
        let Ok(seq) = id.parse::<u64>() else {
            return Ok(None);
        };
        let stream = match self
            .inner
            .js
            .get_stream(dead_letter_stream(tenant_id))
            .await
        {
            Ok(stream) => stream,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(bus_error("cannot read the dead letters", error)),
        };
        match stream.get_raw_message(seq).await {
            Ok(message) => Ok(dead_letter_from(&message.payload, seq, tenant_id)),
            Err(error) => match error.kind() {
                stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
                stream::LastRawMessageErrorKind::JetStream(inner)
                    if inner.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND =>
                {
                    Ok(None)
                }
                _ => Err(bus_error("cannot read a dead letter", error)),
            },
        }
    }

    async fn retry_dead_letter(
        &self,
        tenant_id: TenantId,
        id: &str,
        _now_ms: i64,
    ) -> StoreResult<bool> {
        let Some(letter) = self.dead_letter(tenant_id, id).await? else {
            return Ok(false);
        };
        let inner = &self.inner;
        inner.ensure_streams(tenant_id).await?;
        let mut headers = HeaderMap::new();
        // Two retries of one dead letter at once queue it once.
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("dl-{id}").as_str(),
        );
        headers.insert(SEQ_HEADER, letter.event.seq.to_string().as_str());
        headers.insert(
            PUBLISHED_HEADER,
            letter.event.event.published_at_ms.to_string().as_str(),
        );
        let subject = format!(
            "plexhub.rt.{}.{}",
            tenant_hex(tenant_id),
            name_hex(&letter.subscription_id)
        );
        inner
            .js
            .publish_with_headers(subject, headers, letter.event.event.envelope.into())
            .await
            .map_err(|error| bus_error("cannot retry a dead letter", error))?
            .await
            .map_err(|error| bus_error("cannot retry a dead letter", error))?;
        self.drop_dead_letter(tenant_id, id).await
    }

    async fn drop_dead_letter(&self, tenant_id: TenantId, id: &str) -> StoreResult<bool> {
        let Ok(seq) = id.parse::<u64>() else {
            return Ok(false);
        };
        let stream = match self
            .inner
            .js
            .get_stream_no_info(dead_letter_stream(tenant_id))
            .await
        {
            Ok(stream) => stream,
            Err(error) if is_not_found(&error) => return Ok(false),
            Err(error) => return Err(bus_error("cannot delete a dead letter", error)),
        };
        match stream.delete_message(seq).await {
            Ok(deleted) => Ok(deleted),
            Err(error) => match error.kind() {
                stream::DeleteMessageErrorKind::JetStream(_) => Ok(false),
                _ => Err(bus_error("cannot delete a dead letter", error)),
            },
        }
    }

    async fn events_since(
        &self,
        tenant_id: TenantId,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        let start = u64::try_from(after.max(0)).unwrap_or(0) + 1;
        let filter = format!("plexhub.ev.{}.>", tenant_hex(tenant_id));
        let messages = self
            .inner
            .read(&event_stream(tenant_id), filter, start, limit)
            .await?;
        Ok(messages
            .iter()
            .filter_map(|message| {
                let seq = message.info().ok()?.stream_sequence;
                let envelope = String::from_utf8_lossy(&message.payload).into_owned();
                let ids: EnvelopeIds = serde_json::from_str(&envelope).ok()?;
                let published_at_ms = message
                    .headers
                    .as_ref()
                    .and_then(|headers| headers.get(PUBLISHED_HEADER))
                    .and_then(|value| value.as_str().parse().ok())
                    .unwrap_or_default();
                Some(StoredEvent {
                    seq: i64::try_from(seq).ok()?,
                    event: NewEvent {
                        event_id: ids.id,
                        source: ids.source,
                        event_type: ids.event_type,
                        partition_key: ids.partitionkey,
                        published_at_ms,
                        envelope,
                    },
                })
            })
            .collect())
    }

    async fn latest_event_seq(&self, tenant_id: TenantId) -> StoreResult<i64> {
        match self.inner.js.get_stream(event_stream(tenant_id)).await {
            Ok(stream) => {
                Ok(i64::try_from(stream.cached_info().state.last_sequence).unwrap_or(i64::MAX))
            }
            Err(error) if is_not_found(&error) => Ok(0),
            Err(error) => Err(bus_error("cannot read the log", error)),
        }
    }

    async fn event_seq_at(&self, tenant_id: TenantId, at_ms: i64) -> StoreResult<i64> {
        // By the time JetStream stored the events (the hub's publication time, give or take
        // the clocks of two machines).
        let nanos = i128::from(at_ms) * 1_000_000;
        let start_time = async_nats::datetime::from_nanos(nanos)
            .map_err(|error| bus_error("cannot read from that time", error))?;
        let first = self
            .inner
            .read_from(
                &event_stream(tenant_id),
                format!("plexhub.ev.{}.>", tenant_hex(tenant_id)),
                DeliverPolicy::ByStartTime { start_time },
                1,
                1,
            )
            .await?;
        match first.first().and_then(|message| message.info().ok()) {
            Some(info) => Ok(i64::try_from(info.stream_sequence).unwrap_or(i64::MAX) - 1),
            None => self.latest_event_seq(tenant_id).await,
        }
    }

    async fn prune_events(&self, _before_ms: i64) -> StoreResult<u64> {
        // JetStream ages the log out itself (the streams' max_age).
        Ok(0)
    }

    async fn subscription_targets(&self) -> StoreResult<Vec<SubscriptionTarget>> {
        self.inner.store.subscription_targets().await
    }

    async fn count_outcomes(&self, counts: &[OutcomeCount]) -> StoreResult<()> {
        self.inner.store.count_outcomes(counts).await
    }

    async fn forget_tenant(&self, tenant_id: TenantId) -> StoreResult<()> {
        let inner = &self.inner;
        inner.streams.lock().expect("streams").remove(&tenant_id);
        for name in [
            event_stream(tenant_id),
            retry_stream(tenant_id),
            dead_letter_stream(tenant_id),
        ] {
            match inner.js.delete_stream(&name).await {
                Ok(_) => {}
                Err(error)
                    if matches!(
                        error.kind(),
                        async_nats::jetstream::context::DeleteStreamErrorKind::JetStream(inner)
                            if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                    ) => {}
                Err(error) => {
                    return Err(bus_error(&format!("cannot delete stream {name}"), error));
                }
            }
        }
        Ok(())
    }

    async fn deliveries_waiting(&self) {
        self.inner.arrived.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_become_nats_subjects() {
        assert_eq!(nats_pattern("plugin.crm.#"), "plugin.crm.>");
        assert_eq!(nats_pattern("plugin.*.created"), "plugin.*.created");
    }

    #[test]
    fn a_key_always_lands_in_the_same_partition() {
        let parts: HashSet<u16> = (0..1000)
            .map(|n| partition_of(&format!("key-{n}"), 16))
            .collect();
        assert_eq!(parts.len(), 16, "keys spread over every partition");
        assert_eq!(partition_of("c1", 16), partition_of("c1", 16));
        assert!(partition_of("c1", 1) == 0);
    }

    #[test]
    fn every_consumer_binds_its_own_tenant_subjects_only() {
        let tenant = TenantId::new_random();
        let target = SubscriptionTarget {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: tenant,
            tenant_slug: "acme".to_owned(),
            plugin_id: "plugin-analytics".to_owned(),
            base_url: "http://127.0.0.1:9".to_owned(),
            spec: SubscriptionSpec {
                pattern: "plugin.crm.#".to_owned(),
                endpoint: "/events".to_owned(),
                max_attempts: 4,
            },
            active: true,
        };
        let specs = consumer_specs(&target, 4);
        assert_eq!(
            specs.len(),
            4 + 2,
            "a consumer per partition, unkeyed, retries"
        );
        for spec in &specs {
            let kind = if spec.stream == retry_stream(tenant) {
                "rt"
            } else {
                assert_eq!(spec.stream, event_stream(tenant));
                "ev"
            };
            let subjects = stream_subjects(kind, tenant);
            let prefix = subjects.trim_end_matches('>');
            assert!(
                spec.filter.starts_with(prefix) && spec.filter.len() > prefix.len(),
                "{} outside {subjects}",
                spec.filter
            );
            assert!(!spec.filter.contains('#'), "{}", spec.filter);
        }
        assert_eq!(
            specs.iter().filter(|spec| spec.ordered).count(),
            4,
            "only the partitions keep order"
        );
    }

    #[test]
    fn message_ids_tell_sources_apart() {
        assert_ne!(message_id("plugin-a", "1"), message_id("plugin-b", "1"));
        assert_ne!(message_id("ab", "c"), message_id("a", "bc"));
        assert_eq!(message_id("a", "1").len(), 64);
    }
}
