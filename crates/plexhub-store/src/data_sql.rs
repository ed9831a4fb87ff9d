//! Shared data's SQL, shared by every backend like [`crate::sql`]. Each write is one
//! conditional statement (owner, revision and expiry checked by the database in the same
//! statement that writes), followed by a change-log entry in the same transaction.

use std::collections::HashMap;

use plexhub_core::data::{DataKey, Entry, Namespace, Precondition};
use plexhub_core::tenant::TenantId;

use crate::sql::{corrupt, plugin_id, tenant_id};
use crate::{DataEvent, DataOutcome, DataWrite, StoreResult};

pub(crate) fn namespace(text: &str) -> StoreResult<Namespace> {
    Namespace::parse(text).map_err(|_| corrupt("shared_data", "namespace", text))
}

pub(crate) fn key(text: &str) -> StoreResult<DataKey> {
    DataKey::parse(text).map_err(|_| corrupt("shared_data", "key", text))
}

/// Columns of `shared_data`.
pub(crate) struct EntryRow {
    pub tenant_id: String,
    pub namespace: String,
    pub key: String,
    pub value: String,
    pub owner_id: String,
    pub revision: i64,
    pub expires_at: Option<i64>,
    pub updated_at: i64,
}

impl EntryRow {
    pub(crate) fn parse(self) -> StoreResult<Entry> {
        Ok(Entry {
            tenant_id: tenant_id(&self.tenant_id)?,
            namespace: namespace(&self.namespace)?,
            key: key(&self.key)?,
            value: serde_json::from_str(&self.value)
                .map_err(|_| corrupt("shared_data", "value", &self.value))?,
            owner: plugin_id("shared_data", &self.owner_id)?,
            revision: self.revision,
            expires_at_ms: self.expires_at,
            updated_at_ms: self.updated_at,
        })
    }
}

pub(crate) fn event(
    seq: i64,
    kind: &str,
    ns: &str,
    k: &str,
    revision: i64,
) -> StoreResult<DataEvent> {
    let kind = match kind {
        "set" => "set",
        "deleted" => "deleted",
        "expired" => "expired",
        other => return Err(corrupt("data_events", "kind", other)),
    };
    Ok(DataEvent {
        seq,
        kind,
        namespace: namespace(ns)?,
        key: key(k)?,
        revision,
    })
}

/// How a group-commit batch is applied: unconditional writes of one key by one owner are merged
/// into one row of a multi-row upsert (the key ends at the last value, its revision advances by
/// the number of writes, and each write keeps its own revision and change-log entry); every other
/// write is applied alone, in batch order.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct BatchPlan {
    /// Batch indices of the writes merged per key, in batch order; one group per key.
    pub merged: Vec<Vec<usize>>,
    /// Batch indices of the writes applied one by one, in batch order.
    pub single: Vec<usize>,
}

/// Splits a batch into merged groups and single writes (see [`BatchPlan`]).
pub(crate) fn plan_batch(writes: &[(TenantId, DataWrite)]) -> BatchPlan {
    let mut groups: HashMap<(TenantId, &str, &str), Vec<usize>> = HashMap::new();
    let mut order = Vec::new();
    for (index, (tenant, write)) in writes.iter().enumerate() {
        let slot = (*tenant, write.namespace.as_str(), write.key.as_str());
        let group = groups.entry(slot).or_insert_with(|| {
            order.push(slot);
            Vec::new()
        });
        group.push(index);
    }
    let mut plan = BatchPlan::default();
    for slot in order {
        let group = groups.remove(&slot).unwrap_or_default();
        let owner = &writes[group[0]].1.owner;
        let mergeable = group.iter().all(|&i| {
            let write = &writes[i].1;
            write.precondition == Precondition::None && write.owner == *owner
        });
        if mergeable {
            plan.merged.push(group);
        } else {
            plan.single.extend(group);
        }
    }
    plan.single.sort_unstable();
    plan
}

