//! plexhub-store: the ports the hub's domain needs from storage, and their adapters.
//!
//! One trait family ([`Store`]) with one implementation per backend: SQLite (embedded default)
//! and PostgreSQL (scaled mode), both generated from the same portable SQL in [`sql`] and sharing
//! one set of portable migrations (`migrations/`; split it per backend only when one needs its
//! own). Backend differences (connection options) stay in [`sqlite`] and [`postgres`]. Nothing
//! above this crate sees sqlx or redis types.

use std::sync::Arc;

use async_trait::async_trait;
use plexhub_core::catalog::{CatalogAction, Standing, VersionStatus};
use plexhub_core::credential::{CredentialId, SecretHash};
use plexhub_core::data::{DataKey, Entry, Namespace, Precondition};
use plexhub_core::dependency::Edge;
use plexhub_core::ids::PluginId;
use plexhub_core::ids::ServiceName;
use plexhub_core::installation::{BaseUrl, Installation, InstallationState};
use plexhub_core::manifest::EndpointSpec;
use plexhub_core::registry::{HealthPolicy, InstanceId, Service, ServiceStatus};
use plexhub_core::signing::SigningSecret;
use plexhub_core::tenant::{Tenant, TenantId, TenantSlug};
use plexhub_core::version::Version;

mod audit_sql;
mod data_sql;
mod events_sql;
pub use events_sql::{
    Backend, acknowledge_statement, claim_statement, hand_over_keys, hand_over_statement,
    insert_deliveries_statement, published_ids_statement,
};
pub mod feed;
pub mod jetstream;
pub mod postgres;
pub mod redis;
mod registry_sql;
mod session_sql;
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
    /// The event bus outside the database (JetStream) failed or could not be reached.
    #[error(transparent)]
    Bus(#[from] jetstream::BusError),
    /// The database URL names no supported backend.
    #[error("unsupported database URL: expected sqlite:… or postgres://…")]
    UnsupportedUrl,
}

impl StoreError {
    /// Whether the database could not be reached (the same request may succeed later), rather
    /// than the database refusing what was asked: the server answers 503 for it, and the audit
    /// log retries it without end.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            )
            | Self::Bus(_) => true,
            Self::Database(sqlx::Error::Database(error)) => is_sqlite_unavailable(&**error),
            _ => false,
        }
    }
}

/// Whether a SQLite error says the database file cannot be written now (busy or locked past
/// the busy timeout, an I/O error, a full disk, a file that cannot be opened), rather than that
/// it refuses what was asked.
fn is_sqlite_unavailable(error: &dyn sqlx::error::DatabaseError) -> bool {
    /// SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
    const UNAVAILABLE: [i64; 5] = [5, 6, 10, 13, 14];
    error
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_some()
        && error
            .code()
            .and_then(|code| code.parse::<i64>().ok())
            // An extended result code keeps its primary code in the low byte.
            .is_some_and(|code| UNAVAILABLE.contains(&(code & 0xff)))
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

impl StoreError {
    /// Whether the database gave up the transaction to break a deadlock (PostgreSQL
    /// `40P01`): running it again may succeed.
    pub fn is_deadlock(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("40P01"))
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// One catalog version of a plugin, whatever its review status.
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
    /// Review status and yank flag.
    pub standing: Standing,
    /// What the lifecycle recorded on the version (rejection, deprecation, yank).
    pub notes: VersionNotes,
    /// `sha256:<hex>` of the manifest ([`plexhub_core::catalog::manifest_digest`]).
    pub digest: String,
}

/// What the lifecycle recorded on a catalog version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionNotes {
    /// The reviewer's reason, once rejected.
    pub rejection: Option<String>,
    /// The deprecation message, once deprecated.
    pub deprecation: Option<String>,
    /// What to use instead of a deprecated version (a plugin id, or a version).
    pub replacement: Option<String>,
    /// Why the version is yanked, while it is.
    pub yank_reason: Option<String>,
}

