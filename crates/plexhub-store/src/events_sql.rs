//! The event bus's SQL, shared by every backend like [`crate::sql`].
//!
//! Keyed deliveries: only the head of a key (per subscription) is ever due. A delivery queued
//! behind another of its key is inserted *parked* (`due_at` = [`PARKED`]); the completion that
//! ends a head (acknowledged or dead-lettered; a retry keeps its place) hands the key to the
//! oldest remaining delivery of that key in the same transaction. A claim reads due deliveries
//! through the index on `(due_at, seq)`, so a key's backlog costs it nothing. On PostgreSQL a
//! publisher and a completer of the same key serialize on a transaction-scoped advisory lock
//! per (subscription, key), taken in one order, so a hand-over always sees the deliveries a
//! publisher parked. Every statement reads `deliveries` by index only, whatever the batch size
//! or the queue length (scalar subqueries the planners cannot turn into joins); the store tests
//! check the plans with `EXPLAIN`.

use crate::sql::{ParamStyle, value_rows};

/// Rows per multi-row insert statement.
pub(crate) const EVENT_ROWS: usize = 64;

/// What a claimed delivery is sent with, read with [`CLAIMED_JOINS`] (alias `d`: deliveries).
pub(crate) const CLAIMED_DETAILS: &str = "d.partition_key, t.slug, s.plugin_id, s.endpoint, \
     s.max_attempts, i.base_url, ev.source, ev.event_id, ev.published_at, ev.envelope";

/// The tables [`CLAIMED_DETAILS`] come from.
pub(crate) const CLAIMED_JOINS: &str = "JOIN subscriptions s ON s.id = d.subscription_id \
     JOIN installations i ON i.tenant_id = s.tenant_id AND i.plugin_id = s.plugin_id \
     JOIN events ev ON ev.tenant_id = d.tenant_id AND ev.seq = d.seq \
     JOIN tenants t ON t.id = d.tenant_id";

/// `due_at` of a parked delivery (the largest BIGINT: never due).
pub(crate) const PARKED: i64 = i64::MAX;

/// The backend a statement is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite: anonymous `?` parameters in generated statements, no row locks.
    Sqlite,
    /// PostgreSQL: `$n` parameters, claims skip locked rows.
    Postgres,
}

/// The claim (`$1` now, `$2` lease end, `$3` lease token, `$4` batch size): due, unleased
/// deliveries, oldest due first, each the oldest unparked one of its key, leased at once. On
/// PostgreSQL one statement that also returns the deliveries' columns (without the joined
/// details); on SQLite it returns `(subscription_id, seq)` and the details are read after.
pub fn claim_statement(backend: Backend) -> String {
    let lock = match backend {
        Backend::Sqlite => "",
        Backend::Postgres => "FOR UPDATE OF d SKIP LOCKED",
    };
    let claim = "UPDATE deliveries SET due_at = $2, leased_until = $2, lease_token = $3 \
         FROM picked WHERE deliveries.subscription_id = picked.subscription_id \
         AND deliveries.seq = picked.seq AND deliveries.leased_until <= $1";
    // The order check is a scalar subquery in a CASE: evaluated per candidate through the
    // index (subscription_id, partition_key, seq), never planned as a join over the queue.
    let picked = format!(
        "picked AS (SELECT d.subscription_id, d.seq FROM deliveries d \
         WHERE d.due_at <= $1 AND d.leased_until <= $1 \
         AND CASE WHEN d.partition_key = '' THEN d.seq ELSE (SELECT MIN(e.seq) FROM deliveries e \
           WHERE e.subscription_id = d.subscription_id AND e.partition_key = d.partition_key \
           AND e.due_at < {PARKED}) END = d.seq \
         ORDER BY d.due_at, d.seq LIMIT $4 {lock})"
    );
    match backend {
        Backend::Sqlite => format!("WITH {picked} {claim} RETURNING subscription_id, seq"),
        Backend::Postgres => format!(
            "WITH {picked}, claimed AS ({claim} RETURNING deliveries.subscription_id, \
             deliveries.seq, deliveries.attempts, deliveries.tenant_id, deliveries.partition_key)"
        ),
    }
}

/// Hands keys over: the oldest remaining delivery of each, if parked, becomes due at the first
/// parameter. With `lease`, it is leased instead: parameters due time, lease end and lease token
/// (the same instant twice: a claim's lease); the statement returns `subscription_id, seq,
/// lease_token, attempts, tenant_id, partition_key` of every row it matched (those holding
/// another token were not handed over). The keys follow: on SQLite `keys` of them, each its
/// subscription and the key; on PostgreSQL any number, as one JSON array of
/// `[subscription, key]` pairs ([`hand_over_keys`]), so that one prepared statement (and its
/// cached plan) serves every batch.
///
/// Each key's oldest delivery is found by a scalar subquery on the index
/// `(subscription_id, partition_key, seq)` and updated by its physical row id, like
/// [`acknowledge_statement`]: no `OR` of per-key conditions, which PostgreSQL planned (with every
/// key of one subscription) as a bitmap scan of the subscription's whole queue filtered by 64
/// conditions, 4-5 ms per statement to plan and as much to run, while the completer held the
/// keys' locks. A row another transaction changed meanwhile (a claim leased it: it was not
/// parked) has another id and is left alone.
pub fn hand_over_statement(backend: Backend, keys: usize, lease: bool) -> String {
    match backend {
        // Anonymous parameters, in order.
        Backend::Sqlite => hand_over::<sqlx::Sqlite>(lease, |_| {
            let head = "(SELECT e.rowid FROM deliveries e WHERE e.subscription_id = ? \
                        AND e.partition_key = ? ORDER BY e.seq LIMIT 1)";
            format!("rowid IN ({})", vec![head; keys].join(", "))
        }),
        Backend::Postgres => hand_over::<sqlx::Postgres>(lease, |first| {
            format!(
                "ctid = ANY (ARRAY(SELECT (SELECT e.ctid FROM deliveries e \
                 WHERE e.subscription_id = k.value ->> 0 AND e.partition_key = k.value ->> 1 \
                 ORDER BY e.seq LIMIT 1) FROM json_array_elements(CAST(${first} AS json)) AS k))"
            )
        }),
    }
}

