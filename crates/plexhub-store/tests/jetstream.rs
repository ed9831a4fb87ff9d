//! The events port on NATS JetStream (`PLEXHUB_TEST_NATS_URL`; skipped without it outside CI)
//! over each SQL store: a tenant's consumers cannot bind another tenant's subjects, and a
//! delivery goes through claim, retry, dead letter and the dead letter's retry.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use common::{NOW, on_both_backends, tenant_with_plugins};
use plexhub_core::ids::PluginId;
use plexhub_core::tenant::TenantId;
use plexhub_store::jetstream::{JetStreamBus, JetStreamSettings};
use plexhub_store::{
    ClaimedDelivery, DeliveryOutcome, EventStore, NewEvent, Store, SubscriptionSpec,
};
use tokio_util::sync::CancellationToken;

fn nats_url() -> Option<String> {
    match std::env::var("PLEXHUB_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("PLEXHUB_TEST_NATS_URL must be set under CI")
        }
        _ => {
            eprintln!("SKIPPED: PLEXHUB_TEST_NATS_URL is not set");
            None
        }
    }
}

fn hex(tenant: TenantId) -> String {
    tenant.to_string().replace('-', "")
}

async fn bus(store: &Arc<dyn Store>, url: &str, stop: &CancellationToken) -> JetStreamBus {
    let settings = JetStreamSettings {
        partitions: 4,
        ack_wait: Duration::from_secs(5),
        ..JetStreamSettings::default()
    };
    JetStreamBus::connect(url, store.clone(), settings, stop.clone())
        .await
        .unwrap()
}

async fn subscribe(bus: &JetStreamBus, tenant: TenantId, pattern: &str, max_attempts: u32) {
    let spec = SubscriptionSpec {
        pattern: pattern.to_owned(),
        endpoint: "/events".to_owned(),
        max_attempts,
    };
    let analytics = PluginId::parse("plugin-analytics").unwrap();
    bus.replace_subscriptions(tenant, &analytics, &[spec], NOW)
        .await
        .unwrap();
}

/// Claims until `count` deliveries came (5 s at most).
async fn claim(bus: &JetStreamBus, count: usize) -> Vec<ClaimedDelivery> {
    let mut claimed = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while claimed.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} deliveries came",
            claimed.len()
        );
        claimed.extend(bus.claim_deliveries(NOW, 30_000, 100).await.unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    claimed
}