/// A transition of a catalog version, to store with its audit record when the version still
/// stands where `from` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionChange {
    /// Plugin id.
    pub plugin_id: PluginId,
    /// Version.
    pub version: Version,
    /// What was done.
    pub action: CatalogAction,
    /// Where the version stood (checked when writing).
    pub from: Standing,
    /// Where it stands after.
    pub to: Standing,
    /// The version's notes after the transition.
    pub notes: VersionNotes,
    /// Who did it.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// When, epoch milliseconds.
    pub at_ms: i64,
}

/// One recorded transition of a catalog version (publication included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionTransition {
    /// 1 for the publication, then one more per transition.
    pub step: i64,
    /// `publish` or a [`CatalogAction`]'s name.
    pub action: String,
    /// Status before (`None` for the publication).
    pub from: Option<VersionStatus>,
    /// Status and yank flag after.
    pub to: Standing,
    /// Who did it.
    pub actor: String,
    /// Why, as given.
    pub reason: Option<String>,
    /// When, epoch milliseconds.
    pub at_ms: i64,
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

/// A tenant's read-only shell credential as stored: the hash, never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellCredentialRecord {
    /// Public id.
    pub id: CredentialId,
    /// The tenant whose shell it serves.
    pub tenant_id: TenantId,
    /// SHA-256 of the secret.
    pub hash: SecretHash,
    /// Issue time, epoch milliseconds.
    pub created_at_ms: i64,
}

/// An installation to insert, with its first credential and its first HMAC signing secret.
#[derive(Debug, Clone)]
pub struct NewInstallation {
    /// The installation.
    pub installation: Installation,
    /// Its first credential.
    pub credential: CredentialRecord,
    /// Its first signing secret.
    pub signing_secret: SigningSecret,
}

/// What an operator changes on an installation without reinstalling it; `None` keeps a field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallationUpdate {
    /// Where the plugin is reachable (set once a caller-only plugin starts serving).
    pub base_url: Option<BaseUrl>,
    /// Browser origins allowed to reach the plugin (the whole set).
    pub allowed_origins: Option<Vec<String>>,
    /// Permissions granted for calls to other plugins (the whole set).
    pub grants: Option<Vec<String>>,
}

/// An installation's HMAC signing secret as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSigningSecret {
    /// The secret and its id.
    pub secret: SigningSecret,
    /// Creation time, epoch milliseconds.
    pub created_at_ms: i64,
    /// End of its overlap window after a rotation; `None` while it is the current one.
    pub expires_at_ms: Option<i64>,
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
    /// Stores a version unless it exists, with its publication in the audit trail (by
    /// `actor`); compares content (the digest) when it does.
    async fn publish_version(
        &self,
        version: &PublishedVersion,
        actor: &str,
    ) -> StoreResult<PublishOutcome>;
    /// Every catalog version of every plugin (any status), ordered by plugin id.
    async fn all_versions(&self) -> StoreResult<Vec<PublishedVersion>>;
    /// Every catalog version of one plugin (any status).
    async fn plugin_versions(&self, plugin_id: &PluginId) -> StoreResult<Vec<PublishedVersion>>;
    /// Applies a transition and records it, in one transaction; false (nothing written) if the
    /// version is absent or no longer stands where `change.from` says.
    async fn transition_version(&self, change: &VersionChange) -> StoreResult<bool>;
    /// The audit trail of one version, oldest first.
    async fn version_transitions(
        &self,
        plugin_id: &PluginId,
        version: &Version,
    ) -> StoreResult<Vec<VersionTransition>>;
    /// One version of one plugin.
    async fn plugin_version(
        &self,
        plugin_id: &PluginId,
        version: &Version,
    ) -> StoreResult<Option<PublishedVersion>>;
    /// Replaces, in one transaction, every registered dependency of each plugin in `plugins`
    /// by the `edges` whose `from` is that plugin.
    async fn replace_registered_dependencies(
        &self,
        plugins: &[PluginId],
        edges: &[Edge],
        now_ms: i64,
    ) -> StoreResult<()>;
    /// Every registered dependency, ordered by plugin and target.
    async fn registered_dependencies(&self) -> StoreResult<Vec<Edge>>;
}

