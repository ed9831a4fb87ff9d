//! The SQL shared by every backend. The schema is portable (TEXT ids, BIGINT epoch-millisecond
//! times, JSON as TEXT, `$n` parameters), so one body of queries serves SQLite and PostgreSQL;
//! [`sql_store!`] instantiates it for a concrete sqlx driver, keeping each implementation fully
//! typed without generic sqlx bounds.

use plexhub_core::credential::{CredentialId, SecretHash};
use plexhub_core::dependency::{Edge, EdgeSource};
use plexhub_core::ids::PluginId;
use plexhub_core::installation::{BaseUrl, Installation, InstallationState};
use plexhub_core::signing::SigningScheme;
use plexhub_core::tenant::{RateLimits, Tenant, TenantId, TenantSlug, TenantStatus};
use plexhub_core::version::{Version, VersionRange};

use plexhub_core::catalog::{Standing, VersionStatus, manifest_digest};

use crate::{
    CredentialRecord, PublishedVersion, ShellCredentialRecord, StoreError, StoreResult,
    VersionNotes,
};

/// How a backend spells bind parameters in generated multi-row statements. SQLite gets
/// anonymous `?`: sqlx looks up the name of every numbered parameter, and SQLite finds a name
/// by a linear scan, so a statement with hundreds of `$n` costs quadratic time to bind.
/// Anonymous parameters are numbered in textual order, so a statement built with [`param`]
/// and [`value_rows`] must use each parameter once, in ascending order.
pub(crate) trait ParamStyle {
    /// Whether parameters are anonymous `?` (numbered by position) rather than `$n`.
    const ANONYMOUS: bool;
}

impl ParamStyle for sqlx::Sqlite {
    const ANONYMOUS: bool = true;
}

impl ParamStyle for sqlx::Postgres {
    const ANONYMOUS: bool = false;
}

/// Bind parameter `n` (1-based) in `D`'s style.
pub(crate) fn param<D: ParamStyle>(n: usize) -> String {
    if D::ANONYMOUS {
        "?".to_owned()
    } else {
        format!("${n}")
    }
}

/// `(p, p), (p, p)…`: `rows` rows whose columns are `columns` (`$` stands for the parameter,
/// e.g. `"CAST($ AS BIGINT)"`), numbered from `first`.
pub(crate) fn value_rows<D: ParamStyle>(first: usize, rows: usize, columns: &[&str]) -> String {
    let mut sql = String::with_capacity(rows * columns.len() * 8);
    let mut n = first;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for (index, column) in columns.iter().enumerate() {
            if index > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&column.replace('$', &param::<D>(n)));
            n += 1;
        }
        sql.push(')');
    }
    sql
}

pub(crate) fn corrupt(table: &'static str, column: &'static str, value: &str) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        value: value.to_owned(),
    }
}

pub(crate) fn tenant_id(text: &str) -> StoreResult<TenantId> {
    TenantId::parse(text).map_err(|_| corrupt("tenants", "id", text))
}

pub(crate) fn plugin_id(table: &'static str, text: &str) -> StoreResult<PluginId> {
    PluginId::parse(text).map_err(|_| corrupt(table, "plugin_id", text))
}

pub(crate) fn version(table: &'static str, text: &str) -> StoreResult<Version> {
    Version::parse(text).map_err(|_| corrupt(table, "version", text))
}

pub(crate) fn tenant(
    id: &str,
    slug: &str,
    name: String,
    status: &str,
    created_at_ms: i64,
    rate_limits: Option<&str>,
) -> StoreResult<Tenant> {
    let rate_limits = match rate_limits {
        Some(text) => {
            serde_json::from_str(text).map_err(|_| corrupt("tenants", "rate_limits", text))?
        }
        None => RateLimits::default(),
    };
    Ok(Tenant {
        rate_limits,
        id: tenant_id(id)?,
        slug: TenantSlug::parse(slug).map_err(|_| corrupt("tenants", "slug", slug))?,
        name,
        status: TenantStatus::parse(status).map_err(|_| corrupt("tenants", "status", status))?,
        created_at_ms,
    })
}

/// The columns [`published_version`] reads, in `plugin_versions`.
pub(crate) const VERSION_COLUMNS: &str = "plugin_id, version, manifest, published_at, status, \
     yanked, rejection, deprecation, replacement, yank_reason, manifest_sha256";

/// A `plugin_versions` row as read.
pub(crate) struct VersionRow<'r> {
    pub(crate) plugin_id: &'r str,
    pub(crate) version: &'r str,
    pub(crate) manifest: &'r str,
    pub(crate) published_at: i64,
    pub(crate) status: &'r str,
    pub(crate) yanked: i64,
    pub(crate) notes: VersionNotes,
    pub(crate) digest: Option<String>,
}

pub(crate) fn status(table: &'static str, text: &str) -> StoreResult<VersionStatus> {
    VersionStatus::parse(text).ok_or_else(|| corrupt(table, "status", text))
}

