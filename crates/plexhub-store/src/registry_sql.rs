//! The registry's SQL, shared by every backend like [`crate::sql`]. Every write that changes
//! what watchers see appends to the tenant's change log in the same transaction; the log's
//! sequence comes from a counter on the tenant row, whose row lock orders concurrent writers,
//! so event ids are gap-free and commit in order per tenant.

use plexhub_core::ids::ServiceName;
use plexhub_core::installation::{BaseUrl, InstallationState};
use plexhub_core::manifest::{EndpointSpec, HttpMethod};
use plexhub_core::registry::{Instance, InstanceId, Service, ServiceStatus};
use serde_json::{Map, Value};

use crate::sql::{corrupt, plugin_id, tenant_id, version};
use crate::{RegistryEvent, RegistryEventKind, StoreResult};

pub(crate) fn json_map(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> StoreResult<Map<String, Value>> {
    serde_json::from_str(text).map_err(|_| corrupt(table, column, text))
}

pub(crate) fn map_text(map: &Map<String, Value>) -> String {
    Value::Object(map.clone()).to_string()
}

pub(crate) fn service_name(table: &'static str, text: &str) -> StoreResult<ServiceName> {
    ServiceName::parse(text).map_err(|_| corrupt(table, "name", text))
}

pub(crate) fn status(
    table: &'static str,
    column: &'static str,
    text: &str,
) -> StoreResult<ServiceStatus> {
    ServiceStatus::parse(text).ok_or_else(|| corrupt(table, column, text))
}

/// Columns of `services` joined with the installation state.
pub(crate) struct ServiceRow {
    pub id: String,
    pub tenant_id: String,
    pub plugin_id: String,
    pub name: String,
    pub version: String,
    pub metadata: String,
    pub state: String,
}

impl ServiceRow {
    pub(crate) fn parse(self) -> StoreResult<(Service, InstallationState)> {
        let state = InstallationState::parse(&self.state)
            .ok_or_else(|| corrupt("installations", "state", &self.state))?;
        Ok((
            Service {
                id: self.id,
                tenant_id: tenant_id(&self.tenant_id)?,
                plugin_id: plugin_id("services", &self.plugin_id)?,
                name: service_name("services", &self.name)?,
                version: version("services", &self.version)?,
                metadata: json_map("services", "metadata", &self.metadata)?,
                endpoints: Vec::new(),
                instances: Vec::new(),
            },
            state,
        ))
    }
}

pub(crate) fn endpoint(
    method: &str,
    path: String,
    description: Option<String>,
    permissions: &str,
    metadata: &str,
) -> StoreResult<EndpointSpec> {
    Ok(EndpointSpec {
        method: HttpMethod::parse(method)
            .ok_or_else(|| corrupt("service_endpoints", "method", method))?,
        path,
        description,
        permissions: serde_json::from_str(permissions)
            .map_err(|_| corrupt("service_endpoints", "permissions", permissions))?,
        metadata: json_map("service_endpoints", "metadata", metadata)?,
    })
}

/// Columns of `service_instances`.
pub(crate) struct InstanceRow {
    pub instance_id: String,
    pub base_url: String,
    pub version: Option<String>,
    pub metadata: String,
    pub reported: String,
    pub reason: Option<String>,
    pub last_seen_at: i64,
}

impl InstanceRow {
    pub(crate) fn parse(self) -> StoreResult<Instance> {
        Ok(Instance {
            id: InstanceId::parse(&self.instance_id)
                .map_err(|_| corrupt("service_instances", "instance_id", &self.instance_id))?,
            base_url: BaseUrl::parse(&self.base_url)
                .map_err(|_| corrupt("service_instances", "base_url", &self.base_url))?,
            version: self
                .version
                .as_deref()
                .map(|v| version("service_instances", v))
                .transpose()?,
            metadata: json_map("service_instances", "metadata", &self.metadata)?,
            reported: status("service_instances", "reported", &self.reported)?,
            reason: self.reason,
            last_seen_ms: self.last_seen_at,
        })
    }
}

pub(crate) fn event(seq: i64, kind: &str, name: &str, plugin: &str) -> StoreResult<RegistryEvent> {
    Ok(RegistryEvent {
        seq,
        kind: RegistryEventKind::parse(kind)
            .ok_or_else(|| corrupt("registry_events", "kind", kind))?,
        service_name: service_name("registry_events", name)?,
        plugin_id: plugin_id("registry_events", plugin)?,
    })
}

/// Where a reader of a tenant's change log stands.
pub(crate) enum LogPosition {
    /// Entries after the cursor exist: read them.
    Read,
    /// The cursor is at the newest entry.
    UpToDate,
    /// The cursor is unknown or older than the retained log; the newest id.
    Reset(i64),
}

/// Service filter shared by the three loading queries: tenant, then name or id ('' = any).
pub(crate) const SERVICE_FILTER: &str =
    "s.tenant_id = $1 AND ($2 = '' OR s.name = $2) AND ($3 = '' OR s.id = $3)";

/// Implements [`crate::RegistryStore`] for `$store` (see [`crate::sql::sql_store!`]).
macro_rules! registry_store {
    ($store:ident, $db:ty) => {
        use plexhub_core::ids::ServiceName;
        use plexhub_core::registry::{HealthPolicy, InstanceId, Service, ServiceStatus};

        use crate::registry_sql::{self as rsql, SERVICE_FILTER};
        use crate::{
            EventsSince, InstanceRegistration, Registered, RegistryEventKind, RegistryStore,
            ServiceRegistration,
        };

        type Connection = <$db as sqlx::Database>::Connection;

        /// Appends one event to the tenant's change log (inside the caller's transaction).
        pub(crate) async fn append_event(
            connection: &mut Connection,
            tenant: TenantId,
            kind: RegistryEventKind,
            name: &str,
            plugin: &str,
            now_ms: i64,
        ) -> StoreResult<()> {
            let seq: i64 = sqlx::query_scalar(
                "UPDATE tenants SET registry_seq = registry_seq + 1 WHERE id = $1 RETURNING registry_seq",
            )
            .bind(tenant.to_string())
            .fetch_one(&mut *connection)
            .await?;
            sqlx::query(
                "INSERT INTO registry_events (tenant_id, seq, kind, service_name, plugin_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(tenant.to_string())
            .bind(seq)
            .bind(kind.as_str())
            .bind(name)
            .bind(plugin)
            .bind(now_ms)
            .execute(&mut *connection)
            .await?;
            Ok(())
        }

        async fn upsert_instance_row(
            connection: &mut Connection,
            tenant: TenantId,
            service_id: &str,
            instance: &InstanceRegistration,
            now_ms: i64,
        ) -> StoreResult<()> {
            let given = instance.base_url.as_ref().map(|u| u.as_str().to_owned());
            let initial = given
                .clone()
                .unwrap_or_else(|| instance.fallback_base_url.as_str().to_owned());
            sqlx::query(
                "INSERT INTO service_instances (service_id, tenant_id, instance_id, base_url, version, \
                 metadata, reported, reason, last_seen_at, announced) \
                 VALUES ($1, $2, $3, $4, $5, $6, $9, NULL, $7, $9) \
                 ON CONFLICT (service_id, instance_id) DO UPDATE SET \
                 base_url = COALESCE($8, service_instances.base_url), version = excluded.version, \
                 metadata = excluded.metadata, reported = $9, reason = NULL, \
                 last_seen_at = excluded.last_seen_at, announced = $9",
            )
            .bind(service_id)
            .bind(tenant.to_string())
            .bind(instance.id.as_str())
            .bind(initial)
            .bind(instance.version.as_ref().map(ToString::to_string))
            .bind(rsql::map_text(&instance.metadata))
            .bind(now_ms)
            .bind(given)
            .bind(instance.initial.as_str())
            .execute(&mut *connection)
            .await?;
            Ok(())
        }

        async fn owner_of(connection: &mut Connection, tenant: TenantId, name: &ServiceName) -> StoreResult<Option<PluginId>> {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT plugin_id FROM services WHERE tenant_id = $1 AND name = $2")
                    .bind(tenant.to_string())
                    .bind(name.as_str())
                    .fetch_optional(&mut *connection)
                    .await?;
            owner.map(|p| crate::sql::plugin_id("services", &p)).transpose()
        }

        /// Where `after` stands in the change log `table` whose newest id is the tenant
        /// column `counter` (both are fixed identifiers of this crate, never input).
        pub(crate) async fn log_position(
            pool: &sqlx::Pool<$db>,
            counter: &str,
            table: &str,
            tenant: TenantId,
            after: i64,
        ) -> StoreResult<rsql::LogPosition> {
            let current: Option<i64> =
                sqlx::query_scalar(&format!("SELECT {counter} FROM tenants WHERE id = $1"))
                    .bind(tenant.to_string())
                    .fetch_optional(pool)
                    .await?;
            let Some(current) = current else {
                return Ok(rsql::LogPosition::Reset(0));
            };
            if after > current || after < 0 {
                return Ok(rsql::LogPosition::Reset(current));
            }
            if after == current {
                return Ok(rsql::LogPosition::UpToDate);
            }
            let oldest: Option<i64> =
                sqlx::query_scalar(&format!("SELECT MIN(seq) FROM {table} WHERE tenant_id = $1"))
                    .bind(tenant.to_string())
                    .fetch_one(pool)
                    .await?;
            if oldest.is_none_or(|oldest| after + 1 < oldest) {
                return Ok(rsql::LogPosition::Reset(current));
            }
            Ok(rsql::LogPosition::Read)
        }

        impl $store {
            async fn load_services(
                &self,
                tenant: TenantId,
                name: &str,
                id: &str,
            ) -> StoreResult<Vec<(Service, InstallationState)>> {
                let services_sql = format!(
                    "SELECT s.id, s.tenant_id, s.plugin_id, s.name, s.version, s.metadata, i.state \
                     FROM services s JOIN installations i \
                     ON i.tenant_id = s.tenant_id AND i.plugin_id = s.plugin_id \
                     WHERE {SERVICE_FILTER} ORDER BY s.name"
                );
                let rows = sqlx::query(&services_sql)
                    .bind(tenant.to_string())
                    .bind(name)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                let mut services = Vec::with_capacity(rows.len());
                for row in &rows {
                    services.push(
                        rsql::ServiceRow {
                            id: row.try_get("id")?,
                            tenant_id: row.try_get("tenant_id")?,
                            plugin_id: row.try_get("plugin_id")?,
                            name: row.try_get("name")?,
                            version: row.try_get("version")?,
                            metadata: row.try_get("metadata")?,
                            state: row.try_get("state")?,
                        }
                        .parse()?,
                    );
                }
                if services.is_empty() {
                    return Ok(services);
                }
                let index: std::collections::HashMap<String, usize> = services
                    .iter()
                    .enumerate()
                    .map(|(i, (s, _))| (s.id.clone(), i))
                    .collect();

                let endpoints_sql = format!(
                    "SELECT e.service_id, e.method, e.path, e.description, e.permissions, e.metadata \
                     FROM service_endpoints e JOIN services s ON s.id = e.service_id \
                     WHERE {SERVICE_FILTER} ORDER BY e.service_id, e.position"
                );
                let rows = sqlx::query(&endpoints_sql)
                    .bind(tenant.to_string())
                    .bind(name)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                for row in &rows {
                    let service_id: &str = row.try_get("service_id")?;
                    let endpoint = rsql::endpoint(
                        row.try_get("method")?,
                        row.try_get("path")?,
                        row.try_get("description")?,
                        row.try_get("permissions")?,
                        row.try_get("metadata")?,
                    )?;
                    if let Some(&i) = index.get(service_id) {
                        services[i].0.endpoints.push(endpoint);
                    }
                }

                let instances_sql = format!(
                    "SELECT n.service_id, n.instance_id, n.base_url, n.version, n.metadata, n.reported, \
                     n.reason, n.last_seen_at FROM service_instances n JOIN services s ON s.id = n.service_id \
                     WHERE {SERVICE_FILTER} ORDER BY n.service_id, n.instance_id"
                );
                let rows = sqlx::query(&instances_sql)
                    .bind(tenant.to_string())
                    .bind(name)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await?;
                for row in &rows {
                    let service_id: &str = row.try_get("service_id")?;
                    let instance = rsql::InstanceRow {
                        instance_id: row.try_get("instance_id")?,
                        base_url: row.try_get("base_url")?,
                        version: row.try_get("version")?,
                        metadata: row.try_get("metadata")?,
                        reported: row.try_get("reported")?,
                        reason: row.try_get("reason")?,
                        last_seen_at: row.try_get("last_seen_at")?,
                    }
                    .parse()?;
                    if let Some(&i) = index.get(service_id) {
                        services[i].0.instances.push(instance);
                    }
                }
                Ok(services)
            }
        }

        #[async_trait]
        impl RegistryStore for $store {
            async fn register_service(
                &self,
                registration: &ServiceRegistration,
                now_ms: i64,
            ) -> StoreResult<Registered> {
                let tenant = registration.tenant_id;
                let proposed_id = uuid::Uuid::new_v4().to_string();
                let mut tx = self.pool.begin().await?;
                let service_id: Option<String> = sqlx::query_scalar(
                    "INSERT INTO services (id, tenant_id, plugin_id, name, version, metadata, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
                     ON CONFLICT (tenant_id, name) DO UPDATE SET version = excluded.version, \
                     metadata = excluded.metadata, updated_at = excluded.updated_at \
                     WHERE services.plugin_id = excluded.plugin_id RETURNING id",
                )
                .bind(&proposed_id)
                .bind(tenant.to_string())
                .bind(registration.plugin_id.as_str())
                .bind(registration.name.as_str())
                .bind(registration.version.to_string())
                .bind(rsql::map_text(&registration.metadata))
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(service_id) = service_id else {
                    let owner = owner_of(&mut tx, tenant, &registration.name).await?;
                    return Ok(owner.map_or(Registered::NoSuchService, Registered::OwnedBy));
                };
                if let Some(endpoints) = &registration.endpoints {
                    sqlx::query("DELETE FROM service_endpoints WHERE service_id = $1")
                        .bind(&service_id)
                        .execute(&mut *tx)
                        .await?;
                    for (position, endpoint) in endpoints.iter().enumerate() {
                        sqlx::query(
                            "INSERT INTO service_endpoints (service_id, tenant_id, position, method, path, \
                             description, permissions, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(&service_id)
                        .bind(tenant.to_string())
                        .bind(i64::try_from(position).unwrap_or(i64::MAX))
                        .bind(endpoint.method.as_str())
                        .bind(&endpoint.path)
                        .bind(&endpoint.description)
                        .bind(serde_json::Value::from(endpoint.permissions.clone()).to_string())
                        .bind(rsql::map_text(&endpoint.metadata))
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                upsert_instance_row(&mut tx, tenant, &service_id, &registration.instance, now_ms).await?;
                let kind = if service_id == proposed_id {
                    RegistryEventKind::Registered
                } else {
                    RegistryEventKind::Updated
                };
                append_event(&mut tx, tenant, kind, registration.name.as_str(), registration.plugin_id.as_str(), now_ms).await?;
                tx.commit().await?;
                Ok(Registered::Done { service_id })
            }

            async fn upsert_instance(
                &self,
                tenant: TenantId,
                plugin: &PluginId,
                name: &ServiceName,
                instance: &InstanceRegistration,
                now_ms: i64,
            ) -> StoreResult<Registered> {
                let mut tx = self.pool.begin().await?;
                let service_id: Option<String> = sqlx::query_scalar(
                    "UPDATE services SET updated_at = $4 WHERE tenant_id = $1 AND name = $2 AND plugin_id = $3 RETURNING id",
                )
                .bind(tenant.to_string())
                .bind(name.as_str())
                .bind(plugin.as_str())
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(service_id) = service_id else {
                    let owner = owner_of(&mut tx, tenant, name).await?;
                    return Ok(owner.map_or(Registered::NoSuchService, Registered::OwnedBy));
                };
                upsert_instance_row(&mut tx, tenant, &service_id, instance, now_ms).await?;
                append_event(&mut tx, tenant, RegistryEventKind::Updated, name.as_str(), plugin.as_str(), now_ms).await?;
                tx.commit().await?;
                Ok(Registered::Done { service_id })
            }

            async fn remove_instance(
                &self,
                tenant: TenantId,
                name: &ServiceName,
                instance: &InstanceId,
                now_ms: i64,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let removed: Option<String> = sqlx::query_scalar(
                    "DELETE FROM service_instances WHERE tenant_id = $1 AND instance_id = $3 AND service_id = \
                     (SELECT id FROM services WHERE tenant_id = $1 AND name = $2) RETURNING service_id",
                )
                .bind(tenant.to_string())
                .bind(name.as_str())
                .bind(instance.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if removed.is_none() {
                    return Ok(false);
                }
                if let Some(owner) = owner_of(&mut tx, tenant, name).await? {
                    append_event(&mut tx, tenant, RegistryEventKind::Updated, name.as_str(), owner.as_str(), now_ms).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn deregister_service(
                &self,
                tenant: TenantId,
                name: &ServiceName,
                now_ms: i64,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let owner: Option<String> = sqlx::query_scalar(
                    "DELETE FROM services WHERE tenant_id = $1 AND name = $2 RETURNING plugin_id",
                )
                .bind(tenant.to_string())
                .bind(name.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(owner) = owner else { return Ok(false) };
                append_event(&mut tx, tenant, RegistryEventKind::Deregistered, name.as_str(), &owner, now_ms).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn record_health(
                &self,
                tenant: TenantId,
                service_id: &str,
                instance: Option<&InstanceId>,
                reported: ServiceStatus,
                reason: Option<&str>,
                now_ms: i64,
            ) -> StoreResult<u64> {
                let instance = instance.map_or("", InstanceId::as_str);
                let mut tx = self.pool.begin().await?;
                let updated = sqlx::query(
                    "UPDATE service_instances SET reported = $4, reason = $5, last_seen_at = $6 \
                     WHERE tenant_id = $1 AND service_id = $2 AND ($3 = '' OR instance_id = $3)",
                )
                .bind(tenant.to_string())
                .bind(service_id)
                .bind(instance)
                .bind(reported.as_str())
                .bind(reason)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // Right after a report the effective status is the reported one: announce it
                // where it differs from what watchers were last told.
                let announced = sqlx::query(
                    "UPDATE service_instances SET announced = $4 \
                     WHERE tenant_id = $1 AND service_id = $2 AND ($3 = '' OR instance_id = $3) AND announced <> $4",
                )
                .bind(tenant.to_string())
                .bind(service_id)
                .bind(instance)
                .bind(reported.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if announced > 0 {
                    let row = sqlx::query("SELECT name, plugin_id FROM services WHERE id = $1")
                        .bind(service_id)
                        .fetch_one(&mut *tx)
                        .await?;
                    let name: String = row.try_get("name")?;
                    let plugin: String = row.try_get("plugin_id")?;
                    append_event(&mut tx, tenant, RegistryEventKind::HealthChanged, &name, &plugin, now_ms).await?;
                }
                tx.commit().await?;
                Ok(updated)
            }

            async fn service_by_name(
                &self,
                tenant: TenantId,
                name: &ServiceName,
            ) -> StoreResult<Option<(Service, InstallationState)>> {
                Ok(self.load_services(tenant, name.as_str(), "").await?.into_iter().next())
            }

            async fn service_by_id(
                &self,
                tenant: TenantId,
                service_id: &str,
            ) -> StoreResult<Option<(Service, InstallationState)>> {
                if service_id.is_empty() {
                    return Ok(None);
                }
                Ok(self.load_services(tenant, "", service_id).await?.into_iter().next())
            }

            async fn services(&self, tenant: TenantId) -> StoreResult<Vec<(Service, InstallationState)>> {
                self.load_services(tenant, "", "").await
            }

            async fn registry_events_since(
                &self,
                tenant: TenantId,
                after: i64,
                limit: u32,
            ) -> StoreResult<EventsSince> {
                match log_position(&self.pool, "registry_seq", "registry_events", tenant, after).await? {
                    rsql::LogPosition::Read => {}
                    rsql::LogPosition::UpToDate => return Ok(EventsSince::Events(Vec::new())),
                    rsql::LogPosition::Reset(current) => return Ok(EventsSince::Reset { current }),
                }
                let rows = sqlx::query(
                    "SELECT seq, kind, service_name, plugin_id FROM registry_events \
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
                        rsql::event(
                            row.try_get("seq")?,
                            row.try_get("kind")?,
                            row.try_get("service_name")?,
                            row.try_get("plugin_id")?,
                        )
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                Ok(EventsSince::Events(events))
            }

            async fn sweep_health(
                &self,
                policy: &HealthPolicy,
                now_ms: i64,
            ) -> StoreResult<Vec<(TenantId, ServiceName)>> {
                let degraded_before =
                    now_ms - plexhub_core::registry::MISSED_HEARTBEATS_FOR_DEGRADED * policy.heartbeat_interval_ms;
                let candidates = sqlx::query(
                    "SELECT n.tenant_id, n.service_id, n.instance_id, n.reported, n.last_seen_at, n.announced, \
                     s.name, s.plugin_id FROM service_instances n JOIN services s ON s.id = n.service_id \
                     WHERE n.reported <> 'UNKNOWN' AND (n.announced <> 'HEALTHY' OR n.last_seen_at <= $1)",
                )
                .bind(degraded_before)
                .fetch_all(&self.pool)
                .await?;
                let mut changed = Vec::new();
                for row in &candidates {
                    let reported = rsql::status("service_instances", "reported", row.try_get("reported")?)?;
                    let announced_text: &str = row.try_get("announced")?;
                    let announced = rsql::status("service_instances", "announced", announced_text)?;
                    let last_seen: i64 = row.try_get("last_seen_at")?;
                    let effective = policy.status(reported, last_seen, now_ms);
                    if effective == announced {
                        continue;
                    }
                    let tenant = crate::sql::tenant_id(row.try_get("tenant_id")?)?;
                    let name: &str = row.try_get("name")?;
                    let plugin: &str = row.try_get("plugin_id")?;
                    let mut tx = self.pool.begin().await?;
                    // Guarded on the values read, so a concurrent heartbeat or another hub's
                    // sweep wins and this one announces nothing.
                    let claimed = sqlx::query(
                        "UPDATE service_instances SET announced = $3 WHERE service_id = $1 AND instance_id = $2 \
                         AND announced = $4 AND last_seen_at = $5",
                    )
                    .bind(row.try_get::<&str, _>("service_id")?)
                    .bind(row.try_get::<&str, _>("instance_id")?)
                    .bind(effective.as_str())
                    .bind(announced_text)
                    .bind(last_seen)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if claimed == 1 {
                        append_event(&mut tx, tenant, RegistryEventKind::HealthChanged, name, plugin, now_ms).await?;
                        tx.commit().await?;
                        changed.push((tenant, rsql::service_name("services", name)?));
                    }
                }
                Ok(changed)
            }

            async fn prune_registry_events(&self, before_ms: i64) -> StoreResult<u64> {
                let done = sqlx::query("DELETE FROM registry_events WHERE created_at < $1")
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use registry_store;