/// Installations of catalog plugins per tenant.
#[async_trait]
pub trait InstallationStore: Send + Sync {
    /// Inserts installations, each with its first credential and signing secret, all in one
    /// transaction (all or none); [`StoreError::Duplicate`] if one of the plugins is already
    /// installed.
    async fn install(&self, installations: &[NewInstallation]) -> StoreResult<()>;
    /// One installation.
    async fn installation(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
    ) -> StoreResult<Option<Installation>>;
    /// All installations of a tenant, ordered by plugin id.
    async fn installations(&self, tenant_id: TenantId) -> StoreResult<Vec<Installation>>;
    /// Sets the state of an installation if it is still in `from` (optimistic check), telling
    /// registry watchers its services changed visibility; false if it is absent or was changed
    /// concurrently.
    async fn set_installation_state(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
        from: InstallationState,
        to: InstallationState,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Applies `update` to an installation; false if it is absent.
    async fn update_installation(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
        update: &InstallationUpdate,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Removes installations, in the order given, with their credentials and services, all in
    /// one transaction, telling registry watchers; false (and nothing removed) if one is absent.
    async fn uninstall(
        &self,
        tenant_id: TenantId,
        plugin_ids: &[PluginId],
        now_ms: i64,
    ) -> StoreResult<bool>;
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
    /// Stores a shell credential of an existing tenant.
    async fn add_shell_credential(&self, credential: &ShellCredentialRecord) -> StoreResult<()>;
    /// A tenant's shell credentials, oldest first.
    async fn shell_credentials(
        &self,
        tenant_id: TenantId,
    ) -> StoreResult<Vec<ShellCredentialRecord>>;
    /// Deletes a tenant's shell credential; false if the tenant has no such credential.
    async fn revoke_shell_credential(
        &self,
        tenant_id: TenantId,
        id: &CredentialId,
    ) -> StoreResult<bool>;
    /// A shell credential and its tenant, for authentication.
    async fn shell_credential_with_tenant(
        &self,
        id: &CredentialId,
    ) -> StoreResult<Option<(ShellCredentialRecord, Tenant)>>;
    /// An installation's signing secrets still valid at `now_ms` (the current one and those in
    /// their overlap window), newest first.
    async fn signing_secrets(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
        now_ms: i64,
    ) -> StoreResult<Vec<StoredSigningSecret>>;
    /// Stores `secret` as the installation's current one unless it has one already (hubs that
    /// race to create it agree on one); [`StoreError::MissingReference`] if it is not installed.
    async fn ensure_signing_secret(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
        secret: &SigningSecret,
        now_ms: i64,
    ) -> StoreResult<()>;
    /// Makes `secret` the current one; the previous current one stays valid until
    /// `overlap_until_ms`, and secrets already past their window are deleted. False if the
    /// installation does not exist.
    async fn rotate_signing_secret(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
        secret: &SigningSecret,
        now_ms: i64,
        overlap_until_ms: i64,
    ) -> StoreResult<bool>;
}

/// One replica being registered or refreshed.
#[derive(Debug, Clone)]
pub struct InstanceRegistration {
    /// Replica name.
    pub id: InstanceId,
    /// New URL; `None` keeps the replica's previous URL, or uses `fallback_base_url` when new.
    pub base_url: Option<BaseUrl>,
    /// URL of a new replica registered without one (the installation's).
    pub fallback_base_url: BaseUrl,
    /// The replica's own version.
    pub version: Option<Version>,
    /// Free-form metadata (replaced).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The status it starts with: HEALTHY when the plugin registers it itself, UNKNOWN when
    /// the hub registers it for the plugin (activation, a new `baseUrl`).
    pub initial: plexhub_core::registry::ServiceStatus,
}

/// A service registration (the seed's register call, or activation of an installation).
#[derive(Debug, Clone)]
pub struct ServiceRegistration {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Owning plugin (must be installed).
    pub plugin_id: PluginId,
    /// Service name.
    pub name: ServiceName,
    /// Service version.
    pub version: Version,
    /// Free-form metadata (replaced).
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `Some` replaces the endpoint list; `None` keeps the previous one.
    pub endpoints: Option<Vec<EndpointSpec>>,
    /// The replica registered with it.
    pub instance: InstanceRegistration,
}

/// Result of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// Stored; the service id is stable across re-registrations.
    Done {
        /// The service id.
        service_id: String,
    },
    /// Another plugin of the tenant owns the name; nothing changed.
    OwnedBy(PluginId),
    /// The service does not exist (instance registration needs a registered service).
    NoSuchService,
}

/// What happened to a service, as told to watchers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryEventKind {
    /// First registration.
    Registered,
    /// Re-registration, instance change, or another change of the installation (its base URL).
    Updated,
    /// The effective status of an instance changed.
    HealthChanged,
    /// Removed.
    Deregistered,
    /// Its plugin's installation became ACTIVE: the service is discoverable and callable.
    Activated,
    /// Its plugin's installation left ACTIVE: the service is hidden from discovery and calls.
    Deactivated,
    /// Its plugin was uninstalled: the service is gone with it.
    Uninstalled,
}

