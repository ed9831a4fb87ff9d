use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, Options, TestApp, service_url, spawn, spawn_with};

async fn health_and_readiness_need_no_credentials(app: TestApp) {
    let health = app.send(Method::GET, "/healthz", None, &[], None).await;
    assert_eq!(health.assert_status(200), &json!({"status": "ok"}));
    let ready = app.send(Method::GET, "/readyz", None, &[], None).await;
    assert_eq!(
        ready.assert_status(200),
        &json!({"status": "ready", "database": "ok", "redis": "not configured"})
    );
}

crate::on_both_backends!(health_and_readiness_need_no_credentials);

#[tokio::test]
async fn readiness_reports_redis_when_configured() {
    let down = spawn_with(
        Backend::Sqlite,
        Options {
            redis_url: Some("redis://127.0.0.1:1/".to_owned()),
            ..Options::default()
        },
    )
    .await
    .expect("starts even when Redis is down");
    let reply = down.send(Method::GET, "/readyz", None, &[], None).await;
    let body = reply.assert_status(503);
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["database"], "ok");
    assert!(
        body["redis"]
            .as_str()
            .is_some_and(|r| r.contains("unreachable")),
        "{body}"
    );

    let Some(redis_url) = service_url("PLEXHUB_TEST_REDIS_URL") else {
        return;
    };
    let up = spawn_with(
        Backend::Sqlite,
        Options {
            redis_url: Some(redis_url),
            ..Options::default()
        },
    )
    .await
    .expect("starts");
    let reply = up.send(Method::GET, "/readyz", None, &[], None).await;
    assert_eq!(reply.assert_status(200)["redis"], "ok");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = spawn(Backend::Sqlite).await.expect("sqlite");
    app.admin(Method::GET, "/api/v1/tenants/nobody", None).await;
    app.admin(Method::GET, "/api/v1/tenants/ghost", None).await;
    let response = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("plexhub_http_requests_total")
                && l.contains("route=\"/api/v1/tenants/{slug}\"")
                && l.contains("status=\"404\"")
        })
        .unwrap_or_else(|| panic!("no counter for the route template in:\n{text}"));
    assert!(line.ends_with(" 2"), "{line}");
    assert!(!text.contains("nobody"), "raw paths never become labels");
    assert!(text.contains("plexhub_http_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn openapi_lists_every_route_and_docs_render_offline() {
    let app = spawn(Backend::Sqlite).await.expect("sqlite");
    let doc = app
        .send(Method::GET, "/openapi.json", None, &[], None)
        .await;
    let doc = doc.assert_status(200);
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    let expected = [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/api/v1/whoami", "get"),
        ("/api/v1/tenants", "get"),
        ("/api/v1/tenants", "post"),
        ("/api/v1/tenants/{slug}", "get"),
        ("/api/v1/tenants/{slug}", "patch"),
        ("/api/v1/tenants/{slug}", "delete"),
        ("/api/v1/plugins", "get"),
        ("/api/v1/plugins", "post"),
        ("/api/v1/plugins/validate", "post"),
        ("/api/v1/plugins/{pluginId}", "get"),
        ("/api/v1/plugins/{pluginId}/versions/{version}", "get"),
        (
            "/api/v1/plugins/{pluginId}/versions/{version}/transitions",
            "get",
        ),
        (
            "/api/v1/plugins/{pluginId}/versions/{version}/transitions",
            "post",
        ),
        ("/api/v1/ui/remotes", "get"),
        ("/api/v1/ui/remotes/stream", "get"),
        ("/api/v1/tenants/{slug}/shell-credentials", "get"),
        ("/api/v1/tenants/{slug}/shell-credentials", "post"),
        ("/api/v1/tenants/{slug}/shell-credentials/{id}", "delete"),
        ("/api/v1/tenants/{slug}/installations", "get"),
        ("/api/v1/tenants/{slug}/installations", "post"),
        ("/api/v1/tenants/{slug}/installations/{pluginId}", "get"),
        ("/api/v1/tenants/{slug}/installations/{pluginId}", "delete"),
        (
            "/api/v1/tenants/{slug}/installations/{pluginId}/activate",
            "post",
        ),
        (
            "/api/v1/tenants/{slug}/installations/{pluginId}/deactivate",
            "post",
        ),
        (
            "/api/v1/tenants/{slug}/installations/{pluginId}/credentials",
            "get",
        ),
        (
            "/api/v1/tenants/{slug}/installations/{pluginId}/credentials",
            "post",
        ),
        (
            "/api/v1/tenants/{slug}/installations/{pluginId}/credentials/{credentialId}",
            "delete",
        ),
        ("/api/v1/services", "get"),
        ("/api/v1/services/watch", "get"),
        ("/api/v1/services/{serviceName}", "get"),
        (
            "/api/v1/services/{serviceName}/instances/{instanceId}",
            "put",
        ),
        (
            "/api/v1/services/{serviceName}/instances/{instanceId}",
            "delete",
        ),
        (
            "/api/v1/services/{serviceName}/instances/{instanceId}/heartbeat",
            "post",
        ),
        (
            "/api/v1/services/{serviceName}/instances/{instanceId}/health",
            "post",
        ),
        ("/api/plugin-gateway/services/register", "post"),
        (
            "/api/plugin-gateway/services/{pluginId}/{serviceName}",
            "delete",
        ),
        ("/api/plugin-gateway/services/discover/{serviceName}", "get"),
        ("/api/plugin-gateway/services", "get"),
        ("/api/plugin-gateway/services/{serviceId}/heartbeat", "post"),
        ("/api/plugin-gateway/shared-data", "post"),
        ("/api/plugin-gateway/shared-data/{namespace}/{key}", "get"),
        (
            "/api/plugin-gateway/shared-data/{namespace}/{key}",
            "delete",
        ),
        ("/api/plugin-gateway/shared-data/{namespace}", "get"),
        ("/api/v1/data/{namespace}/{key}", "put"),
        ("/api/v1/data/{namespace}/{key}", "get"),
        ("/api/v1/data/{namespace}/{key}", "delete"),
        ("/api/v1/data/{namespace}/batch-get", "post"),
        ("/api/v1/data/{namespace}", "get"),
        ("/api/v1/data-transactions", "post"),
        ("/api/v1/data-watch/{namespace}", "get"),
        ("/api/plugin-gateway/dependencies", "post"),
        ("/api/plugin-gateway/dependencies/{pluginId}", "get"),
        (
            "/api/plugin-gateway/dependencies/{pluginId}/dependents",
            "get",
        ),
        (
            "/api/plugin-gateway/dependencies/{pluginId}/resolve",
            "post",
        ),
        (
            "/api/plugin-gateway/dependencies/{pluginId}/can-uninstall",
            "post",
        ),
        ("/api/v1/tenants/{slug}/plans/install", "post"),
        ("/api/v1/tenants/{slug}/plans/uninstall", "post"),
        ("/api/v1/tenants/{slug}/plans/upgrade", "post"),
        ("/api/plugin-gateway/call", "post"),
        ("/.well-known/plexhub-keys", "get"),
        ("/api/v1/access/explain", "get"),
        ("/api/v1/calls", "get"),
        ("/api/v1/proxy/{serviceName}", "get"),
        ("/api/v1/proxy/{serviceName}", "post"),
        ("/api/v1/proxy/{serviceName}", "put"),
        ("/api/v1/proxy/{serviceName}", "patch"),
        ("/api/v1/proxy/{serviceName}", "delete"),
        ("/api/v1/proxy/{serviceName}/{path}", "get"),
        ("/api/v1/proxy/{serviceName}/{path}", "post"),
        ("/api/v1/proxy/{serviceName}/{path}", "put"),
        ("/api/v1/proxy/{serviceName}/{path}", "patch"),
        ("/api/v1/proxy/{serviceName}/{path}", "delete"),
        ("/api/v1/events", "post"),
        ("/api/v1/events/stream", "get"),
        ("/api/v1/subscriptions", "get"),
        ("/api/v1/dead-letters", "get"),
        ("/api/v1/dead-letters/{id}/retry", "post"),
        ("/api/v1/dead-letters/{id}", "delete"),
        (
            "/api/v1/tenants/{slug}/installations/{pluginId}/signing-secret/rotate",
            "post",
        ),
        ("/api/v1/self/signing-secrets", "get"),
        (
            "/api/v1/tenants/{slug}/installations/{pluginId}/grants",
            "put",
        ),
        (
            "/api/v1/tenants/{slug}/installations/{pluginId}/base-url",
            "put",
        ),
        (
            "/api/v1/tenants/{slug}/installations/{pluginId}/allowed-origins",
            "put",
        ),
    ];
    for (path, method) in expected {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} missing from /openapi.json"
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| {
            item.as_object()
                .map_or(0, |ops| ops.keys().filter(|k| *k != "parameters").count())
        })
        .sum();
    assert_eq!(
        documented,
        expected.len(),
        "a route is documented that the test does not know"
    );

    let page = app
        .http
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("https://"),
        "the docs page must not load anything from the internet"
    );
    let script = app
        .http
        .get(format!("{}/docs/swagger-ui-bundle.js", app.base))
        .send()
        .await
        .expect("bundle");
    assert_eq!(
        script.status(),
        200,
        "the UI's script is served from the binary"
    );
    assert!(script.text().await.expect("js").len() > 100_000);
}

