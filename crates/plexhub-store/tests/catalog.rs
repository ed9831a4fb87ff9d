//! The catalog lifecycle on both backends: a transition is applied once even when several
//! writers race, each one is in the audit trail in order, and a second publication of a
//! version with other content is refused by digest.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use plexhub_core::catalog::{CatalogAction, Standing, VersionStatus};
use plexhub_core::ids::PluginId;
use plexhub_core::version::Version;
use plexhub_store::{PublishOutcome, Store, VersionChange, VersionNotes};

mod common;

use common::{NOW, published};

fn change(action: CatalogAction, from: Standing, actor: &str) -> VersionChange {
    VersionChange {
        plugin_id: PluginId::parse("plugin-crm").unwrap(),
        version: Version::parse("1.0.0").unwrap(),
        action,
        to: from.apply(action).unwrap(),
        from,
        notes: VersionNotes {
            yank_reason: (action == CatalogAction::Yank).then(|| "broken".to_owned()),
            ..VersionNotes::default()
        },
        actor: actor.to_owned(),
        reason: Some(format!("{action} by {actor}")),
        at_ms: NOW + 1,
    }
}

async fn transitions_apply_once_and_are_audited(store: Arc<dyn Store>) {
    let plugin = PluginId::parse("plugin-crm").unwrap();
    let version = Version::parse("1.0.0").unwrap();
    let manifest = serde_json::json!({"id": "plugin-crm", "version": "1.0.0"});
    let mut draft = published(&plugin, &version, manifest.clone());
    draft.standing.status = VersionStatus::Draft;
    assert_eq!(
        store.publish_version(&draft, "alice").await.unwrap(),
        PublishOutcome::Created
    );
    assert_eq!(
        store.publish_version(&draft, "alice").await.unwrap(),
        PublishOutcome::Unchanged
    );
    let other = published(
        &plugin,
        &version,
        serde_json::json!({"id": "plugin-crm", "version": "1.0.0", "name": "CRM"}),
    );
    assert_eq!(
        store.publish_version(&other, "alice").await.unwrap(),
        PublishOutcome::Conflict
    );

    let draft_standing = draft.standing;
    assert!(
        store
            .transition_version(&change(CatalogAction::Submit, draft_standing, "alice"))
            .await
            .unwrap()
    );
    // Eight reviewers approve at once: exactly one transition is applied and recorded.
    let pending = draft_standing.apply(CatalogAction::Submit).unwrap();
    let racers = (0..8).map(|n| {
        let store = store.clone();
        let change = change(CatalogAction::Approve, pending, &format!("reviewer-{n}"));
        tokio::spawn(async move { store.transition_version(&change).await.unwrap() })
    });
    let mut applied = 0;
    for racer in racers {
        applied += usize::from(racer.await.unwrap());
    }
    assert_eq!(applied, 1);
    assert!(
        store
            .transition_version(&change(CatalogAction::Yank, Standing::PUBLISHED, "bob"))
            .await
            .unwrap()
    );
    // A stale guard writes nothing.
    assert!(
        !store
            .transition_version(&change(CatalogAction::Yank, Standing::PUBLISHED, "bob"))
            .await
            .unwrap()
    );

    let stored = store
        .plugin_version(&plugin, &version)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.standing.status, VersionStatus::Published);
    assert!(stored.standing.yanked);
    assert_eq!(stored.notes.yank_reason.as_deref(), Some("broken"));
    assert_eq!(stored.digest, draft.digest);

    let trail = store.version_transitions(&plugin, &version).await.unwrap();
    let steps: Vec<(i64, &str, Option<VersionStatus>)> = trail
        .iter()
        .map(|t| (t.step, t.action.as_str(), t.from))
        .collect();
    assert_eq!(
        steps,
        vec![
            (1, "publish", None),
            (2, "submit", Some(VersionStatus::Draft)),
            (3, "approve", Some(VersionStatus::PendingReview)),
            (4, "yank", Some(VersionStatus::Published)),
        ]
    );
    assert_eq!(trail[0].actor, "alice");
    assert!(trail[2].actor.starts_with("reviewer-"));
    assert_eq!(trail[3].reason.as_deref(), Some("yank by bob"));
    assert!(trail[3].to.yanked);
}

common::on_both_backends!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    lifecycle_on_sqlite, lifecycle_on_postgres => transitions_apply_once_and_are_audited
);