impl RegistryEventKind {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Updated => "updated",
            Self::HealthChanged => "health_changed",
            Self::Deregistered => "deregistered",
            Self::Activated => "activated",
            Self::Deactivated => "deactivated",
            Self::Uninstalled => "uninstalled",
        }
    }

    /// Whether the service no longer exists after this change.
    pub fn removes(self) -> bool {
        matches!(self, Self::Deregistered | Self::Uninstalled)
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Registered,
            Self::Updated,
            Self::HealthChanged,
            Self::Deregistered,
            Self::Activated,
            Self::Deactivated,
            Self::Uninstalled,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// One entry of a tenant's registry change log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryEvent {
    /// Per-tenant, strictly increasing.
    pub seq: i64,
    /// What happened.
    pub kind: RegistryEventKind,
    /// Which service.
    pub service_name: ServiceName,
    /// Its plugin.
    pub plugin_id: PluginId,
}

/// Answer to "what changed since event N".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsSince {
    /// The events after N, oldest first (possibly none).
    Events(Vec<RegistryEvent>),
    /// N is too old (pruned) or unknown: re-list, then follow from `current`.
    Reset {
        /// The tenant's latest event id.
        current: i64,
    },
}

/// The service registry.
#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// Registers (or re-registers) a service and one replica, in one transaction: the service
    /// row, the endpoint list when given, the replica (revived to HEALTHY) and a change event.
    async fn register_service(
        &self,
        registration: &ServiceRegistration,
        now_ms: i64,
    ) -> StoreResult<Registered>;
    /// Registers or refreshes one replica of an existing service owned by `plugin_id`.
    async fn upsert_instance(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
        name: &ServiceName,
        instance: &InstanceRegistration,
        now_ms: i64,
    ) -> StoreResult<Registered>;
    /// Removes one replica; false if absent.
    async fn remove_instance(
        &self,
        tenant_id: TenantId,
        name: &ServiceName,
        instance: &InstanceId,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Removes a service with its endpoints and replicas; false if absent.
    async fn deregister_service(
        &self,
        tenant_id: TenantId,
        name: &ServiceName,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Records a heartbeat (`reported` HEALTHY) or a health report for the replicas of a
    /// service: one replica, or all of them when `instance` is `None`. Returns how many changed.
    async fn record_health(
        &self,
        tenant_id: TenantId,
        service_id: &str,
        instance: Option<&InstanceId>,
        reported: ServiceStatus,
        reason: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<u64>;
    /// One service by name, with the state of its plugin's installation.
    async fn service_by_name(
        &self,
        tenant_id: TenantId,
        name: &ServiceName,
    ) -> StoreResult<Option<(Service, InstallationState)>>;
    /// One service by id.
    async fn service_by_id(
        &self,
        tenant_id: TenantId,
        service_id: &str,
    ) -> StoreResult<Option<(Service, InstallationState)>>;
    /// Every service of a tenant, ordered by name, with installation states.
    async fn services(&self, tenant_id: TenantId)
    -> StoreResult<Vec<(Service, InstallationState)>>;
    /// The tenant's change log after `after`, at most `limit` entries.
    async fn registry_events_since(
        &self,
        tenant_id: TenantId,
        after: i64,
        limit: u32,
    ) -> StoreResult<EventsSince>;
    /// Announces every replica whose effective status changed since last announced, exactly
    /// once even when several hubs sweep at the same time. Returns the services affected.
    async fn sweep_health(
        &self,
        policy: &HealthPolicy,
        now_ms: i64,
    ) -> StoreResult<Vec<(TenantId, ServiceName)>>;
    /// Drops change-log entries older than `before_ms`; watchers behind them get a reset.
    async fn prune_registry_events(&self, before_ms: i64) -> StoreResult<u64>;
}

/// A write of one shared-data entry.
#[derive(Debug, Clone)]
pub struct DataWrite {
    /// Namespace.
    pub namespace: Namespace,
    /// Key.
    pub key: DataKey,
    /// The value (never `null`).
    pub value: serde_json::Value,
    /// The writing plugin, which becomes (or must already be) the owner.
    pub owner: PluginId,
    /// Lifetime from now; `None` = no expiry (and removes an existing one).
    pub ttl_ms: Option<i64>,
    /// Condition on the current state.
    pub precondition: Precondition,
}

/// A removal of one shared-data entry.
#[derive(Debug, Clone)]
pub struct DataDelete {
    /// Namespace.
    pub namespace: Namespace,
    /// Key.
    pub key: DataKey,
    /// The acting plugin, which must own the entry; `None` for the admin.
    pub actor: Option<PluginId>,
    /// Only at this revision.
    pub if_revision: Option<i64>,
}

/// One operation of a data transaction.
#[derive(Debug, Clone)]
pub enum DataOp {
    /// Write an entry.
    Set(DataWrite),
    /// Remove an entry (it must exist).
    Delete(DataDelete),
    /// Require an entry to exist (at a revision, when given), changing nothing.
    Check {
        /// Namespace.
        namespace: Namespace,
        /// Key.
        key: DataKey,
        /// Required revision.
        if_revision: Option<i64>,
    },
}

/// What a shared-data operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataOutcome {
    /// Applied; the key's revision afterwards (for a delete, the removed revision).
    Done {
        /// Revision.
        revision: i64,
    },
    /// The key does not exist (or has expired).
    Missing,
    /// Another plugin owns the key; nothing changed.
    NotOwner(PluginId),
    /// The precondition does not hold; `current` is the key's revision, if it exists.
    PreconditionFailed {
        /// Current revision.
        current: Option<i64>,
    },
}

/// A shared-data change, as told to watchers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataEvent {
    /// Per-tenant, strictly increasing.
    pub seq: i64,
    /// `set`, `deleted` or `expired`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: Namespace,
    /// Key.
    pub key: DataKey,
    /// Revision written, removed or expired.
    pub revision: i64,
}