/// Fills in the outcomes of merged groups from the final revisions a merged upsert returned
/// (each write of a group gets its own revision, in batch order), and returns the groups that
/// were refused (absent from `applied`), whose outcomes are left untouched.
pub(crate) fn merged_outcomes<'g>(
    writes: &[(TenantId, DataWrite)],
    groups: &'g [Vec<usize>],
    applied: &HashMap<(String, String, String), i64>,
    outcomes: &mut [DataOutcome],
) -> Vec<&'g Vec<usize>> {
    let mut refused = Vec::new();
    for group in groups {
        let (tenant, first) = &writes[group[0]];
        let slot = (
            tenant.to_string(),
            first.namespace.to_string(),
            first.key.to_string(),
        );
        let Some(&last) = applied.get(&slot) else {
            refused.push(group);
            continue;
        };
        let count = i64::try_from(group.len()).unwrap_or(i64::MAX);
        for (offset, &index) in (0..).zip(group) {
            outcomes[index] = DataOutcome::Done {
                revision: last - count + 1 + offset,
            };
        }
    }
    refused
}

pub(crate) const ENTRY_COLUMNS: &str =
    "tenant_id, namespace, key, value, owner_id, revision, expires_at, updated_at";
/// The entry is live at `$now` (the parameter number is substituted).
pub(crate) const LIVE: &str = "(expires_at IS NULL OR expires_at > $N)";

