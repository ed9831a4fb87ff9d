//! Installations' HMAC signing secrets on both backends: one current secret per installation
//! even when hubs race to create it, rotation with an overlap window, and removal with the
//! installation.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use plexhub_core::ids::PluginId;
use plexhub_core::signing::SigningSecret;
use plexhub_store::Store;

mod common;

use common::{NOW, tenant_with_plugins};

fn crm() -> PluginId {
    PluginId::parse("plugin-crm").unwrap()
}

fn ids(secrets: &[plexhub_store::StoredSigningSecret]) -> Vec<String> {
    secrets
        .iter()
        .map(|stored| stored.secret.key_id().to_owned())
        .collect()
}

async fn secrets_rotate_with_an_overlap(store: Arc<dyn Store>) {
    let tenant = tenant_with_plugins(&store, "acme").await;
    let first = store.signing_secrets(tenant, &crm(), NOW).await.unwrap();
    assert_eq!(first.len(), 1, "an installation starts with one secret");
    assert_eq!(first[0].expires_at_ms, None);

    // Hubs racing to create a secret (an installation from before secrets existed) agree.
    let racing = SigningSecret::generate();
    store
        .ensure_signing_secret(tenant, &crm(), &racing, NOW)
        .await
        .unwrap();
    assert_eq!(
        store.signing_secrets(tenant, &crm(), NOW).await.unwrap(),
        first
    );

    let next = SigningSecret::generate();
    assert!(
        store
            .rotate_signing_secret(tenant, &crm(), &next, NOW + 10, NOW + 1_000)
            .await
            .unwrap()
    );
    let during = store
        .signing_secrets(tenant, &crm(), NOW + 500)
        .await
        .unwrap();
    assert_eq!(
        ids(&during),
        vec![
            next.key_id().to_owned(),
            first[0].secret.key_id().to_owned()
        ],
        "newest first, the old one still valid during the overlap"
    );
    assert_eq!(during[0].secret, next);
    assert_eq!(during[1].expires_at_ms, Some(NOW + 1_000));
    let after = store
        .signing_secrets(tenant, &crm(), NOW + 1_000)
        .await
        .unwrap();
    assert_eq!(ids(&after), vec![next.key_id().to_owned()]);

    // Another installation's secrets are its own.
    let analytics = PluginId::parse("plugin-analytics").unwrap();
    let theirs = store
        .signing_secrets(tenant, &analytics, NOW)
        .await
        .unwrap();
    assert_eq!(theirs.len(), 1);
    assert_ne!(theirs[0].secret, next);

    let absent = PluginId::parse("plugin-absent").unwrap();
    assert!(
        !store
            .rotate_signing_secret(tenant, &absent, &SigningSecret::generate(), NOW, NOW)
            .await
            .unwrap()
    );
    assert!(store.uninstall(tenant, &[crm()], NOW).await.unwrap());
    assert!(
        store
            .signing_secrets(tenant, &crm(), NOW)
            .await
            .unwrap()
            .is_empty()
    );
}

common::on_both_backends!(#[tokio::test] secrets_rotate_with_an_overlap_on_sqlite, secrets_rotate_with_an_overlap_on_postgres => secrets_rotate_with_an_overlap);
