//! What changes on an installation without reinstalling it: grants and allowed origins
//! (validated, effective at once and on another hub instance within a second, visible in the
//! access explanation), and the base URL of a plugin installed without one.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::gateway::{acme_granting, upstream};
use crate::helpers::TestApp;

const ANALYTICS: &str = "/api/v1/tenants/acme/installations/plugin-analytics";

async fn contacts_status(app: &TestApp, token: &str) -> u16 {
    app.send(
        Method::GET,
        "/api/v1/proxy/crm.contacts/contacts",
        Some(token),
        &[],
        None,
    )
    .await
    .status
    .as_u16()
}

async fn grants_change_without_reinstalling(app: TestApp) {
    let plugin = upstream().await;
    let (_, analytics) = acme_granting(&app, &plugin.base, json!(["plugin.crm.deals.read"])).await;
    let denied = app
        .send(
            Method::GET,
            "/api/v1/proxy/crm.contacts/contacts",
            Some(&analytics),
            &[],
            None,
        )
        .await;
    denied.assert_error(403, "PERMISSION_DENIED");

    let grants = format!("{ANALYTICS}/grants");
    let body = json!({ "grants": ["plugin.crm.contacts.read", "plugin.crm.deals.read", "plugin.crm.contacts.read"] });
    let updated = app.admin(Method::PUT, &grants, Some(&body)).await;
    assert_eq!(
        updated.assert_status(200)["grants"],
        json!(["plugin.crm.contacts.read", "plugin.crm.deals.read"])
    );
    assert_eq!(contacts_status(&app, &analytics).await, 200);
    let explained = app
        .send(
            Method::GET,
            "/api/v1/access/explain?service=crm.contacts&method=GET&path=/contacts",
            Some(&analytics),
            &[],
            None,
        )
        .await;
    let explained = explained.assert_status(200);
    assert_eq!(explained["allowed"], true);
    assert!(
        explained["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .any(|check| check["detail"]
                .as_str()
                .unwrap_or("")
                .contains("granted: plugin.crm.contacts.read")),
        "{explained}"
    );
    let shown = app.admin(Method::GET, ANALYTICS, None).await;
    assert_eq!(
        shown.assert_status(200)["grants"],
        json!(["plugin.crm.contacts.read", "plugin.crm.deals.read"])
    );

    // Nothing its dependencies require: refused, with what may be granted.
    let unknown =
        json!({ "grants": ["plugin.crm.contacts.read", "plugin.billing.invoices.write"] });
    let refused = app.admin(Method::PUT, &grants, Some(&unknown)).await;
    refused.assert_error(400, "UNKNOWN_GRANT");
    assert_eq!(
        refused.body["error"]["details"]["unknown"],
        json!(["plugin.billing.invoices.write"])
    );
    assert!(
        refused.body["error"]["details"]["grantable"]
            .as_array()
            .expect("grantable")
            .contains(&json!("plugin.crm.contacts.read"))
    );
    for bad in [
        json!({ "grants": ["has space"] }),
        json!({ "grants": "x" }),
        json!({}),
    ] {
        app.admin(Method::PUT, &grants, Some(&bad))
            .await
            .assert_error(400, "INVALID_BODY");
    }
    app.admin(
        Method::PUT,
        "/api/v1/tenants/acme/installations/plugin-ghost/grants",
        Some(&json!({ "grants": [] })),
    )
    .await
    .assert_error(404, "NOT_INSTALLED");
    app.admin(
        Method::PUT,
        "/api/v1/tenants/nobody/installations/plugin-analytics/grants",
        Some(&json!({ "grants": [] })),
    )
    .await
    .assert_error(404, "TENANT_NOT_FOUND");

    // Taking a grant away is as immediate.
    app.admin(Method::PUT, &grants, Some(&json!({ "grants": [] })))
        .await
        .assert_status(200);
    assert_eq!(contacts_status(&app, &analytics).await, 403);

    // A plugin may not change its own grants.
    app.send(
        Method::PUT,
        &grants,
        Some(&analytics),
        &[],
        Some(&json!({ "grants": [] })),
    )
    .await
    .assert_error(403, "FORBIDDEN");
}

async fn allowed_origins_change_without_reinstalling(app: TestApp) {
    let plugin = upstream().await;
    acme_granting(&app, &plugin.base, json!([])).await;
    let origins = format!("{ANALYTICS}/allowed-origins");
    let body = json!({ "allowedOrigins": ["https://app.acme.test", "http://127.0.0.1:7000"] });
    let updated = app.admin(Method::PUT, &origins, Some(&body)).await;
    assert_eq!(
        updated.assert_status(200)["allowedOrigins"],
        json!(["https://app.acme.test", "http://127.0.0.1:7000"])
    );
    let shown = app.admin(Method::GET, ANALYTICS, None).await;
    assert_eq!(
        shown.assert_status(200)["allowedOrigins"],
        json!(["https://app.acme.test", "http://127.0.0.1:7000"])
    );
    app.admin(
        Method::PUT,
        &origins,
        Some(&json!({ "allowedOrigins": ["https://app.acme.test/path"] })),
    )
    .await
    .assert_error(400, "INVALID_BODY");
    let cleared = app
        .admin(
            Method::PUT,
            &origins,
            Some(&json!({ "allowedOrigins": [] })),
        )
        .await;
    assert_eq!(cleared.assert_status(200)["allowedOrigins"], json!([]));
}

