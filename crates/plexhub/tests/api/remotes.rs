//! The shell's plugin remotes (#21): what `GET /api/v1/ui/remotes` shows (ACTIVE installations
//! only, sorted, per tenant), its ETag, the read-only shell credential, the origin rules at
//! publish and install, and the change stream seen from another hub instance.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Reply, TestApp, analytics, crm_at, within};

const CRM_ORIGIN: &str = "https://crm.example.com";
const ANALYTICS_ORIGIN: &str = "https://analytics.example.com";

/// `manifest` with a UI remote served from `origin`.
fn with_remote(mut manifest: Value, origin: &str, path: &str) -> Value {
    manifest["frontend"] = json!({
        "remoteEntry": format!("{origin}/ui/remoteEntry.js"),
        "exposedModules": {"./Page": "./src/Page.tsx"},
        "routes": [{"path": path, "module": "./Page", "title": "Page"}],
        "menu": [{"label": "Open", "path": path, "order": 1}],
    });
    manifest
}

async fn publish_remotes(app: &TestApp) {
    app.publish(&with_remote(crm_at("1.0.0"), CRM_ORIGIN, "/crm"))
        .await;
    app.publish(&with_remote(analytics(), ANALYTICS_ORIGIN, "/analytics"))
        .await;
}

/// Installs `plugin` in `tenant` with its remote's origin allowed (and the base URL's).
async fn install_allowed(app: &TestApp, tenant: &str, plugin: &str, origin: &str) -> String {
    app.install(
        tenant,
        plugin,
        json!({"allowedOrigins": ["http://127.0.0.1:9", origin]}),
    )
    .await
}

async fn set_state(app: &TestApp, tenant: &str, plugin: &str, action: &str) {
    app.admin(
        Method::POST,
        &format!("/api/v1/tenants/{tenant}/installations/{plugin}/{action}"),
        None,
    )
    .await
    .assert_status(200);
}

async fn remotes_as(app: &TestApp, token: &str, tenant: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = tenant.map(|t| ("x-tenant-slug", t)).into_iter().collect();
    app.send(
        Method::GET,
        "/api/v1/ui/remotes",
        Some(token),
        &headers,
        None,
    )
    .await
}

fn ids(reply: &Reply) -> Vec<String> {
    reply.assert_status(200)["remotes"]
        .as_array()
        .expect("remotes")
        .iter()
        .filter_map(|r| r["pluginId"].as_str().map(str::to_owned))
        .collect()
}

