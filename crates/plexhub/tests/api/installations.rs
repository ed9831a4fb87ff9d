use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestApp, analytics, crm_at};

const INSTALLS: &str = "/api/v1/tenants/acme/installations";

async fn installs_with_a_credential_and_follows_the_lifecycle(app: TestApp) {
    app.create_tenant("acme").await;
    app.publish(&crm_at("1.0.0")).await;
    let body = json!({
        "pluginId": "plugin-crm",
        "baseUrl": "http://127.0.0.1:3100/",
        "allowedOrigins": ["https://app.acme.test"],
        "grants": ["plugin.analytics.reports.read"],
    });
    let reply = app.admin(Method::POST, INSTALLS, Some(&body)).await;
    let installed = reply.assert_status(201);
    let installation = &installed["installation"];
    assert_eq!(installation["tenant"], "acme");
    assert_eq!(installation["pluginId"], "plugin-crm");
    assert_eq!(installation["version"], "1.0.0");
    assert_eq!(installation["state"], "INSTALLED");
    assert_eq!(installation["baseUrl"], "http://127.0.0.1:3100");
    assert_eq!(
        installation["allowedOrigins"],
        json!(["https://app.acme.test"])
    );
    assert_eq!(
        installation["grants"],
        json!(["plugin.analytics.reports.read"])
    );
    assert!(installation["installedAt"].is_string());
    let credential_id = installed["credential"]["id"].as_str().expect("id");
    let token = installed["credential"]["token"].as_str().expect("token");
    assert!(
        token.starts_with(&format!("phk_{credential_id}.")),
        "{token}"
    );

    let who = app.as_plugin(token, Method::GET, "/api/v1/whoami").await;
    assert_eq!(
        who.assert_status(200),
        &json!({"kind": "plugin", "tenant": "acme", "pluginId": "plugin-crm", "credentialId": credential_id})
    );

    let one = format!("{INSTALLS}/plugin-crm");
    let shown = app.admin(Method::GET, &one, None).await;
    assert_eq!(shown.assert_status(200), installation);
    let listed = app.admin(Method::GET, INSTALLS, None).await;
    assert_eq!(
        listed.assert_status(200)["installations"],
        json!([installation])
    );

    let deactivate = format!("{one}/deactivate");
    let activate = format!("{one}/activate");
    app.admin(Method::POST, &deactivate, None)
        .await
        .assert_error(409, "INVALID_TRANSITION");
    let active = app.admin(Method::POST, &activate, None).await;
    assert_eq!(active.assert_status(200)["state"], "ACTIVE");
    let disabled = app.admin(Method::POST, &deactivate, None).await;
    assert_eq!(disabled.assert_status(200)["state"], "DISABLED");
    let again = app.admin(Method::POST, &activate, None).await;
    assert_eq!(again.assert_status(200)["state"], "ACTIVE");
    let stored = app.admin(Method::GET, &one, None).await;
    assert_eq!(stored.assert_status(200)["state"], "ACTIVE");

    app.admin(Method::POST, INSTALLS, Some(&body))
        .await
        .assert_error(409, "ALREADY_INSTALLED");

    app.admin(Method::DELETE, &one, None)
        .await
        .assert_status(204);
    app.admin(Method::GET, &one, None)
        .await
        .assert_error(404, "NOT_INSTALLED");
    app.admin(Method::DELETE, &one, None)
        .await
        .assert_error(404, "NOT_INSTALLED");
    app.as_plugin(token, Method::GET, "/api/v1/whoami")
        .await
        .assert_error(401, "UNAUTHENTICATED");
}

