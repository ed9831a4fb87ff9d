//! The web dashboard's sessions on both backends: found until they expire, never after, gone
//! once deleted, and expired ones dropped when a new session is stored.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use plexhub_store::{Store, UiSession};

mod common;

use common::NOW;

fn session(id_hash: &str, expires_at_ms: i64) -> UiSession {
    UiSession {
        id_hash: id_hash.to_owned(),
        csrf_token: format!("csrf-of-{id_hash}"),
        created_at_ms: NOW,
        expires_at_ms,
    }
}

async fn sessions_expire_and_end(store: Arc<dyn Store>) {
    let hour = 3_600_000;
    store
        .create_ui_session(&session("a", NOW + hour), NOW)
        .await
        .unwrap();
    let found = store.ui_session("a", NOW).await.unwrap().unwrap();
    assert_eq!(found, session("a", NOW + hour));
    assert!(
        store
            .ui_session("a", NOW + hour - 1)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store.ui_session("a", NOW + hour).await.unwrap().is_none(),
        "expired"
    );
    assert!(store.ui_session("unknown", NOW).await.unwrap().is_none());

    // Storing a session after "a" expired drops "a".
    store
        .create_ui_session(&session("b", NOW + 3 * hour), NOW + 2 * hour)
        .await
        .unwrap();
    assert!(
        !store.delete_ui_session("a").await.unwrap(),
        "already dropped"
    );
    assert!(store.delete_ui_session("b").await.unwrap());
    assert!(store.ui_session("b", NOW).await.unwrap().is_none());
}

common::on_both_backends!(#[tokio::test] sessions_expire_and_end_on_sqlite, sessions_expire_and_end_on_postgres => sessions_expire_and_end);
