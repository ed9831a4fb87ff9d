//! The event bus's SQL, shared by every backend like [`crate::sql`].

/// Rows per multi-row insert statement.
pub(crate) const EVENT_ROWS: usize = 64;

/// Columns of a stored event, as selected by the queries below (alias `ev`).
pub(crate) const EVENT_COLUMNS: &str =
    "ev.seq, ev.event_id, ev.source, ev.event_type, ev.partition_key, ev.published_at, ev.envelope";

/// Implements [`crate::EventStore`] for `$store` (see [`crate::sql::sql_store!`]); `$claim_lock`
/// is appended to the claim's row selection (`FOR UPDATE SKIP LOCKED` on PostgreSQL), and
/// write transactions open with `$begin` (`BEGIN IMMEDIATE` on SQLite, so a transaction that
/// reads first never fails to upgrade its lock while another connection writes), and claims
/// and completions run `$relaxed_commit` first (PostgreSQL: `SET LOCAL synchronous_commit =
/// off`): losing one in a crash only means the event is delivered again, which at-least-once
/// allows; publishing always waits for a durable commit. With `$claim_in_one_statement`
/// (PostgreSQL) a claim is one statement, the UPDATE's `RETURNING` joined in a CTE; SQLite
/// cannot put an UPDATE in a CTE, so it claims (returning the keys), then reads those rows.
macro_rules! event_store {
    ($store:ident, $db:ty, $row:ty, $claim_lock:literal, $begin:literal, $relaxed_commit:literal, $claim_in_one_statement:literal) => {
        use crate::events_sql::{EVENT_COLUMNS, EVENT_ROWS};
        use crate::sql::{param, value_rows};
        use crate::{
            ClaimedDelivery, DeadLetter, DeliveryOutcome, EventStore, NewEvent, Published,
            StoredEvent, Subscription, SubscriptionSpec,
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

        /// Lets a transaction commit without waiting for durability, where the backend can.
        async fn relax(tx: &mut sqlx::Transaction<'_, $db>) -> StoreResult<()> {
            if !$relaxed_commit.is_empty() {
                sqlx::query($relaxed_commit).execute(&mut **tx).await?;
            }
            Ok(())
        }

        fn count(value: i32) -> u32 {
            u32::try_from(value).unwrap_or(0)
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
                let sql = format!(
                    "SELECT source, event_id, seq FROM events WHERE tenant_id = {} \
                     AND (source, event_id) IN (VALUES {})",
                    param::<$db>(1),
                    value_rows::<$db>(2, chunk.len(), &["$", "$"])
                );
                let mut query = sqlx::query(&sql).bind(&tenant);
                for event in chunk {
                    query = query.bind(&event.source).bind(&event.event_id);
                }
                for row in query.fetch_all(&mut *tx).await? {
                    let (source, id): (String, String) =
                        (row.try_get("source")?, row.try_get("event_id")?);
                    if let Some(event) = chunk
                        .iter()
                        .find(|e| e.source == source && e.event_id == id)
                    {
                        stored.insert((&event.source, &event.event_id), row.try_get("seq")?);
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
            for chunk in deliveries.chunks(EVENT_ROWS) {
                let sql = format!(
                    "INSERT INTO deliveries (subscription_id, tenant_id, seq, partition_key, \
                     due_at) VALUES {}",
                    value_rows::<$db>(1, chunk.len(), &["$"; 5])
                );
                let mut query = sqlx::query(&sql);
                for (subscription, index) in chunk {
                    let event = &events[*index];
                    // Without a partition key (`''`, which no key can be), nothing orders
                    // an event after another.
                    let key = event.partition_key.as_deref().unwrap_or_default();
                    query = query
                        .bind(*subscription)
                        .bind(&tenant)
                        .bind(answers[*index].seq)
                        .bind(key)
                        .bind(now_ms);
                }
                query.execute(&mut *tx).await?;
            }
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
                let claim = concat!(
                    "WITH picked AS (SELECT d.subscription_id, d.seq FROM deliveries d \
                       WHERE d.due_at <= $1 AND d.leased_until <= $1 \
                       AND (d.partition_key = '' OR NOT EXISTS (SELECT 1 FROM deliveries e \
                         WHERE e.subscription_id = d.subscription_id \
                         AND e.partition_key = d.partition_key AND e.seq < d.seq)) \
                       ORDER BY d.due_at, d.seq LIMIT $4 ",
                    $claim_lock,
                    ") UPDATE deliveries SET due_at = $2, leased_until = $2, lease_token = $3 FROM picked \
                     WHERE deliveries.subscription_id = picked.subscription_id \
                     AND deliveries.seq = picked.seq AND deliveries.leased_until <= $1"
                );
                let details = "t.slug, s.plugin_id, s.endpoint, s.max_attempts, i.base_url, \
                     ev.source, ev.event_id, ev.published_at, ev.envelope";
                let joins = "JOIN subscriptions s ON s.id = d.subscription_id \
                     JOIN installations i ON i.tenant_id = s.tenant_id AND i.plugin_id = s.plugin_id \
                     JOIN events ev ON ev.tenant_id = d.tenant_id AND ev.seq = d.seq \
                     JOIN tenants t ON t.id = d.tenant_id";
                let rows = if $claim_in_one_statement {
                    let sql = format!(
                        "{} RETURNING deliveries.subscription_id, deliveries.seq, \
                         deliveries.attempts, deliveries.tenant_id) \
                         SELECT d.subscription_id, d.seq, d.attempts, d.tenant_id, {details} \
                         FROM claimed d {joins} ORDER BY d.seq",
                        claim.replacen(") UPDATE deliveries", "), claimed AS (UPDATE deliveries", 1)
                    );
                    sqlx::query(&sql)
                        .bind(now_ms)
                        .bind(now_ms.saturating_add(lease_ms))
                        .bind(&token)
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?
                } else {
                    let mut tx = self.pool.begin_with($begin).await?;
                    relax(&mut tx).await?;
                    let claimed = sqlx::query(&format!("{claim} RETURNING subscription_id, seq"))
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
                    let mut rows = Vec::with_capacity(keys.len());
                    for chunk in keys.chunks(EVENT_ROWS) {
                        let sql = format!(
                            "SELECT d.subscription_id, d.seq, d.attempts, d.tenant_id, {details} \
                             FROM deliveries d {joins} WHERE (d.subscription_id, d.seq) IN (VALUES {})",
                            value_rows::<$db>(1, chunk.len(), &["$", "CAST($ AS BIGINT)"])
                        );
                        let mut query = sqlx::query(&sql);
                        for (subscription, seq) in chunk {
                            query = query.bind(subscription).bind(*seq);
                        }
                        rows.extend(query.fetch_all(&self.pool).await?);
                    }
                    rows
                };
                let mut claimed = rows.iter()
                    .map(|row| {
                        Ok(ClaimedDelivery {
                            subscription_id: row.try_get("subscription_id")?,
                            seq: row.try_get("seq")?,
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
                            lease_token: token.clone(),
                        })
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                claimed.sort_unstable_by_key(|delivery| delivery.seq);
                Ok(claimed)
            }

            async fn complete_deliveries(
                &self,
                outcomes: &[(ClaimedDelivery, DeliveryOutcome)],
                now_ms: i64,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin_with($begin).await?;
                relax(&mut tx).await?;
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
                        let sql = format!(
                            "DELETE FROM deliveries WHERE subscription_id = {} \
                             AND (seq, lease_token) IN (VALUES {})",
                            param::<$db>(1),
                            value_rows::<$db>(2, chunk.len(), &["CAST($ AS BIGINT)", "$"])
                        );
                        let mut query = sqlx::query(&sql).bind(*subscription);
                        for delivery in chunk {
                            query = query.bind(delivery.seq).bind(&delivery.lease_token);
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
                tx.commit().await?;
                Ok(())
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
                sqlx::query(
                    "INSERT INTO deliveries (subscription_id, tenant_id, seq, partition_key, due_at) \
                     SELECT dl.subscription_id, dl.tenant_id, dl.seq, \
                     COALESCE(ev.partition_key, ''), $3 \
                     FROM dead_letters dl JOIN events ev ON ev.tenant_id = dl.tenant_id AND ev.seq = dl.seq \
                     WHERE dl.id = $1 AND dl.tenant_id = $2 \
                     ON CONFLICT (subscription_id, seq) DO NOTHING",
                )
                .bind(id)
                .bind(&tenant)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
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
        }
    };
}

pub(crate) use event_store;