pub(crate) fn published_version(row: VersionRow<'_>) -> StoreResult<PublishedVersion> {
    let manifest: serde_json::Value = serde_json::from_str(row.manifest)
        .map_err(|_| corrupt("plugin_versions", "manifest", row.manifest))?;
    Ok(PublishedVersion {
        plugin_id: plugin_id("plugin_versions", row.plugin_id)?,
        version: version("plugin_versions", row.version)?,
        // Versions published before digests were stored get theirs computed.
        digest: row.digest.unwrap_or_else(|| manifest_digest(&manifest)),
        manifest,
        published_at_ms: row.published_at,
        standing: Standing {
            status: status("plugin_versions", row.status)?,
            yanked: row.yanked != 0,
        },
        notes: row.notes,
    })
}

/// The statuses of a `plugin_version_transitions` row: before (none for the publication), and
/// after with the yank flag.
pub(crate) fn transition_statuses(
    from: Option<&str>,
    to: &str,
    yanked: i64,
) -> StoreResult<(Option<VersionStatus>, Standing)> {
    const TABLE: &str = "plugin_version_transitions";
    Ok((
        from.map(|text| status(TABLE, text)).transpose()?,
        Standing {
            status: status(TABLE, to)?,
            yanked: yanked != 0,
        },
    ))
}

fn string_list(column: &'static str, text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|_| corrupt("installations", column, text))
}

pub(crate) fn list_text(items: &[String]) -> String {
    serde_json::Value::from(items).to_string()
}

/// Columns of `installations` in the order the queries select them.
pub(crate) struct InstallationRow {
    pub tenant_id: String,
    pub plugin_id: String,
    pub version: String,
    pub state: String,
    pub base_url: String,
    pub allowed_origins: String,
    pub grants: String,
    pub installed_at: i64,
    pub updated_at: i64,
    pub signing: Option<String>,
}

impl InstallationRow {
    pub(crate) fn parse(self) -> StoreResult<Installation> {
        Ok(Installation {
            tenant_id: tenant_id(&self.tenant_id)?,
            plugin_id: plugin_id("installations", &self.plugin_id)?,
            version: version("installations", &self.version)?,
            state: InstallationState::parse(&self.state)
                .ok_or_else(|| corrupt("installations", "state", &self.state))?,
            base_url: Some(self.base_url.as_str())
                .filter(|url| !url.is_empty())
                .map(BaseUrl::parse)
                .transpose()
                .map_err(|_| corrupt("installations", "base_url", &self.base_url))?,
            allowed_origins: string_list("allowed_origins", &self.allowed_origins)?,
            grants: string_list("grants", &self.grants)?,
            installed_at_ms: self.installed_at,
            updated_at_ms: self.updated_at,
            signing: self
                .signing
                .map(|text| {
                    SigningScheme::parse(&text)
                        .ok_or_else(|| corrupt("installations", "signing", &text))
                })
                .transpose()?,
        })
    }
}

pub(crate) fn credential(
    id: &str,
    tenant: &str,
    plugin: &str,
    hash: &str,
    created_at_ms: i64,
    last_used_at_ms: Option<i64>,
) -> StoreResult<CredentialRecord> {
    Ok(CredentialRecord {
        id: CredentialId::parse(id).ok_or_else(|| corrupt("credentials", "id", id))?,
        tenant_id: tenant_id(tenant)?,
        plugin_id: plugin_id("credentials", plugin)?,
        hash: SecretHash::from_hex(hash)
            .ok_or_else(|| corrupt("credentials", "secret_hash", ""))?,
        created_at_ms,
        last_used_at_ms,
    })
}

pub(crate) const TENANT_COLUMNS: &str = "id, slug, name, status, created_at, rate_limits";
pub(crate) const INSTALLATION_COLUMNS: &str = "tenant_id, plugin_id, version, state, base_url, \
     allowed_origins, grants, installed_at, updated_at, signing";

/// An installation's signing secret from its stored columns.
pub(crate) fn shell_credential(
    id: &str,
    tenant: &str,
    hash: &str,
    created_at_ms: i64,
) -> StoreResult<ShellCredentialRecord> {
    const TABLE: &str = "shell_credentials";
    Ok(ShellCredentialRecord {
        id: CredentialId::parse(id).ok_or_else(|| corrupt(TABLE, "id", id))?,
        tenant_id: tenant_id(tenant)?,
        hash: SecretHash::from_hex(hash).ok_or_else(|| corrupt(TABLE, "secret_hash", hash))?,
        created_at_ms,
    })
}

