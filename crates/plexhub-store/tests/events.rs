//! The event store on both backends: publishing fans out to matching subscriptions once per
//! event id, claims keep each partition key in order and lease each delivery to one claimer,
//! retries wait for their time, dead letters keep the event and can be retried.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;

use common::{NOW, tenant_with_plugins};
use plexhub_core::ids::PluginId;
use plexhub_core::tenant::TenantId;
use plexhub_store::{ClaimedDelivery, DeliveryOutcome, NewEvent, Store, SubscriptionSpec};

const LEASE: i64 = 30_000;

fn event(id: &str, event_type: &str, key: Option<&str>) -> NewEvent {
    NewEvent {
        event_id: id.to_owned(),
        source: "plugin-crm".to_owned(),
        event_type: event_type.to_owned(),
        partition_key: key.map(str::to_owned),
        published_at_ms: NOW,
        envelope: format!(r#"{{"id":"{id}","type":"{event_type}"}}"#),
    }
}

async fn claim(store: &Arc<dyn Store>, now: i64) -> Vec<ClaimedDelivery> {
    store.claim_deliveries(now, LEASE, 100).await.unwrap()
}

fn event_ids(claimed: &[ClaimedDelivery]) -> Vec<&str> {
    claimed.iter().map(|d| d.event_id.as_str()).collect()
}

async fn subscribe(store: &Arc<dyn Store>, tenant: TenantId, plugin: &str, pattern: &str) {
    let spec = SubscriptionSpec {
        pattern: pattern.to_owned(),
        endpoint: "/events".to_owned(),
        max_attempts: 2,
    };
    let plugin = PluginId::parse(plugin).unwrap();
    store
        .replace_subscriptions(tenant, &plugin, &[spec], NOW)
        .await
        .unwrap();
}

async fn events_flow_through_the_queue(store: Arc<dyn Store>) {
    let acme = tenant_with_plugins(&store, "acme").await;
    let globex = tenant_with_plugins(&store, "globex").await;
    subscribe(&store, acme, "plugin-analytics", "plugin.crm.contact.*").await;
    subscribe(&store, globex, "plugin-analytics", "plugin.crm.#").await;

    let published = store
        .publish_events(
            acme,
            &[
                event("e1", "plugin.crm.contact.created", Some("c1")),
                event("e2", "plugin.crm.contact.updated", Some("c1")),
                event("e3", "plugin.crm.deal.updated", None),
                event("e1", "plugin.crm.contact.created", Some("c1")),
            ],
            NOW,
        )
        .await
        .unwrap();
    let seqs: Vec<(i64, bool, u32)> = published
        .iter()
        .map(|p| (p.seq, p.duplicate, p.deliveries))
        .collect();
    assert_eq!(
        seqs,
        [(1, false, 1), (2, false, 1), (3, false, 0), (1, true, 0)]
    );
    // Published again later: accepted once.
    let again = store
        .publish_events(
            acme,
            &[event("e2", "plugin.crm.contact.updated", Some("c1"))],
            NOW,
        )
        .await
        .unwrap();
    assert_eq!((again[0].seq, again[0].duplicate), (2, true));

    // Only the oldest of key c1; the claim is a lease: nobody else gets it meanwhile.
    let first = claim(&store, NOW).await;
    assert_eq!(event_ids(&first), ["e1"]);
    assert_eq!(first[0].tenant_slug, "acme");
    assert_eq!(first[0].plugin_id, "plugin-analytics");
    assert_eq!(first[0].endpoint, "/events");
    assert!(
        claim(&store, NOW).await.is_empty(),
        "e2 waits for e1; e1 is leased"
    );

    // A failure is retried at its time, with the attempt counted.
    let retry = DeliveryOutcome::Retry {
        retry_at_ms: NOW + 100,
        error: "503".to_owned(),
    };
    store
        .complete_deliveries(&[(first[0].clone(), retry)], NOW, None)
        .await
        .unwrap();
    assert!(claim(&store, NOW + 99).await.is_empty());
    let retried = claim(&store, NOW + 100).await;
    assert_eq!(event_ids(&retried), ["e1"]);
    assert_eq!(retried[0].attempts, 1);
    // A completion under an old lease counts for nothing.
    store
        .complete_deliveries(
            &[(first[0].clone(), DeliveryOutcome::Acknowledged)],
            NOW,
            None,
        )
        .await
        .unwrap();
    assert!(claim(&store, NOW + 100).await.is_empty(), "e1 still leased");

    store
        .complete_deliveries(
            &[(retried[0].clone(), DeliveryOutcome::Acknowledged)],
            NOW,
            None,
        )
        .await
        .unwrap();
    let second = claim(&store, NOW + 100).await;
    assert_eq!(event_ids(&second), ["e2"]);
    let dead = DeliveryOutcome::DeadLetter {
        error: "answered 500".to_owned(),
    };
    store
        .complete_deliveries(&[(second[0].clone(), dead)], NOW + 100, None)
        .await
        .unwrap();

    let subscriptions = store.subscriptions(Some(acme)).await.unwrap();
    assert_eq!(subscriptions.len(), 1);
    let counters = &subscriptions[0];
    assert_eq!(
        (counters.delivered, counters.dead_lettered, counters.pending),
        (1, 1, 0)
    );

    let letters = store.dead_letters(acme, None, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event.event.event_id, "e2");
    assert_eq!(letters[0].last_error, "answered 500");
    assert_eq!(letters[0].attempts, 1);
    assert!(
        store
            .dead_letters(globex, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store
            .retry_dead_letter(globex, &letters[0].id, NOW)
            .await
            .unwrap(),
        "another tenant's"
    );
    assert!(
        store
            .retry_dead_letter(acme, &letters[0].id, NOW + 200)
            .await
            .unwrap()
    );
    let redelivered = claim(&store, NOW + 200).await;
    assert_eq!(event_ids(&redelivered), ["e2"]);
    assert_eq!(
        redelivered[0].attempts, 0,
        "a retried dead letter starts over"
    );
    assert!(store.dead_letters(acme, None, 10).await.unwrap().is_empty());

    // Globex's subscriber saw nothing of acme's events.
    let globex_events = store.events_since(globex, 0, 10).await.unwrap();
    assert!(globex_events.is_empty());
    let acme_events = store.events_since(acme, 1, 10).await.unwrap();
    let seqs: Vec<i64> = acme_events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [2, 3]);

    // Pruning keeps what a delivery still needs (e2, leased) and drops the rest.
    assert_eq!(store.prune_events(NOW + 1).await.unwrap(), 2);
    let left: Vec<i64> = store
        .events_since(acme, 0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, [2]);

    // Dropping the subscription (manifest no longer declares it) drops its queue.
    let analytics = PluginId::parse("plugin-analytics").unwrap();
    store
        .replace_subscriptions(acme, &analytics, &[], NOW)
        .await
        .unwrap();
    assert!(store.subscriptions(Some(acme)).await.unwrap().is_empty());
    assert_eq!(
        store.subscriptions(None).await.unwrap().len(),
        1,
        "globex's stays"
    );
}

/// Events without a partition key wait for nothing; a keyed one waits for the older ones of
/// its key only.
async fn only_keyed_events_wait(store: Arc<dyn Store>) {
    let acme = tenant_with_plugins(&store, "acme").await;
    subscribe(&store, acme, "plugin-analytics", "plugin.crm.#").await;
    let events = [
        event("k1", "plugin.crm.deal.updated", Some("d1")),
        event("u1", "plugin.crm.deal.updated", None),
        event("k2", "plugin.crm.deal.updated", Some("d1")),
        event("u2", "plugin.crm.deal.updated", None),
        event("u3", "plugin.crm.deal.updated", None),
    ];
    store.publish_events(acme, &events, NOW).await.unwrap();
    let claimed = claim(&store, NOW).await;
    assert_eq!(event_ids(&claimed), ["k1", "u1", "u2", "u3"]);
    let acknowledged: Vec<_> = claimed
        .iter()
        .map(|delivery| (delivery.clone(), DeliveryOutcome::Acknowledged))
        .collect();
    store
        .complete_deliveries(&acknowledged, NOW, None)
        .await
        .unwrap();
    assert_eq!(event_ids(&claim(&store, NOW).await), ["k2"]);
}

/// The same event published concurrently (a publisher retrying while its first request is
/// still in flight) is stored once and every publish succeeds.
async fn concurrent_duplicates_are_accepted_once(store: Arc<dyn Store>) {
    let acme = tenant_with_plugins(&store, "acme").await;
    subscribe(&store, acme, "plugin-analytics", "plugin.crm.#").await;
    for round in 0..40 {
        let id = format!("same-{round}");
        let publishes: Vec<_> = (0..16)
            .map(|_| {
                let (store, event) = (store.clone(), event(&id, "plugin.crm.deal.updated", None));
                tokio::spawn(async move { store.publish_events(acme, &[event], NOW).await })
            })
            .collect();
        let mut fresh = 0;
        let mut seqs = Vec::new();
        for publish in publishes {
            let published = publish.await.unwrap().expect("every publish succeeds");
            fresh += usize::from(!published[0].duplicate);
            seqs.push(published[0].seq);
        }
        assert_eq!(fresh, 1, "stored once");
        seqs.dedup();
        assert_eq!(seqs.len(), 1, "every answer names the stored position");
    }
}

/// Deleting a tenant succeeds while its deliveries complete: the cascade and a completion lock
/// subscriptions and deliveries in opposite orders, and the deletion runs again when
/// PostgreSQL gives it up to break their deadlock (a completion that loses is retried by the
/// delivery worker).
async fn a_tenant_is_deleted_while_its_deliveries_complete(store: Arc<dyn Store>) {
    for round in 0..4 {
        let tenant = tenant_with_plugins(&store, &format!("round{round}")).await;
        subscribe(&store, tenant, "plugin-analytics", "plugin.crm.#").await;
        let events: Vec<NewEvent> = (0..400)
            .map(|n| {
                let key = format!("k{}", n % 100);
                event(&format!("e{n}"), "plugin.crm.deal.updated", Some(&key))
            })
            .collect();
        store.publish_events(tenant, &events, NOW).await.unwrap();
        let claimed = store.claim_deliveries(NOW, LEASE, 512).await.unwrap();
        assert_eq!(claimed.len(), 100, "one head per key");
        let completions: Vec<_> = claimed
            .chunks(10)
            .map(|chunk| {
                let store = store.clone();
                let outcomes: Vec<_> = chunk
                    .iter()
                    .map(|delivery| (delivery.clone(), DeliveryOutcome::Acknowledged))
                    .collect();
                tokio::spawn(
                    async move { store.complete_deliveries(&outcomes, NOW, Some(LEASE)).await },
                )
            })
            .collect();
        let deleted = store.delete_tenant(tenant).await;
        assert!(deleted.unwrap(), "round {round}: the tenant is deleted");
        for completion in completions {
            // Each completion either ran before the deletion or found nothing left.
            let _ = completion.await.unwrap();
        }
    }
}

common::on_both_backends!(#[tokio::test] sqlite_events, postgres_events => events_flow_through_the_queue);
common::on_both_backends!(#[tokio::test] sqlite_unkeyed_events, postgres_unkeyed_events => only_keyed_events_wait);
common::on_both_backends!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    sqlite_concurrent_duplicates, postgres_concurrent_duplicates => concurrent_duplicates_are_accepted_once
);
common::on_both_backends!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    sqlite_tenant_deleted_during_completions, postgres_tenant_deleted_during_completions => a_tenant_is_deleted_while_its_deliveries_complete
);