async fn remotes_follow_active_installations(app: TestApp) {
    // Publishing a remote that is not https is refused at its path.
    let refused = app
        .admin(
            Method::POST,
            "/api/v1/plugins",
            Some(&with_remote(
                crm_at("0.9.0"),
                "http://crm.example.com",
                "/crm",
            )),
        )
        .await;
    refused.assert_error(400, "INVALID_MANIFEST");
    assert_eq!(
        refused.body["error"]["details"]["errors"][0]["path"],
        "frontend.remoteEntry"
    );
    publish_remotes(&app).await;
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;

    // An install whose allowed origins do not cover the remote is refused, naming the path.
    let refused = app
        .admin(
            Method::POST,
            "/api/v1/tenants/acme/installations",
            Some(&json!({"pluginId": "plugin-crm", "baseUrl": "http://127.0.0.1:9"})),
        )
        .await;
    refused.assert_error(400, "ORIGIN_NOT_ALLOWED");
    assert_eq!(
        refused.body["error"]["details"]["path"],
        "frontend.remoteEntry"
    );

    let crm = install_allowed(&app, "acme", "plugin-crm", CRM_ORIGIN).await;
    // Installed, not active: no remote yet.
    assert!(ids(&remotes_as(&app, ADMIN, Some("acme")).await).is_empty());
    set_state(&app, "acme", "plugin-crm", "activate").await;
    let first = remotes_as(&app, ADMIN, Some("acme")).await;
    assert_eq!(ids(&first), ["plugin-crm"]);
    let remote = &first.body["remotes"][0];
    assert_eq!(remote["version"], "1.0.0");
    assert_eq!(remote["scope"], "plugin_crm");
    assert_eq!(
        remote["remoteEntry"],
        format!("{CRM_ORIGIN}/ui/remoteEntry.js")
    );
    assert_eq!(
        remote["exposedModules"],
        json!({"./Page": "./src/Page.tsx"})
    );
    assert_eq!(remote["routes"][0]["path"], "/crm");
    assert_eq!(remote["menu"][0]["label"], "Open");
    let etag = first.headers["etag"].to_str().expect("etag").to_owned();
    assert_eq!(first.body["etag"], etag.as_str());
    let unchanged = app
        .send(
            Method::GET,
            "/api/v1/ui/remotes",
            Some(ADMIN),
            &[("x-tenant-slug", "acme"), ("if-none-match", &etag)],
            None,
        )
        .await;
    assert_eq!(unchanged.status, 304);
    // The plugin itself reads its tenant's remotes; the admin must name a tenant.
    assert_eq!(ids(&remotes_as(&app, &crm, None).await), ["plugin-crm"]);
    remotes_as(&app, ADMIN, None)
        .await
        .assert_error(400, "TENANT_REQUIRED");

    install_allowed(&app, "acme", "plugin-analytics", ANALYTICS_ORIGIN).await;
    set_state(&app, "acme", "plugin-analytics", "activate").await;
    let both = remotes_as(&app, ADMIN, Some("acme")).await;
    assert_eq!(ids(&both), ["plugin-analytics", "plugin-crm"], "sorted");
    assert_ne!(both.headers["etag"].to_str().expect("etag"), etag);

    // Another tenant never sees acme's remotes.
    assert!(ids(&remotes_as(&app, ADMIN, Some("globex")).await).is_empty());

    // The shell credential: reads its tenant's remotes and nothing else.
    let issued = app
        .admin(Method::POST, "/api/v1/tenants/acme/shell-credentials", None)
        .await;
    let shell = issued.assert_status(201)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert!(shell.starts_with("phs_"));
    assert_eq!(
        ids(&remotes_as(&app, &shell, None).await),
        ["plugin-analytics", "plugin-crm"]
    );
    remotes_as(&app, &shell, Some("globex"))
        .await
        .assert_error(403, "TENANT_MISMATCH");
    for (method, path) in [
        (Method::GET, "/api/v1/tenants"),
        (Method::GET, "/api/v1/services"),
        (Method::GET, "/api/v1/events/stream"),
        (Method::POST, "/api/v1/tenants/acme/shell-credentials"),
        (Method::GET, "/api/plugin-gateway/dependencies/plugin-crm"),
        (Method::GET, "/api/v1/proxy/crm.contacts/contacts"),
        (Method::POST, "/api/plugin-gateway/call"),
    ] {
        let reply = app.send(method, path, Some(&shell), &[], None).await;
        assert_eq!(reply.status, 403, "{path}: {}", reply.body);
    }
    let who = app.as_plugin(&shell, Method::GET, "/api/v1/whoami").await;
    assert_eq!(who.assert_status(200)["kind"], "shell");
    assert_eq!(who.body["tenant"], "acme");

    // Deactivation and uninstall take remotes away.
    set_state(&app, "acme", "plugin-crm", "deactivate").await;
    assert_eq!(
        ids(&remotes_as(&app, &shell, None).await),
        ["plugin-analytics"]
    );
    app.admin(
        Method::DELETE,
        "/api/v1/tenants/acme/installations/plugin-analytics",
        None,
    )
    .await
    .assert_status(204);
    assert!(ids(&remotes_as(&app, &shell, None).await).is_empty());
    // Narrowing the allowed origins below the remote's is refused.
    app.admin(
        Method::PUT,
        "/api/v1/tenants/acme/installations/plugin-crm/allowed-origins",
        Some(&json!({"allowedOrigins": ["http://127.0.0.1:9"]})),
    )
    .await
    .assert_error(400, "ORIGIN_NOT_ALLOWED");

    // Revoked: refused at once.
    let listed = app
        .admin(Method::GET, "/api/v1/tenants/acme/shell-credentials", None)
        .await;
    let id = listed.assert_status(200)["credentials"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.admin(
        Method::DELETE,
        &format!("/api/v1/tenants/acme/shell-credentials/{id}"),
        None,
    )
    .await
    .assert_status(204);
    remotes_as(&app, &shell, None)
        .await
        .assert_error(401, "UNAUTHENTICATED");
    app.admin(
        Method::DELETE,
        &format!("/api/v1/tenants/acme/shell-credentials/{id}"),
        None,
    )
    .await
    .assert_error(404, "CREDENTIAL_NOT_FOUND");
}

/// A version stored before `frontend` was validated (here: rewritten in the database to an http
/// remote) leaves out only its own remote; the tenant's other remotes are still served.
async fn a_remote_that_no_longer_validates_is_left_out_alone(app: TestApp) {
    publish_remotes(&app).await;
    app.create_tenant("acme").await;
    install_allowed(&app, "acme", "plugin-crm", CRM_ORIGIN).await;
    install_allowed(&app, "acme", "plugin-analytics", ANALYTICS_ORIGIN).await;
    set_state(&app, "acme", "plugin-crm", "activate").await;
    set_state(&app, "acme", "plugin-analytics", "activate").await;
    assert_eq!(
        ids(&remotes_as(&app, ADMIN, Some("acme")).await),
        ["plugin-analytics", "plugin-crm"]
    );
    let legacy = with_remote(crm_at("1.0.0"), "http://crm.example.com", "/crm").to_string();
    let update = "UPDATE plugin_versions SET manifest = $1 WHERE plugin_id = 'plugin-crm'";
    if app.database_url.starts_with("sqlite") {
        let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&app.database_url)
            .await
            .expect("the hub's SQLite file");
        sqlx::query(update)
            .bind(&legacy)
            .execute(&mut db)
            .await
            .expect("rewritten");
    } else {
        let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database_url)
            .await
            .expect("the hub's database");
        sqlx::query(update)
            .bind(&legacy)
            .execute(&mut db)
            .await
            .expect("rewritten");
    }
    assert_eq!(
        ids(&remotes_as(&app, ADMIN, Some("acme")).await),
        ["plugin-analytics"]
    );
}