pub(crate) fn signing_secret(
    key_id: &str,
    secret: &str,
    created_at_ms: i64,
    expires_at_ms: Option<i64>,
) -> StoreResult<crate::StoredSigningSecret> {
    Ok(crate::StoredSigningSecret {
        secret: plexhub_core::signing::SigningSecret::from_text(key_id, secret)
            .map_err(|_| corrupt("signing_secrets", "secret", key_id))?,
        created_at_ms,
        expires_at_ms,
    })
}
pub(crate) const CREDENTIAL_COLUMNS: &str =
    "id, tenant_id, plugin_id, secret_hash, created_at, last_used_at";

/// A tenant's quotas as stored: JSON, or NULL when none is set.
pub(crate) fn rate_limits_text(limits: &RateLimits) -> Option<String> {
    (*limits != RateLimits::default())
        .then(|| serde_json::to_string(limits).ok())
        .flatten()
}

/// A registered dependency row.
pub(crate) fn registered_edge(
    plugin_id: &str,
    depends_on: &str,
    range: &str,
    required: i64,
) -> StoreResult<Edge> {
    let table = "plugin_dependencies";
    Ok(Edge {
        from: self::plugin_id(table, plugin_id)?,
        to: self::plugin_id(table, depends_on)?,
        range: VersionRange::parse(range).map_err(|_| corrupt(table, "version_range", range))?,
        required: required != 0,
        service_name: None,
        reason: None,
        source: EdgeSource::Registered,
    })
}

