//! The audit log's SQL, shared by every backend like [`crate::sql`].

use std::sync::{Arc, Mutex};

use plexhub_core::tenant::TenantId;
use rustc_hash::FxHashMap;

/// The ids of the names the audit log stores once each (migration 0014: tenant ids, plugin ids,
/// services, methods, endpoints), as far as this process has met them. Ids never change once
/// given, so what is cached here never goes stale.
#[derive(Clone, Default)]
pub(crate) struct CallNames(Arc<Mutex<NameIds>>);

#[derive(Default)]
struct NameIds {
    tenants: FxHashMap<TenantId, i64>,
    names: FxHashMap<String, i64>,
}

/// One call with its names replaced by their ids.
pub(crate) struct EncodedCall<'a> {
    /// The call.
    pub(crate) call: &'a crate::CallRecord,
    /// Id of its tenant's id.
    pub(crate) tenant: i64,
    /// Id of its caller.
    pub(crate) caller: i64,
    /// Id of its target, when resolved.
    pub(crate) target: Option<i64>,
    /// Id of its service.
    pub(crate) service: i64,
    /// Id of its method.
    pub(crate) method: i64,
    /// Id of its matched endpoint, when one matched.
    pub(crate) endpoint: Option<i64>,
}

/// A name the audit log has no id for yet.
pub(crate) enum NewName {
    /// A tenant's id.
    Tenant(TenantId),
    /// Any other name.
    Other(String),
}

impl NewName {
    /// The name as stored.
    pub(crate) fn text(&self) -> String {
        match self {
            Self::Tenant(id) => id.to_string(),
            Self::Other(name) => name.clone(),
        }
    }
}

impl CallNames {
    /// The calls with every name encoded, or the names (deduplicated) this process has no id
    /// for yet.
    pub(crate) fn encode<'a>(
        &self,
        calls: &'a [crate::CallRecord],
    ) -> Result<Vec<EncodedCall<'a>>, Vec<NewName>> {
        let ids = self
            .0
            .lock()
            .expect("the call-name cache is never poisoned");
        let mut missing = Vec::new();
        let mut name = |name: &str| {
            ids.names.get(name).copied().unwrap_or_else(|| {
                if !missing
                    .iter()
                    .any(|new| matches!(new, NewName::Other(known) if known == name))
                {
                    missing.push(NewName::Other(name.to_owned()));
                }
                0
            })
        };
        let mut encoded = Vec::with_capacity(calls.len());
        for call in calls {
            let caller = name(&call.caller);
            let target = call.target.as_deref().map(&mut name);
            let service = name(&call.service);
            let method = name(&call.method);
            let endpoint = call.endpoint.as_deref().map(&mut name);
            encoded.push(EncodedCall {
                call,
                tenant: 0,
                caller,
                target,
                service,
                method,
                endpoint,
            });
        }
        for row in &mut encoded {
            let tenant = row.call.tenant_id;
            match ids.tenants.get(&tenant) {
                Some(id) => row.tenant = *id,
                None => {
                    if !missing
                        .iter()
                        .any(|new| matches!(new, NewName::Tenant(known) if *known == tenant))
                    {
                        missing.push(NewName::Tenant(tenant));
                    }
                }
            }
        }
        if missing.is_empty() {
            Ok(encoded)
        } else {
            Err(missing)
        }
    }

    /// Remembers the id of `name`.
    pub(crate) fn learn(&self, name: NewName, id: i64) {
        let mut ids = self
            .0
            .lock()
            .expect("the call-name cache is never poisoned");
        match name {
            NewName::Tenant(tenant) => ids.tenants.insert(tenant, id),
            NewName::Other(name) => ids.names.insert(name, id),
        };
    }
}

