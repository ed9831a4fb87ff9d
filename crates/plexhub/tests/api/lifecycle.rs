//! The catalog lifecycle (#21): review, rejection, deprecation and yank through the API, what
//! installs and plans may pick, search, the audit trail and the lifecycle events.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, Options, TestApp, analytics, crm_at, spawn_with};

async fn act(app: &TestApp, plugin: &str, version: &str, body: Value) -> crate::helpers::Reply {
    app.admin(
        Method::POST,
        &format!("/api/v1/plugins/{plugin}/versions/{version}/transitions"),
        Some(&body),
    )
    .await
}

async fn install_reply(app: &TestApp, tenant: &str, body: Value) -> crate::helpers::Reply {
    app.admin(
        Method::POST,
        &format!("/api/v1/tenants/{tenant}/installations"),
        Some(&body),
    )
    .await
}

fn plugin_ids(list: &Value) -> Vec<String> {
    list["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .filter_map(|p| p["pluginId"].as_str().map(str::to_owned))
        .collect()
}

async fn review_flow(app: TestApp) {
    app.create_tenant("acme").await;
    let draft = app
        .admin(Method::POST, "/api/v1/plugins", Some(&crm_at("1.0.0")))
        .await;
    assert_eq!(draft.assert_status(201)["status"], "DRAFT");
    // A draft cannot be installed, and the refusal says why.
    let refused = install_reply(
        &app,
        "acme",
        json!({"pluginId": "plugin-crm", "baseUrl": "http://127.0.0.1:9"}),
    )
    .await;
    refused.assert_error(404, "VERSION_NOT_FOUND");
    let message = refused.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("1.0.0 is a draft"), "{message}");
    assert_eq!(
        refused.body["error"]["details"]["unavailable"][0]["status"],
        "DRAFT"
    );

    // Approving a draft skips review: 409 naming what is allowed.
    let invalid = act(&app, "plugin-crm", "1.0.0", json!({"action": "approve"})).await;
    invalid.assert_error(409, "INVALID_TRANSITION");
    assert_eq!(
        invalid.body["error"]["details"]["allowed"],
        json!(["submit"])
    );
    assert_eq!(invalid.body["error"]["details"]["status"], "DRAFT");

    let pending = act(
        &app,
        "plugin-crm",
        "1.0.0",
        json!({"action": "submit", "by": "alice"}),
    )
    .await;
    let pending = pending.assert_status(200);
    assert_eq!(pending["status"], "PENDING_REVIEW");
    assert_eq!(pending["allowedActions"], json!(["approve", "reject"]));
    let published = act(
        &app,
        "plugin-crm",
        "1.0.0",
        json!({"action": "approve", "by": "bob", "reason": "looks good"}),
    )
    .await;
    let published = published.assert_status(200);
    assert_eq!(published["status"], "PUBLISHED");
    assert_eq!(published["installable"], true);

    // 1.1.0 is rejected: a reason is required, and recorded.
    app.admin(Method::POST, "/api/v1/plugins", Some(&crm_at("1.1.0")))
        .await
        .assert_status(201);
    act(&app, "plugin-crm", "1.1.0", json!({"action": "submit"}))
        .await
        .assert_status(200);
    act(&app, "plugin-crm", "1.1.0", json!({"action": "reject"}))
        .await
        .assert_error(400, "INVALID_BODY");
    let rejected = act(
        &app,
        "plugin-crm",
        "1.1.0",
        json!({"action": "reject", "reason": "leaks contacts", "by": "carol"}),
    )
    .await;
    let rejected = rejected.assert_status(200);
    assert_eq!(rejected["status"], "REJECTED");
    assert_eq!(rejected["rejection"], "leaks contacts");
    assert_eq!(rejected["allowedActions"], json!([]));
    act(&app, "plugin-crm", "1.1.0", json!({"action": "submit"}))
        .await
        .assert_error(409, "INVALID_TRANSITION");

    // Installs pick the published 1.0.0, never the rejected 1.1.0.
    let installed = install_reply(
        &app,
        "acme",
        json!({"pluginId": "plugin-crm", "baseUrl": "http://127.0.0.1:9"}),
    )
    .await;
    assert_eq!(
        installed.assert_status(201)["installation"]["version"],
        "1.0.0"
    );
    app.create_tenant("globex").await;
    let refused = install_reply(
        &app,
        "globex",
        json!({"pluginId": "plugin-crm", "version": "1.1.0", "baseUrl": "http://127.0.0.1:9"}),
    )
    .await;
    refused.assert_error(404, "VERSION_NOT_FOUND");
    let message = refused.body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("1.1.0 is rejected by review"), "{message}");

    // The audit trail names who did what and why, in order.
    let trail = app
        .admin(
            Method::GET,
            "/api/v1/plugins/plugin-crm/versions/1.0.0/transitions",
            None,
        )
        .await;
    let steps: Vec<(String, String, String)> = trail.assert_status(200)["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .map(|t| {
            (
                t["action"].as_str().unwrap_or("").to_owned(),
                t["to"].as_str().unwrap_or("").to_owned(),
                t["by"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("publish", "DRAFT", "admin"),
        ("submit", "PENDING_REVIEW", "alice"),
        ("approve", "PUBLISHED", "bob"),
    ]
    .iter()
    .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(steps, expected);
    assert_eq!(
        trail.body["transitions"][2]["reason"], "looks good",
        "the reason is kept"
    );

    // Search by status finds the plugin with a rejected version; nothing is a draft now.
    let rejected = app
        .admin(Method::GET, "/api/v1/plugins?status=REJECTED", None)
        .await;
    assert_eq!(plugin_ids(rejected.assert_status(200)), ["plugin-crm"]);
    let drafts = app
        .admin(Method::GET, "/api/v1/plugins?status=DRAFT", None)
        .await;
    assert!(plugin_ids(drafts.assert_status(200)).is_empty());
    app.admin(Method::GET, "/api/v1/plugins?status=LIVE", None)
        .await
        .assert_error(400, "INVALID_PARAMETER");
}

async fn review_flow_on(backend: Backend) {
    let options = Options {
        catalog_review: true,
        ..Options::default()
    };
    if let Some(app) = spawn_with(backend, options).await {
        review_flow(app).await;
    }
}

#[tokio::test]
async fn review_flow_on_sqlite() {
    review_flow_on(Backend::Sqlite).await;
}

#[tokio::test]
async fn review_flow_on_postgres() {
    review_flow_on(Backend::Postgres).await;
}

async fn yanked_and_deprecated_versions(app: TestApp) {
    app.create_tenant("acme").await;
    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        app.publish(&crm_at(version)).await;
    }
    app.publish(&analytics()).await;
    let crm = app.install("acme", "plugin-crm", json!({})).await;

    // Yanking the installed 1.2.0 keeps the installation; new installs skip it.
    act(&app, "plugin-crm", "1.2.0", json!({"action": "yank"}))
        .await
        .assert_error(400, "INVALID_BODY");
    let yanked = act(
        &app,
        "plugin-crm",
        "1.2.0",
        json!({"action": "yank", "reason": "corrupts deals"}),
    )
    .await;
    let yanked = yanked.assert_status(200);
    assert_eq!(
        (yanked["yanked"].clone(), yanked["installable"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(yanked["yankReason"], "corrupts deals");
    assert_eq!(yanked["allowedActions"], json!(["deprecate", "unyank"]));
    act(
        &app,
        "plugin-crm",
        "1.2.0",
        json!({"action": "yank", "reason": "again"}),
    )
    .await
    .assert_error(409, "INVALID_TRANSITION");
    let shown = app
        .admin(
            Method::GET,
            "/api/v1/tenants/acme/installations/plugin-crm",
            None,
        )
        .await;
    let shown = shown.assert_status(200);
    assert_eq!(
        (shown["version"].clone(), shown["yanked"].clone()),
        (json!("1.2.0"), json!(true))
    );
    app.as_plugin(&crm, Method::GET, "/api/v1/whoami")
        .await
        .assert_status(200);

    app.create_tenant("globex").await;
    let fresh = install_reply(
        &app,
        "globex",
        json!({"pluginId": "plugin-crm", "baseUrl": "http://127.0.0.1:9"}),
    )
    .await;
    assert_eq!(
        fresh.assert_status(201)["installation"]["version"],
        "1.1.0",
        "the highest unyanked version"
    );
    let listed = app
        .admin(Method::GET, "/api/v1/plugins?q=customer%20plugin-crm", None)
        .await;
    let listed = listed.assert_status(200);
    assert_eq!(plugin_ids(listed), ["plugin-crm"]);
    assert_eq!(listed["plugins"][0]["latestVersion"], "1.1.0");
    assert_eq!(
        listed["plugins"][0]["installableVersions"],
        json!(["1.0.0", "1.1.0"])
    );

    // An upgrade plan to a yanked version proposes the nearest installable one.
    act(
        &app,
        "plugin-crm",
        "1.1.0",
        json!({"action": "yank", "reason": "same bug"}),
    )
    .await
    .assert_status(200);
    let plan = app
        .admin(
            Method::POST,
            "/api/v1/tenants/globex/plans/upgrade",
            Some(&json!({"pluginId": "plugin-crm", "version": "1.2.0"})),
        )
        .await;
    let plan = plan.assert_status(200);
    assert_eq!(plan["ok"], false);
    assert_eq!(plan["unavailable"], "1.2.0 is yanked");
    assert_eq!(plan["proposal"], "1.0.0");

    // With every 1.x yanked, a plan for Analytics (crm ^1.0.0) explains it in words.
    act(
        &app,
        "plugin-crm",
        "1.0.0",
        json!({"action": "yank", "reason": "all broken"}),
    )
    .await
    .assert_status(200);
    app.create_tenant("initech").await;
    let conflict = app
        .admin(
            Method::POST,
            "/api/v1/tenants/initech/plans/install",
            Some(&json!({"pluginId": "plugin-analytics"})),
        )
        .await;
    conflict.assert_error(409, "DEPENDENCY_CONFLICT");
    let text = conflict.body["error"]["details"]["explanation"]["text"]
        .as_str()
        .unwrap_or("");
    assert!(text.contains("plugin-crm 1.0.0 is yanked"), "{text}");
    let facts = &conflict.body["error"]["details"]["explanation"]["facts"];
    assert!(
        facts
            .as_array()
            .expect("facts")
            .iter()
            .any(|f| f["kind"] == "unavailable" && f["reason"] == "yanked"),
        "{facts}"
    );
    // Acme, which installed a yanked version, keeps it: Analytics plans around it.
    let plan = app
        .admin(
            Method::POST,
            "/api/v1/tenants/acme/plans/install",
            Some(&json!({"pluginId": "plugin-analytics"})),
        )
        .await;
    assert_eq!(
        plan.assert_status(200)["steps"][0],
        json!({"pluginId": "plugin-crm", "version": "1.2.0", "action": "keep"})
    );

    // Unyank and deprecate 1.0.0: installable again, with its deprecation shown.
    act(&app, "plugin-crm", "1.0.0", json!({"action": "unyank"}))
        .await
        .assert_status(200);
    let deprecated = act(
        &app,
        "plugin-crm",
        "1.0.0",
        json!({"action": "deprecate", "message": "use 2.x", "replacement": "plugin-crm@2"}),
    )
    .await;
    let deprecated = deprecated.assert_status(200);
    assert_eq!(deprecated["status"], "DEPRECATED");
    assert_eq!(
        deprecated["deprecation"],
        json!({"message": "use 2.x", "replacement": "plugin-crm@2"})
    );
    let plugin = app
        .admin(Method::GET, "/api/v1/plugins/plugin-crm", None)
        .await;
    let plugin = plugin.assert_status(200);
    assert_eq!(plugin["latestVersion"], "1.0.0");
    assert_eq!(plugin["deprecation"]["message"], "use 2.x");
    act(
        &app,
        "plugin-crm",
        "1.0.0",
        json!({"action": "deprecate", "message": "again"}),
    )
    .await
    .assert_error(409, "INVALID_TRANSITION");
    act(
        &app,
        "plugin-crm",
        "1.0.0",
        json!({"action": "approve", "message": "x"}),
    )
    .await
    .assert_error(400, "INVALID_BODY");
    act(
        &app,
        "plugin-crm",
        "9.0.0",
        json!({"action": "yank", "reason": "x"}),
    )
    .await
    .assert_error(404, "VERSION_NOT_FOUND");

    // The bus carried the lifecycle events to the tenants' plugins.
    let stream = crate::events::read_stream(
        &app,
        &crm,
        "?pattern=core.plugin.%23",
        Duration::from_millis(500),
    )
    .await;
    for event in [
        "event: core.plugin.published",
        "event: core.plugin.yanked",
        "event: core.plugin.deprecated",
    ] {
        assert!(stream.contains(event), "{event} missing: {stream}");
    }
    assert!(stream.contains("corrupts deals"), "{stream}");
}

async fn search_pages_over_names_descriptions_and_tags(app: TestApp) {
    for n in 0..5 {
        let manifest = json!({
            "id": format!("plugin-p{n}"),
            "name": format!("Plugin {n}"),
            "version": "1.0.0",
            "description": if n % 2 == 0 { "Sends invoices" } else { "Tracks leads" },
            "tags": if n == 3 { json!(["sales", "crm"]) } else { json!(["misc"]) },
        });
        app.publish(&manifest).await;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = app
            .admin(
                Method::GET,
                &format!("/api/v1/plugins?limit=2{cursor}"),
                None,
            )
            .await;
        let page = page.assert_status(200).clone();
        seen.extend(plugin_ids(&page));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        [
            "plugin-p0",
            "plugin-p1",
            "plugin-p2",
            "plugin-p3",
            "plugin-p4"
        ]
    );
    let invoices = app
        .admin(Method::GET, "/api/v1/plugins?q=INVOICES%20plugin", None)
        .await;
    assert_eq!(
        plugin_ids(invoices.assert_status(200)),
        ["plugin-p0", "plugin-p2", "plugin-p4"]
    );
    let tagged = app
        .admin(Method::GET, "/api/v1/plugins?tag=sales", None)
        .await;
    assert_eq!(plugin_ids(tagged.assert_status(200)), ["plugin-p3"]);
    let by_tag_word = app.admin(Method::GET, "/api/v1/plugins?q=crm", None).await;
    assert_eq!(plugin_ids(by_tag_word.assert_status(200)), ["plugin-p3"]);
    app.admin(Method::GET, "/api/v1/plugins?limit=0", None)
        .await
        .assert_error(400, "INVALID_PARAMETER");
}

crate::on_both_backends!(
    yanked_and_deprecated_versions,
    search_pages_over_names_descriptions_and_tags,
);