/// Answer to "what changed in shared data since event N".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataEventsSince {
    /// The events after N, oldest first.
    Events(Vec<DataEvent>),
    /// N is too old or unknown: re-read, then follow from `current`.
    Reset {
        /// The tenant's latest data event id.
        current: i64,
    },
}

/// Filters of a key listing.
#[derive(Debug, Clone, Default)]
pub struct DataListing {
    /// Only keys starting with this.
    pub prefix: String,
    /// Only keys after this one (paging).
    pub after: String,
    /// Only entries of this owner.
    pub owner: Option<PluginId>,
    /// At most this many.
    pub limit: u32,
}

/// Shared data.
#[async_trait]
pub trait DataStore: Send + Sync {
    /// Writes one entry (owner and precondition checked atomically) and logs the change.
    async fn put_data(
        &self,
        tenant_id: TenantId,
        write: &DataWrite,
        now_ms: i64,
    ) -> StoreResult<DataOutcome>;
    /// Writes several entries in one transaction (group commit), each with its own outcome; a
    /// database error fails the whole batch and changes nothing.
    async fn put_data_batch(
        &self,
        writes: &[(TenantId, DataWrite)],
        now_ms: i64,
    ) -> StoreResult<Vec<DataOutcome>>;
    /// The live entry, if any.
    async fn get_data(
        &self,
        tenant_id: TenantId,
        namespace: &Namespace,
        key: &DataKey,
        now_ms: i64,
    ) -> StoreResult<Option<Entry>>;
    /// Removes one entry (owner and revision checked atomically) and logs the change.
    async fn delete_data(
        &self,
        tenant_id: TenantId,
        delete: &DataDelete,
        now_ms: i64,
    ) -> StoreResult<DataOutcome>;
    /// Live entries of a namespace, by key.
    async fn list_data(
        &self,
        tenant_id: TenantId,
        namespace: &Namespace,
        listing: &DataListing,
        now_ms: i64,
    ) -> StoreResult<Vec<Entry>>;
    /// Applies all operations or none; on failure, the index of the first failing operation
    /// and why.
    async fn data_transaction(
        &self,
        tenant_id: TenantId,
        ops: &[DataOp],
        now_ms: i64,
    ) -> StoreResult<Result<Vec<i64>, (usize, DataOutcome)>>;
    /// The tenant's data change log after `after`.
    async fn data_events_since(
        &self,
        tenant_id: TenantId,
        after: i64,
        limit: u32,
    ) -> StoreResult<DataEventsSince>;
    /// Deletes expired entries (each exactly once across hubs) and logs `expired`; returns them.
    async fn sweep_expired_data(
        &self,
        now_ms: i64,
    ) -> StoreResult<Vec<(TenantId, Namespace, DataKey)>>;
    /// Drops data change-log entries older than `before_ms`.
    async fn prune_data_events(&self, before_ms: i64) -> StoreResult<u64>;
}

