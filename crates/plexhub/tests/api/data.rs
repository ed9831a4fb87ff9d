//! Shared data: the seed's four routes (flat errors), revisions and compare-and-set, listing,
//! batch reads, transactions, expiry, watch, and two hubs racing on one counter.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Reply, TestApp, analytics, crm_at};

const SHARED: &str = "/api/plugin-gateway/shared-data";

#[track_caller]
fn assert_flat(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.body);
    assert_eq!(reply.body["code"], code, "body: {}", reply.body);
    assert!(
        reply.body["error"].is_string(),
        "flat error: {}",
        reply.body
    );
}

/// Tenant `acme` with CRM and Analytics installed; returns their tokens.
async fn plugins(app: &TestApp) -> (String, String) {
    app.create_tenant("acme").await;
    app.publish(&crm_at("1.0.0")).await;
    app.publish(&analytics()).await;
    let crm = app
        .install("acme", "plugin-crm", json!({"activate": true}))
        .await;
    let analytics = app.install("acme", "plugin-analytics", json!({})).await;
    (crm, analytics)
}

async fn set(app: &TestApp, token: &str, body: Value) -> Reply {
    app.send(Method::POST, SHARED, Some(token), &[], Some(&body))
        .await
}

async fn get(app: &TestApp, token: &str, namespace: &str, key: &str) -> Reply {
    app.as_plugin(token, Method::GET, &format!("{SHARED}/{namespace}/{key}"))
        .await
}

