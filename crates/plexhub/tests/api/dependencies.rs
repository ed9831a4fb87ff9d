//! Dependencies: the seed's five routes (flat errors, original messages), install, uninstall
//! and upgrade plans, installs with dependencies, and uninstall guarded by dependents.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Reply, TestApp, analytics, crm_at};

const DEPS: &str = "/api/plugin-gateway/dependencies";
const INSTALLS: &str = "/api/v1/tenants/acme/installations";
const PLANS: &str = "/api/v1/tenants/acme/plans";

/// A minimal manifest with `api.dependencies`.
fn manifest(id: &str, version: &str, dependencies: Value) -> Value {
    json!({
        "id": id,
        "name": id,
        "version": version,
        "description": "test plugin",
        "api": { "dependencies": dependencies },
    })
}

fn needs(plugin_id: &str, range: &str, required: bool) -> Value {
    json!({ "pluginId": plugin_id, "version": range, "required": required })
}

#[track_caller]
fn assert_flat(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.body);
    assert_eq!(reply.body["code"], code, "body: {}", reply.body);
    assert!(reply.body["error"].is_string(), "flat: {}", reply.body);
}

async fn register(app: &TestApp, token: &str, dependencies: Value) -> Reply {
    let body = json!({ "dependencies": dependencies });
    app.send(Method::POST, DEPS, Some(token), &[], Some(&body))
        .await
}

fn edge(plugin_id: &str, on: &str, range: &str) -> Value {
    json!({ "pluginId": plugin_id, "dependsOnPluginId": on, "version": range })
}

/// `(pluginId, dependsOnPluginId, source)` of a listing.
fn listed(reply: &Reply) -> Vec<(String, String, String)> {
    reply.assert_status(200)["dependencies"]
        .as_array()
        .expect("dependencies")
        .iter()
        .map(|d| {
            let text = |field: &str| d[field].as_str().unwrap_or_default().to_owned();
            (text("pluginId"), text("dependsOnPluginId"), text("source"))
        })
        .collect()
}

fn triples(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect()
}