/// One gateway call as audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// The tenant.
    pub tenant_id: TenantId,
    /// When the call was answered, epoch milliseconds.
    pub at_ms: i64,
    /// The calling plugin. (The names are shared: a hub makes each once per route, not per call.)
    pub caller: Arc<str>,
    /// The plugin that owns the service, when it was resolved.
    pub target: Option<Arc<str>>,
    /// The service asked for.
    pub service: Arc<str>,
    /// HTTP method.
    pub method: Arc<str>,
    /// The path asked for on the service (without query).
    pub path: String,
    /// The matched endpoint (`GET /contacts/:id`), when one matched.
    pub endpoint: Option<Arc<str>>,
    /// The status the caller got.
    pub status: u16,
    /// Time spent, microseconds.
    pub duration_us: i64,
    /// The request id.
    pub request_id: String,
}

/// Filters of an audit query; every one is optional.
#[derive(Debug, Clone, Default)]
pub struct CallQuery {
    /// Only this tenant.
    pub tenant_id: Option<TenantId>,
    /// Only calls of this plugin.
    pub caller: Option<String>,
    /// Only calls to this plugin.
    pub target: Option<String>,
    /// Only statuses in `[from, to]`.
    pub status: Option<(u16, u16)>,
    /// Only calls at or after this time (epoch ms).
    pub since_ms: Option<i64>,
    /// Only calls listed after this one (the last of the previous page).
    pub after: Option<CallCursor>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// A position in the audit log, which is listed newest first and, within a millisecond, by
/// request id (descending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallCursor {
    /// When the call was answered, epoch ms.
    pub at_ms: i64,
    /// Its request id.
    pub request_id: String,
}

/// The gateway's audit log.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends calls, all or none (one statement).
    async fn record_calls(&self, calls: &[CallRecord]) -> StoreResult<()>;
    /// Calls matching `query`, newest first.
    async fn calls(&self, query: &CallQuery) -> StoreResult<Vec<CallRecord>>;
    /// Deletes the calls older than `before_ms`: calls are stored together, so a row of them
    /// goes once its latest is older. Returns how many rows went.
    async fn prune_calls(&self, before_ms: i64) -> StoreResult<u64>;
}

/// An event to store: the hub filled `source`, `time`, the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The CloudEvents `id` (unique per source).
    pub event_id: String,
    /// The publishing plugin, or `plexhub`.
    pub source: String,
    /// The event type (topic).
    pub event_type: String,
    /// Events of one key are delivered in order within a subscription; events without one (or
    /// with an empty one) are not ordered.
    pub partition_key: Option<String>,
    /// Publication time, epoch ms.
    pub published_at_ms: i64,
    /// The whole CloudEvent as JSON.
    pub envelope: String,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its position in the tenant's log (1, 2, …).
    pub seq: i64,
    /// The event.
    pub event: NewEvent,
}

/// What publishing one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Its position in the tenant's log.
    pub seq: i64,
    /// The same source had published this id already: nothing was stored again.
    pub duplicate: bool,
    /// Deliveries queued for it.
    pub deliveries: u32,
}

