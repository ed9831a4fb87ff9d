//! PostgreSQL backend: scaled mode, shared by several stateless hub instances.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use crate::StoreError;

/// The store on a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStore {
    pool: sqlx::PgPool,
    /// Ids of the audit log's names.
    call_names: crate::audit_sql::CallNames,
}

impl PostgresStore {
    /// Connects to `url` and applies migrations (sqlx serialises concurrent migrators with an
    /// advisory lock, so several instances may start at once).
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self {
            pool,
            call_names: crate::audit_sql::CallNames::default(),
        })
    }

    /// Applies merged write groups (see `data_sql::BatchPlan`) and logs one `set` event per
    /// write in a single autocommitted statement: one round trip and one commit instead of a
    /// transaction of five. Each key takes its group's last value and its revision advances by
    /// the group's size; the tenant's event counter reserves the events' sequence numbers in
    /// the same statement. Returns the final revision of every written key by
    /// `(tenant, namespace, key)`; a key missing from the answer was refused (another plugin
    /// owns it) and nothing of its group changed.
    async fn write_merged_in_one_statement(
        &self,
        writes: &[(TenantId, DataWrite)],
        groups: &[Vec<usize>],
        now_ms: i64,
    ) -> StoreResult<HashMap<(String, String, String), i64>> {
        let rows: Vec<String> = (0..groups.len())
            .map(|i| {
                let p = i * 7 + 1;
                format!(
                    "({i}, ${}::text, ${}::text, ${}::text, ${}::text, ${}::text, ${}::bigint, ${}::bigint)",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5,
                    p + 6,
                    p + 7
                )
            })
            .collect();
        let sql = format!(
            "WITH input (ord, tenant_id, namespace, key, value, owner_id, writes, expires_at) AS \
             (VALUES {}), \
             written AS (INSERT INTO shared_data (tenant_id, namespace, key, value, owner_id, \
               revision, expires_at, created_at, updated_at) \
               SELECT tenant_id, namespace, key, value, owner_id, writes, expires_at, $1, $1 \
               FROM input ORDER BY ord \
               ON CONFLICT (tenant_id, namespace, key) DO UPDATE SET value = excluded.value, \
               owner_id = excluded.owner_id, revision = shared_data.revision + excluded.revision, \
               expires_at = excluded.expires_at, updated_at = excluded.updated_at \
               WHERE (shared_data.expires_at IS NOT NULL AND shared_data.expires_at <= $1) \
               OR shared_data.owner_id = excluded.owner_id \
               RETURNING tenant_id, namespace, key, revision), \
             logged AS (SELECT input.ord, input.tenant_id, input.namespace, input.key, \
               written.revision - input.writes + step AS revision \
               FROM input JOIN written USING (tenant_id, namespace, key) \
               CROSS JOIN LATERAL generate_series(1, input.writes) AS step), \
             counts AS (SELECT tenant_id, count(*) AS events FROM logged GROUP BY tenant_id), \
             reserved AS (UPDATE tenants SET data_seq = data_seq + counts.events FROM counts \
               WHERE tenants.id = counts.tenant_id \
               RETURNING tenants.id AS tenant_id, tenants.data_seq - counts.events AS first), \
             events AS (INSERT INTO data_events (tenant_id, seq, kind, namespace, key, revision, \
               created_at) \
               SELECT logged.tenant_id, reserved.first + row_number() OVER \
               (PARTITION BY logged.tenant_id ORDER BY logged.ord, logged.revision), 'set', \
               logged.namespace, logged.key, logged.revision, $1 \
               FROM logged JOIN reserved USING (tenant_id)) \
             SELECT tenant_id, namespace, key, revision FROM written",
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
        for row in query.fetch_all(&self.pool).await? {
            applied.insert(
                (
                    row.try_get("tenant_id")?,
                    row.try_get("namespace")?,
                    row.try_get("key")?,
                ),
                row.try_get("revision")?,
            );
        }
        Ok(applied)
    }
}

crate::sql::sql_store!(
    PostgresStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    "postgres"
);
crate::registry_sql::registry_store!(PostgresStore, sqlx::Postgres);
crate::data_sql::data_store!(
    PostgresStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    "BEGIN",
    write_merged_in_one_statement
);
crate::session_sql::ui_session_store!(PostgresStore, sqlx::postgres::PgRow);
crate::audit_sql::audit_store!(PostgresStore, sqlx::Postgres);

crate::events_sql::event_store!(
    PostgresStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    crate::events_sql::Backend::Postgres,
    "BEGIN",
    "BEGIN; SET LOCAL synchronous_commit = off"
);