async fn seed_routes_register_list_and_find_dependents(app: TestApp) {
    app.create_tenant("acme").await;
    app.publish(&crm_at("1.0.0")).await;
    app.publish(&analytics()).await;
    app.publish(&manifest(
        "plugin-reports",
        "1.0.0",
        json!([needs("plugin-analytics", "^1.0.0", true)]),
    ))
    .await;
    let crm = app.install("acme", "plugin-crm", json!({})).await;

    // Writing the graph is the admin's, and needs a credential at all.
    assert_flat(
        &register(
            &app,
            &crm,
            json!([edge("plugin-reports", "plugin-crm", "^1")]),
        )
        .await,
        403,
        "FORBIDDEN",
    );
    let anonymous = app
        .send(
            Method::POST,
            DEPS,
            None,
            &[],
            Some(&json!({"dependencies": []})),
        )
        .await;
    assert_flat(&anonymous, 401, "UNAUTHENTICATED");

    let mut optional = edge("plugin-reports", "plugin-crm", "^1.0.0");
    optional["required"] = json!(false);
    let registered = register(&app, ADMIN, json!([optional])).await;
    assert_eq!(
        registered.assert_status(201),
        &json!({"success": true, "message": "Dependencies registered"})
    );
    let before = app
        .as_plugin(&crm, Method::GET, &format!("{DEPS}/plugin-reports"))
        .await;
    let expected = triples(&[
        ("plugin-reports", "plugin-analytics", "manifest"),
        ("plugin-reports", "plugin-crm", "registered"),
    ]);
    assert_eq!(listed(&before), expected);
    assert_eq!(before.body["count"], 2);
    assert_eq!(before.body["dependencies"][1]["required"], false);

    // Each bad batch is refused whole: nothing changes.
    let bad_batches = [
        json!([
            edge("plugin-reports", "plugin-crm", "^2"),
            edge("plugin-reports", "plugin-crm", "^3")
        ]),
        json!([edge("plugin-reports", "plugin-crm", "not a range")]),
        json!([edge("plugin-reports", "plugin-reports", "*")]),
        json!([edge("plugin-reports", "plugin-ghost", "*")]),
        json!([edge("plugin-reports", "Not An Id", "*")]),
    ];
    for batch in bad_batches {
        let refused = register(&app, ADMIN, batch.clone()).await;
        assert_flat(&refused, 400, "INVALID_DEPENDENCIES");
        assert!(
            refused.body["errors"]
                .as_array()
                .is_some_and(|e| !e.is_empty()),
            "{}",
            refused.body
        );
        let after = app
            .as_plugin(&crm, Method::GET, &format!("{DEPS}/plugin-reports"))
            .await;
        assert_eq!(listed(&after), expected, "after {batch}");
    }

    // Registering again replaces the plugin's set.
    register(
        &app,
        ADMIN,
        json!([edge("plugin-crm", "plugin-reports", "*")]),
    )
    .await
    .assert_status(201);
    register(
        &app,
        ADMIN,
        json!([edge("plugin-reports", "plugin-analytics", "^1")]),
    )
    .await
    .assert_status(201);
    let replaced = app
        .as_plugin(&crm, Method::GET, &format!("{DEPS}/plugin-reports"))
        .await;
    assert_eq!(
        listed(&replaced),
        triples(&[
            ("plugin-reports", "plugin-analytics", "manifest"),
            ("plugin-reports", "plugin-analytics", "registered"),
        ])
    );

    // The manifest's details come along; the graph crm -> reports -> analytics -> crm is a
    // cycle, and the recursive listing still ends, each plugin once.
    let direct = app
        .as_plugin(&crm, Method::GET, &format!("{DEPS}/plugin-analytics"))
        .await;
    assert_eq!(direct.assert_status(200)["count"], 2);
    assert_eq!(
        direct.body["dependencies"][0]["serviceName"],
        "crm.contacts"
    );
    assert_eq!(
        direct.body["dependencies"][0]["reason"],
        "Reads contacts for the contacts summary and forecast reports"
    );
    let recursive = app
        .as_plugin(
            &crm,
            Method::GET,
            &format!("{DEPS}/plugin-crm?recursive=true"),
        )
        .await;
    assert_eq!(
        listed(&recursive),
        triples(&[
            ("plugin-crm", "plugin-reports", "registered"),
            ("plugin-reports", "plugin-analytics", "manifest"),
            ("plugin-analytics", "plugin-crm", "manifest"),
        ])
    );
    let not_recursive = app
        .as_plugin(
            &crm,
            Method::GET,
            &format!("{DEPS}/plugin-crm?recursive=yes"),
        )
        .await;
    assert_eq!(not_recursive.assert_status(200)["count"], 1);

    let dependents = app
        .as_plugin(&crm, Method::GET, &format!("{DEPS}/plugin-crm/dependents"))
        .await;
    assert_eq!(
        dependents.assert_status(200),
        &json!({"pluginId": "plugin-crm", "dependents": ["plugin-analytics"], "count": 1})
    );
    let unknown = app
        .as_plugin(&crm, Method::GET, &format!("{DEPS}/plugin-ghost"))
        .await;
    assert_flat(&unknown, 404, "PLUGIN_NOT_FOUND");
    let unknown = app
        .as_plugin(
            &crm,
            Method::GET,
            &format!("{DEPS}/plugin-ghost/dependents"),
        )
        .await;
    assert_flat(&unknown, 404, "PLUGIN_NOT_FOUND");
}

async fn resolve_as(app: &TestApp, plugin_id: &str) -> Reply {
    let path = format!("{DEPS}/{plugin_id}/resolve");
    app.send(
        Method::POST,
        &path,
        Some(ADMIN),
        &[("x-tenant-slug", "acme")],
        None,
    )
    .await
}