async fn the_seed_routes_enforce_owners_names_and_limits(app: TestApp) {
    let (crm, analytics) = plugins(&app).await;
    let stored = set(&app, &crm, json!({"namespace": "crm.cache", "key": "contact_count", "value": 1250, "ownerId": "plugin-crm", "ttl": 3600})).await;
    assert_eq!(
        stored.assert_status(201),
        &json!({"success": true, "message": "Data stored successfully", "revision": 1})
    );
    let read = get(&app, &analytics, "crm.cache", "contact_count").await;
    let entry = read.assert_status(200);
    assert_eq!(entry["namespace"], "crm.cache");
    assert_eq!(entry["key"], "contact_count");
    assert_eq!(entry["value"], 1250);
    assert_eq!(entry["ownerId"], "plugin-crm");
    assert_eq!(entry["revision"], 1);
    assert!(entry["expiresAt"].is_string());
    assert_eq!(read.headers["etag"], "\"1\"");

    // Only the owner writes or deletes; nothing changes when someone else tries.
    assert_flat(
        &set(
            &app,
            &analytics,
            json!({"namespace": "crm.cache", "key": "contact_count", "value": 0}),
        )
        .await,
        403,
        "NOT_OWNER",
    );
    assert_flat(
        &app.as_plugin(
            &analytics,
            Method::DELETE,
            &format!("{SHARED}/crm.cache/contact_count"),
        )
        .await,
        403,
        "NOT_OWNER",
    );
    assert_flat(
        &set(
            &app,
            &analytics,
            json!({"namespace": "a", "key": "b", "value": 1, "ownerId": "plugin-crm"}),
        )
        .await,
        403,
        "OWNER_MISMATCH",
    );
    assert_eq!(
        get(&app, &crm, "crm.cache", "contact_count")
            .await
            .assert_status(200)["value"],
        1250
    );

    // The admin acts for a named, installed plugin.
    let as_admin = |body: Value| {
        let app = &app;
        async move {
            app.send(
                Method::POST,
                SHARED,
                Some(ADMIN),
                &[("x-tenant-slug", "acme")],
                Some(&body),
            )
            .await
        }
    };
    assert_flat(
        &as_admin(json!({"namespace": "a", "key": "b", "value": 1})).await,
        400,
        "INVALID_BODY",
    );
    assert_flat(
        &as_admin(json!({"namespace": "a", "key": "b", "value": 1, "ownerId": "plugin-mail"}))
            .await,
        404,
        "NOT_INSTALLED",
    );
    as_admin(json!({"namespace": "analytics.state", "key": "last", "value": "x", "ownerId": "plugin-analytics"}))
        .await
        .assert_status(201);

    // Overwriting without ttl removes the expiry (the original's rule); "60" is a ttl too.
    set(
        &app,
        &crm,
        json!({"namespace": "crm.cache", "key": "contact_count", "value": 1251}),
    )
    .await
    .assert_status(201);
    let entry = get(&app, &crm, "crm.cache", "contact_count").await;
    assert_eq!(entry.assert_status(200)["expiresAt"], Value::Null);
    assert_eq!(entry.body["revision"], 2);
    set(
        &app,
        &crm,
        json!({"namespace": "crm.cache", "key": "ttl", "value": 1, "ttl": "60"}),
    )
    .await
    .assert_status(201);

    for (body, code) in [
        (
            json!({"namespace": ".", "key": "k", "value": 1}),
            "INVALID_NAME",
        ),
        (
            json!({"namespace": "n", "key": "a/b", "value": 1}),
            "INVALID_NAME",
        ),
        (
            json!({"namespace": "n", "key": "tab\tkey", "value": 1}),
            "INVALID_NAME",
        ),
        (
            json!({"namespace": "n".repeat(201), "key": "k", "value": 1}),
            "INVALID_NAME",
        ),
        (
            json!({"namespace": "n", "key": "k", "value": null}),
            "INVALID_BODY",
        ),
        (json!({"namespace": "n", "key": "k"}), "INVALID_BODY"),
        (
            json!({"namespace": "n", "key": "k", "value": 1, "ttl": 0}),
            "INVALID_BODY",
        ),
        (
            json!({"namespace": "n", "key": "k", "value": 1, "ttl": -5}),
            "INVALID_BODY",
        ),
        (
            json!({"namespace": "n", "key": "k", "value": 1, "ttl": "soon"}),
            "INVALID_BODY",
        ),
        (
            json!({"namespace": "n", "key": "k", "value": 1, "ttl": 31_536_001}),
            "INVALID_BODY",
        ),
    ] {
        assert_flat(&set(&app, &crm, body).await, 400, code);
    }
    let big = json!({"namespace": "n", "key": "big", "value": "x".repeat(300 * 1024)});
    assert_flat(&set(&app, &crm, big).await, 413, "VALUE_TOO_LARGE");

    let listed = app
        .as_plugin(&analytics, Method::GET, &format!("{SHARED}/crm.cache"))
        .await;
    assert_eq!(
        listed.assert_status(200),
        &json!({"namespace": "crm.cache", "keys": ["contact_count", "ttl"], "count": 2})
    );
    let by_owner = app
        .as_plugin(
            &crm,
            Method::GET,
            &format!("{SHARED}/analytics.state?ownerId=plugin-crm"),
        )
        .await;
    assert_eq!(by_owner.assert_status(200)["count"], 0);
    let empty = app
        .as_plugin(&crm, Method::GET, &format!("{SHARED}/nothing-here"))
        .await;
    assert_eq!(
        empty.assert_status(200),
        &json!({"namespace": "nothing-here", "keys": [], "count": 0})
    );

    let gone = app
        .as_plugin(
            &crm,
            Method::DELETE,
            &format!("{SHARED}/crm.cache/contact_count"),
        )
        .await;
    assert_eq!(
        gone.assert_status(200),
        &json!({"success": true, "message": "Data deleted successfully"})
    );
    let again = app
        .as_plugin(
            &crm,
            Method::DELETE,
            &format!("{SHARED}/crm.cache/contact_count"),
        )
        .await;
    assert_flat(&again, 404, "DATA_NOT_FOUND");
    let missing = get(&app, &crm, "crm.cache", "contact_count").await;
    assert_flat(&missing, 404, "DATA_NOT_FOUND");
    assert_eq!(missing.body["error"], "Data not found");
}