/// Implements [`crate::DataStore`] for `$store` (see [`crate::sql::sql_store!`]).
///
/// The fourth argument is the statement that begins a transaction which may read before it
/// writes (SQLite: `BEGIN IMMEDIATE`). An optional fifth names an inherent method of `$store`
/// with the signature of `upsert_merged` minus the connection: when a batch is made only of
/// merged groups, that method writes and logs them in one autocommitted statement instead of a
/// transaction.
macro_rules! data_store {
    ($store:ident, $db:ty, $row:ty, $begin_read_first:literal $(, $one_statement:ident)?) => {
        use std::collections::HashMap;

        use plexhub_core::data::{DataKey, Entry, Namespace, Precondition};

        use crate::data_sql::{self as dsql, ENTRY_COLUMNS, LIVE};
        use crate::{
            DataDelete, DataEventsSince, DataListing, DataOp, DataOutcome, DataStore, DataWrite,
        };

        fn live(n: u8) -> String {
            LIVE.replace("$N", &format!("${n}"))
        }

        fn entry_from(row: &$row) -> StoreResult<Entry> {
            dsql::EntryRow {
                tenant_id: row.try_get("tenant_id")?,
                namespace: row.try_get("namespace")?,
                key: row.try_get("key")?,
                value: row.try_get("value")?,
                owner_id: row.try_get("owner_id")?,
                revision: row.try_get("revision")?,
                expires_at: row.try_get("expires_at")?,
                updated_at: row.try_get("updated_at")?,
            }
            .parse()
        }

        async fn append_data_event(
            connection: &mut Connection,
            tenant: TenantId,
            kind: &str,
            namespace: &str,
            key: &str,
            revision: i64,
            now_ms: i64,
        ) -> StoreResult<()> {
            let seq: i64 = sqlx::query_scalar(
                "UPDATE tenants SET data_seq = data_seq + 1 WHERE id = $1 RETURNING data_seq",
            )
            .bind(tenant.to_string())
            .fetch_one(&mut *connection)
            .await?;
            sqlx::query(
                "INSERT INTO data_events (tenant_id, seq, kind, namespace, key, revision, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(tenant.to_string())
            .bind(seq)
            .bind(kind)
            .bind(namespace)
            .bind(key)
            .bind(revision)
            .bind(now_ms)
            .execute(&mut *connection)
            .await?;
            Ok(())
        }

        /// Why a conditional statement changed nothing: the key's current owner and revision.
        async fn diagnose(
            connection: &mut Connection,
            tenant: TenantId,
            namespace: &Namespace,
            key: &DataKey,
            actor: Option<&PluginId>,
            precondition: Precondition,
            now_ms: i64,
        ) -> StoreResult<DataOutcome> {
            let sql = format!(
                "SELECT owner_id, revision FROM shared_data \
                 WHERE tenant_id = $1 AND namespace = $2 AND key = $3 AND {}",
                live(4)
            );
            let row = sqlx::query(&sql)
                .bind(tenant.to_string())
                .bind(namespace.as_str())
                .bind(key.as_str())
                .bind(now_ms)
                .fetch_optional(&mut *connection)
                .await?;
            let Some(row) = row else {
                return Ok(match precondition {
                    Precondition::Revision(_) => DataOutcome::PreconditionFailed { current: None },
                    _ => DataOutcome::Missing,
                });
            };
            let owner = crate::sql::plugin_id("shared_data", row.try_get("owner_id")?)?;
            let revision: i64 = row.try_get("revision")?;
            if actor.is_some_and(|actor| *actor != owner) {
                return Ok(DataOutcome::NotOwner(owner));
            }
            Ok(DataOutcome::PreconditionFailed { current: Some(revision) })
        }

        /// Applies a write without logging it.
        async fn apply_write(
            connection: &mut Connection,
            tenant: TenantId,
            write: &DataWrite,
            now_ms: i64,
        ) -> StoreResult<DataOutcome> {
            let value = write.value.to_string();
            let expires_at = write.ttl_ms.map(|ttl| now_ms.saturating_add(ttl));
            let revision: Option<i64> = match write.precondition {
                Precondition::Revision(expected) => {
                    let sql = format!(
                        "UPDATE shared_data SET value = $4, revision = revision + 1, expires_at = $6, \
                         updated_at = $7 WHERE tenant_id = $1 AND namespace = $2 AND key = $3 \
                         AND owner_id = $5 AND revision = $8 AND {}",
                        live(7)
                    );
                    sqlx::query_scalar(&format!("{sql} RETURNING revision"))
                        .bind(tenant.to_string())
                        .bind(write.namespace.as_str())
                        .bind(write.key.as_str())
                        .bind(&value)
                        .bind(write.owner.as_str())
                        .bind(expires_at)
                        .bind(now_ms)
                        .bind(expected)
                        .fetch_optional(&mut *connection)
                        .await?
                }
                Precondition::None | Precondition::Absent => {
                    // An expired row counts as absent: anyone may replace it.
                    let only_if_absent = i64::from(write.precondition == Precondition::Absent);
                    sqlx::query_scalar(
                        "INSERT INTO shared_data (tenant_id, namespace, key, value, owner_id, revision, \
                         expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7) \
                         ON CONFLICT (tenant_id, namespace, key) DO UPDATE SET value = excluded.value, \
                         owner_id = excluded.owner_id, revision = shared_data.revision + 1, \
                         expires_at = excluded.expires_at, updated_at = excluded.updated_at \
                         WHERE (shared_data.expires_at IS NOT NULL AND shared_data.expires_at <= $7) \
                         OR (shared_data.owner_id = excluded.owner_id AND $8 = 0) RETURNING revision",
                    )
                    .bind(tenant.to_string())
                    .bind(write.namespace.as_str())
                    .bind(write.key.as_str())
                    .bind(&value)
                    .bind(write.owner.as_str())
                    .bind(expires_at)
                    .bind(now_ms)
                    .bind(only_if_absent)
                    .fetch_optional(&mut *connection)
                    .await?
                }
            };
            let Some(revision) = revision else {
                return diagnose(
                    connection,
                    tenant,
                    &write.namespace,
                    &write.key,
                    Some(&write.owner),
                    write.precondition,
                    now_ms,
                )
                .await;
            };
            Ok(DataOutcome::Done { revision })
        }

        /// Merged groups per multi-row upsert: 7 parameters each stay below every backend's limit.
        const MERGED_ROWS: usize = 100;

        /// Applies merged groups (see [`dsql::BatchPlan`]) in one statement: each key takes its
        /// group's last value and its revision advances by the group's size. Returns the final
        /// revision of every key that was written, by `(tenant, namespace, key)`; a key missing
        /// from the answer was refused (owned by another plugin) and did not change.
        async fn upsert_merged(
            connection: &mut Connection,
            writes: &[(TenantId, DataWrite)],
            groups: &[Vec<usize>],
            now_ms: i64,
        ) -> StoreResult<HashMap<(String, String, String), i64>> {
            let rows: Vec<String> = (0..groups.len())
                .map(|i| {
                    let p = i * 7 + 1;
                    format!("(${}, ${}, ${}, ${}, ${}, ${}, ${}, $1, $1)", p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7)
                })
                .collect();
            let sql = format!(
                "INSERT INTO shared_data (tenant_id, namespace, key, value, owner_id, revision, \
                 expires_at, created_at, updated_at) VALUES {} \
                 ON CONFLICT (tenant_id, namespace, key) DO UPDATE SET value = excluded.value, \
                 owner_id = excluded.owner_id, revision = shared_data.revision + excluded.revision, \
                 expires_at = excluded.expires_at, updated_at = excluded.updated_at \
                 WHERE (shared_data.expires_at IS NOT NULL AND shared_data.expires_at <= $1) \
                 OR shared_data.owner_id = excluded.owner_id \
                 RETURNING tenant_id, namespace, key, revision",
                rows.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(now_ms);
            for group in groups {
                let (tenant, last) = &writes[group[group.len() - 1]];
                query = query
                    .bind(tenant.to_string())
                    .bind(last.namespace.as_str())
                    .bind(last.key.as_str())
                    .bind(last.value.to_string())
                    .bind(last.owner.as_str())
                    .bind(i64::try_from(group.len()).unwrap_or(i64::MAX))
                    .bind(last.ttl_ms.map(|ttl| now_ms.saturating_add(ttl)));
            }
            let mut applied = HashMap::with_capacity(groups.len());
            for row in query.fetch_all(&mut *connection).await? {
                applied.insert(
                    (row.try_get("tenant_id")?, row.try_get("namespace")?, row.try_get("key")?),
                    row.try_get("revision")?,
                );
            }
            Ok(applied)
        }

        /// Applies and logs a write.
        async fn write_in(
            connection: &mut Connection,
            tenant: TenantId,
            write: &DataWrite,
            now_ms: i64,
        ) -> StoreResult<DataOutcome> {
            let outcome = apply_write(connection, tenant, write, now_ms).await?;
            if let DataOutcome::Done { revision } = outcome {
                append_data_event(connection, tenant, "set", write.namespace.as_str(), write.key.as_str(), revision, now_ms).await?;
            }
            Ok(outcome)
        }

        /// Logs many `set` events of one tenant: one counter update reserves their ids, and
        /// multi-row inserts store them.
        async fn append_set_events(
            connection: &mut Connection,
            tenant: TenantId,
            written: &[(&DataWrite, i64)],
            now_ms: i64,
        ) -> StoreResult<()> {
            let count = i64::try_from(written.len()).unwrap_or(i64::MAX);
            let last: i64 = sqlx::query_scalar(
                "UPDATE tenants SET data_seq = data_seq + $2 WHERE id = $1 RETURNING data_seq",
            )
            .bind(tenant.to_string())
            .bind(count)
            .fetch_one(&mut *connection)
            .await?;
            let mut seq = last - count;
            // 100 rows of 7 parameters stay below SQLite's parameter limit.
            for chunk in written.chunks(100) {
                let sql = format!(
                    "INSERT INTO data_events (tenant_id, seq, kind, namespace, key, revision, created_at) VALUES {}",
                    crate::sql::value_rows::<$db>(1, chunk.len(), &["$"; 7])
                );
                let mut query = sqlx::query(&sql);
                for (write, revision) in chunk {
                    seq += 1;
                    query = query
                        .bind(tenant.to_string())
                        .bind(seq)
                        .bind("set")
                        .bind(write.namespace.as_str())
                        .bind(write.key.as_str())
                        .bind(*revision)
                        .bind(now_ms);
                }
                query.execute(&mut *connection).await?;
            }
            Ok(())
        }

        async fn delete_in(
            connection: &mut Connection,
            tenant: TenantId,
            delete: &DataDelete,
            now_ms: i64,
        ) -> StoreResult<DataOutcome> {
            let sql = format!(
                "DELETE FROM shared_data WHERE tenant_id = $1 AND namespace = $2 AND key = $3 \
                 AND ($5 = '' OR owner_id = $5) AND ($6 < 0 OR revision = $6) AND {} RETURNING revision",
                live(4)
            );
            let removed: Option<i64> = sqlx::query_scalar(&sql)
                .bind(tenant.to_string())
                .bind(delete.namespace.as_str())
                .bind(delete.key.as_str())
                .bind(now_ms)
                .bind(delete.actor.as_ref().map_or("", PluginId::as_str))
                .bind(delete.if_revision.unwrap_or(-1))
                .fetch_optional(&mut *connection)
                .await?;
            let Some(revision) = removed else {
                let precondition = delete.if_revision.map_or(Precondition::None, Precondition::Revision);
                return diagnose(connection, tenant, &delete.namespace, &delete.key, delete.actor.as_ref(), precondition, now_ms).await;
            };
            append_data_event(connection, tenant, "deleted", delete.namespace.as_str(), delete.key.as_str(), revision, now_ms).await?;
            Ok(DataOutcome::Done { revision })
        }

        async fn check_in(
            connection: &mut Connection,
            tenant: TenantId,
            namespace: &Namespace,
            key: &DataKey,
            if_revision: Option<i64>,
            now_ms: i64,
        ) -> StoreResult<DataOutcome> {
            let sql = format!(
                "SELECT revision FROM shared_data WHERE tenant_id = $1 AND namespace = $2 AND key = $3 AND {}",
                live(4)
            );
            let current: Option<i64> = sqlx::query_scalar(&sql)
                .bind(tenant.to_string())
                .bind(namespace.as_str())
                .bind(key.as_str())
                .bind(now_ms)
                .fetch_optional(&mut *connection)
                .await?;
            Ok(match (current, if_revision) {
                (None, _) => DataOutcome::Missing,
                (Some(current), Some(expected)) if current != expected => {
                    DataOutcome::PreconditionFailed { current: Some(current) }
                }
                (Some(revision), _) => DataOutcome::Done { revision },
            })
        }

        impl $store {
            /// Applies a batch in one transaction: merged groups in multi-row upserts, the other
            /// writes one by one, then one `set` event per applied write.
            async fn write_batch_in_transaction(
                &self,
                writes: &[(TenantId, DataWrite)],
                now_ms: i64,
            ) -> StoreResult<Vec<DataOutcome>> {
                let plan = dsql::plan_batch(writes);
                let mut tx = self.pool.begin().await?;
                // Every index is in exactly one merged group or in `single`, so each
                // placeholder is overwritten. A refused write changes nothing, so the others
                // can still commit.
                let mut outcomes = vec![DataOutcome::Missing; writes.len()];
                for groups in plan.merged.chunks(MERGED_ROWS) {
                    let applied = upsert_merged(&mut tx, writes, groups, now_ms).await?;
                    for group in dsql::merged_outcomes(writes, groups, &applied, &mut outcomes) {
                        let (tenant, first) = &writes[group[0]];
                        let refused = diagnose(
                            &mut tx,
                            *tenant,
                            &first.namespace,
                            &first.key,
                            Some(&first.owner),
                            Precondition::None,
                            now_ms,
                        )
                        .await?;
                        for &index in group {
                            outcomes[index] = refused.clone();
                        }
                    }
                }
                for &index in &plan.single {
                    let (tenant, write) = &writes[index];
                    outcomes[index] = apply_write(&mut tx, *tenant, write, now_ms).await?;
                }
                let mut written: std::collections::BTreeMap<TenantId, Vec<(&DataWrite, i64)>> =
                    std::collections::BTreeMap::new();
                for ((tenant, write), outcome) in writes.iter().zip(&outcomes) {
                    if let DataOutcome::Done { revision } = outcome {
                        written.entry(*tenant).or_default().push((write, *revision));
                    }
                }
                for (tenant, writes) in &written {
                    append_set_events(&mut tx, *tenant, writes, now_ms).await?;
                }
                tx.commit().await?;
                Ok(outcomes)
            }
        }

        #[async_trait]
        impl DataStore for $store {
            async fn put_data(&self, tenant: TenantId, write: &DataWrite, now_ms: i64) -> StoreResult<DataOutcome> {
                let mut tx = self.pool.begin().await?;
                let outcome = write_in(&mut tx, tenant, write, now_ms).await?;
                if matches!(outcome, DataOutcome::Done { .. }) {
                    tx.commit().await?;
                }
                Ok(outcome)
            }

            async fn put_data_batch(
                &self,
                writes: &[(TenantId, DataWrite)],
                now_ms: i64,
            ) -> StoreResult<Vec<DataOutcome>> {
                $(
                    let plan = dsql::plan_batch(writes);
                    if plan.single.is_empty() && plan.merged.len() <= MERGED_ROWS {
                        let applied = self.$one_statement(writes, &plan.merged, now_ms).await?;
                        let mut outcomes = vec![DataOutcome::Missing; writes.len()];
                        let refused: Vec<usize> =
                            dsql::merged_outcomes(writes, &plan.merged, &applied, &mut outcomes)
                                .into_iter()
                                .flatten()
                                .copied()
                                .collect();
                        if refused.is_empty() {
                            return Ok(outcomes);
                        }
                        // Nothing of a refused group changed: decide those writes again in a
                        // transaction, which says why they are refused.
                        let again: Vec<(TenantId, DataWrite)> =
                            refused.iter().map(|&i| writes[i].clone()).collect();
                        let decided = self.write_batch_in_transaction(&again, now_ms).await?;
                        for (&index, outcome) in refused.iter().zip(decided) {
                            outcomes[index] = outcome;
                        }
                        return Ok(outcomes);
                    }
                )?
                self.write_batch_in_transaction(writes, now_ms).await
            }

            async fn get_data(
                &self,
                tenant: TenantId,
                namespace: &Namespace,
                key: &DataKey,
                now_ms: i64,
            ) -> StoreResult<Option<Entry>> {
                let sql = format!(
                    "SELECT {ENTRY_COLUMNS} FROM shared_data WHERE tenant_id = $1 AND namespace = $2 \
                     AND key = $3 AND {}",
                    live(4)
                );
                let row = sqlx::query(&sql)
                    .bind(tenant.to_string())
                    .bind(namespace.as_str())
                    .bind(key.as_str())
                    .bind(now_ms)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(entry_from).transpose()
            }

            async fn delete_data(&self, tenant: TenantId, delete: &DataDelete, now_ms: i64) -> StoreResult<DataOutcome> {
                let mut tx = self.pool.begin().await?;
                let outcome = delete_in(&mut tx, tenant, delete, now_ms).await?;
                if matches!(outcome, DataOutcome::Done { .. }) {
                    tx.commit().await?;
                }
                Ok(outcome)
            }

            async fn list_data(
                &self,
                tenant: TenantId,
                namespace: &Namespace,
                listing: &DataListing,
                now_ms: i64,
            ) -> StoreResult<Vec<Entry>> {
                let sql = format!(
                    "SELECT {ENTRY_COLUMNS} FROM shared_data WHERE tenant_id = $1 AND namespace = $2 \
                     AND {} AND ($4 = '' OR owner_id = $4) AND substr(key, 1, length($5)) = $5 \
                     AND key > $6 ORDER BY key LIMIT $7",
                    live(3)
                );
                let rows = sqlx::query(&sql)
                    .bind(tenant.to_string())
                    .bind(namespace.as_str())
                    .bind(now_ms)
                    .bind(listing.owner.as_ref().map_or("", PluginId::as_str))
                    .bind(&listing.prefix)
                    .bind(&listing.after)
                    .bind(i64::from(listing.limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(entry_from).collect()
            }

            async fn data_transaction(
                &self,
                tenant: TenantId,
                ops: &[DataOp],
                now_ms: i64,
            ) -> StoreResult<Result<Vec<i64>, (usize, DataOutcome)>> {
                // Its first statement may be a read (a check): on SQLite a transaction that
                // read first cannot write once another write committed after that read
                // (SQLITE_BUSY_SNAPSHOT, returned at once), so it takes the write lock first.
                let mut tx = self.pool.begin_with($begin_read_first).await?;
                let mut revisions = Vec::with_capacity(ops.len());
                for (index, op) in ops.iter().enumerate() {
                    let outcome = match op {
                        DataOp::Set(write) => write_in(&mut tx, tenant, write, now_ms).await?,
                        DataOp::Delete(delete) => delete_in(&mut tx, tenant, delete, now_ms).await?,
                        DataOp::Check { namespace, key, if_revision } => {
                            check_in(&mut tx, tenant, namespace, key, *if_revision, now_ms).await?
                        }
                    };
                    match outcome {
                        DataOutcome::Done { revision } => revisions.push(revision),
                        failed => return Ok(Err((index, failed))),
                    }
                }
                tx.commit().await?;
                Ok(Ok(revisions))
            }

            async fn data_events_since(&self, tenant: TenantId, after: i64, limit: u32) -> StoreResult<DataEventsSince> {
                match log_position(&self.pool, "data_seq", "data_events", tenant, after).await? {
                    crate::registry_sql::LogPosition::Read => {}
                    crate::registry_sql::LogPosition::UpToDate => return Ok(DataEventsSince::Events(Vec::new())),
                    crate::registry_sql::LogPosition::Reset(current) => {
                        return Ok(DataEventsSince::Reset { current });
                    }
                }
                let rows = sqlx::query(
                    "SELECT seq, kind, namespace, key, revision FROM data_events \
                     WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .bind(tenant.to_string())
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let events = rows
                    .iter()
                    .map(|row| {
                        dsql::event(
                            row.try_get("seq")?,
                            row.try_get("kind")?,
                            row.try_get("namespace")?,
                            row.try_get("key")?,
                            row.try_get("revision")?,
                        )
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok(DataEventsSince::Events(events))
            }

            async fn sweep_expired_data(&self, now_ms: i64) -> StoreResult<Vec<(TenantId, Namespace, DataKey)>> {
                let rows = sqlx::query(
                    "SELECT tenant_id, namespace, key, revision FROM shared_data \
                     WHERE expires_at IS NOT NULL AND expires_at <= $1 LIMIT 1000",
                )
                .bind(now_ms)
                .fetch_all(&self.pool)
                .await?;
                let mut expired = Vec::new();
                for row in &rows {
                    let tenant = crate::sql::tenant_id(row.try_get("tenant_id")?)?;
                    let namespace: &str = row.try_get("namespace")?;
                    let key: &str = row.try_get("key")?;
                    let revision: i64 = row.try_get("revision")?;
                    let mut tx = self.pool.begin().await?;
                    // Guarded on the revision read: a rewrite in between, or another hub's sweep,
                    // wins, and this one logs nothing.
                    let removed = sqlx::query(
                        "DELETE FROM shared_data WHERE tenant_id = $1 AND namespace = $2 AND key = $3 \
                         AND revision = $4 AND expires_at IS NOT NULL AND expires_at <= $5",
                    )
                    .bind(tenant.to_string())
                    .bind(namespace)
                    .bind(key)
                    .bind(revision)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if removed == 1 {
                        append_data_event(&mut tx, tenant, "expired", namespace, key, revision, now_ms).await?;
                        tx.commit().await?;
                        expired.push((tenant, dsql::namespace(namespace)?, dsql::key(key)?));
                    }
                }
                Ok(expired)
            }

            async fn prune_data_events(&self, before_ms: i64) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM data_events WHERE created_at < $1")
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use data_store;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use plexhub_core::data::{DataKey, Namespace, Precondition};
    use plexhub_core::ids::PluginId;
    use plexhub_core::tenant::TenantId;

    use super::{BatchPlan, plan_batch};
    use crate::DataWrite;

    fn write(key: &str, owner: &str, precondition: Precondition) -> DataWrite {
        DataWrite {
            namespace: Namespace::parse("ns").unwrap(),
            key: DataKey::parse(key).unwrap(),
            value: serde_json::json!(1),
            owner: PluginId::parse(owner).unwrap(),
            ttl_ms: None,
            precondition,
        }
    }

    #[test]
    fn unconditional_writes_of_one_key_by_one_owner_merge() {
        let tenant = TenantId::new_random();
        let batch = vec![
            (tenant, write("a", "plugin-crm", Precondition::None)),
            (tenant, write("b", "plugin-crm", Precondition::None)),
            (tenant, write("a", "plugin-crm", Precondition::None)),
        ];
        let expected = BatchPlan {
            merged: vec![vec![0, 2], vec![1]],
            single: vec![],
        };
        assert_eq!(plan_batch(&batch), expected);
    }

    #[test]
    fn a_conditional_write_or_a_second_owner_keeps_the_key_in_batch_order() {
        let tenant = TenantId::new_random();
        let batch = vec![
            (tenant, write("a", "plugin-crm", Precondition::None)),
            (tenant, write("b", "plugin-crm", Precondition::None)),
            (tenant, write("a", "plugin-crm", Precondition::Revision(3))),
            (tenant, write("b", "plugin-analytics", Precondition::None)),
            (tenant, write("c", "plugin-crm", Precondition::Absent)),
        ];
        let expected = BatchPlan {
            merged: vec![],
            single: vec![0, 1, 2, 3, 4],
        };
        assert_eq!(plan_batch(&batch), expected);
    }

    #[test]
    fn the_same_key_in_two_tenants_is_two_groups() {
        let (acme, globex) = (TenantId::new_random(), TenantId::new_random());
        let batch = vec![
            (acme, write("a", "plugin-crm", Precondition::None)),
            (globex, write("a", "plugin-crm", Precondition::None)),
        ];
        assert_eq!(plan_batch(&batch).merged, vec![vec![0], vec![1]]);
    }
}