/// Implements [`crate::AuditStore`] for `$store` (see [`crate::sql::sql_store!`]); the store has
/// a `call_names: CallNames` field and an inherent `async fn insert_calls(&self, calls:
/// &[EncodedCall<'_>]) -> StoreResult<()>` that writes a batch in one transaction (PostgreSQL:
/// multi-row statements on the pool; SQLite: [`crate::sqlite_audit`]).
macro_rules! audit_store {
    ($store:ident, $db:ty, $row:ty) => {
        use crate::{AuditStore, CallQuery, CallRecord};

        /// Tries to give a name an id before giving up (each failure is another hub giving the
        /// same id to another name at the same moment).
        const NAME_ATTEMPTS: usize = 16;

        /// The id of `name` in `gateway_call_names`, giving it the next free one when it is new.
        /// Each statement commits on its own: an id is durable before a row refers to it.
        async fn call_name_id(pool: &sqlx::Pool<$db>, name: &str) -> StoreResult<i64> {
            for _ in 0..NAME_ATTEMPTS {
                let known: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM gateway_call_names WHERE name = $1")
                        .bind(name)
                        .fetch_optional(pool)
                        .await?;
                if let Some(id) = known {
                    return Ok(id);
                }
                // Two hubs naming at once may pick the same id: one insert does nothing, and
                // the next round finds the name (the other hub added it) or tries again.
                sqlx::query(
                    "INSERT INTO gateway_call_names (id, name) \
                     SELECT COALESCE(MAX(id), 0) + 1, $1 FROM gateway_call_names WHERE true \
                     ON CONFLICT DO NOTHING",
                )
                .bind(name)
                .execute(pool)
                .await?;
            }
            Err(StoreError::Duplicate)
        }

        fn call_from(row: &$row) -> StoreResult<CallRecord> {
            let tenant: &str = row.try_get("tenant_id")?;
            let status: i64 = row.try_get("status")?;
            Ok(CallRecord {
                tenant_id: crate::sql::tenant_id(tenant)?,
                at_ms: row.try_get("at")?,
                caller: row.try_get::<&str, _>("caller")?.into(),
                target: row.try_get::<Option<&str>, _>("target")?.map(std::sync::Arc::from),
                service: row.try_get::<&str, _>("service")?.into(),
                method: row.try_get::<&str, _>("method")?.into(),
                path: row.try_get("path")?,
                endpoint: row.try_get::<Option<&str>, _>("endpoint")?.map(std::sync::Arc::from),
                status: u16::try_from(status).unwrap_or(0),
                duration_us: row.try_get("duration_us")?,
                request_id: row.try_get("request_id")?,
            })
        }

        #[async_trait]
        impl AuditStore for $store {
            async fn record_calls(&self, calls: &[CallRecord]) -> StoreResult<()> {
                // Every name gets its id (committed) before a row that uses it is written.
                let encoded = loop {
                    match self.call_names.encode(calls) {
                        Ok(encoded) => break encoded,
                        Err(missing) => {
                            for name in missing {
                                let id = call_name_id(&self.pool, &name.text()).await?;
                                self.call_names.learn(name, id);
                            }
                        }
                    }
                };
                self.insert_calls(&encoded).await
            }

            async fn calls(&self, query: &CallQuery) -> StoreResult<Vec<CallRecord>> {
                let (from, to) = query.status.map_or((0, 999), |(from, to)| (i64::from(from), i64::from(to)));
                let rows = sqlx::query(
                    "SELECT tenant.name AS tenant_id, c.at, caller.name AS caller, \
                     target.name AS target, service.name AS service, method.name AS method, \
                     c.path, endpoint.name AS endpoint, c.status, c.duration_us, c.request_id \
                     FROM gateway_calls c \
                     JOIN gateway_call_names tenant ON tenant.id = c.tenant \
                     JOIN gateway_call_names caller ON caller.id = c.caller \
                     LEFT JOIN gateway_call_names target ON target.id = c.target \
                     JOIN gateway_call_names service ON service.id = c.service \
                     JOIN gateway_call_names method ON method.id = c.method \
                     LEFT JOIN gateway_call_names endpoint ON endpoint.id = c.endpoint \
                     WHERE ($1 = '' OR tenant.name = $1) AND ($2 = '' OR caller.name = $2) \
                     AND ($3 = '' OR target.name = $3) AND c.status >= $4 AND c.status <= $5 \
                     AND c.at >= $6 AND (c.at < $8 OR (c.at = $8 AND c.request_id < $9)) \
                     ORDER BY c.at DESC, c.request_id DESC LIMIT $7",
                )
                .bind(query.tenant_id.map(|id| id.to_string()).unwrap_or_default())
                .bind(query.caller.clone().unwrap_or_default())
                .bind(query.target.clone().unwrap_or_default())
                .bind(from)
                .bind(to)
                .bind(query.since_ms.unwrap_or(0))
                .bind(i64::from(query.limit))
                // Without a cursor every call is "after" the end of time.
                .bind(query.after.as_ref().map_or(i64::MAX, |after| after.at_ms))
                .bind(query.after.as_ref().map_or("", |after| after.request_id.as_str()))
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
