//! Keyed events on both backends: only the head of a key (per subscription) is due, the next one
//! becomes due the moment its predecessor ends, a retry keeps its place, two store instances
//! never have two deliveries of one key in flight, and the claim, hand-over and insert
//! statements read the queue through its indexes whatever the batch size, the number of keys or
//! the backlog.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use common::{NOW, tenant_with_plugins};
use plexhub_core::ids::PluginId;
use plexhub_core::tenant::TenantId;
use plexhub_store::{
    Backend, ClaimedDelivery, DeliveryOutcome, NewEvent, Store, SubscriptionSpec,
    acknowledge_statement, claim_statement, hand_over_keys, hand_over_statement,
    insert_deliveries_statement, published_ids_statement,
};

const LEASE: i64 = 30_000;

fn event(id: &str, key: Option<&str>) -> NewEvent {
    NewEvent {
        event_id: id.to_owned(),
        source: "plugin-crm".to_owned(),
        event_type: "plugin.crm.deal.updated".to_owned(),
        partition_key: key.map(str::to_owned),
        published_at_ms: NOW,
        envelope: format!(r#"{{"id":"{id}"}}"#),
    }
}

async fn subscribed_tenant(store: &Arc<dyn Store>) -> TenantId {
    let tenant = tenant_with_plugins(store, "acme").await;
    let spec = SubscriptionSpec {
        pattern: "plugin.crm.#".to_owned(),
        endpoint: "/events".to_owned(),
        max_attempts: 5,
    };
    let plugin = PluginId::parse("plugin-analytics").unwrap();
    store
        .replace_subscriptions(tenant, &plugin, &[spec], NOW)
        .await
        .unwrap();
    tenant
}

async fn claim_at(store: &Arc<dyn Store>, now: i64) -> Vec<ClaimedDelivery> {
    store.claim_deliveries(now, LEASE, 100).await.unwrap()
}

fn ids(claimed: &[ClaimedDelivery]) -> Vec<&str> {
    claimed.iter().map(|d| d.event_id.as_str()).collect()
}

async fn end(store: &Arc<dyn Store>, delivery: &ClaimedDelivery, outcome: DeliveryOutcome) {
    store
        .complete_deliveries(&[(delivery.clone(), outcome)], NOW, None)
        .await
        .unwrap();
}

/// Hand-over at once, a retry keeps its place, a dead letter hands over, a retried dead letter
/// waits for the key's current head and then goes first.
async fn a_key_backlog_waits_its_turn(store: Arc<dyn Store>) {
    let acme = subscribed_tenant(&store).await;
    let batch = [
        event("a1", Some("a")),
        event("a2", Some("a")),
        event("a3", Some("a")),
        event("u1", None),
        event("b1", Some("b")),
    ];
    store.publish_events(acme, &batch, NOW).await.unwrap();
    let first = claim_at(&store, NOW).await;
    assert_eq!(
        ids(&first),
        ["a1", "u1", "b1"],
        "the heads and the unkeyed one"
    );
    assert!(claim_at(&store, NOW).await.is_empty(), "a2 waits behind a1");

    end(&store, &first[0], DeliveryOutcome::Acknowledged).await;
    let second = claim_at(&store, NOW).await;
    assert_eq!(
        ids(&second),
        ["a2"],
        "handed over at once, no lease to wait for"
    );

    let retry_at = NOW + 1_000;
    let retry = DeliveryOutcome::Retry {
        retry_at_ms: retry_at,
        error: "503".to_owned(),
    };
    end(&store, &second[0], retry).await;
    assert!(
        claim_at(&store, NOW).await.is_empty(),
        "a3 does not overtake a2's retry"
    );
    let again = claim_at(&store, retry_at).await;
    assert_eq!(ids(&again), ["a2"], "the retry kept its place");

    let dead = DeliveryOutcome::DeadLetter {
        error: "gave up".to_owned(),
    };
    end(&store, &again[0], dead).await;
    let third = claim_at(&store, retry_at).await;
    assert_eq!(ids(&third), ["a3"], "a dead letter hands over");

    // Retried while a3 is in flight: a2 waits, then goes before anything newer.
    store
        .publish_events(acme, &[event("a4", Some("a"))], NOW)
        .await
        .unwrap();
    let letters = store.dead_letters(acme, None, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert!(
        store
            .retry_dead_letter(acme, &letters[0].id, retry_at)
            .await
            .unwrap()
    );
    assert!(
        claim_at(&store, retry_at).await.is_empty(),
        "a3 is still in flight"
    );
    end(&store, &third[0], DeliveryOutcome::Acknowledged).await;
    let fourth = claim_at(&store, retry_at).await;
    assert_eq!(
        ids(&fourth),
        ["a2"],
        "the oldest pending delivery of the key goes next"
    );
    end(&store, &fourth[0], DeliveryOutcome::Acknowledged).await;
    let fifth = claim_at(&store, retry_at).await;
    assert_eq!(ids(&fifth), ["a4"]);
    end(&store, &fifth[0], DeliveryOutcome::Acknowledged).await;

    // A key whose backlog ran dry gets a head again with its next event.
    store
        .publish_events(acme, &[event("a5", Some("a"))], NOW)
        .await
        .unwrap();
    assert_eq!(ids(&claim_at(&store, retry_at).await), ["a5"]);

    // A completion can lease the next delivery of the key to its caller at once.
    store
        .publish_events(acme, &[event("b2", Some("b")), event("b3", Some("b"))], NOW)
        .await
        .unwrap();
    let b1 = &first[2];
    assert_eq!(b1.event_id, "b1");
    let handed = store
        .complete_deliveries(
            &[(b1.clone(), DeliveryOutcome::Acknowledged)],
            NOW,
            Some(LEASE),
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&handed),
        ["b2"],
        "the next of the key, leased to the completer"
    );
    assert_eq!(handed[0].partition_key, "b");
    assert!(
        !ids(&claim_at(&store, retry_at).await).contains(&"b2"),
        "a leased delivery is not claimed again"
    );
    let after = store
        .complete_deliveries(
            &[(handed[0].clone(), DeliveryOutcome::Acknowledged)],
            NOW,
            None,
        )
        .await
        .unwrap();
    assert!(after.is_empty(), "without a lease nothing is handed back");
    assert_eq!(ids(&claim_at(&store, retry_at).await), ["b3"]);
}

/// Claimers and publishers working at once on two store instances (as two hubs do): two
/// deliveries of one key are never in flight together, and each key's events end in
/// publication order.
async fn concurrent_claimers_never_overlap_a_key(store: Arc<dyn Store>, url: String) {
    let acme = subscribed_tenant(&store).await;
    let other = plexhub_store::open(&url).await.unwrap();
    const EVENTS: usize = 400;
    const KEYS: usize = 5;
    let publisher = {
        let store = store.clone();
        tokio::spawn(async move {
            for start in (0..EVENTS).step_by(20) {
                let batch: Vec<NewEvent> = (start..start + 20)
                    .map(|n| event(&format!("e{n}"), Some(&format!("k{}", n % KEYS))))
                    .collect();
                store.publish_events(acme, &batch, NOW).await.unwrap();
            }
        })
    };
    let in_flight = Arc::new(Mutex::new(HashSet::<String>::new()));
    let ended = Arc::new(Mutex::new(BTreeMap::<String, Vec<i64>>::new()));
    let mut claimers = Vec::new();
    for instance in 0..4 {
        let store = if instance % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        let (in_flight, ended) = (in_flight.clone(), ended.clone());
        // Half the claimers take the next delivery of each key they end straight from the
        // completion (leased to them), as a hub does; the others leave it to any claimer.
        let lease_next = (instance < 2).then_some(LEASE);
        claimers.push(tokio::spawn(async move {
            let mut handed: Vec<ClaimedDelivery> = Vec::new();
            loop {
                let done: usize = ended.lock().unwrap().values().map(Vec::len).sum();
                if done == EVENTS {
                    return;
                }
                let claimed = if handed.is_empty() {
                    store.claim_deliveries(NOW, LEASE, 8).await.unwrap()
                } else {
                    std::mem::take(&mut handed)
                };
                if claimed.is_empty() {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    continue;
                }
                for delivery in &claimed {
                    let fresh = in_flight
                        .lock()
                        .unwrap()
                        .insert(delivery.partition_key.clone());
                    assert!(
                        fresh,
                        "two deliveries of {} in flight",
                        delivery.partition_key
                    );
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                for delivery in &claimed {
                    in_flight.lock().unwrap().remove(&delivery.partition_key);
                    ended
                        .lock()
                        .unwrap()
                        .entry(delivery.partition_key.clone())
                        .or_default()
                        .push(delivery.seq);
                }
                let outcomes: Vec<_> = claimed
                    .into_iter()
                    .map(|delivery| (delivery, DeliveryOutcome::Acknowledged))
                    .collect();
                handed = store
                    .complete_deliveries(&outcomes, NOW, lease_next)
                    .await
                    .unwrap();
            }
        }));
    }
    publisher.await.unwrap();
    for claimer in claimers {
        tokio::time::timeout(std::time::Duration::from_secs(60), claimer)
            .await
            .expect("every event is delivered")
            .unwrap();
    }
    for (key, seqs) in ended.lock().unwrap().iter() {
        assert!(
            seqs.windows(2).all(|pair| pair[0] < pair[1]),
            "{key} out of order: {seqs:?}"
        );
    }
}

/// 20 000 queued deliveries over `keys` keys.
async fn fill(store: &Arc<dyn Store>, tenant: TenantId, keys: usize) {
    for start in (0..20_000).step_by(500) {
        let batch: Vec<NewEvent> = (start..start + 500)
            .map(|n| event(&format!("f{keys}-{n}"), Some(&format!("k{}", n % keys))))
            .collect();
        store.publish_events(tenant, &batch, NOW).await.unwrap();
    }
}

/// Every plan node of a PostgreSQL `EXPLAIN (FORMAT JSON)` that scans `deliveries` sequentially.
fn sequential_scans(plan: &serde_json::Value) -> usize {
    let here =
        usize::from(plan["Node Type"] == "Seq Scan" && plan["Relation Name"] == "deliveries");
    here + plan["Plans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(sequential_scans)
        .sum::<usize>()
}

/// The statements checked, with their binds: the claim and (on PostgreSQL, which hands any
/// number of keys over in one statement) the hand-over at batch sizes 1, 64 and 512; the
/// hand-over on SQLite and the insert at 1 and 64 rows (the store writes larger batches as
/// statements of 64). The hand-over both to any claimer and leased to the completer.
fn checked_statements(backend: Backend, subscription: &str) -> Vec<(String, Vec<Bind>)> {
    let mut statements = Vec::new();
    for batch in [1_i64, 64, 512] {
        let claim = claim_statement(backend);
        let sql = match backend {
            Backend::Postgres => format!("{claim} SELECT subscription_id FROM claimed"),
            Backend::Sqlite => claim,
        };
        let binds = vec![
            Bind::Int(NOW),
            Bind::Int(NOW + LEASE),
            Bind::Text("token".into()),
            Bind::Int(batch),
        ];
        statements.push((sql, binds));
    }
    for rows in [1_usize, 64, 512] {
        if backend == Backend::Postgres || rows <= 64 {
            for lease in [false, true] {
                statements.push(hand_over_case(backend, subscription, rows, lease));
            }
        }
        if rows > 64 {
            continue;
        }
        let mut binds = Vec::new();
        for row in 0..rows {
            let seq = 1_000_000 + i64::try_from(row).unwrap();
            binds.extend([
                Bind::Text(subscription.to_owned()),
                Bind::Text("tenant".into()),
                Bind::Int(seq),
                Bind::Text(format!("k{row}")),
                Bind::Int(NOW),
            ]);
        }
        statements.push((
            insert_deliveries_statement(backend, rows, true, false),
            binds,
        ));
    }
    statements
}

/// A bind parameter of a checked statement.
enum Bind {
    Int(i64),
    Text(String),
}

macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for bind in $binds {
            query = match bind {
                Bind::Int(value) => query.bind(*value),
                Bind::Text(value) => query.bind(value.clone()),
            };
        }
        query
    }};
}