/// A subscription of an installation, as declared in its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionSpec {
    /// Topic pattern.
    pub pattern: String,
    /// Path on the installation's base URL.
    pub endpoint: String,
    /// Attempts before the dead letters.
    pub max_attempts: u32,
}

/// A subscription with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Id (UUID).
    pub id: String,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The subscribing plugin.
    pub plugin_id: String,
    /// What it declared.
    pub spec: SubscriptionSpec,
    /// Creation time, epoch ms.
    pub created_at_ms: i64,
    /// Events acknowledged.
    pub delivered: i64,
    /// Events sent to the dead letters.
    pub dead_lettered: i64,
    /// Deliveries waiting (its lag).
    pub pending: i64,
}

/// A delivery a hub claimed: everything needed to POST it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The subscription.
    pub subscription_id: String,
    /// The event's position.
    pub seq: i64,
    /// The event's partition key (`""` without one): its completion hands the key over.
    pub partition_key: String,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The tenant's slug.
    pub tenant_slug: String,
    /// The subscribing plugin.
    pub plugin_id: String,
    /// Its installation's base URL.
    pub base_url: String,
    /// The subscription's endpoint.
    pub endpoint: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The subscription's limit.
    pub max_attempts: u32,
    /// The publisher (`source`).
    pub source: String,
    /// The event's id.
    pub event_id: String,
    /// When it was published, epoch ms.
    pub published_at_ms: i64,
    /// The CloudEvent JSON.
    pub envelope: String,
    /// The claim's token: a completion counts only while the claim is this hub's.
    pub lease_token: String,
}

/// How a claimed delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// 2xx: done.
    Acknowledged,
    /// Failed; try again at `retry_at_ms`.
    Retry {
        /// When.
        retry_at_ms: i64,
        /// Why it failed.
        error: String,
    },
    /// Failed for the last time: to the dead letters.
    DeadLetter {
        /// Why it failed.
        error: String,
    },
}

/// An event a subscription could not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Id (UUID).
    pub id: String,
    /// The subscription.
    pub subscription_id: String,
    /// The subscribing plugin.
    pub plugin_id: String,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The event.
    pub event: StoredEvent,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure.
    pub last_error: String,
    /// When it was given up, epoch ms.
    pub failed_at_ms: i64,
}

/// Where one subscription's deliveries go, for a bus that delivers outside the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionTarget {
    /// The subscription's id.
    pub id: String,
    /// The tenant.
    pub tenant_id: TenantId,
    /// The tenant's slug.
    pub tenant_slug: String,
    /// The subscribing plugin.
    pub plugin_id: String,
    /// Its installation's base URL.
    pub base_url: String,
    /// What it declared.
    pub spec: SubscriptionSpec,
    /// Whether its installation is ACTIVE (only then are events delivered to it).
    pub active: bool,
}

/// Outcomes of one subscription's deliveries to add to its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeCount {
    /// The subscription.
    pub subscription_id: String,
    /// Events acknowledged.
    pub delivered: i64,
    /// Events sent to the dead letters.
    pub dead_lettered: i64,
}