async fn activate_flag_and_version_ranges_pick_the_version(app: TestApp) {
    app.create_tenant("acme").await;
    for version in ["1.0.0", "1.2.0", "2.0.0", "3.0.0-beta.1"] {
        app.publish(&crm_at(version)).await;
    }
    let install = |version: Option<&str>| json!({"pluginId": "plugin-crm", "baseUrl": "http://crm.internal:3100", "version": version, "activate": true});
    let one = format!("{INSTALLS}/plugin-crm");

    let latest = app
        .admin(Method::POST, INSTALLS, Some(&install(None)))
        .await;
    let installation = &latest.assert_status(201)["installation"];
    assert_eq!(
        installation["version"], "2.0.0",
        "latest release, not the pre-release"
    );
    assert_eq!(installation["state"], "ACTIVE");
    app.admin(Method::DELETE, &one, None)
        .await
        .assert_status(204);

    for (range, expected) in [
        ("^1.0.0", "1.2.0"),
        ("~1.0", "1.0.0"),
        (">=1.1.0 <2.0.0", "1.2.0"),
        ("1.x || 2.x", "2.0.0"),
        ("1.0.0", "1.0.0"),
    ] {
        let reply = app
            .admin(Method::POST, INSTALLS, Some(&install(Some(range))))
            .await;
        assert_eq!(
            reply.assert_status(201)["installation"]["version"],
            expected,
            "range {range}"
        );
        app.admin(Method::DELETE, &one, None)
            .await
            .assert_status(204);
    }

    let none = app
        .admin(Method::POST, INSTALLS, Some(&install(Some("^4.0.0"))))
        .await;
    none.assert_error(404, "VERSION_NOT_FOUND");
    assert_eq!(
        none.body["error"]["details"]["available"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    app.admin(Method::POST, INSTALLS, Some(&install(Some("not a range"))))
        .await
        .assert_error(400, "INVALID_BODY");
}

async fn unmet_dependencies_are_named_with_their_reason(app: TestApp) {
    app.create_tenant("acme").await;
    app.publish(&crm_at("2.0.0")).await;
    app.publish(&crm_at("1.5.0")).await;
    app.publish(&analytics()).await;

    let missing = app
        .admin(
            Method::POST,
            INSTALLS,
            Some(&json!({"pluginId": "plugin-analytics", "baseUrl": "http://a:1"})),
        )
        .await;
    missing.assert_error(409, "DEPENDENCY_UNMET");
    let unmet = missing.body["error"]["details"]["unmet"]
        .as_array()
        .expect("unmet")
        .clone();
    assert!(!unmet.is_empty());
    assert!(
        unmet
            .iter()
            .all(|u| u["pluginId"] == "plugin-crm" && u["range"] == "^1.0.0")
    );
    assert_eq!(
        unmet[0]["reason"],
        "Reads contacts for the contacts summary and forecast reports"
    );
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("plugin-crm")
    );

    app.install("acme", "plugin-crm", json!({"version": "2.0.0"}))
        .await;
    let mismatch = app
        .admin(
            Method::POST,
            INSTALLS,
            Some(&json!({"pluginId": "plugin-analytics", "baseUrl": "http://a:1"})),
        )
        .await;
    mismatch.assert_error(409, "DEPENDENCY_UNMET");
    assert_eq!(
        mismatch.body["error"]["details"]["unmet"][0]["installedVersion"],
        "2.0.0"
    );

    app.admin(Method::DELETE, &format!("{INSTALLS}/plugin-crm"), None)
        .await
        .assert_status(204);
    app.install("acme", "plugin-crm", json!({"version": "^1"}))
        .await;
    let ok = app
        .admin(
            Method::POST,
            INSTALLS,
            Some(&json!({"pluginId": "plugin-analytics", "baseUrl": "http://a:1"})),
        )
        .await;
    assert_eq!(ok.assert_status(201)["installation"]["version"], "1.0.0");
}

async fn rejects_bad_install_requests(app: TestApp) {
    app.create_tenant("acme").await;
    app.publish(&crm_at("1.0.0")).await;
    for body in [
        json!({"pluginId": "plugin-crm", "baseUrl": "ftp://crm"}),
        json!({"pluginId": "plugin-crm", "baseUrl": "http://user:pw@crm"}),
        json!({"pluginId": "plugin-crm", "baseUrl": "http://crm", "allowedOrigins": ["https://x.test/path"]}),
        json!({"pluginId": "plugin-crm", "baseUrl": "http://crm", "grants": ["has space"]}),
        json!({"pluginId": "crm", "baseUrl": "http://crm"}),
        json!({"pluginId": "plugin-crm", "baseUrl": "http://crm", "extra": 1}),
        json!({"pluginId": "plugin-crm"}),
        json!({"pluginId": "plugin-crm", "baseUrl": 42}),
    ] {
        app.admin(Method::POST, INSTALLS, Some(&body))
            .await
            .assert_error(400, "INVALID_BODY");
    }
    app.admin(
        Method::POST,
        INSTALLS,
        Some(&json!({"pluginId": "plugin-ghost", "baseUrl": "http://g"})),
    )
    .await
    .assert_error(404, "PLUGIN_NOT_FOUND");
    app.admin(
        Method::POST,
        "/api/v1/tenants/nobody/installations",
        Some(&json!({"pluginId": "plugin-crm", "baseUrl": "http://crm"})),
    )
    .await
    .assert_error(404, "TENANT_NOT_FOUND");
    app.admin(
        Method::GET,
        "/api/v1/tenants/acme/installations/plugin-crm",
        None,
    )
    .await
    .assert_error(404, "NOT_INSTALLED");
}

async fn credentials_rotate_list_and_revoke(app: TestApp) {
    app.create_tenant("acme").await;
    app.publish(&crm_at("1.0.0")).await;
    let first = app.install("acme", "plugin-crm", json!({})).await;
    let credentials = format!("{INSTALLS}/plugin-crm/credentials");

    let issued = app.admin(Method::POST, &credentials, None).await;
    let second = issued.assert_status(201)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_ne!(first, second);
    app.as_plugin(&first, Method::GET, "/api/v1/whoami")
        .await
        .assert_status(200);
    app.as_plugin(&second, Method::GET, "/api/v1/whoami")
        .await
        .assert_status(200);

    let listed = app.admin(Method::GET, &credentials, None).await;
    let list = listed.assert_status(200)["credentials"]
        .as_array()
        .expect("list")
        .clone();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter().all(|c| c.get("token").is_none()),
        "no secrets in listings"
    );
    assert!(
        !listed
            .body
            .to_string()
            .contains(first.split_once('.').expect("token").1)
    );
    assert!(
        list.iter().all(|c| c["lastUsedAt"].is_string()),
        "both were used: {list:?}"
    );

    let first_id = first
        .trim_start_matches("phk_")
        .split_once('.')
        .expect("token")
        .0;
    app.admin(Method::DELETE, &format!("{credentials}/{first_id}"), None)
        .await
        .assert_status(204);
    app.as_plugin(&first, Method::GET, "/api/v1/whoami")
        .await
        .assert_error(401, "UNAUTHENTICATED");
    app.as_plugin(&second, Method::GET, "/api/v1/whoami")
        .await
        .assert_status(200);
    app.admin(Method::DELETE, &format!("{credentials}/{first_id}"), None)
        .await
        .assert_error(404, "CREDENTIAL_NOT_FOUND");
    app.admin(Method::DELETE, &format!("{credentials}/not-an-id"), None)
        .await
        .assert_error(404, "CREDENTIAL_NOT_FOUND");
    app.admin(
        Method::POST,
        "/api/v1/tenants/acme/installations/plugin-ghost/credentials",
        None,
    )
    .await
    .assert_error(404, "NOT_INSTALLED");
}

crate::on_both_backends!(
    installs_with_a_credential_and_follows_the_lifecycle,
    activate_flag_and_version_ranges_pick_the_version,
    unmet_dependencies_are_named_with_their_reason,
    rejects_bad_install_requests,
    credentials_rotate_list_and_revoke,
);