/// The claim, the hand-over and the insert of deliveries use their indexes on PostgreSQL (no
/// sequential scan of `deliveries` anywhere in the plan), with 100 and with 5 000 keys.
#[tokio::test]
async fn postgres_claims_and_hand_overs_use_their_indexes() {
    common::on_postgres_at(|store, url| async move {
        let acme = subscribed_tenant(&store).await;
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let subscription: String = sqlx::query_scalar("SELECT id FROM subscriptions")
            .fetch_one(&pool)
            .await
            .unwrap();
        for keys in [100, 5_000] {
            sqlx::query("DELETE FROM deliveries")
                .execute(&pool)
                .await
                .unwrap();
            fill(&store, acme, keys).await;
            sqlx::query("ANALYZE").execute(&pool).await.unwrap();
            // The check can fail: a filter on an unindexed column is a sequential scan.
            let unindexed: serde_json::Value = sqlx::query_scalar(
                "EXPLAIN (FORMAT JSON) SELECT seq FROM deliveries WHERE attempts = $1",
            )
            .bind(3_i32)
            .fetch_one(&pool)
            .await
            .unwrap();
            assert_eq!(sequential_scans(&unindexed[0]["Plan"]), 1, "{unindexed}");
            for (statement, binds) in checked_statements(Backend::Postgres, &subscription) {
                let sql = format!("EXPLAIN (FORMAT JSON) {statement}");
                let plan: serde_json::Value = bind_all!(sqlx::query_scalar(&sql), &binds)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                assert_eq!(
                    sequential_scans(&plan[0]["Plan"]),
                    0,
                    "{keys} keys, {statement}: {plan}"
                );
            }
        }
    })
    .await;
}

