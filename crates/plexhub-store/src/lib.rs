//! plexhub-store: the ports the hub's domain needs from storage, and their adapters.
//!
//! One trait family ([`Store`]) with one implementation per backend: SQLite (embedded default)
//! and PostgreSQL (scaled mode), both generated from the same portable SQL in [`sql`]. Backend
//! differences (connection options, migrations) stay in [`sqlite`] and [`postgres`]. Nothing
//! above this crate sees sqlx or redis types.

use std::sync::Arc;

use async_trait::async_trait;
use plexhub_core::credential::{CredentialId, SecretHash};
use plexhub_core::ids::PluginId;
use plexhub_core::installation::{Installation, InstallationState};
use plexhub_core::tenant::{Tenant, TenantId, TenantSlug};
use plexhub_core::version::Version;

pub mod postgres;
pub mod redis;
mod sql;
pub mod sqlite;

/// A failure of the storage backend, or stored data that no longer parses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with the same unique key exists.
    #[error("a row with the same key already exists")]
    Duplicate,
    /// A referenced row does not exist (foreign key).
    #[error("a referenced row does not exist")]
    MissingReference,
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored value is invalid (written by another version or by hand).
    #[error("corrupt stored value in {table}.{column}: {value:?}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
        /// The offending value.
        value: String,
    },
    /// The database URL names no supported backend.
    #[error("unsupported database URL: expected sqlite:… or postgres://…")]
    UnsupportedUrl,
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Duplicate,
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => Self::MissingReference,
            _ => Self::Database(error),
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// One published catalog version of a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedVersion {
    /// Plugin id.
    pub plugin_id: PluginId,
    /// Version.
    pub version: Version,
    /// The manifest as published (validated).
    pub manifest: serde_json::Value,
    /// Publication time, epoch milliseconds.
    pub published_at_ms: i64,
}

/// What publishing a version did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The version is new and was stored.
    Created,
    /// The same version with identical content already existed.
    Unchanged,
    /// The same version exists with different content; nothing was stored.
    Conflict,
}

/// A plugin credential as stored: the hash, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRecord {
    /// Public id.
    pub id: CredentialId,
    /// Tenant of the installation it belongs to.
    pub tenant_id: TenantId,
    /// Plugin of the installation it belongs to.
    pub plugin_id: PluginId,
    /// SHA-256 of the secret.
    pub hash: SecretHash,
    /// Issue time, epoch milliseconds.
    pub created_at_ms: i64,
    /// Last successful authentication (recorded at most once a minute), epoch milliseconds.
    pub last_used_at_ms: Option<i64>,
}

/// Tenants.
#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Inserts a tenant; [`StoreError::Duplicate`] if the slug (or id) is taken.
    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    /// Up to `limit` tenants ordered by slug, starting after `after`.
    async fn list_tenants(
        &self,
        after: Option<&TenantSlug>,
        limit: u32,
    ) -> StoreResult<Vec<Tenant>>;
    /// The tenant with this slug.
    async fn tenant_by_slug(&self, slug: &TenantSlug) -> StoreResult<Option<Tenant>>;
    /// Writes name and status of an existing tenant; false if it does not exist.
    async fn update_tenant(&self, tenant: &Tenant, now_ms: i64) -> StoreResult<bool>;
    /// Deletes a tenant and every row that belongs to it, in one transaction; false if absent.
    async fn delete_tenant(&self, id: TenantId) -> StoreResult<bool>;
}

/// The global plugin catalog.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Stores a version unless it exists; compares content when it does.
    async fn publish_version(&self, version: &PublishedVersion) -> StoreResult<PublishOutcome>;
    /// Every published version of every plugin, ordered by plugin id.
    async fn all_versions(&self) -> StoreResult<Vec<PublishedVersion>>;
    /// Every published version of one plugin.
    async fn plugin_versions(&self, plugin_id: &PluginId) -> StoreResult<Vec<PublishedVersion>>;
    /// One version of one plugin.
    async fn plugin_version(
        &self,
        plugin_id: &PluginId,
        version: &Version,
    ) -> StoreResult<Option<PublishedVersion>>;
}

/// Installations of catalog plugins per tenant.
#[async_trait]
pub trait InstallationStore: Send + Sync {
    /// Inserts an installation together with its first credential, in one transaction;
    /// [`StoreError::Duplicate`] if the plugin is already installed for the tenant.
    async fn install(
        &self,
        installation: &Installation,
        credential: &CredentialRecord,
    ) -> StoreResult<()>;
    /// One installation.
    async fn installation(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
    ) -> StoreResult<Option<Installation>>;
    /// All installations of a tenant, ordered by plugin id.
    async fn installations(&self, tenant_id: TenantId) -> StoreResult<Vec<Installation>>;
    /// Sets the state of an installation if it is still in `from` (optimistic check); false if
    /// it is absent or was changed concurrently.
    async fn set_installation_state(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
        from: InstallationState,
        to: InstallationState,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Removes an installation and its credentials in one transaction; false if absent.
    async fn uninstall(&self, tenant_id: TenantId, plugin_id: &PluginId) -> StoreResult<bool>;
}

/// Plugin credentials.
#[async_trait]
pub trait CredentialStore: Send + Sync {
    /// Stores a new credential for an existing installation
    /// ([`StoreError::MissingReference`] otherwise).
    async fn add_credential(&self, credential: &CredentialRecord) -> StoreResult<()>;
    /// The credentials of one installation, oldest first.
    async fn credentials(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
    ) -> StoreResult<Vec<CredentialRecord>>;
    /// Revokes (deletes) a credential of one installation; false if absent.
    async fn revoke_credential(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
        id: &CredentialId,
    ) -> StoreResult<bool>;
    /// A credential and its tenant, for authentication.
    async fn credential_with_tenant(
        &self,
        id: &CredentialId,
    ) -> StoreResult<Option<(CredentialRecord, Tenant)>>;
    /// Records a successful use.
    async fn touch_credential(&self, id: &CredentialId, now_ms: i64) -> StoreResult<()>;
}

/// Everything the hub stores, behind one handle.
#[async_trait]
pub trait Store: TenantStore + CatalogStore + InstallationStore + CredentialStore {
    /// Round-trips to the database (readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// A short name of the backend for logs ("sqlite", "postgres").
    fn backend(&self) -> &'static str;
}

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`) and applies migrations.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::open(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}
