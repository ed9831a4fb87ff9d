//! The gateway audit log on both backends: every field of a call comes back as recorded (its
//! names are stored once each and referred to by id), filters work, two hubs writing new names
//! at once agree on them, deleting a tenant deletes its calls, and the rows of a database
//! written before the names were encoded (migration 0014) are kept.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use plexhub_core::tenant::TenantId;
use plexhub_store::{CallQuery, CallRecord, Store};
use sqlx::Connection as _;

mod common;

use common::NOW;

fn call(
    tenant: TenantId,
    at_ms: i64,
    caller: &str,
    target: Option<&str>,
    status: u16,
) -> CallRecord {
    CallRecord {
        tenant_id: tenant,
        at_ms,
        caller: caller.into(),
        target: target.map(Into::into),
        service: format!("{}.contacts", target.unwrap_or("unknown")).into(),
        method: if status == 404 { "DELETE" } else { "GET" }.into(),
        path: format!("/contacts/{at_ms}"),
        endpoint: target.map(|_| "GET /contacts/:id".into()),
        status,
        duration_us: at_ms % 1000,
        request_id: format!("request-{at_ms}"),
    }
}

fn everything(limit: u32) -> CallQuery {
    CallQuery {
        limit,
        ..CallQuery::default()
    }
}

async fn calls_come_back_as_recorded(store: Arc<dyn Store>) {
    let acme = common::tenant_with_plugins(&store, "acme").await;
    let globex = common::tenant_with_plugins(&store, "globex").await;
    let first = vec![
        call(acme, NOW, "plugin-analytics", Some("plugin-crm"), 200),
        call(acme, NOW + 1, "plugin-analytics", None, 404),
        call(globex, NOW + 2, "plugin-crm", Some("plugin-analytics"), 503),
    ];
    store.record_calls(&first).await.unwrap();
    // A second batch meets known names and one new one.
    let second = vec![
        call(acme, NOW + 3, "plugin-analytics", Some("plugin-crm"), 201),
        call(globex, NOW + 4, "plugin-billing", Some("plugin-crm"), 200),
    ];
    store.record_calls(&second).await.unwrap();

    let mut all: Vec<CallRecord> = first.iter().chain(&second).cloned().collect();
    all.reverse();
    assert_eq!(
        store.calls(&everything(100)).await.unwrap(),
        all,
        "newest first, every field"
    );
    assert_eq!(store.calls(&everything(2)).await.unwrap(), all[..2]);

    let of_acme = store
        .calls(&CallQuery {
            tenant_id: Some(acme),
            ..everything(100)
        })
        .await
        .unwrap();
    let at: Vec<i64> = of_acme.iter().map(|call| call.at_ms).collect();
    assert_eq!(at, [NOW + 3, NOW + 1, NOW]);
    let to_crm = store
        .calls(&CallQuery {
            target: Some("plugin-crm".into()),
            caller: Some("plugin-billing".to_owned()),
            ..everything(100)
        })
        .await
        .unwrap();
    assert_eq!(to_crm, [second[1].clone()]);
    let failed = store
        .calls(&CallQuery {
            status: Some((500, 599)),
            since_ms: Some(NOW + 1),
            ..everything(100)
        })
        .await
        .unwrap();
    assert_eq!(failed, [first[2].clone()]);

    assert!(store.delete_tenant(acme).await.unwrap());
    let left: Vec<i64> = store
        .calls(&everything(100))
        .await
        .unwrap()
        .iter()
        .map(|call| call.at_ms)
        .collect();
    assert_eq!(left, [NOW + 4, NOW + 2], "acme's calls went with acme");
}

common::on_both_backends!(#[tokio::test] calls_come_back_as_recorded_on_sqlite, calls_come_back_as_recorded_on_postgres => calls_come_back_as_recorded);

/// A batch larger than any one insert statement (PostgreSQL writes 256 rows per statement,
/// SQLite 16) comes back whole and in order, and a second store on the same database (another
/// hub) reads what the first wrote.
async fn a_large_batch_comes_back_whole(store: Arc<dyn Store>, url: String) {
    let tenant = common::tenant_with_plugins(&store, "acme").await;
    let batch: Vec<CallRecord> = (0..601)
        .map(|n| {
            let target = (n % 3 != 0).then_some("plugin-crm");
            call(
                tenant,
                NOW + n,
                "plugin-analytics",
                target,
                200 + (n % 5) as u16,
            )
        })
        .collect();
    store.record_calls(&batch).await.unwrap();
    let mut expected = batch;
    expected.reverse();
    assert_eq!(store.calls(&everything(1000)).await.unwrap(), expected);
    let other = plexhub_store::open(&url).await.unwrap();
    assert_eq!(other.calls(&everything(1000)).await.unwrap(), expected);
}

common::on_both_backends!(#[tokio::test] a_large_batch_comes_back_whole_on_sqlite, a_large_batch_comes_back_whole_on_postgres => at a_large_batch_comes_back_whole);

/// A batch is written all or none: a row the database refuses (here a trigger refuses status
/// 599) after many rows were inserted fails the whole batch and leaves nothing of it, and the
/// next batch is written as usual.
async fn a_refused_row_fails_its_whole_batch(store: Arc<dyn Store>, url: String) {
    if url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_599 BEFORE INSERT ON gateway_calls WHEN NEW.status = 599 \
             BEGIN SELECT RAISE(FAIL, 'refused'); END",
        )
        .execute(&mut connection)
        .await
        .unwrap();
    } else {
        let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
        for statement in [
            "CREATE FUNCTION refuse_599() RETURNS trigger AS $$ BEGIN \
             IF NEW.status = 599 THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END \
             $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_599 BEFORE INSERT ON gateway_calls FOR EACH ROW \
             EXECUTE FUNCTION refuse_599()",
        ] {
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .unwrap();
        }
    }
    let tenant = common::tenant_with_plugins(&store, "acme").await;
    let batch: Vec<CallRecord> = (0..300)
        .map(|n| {
            let status = if n == 250 { 599 } else { 200 };
            call(
                tenant,
                NOW + n,
                "plugin-analytics",
                Some("plugin-crm"),
                status,
            )
        })
        .collect();
    assert!(
        store.record_calls(&batch).await.is_err(),
        "row 250 is refused"
    );
    assert_eq!(store.calls(&everything(1000)).await.unwrap(), []);
    let next = vec![call(tenant, NOW + 1000, "plugin-analytics", None, 200)];
    store.record_calls(&next).await.unwrap();
    assert_eq!(store.calls(&everything(1000)).await.unwrap(), next);
}