/// The same on SQLite, with `EXPLAIN QUERY PLAN`: no bare `SCAN` of `deliveries`.
#[tokio::test]
async fn sqlite_claims_and_hand_overs_use_their_indexes() {
    common::on_sqlite_at(|store, url| async move {
        let acme = subscribed_tenant(&store).await;
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let subscription: String = sqlx::query_scalar("SELECT id FROM subscriptions")
            .fetch_one(&pool)
            .await
            .unwrap();
        // `SCAN d USING INDEX …` walks an index in order; a bare `SCAN` reads the whole table
        // (`d`, `e`: the statements' aliases of `deliveries`).
        let table_scan = |detail: &String| {
            ["SCAN deliveries", "SCAN d", "SCAN e"]
                .iter()
                .any(|scan| detail == scan || detail.starts_with(&format!("{scan} ")))
                && !detail.contains("USING INDEX")
                && !detail.contains("USING COVERING INDEX")
        };
        for keys in [100, 5_000] {
            sqlx::query("DELETE FROM deliveries")
                .execute(&pool)
                .await
                .unwrap();
            fill(&store, acme, keys).await;
            sqlx::query("ANALYZE").execute(&pool).await.unwrap();
            // The check can fail: a filter on an unindexed column scans the table.
            let unindexed =
                sqlx::query("EXPLAIN QUERY PLAN SELECT seq FROM deliveries WHERE attempts = 3")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            let detail: String = sqlx::Row::get(&unindexed[0], "detail");
            assert!(table_scan(&detail), "{detail}");
            for (statement, binds) in checked_statements(Backend::Sqlite, &subscription) {
                let sql = format!("EXPLAIN QUERY PLAN {statement}");
                let rows = bind_all!(sqlx::query(&sql), &binds)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                let details: Vec<String> = rows
                    .iter()
                    .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
                    .collect();
                assert!(
                    !details.iter().any(table_scan),
                    "{keys} keys, {statement}: {details:?}"
                );
            }
        }
    })
    .await;
}

