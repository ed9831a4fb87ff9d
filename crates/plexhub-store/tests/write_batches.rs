//! Group-commit batches on both backends: unconditional writes of one key merge into one row
//! write, yet every write keeps its own revision and change-log entry, and a write by another
//! plugin is refused without disturbing the rest of its batch.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use plexhub_core::data::{DataKey, Namespace, Precondition};
use plexhub_core::ids::PluginId;
use plexhub_core::tenant::TenantId;
use plexhub_store::{DataEventsSince, DataOutcome, DataWrite, Store};

mod common;

use common::{NOW, tenant_with_plugins};

fn write(key: &str, owner: &str, value: i64, precondition: Precondition) -> (DataWrite, i64) {
    let write = DataWrite {
        namespace: Namespace::parse("hot").unwrap(),
        key: DataKey::parse(key).unwrap(),
        value: serde_json::json!(value),
        owner: PluginId::parse(owner).unwrap(),
        ttl_ms: None,
        precondition,
    };
    (write, value)
}

fn done(revision: i64) -> DataOutcome {
    DataOutcome::Done { revision }
}

async fn batch(
    store: &Arc<dyn Store>,
    writes: Vec<(TenantId, (DataWrite, i64))>,
) -> Vec<DataOutcome> {
    let writes: Vec<(TenantId, DataWrite)> = writes
        .into_iter()
        .map(|(tenant, (write, _))| (tenant, write))
        .collect();
    store.put_data_batch(&writes, NOW).await.unwrap()
}

async fn current(store: &Arc<dyn Store>, tenant: TenantId, key: &str) -> (serde_json::Value, i64) {
    let namespace = Namespace::parse("hot").unwrap();
    let key = DataKey::parse(key).unwrap();
    let entry = store.get_data(tenant, &namespace, &key, NOW).await;
    let entry = entry.unwrap().unwrap();
    (entry.value, entry.revision)
}

async fn logged(store: &Arc<dyn Store>, tenant: TenantId) -> Vec<(i64, String, i64)> {
    match store.data_events_since(tenant, 0, 100).await.unwrap() {
        DataEventsSince::Events(events) => events
            .iter()
            .map(|event| (event.seq, event.key.to_string(), event.revision))
            .collect(),
        DataEventsSince::Reset { current } => panic!("log reset at {current}"),
    }
}

async fn batches_merge_writes_and_keep_every_revision(store: Arc<dyn Store>) {
    let acme = tenant_with_plugins(&store, "acme").await;
    let globex = tenant_with_plugins(&store, "globex").await;
    let (crm, analytics) = ("plugin-crm", "plugin-analytics");
    // Only merged groups (PostgreSQL writes these in one statement).
    let outcomes = batch(
        &store,
        vec![
            (acme, write("a", crm, 1, Precondition::None)),
            (acme, write("b", crm, 1, Precondition::None)),
            (acme, write("a", crm, 2, Precondition::None)),
            (globex, write("a", crm, 7, Precondition::None)),
            (acme, write("a", crm, 3, Precondition::None)),
        ],
    )
    .await;
    assert_eq!(outcomes, [done(1), done(1), done(2), done(1), done(3)]);
    assert_eq!(current(&store, acme, "a").await, (serde_json::json!(3), 3));
    assert_eq!(
        current(&store, globex, "a").await,
        (serde_json::json!(7), 1)
    );

    // A refused group beside an applied one.
    let outcomes = batch(
        &store,
        vec![
            (acme, write("a", analytics, 9, Precondition::None)),
            (acme, write("b", crm, 2, Precondition::None)),
            (acme, write("b", crm, 3, Precondition::None)),
        ],
    )
    .await;
    let not_owner = DataOutcome::NotOwner(PluginId::parse(crm).unwrap());
    assert_eq!(outcomes, [not_owner.clone(), done(2), done(3)]);

    // Conditional writes and two owners of one key: applied one by one, in batch order.
    let outcomes = batch(
        &store,
        vec![
            (acme, write("a", crm, 4, Precondition::Revision(3))),
            (acme, write("a", crm, 5, Precondition::Revision(3))),
            (acme, write("a", analytics, 6, Precondition::None)),
            (acme, write("c", crm, 1, Precondition::Absent)),
            (acme, write("b", crm, 4, Precondition::None)),
        ],
    )
    .await;
    let failed = DataOutcome::PreconditionFailed { current: Some(4) };
    assert_eq!(outcomes, [done(4), failed, not_owner, done(1), done(4)]);
    assert_eq!(current(&store, acme, "a").await, (serde_json::json!(4), 4));
    assert_eq!(current(&store, acme, "b").await, (serde_json::json!(4), 4));

    // One `set` event per applied write, gap-free, each key's revisions in order.
    let log = logged(&store, acme).await;
    let seqs: Vec<i64> = log.iter().map(|(seq, _, _)| *seq).collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
    for key in ["a", "b"] {
        let revisions: Vec<i64> = log
            .iter()
            .filter(|(_, k, _)| k == key)
            .map(|(_, _, revision)| *revision)
            .collect();
        assert_eq!(revisions, [1, 2, 3, 4], "key {key}");
    }
    assert_eq!(logged(&store, globex).await, [(1, "a".to_owned(), 1)]);
}

common::on_both_backends!(
    #[tokio::test] sqlite_batches, postgres_batches => batches_merge_writes_and_keep_every_revision
);

/// Data transactions that read before they write (a `check` first) while other writers commit:
/// each must wait its turn, not fail (on SQLite a deferred transaction that read first cannot
/// write once another commit landed after its read: `SQLITE_BUSY_SNAPSHOT`, without waiting).
async fn transactions_that_read_first_wait_for_writers(store: Arc<dyn Store>) {
    let tenant = tenant_with_plugins(&store, "acme").await;
    let (seed, _) = write("checked", "plugin-crm", 0, Precondition::None);
    assert_eq!(store.put_data(tenant, &seed, NOW).await.unwrap(), done(1));
    // Each worker writes a key of its own, then checks and writes in one transaction: the other
    // workers' writes commit between a transaction's check and its write.
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let store = store.clone();
        tasks.spawn(async move {
            for round in 0..25 {
                let (other, _) = write(
                    &format!("w{worker}"),
                    "plugin-crm",
                    round,
                    Precondition::None,
                );
                store.put_data(tenant, &other, NOW).await.unwrap();
                let (set, _) = write(
                    &format!("t{worker}"),
                    "plugin-crm",
                    round,
                    Precondition::None,
                );
                let ops = [
                    plexhub_store::DataOp::Check {
                        namespace: Namespace::parse("hot").unwrap(),
                        key: DataKey::parse("checked").unwrap(),
                        if_revision: None,
                    },
                    plexhub_store::DataOp::Set(set),
                ];
                let applied = store.data_transaction(tenant, &ops, NOW).await;
                assert!(
                    matches!(applied, Ok(Ok(_))),
                    "worker {worker}, round {round}: {applied:?}"
                );
            }
        });
    }
    while let Some(finished) = tasks.join_next().await {
        finished.unwrap();
    }
    assert_eq!(current(&store, tenant, "t0").await.0, serde_json::json!(24));
}

common::on_both_backends!(
    #[tokio::test] sqlite_read_first_transactions, postgres_read_first_transactions
        => transactions_that_read_first_wait_for_writers
);