/// `/openapi.json` is a valid OpenAPI 3.1 document for `openapi-spec-validator` (PyPI, pinned
/// in `.ci/run`): query parameters are in the query, every path placeholder is declared.
#[tokio::test]
async fn the_openapi_document_is_valid() {
    let app = spawn(Backend::Sqlite).await.expect("sqlite");
    let doc = app
        .send(Method::GET, "/openapi.json", None, &[], None)
        .await;
    let doc = doc.assert_status(200);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write");
    let validator = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output();
    let validator = match validator {
        Ok(run) if !String::from_utf8_lossy(&run.stderr).contains("No module named") => run,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "openapi-spec-validator is required under CI (.ci/run installs it)"
            );
            eprintln!("note: openapi-spec-validator not installed; the document was not validated");
            return;
        }
    };
    assert!(
        validator.status.success(),
        "invalid OpenAPI document:\n{}{}",
        String::from_utf8_lossy(&validator.stdout),
        String::from_utf8_lossy(&validator.stderr)
    );
}

/// A Redis that accepts connections and never answers (frozen, or a network black hole):
/// writes do not wait for their change to be published (before, each waited its 1 s publish
/// timeout), and reads bypass the caches they can no longer trust.
#[tokio::test]
async fn writes_do_not_wait_on_a_frozen_redis() {
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = black_hole.local_addr().expect("address");
    let held = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let holder = held.clone();
    tokio::spawn(async move {
        while let Ok((connection, _)) = black_hole.accept().await {
            holder.lock().await.push(connection);
        }
    });
    let app = spawn_with(
        Backend::Sqlite,
        Options {
            redis_url: Some(format!("redis://{address}/")),
            ..Options::default()
        },
    )
    .await
    .expect("starts while Redis hangs");
    app.create_tenant("acme").await;
    app.publish(&crate::helpers::crm_at("1.0.0")).await;
    app.publish(&crate::helpers::analytics()).await;
    app.install("acme", "plugin-crm", json!({})).await;
    app.install("acme", "plugin-analytics", json!({})).await;
    let acting = [("x-tenant-slug", "acme")];
    for n in 0..5 {
        let started = std::time::Instant::now();
        let reply = app
            .send(
                Method::PUT,
                "/api/v1/data/reports/total",
                Some(crate::helpers::ADMIN),
                &acting,
                Some(&json!({"value": n, "ownerId": "plugin-analytics"})),
            )
            .await;
        assert!(reply.status.is_success(), "{}", reply.body);
        assert!(
            started.elapsed() < std::time::Duration::from_millis(500),
            "write {n} took {:?}",
            started.elapsed()
        );
        let read = app
            .send(
                Method::GET,
                "/api/v1/data/reports/total",
                Some(crate::helpers::ADMIN),
                &acting,
                None,
            )
            .await;
        assert_eq!(read.assert_status(200)["value"], n, "never a stale read");
    }
}