/// A publish's duplicate check (64 ids, the tenant last) as the store binds it.
fn published_ids_binds(tenant: TenantId) -> Vec<Bind> {
    let mut binds: Vec<Bind> = (0..64)
        .flat_map(|n| {
            [
                Bind::Text("plugin-crm".into()),
                Bind::Text(format!("f5000-{n}")),
            ]
        })
        .collect();
    binds.push(Bind::Text(tenant.to_string()));
    binds
}

/// An acknowledgement of 64 deliveries of one claim (subscription, seq, token per row) as the
/// store binds it.
fn acknowledge_binds(subscription: &str) -> Vec<Bind> {
    (0..64)
        .flat_map(|seq| {
            [
                Bind::Text(subscription.to_owned()),
                Bind::Int(seq),
                Bind::Text("token".into()),
            ]
        })
        .collect()
}

/// Every plan node of a PostgreSQL `EXPLAIN (FORMAT JSON)` that reads `table` other than by a
/// lookup in `index` whose condition names `column` (or by row id, a TID scan).
fn read_otherwise(plan: &serde_json::Value, table: &str, index: &str, column: &str) -> usize {
    let lookup = match plan["Node Type"].as_str() {
        Some("Index Scan" | "Index Only Scan") => {
            plan["Index Name"] == index
                && plan["Index Cond"]
                    .as_str()
                    .is_some_and(|condition| condition.contains(&format!("{column} =")))
        }
        // A TID scan reads rows by id; an UPDATE or DELETE reads through its children.
        Some("Tid Scan" | "ModifyTable") => true,
        _ => false,
    };
    let here = usize::from(plan["Relation Name"] == table && !lookup);
    here + plan["Plans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|child| read_otherwise(child, table, index, column))
        .sum::<usize>()
}

/// How a checked statement may read its table: one row at a time through a unique index, or
/// through the index of a key's deliveries in order.
#[derive(Clone, Copy)]
enum Lookup {
    /// `events (tenant_id, source, event_id)`.
    EventId,
    /// `deliveries (subscription_id, seq)`.
    DeliverySeq,
    /// `deliveries (subscription_id, partition_key, seq)`, a key's oldest delivery.
    KeyHead,
}

impl Lookup {
    /// The PostgreSQL index and a column its condition names.
    fn postgres(self) -> (&'static str, &'static str) {
        match self {
            Self::EventId => ("events_tenant_id_source_event_id_key", "event_id"),
            Self::DeliverySeq => ("deliveries_pkey", "seq"),
            Self::KeyHead => ("deliveries_in_order", "partition_key"),
        }
    }

    /// The table's alias in the statements, and the SQLite index condition of the lookup.
    fn sqlite(self) -> (&'static str, &'static str) {
        match self {
            Self::EventId => ("ev", "(tenant_id=? AND source=? AND event_id=?)"),
            Self::DeliverySeq => ("e", "(subscription_id=? AND seq=?)"),
            Self::KeyHead => ("e", "(subscription_id=? AND partition_key=?)"),
        }
    }
}

/// A hand-over of `keys` keys of `subscription` (leased to the completer with `lease`), bound as
/// the store binds it.
fn hand_over_case(
    backend: Backend,
    subscription: &str,
    keys: usize,
    lease: bool,
) -> (String, Vec<Bind>) {
    let mut binds = if lease {
        vec![
            Bind::Int(NOW + LEASE),
            Bind::Int(NOW + LEASE),
            Bind::Text("token".into()),
        ]
    } else {
        vec![Bind::Int(NOW)]
    };
    binds.extend(hand_over_binds(backend, subscription, keys));
    (hand_over_statement(backend, keys, lease), binds)
}

/// The keys of a hand-over of `keys` keys of `subscription` as the store binds them: on
/// PostgreSQL one JSON array, on SQLite subscription and key per key.
fn hand_over_binds(backend: Backend, subscription: &str, keys: usize) -> Vec<Bind> {
    let names: Vec<String> = (0..keys).map(|key| format!("k{key}")).collect();
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .map(|key| (subscription, key.as_str()))
        .collect();
    match backend {
        Backend::Postgres => vec![Bind::Text(hand_over_keys(&pairs))],
        Backend::Sqlite => pairs
            .iter()
            .flat_map(|(subscription, key)| {
                [
                    Bind::Text((*subscription).to_owned()),
                    Bind::Text((*key).to_owned()),
                ]
            })
            .collect(),
    }
}

/// What the lookup tests explain: per statement its binds, the table it reads, how it may read
/// it, and how many reads of that table other than such lookups its plan must show. First two
/// controls that read all of a tenant's events or a subscription's queue (1: the check can
/// fail), then the publish's duplicate check, an acknowledgement and the two hand-overs, 64 rows
/// each (0).
fn lookup_cases(
    backend: Backend,
    tenant: TenantId,
    subscription: &str,
) -> Vec<(String, Vec<Bind>, &'static str, Lookup, usize)> {
    let first = match backend {
        Backend::Postgres => "$1",
        Backend::Sqlite => "?",
    };
    let mut cases = vec![
        (
            format!("SELECT seq FROM events ev WHERE tenant_id = {first}"),
            vec![Bind::Text(tenant.to_string())],
            "events",
            Lookup::EventId,
            1,
        ),
        (
            format!("SELECT seq FROM deliveries WHERE subscription_id = {first} AND attempts = 0"),
            vec![Bind::Text(subscription.to_owned())],
            "deliveries",
            Lookup::DeliverySeq,
            1,
        ),
        (
            published_ids_statement(backend, 64),
            published_ids_binds(tenant),
            "events",
            Lookup::EventId,
            0,
        ),
        (
            acknowledge_statement(backend, 64),
            acknowledge_binds(subscription),
            "deliveries",
            Lookup::DeliverySeq,
            0,
        ),
    ];
    for lease in [false, true] {
        let (statement, binds) = hand_over_case(backend, subscription, 64, lease);
        cases.push((statement, binds, "deliveries", Lookup::KeyHead, 0));
    }
    cases
}

/// A publish's duplicate check and an acknowledgement look their rows up one by one in a unique
/// index, and a hand-over each key's oldest delivery in the index of the key's deliveries, even
/// with statistics taken before the tenant had events or deliveries. As `IN (VALUES …)` the
/// first two were planned as hash joins over all of the tenant's events (6 ms per 64 ids at
/// 5 000 events, more with every publish) or all of the subscription's queue; as an `OR` of
/// per-key conditions the hand-over was planned as a bitmap scan of the subscription's queue.
#[tokio::test]
async fn postgres_lookups_by_id_use_unique_indexes() {
    common::on_postgres_at(|store, url| async move {
        let acme = subscribed_tenant(&store).await;
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let subscription: String = sqlx::query_scalar("SELECT id FROM subscriptions")
            .fetch_one(&pool)
            .await
            .unwrap();
        // Statistics that say the events are another tenant's and the queue is empty, then
        // acme's events and deliveries.
        let globex = tenant_with_plugins(&store, "globex").await;
        let theirs: Vec<NewEvent> = (0..2_000).map(|n| event(&format!("g{n}"), None)).collect();
        store.publish_events(globex, &theirs, NOW).await.unwrap();
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
        fill(&store, acme, 5_000).await;
        for (statement, binds, table, lookup, expected) in
            lookup_cases(Backend::Postgres, acme, &subscription)
        {
            let (index, column) = lookup.postgres();
            let sql = format!("EXPLAIN (FORMAT JSON) {statement}");
            let plan: serde_json::Value = bind_all!(sqlx::query_scalar(&sql), &binds)
                .fetch_one(&pool)
                .await
                .unwrap();
            let plan = &plan[0]["Plan"];
            assert_eq!(
                read_otherwise(plan, table, index, column),
                expected,
                "{statement}: {plan}"
            );
        }
    })
    .await;
}

/// The same on SQLite: `events` and `deliveries` are only searched through their unique
/// indexes, a key's deliveries through theirs, or by row id.
#[tokio::test]
async fn sqlite_lookups_by_id_use_unique_indexes() {
    common::on_sqlite_at(|store, url| async move {
        let acme = subscribed_tenant(&store).await;
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let subscription: String = sqlx::query_scalar("SELECT id FROM subscriptions")
            .fetch_one(&pool)
            .await
            .unwrap();
        fill(&store, acme, 5_000).await;
        for (statement, binds, table, lookup, expected) in
            lookup_cases(Backend::Sqlite, acme, &subscription)
        {
            let (alias, lookup) = lookup.sqlite();
            let sql = format!("EXPLAIN QUERY PLAN {statement}");
            let rows = bind_all!(sqlx::query(&sql), &binds)
                .fetch_all(&pool)
                .await
                .unwrap();
            let plan: Vec<String> = rows
                .iter()
                .map(|row| sqlx::Row::get::<String, _>(row, "detail"))
                .collect();
            // Lines reading the table other than through the lookup or by row id.
            let read_otherwise = plan
                .iter()
                .filter(|detail| {
                    ["SCAN", "SEARCH"].iter().any(|read| {
                        detail.starts_with(&format!("{read} {table}"))
                            || detail.starts_with(&format!("{read} {alias} "))
                    }) && !(detail.starts_with("SEARCH")
                        && (detail.contains(lookup) || detail.contains("(rowid=?)")))
                })
                .count();
            assert_eq!(read_otherwise, expected, "{statement}: {plan:?}");
            if expected == 0 {
                assert!(
                    plan.iter().any(|detail| detail.contains(lookup)),
                    "{plan:?}"
                );
            }
        }
    })
    .await;
}

common::on_both_backends!(#[tokio::test] sqlite_key_backlog, postgres_key_backlog => a_key_backlog_waits_its_turn);
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_claimers() {
    common::on_sqlite_at(concurrent_claimers_never_overlap_a_key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_claimers() {
    common::on_postgres_at(concurrent_claimers_never_overlap_a_key).await;
}