crate::on_both_backends!(
    remotes_follow_active_installations,
    a_remote_that_no_longer_validates_is_left_out_alone
);

/// Reads a remotes stream until an event's data satisfies `wanted`, for at most `wait`;
/// returns that event's data.
async fn next_remotes(
    stream: &mut reqwest::Response,
    buffer: &mut String,
    wait: Duration,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let data = block
                .lines()
                .find_map(|line| line.strip_prefix("data:"))
                .map(str::trim);
            if let Some(data) = data
                && let Ok(value) = serde_json::from_str::<Value>(data)
                && wanted(&value)
            {
                return value;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("the stream answered in time")
            .expect("stream")
            .expect("the stream is open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

fn stream_ids(data: &Value) -> Vec<&str> {
    data["remotes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["pluginId"].as_str())
        .collect()
}

/// Two hubs on PostgreSQL and Redis: what the admin changes through one is seen by a shell
/// connected to the other, by its stream and by a plain read, within a second.
#[tokio::test]
async fn another_hub_sees_remote_changes_within_a_second() {
    let Some((a, b)) = crate::helpers::two_hubs(None).await else {
        return;
    };
    publish_remotes(&a).await;
    a.create_tenant("acme").await;
    a.create_tenant("globex").await;
    install_allowed(&a, "acme", "plugin-crm", CRM_ORIGIN).await;
    let shell = a
        .admin(Method::POST, "/api/v1/tenants/acme/shell-credentials", None)
        .await
        .assert_status(201)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let mut stream = b
        .http
        .get(format!("{}/api/v1/ui/remotes/stream", b.base))
        .bearer_auth(&shell)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    let mut buffer = String::new();
    let second = Duration::from_secs(1);
    let first = next_remotes(&mut stream, &mut buffer, second, |_| true).await;
    assert!(stream_ids(&first).is_empty(), "{first}");

    for (action, expected) in [
        ("activate", vec!["plugin-crm"]),
        ("deactivate", vec![]),
        ("activate", vec!["plugin-crm"]),
    ] {
        set_state(&a, "acme", "plugin-crm", action).await;
        let seen = next_remotes(&mut stream, &mut buffer, second, |data| {
            stream_ids(data) == expected
        })
        .await;
        assert_eq!(stream_ids(&seen), expected, "{action}");
        let took = within(second, || async {
            ids(&remotes_as(&b, &shell, None).await) == expected
        })
        .await;
        assert!(
            took < second,
            "{action} seen by a read on hub b after {took:?}"
        );
    }
    // Another tenant's change never reaches acme's shell; an uninstall does.
    install_allowed(&a, "globex", "plugin-crm", CRM_ORIGIN).await;
    set_state(&a, "globex", "plugin-crm", "activate").await;
    a.admin(
        Method::DELETE,
        "/api/v1/tenants/acme/installations/plugin-crm",
        None,
    )
    .await
    .assert_status(204);
    let seen = next_remotes(&mut stream, &mut buffer, second, |_| true).await;
    assert!(
        stream_ids(&seen).is_empty(),
        "the next event is acme's uninstall, not globex's activation: {seen}"
    );
    assert_eq!(
        ids(&remotes_as(&b, ADMIN, Some("globex")).await),
        ["plugin-crm"]
    );
}