/// The events port: the log, subscriptions, the delivery queue, dead letters. Two
/// implementations: every SQL [`Store`] (tables beside the rest) and
/// [`jetstream::JetStreamBus`] (NATS JetStream; subscriptions and their counters stay in the
/// database).
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores events in the tenant's log (an id its source already published is skipped and
    /// answered with the first one's position) and queues a delivery for each subscription of
    /// an ACTIVE installation whose pattern matches, all in one transaction.
    async fn publish_events(
        &self,
        tenant_id: TenantId,
        events: &[NewEvent],
        now_ms: i64,
    ) -> StoreResult<Vec<Published>>;
    /// Sets an installation's subscriptions to `specs` (kept ones keep their id and queue).
    async fn replace_subscriptions(
        &self,
        tenant_id: TenantId,
        plugin_id: &PluginId,
        specs: &[SubscriptionSpec],
        now_ms: i64,
    ) -> StoreResult<()>;
    /// A tenant's subscriptions (every tenant's with `None`), with their lag.
    async fn subscriptions(&self, tenant_id: Option<TenantId>) -> StoreResult<Vec<Subscription>>;
    /// Claims up to `limit` due deliveries for `lease_ms` (none another hub holds; per
    /// subscription and partition key only the oldest, so each key stays in order).
    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records how claimed deliveries ended, in one transaction. A keyed delivery that ends
    /// hands its key to the next delivery of the key; with `lease_next_ms` that delivery is
    /// claimed at once for that long and returned (the caller sends it without claiming again),
    /// else it is due for any claimer.
    async fn complete_deliveries(
        &self,
        outcomes: &[(ClaimedDelivery, DeliveryOutcome)],
        now_ms: i64,
        lease_next_ms: Option<i64>,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Dead letters of a tenant, optionally of one subscription, oldest first.
    async fn dead_letters(
        &self,
        tenant_id: TenantId,
        subscription_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeadLetter>>;
    /// One dead letter of a tenant.
    async fn dead_letter(&self, tenant_id: TenantId, id: &str) -> StoreResult<Option<DeadLetter>>;
    /// Queues a dead letter's event again for its subscription (attempts start over); `false`
    /// when there is no such dead letter in the tenant.
    async fn retry_dead_letter(
        &self,
        tenant_id: TenantId,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<bool>;
    /// Deletes a dead letter; `false` when there is none.
    async fn drop_dead_letter(&self, tenant_id: TenantId, id: &str) -> StoreResult<bool>;
    /// The tenant's events after position `after`, oldest first.
    async fn events_since(
        &self,
        tenant_id: TenantId,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>>;
    /// The position of the tenant's newest event (0 before the first).
    async fn latest_event_seq(&self, tenant_id: TenantId) -> StoreResult<i64>;
    /// The position just before the tenant's first retained event published at `at_ms` or
    /// later (reading after it replays from that time); the newest position when there is none.
    async fn event_seq_at(&self, tenant_id: TenantId, at_ms: i64) -> StoreResult<i64>;
    /// Deletes events published before `before_ms` that no delivery or dead letter needs.
    async fn prune_events(&self, before_ms: i64) -> StoreResult<u64>;
    /// Every subscription with where its deliveries go (every tenant's).
    async fn subscription_targets(&self) -> StoreResult<Vec<SubscriptionTarget>>;
    /// Adds delivery outcomes counted outside the database to the subscriptions' counters.
    async fn count_outcomes(&self, counts: &[OutcomeCount]) -> StoreResult<()>;
    /// Drops what the bus keeps of a deleted tenant outside the database; the SQL bus's rows
    /// went with the tenant's (`ON DELETE CASCADE`).
    async fn forget_tenant(&self, _tenant_id: TenantId) -> StoreResult<()> {
        Ok(())
    }
    /// Resolves once deliveries may be claimable that the change feed did not announce (a bus
    /// that receives them from elsewhere); the SQL bus learns of them through the feed only.
    async fn deliveries_waiting(&self) {
        std::future::pending::<()>().await;
    }
}

/// A signed-in session of the web dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    /// SHA-256 (hex) of the cookie's value; the value itself is never stored.
    pub id_hash: String,
    /// The token every form and htmx request of the session must carry.
    pub csrf_token: String,
    /// Sign-in time, epoch ms.
    pub created_at_ms: i64,
    /// End of validity, epoch ms.
    pub expires_at_ms: i64,
}

/// The dashboard's sessions, shared by every hub on the database.
#[async_trait]
pub trait UiSessionStore: Send + Sync {
    /// Stores a new session, dropping those expired by `now_ms`.
    async fn create_ui_session(&self, session: &UiSession, now_ms: i64) -> StoreResult<()>;
    /// The session whose cookie hashes to `id_hash`, unless it expired by `now_ms`.
    async fn ui_session(&self, id_hash: &str, now_ms: i64) -> StoreResult<Option<UiSession>>;
    /// Ends a session; whether it existed.
    async fn delete_ui_session(&self, id_hash: &str) -> StoreResult<bool>;
}

/// Everything the hub stores, behind one handle.
#[async_trait]
pub trait Store:
    TenantStore
    + CatalogStore
    + InstallationStore
    + CredentialStore
    + RegistryStore
    + DataStore
    + AuditStore
    + EventStore
    + UiSessionStore
{
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