common::on_both_backends!(#[tokio::test] a_refused_row_fails_its_whole_batch_on_sqlite, a_refused_row_fails_its_whole_batch_on_postgres => at a_refused_row_fails_its_whole_batch);

/// Two stores on one database (two hubs) record batches full of names neither has met, at once.
async fn two_hubs_name_alike(store: Arc<dyn Store>, url: String) {
    let other = plexhub_store::open(&url).await.unwrap();
    let tenant = common::tenant_with_plugins(&store, "acme").await;
    let batch = |hub: i64| -> Vec<CallRecord> {
        (0..40)
            .map(|n| {
                let plugin = format!("plugin-{}", n % 20);
                call(tenant, NOW + hub * 1000 + n, &plugin, Some(&plugin), 200)
            })
            .collect()
    };
    let (one, two) = (batch(0), batch(1));
    let (left, right) = tokio::join!(store.record_calls(&one), other.record_calls(&two));
    left.unwrap();
    right.unwrap();
    let mut expected: Vec<CallRecord> = one.into_iter().chain(two).collect();
    expected.reverse();
    assert_eq!(store.calls(&everything(1000)).await.unwrap(), expected);
    assert_eq!(other.calls(&everything(1000)).await.unwrap(), expected);
}

#[tokio::test]
async fn two_hubs_name_alike_on_sqlite() {
    common::on_sqlite_at(two_hubs_name_alike).await;
}

#[tokio::test]
async fn two_hubs_name_alike_on_postgres() {
    common::on_postgres_at(two_hubs_name_alike).await;
}

/// Applies the migrations before 0014 to the empty database at `url`, writes a tenant and two
/// calls the way those versions did, then opens the store (which applies 0014).
async fn rows_written_before_encoding_are_kept(url: &str) {
    let dir = std::env::temp_dir().join(format!("plexhub-migrations-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < "0014" {
            std::fs::copy(&path, dir.join(&name)).unwrap();
        }
    }
    let before = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
    let tenant = TenantId::new_random();
    let statements = [
        format!(
            "INSERT INTO tenants (id, slug, name, status, created_at, updated_at) \
             VALUES ('{tenant}', 'acme', 'Acme', 'active', {NOW}, {NOW})"
        ),
        format!(
            "INSERT INTO gateway_calls (tenant_id, at, caller, target, service, method, path, \
             endpoint, status, duration_us, request_id) VALUES \
             ('{tenant}', {NOW}, 'plugin-analytics', 'plugin-crm', 'crm.contacts', 'GET', \
              '/contacts/1', 'GET /contacts/:id', 200, 812, 'request-1'), \
             ('{tenant}', {}, 'plugin-analytics', NULL, 'crm.missing', 'POST', '/x', NULL, 404, \
              90, 'request-2')",
            NOW + 1
        ),
    ];
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        before.run(&pool).await.unwrap();
        for statement in &statements {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        before.run(&mut connection).await.unwrap();
        for statement in &statements {
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .unwrap();
        }
    }
    std::fs::remove_dir_all(dir).unwrap();

    let store = plexhub_store::open(url).await.unwrap();
    let kept = store.calls(&everything(10)).await.unwrap();
    assert_eq!(
        kept,
        [
            CallRecord {
                tenant_id: tenant,
                at_ms: NOW + 1,
                caller: "plugin-analytics".into(),
                target: None,
                service: "crm.missing".into(),
                method: "POST".into(),
                path: "/x".to_owned(),
                endpoint: None,
                status: 404,
                duration_us: 90,
                request_id: "request-2".to_owned(),
            },
            CallRecord {
                tenant_id: tenant,
                at_ms: NOW,
                caller: "plugin-analytics".into(),
                target: Some("plugin-crm".into()),
                service: "crm.contacts".into(),
                method: "GET".into(),
                path: "/contacts/1".to_owned(),
                endpoint: Some("GET /contacts/:id".into()),
                status: 200,
                duration_us: 812,
                request_id: "request-1".to_owned(),
            },
        ]
    );
    // Names met again after the migration keep their ids; new ones follow.
    store
        .record_calls(&[call(
            tenant,
            NOW + 2,
            "plugin-analytics",
            Some("plugin-new"),
            200,
        )])
        .await
        .unwrap();
    assert_eq!(store.calls(&everything(10)).await.unwrap().len(), 3);
}

#[tokio::test]
async fn rows_written_before_encoding_are_kept_on_sqlite() {
    let dir = std::env::temp_dir().join(format!("plexhub-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    rows_written_before_encoding_are_kept(&format!("sqlite://{}", dir.join("hub.db").display()))
        .await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn rows_written_before_encoding_are_kept_on_postgres() {
    common::on_fresh_postgres_database(|url| async move {
        rows_written_before_encoding_are_kept(&url).await;
    })
    .await;
}