fn event(id: &str, key: Option<&str>) -> NewEvent {
    NewEvent {
        event_id: id.to_owned(),
        source: "plugin-crm".to_owned(),
        event_type: "plugin.crm.contact.created".to_owned(),
        partition_key: key.map(str::to_owned),
        published_at_ms: NOW,
        envelope: format!(
            r#"{{"id":"{id}","source":"plugin-crm","type":"plugin.crm.contact.created"{}}}"#,
            key.map(|key| format!(r#","partitionkey":"{key}""#))
                .unwrap_or_default()
        ),
    }
}

async fn a_tenant_consumer_cannot_bind_another_tenants_subjects(store: Arc<dyn Store>) {
    let Some(url) = nats_url() else {
        return;
    };
    let stop = CancellationToken::new();
    let bus = bus(&store, &url, &stop).await;
    let acme = tenant_with_plugins(&store, "acme").await;
    let globex = tenant_with_plugins(&store, "globex").await;
    subscribe(&bus, acme, "plugin.crm.#", 4).await;
    subscribe(&bus, globex, "plugin.crm.#", 4).await;

    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let acme_log = js
        .get_stream(format!("PLEXHUB_EV_{}", hex(acme)))
        .await
        .unwrap();
    let filter = |tenant: TenantId| pull::Config {
        filter_subject: format!("plexhub.ev.{}.>", hex(tenant)),
        inactive_threshold: Duration::from_secs(5),
        ..pull::Config::default()
    };
    acme_log
        .create_consumer(filter(acme))
        .await
        .expect("a consumer of acme's own subjects");
    assert!(
        acme_log.create_consumer(filter(globex)).await.is_err(),
        "JetStream lets a consumer of acme's stream bind globex's subjects"
    );

    // What acme publishes reaches acme's subscription only.
    bus.publish_events(acme, &[event("a-1", None)], NOW)
        .await
        .unwrap();
    let claimed = claim(&bus, 1).await;
    assert_eq!(claimed[0].tenant_id, acme);
    assert_eq!(claimed[0].tenant_slug, "acme");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        bus.claim_deliveries(NOW, 30_000, 100)
            .await
            .unwrap()
            .is_empty(),
        "globex's subscription got acme's event"
    );

    // A subscription replaced away takes its consumers along.
    let id = bus.subscriptions(Some(acme)).await.unwrap()[0]
        .id
        .replace('-', "");
    let unkeyed = format!("{id}_u");
    assert!(acme_log.consumer_info(&unkeyed).await.is_ok());
    let analytics = PluginId::parse("plugin-analytics").unwrap();
    bus.replace_subscriptions(acme, &analytics, &[], NOW)
        .await
        .unwrap();
    assert!(
        acme_log.consumer_info(&unkeyed).await.is_err(),
        "the consumers of a replaced subscription are left"
    );

    // A deleted tenant's streams go with it; the other tenant's stay.
    bus.forget_tenant(acme).await.unwrap();
    assert!(
        js.get_stream(format!("PLEXHUB_EV_{}", hex(acme)))
            .await
            .is_err()
    );
    assert!(
        js.get_stream(format!("PLEXHUB_DL_{}", hex(acme)))
            .await
            .is_err()
    );
    assert!(
        js.get_stream(format!("PLEXHUB_EV_{}", hex(globex)))
            .await
            .is_ok()
    );
    bus.forget_tenant(globex).await.unwrap();
    stop.cancel();
}

on_both_backends!(#[tokio::test] isolation_on_sqlite, isolation_on_postgres
    => a_tenant_consumer_cannot_bind_another_tenants_subjects);

async fn a_delivery_retries_dies_and_comes_back(store: Arc<dyn Store>) {
    let Some(url) = nats_url() else {
        return;
    };
    let stop = CancellationToken::new();
    let bus = bus(&store, &url, &stop).await;
    let acme = tenant_with_plugins(&store, "acme").await;
    subscribe(&bus, acme, "plugin.crm.contact.*", 2).await;

    let published = bus
        .publish_events(
            acme,
            &[event("e-1", Some("k")), event("e-1", Some("k"))],
            NOW,
        )
        .await
        .unwrap();
    assert_eq!(
        published
            .iter()
            .map(|p| (p.seq, p.duplicate, p.deliveries))
            .collect::<Vec<_>>(),
        [(1, false, 1), (1, true, 0)]
    );
    let first = claim(&bus, 1).await;
    assert_eq!((first[0].seq, first[0].attempts), (1, 0));
    assert_eq!(first[0].partition_key, "k");
    let retry = DeliveryOutcome::Retry {
        retry_at_ms: NOW + 50,
        error: "503".to_owned(),
    };
    bus.complete_deliveries(&[(first[0].clone(), retry)], NOW, None)
        .await
        .unwrap();
    let again = claim(&bus, 1).await;
    assert_eq!((again[0].seq, again[0].attempts), (1, 1));
    let dead = DeliveryOutcome::DeadLetter {
        error: "503 again".to_owned(),
    };
    bus.complete_deliveries(&[(again[0].clone(), dead)], NOW, None)
        .await
        .unwrap();

    let letters = bus.dead_letters(acme, None, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!((letter.attempts, letter.event.seq), (2, 1));
    assert_eq!(letter.event.event.event_id, "e-1");
    assert_eq!(letter.last_error, "503 again");
    assert_eq!(
        bus.dead_letter(acme, &letter.id).await.unwrap().as_ref(),
        Some(letter)
    );
    let subscriptions = bus.subscriptions(Some(acme)).await.unwrap();
    assert_eq!(
        (subscriptions[0].delivered, subscriptions[0].dead_lettered),
        (0, 1)
    );

    assert!(bus.retry_dead_letter(acme, &letter.id, NOW).await.unwrap());
    assert!(bus.dead_letters(acme, None, 10).await.unwrap().is_empty());
    let retried = claim(&bus, 1).await;
    assert_eq!((retried[0].seq, retried[0].attempts), (1, 0));
    assert_eq!(retried[0].event_id, "e-1");
    bus.complete_deliveries(
        &[(retried[0].clone(), DeliveryOutcome::Acknowledged)],
        NOW,
        None,
    )
    .await
    .unwrap();
    let subscriptions = bus.subscriptions(Some(acme)).await.unwrap();
    assert_eq!(
        (subscriptions[0].delivered, subscriptions[0].pending),
        (1, 0)
    );
    assert!(!bus.drop_dead_letter(acme, &letter.id).await.unwrap());
    assert_eq!(bus.latest_event_seq(acme).await.unwrap(), 1);
    let replayed = bus.events_since(acme, 0, 10).await.unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].event.event_id, "e-1");
    bus.forget_tenant(acme).await.unwrap();
    stop.cancel();
}

on_both_backends!(#[tokio::test] delivery_on_sqlite, delivery_on_postgres
    => a_delivery_retries_dies_and_comes_back);
