use reqwest::Method;
use serde_json::json;

use crate::helpers::{ADMIN, TestApp, crm_at};

async fn every_api_route_needs_a_known_bearer(app: TestApp) {
    for (method, path) in [
        (Method::GET, "/api/v1/whoami"),
        (Method::GET, "/api/v1/tenants"),
        (Method::POST, "/api/v1/tenants"),
        (Method::GET, "/api/v1/plugins"),
        (
            Method::DELETE,
            "/api/v1/tenants/acme/installations/plugin-crm/credentials/0123456789abcdef",
        ),
    ] {
        app.send(method.clone(), path, None, &[], None)
            .await
            .assert_error(401, "UNAUTHENTICATED");
        app.send(method.clone(), path, Some("wrong-token"), &[], None)
            .await
            .assert_error(401, "UNAUTHENTICATED");
        app.send(
            method,
            path,
            Some("phk_0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            &[],
            None,
        )
        .await
        .assert_error(401, "UNAUTHENTICATED");
    }
    app.send(
        Method::GET,
        "/api/v1/whoami",
        None,
        &[("authorization", &format!("Basic {ADMIN}"))],
        None,
    )
    .await
    .assert_error(401, "UNAUTHENTICATED");
    // Authentication comes before body validation.
    app.send(
        Method::POST,
        "/api/v1/tenants",
        None,
        &[("content-type", "application/json")],
        None,
    )
    .await
    .assert_error(401, "UNAUTHENTICATED");
    let admin = app.admin(Method::GET, "/api/v1/whoami", None).await;
    assert_eq!(admin.assert_status(200), &json!({"kind": "admin"}));
}

async fn a_plugin_credential_is_bound_to_its_tenant_and_plugin(app: TestApp) {
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    app.publish(&crm_at("1.0.0")).await;
    let acme = app.install("acme", "plugin-crm", json!({})).await;
    let globex = app.install("globex", "plugin-crm", json!({})).await;

    // Naming its own tenant is fine; naming another is refused, not obeyed.
    let own = app
        .send(
            Method::GET,
            "/api/v1/whoami",
            Some(&acme),
            &[("x-tenant-slug", "acme")],
            None,
        )
        .await;
    assert_eq!(own.assert_status(200)["tenant"], "acme");
    for claimed in ["globex", "nobody", ""] {
        app.send(
            Method::GET,
            "/api/v1/whoami",
            Some(&acme),
            &[("x-tenant-slug", claimed)],
            None,
        )
        .await
        .assert_error(403, "TENANT_MISMATCH");
    }
    let other = app.as_plugin(&globex, Method::GET, "/api/v1/whoami").await;
    assert_eq!(other.assert_status(200)["tenant"], "globex");

    // Admin routes are closed to plugins, whichever tenant they name.
    for (method, path) in [
        (Method::GET, "/api/v1/tenants"),
        (Method::GET, "/api/v1/tenants/globex"),
        (Method::GET, "/api/v1/tenants/acme/installations"),
        (
            Method::POST,
            "/api/v1/tenants/globex/installations/plugin-crm/credentials",
        ),
        (Method::DELETE, "/api/v1/tenants/globex"),
        (Method::POST, "/api/v1/plugins"),
    ] {
        app.send(method, path, Some(&acme), &[], Some(&json!({})))
            .await
            .assert_error(403, "FORBIDDEN");
    }
    // Still there: the refused calls changed nothing.
    app.as_plugin(&globex, Method::GET, "/api/v1/whoami")
        .await
        .assert_status(200);

    // A credential with a valid id but a wrong secret is unknown.
    let (id_part, _) = acme.split_once('.').expect("token");
    let forged = format!("{id_part}.{}", "B".repeat(43));
    app.as_plugin(&forged, Method::GET, "/api/v1/whoami")
        .await
        .assert_error(401, "UNAUTHENTICATED");
}

async fn an_admin_acts_for_a_tenant_by_header(app: TestApp) {
    app.create_tenant("acme").await;
    let who = app
        .send(
            Method::GET,
            "/api/v1/whoami",
            Some(ADMIN),
            &[("x-tenant-slug", "acme")],
            None,
        )
        .await;
    assert_eq!(
        who.assert_status(200),
        &json!({"kind": "admin", "tenant": "acme"})
    );
    app.send(
        Method::GET,
        "/api/v1/whoami",
        Some(ADMIN),
        &[("x-tenant-slug", "nobody")],
        None,
    )
    .await
    .assert_error(404, "TENANT_NOT_FOUND");
}

crate::on_both_backends!(
    every_api_route_needs_a_known_bearer,
    a_plugin_credential_is_bound_to_its_tenant_and_plugin,
    an_admin_acts_for_a_tenant_by_header,
);