/// The keys of a PostgreSQL hand-over ([`hand_over_statement`]): `[[subscription, key], …]`.
pub fn hand_over_keys(keys: &[(&str, &str)]) -> String {
    // A pair serializes as a two-element array.
    serde_json::to_string(keys).expect("pairs of strings always serialize")
}

/// The hand-over with the rows it updates chosen by `heads` (given the first key parameter).
fn hand_over<D: ParamStyle>(lease: bool, heads: impl Fn(usize) -> String) -> String {
    let param = crate::sql::param::<D>;
    let (set, first_key_param, returning) = if lease {
        (
            format!(
                "due_at = CASE WHEN due_at = {PARKED} THEN {} ELSE due_at END, \
                 leased_until = CASE WHEN due_at = {PARKED} THEN {} ELSE leased_until END, \
                 lease_token = CASE WHEN due_at = {PARKED} THEN {} ELSE lease_token END",
                param(1),
                param(2),
                param(3)
            ),
            4,
            " RETURNING subscription_id, seq, lease_token, attempts, tenant_id, partition_key",
        )
    } else {
        (
            format!(
                "due_at = CASE WHEN due_at = {PARKED} THEN {} ELSE due_at END",
                param(1)
            ),
            2,
            "",
        )
    };
    format!(
        "UPDATE deliveries SET {set} WHERE {}{returning}",
        heads(first_key_param)
    )
}

/// Looks `rows` (source, event id) pairs up among a tenant's events (parameters: the pairs,
/// then the tenant): one row `source, event_id, seq` per pair, `seq` NULL when it was never
/// published. Each pair is one lookup in the unique index `(tenant_id, source, event_id)`, a
/// scalar subquery: the plan cannot become a scan of the tenant's events, however stale the
/// statistics (`IN (VALUES …)` could: a hash join over all of them, slower with every event).
pub fn published_ids_statement(backend: Backend, rows: usize) -> String {
    match backend {
        Backend::Sqlite => published_ids::<sqlx::Sqlite>(rows),
        Backend::Postgres => published_ids::<sqlx::Postgres>(rows),
    }
}

fn published_ids<D: ParamStyle>(rows: usize) -> String {
    format!(
        "WITH v (source, event_id) AS (VALUES {}) SELECT v.source, v.event_id, \
         (SELECT ev.seq FROM events ev WHERE ev.tenant_id = {} AND ev.source = v.source \
         AND ev.event_id = v.event_id) AS seq FROM v",
        value_rows::<D>(1, rows, &["$", "$"]),
        crate::sql::param::<D>(2 * rows + 1)
    )
}

/// Deletes `rows` acknowledged deliveries, each only while still leased with its token (per
/// row: subscription, seq, token). Each row is found by a scalar subquery on the primary key
/// and deleted by its physical row id (`ctid` on PostgreSQL, `rowid` on SQLite): no join and no
/// `OR` for the planner to misjudge. (`(seq, lease_token) IN (VALUES …)` was planned, with
/// statistics older than the queue, as a scan of the subscription's whole queue.) A row another
/// transaction changed meanwhile has another id and is left alone, as its lease was lost.
pub fn acknowledge_statement(backend: Backend, rows: usize) -> String {
    match backend {
        Backend::Sqlite => acknowledge::<sqlx::Sqlite>(rows, "rowid"),
        Backend::Postgres => acknowledge::<sqlx::Postgres>(rows, "ctid"),
    }
}

fn acknowledge<D: ParamStyle>(rows: usize, row_id: &str) -> String {
    let param = crate::sql::param::<D>;
    let lookups: Vec<String> = (0..rows)
        .map(|row| {
            let n = 1 + 3 * row;
            format!(
                "(SELECT e.{row_id} FROM deliveries e WHERE e.subscription_id = {} \
                 AND e.seq = {} AND e.lease_token = {})",
                param(n),
                param(n + 1),
                param(n + 2)
            )
        })
        .collect();
    format!(
        "DELETE FROM deliveries WHERE {row_id} IN ({})",
        lookups.join(", ")
    )
}

/// Inserts `rows` deliveries (per row: subscription, tenant, seq, key, due time). With
/// `first_of_key` each row, the first of its key in its batch, is parked when a delivery of its
/// key is already queued; without, each row carries its due time ([`PARKED`] behind a first
/// one; unkeyed rows are never checked, so they cost what a plain insert costs).
/// `on_conflict_ignore`: a delivery already queued is left as it is.
pub fn insert_deliveries_statement(
    backend: Backend,
    rows: usize,
    first_of_key: bool,
    on_conflict_ignore: bool,
) -> String {
    let values = match backend {
        Backend::Sqlite => insert_values::<sqlx::Sqlite>(rows, first_of_key),
        Backend::Postgres => insert_values::<sqlx::Postgres>(rows, first_of_key),
    };
    let conflict = if on_conflict_ignore {
        " ON CONFLICT (subscription_id, seq) DO NOTHING"
    } else {
        ""
    };
    let columns = "deliveries (subscription_id, tenant_id, seq, partition_key, due_at)";
    if !first_of_key {
        return format!("INSERT INTO {columns} VALUES {values}{conflict}");
    }
    // SQLite needs a WHERE before an upsert's ON CONFLICT after a SELECT.
    let conflict = if on_conflict_ignore {
        format!(" WHERE TRUE{conflict}")
    } else {
        String::new()
    };
    format!(
        "WITH v (s, t, q, k, d) AS (VALUES {values}) INSERT INTO {columns} \
         SELECT v.s, v.t, v.q, v.k, CASE WHEN EXISTS (SELECT 1 FROM deliveries e \
           WHERE e.subscription_id = v.s AND e.partition_key = v.k) THEN {PARKED} ELSE v.d END \
         FROM v{conflict}"
    )
}

