//! Service registry: the seed's five routes (flat errors), replicas, health, lifecycle, watch,
//! and two hub instances sharing PostgreSQL and Redis.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN, Backend, Options, Reply, TestApp, analytics, crm_at, service_url, spawn_with, within,
};

const GATEWAY: &str = "/api/plugin-gateway";
const SECOND: i64 = 1000;

#[track_caller]
fn assert_flat(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.body);
    assert_eq!(reply.body["code"], code, "body: {}", reply.body);
    assert!(
        reply.body["error"].as_str().is_some_and(|m| !m.is_empty()),
        "flat error: {}",
        reply.body
    );
}

/// Tenant `acme` with CRM installed (not active) at http://127.0.0.1:3100; returns its token.
async fn crm_installed(app: &TestApp, extra: Value) -> String {
    app.create_tenant("acme").await;
    app.publish(&crm_at("1.0.0")).await;
    let mut install = json!({"baseUrl": "http://127.0.0.1:3100"});
    if let (Some(body), Value::Object(extra)) = (install.as_object_mut(), extra) {
        body.extend(extra);
    }
    app.install("acme", "plugin-crm", install).await
}

async fn activate(app: &TestApp, plugin: &str) {
    app.admin(
        Method::POST,
        &format!("/api/v1/tenants/acme/installations/{plugin}/activate"),
        None,
    )
    .await
    .assert_status(200);
}

