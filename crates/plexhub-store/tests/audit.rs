//! The gateway audit log on both backends: every field of a call comes back as recorded (its
//! names are stored once each and referred to by id, its calls together, many per row), filters
//! and pages work across rows whose times overlap, two hubs writing new names at once agree on
//! them, deleting a tenant deletes its calls, and the calls of a database written before the
//! names were encoded (migration 0014) or before calls were stored together (0016) are kept.

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

/// A batch larger than one row (256 calls) comes back whole and in order, and a second store on
/// the same database (another hub) reads what the first wrote.
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

/// A batch is written all or none: a row the database refuses (here a trigger refuses a row
/// holding a call of status 599: the second of the batch's rows) after another row was inserted
/// fails the whole batch and leaves nothing of it, and the next batch is written as usual.
async fn a_refused_row_fails_its_whole_batch(store: Arc<dyn Store>, url: String) {
    if url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_599 BEFORE INSERT ON gateway_call_batches \
             WHEN EXISTS (SELECT 1 FROM json_each(NEW.calls) \
             WHERE json_extract(value, '$[8]') = 599) \
             BEGIN SELECT RAISE(FAIL, 'refused'); END",
        )
        .execute(&mut connection)
        .await
        .unwrap();
    } else {
        let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
        for statement in [
            "CREATE FUNCTION refuse_599() RETURNS trigger AS $$ BEGIN \
             IF EXISTS (SELECT 1 FROM json_array_elements(NEW.calls::json) e \
             WHERE (e->>8)::int = 599) THEN RAISE EXCEPTION 'refused'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_599 BEFORE INSERT ON gateway_call_batches FOR EACH ROW \
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
            let status = if n == 280 { 599 } else { 200 };
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
        "the row holding call 280 is refused"
    );
    assert_eq!(store.calls(&everything(1000)).await.unwrap(), []);
    let next = vec![call(tenant, NOW + 1000, "plugin-analytics", None, 200)];
    store.record_calls(&next).await.unwrap();
    assert_eq!(store.calls(&everything(1000)).await.unwrap(), next);
}

common::on_both_backends!(#[tokio::test] a_refused_row_fails_its_whole_batch_on_sqlite, a_refused_row_fails_its_whole_batch_on_postgres => at a_refused_row_fails_its_whole_batch);

/// Pages follow each other across rows whose times overlap, and across more rows of one time
/// than a listing reads at once (32): paging through the log with a cursor, with and without a
/// filter, lists every call once, in order (newest first, then by request id, descending).
async fn pages_follow_each_other_across_rows(store: Arc<dyn Store>) {
    let acme = common::tenant_with_plugins(&store, "acme").await;
    let globex = common::tenant_with_plugins(&store, "globex").await;
    let numbered = |tenant: TenantId, at_ms: i64, n: usize| CallRecord {
        request_id: format!("request-{n:03}"),
        ..call(tenant, at_ms, "plugin-analytics", Some("plugin-crm"), 200)
    };
    let mut all = Vec::new();
    // 40 rows whose latest call is at NOW + 50, each also holding an older call.
    for n in 0..40 {
        let tenant = if n % 3 == 0 { globex } else { acme };
        let batch = vec![
            numbered(tenant, NOW + 50, 2 * n),
            numbered(tenant, NOW + (n as i64 % 7), 2 * n + 1),
        ];
        store.record_calls(&batch).await.unwrap();
        all.extend(batch);
    }
    // Rows spanning that time, older and newer.
    for n in 0..30 {
        let tenant = if n % 2 == 0 { globex } else { acme };
        let batch: Vec<CallRecord> = (0..5)
            .map(|k| numbered(tenant, NOW + 20 * k + n as i64, 100 + 5 * n + k as usize))
            .collect();
        store.record_calls(&batch).await.unwrap();
        all.extend(batch);
    }
    all.sort_by(|a, b| (b.at_ms, &b.request_id).cmp(&(a.at_ms, &a.request_id)));

    for (tenant, limit) in [(None, 7), (Some(acme), 5), (Some(globex), 64), (None, 1000)] {
        let expected: Vec<&CallRecord> = all
            .iter()
            .filter(|call| tenant.is_none_or(|tenant| call.tenant_id == tenant))
            .collect();
        let mut listed = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .calls(&CallQuery {
                    tenant_id: tenant,
                    after: after.clone(),
                    ..everything(limit)
                })
                .await
                .unwrap();
            assert!(page.len() <= limit as usize);
            let Some(last) = page.last() else { break };
            after = Some(plexhub_store::CallCursor {
                at_ms: last.at_ms,
                request_id: last.request_id.clone(),
            });
            listed.extend(page);
        }
        let listed: Vec<&CallRecord> = listed.iter().collect();
        assert_eq!(listed, expected, "tenant {tenant:?}, {limit} per page");
    }
}

common::on_both_backends!(#[tokio::test] pages_follow_each_other_across_rows_on_sqlite, pages_follow_each_other_across_rows_on_postgres => pages_follow_each_other_across_rows);

/// A SQLite file another connection holds locked past the busy timeout is unavailable (the
/// audit log retries such a write without end), not a refusal; once the lock goes the write
/// succeeds.
#[tokio::test]
async fn a_locked_sqlite_file_is_unavailable() {
    common::on_sqlite_at(|store, url| async move {
        let tenant = common::tenant_with_plugins(&store, "acme").await;
        let calls = vec![call(tenant, NOW, "plugin-analytics", None, 200)];
        // The names get their ids first: what is tried under the lock is the row alone.
        store.record_calls(&calls).await.unwrap();
        let mut holder = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut holder)
            .await
            .unwrap();
        let error = store.record_calls(&calls).await.unwrap_err();
        assert!(error.is_unavailable(), "{error}");
        sqlx::query("COMMIT").execute(&mut holder).await.unwrap();
        store.record_calls(&calls).await.unwrap();
        assert_eq!(store.calls(&everything(10)).await.unwrap().len(), 2);
    })
    .await;
}

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
/// calls the way those versions did (one path holding a quote and a backslash), then opens the
/// store (which applies 0014 and 0016).
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
             ('{tenant}', {}, 'plugin-analytics', NULL, 'crm.missing', 'POST', '/x\"y\\z', \
              NULL, 404, 90, 'request-2')",
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
                path: "/x\"y\\z".to_owned(),
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