async fn json_values_keep_their_type_and_names_never_collide(app: TestApp) {
    let (crm, _) = plugins(&app).await;
    for (index, value) in [
        json!(false),
        json!(0),
        json!(""),
        json!([]),
        json!({}),
        json!({"a": [1, {"b": null, "c": 2.5}], "d": "é"}),
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("v{index}");
        set(
            &app,
            &crm,
            json!({"namespace": "types", "key": key, "value": value}),
        )
        .await
        .assert_status(201);
        assert_eq!(
            get(&app, &crm, "types", &key).await.assert_status(200)["value"],
            value
        );
    }
    set(
        &app,
        &crm,
        json!({"namespace": "b:c", "key": "d", "value": "first"}),
    )
    .await
    .assert_status(201);
    set(
        &app,
        &crm,
        json!({"namespace": "b", "key": "c:d", "value": "second"}),
    )
    .await
    .assert_status(201);
    for _ in 0..2 {
        assert_eq!(
            get(&app, &crm, "b:c", "d").await.assert_status(200)["value"],
            "first"
        );
        assert_eq!(
            get(&app, &crm, "b", "c:d").await.assert_status(200)["value"],
            "second"
        );
    }
    // Another tenant with the very same names sees only its own.
    app.create_tenant("globex").await;
    let globex = app.install("globex", "plugin-crm", json!({})).await;
    assert_flat(&get(&app, &globex, "b:c", "d").await, 404, "DATA_NOT_FOUND");
    set(
        &app,
        &globex,
        json!({"namespace": "b:c", "key": "d", "value": "globex"}),
    )
    .await
    .assert_status(201);
    assert_eq!(
        get(&app, &globex, "b:c", "d").await.assert_status(200)["value"],
        "globex"
    );
    assert_eq!(
        get(&app, &crm, "b:c", "d").await.assert_status(200)["value"],
        "first"
    );
}

async fn expired_values_are_never_served(app: TestApp) {
    let (crm, _) = plugins(&app).await;
    set(
        &app,
        &crm,
        json!({"namespace": "n", "key": "short", "value": 1, "ttl": 1}),
    )
    .await
    .assert_status(201);
    assert_eq!(
        get(&app, &crm, "n", "short").await.assert_status(200)["value"],
        1
    );
    app.clock.advance(999);
    get(&app, &crm, "n", "short").await.assert_status(200);
    app.clock.advance(1);
    assert_flat(&get(&app, &crm, "n", "short").await, 404, "DATA_NOT_FOUND");
    let listed = app
        .as_plugin(&crm, Method::GET, &format!("{SHARED}/n"))
        .await;
    assert_eq!(listed.assert_status(200)["count"], 0);
    // Expired counts as absent: create-only succeeds, and anyone may take the name.
    let created = app
        .send(
            Method::PUT,
            "/api/v1/data/n/short",
            Some(&crm),
            &[("if-none-match", "*")],
            Some(&json!({"value": 2})),
        )
        .await;
    // Revision 2 if the expired row was replaced in place, 1 if the sweep removed it first.
    let revision = created.assert_status(200)["revision"]
        .as_i64()
        .expect("revision");
    assert!(matches!(revision, 1 | 2), "revision {revision}");
    assert_eq!(
        get(&app, &crm, "n", "short").await.assert_status(200)["value"],
        2
    );
}

