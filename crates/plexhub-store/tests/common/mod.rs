//! Shared by the store's integration tests: a store on SQLite (temp dir) or on a fresh
//! PostgreSQL database, and a tenant with CRM and Analytics installed.

#![allow(clippy::unwrap_used, dead_code)]

use std::future::Future;
use std::sync::Arc;

use plexhub_core::credential::IssuedCredential;
use plexhub_core::ids::PluginId;
use plexhub_core::installation::{BaseUrl, Installation, InstallationState};
use plexhub_core::signing::SigningSecret;
use plexhub_core::tenant::{Tenant, TenantId, TenantSlug, TenantStatus};
use plexhub_core::version::Version;
use plexhub_store::{CredentialRecord, NewInstallation, PublishedVersion, Store};
use sqlx::Connection as _;

/// The tests' clock.
pub const NOW: i64 = 1_800_000_000_000;

/// A tenant with `plugin-crm` and `plugin-analytics` installed and ACTIVE.
pub async fn tenant_with_plugins(store: &Arc<dyn Store>, slug: &str) -> TenantId {
    let tenant = Tenant {
        id: TenantId::new_random(),
        slug: TenantSlug::parse(slug).unwrap(),
        name: slug.to_owned(),
        status: TenantStatus::Active,
        created_at_ms: NOW,
        rate_limits: Default::default(),
    };
    store.create_tenant(&tenant).await.unwrap();
    for plugin in ["plugin-crm", "plugin-analytics"] {
        let plugin_id = PluginId::parse(plugin).unwrap();
        let version = Version::parse("1.0.0").unwrap();
        let manifest = serde_json::json!({"id": plugin, "name": plugin, "version": "1.0.0"});
        let published = published(&plugin_id, &version, manifest);
        store.publish_version(&published, "admin").await.unwrap();
        let issued = IssuedCredential::generate();
        let installation = Installation {
            tenant_id: tenant.id,
            plugin_id: plugin_id.clone(),
            version,
            state: InstallationState::Active,
            base_url: Some(BaseUrl::parse("http://127.0.0.1:3100").unwrap()),
            allowed_origins: vec![],
            grants: vec![],
            installed_at_ms: NOW,
            updated_at_ms: NOW,
            signing: None,
        };
        let credential = CredentialRecord {
            id: issued.id,
            tenant_id: tenant.id,
            plugin_id,
            hash: issued.hash,
            created_at_ms: NOW,
            last_used_at_ms: None,
        };
        store
            .install(&[NewInstallation {
                installation,
                credential,
                signing_secret: SigningSecret::generate(),
            }])
            .await
            .unwrap();
    }
    tenant.id
}

/// A published (unyanked) catalog version with `manifest`.
pub fn published(
    plugin_id: &PluginId,
    version: &Version,
    manifest: serde_json::Value,
) -> PublishedVersion {
    PublishedVersion {
        plugin_id: plugin_id.clone(),
        version: version.clone(),
        digest: plexhub_core::catalog::manifest_digest(&manifest),
        manifest,
        published_at_ms: NOW,
        standing: plexhub_core::catalog::Standing::PUBLISHED,
        notes: Default::default(),
    }
}

/// Runs `test` on a store in a fresh SQLite file.
pub async fn on_sqlite<F: Future<Output = ()>>(test: impl FnOnce(Arc<dyn Store>) -> F) {
    on_sqlite_at(|store, _| test(store)).await;
}

/// [`on_sqlite`], also giving the test the database's URL.
pub async fn on_sqlite_at<F: Future<Output = ()>>(test: impl FnOnce(Arc<dyn Store>, String) -> F) {
    let dir = std::env::temp_dir().join(format!("plexhub-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("hub.db").display());
    let store = plexhub_store::open(&url).await.unwrap();
    test(store, url).await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `test` on a store in a fresh PostgreSQL database, dropped afterwards; skipped (with a
/// note) without `PLEXHUB_TEST_DATABASE_URL`, except under CI.
pub async fn on_postgres<F: Future<Output = ()>>(test: impl FnOnce(Arc<dyn Store>) -> F) {
    on_postgres_at(|store, _| test(store)).await;
}

/// [`on_postgres`], also giving the test the database's URL.
pub async fn on_postgres_at<F: Future<Output = ()>>(
    test: impl FnOnce(Arc<dyn Store>, String) -> F,
) {
    on_fresh_postgres_database(|url| async move {
        let store = plexhub_store::open(&url).await.unwrap();
        test(store, url).await;
    })
    .await;
}

/// Runs `test` with the URL of a fresh, empty PostgreSQL database (no migrations applied),
/// dropped afterwards; skipped like [`on_postgres`].
pub async fn on_fresh_postgres_database<F: Future<Output = ()>>(test: impl FnOnce(String) -> F) {
    let Some(admin_url) = postgres_url() else {
        return;
    };
    let name = format!("plexhub_store_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    test(format!("{base}/{name}")).await;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// `PLEXHUB_TEST_DATABASE_URL`; `None` with a note on a laptop, a panic under CI.
fn postgres_url() -> Option<String> {
    match std::env::var("PLEXHUB_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("PLEXHUB_TEST_DATABASE_URL must be set under CI")
        }
        _ => {
            eprintln!("SKIPPED: PLEXHUB_TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// Two tests running `$test` with the given test attribute: `$sqlite` on SQLite, `$postgres`
/// on a fresh PostgreSQL database (`=> at $test`: `$test` also takes the database's URL).
macro_rules! on_both_backends {
    (#[$attribute:meta] $sqlite:ident, $postgres:ident => $test:ident) => {
        common::on_both_backends!(@ #[$attribute] $sqlite, $postgres => $test, on_sqlite, on_postgres);
    };
    (#[$attribute:meta] $sqlite:ident, $postgres:ident => at $test:ident) => {
        common::on_both_backends!(@ #[$attribute] $sqlite, $postgres => $test, on_sqlite_at, on_postgres_at);
    };
    (@ #[$attribute:meta] $sqlite:ident, $postgres:ident => $test:ident, $run_sqlite:ident, $run_postgres:ident) => {
        #[$attribute]
        async fn $sqlite() {
            common::$run_sqlite($test).await;
        }

        #[$attribute]
        async fn $postgres() {
            common::$run_postgres($test).await;
        }
    };
}
pub(crate) use on_both_backends;