/// Sends one heartbeat for every service of the tenant through the seed route, so replicas
/// registered by activation (UNKNOWN) follow the heartbeat rules from now on.
async fn beat_all(app: &TestApp, token: &str) {
    let listed = gateway(app, token, Method::GET, "/services", None).await;
    let ids: Vec<String> = listed.assert_status(200)["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    assert!(!ids.is_empty(), "no service to beat for");
    for id in ids {
        gateway(
            app,
            token,
            Method::POST,
            &format!("/services/{id}/heartbeat"),
            None,
        )
        .await
        .assert_status(200);
    }
}

fn registration(name: &str) -> Value {
    json!({
        "pluginId": "plugin-crm",
        "serviceName": name,
        "version": "1.0.0",
        "endpoints": [
            {"method": "GET", "path": "/contacts"},
            {"method": "GET", "path": "/contacts/:id", "permissions": ["plugin.crm.contacts.read"]}
        ],
        "metadata": {"team": "sales"},
    })
}

async fn gateway(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Reply {
    app.send(method, &format!("{GATEWAY}{path}"), Some(token), &[], body)
        .await
}

async fn the_seed_routes_register_discover_list_heartbeat_and_deregister(app: TestApp) {
    let crm = crm_installed(&app, json!({})).await;

    let registered = gateway(
        &app,
        &crm,
        Method::POST,
        "/services/register",
        Some(&registration("crm.reports")),
    )
    .await;
    let body = registered.assert_status(201).clone();
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "Service registered successfully");
    assert_eq!(body["heartbeatIntervalSeconds"], 15);
    let service_id = body["serviceId"].as_str().expect("serviceId").to_owned();
    assert!(uuid::Uuid::parse_str(&service_id).is_ok());

    // Not discoverable while the installation is not ACTIVE.
    let hidden = gateway(
        &app,
        &crm,
        Method::GET,
        "/services/discover/crm.reports",
        None,
    )
    .await;
    assert_flat(&hidden, 404, "SERVICE_NOT_FOUND");
    assert_eq!(hidden.body["error"], "Service not found");
    assert_eq!(hidden.body["serviceName"], "crm.reports");

    // Activation registers the manifest's services too.
    activate(&app, "plugin-crm").await;
    let found = gateway(
        &app,
        &crm,
        Method::GET,
        "/services/discover/crm.reports",
        None,
    )
    .await;
    let service = &found.assert_status(200)["service"];
    assert_eq!(service["id"], service_id.as_str());
    assert_eq!(service["pluginId"], "plugin-crm");
    assert_eq!(service["serviceName"], "crm.reports");
    assert_eq!(service["version"], "1.0.0");
    assert_eq!(service["baseUrl"], "http://127.0.0.1:3100");
    assert_eq!(service["status"], "HEALTHY");
    assert_eq!(service["metadata"], json!({"team": "sales"}));
    assert_eq!(
        service["endpoints"],
        json!([
            {"method": "GET", "path": "/contacts", "permissions": [], "metadata": {}},
            {"method": "GET", "path": "/contacts/:id", "permissions": ["plugin.crm.contacts.read"], "metadata": {}}
        ])
    );
    assert!(
        service["lastSeenAt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(service.get("tenantId").is_none());

    let manifest_service = gateway(
        &app,
        &crm,
        Method::GET,
        "/services/discover/crm.deals",
        None,
    )
    .await;
    let deals = &manifest_service.assert_status(200)["service"];
    assert_eq!(
        deals["endpoints"].as_array().map(Vec::len),
        Some(8),
        "from the manifest"
    );

    let listed = gateway(&app, &crm, Method::GET, "/services", None).await;
    let names: Vec<&str> = listed.assert_status(200)["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["serviceName"].as_str())
        .collect();
    assert_eq!(names, ["crm.contacts", "crm.deals", "crm.reports"]);
    assert_eq!(listed.body["count"], 3);
    let filtered = gateway(
        &app,
        &crm,
        Method::GET,
        "/services?pluginId=plugin-other",
        None,
    )
    .await;
    assert_eq!(filtered.assert_status(200)["count"], 0);

    // Re-registration keeps the id; omitted endpoints keep the old list.
    let mut again = registration("crm.reports");
    again.as_object_mut().expect("object").remove("endpoints");
    again["version"] = json!("1.1.0");
    let reregistered = gateway(&app, &crm, Method::POST, "/services/register", Some(&again)).await;
    assert_eq!(
        reregistered.assert_status(201)["serviceId"],
        service_id.as_str()
    );
    let found = gateway(
        &app,
        &crm,
        Method::GET,
        "/services/discover/crm.reports",
        None,
    )
    .await;
    assert_eq!(found.assert_status(200)["service"]["version"], "1.1.0");
    assert_eq!(
        found.body["service"]["endpoints"].as_array().map(Vec::len),
        Some(2)
    );
    let ranged = gateway(
        &app,
        &crm,
        Method::GET,
        "/services/discover/crm.reports?version=%5E2.0.0",
        None,
    )
    .await;
    assert_flat(&ranged, 404, "SERVICE_NOT_FOUND");
    let ranged = gateway(
        &app,
        &crm,
        Method::GET,
        "/services/discover/crm.reports?version=%3E%3D1.1.0%20%3C2",
        None,
    )
    .await;
    ranged.assert_status(200);

    let beat = gateway(
        &app,
        &crm,
        Method::POST,
        &format!("/services/{service_id}/heartbeat"),
        None,
    )
    .await;
    assert_eq!(beat.assert_status(200)["message"], "Heartbeat received");

    for _ in 0..2 {
        let gone = gateway(
            &app,
            &crm,
            Method::DELETE,
            "/services/plugin-crm/crm.reports",
            None,
        )
        .await;
        assert_eq!(
            gone.assert_status(200),
            &json!({"success": true, "message": "Service deregistered successfully"})
        );
    }
    assert_flat(
        &gateway(
            &app,
            &crm,
            Method::GET,
            "/services/discover/crm.reports",
            None,
        )
        .await,
        404,
        "SERVICE_NOT_FOUND",
    );
    assert_flat(
        &gateway(
            &app,
            &crm,
            Method::POST,
            &format!("/services/{service_id}/heartbeat"),
            None,
        )
        .await,
        404,
        "SERVICE_NOT_FOUND",
    );
}

async fn registry_errors_keep_the_seed_shape_and_stable_codes(app: TestApp) {
    let crm = crm_installed(&app, json!({})).await;
    app.publish(&analytics()).await;
    activate(&app, "plugin-crm").await;
    let analytics_token = app
        .install(
            "acme",
            "plugin-analytics",
            json!({"baseUrl": "http://127.0.0.1:3200"}),
        )
        .await;

    let anonymous = app
        .send(Method::GET, &format!("{GATEWAY}/services"), None, &[], None)
        .await;
    assert_flat(&anonymous, 401, "UNAUTHENTICATED");
    let no_tenant = app
        .send(
            Method::GET,
            &format!("{GATEWAY}/services"),
            Some(ADMIN),
            &[],
            None,
        )
        .await;
    assert_flat(&no_tenant, 400, "TENANT_REQUIRED");
    let unknown = app
        .send(
            Method::GET,
            &format!("{GATEWAY}/services"),
            Some(ADMIN),
            &[("x-tenant-slug", "nobody")],
            None,
        )
        .await;
    assert_flat(&unknown, 404, "TENANT_NOT_FOUND");
    let spoofed = app
        .send(
            Method::GET,
            &format!("{GATEWAY}/services"),
            Some(&crm),
            &[("x-tenant-slug", "other")],
            None,
        )
        .await;
    assert_flat(&spoofed, 403, "TENANT_MISMATCH");
    let malformed = app
        .http
        .post(format!("{}{GATEWAY}/services/register", app.base))
        .bearer_auth(&crm)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("send");
    assert_eq!(malformed.status(), 400);
    let malformed: Value = malformed.json().await.expect("json");
    assert_eq!(malformed["code"], "MALFORMED_JSON");

    // A plugin registers only its own services, and only names nobody else owns.
    let mut for_crm = registration("crm.extra");
    assert_flat(
        &gateway(
            &app,
            &analytics_token,
            Method::POST,
            "/services/register",
            Some(&for_crm),
        )
        .await,
        403,
        "PLUGIN_NOT_CALLER",
    );
    let mut squat = registration("crm.contacts");
    squat["pluginId"] = json!("plugin-analytics");
    assert_flat(
        &gateway(
            &app,
            &analytics_token,
            Method::POST,
            "/services/register",
            Some(&squat),
        )
        .await,
        409,
        "SERVICE_OWNED",
    );
    let mut not_installed = registration("mail.outbox");
    not_installed["pluginId"] = json!("plugin-mail");
    let admin_for_acme = app
        .send(
            Method::POST,
            &format!("{GATEWAY}/services/register"),
            Some(ADMIN),
            &[("x-tenant-slug", "acme")],
            Some(&not_installed),
        )
        .await;
    assert_flat(&admin_for_acme, 404, "NOT_INSTALLED");

    for (field, value) in [
        ("serviceName", json!("CRM")),
        ("serviceName", json!("crm.a.b")),
        ("version", json!("one")),
        ("endpoints", json!([{"method": "FETCH", "path": "/x"}])),
        ("endpoints", json!([{"method": "GET", "path": "/x/../y"}])),
        (
            "endpoints",
            json!([{"method": "GET", "path": "/x"}, {"method": "GET", "path": "/x"}]),
        ),
        ("baseUrl", json!("ftp://127.0.0.1:3100")),
        ("pluginId", json!(5)),
    ] {
        for_crm = registration("crm.contacts");
        for_crm[field] = value;
        let reply = gateway(
            &app,
            &crm,
            Method::POST,
            "/services/register",
            Some(&for_crm),
        )
        .await;
        assert_eq!(reply.status.as_u16(), 400, "{field}: {}", reply.body);
        assert!(reply.body["error"].is_string(), "{}", reply.body);
    }
    // The rejected duplicate-endpoint registration changed nothing.
    let contacts = gateway(
        &app,
        &crm,
        Method::GET,
        "/services/discover/crm.contacts",
        None,
    )
    .await;
    assert_eq!(
        contacts.assert_status(200)["service"]["endpoints"]
            .as_array()
            .map(Vec::len),
        Some(7)
    );

    let mut elsewhere = registration("crm.contacts");
    elsewhere["baseUrl"] = json!("http://169.254.169.254/latest");
    assert_flat(
        &gateway(
            &app,
            &crm,
            Method::POST,
            "/services/register",
            Some(&elsewhere),
        )
        .await,
        400,
        "ORIGIN_NOT_ALLOWED",
    );
    assert_flat(
        &gateway(&app, &crm, Method::GET, "/services?status=ALIVE", None).await,
        400,
        "INVALID_PARAMETER",
    );

    let contacts_id = contacts.body["service"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_flat(
        &gateway(
            &app,
            &analytics_token,
            Method::POST,
            &format!("/services/{contacts_id}/heartbeat"),
            None,
        )
        .await,
        403,
        "PLUGIN_NOT_CALLER",
    );
    assert_flat(
        &gateway(
            &app,
            &analytics_token,
            Method::DELETE,
            "/services/plugin-crm/crm.contacts",
            None,
        )
        .await,
        403,
        "PLUGIN_NOT_CALLER",
    );
    assert_flat(
        &gateway(
            &app,
            &crm,
            Method::POST,
            "/services/not-an-id/heartbeat",
            None,
        )
        .await,
        404,
        "SERVICE_NOT_FOUND",
    );

    // Another tenant sees nothing of acme's registry, not even by id.
    app.create_tenant("globex").await;
    let globex = app
        .install("globex", "plugin-crm", json!({"activate": true}))
        .await;
    assert_flat(
        &gateway(
            &app,
            &globex,
            Method::POST,
            &format!("/services/{contacts_id}/heartbeat"),
            None,
        )
        .await,
        404,
        "SERVICE_NOT_FOUND",
    );
    let theirs = gateway(
        &app,
        &globex,
        Method::GET,
        "/services/discover/crm.contacts",
        None,
    )
    .await;
    assert_ne!(
        theirs.assert_status(200)["service"]["id"],
        contacts_id.as_str(),
        "globex has its own"
    );
    let admin_globex = app
        .send(
            Method::GET,
            &format!("{GATEWAY}/services"),
            Some(ADMIN),
            &[("x-tenant-slug", "globex")],
            None,
        )
        .await;
    assert_eq!(admin_globex.assert_status(200)["count"], 2);
    assert!(
        admin_globex.body["services"]
            .as_array()
            .expect("list")
            .iter()
            .all(|s| s["id"] != contacts_id.as_str())
    );
}

async fn health_follows_heartbeats_and_reports(app: TestApp) {
    let crm = crm_installed(&app, json!({})).await;
    activate(&app, "plugin-crm").await;
    let discover = || {
        gateway(
            &app,
            &crm,
            Method::GET,
            "/services/discover/crm.contacts",
            None,
        )
    };
    let id = discover().await.assert_status(200)["service"]["id"]
        .as_str()
        .expect("id")
        .to_owned();

    // Registered by activation and never heard from: UNKNOWN on the native API (where it
    // does not expire), HEALTHY on the seed's, discoverable all along.
    let native = || app.as_plugin(&crm, Method::GET, "/api/v1/services/crm.contacts");
    let view = native().await;
    assert_eq!(view.assert_status(200)["status"], "UNKNOWN");
    assert_eq!(view.body["instances"][0]["status"], "UNKNOWN");
    assert_eq!(view.body["discoverable"], true);
    app.clock.advance(400 * SECOND);
    assert_eq!(native().await.assert_status(200)["status"], "UNKNOWN");
    assert_eq!(
        discover().await.assert_status(200)["service"]["status"],
        "HEALTHY",
        "the seed routes know only the original's three statuses"
    );
    let unknown = app
        .as_plugin(&crm, Method::GET, "/api/v1/services?status=UNKNOWN")
        .await;
    assert_eq!(
        unknown.assert_status(200)["services"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let seed_healthy = gateway(&app, &crm, Method::GET, "/services?status=HEALTHY", None).await;
    assert_eq!(seed_healthy.assert_status(200)["count"], 2);
    gateway(&app, &crm, Method::GET, "/services?status=UNKNOWN", None)
        .await
        .assert_status(400);
    app.send(
        Method::POST,
        "/api/v1/services/crm.contacts/instances/default/health",
        Some(&crm),
        &[],
        Some(&json!({"status": "UNKNOWN"})),
    )
    .await
    .assert_error(400, "INVALID_BODY");
    beat_all(&app, &crm).await;
    assert_eq!(native().await.assert_status(200)["status"], "HEALTHY");

    app.clock.advance(44 * SECOND);
    assert_eq!(
        discover().await.assert_status(200)["service"]["status"],
        "HEALTHY"
    );
    app.clock.advance(2 * SECOND);
    assert_eq!(
        discover().await.assert_status(200)["service"]["status"],
        "DEGRADED",
        "3 missed heartbeats"
    );
    let degraded = gateway(&app, &crm, Method::GET, "/services?status=DEGRADED", None).await;
    assert_eq!(degraded.assert_status(200)["count"], 2);

    app.clock.advance(300 * SECOND);
    assert_flat(&discover().await, 404, "SERVICE_NOT_FOUND");
    let unavailable = gateway(
        &app,
        &crm,
        Method::GET,
        "/services?status=UNAVAILABLE",
        None,
    )
    .await;
    assert_eq!(
        unavailable.assert_status(200)["count"],
        2,
        "listing includes UNAVAILABLE"
    );

    gateway(
        &app,
        &crm,
        Method::POST,
        &format!("/services/{id}/heartbeat"),
        None,
    )
    .await
    .assert_status(200);
    assert_eq!(
        discover().await.assert_status(200)["service"]["status"],
        "HEALTHY",
        "a heartbeat revives"
    );

    let report = app
        .send(
            Method::POST,
            "/api/v1/services/crm.contacts/instances/default/health",
            Some(&crm),
            &[],
            Some(&json!({"status": "DEGRADED", "reason": "database slow"})),
        )
        .await;
    report.assert_status(200);
    let shown = app
        .as_plugin(&crm, Method::GET, "/api/v1/services/crm.contacts")
        .await;
    let view = shown.assert_status(200);
    assert_eq!(view["status"], "DEGRADED");
    assert_eq!(view["instances"][0]["reason"], "database slow");
    app.send(
        Method::POST,
        "/api/v1/services/crm.contacts/instances/default/health",
        Some(&crm),
        &[],
        Some(&json!({"status": "UNAVAILABLE"})),
    )
    .await
    .assert_status(200);
    assert_flat(&discover().await, 404, "SERVICE_NOT_FOUND");
    app.send(
        Method::POST,
        "/api/v1/services/crm.contacts/instances/default/heartbeat",
        Some(&crm),
        &[],
        None,
    )
    .await
    .assert_status(200);
    assert_eq!(
        discover().await.assert_status(200)["service"]["status"],
        "HEALTHY"
    );
    app.send(
        Method::POST,
        "/api/v1/services/crm.contacts/instances/default/health",
        Some(&crm),
        &[],
        Some(&json!({"status": "SLEEPY"})),
    )
    .await
    .assert_error(400, "INVALID_BODY");
    app.send(
        Method::POST,
        "/api/v1/services/crm.contacts/instances/pod-9/heartbeat",
        Some(&crm),
        &[],
        None,
    )
    .await
    .assert_error(404, "INSTANCE_NOT_FOUND");
}

async fn replicas_are_routed_by_health_then_recency(app: TestApp) {
    let crm = crm_installed(
        &app,
        json!({"allowedOrigins": ["http://127.0.0.1:3100", "http://10.0.0.2:3100"]}),
    )
    .await;
    activate(&app, "plugin-crm").await;
    beat_all(&app, &crm).await;
    let (hub, token) = (&app, &crm);
    let put = |instance: &str, url: &str| {
        let path = format!("/api/v1/services/crm.contacts/instances/{instance}");
        let body = json!({"baseUrl": url, "metadata": {"zone": "b"}});
        async move {
            hub.send(Method::PUT, &path, Some(token), &[], Some(&body))
                .await
        }
    };
    let reply = put("pod-2", "http://10.0.0.2:3100/").await;
    let view = &reply.assert_status(200)["service"];
    assert_eq!(view["instances"].as_array().map(Vec::len), Some(2));
    assert_eq!(reply.body["heartbeatIntervalSeconds"], 15);

    put("pod-3", "http://10.9.9.9:3100")
        .await
        .assert_error(400, "ORIGIN_NOT_ALLOWED");
    put("Pod_3", "http://10.0.0.2:3100")
        .await
        .assert_error(400, "INVALID_PARAMETER");
    app.send(
        Method::PUT,
        "/api/v1/services/crm.nothing/instances/a",
        Some(&crm),
        &[],
        Some(&json!({"baseUrl": "http://10.0.0.2:3100"})),
    )
    .await
    .assert_error(404, "SERVICE_NOT_FOUND");

    // The default replica goes silent; pod-2 keeps beating and takes the traffic.
    app.clock.advance(50 * SECOND);
    app.send(
        Method::POST,
        "/api/v1/services/crm.contacts/instances/pod-2/heartbeat",
        Some(&crm),
        &[],
        None,
    )
    .await
    .assert_status(200);
    let found = gateway(
        &app,
        &crm,
        Method::GET,
        "/services/discover/crm.contacts",
        None,
    )
    .await;
    assert_eq!(
        found.assert_status(200)["service"]["baseUrl"],
        "http://10.0.0.2:3100"
    );
    assert_eq!(found.body["service"]["status"], "HEALTHY");
    let shown = app
        .as_plugin(&crm, Method::GET, "/api/v1/services/crm.contacts")
        .await;
    let statuses: Vec<(&str, &str)> = shown.assert_status(200)["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| {
            (
                i["instanceId"].as_str().unwrap_or(""),
                i["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(statuses, [("default", "DEGRADED"), ("pod-2", "HEALTHY")]);

    let delete = "/api/v1/services/crm.contacts/instances/pod-2";
    app.send(Method::DELETE, delete, Some(&crm), &[], None)
        .await
        .assert_status(204);
    app.send(Method::DELETE, delete, Some(&crm), &[], None)
        .await
        .assert_error(404, "INSTANCE_NOT_FOUND");
    let found = gateway(
        &app,
        &crm,
        Method::GET,
        "/services/discover/crm.contacts",
        None,
    )
    .await;
    assert_eq!(found.assert_status(200)["service"]["status"], "DEGRADED");

    let page = app
        .as_plugin(&crm, Method::GET, "/api/v1/services?limit=1")
        .await;
    assert_eq!(
        page.assert_status(200)["services"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(page.body["nextCursor"], "crm.contacts");
    let next = app
        .as_plugin(
            &crm,
            Method::GET,
            "/api/v1/services?limit=1&cursor=crm.contacts",
        )
        .await;
    assert_eq!(
        next.assert_status(200)["services"][0]["serviceName"],
        "crm.deals"
    );
    assert!(next.body.get("nextCursor").is_none());
}

async fn lifecycle_drives_visibility(app: TestApp) {
    let crm = crm_installed(&app, json!({})).await;
    activate(&app, "plugin-crm").await;
    let discover = || {
        gateway(
            &app,
            &crm,
            Method::GET,
            "/services/discover/crm.deals",
            None,
        )
    };
    discover().await.assert_status(200);

    app.deactivate("acme", "plugin-crm")
        .await
        .assert_status(200);
    assert_flat(&discover().await, 404, "SERVICE_NOT_FOUND");
    let shown = app
        .as_plugin(&crm, Method::GET, "/api/v1/services/crm.deals")
        .await;
    assert_eq!(shown.assert_status(200)["discoverable"], false);

    activate(&app, "plugin-crm").await;
    discover().await.assert_status(200);

    app.admin(
        Method::DELETE,
        "/api/v1/tenants/acme/installations/plugin-crm",
        None,
    )
    .await
    .assert_status(204);
    let listed = app
        .send(
            Method::GET,
            &format!("{GATEWAY}/services"),
            Some(ADMIN),
            &[("x-tenant-slug", "acme")],
            None,
        )
        .await;
    assert_eq!(
        listed.assert_status(200)["count"],
        0,
        "uninstalling deletes the services"
    );
}

/// Reads server-sent events until `count` have arrived (comments skipped).
pub async fn next_events(
    response: &mut reqwest::Response,
    buffer: &mut String,
    count: usize,
) -> Vec<(String, String, Value)> {
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.len() < count {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("event:") {
                    kind = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if !kind.is_empty() {
                events.push((
                    id,
                    kind,
                    serde_json::from_str(&data).expect("event data is JSON"),
                ));
            }
        }
        if events.len() >= count {
            break;
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("events arrive in time")
            .expect("stream")
            .expect("stream open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
    events
}

async fn watch(app: &TestApp, token: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .get(format!("{}/api/v1/services/watch", app.base))
        .bearer_auth(token);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = request.send().await.expect("watch");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/event-stream")
    );
    response
}

async fn watch_streams_changes_and_resumes(app: TestApp) {
    let crm = crm_installed(&app, json!({})).await;
    let mut stream = watch(&app, &crm, None).await;
    let mut buffer = String::new();

    let registered = gateway(
        &app,
        &crm,
        Method::POST,
        "/services/register",
        Some(&registration("crm.reports")),
    )
    .await;
    registered.assert_status(201);
    let first = next_events(&mut stream, &mut buffer, 1).await;
    let (first_id, kind, data) = &first[0];
    assert_eq!(kind, "registered");
    assert_eq!(data["type"], "registered");
    assert_eq!(data["service"]["serviceName"], "crm.reports");
    assert!(
        data["service"].get("instances").is_some(),
        "the changed service, in full"
    );

    activate(&app, "plugin-crm").await;
    app.send(
        Method::POST,
        "/api/v1/services/crm.reports/instances/default/health",
        Some(&crm),
        &[],
        Some(&json!({"status": "DEGRADED"})),
    )
    .await
    .assert_status(200);
    gateway(
        &app,
        &crm,
        Method::DELETE,
        "/services/plugin-crm/crm.reports",
        None,
    )
    .await
    .assert_status(200);
    // Activation registers the manifest's services, then every service of the plugin becomes
    // visible (an `activated` event each); then the health report and the deregistration.
    let later = next_events(&mut stream, &mut buffer, 7).await;
    let kinds: Vec<(&str, &str)> = later
        .iter()
        .map(|(_, kind, data)| {
            (
                kind.as_str(),
                data["service"]["serviceName"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("registered", "crm.contacts"),
            ("registered", "crm.deals"),
            ("activated", "crm.contacts"),
            ("activated", "crm.deals"),
            ("activated", "crm.reports"),
            ("health_changed", "crm.reports"),
            ("deregistered", "crm.reports"),
        ]
    );
    let ids: Vec<i64> = first
        .iter()
        .chain(&later)
        .map(|(id, _, _)| id.parse().expect("numeric id"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "ids increase one by one: {ids:?}"
    );
    drop(stream);

    // Resuming after the first event replays the rest, in order.
    let mut resumed = watch(&app, &crm, Some(first_id)).await;
    let mut buffer = String::new();
    let replayed = next_events(&mut resumed, &mut buffer, 7).await;
    assert_eq!(
        replayed
            .iter()
            .map(|(id, _, _)| id.clone())
            .collect::<Vec<_>>(),
        later
            .iter()
            .map(|(id, _, _)| id.clone())
            .collect::<Vec<_>>()
    );

    // An id the hub cannot resume from: reset, then live events continue.
    let mut reset = watch(&app, &crm, Some("999999")).await;
    let mut buffer = String::new();
    let events = next_events(&mut reset, &mut buffer, 1).await;
    assert_eq!(events[0].1, "reset");
    assert_eq!(
        events[0].2["current"],
        ids.last().copied().unwrap_or_default()
    );

    // Another tenant's watch sees none of this.
    app.create_tenant("globex").await;
    let globex = app.install("globex", "plugin-crm", json!({})).await;
    let mut theirs = watch(&app, &globex, None).await;
    gateway(
        &app,
        &crm,
        Method::POST,
        "/services/register",
        Some(&registration("crm.more")),
    )
    .await
    .assert_status(201);
    gateway(
        &app,
        &globex,
        Method::POST,
        "/services/register",
        Some(&registration("crm.mine")),
    )
    .await
    .assert_status(201);
    let mut buffer = String::new();
    let seen = next_events(&mut theirs, &mut buffer, 1).await;
    assert_eq!(seen[0].2["service"]["serviceName"], "crm.mine");
}

/// Deactivation, activation and uninstall are events of their own on the watch stream (read
/// here by the admin acting for the tenant, whose watch outlives the plugin's credential).
async fn watch_reports_the_installation_lifecycle(app: TestApp) {
    let _crm = crm_installed(&app, json!({"activate": true})).await;
    let mut stream = app
        .http
        .get(format!("{}/api/v1/services/watch", app.base))
        .bearer_auth(crate::helpers::ADMIN)
        .header("x-tenant-slug", "acme")
        .send()
        .await
        .expect("watch");
    assert_eq!(stream.status(), 200);
    let mut buffer = String::new();
    let lifecycle = |step: &'static str| {
        let app = &app;
        async move {
            let (method, path) = match step {
                "uninstall" => (Method::DELETE, String::new()),
                step => (Method::POST, format!("/{step}")),
            };
            app.admin(
                method,
                &format!("/api/v1/tenants/acme/installations/plugin-crm{path}"),
                None,
            )
            .await
            .assert_status(if step == "uninstall" { 204 } else { 200 });
        }
    };
    let kinds = |events: &[(String, String, Value)]| -> Vec<(String, String)> {
        events
            .iter()
            .map(|(_, kind, data)| {
                let name = data["service"]["serviceName"]
                    .as_str()
                    .or_else(|| data["serviceName"].as_str())
                    .unwrap_or_default();
                (kind.clone(), name.to_owned())
            })
            .collect()
    };
    let pairs = |kind: &str| -> Vec<(String, String)> {
        ["crm.contacts", "crm.deals"]
            .iter()
            .map(|name| (kind.to_owned(), (*name).to_owned()))
            .collect()
    };
    lifecycle("deactivate").await;
    let events = next_events(&mut stream, &mut buffer, 2).await;
    assert_eq!(kinds(&events), pairs("deactivated"));
    // Activating again re-registers the manifest's services (at the base URL), then shows them.
    lifecycle("activate").await;
    let events = next_events(&mut stream, &mut buffer, 4).await;
    assert_eq!(
        kinds(&events),
        [pairs("updated"), pairs("activated")].concat()
    );
    lifecycle("uninstall").await;
    let events = next_events(&mut stream, &mut buffer, 2).await;
    assert_eq!(kinds(&events), pairs("uninstalled"));
}

crate::on_both_backends!(
    the_seed_routes_register_discover_list_heartbeat_and_deregister,
    registry_errors_keep_the_seed_shape_and_stable_codes,
    health_follows_heartbeats_and_reports,
    replicas_are_routed_by_health_then_recency,
    lifecycle_drives_visibility,
    watch_streams_changes_and_resumes,
    watch_reports_the_installation_lifecycle,
);

async fn discover_status(hub: &TestApp, token: &str, name: &str) -> u16 {
    let path = format!("{GATEWAY}/services/discover/{name}");
    hub.send(Method::GET, &path, Some(token), &[], None)
        .await
        .status
        .as_u16()
}

#[tokio::test]
async fn two_hubs_on_one_postgres_and_redis_agree() {
    let (Some(_), Some(redis_url)) = (
        service_url("PLEXHUB_TEST_DATABASE_URL"),
        service_url("PLEXHUB_TEST_REDIS_URL"),
    ) else {
        return;
    };
    let options = |database_url: Option<String>, clock| Options {
        redis_url: Some(redis_url.clone()),
        clock: Some(clock),
        database_url,
        ..Options::default()
    };
    let clock = plexhub_server::Clock::manual();
    let a = spawn_with(Backend::Postgres, options(None, clock.clone()))
        .await
        .expect("hub A");
    let b = spawn_with(
        Backend::Postgres,
        options(Some(a.database_url.clone()), clock.clone()),
    )
    .await
    .expect("hub B");
    // Both must be subscribed before the first change, or it could not reach them.
    for hub in [&a, &b] {
        within(Duration::from_secs(5), || async {
            hub.send(Method::GET, "/readyz", None, &[], None)
                .await
                .status
                == 200
        })
        .await;
    }
    let crm = crm_installed(&a, json!({"activate": true})).await;
    beat_all(&a, &crm).await;

    // B caches "not found", then A registers: B must stop saying so within a second.
    assert_eq!(discover_status(&b, &crm, "crm.reports").await, 404);
    gateway(
        &a,
        &crm,
        Method::POST,
        "/services/register",
        Some(&registration("crm.reports")),
    )
    .await
    .assert_status(201);
    let seen = within(Duration::from_secs(1), || async {
        discover_status(&b, &crm, "crm.reports").await == 200
    })
    .await;
    eprintln!("registration on A seen on B after {seen:?}");

    // A caches the service, then B deregisters it.
    assert_eq!(discover_status(&a, &crm, "crm.reports").await, 200);
    gateway(
        &b,
        &crm,
        Method::DELETE,
        "/services/plugin-crm/crm.reports",
        None,
    )
    .await
    .assert_status(200);
    let seen = within(Duration::from_secs(1), || async {
        discover_status(&a, &crm, "crm.reports").await == 404
    })
    .await;
    eprintln!("deregistration on B seen on A after {seen:?}");

    // Heartbeat expiry: both compute it from the same stored timestamps.
    assert_eq!(discover_status(&a, &crm, "crm.contacts").await, 200);
    assert_eq!(discover_status(&b, &crm, "crm.contacts").await, 200);
    clock.advance(301 * SECOND);
    assert_eq!(discover_status(&a, &crm, "crm.contacts").await, 404);
    assert_eq!(discover_status(&b, &crm, "crm.contacts").await, 404);
    for hub in [&a, &b] {
        let reply = hub
            .as_plugin(&crm, Method::GET, "/api/v1/services/crm.contacts")
            .await;
        assert_eq!(reply.assert_status(200)["status"], "UNAVAILABLE");
    }

    // A suspension on A reaches B's credential cache too.
    a.admin(
        Method::PATCH,
        "/api/v1/tenants/acme",
        Some(&json!({"status": "suspended"})),
    )
    .await
    .assert_status(200);
    within(Duration::from_secs(1), || async {
        b.as_plugin(&crm, Method::GET, "/api/v1/whoami")
            .await
            .status
            == 403
    })
    .await;
}

#[tokio::test]
async fn registry_stays_correct_when_redis_is_unreachable() {
    let app = spawn_with(
        Backend::Sqlite,
        Options {
            redis_url: Some("redis://127.0.0.1:1/".to_owned()),
            ..Options::default()
        },
    )
    .await
    .expect("hub");
    let crm = crm_installed(&app, json!({"activate": true})).await;
    let discover = || {
        gateway(
            &app,
            &crm,
            Method::GET,
            "/services/discover/crm.reports",
            None,
        )
    };
    assert_flat(&discover().await, 404, "SERVICE_NOT_FOUND");
    gateway(
        &app,
        &crm,
        Method::POST,
        "/services/register",
        Some(&registration("crm.reports")),
    )
    .await
    .assert_status(201);
    discover().await.assert_status(200);
    gateway(
        &app,
        &crm,
        Method::DELETE,
        "/services/plugin-crm/crm.reports",
        None,
    )
    .await
    .assert_status(200);
    assert_flat(&discover().await, 404, "SERVICE_NOT_FOUND");
}