/// Implements every store trait for `$store` (a struct with a `pool: sqlx::Pool<$db>` field)
/// using the portable queries above.
macro_rules! sql_store {
    ($store:ident, $db:ty, $row:ty, $backend:literal) => {
        use async_trait::async_trait;
        use plexhub_core::credential::CredentialId;
        use plexhub_core::dependency::Edge;
        use plexhub_core::ids::PluginId;
        use plexhub_core::installation::{Installation, InstallationState};
        use plexhub_core::tenant::{Tenant, TenantId, TenantSlug};
        use plexhub_core::version::Version;
        use sqlx::Row as _;

        use crate::sql::{
            self, CREDENTIAL_COLUMNS, INSTALLATION_COLUMNS, TENANT_COLUMNS, VERSION_COLUMNS,
        };
        use crate::{
            CatalogStore, CredentialRecord, CredentialStore, InstallationStore, PublishOutcome,
            NewInstallation, PublishedVersion, Store, StoreResult, StoredSigningSecret, TenantStore,
            ShellCredentialRecord, VersionChange, VersionTransition,
        };
        use plexhub_core::signing::SigningSecret;

        /// Attempts at deleting a tenant that meets deadlocks.
        const TENANT_DELETE_ATTEMPTS: u32 = 5;

        /// One attempt at [`TenantStore::delete_tenant`].
        async fn delete_tenant_once(pool: &sqlx::Pool<$db>, id: TenantId) -> StoreResult<bool> {
            let mut tx = pool.begin().await?;
            sqlx::query(<$db as crate::audit_sql::CallDialect>::FORGET_TENANT)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM gateway_call_batches WHERE calls = '[]'")
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query("DELETE FROM tenants WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        }

        /// The tenant in `row`, its id in the column `id_column` (`id`, or `tenant_id` in a
        /// join).
        fn tenant_from(row: &$row, id_column: &str) -> StoreResult<Tenant> {
            sql::tenant(
                row.try_get::<&str, _>(id_column)?,
                row.try_get::<&str, _>("slug")?,
                row.try_get::<String, _>("name")?,
                row.try_get::<&str, _>("status")?,
                row.try_get::<i64, _>("created_at")?,
                row.try_get::<Option<&str>, _>("rate_limits")?,
            )
        }

        fn version_from(row: &$row) -> StoreResult<PublishedVersion> {
            sql::published_version(sql::VersionRow {
                plugin_id: row.try_get("plugin_id")?,
                version: row.try_get("version")?,
                manifest: row.try_get("manifest")?,
                published_at: row.try_get("published_at")?,
                status: row.try_get("status")?,
                yanked: row.try_get("yanked")?,
                notes: crate::VersionNotes {
                    rejection: row.try_get("rejection")?,
                    deprecation: row.try_get("deprecation")?,
                    replacement: row.try_get("replacement")?,
                    yank_reason: row.try_get("yank_reason")?,
                },
                digest: row.try_get("manifest_sha256")?,
            })
        }

        fn installation_from(row: &$row) -> StoreResult<Installation> {
            sql::InstallationRow {
                tenant_id: row.try_get("tenant_id")?,
                plugin_id: row.try_get("plugin_id")?,
                version: row.try_get("version")?,
                state: row.try_get("state")?,
                base_url: row.try_get("base_url")?,
                allowed_origins: row.try_get("allowed_origins")?,
                grants: row.try_get("grants")?,
                installed_at: row.try_get("installed_at")?,
                updated_at: row.try_get("updated_at")?,
                signing: row.try_get("signing")?,
            }
            .parse()
        }

        fn credential_from(row: &$row) -> StoreResult<CredentialRecord> {
            sql::credential(
                row.try_get::<&str, _>("id")?,
                row.try_get::<&str, _>("tenant_id")?,
                row.try_get::<&str, _>("plugin_id")?,
                row.try_get::<&str, _>("secret_hash")?,
                row.try_get::<i64, _>("created_at")?,
                row.try_get::<Option<i64>, _>("last_used_at")?,
            )
        }

        #[async_trait]
        impl TenantStore for $store {
            async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO tenants (id, slug, name, status, created_at, updated_at, rate_limits) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6)",
                )
                .bind(tenant.id.to_string())
                .bind(tenant.slug.as_str())
                .bind(&tenant.name)
                .bind(tenant.status.as_str())
                .bind(tenant.created_at_ms)
                .bind(sql::rate_limits_text(&tenant.rate_limits))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn list_tenants(
                &self,
                after: Option<&TenantSlug>,
                limit: u32,
            ) -> StoreResult<Vec<Tenant>> {
                let sql = format!(
                    "SELECT {TENANT_COLUMNS} FROM tenants WHERE slug > $1 ORDER BY slug LIMIT $2"
                );
                let rows = sqlx::query(&sql)
                    .bind(after.map_or("", TenantSlug::as_str))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(|row| tenant_from(row, "id")).collect()
            }

            async fn tenant_by_slug(&self, slug: &TenantSlug) -> StoreResult<Option<Tenant>> {
                let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1");
                let row = sqlx::query(&sql)
                    .bind(slug.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(|row| tenant_from(row, "id")).transpose()
            }

            async fn update_tenant(&self, tenant: &Tenant, now_ms: i64) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE tenants SET name = $2, status = $3, updated_at = $4, rate_limits = $5 \
                     WHERE id = $1",
                )
                .bind(tenant.id.to_string())
                .bind(&tenant.name)
                .bind(tenant.status.as_str())
                .bind(now_ms)
                .bind(sql::rate_limits_text(&tenant.rate_limits))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_tenant(&self, id: TenantId) -> StoreResult<bool> {
                // Every tenant-scoped table but the audit log references tenants (directly or
                // through installations) with ON DELETE CASCADE; the audit log refers to the
                // tenant by a name id (migration 0014) and its calls are taken out of its rows
                // in the same transaction. The cascade locks subscriptions before their deliveries, a
                // completing delivery worker the other way round: when PostgreSQL breaks such a
                // deadlock by giving up the deletion, it runs again.
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    match delete_tenant_once(&self.pool, id).await {
                        Err(error) if error.is_deadlock() && attempts < TENANT_DELETE_ATTEMPTS => {
                            tracing::info!(tenant = %id, "deleting a tenant met a deadlock; again");
                        }
                        result => return result,
                    }
                }
            }
        }

        #[async_trait]
        impl CatalogStore for $store {
            async fn publish_version(
                &self,
                version: &PublishedVersion,
                actor: &str,
            ) -> StoreResult<PublishOutcome> {
                let mut tx = self.pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO plugin_versions (plugin_id, version, manifest, published_at, \
                     status, yanked, manifest_sha256, changed_at) \
                     VALUES ($1, $2, $3, $4, $5, 0, $6, $4) \
                     ON CONFLICT (plugin_id, version) DO NOTHING",
                )
                .bind(version.plugin_id.as_str())
                .bind(version.version.to_string())
                .bind(version.manifest.to_string())
                .bind(version.published_at_ms)
                .bind(version.standing.status.as_str())
                .bind(&version.digest)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 1 {
                    sqlx::query(
                        "INSERT INTO plugin_version_transitions (plugin_id, version, step, action, \
                         from_status, to_status, yanked, actor, reason, at) \
                         VALUES ($1, $2, 1, 'publish', NULL, $3, 0, $4, NULL, $5)",
                    )
                    .bind(version.plugin_id.as_str())
                    .bind(version.version.to_string())
                    .bind(version.standing.status.as_str())
                    .bind(actor)
                    .bind(version.published_at_ms)
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(PublishOutcome::Created);
                }
                let sql = format!(
                    "SELECT {VERSION_COLUMNS} FROM plugin_versions \
                     WHERE plugin_id = $1 AND version = $2"
                );
                let row = sqlx::query(&sql)
                    .bind(version.plugin_id.as_str())
                    .bind(version.version.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                let existing = version_from(&row)?;
                Ok(if existing.digest == version.digest {
                    PublishOutcome::Unchanged
                } else {
                    PublishOutcome::Conflict
                })
            }

            async fn all_versions(&self) -> StoreResult<Vec<PublishedVersion>> {
                let sql = format!(
                    "SELECT {VERSION_COLUMNS} FROM plugin_versions ORDER BY plugin_id, published_at"
                );
                let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
                rows.iter().map(version_from).collect()
            }

            async fn plugin_versions(
                &self,
                plugin_id: &PluginId,
            ) -> StoreResult<Vec<PublishedVersion>> {
                let sql = format!(
                    "SELECT {VERSION_COLUMNS} FROM plugin_versions \
                     WHERE plugin_id = $1 ORDER BY published_at"
                );
                let rows = sqlx::query(&sql)
                    .bind(plugin_id.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(version_from).collect()
            }

            async fn plugin_version(
                &self,
                plugin_id: &PluginId,
                version: &Version,
            ) -> StoreResult<Option<PublishedVersion>> {
                let sql = format!(
                    "SELECT {VERSION_COLUMNS} FROM plugin_versions \
                     WHERE plugin_id = $1 AND version = $2"
                );
                let row = sqlx::query(&sql)
                    .bind(plugin_id.as_str())
                    .bind(version.to_string())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(version_from).transpose()
            }

            async fn transition_version(&self, change: &VersionChange) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                // The guard on the current standing makes concurrent transitions of one
                // version (through any hub) apply one at a time: the loser writes nothing.
                let updated = sqlx::query(
                    "UPDATE plugin_versions SET status = $3, yanked = $4, rejection = $5, \
                     deprecation = $6, replacement = $7, yank_reason = $8, changed_at = $9 \
                     WHERE plugin_id = $1 AND version = $2 AND status = $10 AND yanked = $11",
                )
                .bind(change.plugin_id.as_str())
                .bind(change.version.to_string())
                .bind(change.to.status.as_str())
                .bind(i64::from(change.to.yanked))
                .bind(change.notes.rejection.as_deref())
                .bind(change.notes.deprecation.as_deref())
                .bind(change.notes.replacement.as_deref())
                .bind(change.notes.yank_reason.as_deref())
                .bind(change.at_ms)
                .bind(change.from.status.as_str())
                .bind(i64::from(change.from.yanked))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated != 1 {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO plugin_version_transitions (plugin_id, version, step, action, \
                     from_status, to_status, yanked, actor, reason, at) \
                     SELECT $1, $2, COALESCE(MAX(step), 0) + 1, $3, $4, $5, $6, $7, $8, $9 \
                     FROM plugin_version_transitions WHERE plugin_id = $1 AND version = $2",
                )
                .bind(change.plugin_id.as_str())
                .bind(change.version.to_string())
                .bind(change.action.as_str())
                .bind(change.from.status.as_str())
                .bind(change.to.status.as_str())
                .bind(i64::from(change.to.yanked))
                .bind(&change.actor)
                .bind(change.reason.as_deref())
                .bind(change.at_ms)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn version_transitions(
                &self,
                plugin_id: &PluginId,
                version: &Version,
            ) -> StoreResult<Vec<VersionTransition>> {
                let rows = sqlx::query(
                    "SELECT step, action, from_status, to_status, yanked, actor, reason, at \
                     FROM plugin_version_transitions WHERE plugin_id = $1 AND version = $2 \
                     ORDER BY step",
                )
                .bind(plugin_id.as_str())
                .bind(version.to_string())
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let (from, to) = sql::transition_statuses(
                            row.try_get("from_status")?,
                            row.try_get("to_status")?,
                            row.try_get("yanked")?,
                        )?;
                        Ok(VersionTransition {
                            step: row.try_get("step")?,
                            action: row.try_get("action")?,
                            from,
                            to,
                            actor: row.try_get("actor")?,
                            reason: row.try_get("reason")?,
                            at_ms: row.try_get("at")?,
                        })
                    })
                    .collect()
            }

            async fn replace_registered_dependencies(
                &self,
                plugins: &[PluginId],
                edges: &[Edge],
                now_ms: i64,
            ) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                // Concurrent replacements of one plugin's edges queue on its lock row (taken in
                // a fixed order, so two replacements of several plugins cannot deadlock).
                let mut locked: Vec<&PluginId> = plugins.iter().collect();
                locked.sort();
                locked.dedup();
                for plugin in locked {
                    sqlx::query(
                        "INSERT INTO plugin_dependency_locks (plugin_id) VALUES ($1) \
                         ON CONFLICT (plugin_id) DO UPDATE SET plugin_id = excluded.plugin_id",
                    )
                    .bind(plugin.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                for plugin in plugins {
                    sqlx::query("DELETE FROM plugin_dependencies WHERE plugin_id = $1")
                        .bind(plugin.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                for edge in edges {
                    sqlx::query(
                        "INSERT INTO plugin_dependencies (plugin_id, depends_on, version_range, \
                         required, created_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(edge.from.as_str())
                    .bind(edge.to.as_str())
                    .bind(edge.range.as_str())
                    .bind(i64::from(edge.required))
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn registered_dependencies(&self) -> StoreResult<Vec<Edge>> {
                let rows = sqlx::query(
                    "SELECT plugin_id, depends_on, version_range, required FROM plugin_dependencies \
                     ORDER BY plugin_id, depends_on",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        sql::registered_edge(
                            row.try_get::<&str, _>("plugin_id")?,
                            row.try_get::<&str, _>("depends_on")?,
                            row.try_get::<&str, _>("version_range")?,
                            row.try_get::<i64, _>("required")?,
                        )
                    })
                    .collect()
            }
        }

        #[async_trait]
        impl InstallationStore for $store {
            async fn install(&self, installations: &[NewInstallation]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                let sql = format!(
                    "INSERT INTO installations ({INSTALLATION_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                );
                for NewInstallation { installation, credential, signing_secret } in installations {
                    sqlx::query(&sql)
                        .bind(installation.tenant_id.to_string())
                        .bind(installation.plugin_id.as_str())
                        .bind(installation.version.to_string())
                        .bind(installation.state.as_str())
                        // No base URL (a caller-only plugin) is stored as ''.
                        .bind(installation.base_url.as_ref().map_or("", plexhub_core::installation::BaseUrl::as_str))
                        .bind(sql::list_text(&installation.allowed_origins))
                        .bind(sql::list_text(&installation.grants))
                        .bind(installation.installed_at_ms)
                        .bind(installation.updated_at_ms)
                        .bind(installation.signing.map(|scheme| scheme.as_str()))
                        .execute(&mut *tx)
                        .await?;
                    insert_credential(&mut *tx, credential).await?;
                    insert_signing_secret(&mut *tx, installation.tenant_id, &installation.plugin_id, signing_secret, installation.installed_at_ms, None).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn installation(
                &self,
                tenant_id: TenantId,
                plugin_id: &PluginId,
            ) -> StoreResult<Option<Installation>> {
                let sql = format!(
                    "SELECT {INSTALLATION_COLUMNS} FROM installations \
                     WHERE tenant_id = $1 AND plugin_id = $2"
                );
                let row = sqlx::query(&sql)
                    .bind(tenant_id.to_string())
                    .bind(plugin_id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(installation_from).transpose()
            }

            async fn installations(&self, tenant_id: TenantId) -> StoreResult<Vec<Installation>> {
                let sql = format!(
                    "SELECT {INSTALLATION_COLUMNS} FROM installations \
                     WHERE tenant_id = $1 ORDER BY plugin_id"
                );
                let rows = sqlx::query(&sql)
                    .bind(tenant_id.to_string())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(installation_from).collect()
            }

            async fn set_installation_state(
                &self,
                tenant_id: TenantId,
                plugin_id: &PluginId,
                from: InstallationState,
                to: InstallationState,
                now_ms: i64,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let changed = sqlx::query(
                    "UPDATE installations SET state = $4, updated_at = $5 \
                     WHERE tenant_id = $1 AND plugin_id = $2 AND state = $3",
                )
                .bind(tenant_id.to_string())
                .bind(plugin_id.as_str())
                .bind(from.as_str())
                .bind(to.as_str())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed != 1 {
                    return Ok(false);
                }
                // Whether the plugin's services are discoverable changed: tell watchers.
                let kind = if to == InstallationState::Active {
                    crate::RegistryEventKind::Activated
                } else if from == InstallationState::Active {
                    crate::RegistryEventKind::Deactivated
                } else {
                    crate::RegistryEventKind::Updated
                };
                let names: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM services WHERE tenant_id = $1 AND plugin_id = $2 ORDER BY name",
                )
                .bind(tenant_id.to_string())
                .bind(plugin_id.as_str())
                .fetch_all(&mut *tx)
                .await?;
                for name in &names {
                    append_event(&mut tx, tenant_id, kind, name, plugin_id.as_str(), now_ms).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn update_installation(
                &self,
                tenant_id: TenantId,
                plugin_id: &PluginId,
                update: &crate::InstallationUpdate,
                now_ms: i64,
            ) -> StoreResult<bool> {
                let changed = sqlx::query(
                    "UPDATE installations SET allowed_origins = COALESCE($3, allowed_origins), \
                     grants = COALESCE($4, grants), base_url = COALESCE($6, base_url), updated_at = $5 \
                     WHERE tenant_id = $1 AND plugin_id = $2",
                )
                .bind(tenant_id.to_string())
                .bind(plugin_id.as_str())
                .bind(update.allowed_origins.as_deref().map(sql::list_text))
                .bind(update.grants.as_deref().map(sql::list_text))
                .bind(now_ms)
                .bind(update.base_url.as_ref().map(plexhub_core::installation::BaseUrl::as_str))
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(changed == 1)
            }

            async fn uninstall(
                &self,
                tenant_id: TenantId,
                plugin_ids: &[PluginId],
                now_ms: i64,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                for plugin_id in plugin_ids {
                    // Services, endpoints, replicas and credentials cascade from these rows.
                    let names: Vec<String> = sqlx::query_scalar(
                        "DELETE FROM services WHERE tenant_id = $1 AND plugin_id = $2 RETURNING name",
                    )
                    .bind(tenant_id.to_string())
                    .bind(plugin_id.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                    let removed = sqlx::query("DELETE FROM installations WHERE tenant_id = $1 AND plugin_id = $2")
                        .bind(tenant_id.to_string())
                        .bind(plugin_id.as_str())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if removed != 1 {
                        return Ok(false);
                    }
                    for name in &names {
                        append_event(&mut tx, tenant_id, crate::RegistryEventKind::Uninstalled, name, plugin_id.as_str(), now_ms).await?;
                    }
                }
                tx.commit().await?;
                Ok(true)
            }
        }

        async fn insert_credential<'c, E>(executor: E, credential: &CredentialRecord) -> StoreResult<()>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            let sql = format!(
                "INSERT INTO credentials ({CREDENTIAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
            );
            sqlx::query(&sql)
                .bind(credential.id.as_str())
                .bind(credential.tenant_id.to_string())
                .bind(credential.plugin_id.as_str())
                .bind(credential.hash.to_hex())
                .bind(credential.created_at_ms)
                .bind(credential.last_used_at_ms)
                .execute(executor)
                .await?;
            Ok(())
        }

        async fn insert_signing_secret<'c, E>(
            executor: E,
            tenant_id: TenantId,
            plugin_id: &PluginId,
            secret: &SigningSecret,
            now_ms: i64,
            expires_at_ms: Option<i64>,
        ) -> StoreResult<u64>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            // The partial unique index allows one current secret: a second is not inserted.
            let inserted = sqlx::query(
                "INSERT INTO signing_secrets (key_id, tenant_id, plugin_id, secret, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(secret.key_id())
            .bind(tenant_id.to_string())
            .bind(plugin_id.as_str())
            .bind(secret.secret_text())
            .bind(now_ms)
            .bind(expires_at_ms)
            .execute(executor)
            .await?;
            Ok(inserted.rows_affected())
        }

        #[async_trait]
        impl CredentialStore for $store {
            async fn add_credential(&self, credential: &CredentialRecord) -> StoreResult<()> {
                insert_credential(&self.pool, credential).await
            }

            async fn credentials(
                &self,
                tenant_id: TenantId,
                plugin_id: &PluginId,
            ) -> StoreResult<Vec<CredentialRecord>> {
                let sql = format!(
                    "SELECT {CREDENTIAL_COLUMNS} FROM credentials \
                     WHERE tenant_id = $1 AND plugin_id = $2 ORDER BY created_at, id"
                );
                let rows = sqlx::query(&sql)
                    .bind(tenant_id.to_string())
                    .bind(plugin_id.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(credential_from).collect()
            }

            async fn revoke_credential(
                &self,
                tenant_id: TenantId,
                plugin_id: &PluginId,
                id: &CredentialId,
            ) -> StoreResult<bool> {
                let done = sqlx::query(
                    "DELETE FROM credentials WHERE id = $1 AND tenant_id = $2 AND plugin_id = $3",
                )
                .bind(id.as_str())
                .bind(tenant_id.to_string())
                .bind(plugin_id.as_str())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn credential_with_tenant(
                &self,
                id: &CredentialId,
            ) -> StoreResult<Option<(CredentialRecord, Tenant)>> {
                let row = sqlx::query(
                    "SELECT c.id, c.tenant_id, c.plugin_id, c.secret_hash, c.created_at AS cred_created_at, \
                     c.last_used_at, t.slug, t.name, t.status, t.created_at, t.rate_limits \
                     FROM credentials c JOIN tenants t ON t.id = c.tenant_id WHERE c.id = $1",
                )
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let credential = sql::credential(
                    row.try_get::<&str, _>("id")?,
                    row.try_get::<&str, _>("tenant_id")?,
                    row.try_get::<&str, _>("plugin_id")?,
                    row.try_get::<&str, _>("secret_hash")?,
                    row.try_get::<i64, _>("cred_created_at")?,
                    row.try_get::<Option<i64>, _>("last_used_at")?,
                )?;
                let tenant = tenant_from(&row, "tenant_id")?;
                Ok(Some((credential, tenant)))
            }

            async fn add_shell_credential(
                &self,
                credential: &ShellCredentialRecord,
            ) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO shell_credentials (id, tenant_id, secret_hash, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(credential.id.as_str())
                .bind(credential.tenant_id.to_string())
                .bind(credential.hash.to_hex())
                .bind(credential.created_at_ms)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn shell_credentials(
                &self,
                tenant_id: TenantId,
            ) -> StoreResult<Vec<ShellCredentialRecord>> {
                let rows = sqlx::query(
                    "SELECT id, tenant_id, secret_hash, created_at FROM shell_credentials \
                     WHERE tenant_id = $1 ORDER BY created_at, id",
                )
                .bind(tenant_id.to_string())
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        sql::shell_credential(
                            row.try_get("id")?,
                            row.try_get("tenant_id")?,
                            row.try_get("secret_hash")?,
                            row.try_get("created_at")?,
                        )
                    })
                    .collect()
            }

            async fn revoke_shell_credential(
                &self,
                tenant_id: TenantId,
                id: &CredentialId,
            ) -> StoreResult<bool> {
                let done =
                    sqlx::query("DELETE FROM shell_credentials WHERE id = $1 AND tenant_id = $2")
                        .bind(id.as_str())
                        .bind(tenant_id.to_string())
                        .execute(&self.pool)
                        .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn shell_credential_with_tenant(
                &self,
                id: &CredentialId,
            ) -> StoreResult<Option<(ShellCredentialRecord, Tenant)>> {
                let row = sqlx::query(
                    "SELECT c.id, c.tenant_id, c.secret_hash, c.created_at AS cred_created_at, \
                     t.slug, t.name, t.status, t.created_at, t.rate_limits \
                     FROM shell_credentials c JOIN tenants t ON t.id = c.tenant_id WHERE c.id = $1",
                )
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let credential = sql::shell_credential(
                    row.try_get("id")?,
                    row.try_get("tenant_id")?,
                    row.try_get("secret_hash")?,
                    row.try_get("cred_created_at")?,
                )?;
                let tenant = tenant_from(&row, "tenant_id")?;
                Ok(Some((credential, tenant)))
            }

            async fn signing_secrets(
                &self,
                tenant_id: TenantId,
                plugin_id: &PluginId,
                now_ms: i64,
            ) -> StoreResult<Vec<StoredSigningSecret>> {
                let rows = sqlx::query(
                    "SELECT key_id, secret, created_at, expires_at FROM signing_secrets \
                     WHERE tenant_id = $1 AND plugin_id = $2 AND (expires_at IS NULL OR expires_at > $3) \
                     ORDER BY expires_at IS NOT NULL, created_at DESC, key_id",
                )
                .bind(tenant_id.to_string())
                .bind(plugin_id.as_str())
                .bind(now_ms)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        sql::signing_secret(
                            row.try_get::<&str, _>("key_id")?,
                            row.try_get::<&str, _>("secret")?,
                            row.try_get::<i64, _>("created_at")?,
                            row.try_get::<Option<i64>, _>("expires_at")?,
                        )
                    })
                    .collect()
            }

            async fn ensure_signing_secret(
                &self,
                tenant_id: TenantId,
                plugin_id: &PluginId,
                secret: &SigningSecret,
                now_ms: i64,
            ) -> StoreResult<()> {
                insert_signing_secret(&self.pool, tenant_id, plugin_id, secret, now_ms, None).await?;
                Ok(())
            }

            async fn rotate_signing_secret(
                &self,
                tenant_id: TenantId,
                plugin_id: &PluginId,
                secret: &SigningSecret,
                now_ms: i64,
                overlap_until_ms: i64,
            ) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                // Locks the installation's row: concurrent rotations of one installation queue.
                let installed = sqlx::query(
                    "UPDATE installations SET updated_at = updated_at \
                     WHERE tenant_id = $1 AND plugin_id = $2",
                )
                .bind(tenant_id.to_string())
                .bind(plugin_id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if installed != 1 {
                    return Ok(false);
                }
                sqlx::query(
                    "DELETE FROM signing_secrets WHERE tenant_id = $1 AND plugin_id = $2 \
                     AND expires_at IS NOT NULL AND expires_at <= $3",
                )
                .bind(tenant_id.to_string())
                .bind(plugin_id.as_str())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE signing_secrets SET expires_at = $3 \
                     WHERE tenant_id = $1 AND plugin_id = $2 AND expires_at IS NULL",
                )
                .bind(tenant_id.to_string())
                .bind(plugin_id.as_str())
                .bind(overlap_until_ms)
                .execute(&mut *tx)
                .await?;
                insert_signing_secret(&mut *tx, tenant_id, plugin_id, secret, now_ms, None).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn touch_credential(&self, id: &CredentialId, now_ms: i64) -> StoreResult<()> {
                sqlx::query("UPDATE credentials SET last_used_at = $2 WHERE id = $1")
                    .bind(id.as_str())
                    .bind(now_ms)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl Store for $store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            fn backend(&self) -> &'static str {
                $backend
            }
        }
    };
}

pub(crate) use sql_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_rows_number_parameters_in_textual_order() {
        assert_eq!(
            value_rows::<sqlx::Postgres>(2, 2, &["CAST($ AS BIGINT)", "$"]),
            "(CAST($2 AS BIGINT), $3), (CAST($4 AS BIGINT), $5)"
        );
        assert_eq!(
            value_rows::<sqlx::Sqlite>(2, 2, &["CAST($ AS BIGINT)", "$"]),
            "(CAST(? AS BIGINT), ?), (CAST(? AS BIGINT), ?)"
        );
    }
}
