use reqwest::Method;
use serde_json::json;

use crate::helpers::TestApp;

async fn creates_shows_and_lists_tenants(app: TestApp) {
    let created = app
        .admin(
            Method::POST,
            "/api/v1/tenants",
            Some(&json!({"slug": "acme-corp", "name": "Acme Corp"})),
        )
        .await;
    let tenant = created.assert_status(201);
    assert_eq!(tenant["slug"], "acme-corp");
    assert_eq!(tenant["name"], "Acme Corp");
    assert_eq!(tenant["status"], "active");
    let id = tenant["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "id is a UUID: {id}");
    assert!(
        tenant["createdAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let shown = app
        .admin(Method::GET, "/api/v1/tenants/acme-corp", None)
        .await;
    assert_eq!(shown.assert_status(200), tenant);

    let defaulted = app.create_tenant("globex").await;
    assert_eq!(defaulted["name"], "globex", "name defaults to the slug");

    let listed = app.admin(Method::GET, "/api/v1/tenants", None).await;
    let slugs: Vec<_> = listed.assert_status(200)["tenants"]
        .as_array()
        .expect("tenants")
        .iter()
        .map(|t| t["slug"].as_str().expect("slug").to_owned())
        .collect();
    assert_eq!(slugs, ["acme-corp", "globex"]);
    assert!(listed.body.get("nextCursor").is_none());
}

async fn rejects_invalid_and_duplicate_slugs(app: TestApp) {
    for slug in ["A", "x", "-acme", "acme_corp", "Acme", &"a".repeat(64)] {
        app.admin(
            Method::POST,
            "/api/v1/tenants",
            Some(&json!({ "slug": slug })),
        )
        .await
        .assert_error(400, "INVALID_SLUG");
    }
    app.create_tenant("acme").await;
    app.admin(
        Method::POST,
        "/api/v1/tenants",
        Some(&json!({"slug": "acme"})),
    )
    .await
    .assert_error(409, "TENANT_EXISTS");
    app.admin(
        Method::POST,
        "/api/v1/tenants",
        Some(&json!({"slug": "beta", "name": "  "})),
    )
    .await
    .assert_error(400, "INVALID_BODY");
}

async fn paginates_tenants_by_slug(app: TestApp) {
    for slug in ["t-c", "t-a", "t-b"] {
        app.create_tenant(slug).await;
    }
    let first = app
        .admin(Method::GET, "/api/v1/tenants?limit=2", None)
        .await;
    let page = first.assert_status(200);
    assert_eq!(page["tenants"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["tenants"][0]["slug"], "t-a");
    assert_eq!(page["nextCursor"], "t-b");
    let second = app
        .admin(Method::GET, "/api/v1/tenants?limit=2&cursor=t-b", None)
        .await;
    let page = second.assert_status(200);
    assert_eq!(page["tenants"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["tenants"][0]["slug"], "t-c");
    assert!(page.get("nextCursor").is_none());
    app.admin(Method::GET, "/api/v1/tenants?limit=0", None)
        .await
        .assert_error(400, "INVALID_PARAMETER");
    app.admin(Method::GET, "/api/v1/tenants?limit=abc", None)
        .await
        .assert_error(400, "INVALID_PARAMETER");
}

async fn unknown_tenants_are_404(app: TestApp) {
    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"name": "x"}))),
        (Method::DELETE, None),
    ] {
        app.admin(method, "/api/v1/tenants/nobody", body.as_ref())
            .await
            .assert_error(404, "TENANT_NOT_FOUND");
    }
    app.admin(Method::GET, "/api/v1/tenants/NOT_A_SLUG", None)
        .await
        .assert_error(404, "TENANT_NOT_FOUND");
}

async fn suspension_blocks_plugin_credentials(app: TestApp) {
    app.create_tenant("acme").await;
    app.publish(&crate::helpers::crm_at("1.0.0")).await;
    let token = app.install("acme", "plugin-crm", json!({})).await;
    app.as_plugin(&token, Method::GET, "/api/v1/whoami")
        .await
        .assert_status(200);

    let patched = app
        .admin(
            Method::PATCH,
            "/api/v1/tenants/acme",
            Some(&json!({"status": "suspended", "name": "Acme"})),
        )
        .await;
    assert_eq!(patched.assert_status(200)["status"], "suspended");
    assert_eq!(patched.body["name"], "Acme");
    app.as_plugin(&token, Method::GET, "/api/v1/whoami")
        .await
        .assert_error(403, "TENANT_SUSPENDED");
    // The operator still manages a suspended tenant.
    app.admin(Method::GET, "/api/v1/tenants/acme/installations", None)
        .await
        .assert_status(200);

    app.admin(
        Method::PATCH,
        "/api/v1/tenants/acme",
        Some(&json!({"status": "active"})),
    )
    .await
    .assert_status(200);
    app.as_plugin(&token, Method::GET, "/api/v1/whoami")
        .await
        .assert_status(200);

    app.admin(
        Method::PATCH,
        "/api/v1/tenants/acme",
        Some(&json!({"status": "deleted"})),
    )
    .await
    .assert_error(400, "INVALID_BODY");
    app.admin(
        Method::PATCH,
        "/api/v1/tenants/acme",
        Some(&json!({"slug": "other"})),
    )
    .await
    .assert_error(400, "INVALID_BODY");
}

async fn deleting_a_tenant_removes_all_its_rows(app: TestApp) {
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    app.publish(&crate::helpers::crm_at("1.0.0")).await;
    let acme_token = app.install("acme", "plugin-crm", json!({})).await;
    let globex_token = app.install("globex", "plugin-crm", json!({})).await;

    app.admin(Method::DELETE, "/api/v1/tenants/acme", None)
        .await
        .assert_status(204);
    app.admin(Method::GET, "/api/v1/tenants/acme", None)
        .await
        .assert_error(404, "TENANT_NOT_FOUND");
    app.as_plugin(&acme_token, Method::GET, "/api/v1/whoami")
        .await
        .assert_error(401, "UNAUTHENTICATED");

    // A new tenant with the same slug starts empty: nothing of the old one survived.
    app.create_tenant("acme").await;
    let listed = app
        .admin(Method::GET, "/api/v1/tenants/acme/installations", None)
        .await;
    assert_eq!(listed.assert_status(200)["installations"], json!([]));

    // The other tenant is untouched.
    app.as_plugin(&globex_token, Method::GET, "/api/v1/whoami")
        .await
        .assert_status(200);
}

crate::on_both_backends!(
    creates_shows_and_lists_tenants,
    rejects_invalid_and_duplicate_slugs,
    paginates_tenants_by_slug,
    unknown_tenants_are_404,
    suspension_blocks_plugin_credentials,
    deleting_a_tenant_removes_all_its_rows,
);