async fn revisions_make_compare_and_set(app: TestApp) {
    let (crm, analytics) = plugins(&app).await;
    let put = |headers: &'static [(&'static str, &'static str)], body: Value| {
        let app = &app;
        let crm = crm.clone();
        async move {
            app.send(
                Method::PUT,
                "/api/v1/data/counters/visits",
                Some(&crm),
                headers,
                Some(&body),
            )
            .await
        }
    };
    let created = put(&[("if-none-match", "*")], json!({"value": 1})).await;
    assert_eq!(created.assert_status(200)["revision"], 1);
    assert_eq!(created.headers["etag"], "\"1\"");
    let again = put(&[("if-none-match", "*")], json!({"value": 1})).await;
    again.assert_error(412, "PRECONDITION_FAILED");
    assert_eq!(again.body["error"]["details"]["currentRevision"], 1);
    assert_eq!(
        put(&[("if-match", "\"1\"")], json!({"value": 2}))
            .await
            .assert_status(200)["revision"],
        2
    );
    let stale = put(&[("if-match", "1")], json!({"value": 3})).await;
    stale.assert_error(412, "PRECONDITION_FAILED");
    assert_eq!(stale.body["error"]["details"]["currentRevision"], 2);
    put(&[("if-match", "x")], json!({"value": 3}))
        .await
        .assert_error(400, "INVALID_PARAMETER");
    app.send(
        Method::PUT,
        "/api/v1/data/counters/none",
        Some(&crm),
        &[("if-match", "1")],
        Some(&json!({"value": 1})),
    )
    .await
    .assert_error(412, "PRECONDITION_FAILED");
    app.send(
        Method::PUT,
        "/api/v1/data/counters/visits",
        Some(&analytics),
        &[("if-match", "2")],
        Some(&json!({"value": 9})),
    )
    .await
    .assert_error(403, "NOT_OWNER");
    app.send(
        Method::PUT,
        "/api/v1/data/counters/visits",
        Some(&crm),
        &[],
        Some(&json!({"value": 1, "extra": true})),
    )
    .await
    .assert_error(400, "INVALID_BODY");

    let read = app
        .as_plugin(&analytics, Method::GET, "/api/v1/data/counters/visits")
        .await;
    assert_eq!(read.assert_status(200)["value"], 2);
    app.send(
        Method::DELETE,
        "/api/v1/data/counters/visits",
        Some(&crm),
        &[("if-match", "1")],
        None,
    )
    .await
    .assert_error(412, "PRECONDITION_FAILED");
    app.send(
        Method::DELETE,
        "/api/v1/data/counters/visits",
        Some(&crm),
        &[("if-match", "2")],
        None,
    )
    .await
    .assert_status(204);
    app.as_plugin(&crm, Method::GET, "/api/v1/data/counters/visits")
        .await
        .assert_error(404, "DATA_NOT_FOUND");
}