/// A plugin whose manifest exposes no service installs without a `baseUrl`, calls others, is
/// refused as a target with its own code, and gets a `baseUrl` later by an update.
async fn caller_only_plugins_need_no_base_url(app: TestApp) {
    let plugin = upstream().await;
    let (_, analytics) = acme_granting(&app, &plugin.base, json!([])).await;
    let console: serde_json::Value =
        serde_json::from_str(include_str!("../../../../examples/manifests/console.json"))
            .expect("console manifest");
    app.publish(&console).await;
    let installs = "/api/v1/tenants/acme/installations";
    let body = json!({
        "pluginId": "plugin-console", "activate": true,
        "grants": ["plugin.crm.contacts.read"],
    });
    let installed = app.admin(Method::POST, installs, Some(&body)).await;
    let installed = installed.assert_status(201).clone();
    assert_eq!(
        installed["installation"]["baseUrl"],
        serde_json::Value::Null
    );
    let console_token = installed["credential"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    // It calls CRM like any plugin.
    assert_eq!(contacts_status(&app, &console_token).await, 200);

    // A call to it says why it cannot be called (the seed's flat error shape).
    let call = json!({
        "targetPluginId": "plugin-console", "targetServiceName": "console.screens",
        "method": "GET", "path": "/",
    });
    let refused = app
        .send(
            Method::POST,
            "/api/plugin-gateway/call",
            Some(&analytics),
            &[],
            Some(&call),
        )
        .await;
    assert_eq!(refused.status, 404, "{}", refused.body);
    assert_eq!(refused.body["code"], "NOT_CALLABLE", "{}", refused.body);

    // A plugin whose manifest exposes services needs one.
    app.create_tenant("globex").await;
    let body = json!({ "pluginId": "plugin-crm" });
    let refused = app
        .admin(
            Method::POST,
            "/api/v1/tenants/globex/installations",
            Some(&body),
        )
        .await;
    refused.assert_error(400, "INVALID_BODY");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("needs a baseUrl"),
        "{}",
        refused.body
    );

    // Setting one later is an update; an ACTIVE plugin's services move with it.
    let console_url = "/api/v1/tenants/acme/installations/plugin-console/base-url";
    let set = app
        .admin(
            Method::PUT,
            console_url,
            Some(&json!({ "baseUrl": "http://127.0.0.1:3999" })),
        )
        .await;
    assert_eq!(set.assert_status(200)["baseUrl"], "http://127.0.0.1:3999");
    let crm_url = "/api/v1/tenants/acme/installations/plugin-crm/base-url";
    app.admin(
        Method::PUT,
        crm_url,
        Some(&json!({ "baseUrl": "http://127.0.0.1:9" })),
    )
    .await
    .assert_status(200);
    let moved = app
        .send(
            Method::GET,
            "/api/v1/proxy/crm.contacts/contacts",
            Some(&console_token),
            &[],
            None,
        )
        .await;
    moved.assert_error(502, "UPSTREAM_UNREACHABLE");
    app.admin(
        Method::PUT,
        crm_url,
        Some(&json!({ "baseUrl": plugin.base })),
    )
    .await
    .assert_status(200);
    assert_eq!(contacts_status(&app, &console_token).await, 200);
    app.admin(Method::PUT, crm_url, Some(&json!({ "baseUrl": "ftp://x" })))
        .await
        .assert_error(400, "INVALID_BODY");
}

crate::on_both_backends!(
    grants_change_without_reinstalling,
    allowed_origins_change_without_reinstalling,
    caller_only_plugins_need_no_base_url,
);

/// A grant changed through one hub takes effect on another within a second.
#[tokio::test]
async fn a_grant_change_reaches_every_instance_within_a_second() {
    let Some((a, b)) = crate::helpers::two_hubs(None).await else {
        return;
    };
    let plugin = upstream().await;
    let (_, analytics) = acme_granting(&a, &plugin.base, json!(["plugin.crm.deals.read"])).await;
    // Hub b has decided (and cached) a denial.
    assert_eq!(contacts_status(&b, &analytics).await, 403);
    a.admin(
        Method::PUT,
        &format!("{ANALYTICS}/grants"),
        Some(&json!({ "grants": ["plugin.crm.contacts.read"] })),
    )
    .await
    .assert_status(200);
    let started = tokio::time::Instant::now();
    while contacts_status(&b, &analytics).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "hub b still denies a second after the grant"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.admin(
        Method::PUT,
        &format!("{ANALYTICS}/grants"),
        Some(&json!({ "grants": [] })),
    )
    .await
    .assert_status(200);
    let started = tokio::time::Instant::now();
    while contacts_status(&b, &analytics).await != 403 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "hub b still allows a second after the grant was taken away"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
