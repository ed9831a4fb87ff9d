//! The audit log's SQL, shared by every backend like [`crate::sql`].

/// Implements [`crate::AuditStore`] for `$store` (see [`crate::sql::sql_store!`]).
macro_rules! audit_store {
    ($store:ident, $db:ty, $row:ty) => {
        use crate::{AuditStore, CallQuery, CallRecord};

        /// Rows per insert statement, largest first: a batch is written in as few statements
        /// as these shapes allow, and each shape stays prepared.
        const CALL_ROWS: [usize; 3] = [256, 16, 1];

        /// Inserts `CALL_ROWS[shape]` calls with one statement.
        async fn insert_calls(
            connection: &mut <$db as sqlx::Database>::Connection,
            shape: usize,
            calls: &[CallRecord],
        ) -> StoreResult<()> {
            static SHAPES: [std::sync::OnceLock<String>; 3] =
                [const { std::sync::OnceLock::new() }; 3];
            debug_assert_eq!(calls.len(), CALL_ROWS[shape]);
            let sql = SHAPES[shape].get_or_init(|| {
                format!(
                    "INSERT INTO gateway_calls (tenant_id, at, caller, target, service, method, \
                     path, endpoint, status, duration_us, request_id) VALUES {}",
                    crate::sql::value_rows::<$db>(1, calls.len(), &["$"; 11])
                )
            });
            let mut query = sqlx::query(sql);
            for call in calls {
                query = query
                    .bind(call.tenant_id.to_string())
                    .bind(call.at_ms)
                    // Borrowed text is bound without a copy (an owned String is cloned).
                    .bind(call.caller.as_str())
                    .bind(call.target.as_deref())
                    .bind(call.service.as_str())
                    .bind(call.method.as_str())
                    .bind(call.path.as_str())
                    .bind(call.endpoint.as_deref())
                    .bind(i64::from(call.status))
                    .bind(call.duration_us)
                    .bind(call.request_id.as_str());
            }
            query.execute(&mut *connection).await?;
            Ok(())
        }

        fn call_from(row: &$row) -> StoreResult<CallRecord> {
            let tenant: &str = row.try_get("tenant_id")?;
            let status: i64 = row.try_get("status")?;
            Ok(CallRecord {
                tenant_id: crate::sql::tenant_id(tenant)?,
                at_ms: row.try_get("at")?,
                caller: row.try_get("caller")?,
                target: row.try_get("target")?,
                service: row.try_get("service")?,
                method: row.try_get("method")?,
                path: row.try_get("path")?,
                endpoint: row.try_get("endpoint")?,
                status: u16::try_from(status).unwrap_or(0),
                duration_us: row.try_get("duration_us")?,
                request_id: row.try_get("request_id")?,
            })
        }

        #[async_trait]
        impl AuditStore for $store {
            async fn record_calls(&self, calls: &[CallRecord]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let mut rest = calls;
                for (shape, rows) in CALL_ROWS.into_iter().enumerate() {
                    let mut chunks = rest.chunks_exact(rows);
                    for chunk in chunks.by_ref() {
                        insert_calls(&mut tx, shape, chunk).await?;
                    }
                    rest = chunks.remainder();
                }
                tx.commit().await?;
                Ok(())
            }

            async fn calls(&self, query: &CallQuery) -> StoreResult<Vec<CallRecord>> {
                let (from, to) = query.status.map_or((0, 999), |(from, to)| (i64::from(from), i64::from(to)));
                let rows = sqlx::query(
                    "SELECT tenant_id, at, caller, target, service, method, path, endpoint, status, \
                     duration_us, request_id FROM gateway_calls \
                     WHERE ($1 = '' OR tenant_id = $1) AND ($2 = '' OR caller = $2) \
                     AND ($3 = '' OR target = $3) AND status >= $4 AND status <= $5 AND at >= $6 \
                     ORDER BY at DESC LIMIT $7",
                )
                .bind(query.tenant_id.map(|id| id.to_string()).unwrap_or_default())
                .bind(query.caller.clone().unwrap_or_default())
                .bind(query.target.clone().unwrap_or_default())
                .bind(from)
                .bind(to)
                .bind(query.since_ms.unwrap_or(0))
                .bind(i64::from(query.limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(call_from).collect()
            }

            async fn prune_calls(&self, before_ms: i64) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM gateway_calls WHERE at < $1")
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use audit_store;