async fn listing_batches_and_transactions(app: TestApp) {
    let (crm, analytics) = plugins(&app).await;
    for key in ["a1", "a2", "a3", "b1"] {
        app.send(
            Method::PUT,
            &format!("/api/v1/data/ns/{key}"),
            Some(&crm),
            &[],
            Some(&json!({"value": key})),
        )
        .await
        .assert_status(200);
    }
    let page = app
        .as_plugin(
            &analytics,
            Method::GET,
            "/api/v1/data/ns?prefix=a&limit=2&values=true",
        )
        .await;
    let body = page.assert_status(200);
    let keys: Vec<&str> = body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["key"].as_str())
        .collect();
    assert_eq!(keys, ["a1", "a2"]);
    assert_eq!(body["entries"][0]["value"], "a1");
    assert_eq!(body["nextCursor"], "a2");
    let next = app
        .as_plugin(
            &analytics,
            Method::GET,
            "/api/v1/data/ns?prefix=a&limit=2&cursor=a2",
        )
        .await;
    let body = next.assert_status(200);
    assert_eq!(body["entries"].as_array().map(Vec::len), Some(1));
    assert!(
        body["entries"][0].get("value").is_none(),
        "values only on request"
    );
    assert!(body.get("nextCursor").is_none());

    let batch = app
        .send(
            Method::POST,
            "/api/v1/data/ns/batch-get",
            Some(&analytics),
            &[],
            Some(&json!({"keys": ["a1", "zz", "b1"]})),
        )
        .await;
    let body = batch.assert_status(200);
    assert_eq!(body["entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(body["missing"], json!(["zz"]));
    app.send(
        Method::POST,
        "/api/v1/data/ns/a1",
        Some(&crm),
        &[],
        Some(&json!({"keys": []})),
    )
    .await
    .assert_error(405, "METHOD_NOT_ALLOWED");
    // "batch-get" is still an ordinary key for GET and PUT.
    app.send(
        Method::PUT,
        "/api/v1/data/ns/batch-get",
        Some(&crm),
        &[],
        Some(&json!({"value": 7})),
    )
    .await
    .assert_status(200);
    assert_eq!(
        app.as_plugin(&crm, Method::GET, "/api/v1/data/ns/batch-get")
            .await
            .assert_status(200)["value"],
        7
    );

    let ok = app
        .send(
            Method::POST,
            "/api/v1/data-transactions",
            Some(&crm),
            &[],
            Some(&json!({"ops": [
                {"op": "check", "namespace": "ns", "key": "a1", "ifRevision": 1},
                {"op": "set", "namespace": "ns", "key": "a1", "value": "new", "ifRevision": 1},
                {"op": "delete", "namespace": "ns", "key": "b1"},
                {"op": "set", "namespace": "ns", "key": "c1", "value": {"x": 1}, "ttl": 60}
            ]})),
        )
        .await;
    assert_eq!(ok.assert_status(200)["revisions"], json!([1, 2, 1, 1]));
    let failed = app
        .send(
            Method::POST,
            "/api/v1/data-transactions",
            Some(&crm),
            &[],
            Some(&json!({"ops": [
                {"op": "set", "namespace": "ns", "key": "a2", "value": "lost"},
                {"op": "check", "namespace": "ns", "key": "a1", "ifRevision": 1}
            ]})),
        )
        .await;
    failed.assert_error(409, "TRANSACTION_FAILED");
    assert_eq!(failed.body["error"]["details"]["index"], 1);
    assert_eq!(
        failed.body["error"]["details"]["code"],
        "PRECONDITION_FAILED"
    );
    assert_eq!(
        app.as_plugin(&crm, Method::GET, "/api/v1/data/ns/a2")
            .await
            .assert_status(200)["value"],
        "a2",
        "all or none"
    );
    let not_owner = app
        .send(
            Method::POST,
            "/api/v1/data-transactions",
            Some(&analytics),
            &[],
            Some(&json!({"ops": [{"op": "delete", "namespace": "ns", "key": "a2"}]})),
        )
        .await;
    not_owner.assert_error(409, "TRANSACTION_FAILED");
    assert_eq!(not_owner.body["error"]["details"]["code"], "NOT_OWNER");
    let too_many: Vec<Value> = (0..65)
        .map(|i| json!({"op": "check", "namespace": "ns", "key": format!("k{i}")}))
        .collect();
    app.send(
        Method::POST,
        "/api/v1/data-transactions",
        Some(&crm),
        &[],
        Some(&json!({"ops": too_many})),
    )
    .await
    .assert_error(400, "INVALID_BODY");
    app.send(
        Method::POST,
        "/api/v1/data-transactions",
        Some(&crm),
        &[],
        Some(&json!({"ops": [{"op": "merge", "namespace": "ns", "key": "a"}]})),
    )
    .await
    .assert_error(400, "INVALID_BODY");
}

async fn watch_reports_sets_deletes_and_expiry(app: TestApp) {
    let (crm, analytics) = plugins(&app).await;
    let open = |last: Option<String>| {
        let app = &app;
        let token = analytics.clone();
        async move {
            let mut request = app
                .http
                .get(format!("{}/api/v1/data-watch/ns?prefix=k", app.base))
                .bearer_auth(token);
            if let Some(last) = last {
                request = request.header("last-event-id", last);
            }
            let response = request.send().await.expect("watch");
            assert_eq!(response.status(), 200);
            response
        }
    };
    let mut stream = open(None).await;
    let put = |key: &str, body: Value| {
        let path = format!("/api/v1/data/ns/{key}");
        let app = &app;
        let crm = crm.clone();
        async move {
            app.send(Method::PUT, &path, Some(&crm), &[], Some(&body))
                .await
                .assert_status(200)
                .clone()
        }
    };
    put("other", json!({"value": 0})).await;
    put("k1", json!({"value": 1})).await;
    put("k1", json!({"value": 2, "ttl": 1})).await;
    app.send(
        Method::PUT,
        "/api/v1/data/elsewhere/k1",
        Some(&crm),
        &[],
        Some(&json!({"value": 1})),
    )
    .await
    .assert_status(200);
    put("k2", json!({"value": 1})).await;
    app.send(Method::DELETE, "/api/v1/data/ns/k2", Some(&crm), &[], None)
        .await
        .assert_status(204);
    app.clock.advance(1_000);
    let mut buffer = String::new();
    let events = crate::registry::next_events(&mut stream, &mut buffer, 5).await;
    let seen: Vec<(String, String, i64)> = events
        .iter()
        .map(|(_, kind, data)| {
            (
                kind.clone(),
                data["key"].as_str().unwrap_or("").to_owned(),
                data["revision"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let expected = [
        ("set", "k1", 1),
        ("set", "k1", 2),
        ("set", "k2", 1),
        ("deleted", "k2", 1),
        ("expired", "k1", 2),
    ];
    assert_eq!(
        seen,
        expected.map(|(kind, key, revision)| (kind.to_owned(), key.to_owned(), revision))
    );
    assert!(events.iter().all(|(_, _, data)| data["namespace"] == "ns"));
    drop(stream);

    let mut resumed = open(Some(events[2].0.clone())).await;
    let mut buffer = String::new();
    let replay = crate::registry::next_events(&mut resumed, &mut buffer, 2).await;
    assert_eq!(
        replay
            .iter()
            .map(|(_, kind, _)| kind.as_str())
            .collect::<Vec<_>>(),
        ["deleted", "expired"]
    );
}

/// Concurrent unconditional writes of one key land in one group-commit batch: each still gets
/// its own revision and its own `set` event, the key ends at the value of the highest revision,
/// and a writer that does not own the key is refused without disturbing the others.
async fn concurrent_writes_of_one_key_keep_every_revision(app: TestApp) {
    let (crm, analytics) = plugins(&app).await;
    let put = |token: &str, value: Value| {
        let (app, token) = (&app, token.to_owned());
        async move {
            app.send(
                Method::PUT,
                "/api/v1/data/hot/counter",
                Some(&token),
                &[],
                Some(&json!({ "value": value })),
            )
            .await
        }
    };
    put(&crm, json!("first")).await.assert_status(200);
    let mut stream = app
        .http
        .get(format!("{}/api/v1/data-watch/hot", app.base))
        .bearer_auth(&analytics)
        .send()
        .await
        .expect("watch");
    assert_eq!(stream.status(), 200);
    const WRITES: i64 = 40;
    let writes = (0..WRITES).map(|n| {
        let put = &put;
        let crm = &crm;
        async move {
            let reply = put(crm, json!(n)).await;
            let revision = reply.assert_status(200)["revision"].as_i64();
            (revision.expect("revision"), n)
        }
    });
    let (mut landed, refused) = tokio::join!(
        futures::future::join_all(writes),
        put(&analytics, json!("mine"))
    );
    assert_eq!(refused.status.as_u16(), 403, "body: {}", refused.body);
    assert_eq!(refused.body["error"]["code"], "NOT_OWNER");
    landed.sort_unstable();
    let revisions: Vec<i64> = landed.iter().map(|(revision, _)| *revision).collect();
    assert_eq!(revisions, (2..=WRITES + 1).collect::<Vec<_>>());
    let (last_revision, last_value) = landed[landed.len() - 1];
    let read = app
        .as_plugin(&analytics, Method::GET, "/api/v1/data/hot/counter")
        .await;
    let entry = read.assert_status(200);
    assert_eq!(entry["revision"], last_revision);
    assert_eq!(entry["value"], last_value);
    assert_eq!(entry["ownerId"], "plugin-crm");
    let mut buffer = String::new();
    let events = crate::registry::next_events(&mut stream, &mut buffer, 40).await;
    let logged: Vec<i64> = events
        .iter()
        .map(|(_, kind, data)| {
            assert_eq!(kind, "set");
            data["revision"].as_i64().expect("revision")
        })
        .collect();
    assert_eq!(logged, revisions);
}

crate::on_both_backends!(
    the_seed_routes_enforce_owners_names_and_limits,
    json_values_keep_their_type_and_names_never_collide,
    expired_values_are_never_served,
    revisions_make_compare_and_set,
    listing_batches_and_transactions,
    watch_reports_sets_deletes_and_expiry,
    concurrent_writes_of_one_key_keep_every_revision,
);

/// One compare-and-set increment, retried on 412 until it lands; returns how many 412s it saw.
async fn increment(hub: &TestApp, token: &str) -> u32 {
    let mut conflicts = 0;
    loop {
        let read = hub
            .as_plugin(token, Method::GET, "/api/v1/data/counters/shared")
            .await;
        let body = read.assert_status(200);
        let (value, revision) = (
            body["value"].as_i64().expect("number"),
            body["revision"].as_i64().expect("revision"),
        );
        let if_match = revision.to_string();
        let write = hub
            .send(
                Method::PUT,
                "/api/v1/data/counters/shared",
                Some(token),
                &[("if-match", &if_match)],
                Some(&json!({"value": value + 1})),
            )
            .await;
        match write.status.as_u16() {
            200 => return conflicts,
            412 => conflicts += 1,
            other => panic!("unexpected {other}: {}", write.body),
        }
    }
}

#[tokio::test]
async fn two_hubs_share_one_counter_without_losing_updates() {
    let Some((a, b)) = crate::helpers::two_hubs(Some(plexhub_server::Clock::manual())).await else {
        return;
    };
    let (crm, _) = plugins(&a).await;
    a.send(
        Method::PUT,
        "/api/v1/data/counters/shared",
        Some(&crm),
        &[],
        Some(&json!({"value": 0})),
    )
    .await
    .assert_status(200);

    let a = std::sync::Arc::new(a);
    let b = std::sync::Arc::new(b);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let hub = if i % 2 == 0 { a.clone() } else { b.clone() };
        let token = crm.clone();
        tasks.push(tokio::spawn(async move { increment(&hub, &token).await }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.expect("increment");
    }
    eprintln!("50 increments through two hubs: {conflicts} precondition failures retried");
    for hub in [&a, &b] {
        let read = hub
            .as_plugin(&crm, Method::GET, "/api/v1/data/counters/shared")
            .await;
        assert_eq!(read.assert_status(200)["value"], 50, "no update lost");
        assert_eq!(read.body["revision"], 51);
    }

    // A 1-second value: readable at once on both, gone on both 1.1 s later.
    set(
        &a,
        &crm,
        json!({"namespace": "n", "key": "brief", "value": true, "ttl": 1}),
    )
    .await
    .assert_status(201);
    assert_eq!(
        get(&a, &crm, "n", "brief").await.assert_status(200)["value"],
        true
    );
    assert_eq!(
        get(&b, &crm, "n", "brief").await.assert_status(200)["value"],
        true
    );
    a.clock.advance(1_100);
    assert_flat(&get(&a, &crm, "n", "brief").await, 404, "DATA_NOT_FOUND");
    assert_flat(&get(&b, &crm, "n", "brief").await, 404, "DATA_NOT_FOUND");
}

/// Read-your-writes across instances: a value acknowledged by one hub is what the other reads
/// next, every time (scaled mode serves shared data from the database, not from a cache that
/// the change feed invalidates a moment later).
#[tokio::test]
async fn a_write_on_one_hub_is_read_at_once_on_the_other() {
    let Some((a, b)) = crate::helpers::two_hubs(None).await else {
        return;
    };
    let (crm, _) = plugins(&a).await;
    let mut stale = Vec::new();
    for n in 0..200 {
        a.send(
            Method::PUT,
            "/api/v1/data/counters/fresh",
            Some(&crm),
            &[],
            Some(&json!({ "value": n })),
        )
        .await
        .assert_status(200);
        let read = b
            .as_plugin(&crm, Method::GET, "/api/v1/data/counters/fresh")
            .await;
        if read.assert_status(200)["value"] != n {
            stale.push((n, read.body["value"].clone()));
        }
    }
    assert!(
        stale.is_empty(),
        "stale reads on hub b (written, read): {stale:?}"
    );
}