async fn resolution_and_can_uninstall_see_the_tenant(app: TestApp) {
    app.create_tenant("acme").await;
    app.publish(&crm_at("1.0.0")).await;
    app.publish(&crm_at("2.0.0")).await;
    app.publish(&analytics()).await;
    app.publish(&manifest(
        "plugin-widgets",
        "1.0.0",
        json!([
            needs("plugin-crm", "^1.0.0", false),
            needs("plugin-ghost", "^1.0.0", false)
        ]),
    ))
    .await;
    app.publish(&manifest(
        "plugin-cyc-a",
        "1.0.0",
        json!([needs("plugin-cyc-b", "*", true)]),
    ))
    .await;
    app.publish(&manifest(
        "plugin-cyc-b",
        "1.0.0",
        json!([needs("plugin-cyc-a", "*", true)]),
    ))
    .await;

    let missing = resolve_as(&app, "plugin-analytics").await;
    assert_eq!(
        missing.assert_status(400),
        &json!({"valid": false, "errors": ["Missing required plugin: plugin-crm"], "warnings": []})
    );
    app.install("acme", "plugin-crm", json!({"version": "2.0.0"}))
        .await;
    let mismatch = resolve_as(&app, "plugin-analytics").await;
    assert_eq!(
        mismatch.assert_status(400)["errors"],
        json!(["Version mismatch for plugin-crm: requires ^1.0.0, installed 2.0.0"])
    );
    app.admin(Method::DELETE, &format!("{INSTALLS}/plugin-crm"), None)
        .await
        .assert_status(204);
    app.install("acme", "plugin-crm", json!({"version": "1.0.0"}))
        .await;
    let valid = resolve_as(&app, "plugin-analytics").await;
    assert_eq!(
        valid.assert_status(200),
        &json!({"valid": true, "errors": [], "warnings": [], "installOrder": ["plugin-crm", "plugin-analytics"]})
    );

    // An optional dependency, installed or absent from the catalog, never fails a resolution.
    let widgets = resolve_as(&app, "plugin-widgets").await;
    let body = widgets.assert_status(200);
    assert_eq!(
        body["installOrder"],
        json!(["plugin-crm", "plugin-widgets"])
    );
    assert_eq!(
        body["warnings"],
        json!([
            "Optional plugin plugin-ghost is not in the catalog (optional dependency of plugin-widgets)"
        ])
    );
    let cycle = resolve_as(&app, "plugin-cyc-a").await;
    assert_eq!(
        cycle.assert_status(400)["errors"],
        json!(["Circular dependency detected: plugin-cyc-a -> plugin-cyc-b -> plugin-cyc-a"])
    );
    assert_flat(
        &resolve_as(&app, "plugin-ghost").await,
        404,
        "PLUGIN_NOT_FOUND",
    );
    let no_tenant = app
        .send(
            Method::POST,
            &format!("{DEPS}/plugin-crm/resolve"),
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_flat(&no_tenant, 400, "TENANT_REQUIRED");

    // Only installed plugins that require it block an uninstall; optional ones warn.
    let analytics = app.install("acme", "plugin-analytics", json!({})).await;
    app.install("acme", "plugin-widgets", json!({})).await;
    let check = app
        .as_plugin(
            &analytics,
            Method::POST,
            &format!("{DEPS}/plugin-crm/can-uninstall"),
        )
        .await;
    assert_eq!(
        check.assert_status(200),
        &json!({
            "canUninstall": false,
            "blockedBy": ["plugin-analytics"],
            "details": [
                {"pluginId": "plugin-analytics", "required": true,
                 "reason": "Reads contacts for the contacts summary and forecast reports"},
                {"pluginId": "plugin-widgets", "required": false, "reason": "Optional dependency"}
            ],
            "warnings": ["plugin-widgets optionally depends on plugin-crm; it keeps working without it"]
        })
    );
    let free = app
        .as_plugin(
            &analytics,
            Method::POST,
            &format!("{DEPS}/plugin-analytics/can-uninstall"),
        )
        .await;
    assert_eq!(free.assert_status(200)["canUninstall"], true);
    let absent = app
        .as_plugin(
            &analytics,
            Method::POST,
            &format!("{DEPS}/plugin-cyc-a/can-uninstall"),
        )
        .await;
    assert_flat(&absent, 404, "NOT_INSTALLED");
}

async fn plan(app: &TestApp, kind: &str, body: Value) -> Reply {
    app.admin(Method::POST, &format!("{PLANS}/{kind}"), Some(&body))
        .await
}

fn steps(reply: &Reply) -> Vec<(String, String, String)> {
    reply.assert_status(200)["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            let text = |field: &str| s[field].as_str().unwrap_or_default().to_owned();
            (text("pluginId"), text("version"), text("action"))
        })
        .collect()
}