/// The router and the document cannot drift: every route the router serves is in
/// `/openapi.json` (where `DOCUMENTED_ELSEWHERE` says), and every documented operation reaches a
/// handler on a live hub (neither the router's 404 nor its 405).
#[tokio::test]
async fn the_router_serves_exactly_what_the_document_lists() {
    let app = spawn(Backend::Sqlite).await.expect("sqlite");
    let documented = crate::helpers::documented_operations(&app).await;
    let served: std::collections::BTreeSet<(String, String)> = plexhub_server::served_routes()
        .into_iter()
        .map(|(method, path)| {
            let moved = plexhub_server::DOCUMENTED_ELSEWHERE
                .iter()
                .find(|(m, served, _)| *m == method && *served == path);
            match moved {
                Some((_, _, documented)) => (method, (*documented).to_owned()),
                None => (method, path.replace("{*", "{")),
            }
        })
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
    assert!(documented.len() > 70, "{} operations", documented.len());

    // Each documented operation, with sample parameters, reaches its handler: whatever it
    // answers (401, 400, 404 for a missing tenant…), it is not the router's own 404 or 405.
    for (method, path) in &documented {
        let concrete = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "sample"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let reply = app
            .send(
                method.clone(),
                &concrete,
                Some(crate::helpers::ADMIN),
                &[],
                None,
            )
            .await;
        let code = reply.body["error"]["code"]
            .as_str()
            .or_else(|| reply.body["code"].as_str())
            .unwrap_or_default()
            .to_owned();
        let message = reply.body["error"]["message"]
            .as_str()
            .or_else(|| reply.body["error"].as_str())
            .unwrap_or_default();
        assert!(
            !(code == "NOT_FOUND" && message == "no such route") && code != "METHOD_NOT_ALLOWED",
            "{method} {concrete} (documented as {path}) is not served: {} {}",
            reply.status,
            reply.body
        );
    }
}