fn insert_values<D: ParamStyle>(rows: usize, typed: bool) -> String {
    // In a CTE PostgreSQL needs the types spelled out; in an INSERT's VALUES the columns give them.
    let columns: &[&str] = if typed {
        &["$", "$", "CAST($ AS BIGINT)", "$", "CAST($ AS BIGINT)"]
    } else {
        &["$"; 5]
    };
    value_rows::<D>(1, rows, columns)
}

/// The advisory-lock id of a (subscription, key): FNV-1a over both, stable across builds.
pub(crate) fn key_lock_id(subscription: &str, key: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in subscription.bytes().chain([0x1f]).chain(key.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// Columns of a stored event, as selected by the queries below (alias `ev`).
pub(crate) const EVENT_COLUMNS: &str =
    "ev.seq, ev.event_id, ev.source, ev.event_type, ev.partition_key, ev.published_at, ev.envelope";

/// Implements [`crate::EventStore`] for `$store` (see [`crate::sql::sql_store!`]) on `$backend`
/// (a [`Backend`]): write transactions open with `$begin` (`BEGIN IMMEDIATE` on SQLite, so a
/// transaction that reads first never fails to upgrade its lock while another connection
/// writes), and claims and completions with `$begin_relaxed` (PostgreSQL: `BEGIN` and `SET LOCAL
/// synchronous_commit = off` in one round trip): losing one in a crash only means the event is
/// delivered again, which at-least-once allows; publishing always waits for a durable commit. On PostgreSQL a
/// claim is one statement, the UPDATE's `RETURNING` joined in a CTE; SQLite cannot put an
/// UPDATE in a CTE, so it claims (returning the keys), then reads those rows.
macro_rules! event_store {
    ($store:ident, $db:ty, $row:ty, $backend:expr, $begin:literal, $begin_relaxed:literal) => {
        use crate::events_sql::{
            Backend, CLAIMED_DETAILS, CLAIMED_JOINS, EVENT_COLUMNS, EVENT_ROWS, PARKED,
            acknowledge_statement, claim_statement, hand_over_keys, hand_over_statement, insert_deliveries_statement, key_lock_id,
            published_ids_statement,
        };
        use crate::sql::value_rows;
        use crate::{
            ClaimedDelivery, DeadLetter, DeliveryOutcome, EventStore, NewEvent, OutcomeCount,
            Published, StoredEvent, Subscription, SubscriptionSpec, SubscriptionTarget,
        };

        fn stored_event_from(row: &$row) -> StoreResult<StoredEvent> {
            Ok(StoredEvent {
                seq: row.try_get("seq")?,
                event: NewEvent {
                    event_id: row.try_get("event_id")?,
                    source: row.try_get("source")?,
                    event_type: row.try_get("event_type")?,
                    partition_key: row.try_get("partition_key")?,
                    published_at_ms: row.try_get("published_at")?,
                    envelope: row.try_get("envelope")?,
                },
            })
        }

        /// Dead letters of a tenant, by subscription and/or id (`""`: any).
        async fn select_dead_letters(
            pool: &sqlx::Pool<$db>,
            tenant_id: TenantId,
            subscription_id: &str,
            id: &str,
            limit: u32,
        ) -> StoreResult<Vec<DeadLetter>> {
            let sql = format!(
                "SELECT dl.id, dl.subscription_id, s.plugin_id, dl.tenant_id, dl.attempts, \
                 dl.last_error, dl.failed_at, {EVENT_COLUMNS} \
                 FROM dead_letters dl JOIN subscriptions s ON s.id = dl.subscription_id \
                 JOIN events ev ON ev.tenant_id = dl.tenant_id AND ev.seq = dl.seq \
                 WHERE dl.tenant_id = $1 AND ($2 = '' OR dl.subscription_id = $2) \
                 AND ($3 = '' OR dl.id = $3) ORDER BY dl.failed_at, dl.id LIMIT $4"
            );
            let rows = sqlx::query(&sql)
                .bind(tenant_id.to_string())
                .bind(subscription_id)
                .bind(id)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(DeadLetter {
                        id: row.try_get("id")?,
                        subscription_id: row.try_get("subscription_id")?,
                        plugin_id: row.try_get("plugin_id")?,
                        tenant_id: crate::sql::tenant_id(row.try_get("tenant_id")?)?,
                        event: stored_event_from(row)?,
                        attempts: count(row.try_get("attempts")?),
                        last_error: row.try_get("last_error")?,
                        failed_at_ms: row.try_get("failed_at")?,
                    })
                })
                .collect()
        }

        fn count(value: i32) -> u32 {
            u32::try_from(value).unwrap_or(0)
        }

        /// PostgreSQL: takes the advisory lock of each (subscription, key) until the end of
        /// the transaction, in ascending id order (no deadlock between two takers). SQLite
        /// writers are serialized already.
        async fn lock_keys(
            tx: &mut sqlx::Transaction<'_, $db>,
            keys: &[(&str, &str)],
        ) -> StoreResult<()> {
            if $backend != Backend::Postgres || keys.is_empty() {
                return Ok(());
            }
            let mut ids: Vec<i64> = keys.iter().map(|(subscription, key)| key_lock_id(subscription, key)).collect();
            ids.sort_unstable();
            ids.dedup();
            let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
            sqlx::query(
                "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(string_to_array($1, ',') AS BIGINT[])) AS k",
            )
            .bind(list)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        /// One delivery to insert: subscription, seq, key, due time, first of its key here.
        type NewDelivery<'a> = (&'a str, i64, &'a str, i64, bool);

        /// Inserts deliveries of `tenant` (see [`insert_deliveries_statement`]).
        async fn insert_deliveries(
            tx: &mut sqlx::Transaction<'_, $db>,
            tenant: &str,
            deliveries: &[NewDelivery<'_>],
            on_conflict_ignore: bool,
        ) -> StoreResult<()> {
            let (checked, plain): (Vec<&NewDelivery<'_>>, Vec<&NewDelivery<'_>>) =
                deliveries.iter().partition(|(_, _, _, _, first)| *first);
            for (first_of_key, rows) in [(true, checked), (false, plain)] {
              for chunk in rows.chunks(EVENT_ROWS) {
                let sql = insert_deliveries_statement($backend, chunk.len(), first_of_key, on_conflict_ignore);
                let mut query = sqlx::query(&sql);
                for (subscription, seq, key, due_at, _) in chunk.iter().copied() {
                    query = query
                        .bind(*subscription)
                        .bind(tenant)
                        .bind(*seq)
                        .bind(*key)
                        .bind(*due_at);
                }
                query.execute(&mut **tx).await?;
              }
            }
            Ok(())
        }

        /// After the heads of `keys` ended: the oldest remaining delivery of each key is due, or
        /// with `lease` (lease end, token) leased at once. Returns the leased ones: on
        /// PostgreSQL read whole in the same statement, on SQLite as keys to read after commit.
        async fn hand_over(
            tx: &mut sqlx::Transaction<'_, $db>,
            keys: &[(&str, &str)],
            now_ms: i64,
            lease: Option<(i64, &str)>,
        ) -> StoreResult<(Vec<ClaimedDelivery>, Vec<(String, i64)>)> {
            let (mut whole, mut leased) = (Vec::new(), Vec::new());
            // PostgreSQL takes every key in one statement; SQLite statements of up to 64.
            let per_statement = match $backend {
                Backend::Postgres => keys.len().max(1),
                Backend::Sqlite => EVENT_ROWS,
            };
            for chunk in keys.chunks(per_statement) {
                let update = hand_over_statement($backend, chunk.len(), lease.is_some());
                let sql = match lease {
                    Some(_) if $backend == Backend::Postgres => format!(
                        "WITH handed AS ({update}) SELECT d.subscription_id, d.seq, d.attempts, \
                         d.tenant_id, {CLAIMED_DETAILS} FROM handed d {CLAIMED_JOINS} \
                         WHERE d.lease_token = $3"
                    ),
                    _ => update,
                };
                let mut query = sqlx::query(&sql);
                query = match lease {
                    Some((until, token)) => query.bind(until).bind(until).bind(token),
                    None => query.bind(now_ms),
                };
                if $backend == Backend::Postgres {
                    query = query.bind(hand_over_keys(chunk));
                } else {
                    for (subscription, key) in chunk {
                        query = query.bind(*subscription).bind(*key);
                    }
                }
                let Some((_, token)) = lease else {
                    query.execute(&mut **tx).await?;
                    continue;
                };
                for row in query.fetch_all(&mut **tx).await? {
                    if $backend == Backend::Postgres {
                        whole.push(claimed_from(&row, token)?);
                        continue;
                    }
                    let owner: Option<String> = row.try_get("lease_token")?;
                    if owner.as_deref() == Some(token) {
                        leased.push((row.try_get("subscription_id")?, row.try_get("seq")?));
                    }
                }
            }
            Ok((whole, leased))
        }

        /// The deliveries leased with `token` among `keys` (SQLite, after the commit that
        /// leased them), with what it takes to send them; each pair is a primary-key lookup.
        async fn leased_deliveries(
            pool: &sqlx::Pool<$db>,
            keys: &[(String, i64)],
            token: &str,
        ) -> StoreResult<Vec<ClaimedDelivery>> {
            let mut rows = Vec::with_capacity(keys.len());
            for chunk in keys.chunks(EVENT_ROWS) {
                let sql = format!(
                    "SELECT d.subscription_id, d.seq, d.attempts, d.tenant_id, {CLAIMED_DETAILS} \
                     FROM deliveries d {CLAIMED_JOINS} WHERE (d.subscription_id, d.seq) IN (VALUES {})",
                    value_rows::<$db>(1, chunk.len(), &["$", "CAST($ AS BIGINT)"])
                );
                let mut query = sqlx::query(&sql);
                for (subscription, seq) in chunk {
                    query = query.bind(subscription).bind(*seq);
                }
                rows.extend(query.fetch_all(pool).await?);
            }
            let mut claimed = rows.iter().map(|row| claimed_from(row, token)).collect::<StoreResult<Vec<_>>>()?;
            claimed.sort_unstable_by_key(|delivery| delivery.seq);
            Ok(claimed)
        }

        fn claimed_from(row: &$row, token: &str) -> StoreResult<ClaimedDelivery> {
            Ok(ClaimedDelivery {
                subscription_id: row.try_get("subscription_id")?,
                seq: row.try_get("seq")?,
                partition_key: row.try_get("partition_key")?,
                tenant_id: crate::sql::tenant_id(row.try_get("tenant_id")?)?,
                tenant_slug: row.try_get("slug")?,
                plugin_id: row.try_get("plugin_id")?,
                base_url: row.try_get("base_url")?,
                endpoint: row.try_get("endpoint")?,
                attempts: count(row.try_get("attempts")?),
                max_attempts: count(row.try_get("max_attempts")?),
                source: row.try_get("source")?,
                event_id: row.try_get("event_id")?,
                published_at_ms: row.try_get("published_at")?,
                envelope: row.try_get("envelope")?,
                lease_token: token.to_owned(),
            })
        }

        /// One attempt at [`EventStore::publish_events`].
        async fn publish_once(
            pool: &sqlx::Pool<$db>,
            tenant_id: TenantId,
            events: &[NewEvent],
            now_ms: i64,
        ) -> StoreResult<Vec<Published>> {
            let tenant = tenant_id.to_string();
            let mut tx = pool.begin_with($begin).await?;
            // The same source publishing the same id again gets the first one's position.
            // Ids these sources published before, found in one query per chunk.
            let mut stored = std::collections::HashMap::<(&str, &str), i64>::new();
            for chunk in events.chunks(EVENT_ROWS) {
                let sql = published_ids_statement($backend, chunk.len());
                let mut query = sqlx::query(&sql);
                for event in chunk {
                    query = query.bind(&event.source).bind(&event.event_id);
                }
                for row in query.bind(&tenant).fetch_all(&mut *tx).await? {
                    let Some(seq) = row.try_get::<Option<i64>, _>("seq")? else {
                        continue;
                    };
                    let (source, id): (String, String) =
                        (row.try_get("source")?, row.try_get("event_id")?);
                    if let Some(event) = chunk
                        .iter()
                        .find(|e| e.source == source && e.event_id == id)
                    {
                        stored.insert((&event.source, &event.event_id), seq);
                    }
                }
            }
            let mut answers = Vec::with_capacity(events.len());
            let mut fresh = Vec::with_capacity(events.len());
            for (index, event) in events.iter().enumerate() {
                let earlier = events[..index].iter().position(|other| {
                    other.source == event.source && other.event_id == event.event_id
                });
                let stored = stored.get(&(event.source.as_str(), event.event_id.as_str()));
                match (stored, earlier) {
                    (Some(seq), _) => answers.push(Published { seq: *seq, duplicate: true, deliveries: 0 }),
                    (None, Some(first)) => {
                        let mut copy = answers[first];
                        copy.duplicate = true;
                        copy.deliveries = 0;
                        answers.push(copy);
                    }
                    (None, None) => {
                        fresh.push(index);
                        answers.push(Published { seq: 0, duplicate: false, deliveries: 0 });
                    }
                }
            }
            if fresh.is_empty() {
                tx.commit().await?;
                return Ok(answers);
            }
            // The tenant's subscriptions of ACTIVE installations, read before the tenant's row is
            // locked to reserve positions: concurrent publishers wait on that lock until commit.
            let subscriptions = sqlx::query(
                "SELECT s.id, s.pattern FROM subscriptions s JOIN installations i \
                 ON i.tenant_id = s.tenant_id AND i.plugin_id = s.plugin_id \
                 WHERE s.tenant_id = $1 AND i.state = 'ACTIVE'",
            )
            .bind(&tenant)
            .fetch_all(&mut *tx)
            .await?;
            let mut patterns = Vec::with_capacity(subscriptions.len());
            for row in &subscriptions {
                let id: String = row.try_get("id")?;
                let text: String = row.try_get("pattern")?;
                let pattern = plexhub_core::events::Pattern::parse(&text)
                    .map_err(|_| crate::sql::corrupt("subscriptions", "pattern", &text))?;
                patterns.push((id, pattern));
            }
            let added = i64::try_from(fresh.len()).unwrap_or(i64::MAX);
            let last: i64 = sqlx::query_scalar(
                "UPDATE tenants SET event_seq = event_seq + $2 WHERE id = $1 RETURNING event_seq",
            )
            .bind(&tenant)
            .bind(added)
            .fetch_one(&mut *tx)
            .await?;
            let first_seq = last - added + 1;
            for (offset, index) in fresh.iter().enumerate() {
                answers[*index].seq = first_seq + i64::try_from(offset).unwrap_or(0);
            }
            // Later duplicates within the batch point at their first copy's position.
            for index in 0..answers.len() {
                if answers[index].duplicate && answers[index].seq == 0 {
                    let event = &events[index];
                    if let Some(first) = events.iter().position(|other| {
                        other.source == event.source && other.event_id == event.event_id
                    }) {
                        answers[index].seq = answers[first].seq;
                    }
                }
            }
            for chunk in fresh.chunks(EVENT_ROWS) {
                let sql = format!(
                    "INSERT INTO events (tenant_id, seq, event_id, source, event_type, \
                     partition_key, published_at, envelope) VALUES {}",
                    value_rows::<$db>(1, chunk.len(), &["$"; 8])
                );
                let mut query = sqlx::query(&sql);
                for index in chunk {
                    let event = &events[*index];
                    query = query
                        .bind(&tenant)
                        .bind(answers[*index].seq)
                        .bind(&event.event_id)
                        .bind(&event.source)
                        .bind(&event.event_type)
                        .bind(&event.partition_key)
                        .bind(event.published_at_ms)
                        .bind(&event.envelope);
                }
                query.execute(&mut *tx).await?;
            }
            let mut deliveries: Vec<(&str, usize)> = Vec::new();
            for index in &fresh {
                for (id, pattern) in &patterns {
                    if pattern.matches(&events[*index].event_type) {
                        deliveries.push((id.as_str(), *index));
                        answers[*index].deliveries += 1;
                    }
                }
            }
            // Without a partition key (`''`, which no key can be), nothing orders an event
            // after another. With one, the first delivery of each (subscription, key) in this
            // batch is due unless one of its key is queued already; the rest are parked.
            let mut firsts = std::collections::HashSet::new();
            let rows: Vec<NewDelivery<'_>> = deliveries
                .iter()
                .map(|(subscription, index)| {
                    let key = events[*index].partition_key.as_deref().unwrap_or_default();
                    let first = !key.is_empty() && firsts.insert((*subscription, key));
                    let due_at = if key.is_empty() || first { now_ms } else { PARKED };
                    (*subscription, answers[*index].seq, key, due_at, first)
                })
                .collect();
            let keys: Vec<(&str, &str)> = firsts.into_iter().collect();
            lock_keys(&mut tx, &keys).await?;
            insert_deliveries(&mut tx, &tenant, &rows, false).await?;
            tx.commit().await?;
            Ok(answers)
        }

        #[async_trait]
        impl EventStore for $store {
            async fn publish_events(
                &self,
                tenant_id: TenantId,
                events: &[NewEvent],
                now_ms: i64,
            ) -> StoreResult<Vec<Published>> {
                // Two publishers of one new id can both find it unpublished; the later insert
                // violates the unique key (PostgreSQL; SQLite writers are serialized), and
                // publishing again finds the first copy.
                match publish_once(&self.pool, tenant_id, events, now_ms).await {
                    Err(StoreError::Duplicate) => publish_once(&self.pool, tenant_id, events, now_ms).await,
                    published => published,
                }
            }

            async fn replace_subscriptions(
                &self,
                tenant_id: TenantId,
                plugin_id: &PluginId,
                specs: &[SubscriptionSpec],
                now_ms: i64,
            ) -> StoreResult<()> {
                let tenant = tenant_id.to_string();
                let mut tx = self.pool.begin_with($begin).await?;
                let existing = sqlx::query(
                    "SELECT id, pattern, endpoint FROM subscriptions \
                     WHERE tenant_id = $1 AND plugin_id = $2",
                )
                .bind(&tenant)
                .bind(plugin_id.as_str())
                .fetch_all(&mut *tx)
                .await?;
                for row in &existing {
                    let pattern: String = row.try_get("pattern")?;
                    let endpoint: String = row.try_get("endpoint")?;
                    let kept = specs
                        .iter()
                        .any(|spec| spec.pattern == pattern && spec.endpoint == endpoint);
                    if !kept {
                        let id: String = row.try_get("id")?;
                        sqlx::query("DELETE FROM subscriptions WHERE id = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                for spec in specs {
                    sqlx::query(
                        "INSERT INTO subscriptions (id, tenant_id, plugin_id, pattern, endpoint, \
                         max_attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (tenant_id, plugin_id, pattern, endpoint) \
                         DO UPDATE SET max_attempts = excluded.max_attempts",
                    )
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(&tenant)
                    .bind(plugin_id.as_str())
                    .bind(&spec.pattern)
                    .bind(&spec.endpoint)
                    .bind(i32::try_from(spec.max_attempts).unwrap_or(i32::MAX))
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn subscriptions(
                &self,
                tenant_id: Option<TenantId>,
            ) -> StoreResult<Vec<Subscription>> {
                let rows = sqlx::query(
                    "SELECT s.id, s.tenant_id, s.plugin_id, s.pattern, s.endpoint, s.max_attempts, \
                     s.created_at, s.delivered, s.dead_lettered, \
                     (SELECT COUNT(*) FROM deliveries d WHERE d.subscription_id = s.id) AS pending \
                     FROM subscriptions s WHERE ($1 = '' OR s.tenant_id = $1) \
                     ORDER BY s.tenant_id, s.plugin_id, s.pattern, s.endpoint",
                )
                .bind(tenant_id.map(|id| id.to_string()).unwrap_or_default())
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(Subscription {
                            id: row.try_get("id")?,
                            tenant_id: crate::sql::tenant_id(row.try_get("tenant_id")?)?,
                            plugin_id: row.try_get("plugin_id")?,
                            spec: SubscriptionSpec {
                                pattern: row.try_get("pattern")?,
                                endpoint: row.try_get("endpoint")?,
                                max_attempts: count(row.try_get("max_attempts")?),
                            },
                            created_at_ms: row.try_get("created_at")?,
                            delivered: row.try_get("delivered")?,
                            dead_lettered: row.try_get("dead_lettered")?,
                            pending: row.try_get("pending")?,
                        })
                    })
                    .collect()
            }

            async fn claim_deliveries(
                &self,
                now_ms: i64,
                lease_ms: i64,
                limit: u32,
            ) -> StoreResult<Vec<ClaimedDelivery>> {
                let token = uuid::Uuid::new_v4().to_string();
                let claim = claim_statement($backend);
                if $backend == Backend::Postgres {
                    let sql = format!(
                        "{claim} SELECT d.subscription_id, d.seq, d.attempts, d.tenant_id, {CLAIMED_DETAILS} \
                         FROM claimed d {CLAIMED_JOINS} ORDER BY d.seq"
                    );
                    let rows = sqlx::query(&sql)
                        .bind(now_ms)
                        .bind(now_ms.saturating_add(lease_ms))
                        .bind(&token)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                    return rows.iter().map(|row| claimed_from(row, &token)).collect();
                }
                let mut tx = self.pool.begin_with($begin_relaxed).await?;
                let claimed = sqlx::query(&claim)
                    .bind(now_ms)
                    .bind(now_ms.saturating_add(lease_ms))
                    .bind(&token)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                let mut keys = Vec::with_capacity(claimed.len());
                for row in &claimed {
                    keys.push((row.try_get::<String, _>("subscription_id")?, row.try_get::<i64, _>("seq")?));
                }
                leased_deliveries(&self.pool, &keys, &token).await
            }

            async fn complete_deliveries(
                &self,
                outcomes: &[(ClaimedDelivery, DeliveryOutcome)],
                now_ms: i64,
                lease_next_ms: Option<i64>,
            ) -> StoreResult<Vec<ClaimedDelivery>> {
                let mut tx = self.pool.begin_with($begin_relaxed).await?;
                // Keys whose head ends here (a retry keeps its place), handed over below.
                let mut ended: Vec<(&str, &str)> = outcomes
                    .iter()
                    .filter(|(delivery, outcome)| {
                        !delivery.partition_key.is_empty()
                            && !matches!(outcome, DeliveryOutcome::Retry { .. })
                    })
                    .map(|(delivery, _)| (delivery.subscription_id.as_str(), delivery.partition_key.as_str()))
                    .collect();
                ended.sort_unstable();
                ended.dedup();
                // Acknowledgements, by subscription, in multi-row deletes.
                let mut acknowledged = std::collections::BTreeMap::<&str, Vec<&ClaimedDelivery>>::new();
                for (delivery, outcome) in outcomes {
                    if *outcome == DeliveryOutcome::Acknowledged {
                        acknowledged
                            .entry(delivery.subscription_id.as_str())
                            .or_default()
                            .push(delivery);
                    }
                }
                for (subscription, deliveries) in &acknowledged {
                    let mut done = 0_i64;
                    for chunk in deliveries.chunks(EVENT_ROWS) {
                        let sql = acknowledge_statement($backend, chunk.len());
                        let mut query = sqlx::query(&sql);
                        for delivery in chunk {
                            query = query
                                .bind(*subscription)
                                .bind(delivery.seq)
                                .bind(&delivery.lease_token);
                        }
                        let removed = query.execute(&mut *tx).await?.rows_affected();
                        done += i64::try_from(removed).unwrap_or(0);
                    }
                    if done > 0 {
                        sqlx::query(
                            "UPDATE subscriptions SET delivered = delivered + $2 WHERE id = $1",
                        )
                        .bind(*subscription)
                        .bind(done)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                for (delivery, outcome) in outcomes {
                    match outcome {
                        // Recorded above.
                        DeliveryOutcome::Acknowledged => {}
                        DeliveryOutcome::Retry { retry_at_ms, error } => {
                            sqlx::query(
                                "UPDATE deliveries SET attempts = attempts + 1, due_at = $4, \
                                 leased_until = 0, lease_token = NULL, last_error = $5 \
                                 WHERE subscription_id = $1 AND seq = $2 AND lease_token = $3",
                            )
                            .bind(&delivery.subscription_id)
                            .bind(delivery.seq)
                            .bind(&delivery.lease_token)
                            .bind(*retry_at_ms)
                            .bind(error)
                            .execute(&mut *tx)
                            .await?;
                        }
                        DeliveryOutcome::DeadLetter { error } => {
                            let done = sqlx::query(
                                "DELETE FROM deliveries WHERE subscription_id = $1 AND seq = $2 \
                                 AND lease_token = $3",
                            )
                            .bind(&delivery.subscription_id)
                            .bind(delivery.seq)
                            .bind(&delivery.lease_token)
                            .execute(&mut *tx)
                            .await?;
                            if done.rows_affected() == 1 {
                                sqlx::query(
                                    "INSERT INTO dead_letters (id, subscription_id, tenant_id, seq, \
                                     attempts, last_error, failed_at) \
                                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                                )
                                .bind(uuid::Uuid::new_v4().to_string())
                                .bind(&delivery.subscription_id)
                                .bind(delivery.tenant_id.to_string())
                                .bind(delivery.seq)
                                .bind(i32::try_from(delivery.attempts + 1).unwrap_or(i32::MAX))
                                .bind(error)
                                .bind(now_ms)
                                .execute(&mut *tx)
                                .await?;
                                sqlx::query(
                                    "UPDATE subscriptions SET dead_lettered = dead_lettered + 1 \
                                     WHERE id = $1",
                                )
                                .bind(&delivery.subscription_id)
                                .execute(&mut *tx)
                                .await?;
                            }
                        }
                    }
                }
                // Locked only now: the key locks are held for the hand-over and the commit alone.
                lock_keys(&mut tx, &ended).await?;
                let token = lease_next_ms.map(|_| uuid::Uuid::new_v4().to_string());
                let lease = lease_next_ms
                    .zip(token.as_deref())
                    .map(|(lease_ms, token)| (now_ms.saturating_add(lease_ms), token));
                let (mut handed, leased) = hand_over(&mut tx, &ended, now_ms, lease).await?;
                tx.commit().await?;
                if let Some(token) = token.filter(|_| !leased.is_empty()) {
                    handed.extend(leased_deliveries(&self.pool, &leased, &token).await?);
                }
                handed.sort_unstable_by_key(|delivery| delivery.seq);
                Ok(handed)
            }

            async fn dead_letters(
                &self,
                tenant_id: TenantId,
                subscription_id: Option<&str>,
                limit: u32,
            ) -> StoreResult<Vec<DeadLetter>> {
                select_dead_letters(&self.pool, tenant_id, subscription_id.unwrap_or_default(), "", limit).await
            }

            async fn dead_letter(
                &self,
                tenant_id: TenantId,
                id: &str,
            ) -> StoreResult<Option<DeadLetter>> {
                let mut found = select_dead_letters(&self.pool, tenant_id, "", id, 1).await?;
                Ok(found.pop())
            }

            async fn retry_dead_letter(
                &self,
                tenant_id: TenantId,
                id: &str,
                now_ms: i64,
            ) -> StoreResult<bool> {
                let tenant = tenant_id.to_string();
                let mut tx = self.pool.begin_with($begin).await?;
                let found = sqlx::query(
                    "SELECT dl.subscription_id, dl.seq, COALESCE(ev.partition_key, '') AS partition_key \
                     FROM dead_letters dl JOIN events ev ON ev.tenant_id = dl.tenant_id AND ev.seq = dl.seq \
                     WHERE dl.id = $1 AND dl.tenant_id = $2",
                )
                .bind(id)
                .bind(&tenant)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = found {
                    let subscription: String = row.try_get("subscription_id")?;
                    let key: String = row.try_get("partition_key")?;
                    // A keyed event waits for its key's queued deliveries to hand it the key
                    // (it is older than them, so it is next once the current head ends).
                    let keyed = !key.is_empty();
                    if keyed {
                        lock_keys(&mut tx, &[(subscription.as_str(), key.as_str())]).await?;
                    }
                    let delivery = (subscription.as_str(), row.try_get("seq")?, key.as_str(), now_ms, keyed);
                    insert_deliveries(&mut tx, &tenant, &[delivery], true).await?;
                }
                let removed = sqlx::query("DELETE FROM dead_letters WHERE id = $1 AND tenant_id = $2")
                    .bind(id)
                    .bind(&tenant)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(removed.rows_affected() == 1)
            }

            async fn drop_dead_letter(&self, tenant_id: TenantId, id: &str) -> StoreResult<bool> {
                let removed = sqlx::query("DELETE FROM dead_letters WHERE id = $1 AND tenant_id = $2")
                    .bind(id)
                    .bind(tenant_id.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(removed.rows_affected() == 1)
            }

            async fn events_since(
                &self,
                tenant_id: TenantId,
                after: i64,
                limit: u32,
            ) -> StoreResult<Vec<StoredEvent>> {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM events ev WHERE ev.tenant_id = $1 AND ev.seq > $2 \
                     ORDER BY ev.seq LIMIT $3"
                );
                let rows = sqlx::query(&sql)
                    .bind(tenant_id.to_string())
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(stored_event_from).collect()
            }

            async fn latest_event_seq(&self, tenant_id: TenantId) -> StoreResult<i64> {
                let seq: Option<i64> =
                    sqlx::query_scalar("SELECT event_seq FROM tenants WHERE id = $1")
                        .bind(tenant_id.to_string())
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(seq.unwrap_or(0))
            }

            async fn event_seq_at(&self, tenant_id: TenantId, at_ms: i64) -> StoreResult<i64> {
                let first: Option<i64> = sqlx::query_scalar(
                    "SELECT MIN(seq) FROM events WHERE tenant_id = $1 AND published_at >= $2",
                )
                .bind(tenant_id.to_string())
                .bind(at_ms)
                .fetch_one(&self.pool)
                .await?;
                match first {
                    Some(seq) => Ok(seq - 1),
                    None => self.latest_event_seq(tenant_id).await,
                }
            }

            async fn prune_events(&self, before_ms: i64) -> StoreResult<u64> {
                let done = sqlx::query(
                    "DELETE FROM events WHERE published_at < $1 \
                     AND NOT EXISTS (SELECT 1 FROM deliveries d \
                       WHERE d.tenant_id = events.tenant_id AND d.seq = events.seq) \
                     AND NOT EXISTS (SELECT 1 FROM dead_letters dl \
                       WHERE dl.tenant_id = events.tenant_id AND dl.seq = events.seq)",
                )
                .bind(before_ms)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn subscription_targets(&self) -> StoreResult<Vec<SubscriptionTarget>> {
                let rows = sqlx::query(
                    "SELECT s.id, s.tenant_id, t.slug, s.plugin_id, s.pattern, s.endpoint, \
                     s.max_attempts, i.base_url, i.state FROM subscriptions s \
                     JOIN installations i ON i.tenant_id = s.tenant_id AND i.plugin_id = s.plugin_id \
                     JOIN tenants t ON t.id = s.tenant_id ORDER BY s.id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let state: String = row.try_get("state")?;
                        Ok(SubscriptionTarget {
                            id: row.try_get("id")?,
                            tenant_id: crate::sql::tenant_id(row.try_get("tenant_id")?)?,
                            tenant_slug: row.try_get("slug")?,
                            plugin_id: row.try_get("plugin_id")?,
                            base_url: row.try_get("base_url")?,
                            spec: SubscriptionSpec {
                                pattern: row.try_get("pattern")?,
                                endpoint: row.try_get("endpoint")?,
                                max_attempts: count(row.try_get("max_attempts")?),
                            },
                            active: state == "ACTIVE",
                        })
                    })
                    .collect()
            }

            async fn count_outcomes(&self, counts: &[OutcomeCount]) -> StoreResult<()> {
                let mut tx = self.pool.begin_with($begin).await?;
                for count in counts {
                    sqlx::query(
                        "UPDATE subscriptions SET delivered = delivered + $2, \
                         dead_lettered = dead_lettered + $3 WHERE id = $1",
                    )
                    .bind(&count.subscription_id)
                    .bind(count.delivered)
                    .bind(count.dead_lettered)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use event_store;