async fn installed_ids(app: &TestApp) -> Vec<String> {
    app.admin(Method::GET, INSTALLS, None)
        .await
        .assert_status(200)["installations"]
        .as_array()
        .expect("installations")
        .iter()
        .map(|i| i["pluginId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn plans_install_with_dependencies_and_guard_uninstalls(app: TestApp) {
    app.create_tenant("acme").await;
    for version in ["1.0.0", "1.5.0", "2.0.0"] {
        app.publish(&crm_at(version)).await;
    }
    app.publish(&analytics()).await;
    app.publish(&manifest(
        "plugin-suite",
        "1.0.0",
        json!([
            needs("plugin-analytics", "^1", true),
            needs("plugin-crm", "^2", true)
        ]),
    ))
    .await;

    let fresh = plan(&app, "install", json!({"pluginId": "plugin-analytics"})).await;
    assert_eq!(
        steps(&fresh),
        triples(&[
            ("plugin-crm", "1.5.0", "install"),
            ("plugin-analytics", "1.0.0", "install"),
        ])
    );
    let conflict = plan(&app, "install", json!({"pluginId": "plugin-suite"})).await;
    conflict.assert_error(409, "DEPENDENCY_CONFLICT");
    let explanation = &conflict.body["error"]["details"]["explanation"];
    let text = explanation["text"].as_str().expect("text");
    assert!(
        text.contains("plugin-analytics 1.0.0 depends on plugin-crm ^1.0.0"),
        "{text}"
    );
    assert!(
        text.contains("plugin-suite 1.0.0 depends on plugin-crm ^2"),
        "{text}"
    );
    assert!(
        explanation["facts"]
            .as_array()
            .is_some_and(|f| f.len() >= 2)
    );
    plan(&app, "install", json!({"pluginId": "plugin-ghost"}))
        .await
        .assert_error(404, "PLUGIN_NOT_FOUND");

    // Applying the plan: every plugin it installs needs a placement, else nothing happens.
    let with_deps = format!("{INSTALLS}?withDependencies=true");
    let body =
        json!({"pluginId": "plugin-analytics", "baseUrl": "http://analytics:1", "activate": true});
    let unplaced = app.admin(Method::POST, &with_deps, Some(&body)).await;
    unplaced.assert_error(400, "INVALID_BODY");
    assert!(
        unplaced.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("plugin-crm 1.5.0"))
    );
    let mut extra = body.clone();
    extra["dependencies"] = json!({"plugin-crm": {"baseUrl": "http://crm:1"}, "plugin-suite": {"baseUrl": "http://s:1"}});
    app.admin(Method::POST, &with_deps, Some(&extra))
        .await
        .assert_error(400, "INVALID_BODY");
    let mut placed = body.clone();
    placed["dependencies"] = json!({"plugin-crm": {"baseUrl": "http://crm:1", "grants": []}});
    app.admin(Method::POST, INSTALLS, Some(&placed))
        .await
        .assert_error(400, "INVALID_BODY");
    assert!(
        installed_ids(&app).await.is_empty(),
        "nothing installed by refused requests"
    );
    let done = app.admin(Method::POST, &with_deps, Some(&placed)).await;
    let answer = done.assert_status(201);
    assert_eq!(answer["installation"]["pluginId"], "plugin-analytics");
    assert_eq!(answer["installation"]["state"], "ACTIVE");
    let dependency = &answer["dependencies"][0];
    assert_eq!(dependency["installation"]["pluginId"], "plugin-crm");
    assert_eq!(dependency["installation"]["version"], "1.5.0");
    assert_eq!(dependency["installation"]["state"], "ACTIVE");
    for token in [
        &answer["credential"]["token"],
        &dependency["credential"]["token"],
    ] {
        let token = token.as_str().expect("token");
        app.as_plugin(token, Method::GET, "/api/v1/whoami")
            .await
            .assert_status(200);
    }
    assert_eq!(
        installed_ids(&app).await,
        ["plugin-analytics", "plugin-crm"]
    );
    let kept = plan(&app, "install", json!({"pluginId": "plugin-analytics"})).await;
    assert_eq!(
        steps(&kept),
        triples(&[
            ("plugin-crm", "1.5.0", "keep"),
            ("plugin-analytics", "1.0.0", "keep"),
        ])
    );

    // Upgrades name what they break.
    let breaking = plan(
        &app,
        "upgrade",
        json!({"pluginId": "plugin-crm", "version": "2.0.0"}),
    )
    .await;
    let check = breaking.assert_status(200);
    assert_eq!(
        (check["from"].clone(), check["ok"].clone()),
        (json!("1.5.0"), json!(false))
    );
    assert_eq!(
        check["breaks"],
        json!([{"pluginId": "plugin-analytics", "version": "1.0.0", "range": "^1.0.0", "required": true}])
    );
    let fine = plan(
        &app,
        "upgrade",
        json!({"pluginId": "plugin-crm", "version": "1.0.0"}),
    )
    .await;
    assert_eq!(fine.assert_status(200)["ok"], true);
    plan(
        &app,
        "upgrade",
        json!({"pluginId": "plugin-crm", "version": "9.9.9"}),
    )
    .await
    .assert_error(404, "VERSION_NOT_FOUND");

    // Uninstall: blocked by a requiring dependent, unless cascading.
    let blocked = plan(
        &app,
        "uninstall",
        json!({"pluginId": "plugin-crm", "cascade": true}),
    )
    .await;
    let body = blocked.assert_status(200);
    assert_eq!(body["canUninstall"], false);
    assert_eq!(body["blockedBy"], json!(["plugin-analytics"]));
    assert_eq!(body["order"], json!(["plugin-analytics", "plugin-crm"]));
    let refused = app
        .admin(Method::DELETE, &format!("{INSTALLS}/plugin-crm"), None)
        .await;
    refused.assert_error(409, "HAS_DEPENDENTS");
    assert_eq!(
        refused.body["error"]["details"]["blockedBy"],
        json!(["plugin-analytics"])
    );
    assert_eq!(installed_ids(&app).await.len(), 2);
    let cascaded = app
        .admin(
            Method::DELETE,
            &format!("{INSTALLS}/plugin-crm?cascade=true"),
            None,
        )
        .await;
    assert_eq!(
        cascaded.assert_status(200),
        &json!({"uninstalled": ["plugin-analytics", "plugin-crm"]})
    );
    assert!(installed_ids(&app).await.is_empty());
    plan(&app, "uninstall", json!({"pluginId": "plugin-crm"}))
        .await
        .assert_error(404, "NOT_INSTALLED");
}

/// Eight clients replacing one plugin's registered edges at once, 25 times: every request is
/// 201 (on PostgreSQL this was a 500 "a row with the same key already exists" for about a third
/// of them before replacements queued on a lock row).
async fn concurrent_registrations_all_succeed(app: TestApp) {
    app.publish(&crm_at("1.0.0")).await;
    app.publish(&analytics()).await;
    let app = std::sync::Arc::new(app);
    for _ in 0..25 {
        let clients: Vec<_> = (0..8)
            .map(|n| {
                let app = app.clone();
                let range = if n % 2 == 0 { "^1.0.0" } else { ">=1.0.0" };
                tokio::spawn(async move {
                    let edges = json!([edge("plugin-analytics", "plugin-crm", range)]);
                    register(&app, ADMIN, edges).await.status.as_u16()
                })
            })
            .collect();
        for client in clients {
            let status = client.await.expect("client");
            assert_eq!(status, 201, "a concurrent registration failed");
        }
    }
}

crate::on_both_backends!(
    seed_routes_register_list_and_find_dependents,
    resolution_and_can_uninstall_see_the_tenant,
    plans_install_with_dependencies_and_guard_uninstalls,
    concurrent_registrations_all_succeed,
);
