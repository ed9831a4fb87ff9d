//! The gateway against real upstream HTTP servers started here: the proxy and the seed's
//! `/call`, access rules and their codes, forwarding hygiene, path escapes that never reach the
//! plugin, redirects, cookies, timeouts, refused connections, size caps, streaming, explain.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use plexhub_core::signing::{SignedRequest, SigningSecret, TrustedKeys, VerifyError, verify_any};

use crate::helpers::{
    ADMIN, Backend, Options, Reply, TestApp, analytics, crm_at, spawn_with, within,
};

const CALL: &str = "/api/plugin-gateway/call";

/// A plugin server: echoes what it received as JSON, except on a few paths that misbehave on
/// purpose. Counts the requests it saw.
pub struct Upstream {
    pub base: String,
    hits: Arc<AtomicUsize>,
    /// While set, `/deals/flaky` answers 503.
    failing: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Counters {
    hits: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

async fn echo(State(counters): State<Counters>, request: Request) -> Response {
    counters.hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    match path.as_str() {
        "/deals" => {
            return (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response();
        }
        "/deals/pipeline/summary" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        "/deals/big" => {
            // 50 MB in 64 KiB chunks, never held whole.
            let chunks = futures::stream::iter(
                (0..800).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 65_536]))),
            );
            return Response::new(Body::from_stream(chunks));
        }
        "/deals/flaky" if counters.failing.load(Ordering::SeqCst) => {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
        "/deals/sized" => {
            return ([(header::CONTENT_LENGTH, "5000")], vec![b'y'; 5000]).into_response();
        }
        _ => {}
    }
    let headers: BTreeMap<String, String> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let answer = json!({
        "method": parts.method.as_str(),
        "path": path,
        "query": parts.uri.query(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    (
        [
            (header::SET_COOKIE, "session=secret"),
            (header::CONTENT_TYPE, "application/json"),
        ],
        answer.to_string(),
    )
        .into_response()
}

pub async fn upstream() -> Upstream {
    let hits = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let counters = Counters {
        hits: hits.clone(),
        failing: failing.clone(),
    };
    let app = Router::new().fallback(echo).with_state(counters);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Upstream {
        base,
        hits,
        failing,
    }
}

/// Tenant `acme`: CRM (at `crm_url`) and Analytics, both ACTIVE, Analytics granted the read
/// permissions. Returns (crm token, analytics token).
pub async fn acme(app: &TestApp, crm_url: &str) -> (String, String) {
    let grants = json!(["plugin.crm.contacts.read", "plugin.crm.deals.read"]);
    acme_granting(app, crm_url, grants).await
}

/// [`acme`] with Analytics granted `grants`.
pub async fn acme_granting(app: &TestApp, crm_url: &str, grants: Value) -> (String, String) {
    app.create_tenant("acme").await;
    app.publish(&crm_at("1.0.0")).await;
    app.publish(&analytics()).await;
    let crm = app
        .install(
            "acme",
            "plugin-crm",
            json!({"baseUrl": crm_url, "activate": true}),
        )
        .await;
    let analytics = app
        .install(
            "acme",
            "plugin-analytics",
            json!({"activate": true, "grants": grants}),
        )
        .await;
    (crm, analytics)
}

async fn proxy(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    app.send(
        method,
        &format!("/api/v1/proxy{path}"),
        Some(token),
        headers,
        None,
    )
    .await
}

/// Sends a request line as written (no client-side normalisation of `..`); returns the status.
async fn raw_status(app: &TestApp, token: &str, target: &str) -> u16 {
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

async fn the_proxy_forwards_what_it_may_and_refuses_what_it_must(app: TestApp) {
    let plugin = upstream().await;
    let (crm, analytics) = acme(&app, &plugin.base).await;

    let reply = proxy(
        &app,
        &analytics,
        Method::GET,
        "/crm.contacts/contacts?x=1&y=a%20b",
        &[
            ("cookie", "session=caller"),
            ("x-tenant-slug", "acme"),
            ("x-caller-plugin-id", "plugin-analytics"),
            ("x-plexhub-signature", "forged"),
            ("x-tenant-id", "forged"),
            ("x-custom", "kept"),
            ("traceparent", "not-a-trace"),
            ("x-request-id", "req-from-caller-1"),
        ],
    )
    .await;
    let seen = reply.assert_status(200);
    assert_eq!(
        reply.headers.get("set-cookie"),
        None,
        "Set-Cookie never comes back"
    );
    assert_eq!(seen["path"], "/contacts");
    assert_eq!(seen["query"], "x=1&y=a%20b");
    let headers = &seen["headers"];
    for dropped in ["authorization", "cookie"] {
        assert!(
            headers.get(dropped).is_none(),
            "{dropped} reached the plugin: {headers}"
        );
    }
    assert_eq!(headers["x-custom"], "kept");
    assert_eq!(
        headers["host"].as_str(),
        plugin.base.strip_prefix("http://"),
        "the plugin sees its own host, not the hub's"
    );
    assert_eq!(headers["x-tenant-slug"], "acme");
    assert_eq!(headers["x-caller-plugin-id"], "plugin-analytics");
    assert_eq!(headers["x-request-id"], "req-from-caller-1");
    let tenant_id = headers["x-tenant-id"]
        .as_str()
        .expect("tenant id")
        .to_owned();
    assert_eq!(
        tenant_id.len(),
        36,
        "the tenant's UUID, not what the caller sent"
    );
    let trace = headers["traceparent"].as_str().expect("traceparent");
    assert!(trace.starts_with("00-") && trace.len() == 55, "{trace}");

    // The hub's signature replaces the forged one, and verifies with CRM's own secret.
    let own = app
        .as_plugin(&crm, Method::GET, "/api/v1/self/signing-secrets")
        .await;
    let secret = &own.assert_status(200)["secrets"][0];
    let trusted = TrustedKeys {
        public_keys: Vec::new(),
        secrets: vec![
            SigningSecret::from_text(
                secret["keyId"].as_str().expect("key id"),
                secret["secret"].as_str().expect("secret"),
            )
            .expect("secret"),
        ],
    };
    let signature = headers["x-plexhub-signature"].as_str().expect("signature");
    let signed = SignedRequest {
        method: "GET",
        path: "/contacts",
        query: "x=1&y=a%20b",
        tenant_id: &tenant_id,
        caller: "plugin-analytics",
        request_id: "req-from-caller-1",
        user_id: "",
        workspace_id: "",
    };
    let now = app.clock.now_ms();
    assert!(verify_any(&trusted, signature, &signed, now, 60_000).is_ok());
    let elsewhere = SignedRequest {
        path: "/contacts/1",
        ..signed
    };
    assert_eq!(
        verify_any(&trusted, signature, &elsewhere, now, 60_000),
        Err(VerifyError::Mismatch)
    );
    let one = proxy(
        &app,
        &analytics,
        Method::GET,
        "/crm.contacts/contacts/42",
        &[],
    )
    .await;
    assert_eq!(one.assert_status(200)["path"], "/contacts/42");

    // Access rules, each with its code.
    let write = proxy(
        &app,
        &analytics,
        Method::POST,
        "/crm.contacts/contacts",
        &[],
    )
    .await;
    write.assert_error(403, "PERMISSION_DENIED");
    assert_eq!(
        write.body["error"]["details"]["missing"],
        json!(["plugin.crm.contacts.write"])
    );
    // The message says the command that grants it.
    let message = write.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(
            "`plexhub installation grants add plugin-analytics --tenant acme plugin.crm.contacts.write`"
        ),
        "{message}"
    );
    proxy(&app, &crm, Method::GET, "/crm.contacts/contacts", &[])
        .await
        .assert_error(403, "ACCESS_DENIED");
    let nothing = proxy(&app, &analytics, Method::GET, "/crm.nothing/contacts", &[]).await;
    nothing.assert_error(404, "SERVICE_NOT_FOUND");
    // No name is close: the services the caller may call are listed.
    assert_eq!(nothing.body["error"]["details"]["didYouMean"], json!(null));
    let callable = nothing.body["error"]["details"]["callable"].clone();
    assert!(
        callable
            .as_array()
            .is_some_and(|names| names.contains(&json!("crm.contacts"))),
        "{callable}"
    );
    // A near miss gets the closest name.
    let typo = proxy(&app, &analytics, Method::GET, "/crm.contact/contacts", &[]).await;
    typo.assert_error(404, "SERVICE_NOT_FOUND");
    assert_eq!(typo.body["error"]["details"]["didYouMean"], "crm.contacts");
    assert!(
        typo.body["error"]["message"]
            .as_str()
            .is_some_and(|text| text.contains("did you mean crm.contacts?")),
        "{}",
        typo.body
    );
    // The explain route tells the same.
    let explained = app
        .send(
            Method::GET,
            "/api/v1/access/explain?service=crm.contact&method=GET&path=/contacts",
            Some(&analytics),
            &[],
            None,
        )
        .await;
    let explained = explained.assert_status(200);
    assert_eq!(explained["code"], "SERVICE_NOT_FOUND");
    assert!(
        explained["message"]
            .as_str()
            .is_some_and(|text| text.contains("did you mean crm.contacts?")),
        "{explained}"
    );
    let unknown = proxy(&app, &analytics, Method::GET, "/crm.contacts/nowhere", &[]).await;
    unknown.assert_error(404, "ENDPOINT_NOT_FOUND");
    let listed = &unknown.body["error"]["details"]["availableEndpoints"];
    assert!(
        listed
            .as_array()
            .is_some_and(|l| l.contains(&json!("GET /contacts"))),
        "{listed}"
    );
    proxy(
        &app,
        &analytics,
        Method::GET,
        "/crm.contacts/contacts",
        &[("x-caller-plugin-id", "plugin-crm")],
    )
    .await
    .assert_error(403, "CALLER_MISMATCH");

    // Escapes never reach the plugin.
    let before = plugin.hits.load(Ordering::SeqCst);
    for target in [
        "/api/v1/proxy/crm.contacts/contacts/..",
        "/api/v1/proxy/crm.contacts/contacts/%2e%2e",
        "/api/v1/proxy/crm.contacts/contacts/1%2fx",
        "/api/v1/proxy/crm.contacts/contacts/../deals",
        "/api/v1/proxy/crm.contacts/contacts/%00",
    ] {
        assert_eq!(raw_status(&app, &analytics, target).await, 404, "{target}");
    }
    assert_eq!(plugin.hits.load(Ordering::SeqCst), before);

    // Redirects come back as they are; the plugin's redirect target is not followed.
    let not_following = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let redirect = not_following
        .get(format!("{}/api/v1/proxy/crm.deals/deals", app.base))
        .bearer_auth(&analytics)
        .send()
        .await
        .expect("send");
    assert_eq!(redirect.status().as_u16(), 302);
    assert_eq!(redirect.headers()["location"], "/elsewhere");
    assert_eq!(plugin.hits.load(Ordering::SeqCst), before + 1);

    // The admin names the caller; a caller that is not ACTIVE is refused.
    let as_admin = &[
        ("x-tenant-slug", "acme"),
        ("x-caller-plugin-id", "plugin-analytics"),
    ];
    proxy(&app, ADMIN, Method::GET, "/crm.contacts/contacts", as_admin)
        .await
        .assert_status(200);
    proxy(
        &app,
        ADMIN,
        Method::GET,
        "/crm.contacts/contacts",
        &[("x-tenant-slug", "acme")],
    )
    .await
    .assert_error(400, "INVALID_PARAMETER");
    let installs = "/api/v1/tenants/acme/installations";
    app.admin(
        Method::POST,
        &format!("{installs}/plugin-analytics/deactivate"),
        None,
    )
    .await
    .assert_status(200);
    proxy(&app, ADMIN, Method::GET, "/crm.contacts/contacts", as_admin)
        .await
        .assert_error(403, "CALLER_NOT_ACTIVE");
    app.admin(
        Method::POST,
        &format!("{installs}/plugin-analytics/activate"),
        None,
    )
    .await
    .assert_status(200);
    app.deactivate("acme", "plugin-crm")
        .await
        .assert_status(200);
    proxy(&app, &analytics, Method::GET, "/crm.contacts/contacts", &[])
        .await
        .assert_error(404, "SERVICE_NOT_FOUND");

    // Another tenant's plugins answer for that tenant only; its credential cannot act in acme.
    app.create_tenant("globex").await;
    app.install(
        "globex",
        "plugin-crm",
        json!({"baseUrl": plugin.base, "activate": true}),
    )
    .await;
    let grants = json!(["plugin.crm.contacts.read"]);
    let globex = app
        .install(
            "globex",
            "plugin-analytics",
            json!({"activate": true, "grants": grants}),
        )
        .await;
    let theirs = proxy(&app, &globex, Method::GET, "/crm.contacts/contacts", &[]).await;
    assert_eq!(
        theirs.assert_status(200)["headers"]["x-tenant-slug"],
        "globex"
    );
    assert_ne!(theirs.body["headers"]["x-tenant-id"], json!(tenant_id));
    proxy(
        &app,
        &globex,
        Method::GET,
        "/crm.contacts/contacts",
        &[("x-tenant-slug", "acme")],
    )
    .await
    .assert_error(403, "TENANT_MISMATCH");
    // The suggestions of a 404 follow the registry: CRM deactivated, nothing is callable.
    app.deactivate("acme", "plugin-crm")
        .await
        .assert_status(200);
    let after = proxy(&app, &analytics, Method::GET, "/crm.nothing/contacts", &[]).await;
    after.assert_error(404, "SERVICE_NOT_FOUND");
    assert_eq!(after.body["error"]["details"]["callable"], json!([]));
}

async fn call(app: &TestApp, token: &str, body: Value) -> Reply {
    app.send(Method::POST, CALL, Some(token), &[], Some(&body))
        .await
}

#[track_caller]
fn assert_flat(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.body);
    assert_eq!(reply.body["code"], code, "body: {}", reply.body);
    assert!(reply.body["error"].is_string(), "flat: {}", reply.body);
}

async fn the_seed_call_route_wraps_the_answer(app: TestApp) {
    let plugin = upstream().await;
    let (_, analytics) = acme(&app, &plugin.base).await;
    let request = json!({
        "callerPluginId": "plugin-analytics",
        "targetPluginId": "plugin-crm",
        "targetServiceName": "crm.contacts",
        "method": "GET",
        "path": "/contacts?a=1",
        "query": {"b": "2 3"},
        "headers": {"X-Custom": "v", "Authorization": "Bearer stolen"},
    });
    let reply = call(&app, &analytics, request.clone()).await;
    let envelope = reply.assert_status(200);
    assert_eq!(envelope["status"], 200);
    assert_eq!(envelope["data"]["path"], "/contacts");
    assert_eq!(envelope["data"]["query"], "a=1&b=2+3");
    assert_eq!(envelope["data"]["headers"]["x-custom"], "v");
    assert!(envelope["data"]["headers"].get("authorization").is_none());
    assert!(envelope["headers"].get("set-cookie").is_none());
    assert_eq!(envelope["metadata"]["targetPlugin"], "plugin-crm");
    assert_eq!(envelope["metadata"]["targetService"], "crm.contacts");
    assert!(envelope["metadata"]["duration"].is_u64());
    assert!(envelope["metadata"]["timestamp"].is_string());

    let mut other = request.clone();
    other["callerPluginId"] = json!("plugin-crm");
    assert_flat(&call(&app, &analytics, other).await, 403, "CALLER_MISMATCH");
    let mut wrong = request.clone();
    wrong["targetPluginId"] = json!("plugin-erp");
    let mismatch = call(&app, &analytics, wrong).await;
    assert_flat(&mismatch, 400, "PLUGIN_MISMATCH");
    assert_eq!(
        mismatch.body["error"], "Service crm.contacts belongs to plugin-crm, not plugin-erp",
        "the contract's message"
    );
    assert_eq!(mismatch.body["owner"], "plugin-crm", "{}", mismatch.body);
    let mut write = request.clone();
    write["method"] = json!("POST");
    write["path"] = json!("/contacts");
    write["body"] = json!({"name": "Ada"});
    assert_flat(
        &call(&app, &analytics, write).await,
        403,
        "PERMISSION_DENIED",
    );
    let mut anonymous = request.clone();
    anonymous
        .as_object_mut()
        .map(|o| o.remove("callerPluginId"));
    let admin = app
        .send(
            Method::POST,
            CALL,
            Some(ADMIN),
            &[("x-tenant-slug", "acme")],
            Some(&anonymous),
        )
        .await;
    assert_flat(&admin, 400, "INVALID_PARAMETER");
    let named = app
        .send(
            Method::POST,
            CALL,
            Some(ADMIN),
            &[("x-tenant-slug", "acme")],
            Some(&request),
        )
        .await;
    named.assert_status(200);
}

/// Every call, forwarded or refused, lands in the audit log and the gateway histogram.
async fn calls_are_audited_and_measured(app: TestApp) {
    let plugin = upstream().await;
    let (crm, analytics) = acme(&app, &plugin.base).await;
    proxy(
        &app,
        &analytics,
        Method::GET,
        "/crm.contacts/contacts?x=1",
        &[("x-request-id", "audit-1")],
    )
    .await
    .assert_status(200);
    proxy(
        &app,
        &analytics,
        Method::POST,
        "/crm.contacts/contacts",
        &[],
    )
    .await
    .assert_error(403, "PERMISSION_DENIED");
    proxy(&app, &crm, Method::GET, "/crm.contacts/contacts", &[])
        .await
        .assert_error(403, "ACCESS_DENIED");
    let body = json!({"targetPluginId": "plugin-crm", "targetServiceName": "crm.deals",
        "method": "GET", "path": "/deals/3"});
    call(&app, &analytics, body).await.assert_status(200);
    let started = tokio::time::Instant::now();
    let calls = loop {
        let listed = app
            .admin(Method::GET, "/api/v1/calls?tenant=acme", None)
            .await;
        let calls = listed.assert_status(200)["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if calls.len() >= 4 {
            break calls;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "audited: {calls:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(calls.len(), 4);
    let first = calls
        .iter()
        .find(|c| c["requestId"] == "audit-1")
        .expect("the first call");
    assert_eq!(first["caller"], "plugin-analytics");
    assert_eq!(first["target"], "plugin-crm");
    assert_eq!(first["service"], "crm.contacts");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/contacts");
    assert_eq!(first["endpoint"], "GET /contacts");
    assert_eq!(first["status"], 200);
    assert!(first["durationMs"].as_f64().is_some_and(|ms| ms > 0.0));
    let refused = app
        .admin(Method::GET, "/api/v1/calls?tenant=acme&status=4xx", None)
        .await;
    let refused = refused.assert_status(200)["calls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(refused.len(), 2);
    assert!(
        refused
            .iter()
            .all(|c| c["status"] == 403 && c["endpoint"].is_null())
    );
    let by_crm = app
        .admin(Method::GET, "/api/v1/calls?caller=plugin-crm", None)
        .await;
    assert_eq!(
        by_crm.assert_status(200)["calls"].as_array().map(Vec::len),
        Some(1)
    );
    let later = app
        .admin(
            Method::GET,
            "/api/v1/calls?since=2999-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(later.assert_status(200)["calls"], json!([]));
    // A page at a time: the cursors walk the same four calls, each once, in the same order.
    let mut paged = Vec::new();
    let mut path = "/api/v1/calls?tenant=acme&limit=3".to_owned();
    loop {
        let page = app.admin(Method::GET, &path, None).await;
        let page = page.assert_status(200);
        paged.extend(page["calls"].as_array().cloned().unwrap_or_default());
        let Some(cursor) = page["nextCursor"].as_str() else {
            break;
        };
        assert!(paged.len() < 4, "a cursor after the last page");
        path = format!("/api/v1/calls?tenant=acme&limit=3&cursor={cursor}");
    }
    assert_eq!(paged, calls);
    app.admin(Method::GET, "/api/v1/calls?cursor=yesterday", None)
        .await
        .assert_error(400, "INVALID_PARAMETER");
    app.admin(Method::GET, "/api/v1/calls?status=7xx", None)
        .await
        .assert_error(400, "INVALID_PARAMETER");
    app.as_plugin(&analytics, Method::GET, "/api/v1/calls")
        .await
        .assert_error(403, "FORBIDDEN");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains(
            "plexhub_gateway_call_duration_seconds_count{route=\"proxy\",status_class=\"4xx\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("route=\"call\",status_class=\"2xx\""),
        "{metrics}"
    );
    assert!(!metrics.contains("acme"), "no tenant slug in metric labels");
}

/// A replica registered by activation is UNKNOWN until it is heard from; its first answered
/// call through the gateway makes it HEALTHY (and the heartbeat rules apply from then on: a
/// silent replica is not called, even on a route the gateway remembers).
async fn the_first_answered_call_confirms_an_unknown_replica(app: TestApp) {
    let plugin = upstream().await;
    let (crm, analytics) = acme(&app, &plugin.base).await;
    let status = || async {
        let view = app
            .as_plugin(&crm, Method::GET, "/api/v1/services/crm.contacts")
            .await;
        view.assert_status(200)["instances"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(status().await, "UNKNOWN");
    proxy(&app, &analytics, Method::GET, "/crm.contacts/contacts", &[])
        .await
        .assert_status(200);
    within(Duration::from_secs(2), || async {
        status().await == "HEALTHY"
    })
    .await;
    // The route is remembered now; silence past the staleness limit still ends it at once
    // (the first moment a replica's status may change bounds a remembered route).
    proxy(&app, &analytics, Method::GET, "/crm.contacts/contacts", &[])
        .await
        .assert_status(200);
    app.clock.advance(300_001);
    proxy(&app, &analytics, Method::GET, "/crm.contacts/contacts", &[])
        .await
        .assert_error(503, "SERVICE_UNAVAILABLE");
}

crate::on_both_backends!(
    the_first_answered_call_confirms_an_unknown_replica,
    the_proxy_forwards_what_it_may_and_refuses_what_it_must,
    the_seed_call_route_wraps_the_answer,
    calls_are_audited_and_measured,
);

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn timeouts_refusals_size_caps_and_streaming() {
    let gateway = plexhub_server::GatewaySettings {
        max_request_bytes: 1_000,
        max_response_bytes: 4_000,
        request_timeout: Duration::from_millis(300),
        ..plexhub_server::GatewaySettings::default()
    };
    let options = Options {
        gateway: Some(gateway),
        ..Options::default()
    };
    let app = spawn_with(Backend::Sqlite, options).await.expect("hub");
    let plugin = upstream().await;
    let (_, analytics) = acme(&app, &plugin.base).await;

    proxy(
        &app,
        &analytics,
        Method::GET,
        "/crm.deals/deals/pipeline/summary",
        &[],
    )
    .await
    .assert_error(504, "UPSTREAM_TIMEOUT");
    proxy(&app, &analytics, Method::GET, "/crm.deals/deals/sized", &[])
        .await
        .assert_error(502, "UPSTREAM_RESPONSE_TOO_LARGE");
    let big_body = "z".repeat(2_000);
    let too_big = app
        .http
        .get(format!("{}/api/v1/proxy/crm.contacts/contacts/1", app.base))
        .bearer_auth(&analytics)
        .body(big_body)
        .send()
        .await
        .expect("send");
    assert_eq!(too_big.status(), 413);
    // A streamed answer larger than the cap breaks off instead of being buffered.
    let streamed = app
        .http
        .get(format!("{}/api/v1/proxy/crm.deals/deals/big", app.base))
        .bearer_auth(&analytics)
        .send()
        .await;
    match streamed {
        Ok(response) => assert!(
            response.bytes().await.is_err(),
            "the capped stream must not complete"
        ),
        Err(error) => assert!(error.is_request() || error.is_body(), "{error}"),
    }

    // A plugin that refuses connections.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    app.create_tenant("initech").await;
    let crm = app
        .install(
            "initech",
            "plugin-crm",
            json!({"baseUrl": format!("http://127.0.0.1:{port}"), "activate": true}),
        )
        .await;
    let _ = crm;
    let grants = json!(["plugin.crm.contacts.read"]);
    let caller = app
        .install(
            "initech",
            "plugin-analytics",
            json!({"activate": true, "grants": grants}),
        )
        .await;
    let refused = proxy(&app, &caller, Method::GET, "/crm.contacts/contacts", &[]).await;
    refused.assert_error(502, "UPSTREAM_UNREACHABLE");
    // The message names where the hub tried and what the connection got.
    let message = refused.body["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains(&format!("at http://127.0.0.1:{port}")) && message.contains("refused"),
        "{message}"
    );
}

#[tokio::test]
async fn a_large_answer_streams_through_without_being_held() {
    let app = spawn_with(Backend::Sqlite, Options::default())
        .await
        .expect("hub");
    let plugin = upstream().await;
    let (_, analytics) = acme(&app, &plugin.base).await;
    let before = rss_kib();
    let mut response = app
        .http
        .get(format!("{}/api/v1/proxy/crm.deals/deals/big", app.base))
        .bearer_auth(&analytics)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let mut received = 0usize;
    let mut peak = before;
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        received += chunk.len();
        peak = peak.max(rss_kib());
    }
    assert_eq!(received, 800 * 65_536);
    // The hub, the plugin and this client share the process: 50 MB held anywhere would show.
    assert!(
        peak.saturating_sub(before) < 20 * 1024,
        "memory grew by {} KiB while streaming 50 MB",
        peak.saturating_sub(before)
    );
}

#[tokio::test]
async fn explain_says_why_for_every_rule() {
    let app = spawn_with(Backend::Sqlite, Options::default())
        .await
        .expect("hub");
    let plugin = upstream().await;
    let (crm, analytics) = acme(&app, &plugin.base).await;
    let explain =
        |token: String, query: &'static str, headers: Vec<(&'static str, &'static str)>| {
            let app = &app;
            async move {
                app.send(
                    Method::GET,
                    &format!("/api/v1/access/explain?{query}"),
                    Some(&token),
                    &headers,
                    None,
                )
                .await
            }
        };
    let allowed = explain(
        analytics.clone(),
        "service=crm.contacts&method=GET&path=/contacts/7",
        vec![],
    )
    .await;
    let body = allowed.assert_status(200);
    assert_eq!(body["allowed"], true);
    assert_eq!(body["endpoint"], "GET /contacts/:id");
    let checks = body["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 6);
    assert!(
        checks
            .iter()
            .all(|c| c["passed"] == true && c["detail"].as_str().is_some_and(|d| !d.is_empty()))
    );

    let denied = explain(
        analytics.clone(),
        "service=crm.contacts&method=POST&path=/contacts",
        vec![],
    )
    .await;
    let body = denied.assert_status(200);
    assert_eq!(body["allowed"], false);
    assert_eq!(body["code"], "PERMISSION_DENIED");
    let failed: Vec<&Value> = body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["passed"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["rule"], "permissions_granted");
    assert_eq!(
        failed[0]["detail"],
        "not granted: plugin.crm.contacts.write"
    );

    let by_admin = explain(
        ADMIN.to_owned(),
        "caller=plugin-crm&service=crm.contacts&method=GET&path=/contacts",
        vec![("x-tenant-slug", "acme")],
    )
    .await;
    assert_eq!(by_admin.assert_status(200)["code"], "ACCESS_DENIED");
    explain(
        crm,
        "caller=plugin-analytics&service=crm.contacts&method=GET&path=/contacts",
        vec![],
    )
    .await
    .assert_error(403, "CALLER_MISMATCH");
}

/// The instance's reported status in the registry, as the admin sees it.
async fn replica_status(app: &TestApp, service: &str) -> String {
    replica(app, service).await["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The first replica of `service` in acme, as the native API shows it.
async fn replica(app: &TestApp, service: &str) -> Value {
    let reply = app
        .send(
            Method::GET,
            &format!("/api/v1/services/{service}"),
            Some(ADMIN),
            &[("x-tenant-slug", "acme")],
            None,
        )
        .await;
    reply.assert_status(200)["instances"][0].clone()
}

#[tokio::test]
async fn a_failing_replica_opens_its_circuit_and_comes_back_by_itself() {
    let app = spawn_with(Backend::Sqlite, Options::default())
        .await
        .expect("hub");
    let plugin = upstream().await;
    let (_, analytics) = acme(&app, &plugin.base).await;
    plugin.failing.store(true, Ordering::SeqCst);
    let flaky = "/crm.deals/deals/flaky";
    // Idempotent calls that get 503 are retried, so the breaker sees every attempt.
    for _ in 0..2 {
        let failed = proxy(&app, &analytics, Method::GET, flaky, &[]).await;
        assert_eq!(
            failed.status.as_u16(),
            503,
            "the plugin's own 503 comes back"
        );
    }
    let open = proxy(&app, &analytics, Method::GET, flaky, &[]).await;
    open.assert_error(503, "SERVICE_UNAVAILABLE");
    let seen = plugin.hits.load(Ordering::SeqCst);
    proxy(&app, &analytics, Method::GET, flaky, &[])
        .await
        .assert_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(
        plugin.hits.load(Ordering::SeqCst),
        seen,
        "an open circuit sends nothing"
    );
    assert!(
        replica(&app, "crm.deals").await["circuitOpenUntil"].is_string(),
        "the registry view shows the open circuit"
    );
    let started = tokio::time::Instant::now();
    while replica_status(&app, "crm.deals").await != "DEGRADED" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "marked DEGRADED"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The plugin recovers; after the open period one probe goes through and closes it.
    plugin.failing.store(false, Ordering::SeqCst);
    app.clock.advance(10_000);
    let probe = proxy(&app, &analytics, Method::GET, flaky, &[]).await;
    assert_eq!(probe.assert_status(200)["path"], "/deals/flaky");
    proxy(&app, &analytics, Method::GET, flaky, &[])
        .await
        .assert_status(200);
    let started = tokio::time::Instant::now();
    while replica_status(&app, "crm.deals").await != "HEALTHY" {
        assert!(started.elapsed() < Duration::from_secs(5), "HEALTHY again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        replica(&app, "crm.deals")
            .await
            .get("circuitOpenUntil")
            .is_none()
    );
}

#[tokio::test]
async fn calls_skip_a_dead_replica_by_retrying_and_then_by_its_open_circuit() {
    let app = spawn_with(Backend::Sqlite, Options::default())
        .await
        .expect("hub");
    let plugin = upstream().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("address"));
    drop(closed);
    app.create_tenant("acme").await;
    app.publish(&crm_at("1.0.0")).await;
    app.publish(&analytics()).await;
    let origins = json!([plugin.base, dead]);
    let crm = app
        .install(
            "acme",
            "plugin-crm",
            json!({"baseUrl": plugin.base, "activate": true, "allowedOrigins": origins}),
        )
        .await;
    let grants = json!(["plugin.crm.contacts.read"]);
    let analytics = app
        .install(
            "acme",
            "plugin-analytics",
            json!({"activate": true, "grants": grants}),
        )
        .await;
    app.send(
        Method::PUT,
        "/api/v1/services/crm.contacts/instances/dead",
        Some(&crm),
        &[],
        Some(&json!({"baseUrl": dead})),
    )
    .await
    .assert_status(200);
    for _ in 0..20 {
        proxy(&app, &analytics, Method::GET, "/crm.contacts/contacts", &[])
            .await
            .assert_status(200);
    }
}

async fn set_limits(app: &TestApp, limits: Value) -> Reply {
    app.admin(
        Method::PATCH,
        "/api/v1/tenants/acme",
        Some(&json!({ "rateLimits": limits })),
    )
    .await
}

#[tokio::test]
async fn quotas_answer_429_with_retry_after_and_refill() {
    let app = spawn_with(Backend::Sqlite, Options::default())
        .await
        .expect("hub");
    let plugin = upstream().await;
    let (_, analytics) = acme(&app, &plugin.base).await;
    set_limits(&app, json!({"perCaller": {"rps": 0, "burst": 1}}))
        .await
        .assert_error(400, "INVALID_BODY");
    let set = set_limits(&app, json!({"perCaller": {"rps": 1, "burst": 2}})).await;
    assert_eq!(
        set.assert_status(200)["rateLimits"],
        json!({"perCaller": {"rps": 1, "burst": 2}})
    );
    let path = "/crm.contacts/contacts";
    for _ in 0..2 {
        proxy(&app, &analytics, Method::GET, path, &[])
            .await
            .assert_status(200);
    }
    let limited = proxy(&app, &analytics, Method::GET, path, &[]).await;
    limited.assert_error(429, "RATE_LIMITED");
    assert_eq!(limited.headers["retry-after"], "1");
    let body = json!({"targetPluginId": "plugin-crm", "targetServiceName": "crm.contacts",
        "method": "GET", "path": "/contacts"});
    let flat = app
        .send(Method::POST, CALL, Some(&analytics), &[], Some(&body))
        .await;
    assert_flat(&flat, 429, "RATE_LIMITED");
    assert_eq!(flat.headers["retry-after"], "1");
    app.clock.advance(1_000);
    proxy(&app, &analytics, Method::GET, path, &[])
        .await
        .assert_status(200);
    set_limits(&app, json!({})).await.assert_status(200);
    for _ in 0..5 {
        proxy(&app, &analytics, Method::GET, path, &[])
            .await
            .assert_status(200);
    }
}

#[tokio::test]
async fn two_hubs_share_one_tenant_quota_through_redis() {
    let Some((a, b)) = crate::helpers::two_hubs(None).await else {
        return;
    };
    let plugin = upstream().await;
    a.create_tenant("acme").await;
    set_limits(&a, json!({"perTenant": {"rps": 1, "burst": 3}}))
        .await
        .assert_status(200);
    a.publish(&crm_at("1.0.0")).await;
    a.publish(&analytics()).await;
    a.install(
        "acme",
        "plugin-crm",
        json!({"baseUrl": plugin.base, "activate": true}),
    )
    .await;
    let grants = json!(["plugin.crm.contacts.read"]);
    let token = a
        .install(
            "acme",
            "plugin-analytics",
            json!({"activate": true, "grants": grants}),
        )
        .await;
    let path = "/crm.contacts/contacts";
    let mut admitted = 0;
    let mut limited = 0;
    for hub in [&a, &b, &a, &b, &a, &b] {
        let reply = proxy(hub, &token, Method::GET, path, &[]).await;
        match reply.status.as_u16() {
            200 => admitted += 1,
            429 => limited += 1,
            other => panic!("unexpected {other}: {}", reply.body),
        }
    }
    // One budget of 3 for both hubs (at 1 request per second, the test's few milliseconds
    // refill nothing), not 3 each.
    assert_eq!((admitted, limited), (3, 3));
}

#[tokio::test]
async fn a_circuit_opened_by_one_hub_spares_the_replica_on_the_other() {
    let Some((a, b)) = crate::helpers::two_hubs(None).await else {
        return;
    };
    let plugin = upstream().await;
    let (_, analytics) = acme(&a, &plugin.base).await;
    let flaky = "/crm.deals/deals/flaky";
    proxy(&b, &analytics, Method::GET, flaky, &[])
        .await
        .assert_status(200);
    plugin.failing.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        let failed = proxy(&a, &analytics, Method::GET, flaky, &[]).await;
        assert_eq!(failed.status.as_u16(), 503);
    }
    let started = tokio::time::Instant::now();
    while replica_status(&a, "crm.deals").await != "DEGRADED" {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "marked DEGRADED"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Hub B never saw a failure itself, yet no longer calls the replica.
    let seen = plugin.hits.load(Ordering::SeqCst);
    proxy(&b, &analytics, Method::GET, flaky, &[])
        .await
        .assert_error(503, "SERVICE_UNAVAILABLE");
    assert_eq!(plugin.hits.load(Ordering::SeqCst), seen);
}

/// Sends `head` (a request line and headers, without the blank line) and `body` on a fresh
/// connection, then waits for the answer; returns its status and how long it took.
async fn raw_exchange(app: &TestApp, head: &str, body: &[u8]) -> (u16, Duration) {
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let started = tokio::time::Instant::now();
    stream
        .write_all(format!("{head}\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .expect("write head");
    stream.write_all(body).await.expect("write body");
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer within 5 s")
        .expect("read");
    let status = String::from_utf8_lossy(&answer[..read])
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, started.elapsed())
}

/// A caller's broken body is the caller's fault: 413 (also chunked), 400 for broken framing,
/// 408 when it stops arriving; none of them opens the plugin's circuit breaker. The seed's
/// `/call` sets framing itself and refuses an oversize body before sending anything.
async fn a_callers_broken_body_never_counts_against_the_plugin(app: TestApp) {
    let plugin = upstream().await;
    let grants = json!(["plugin.crm.contacts.read", "plugin.crm.contacts.write"]);
    let (_, analytics) = acme_granting(&app, &plugin.base, grants).await;
    let url = format!("{}/api/v1/proxy/crm.contacts/contacts/1", app.base);
    // Ten oversize chunked bodies: more than the five failures that open a breaker.
    for _ in 0..10 {
        // A streamed body has no Content-Length: it goes chunked.
        let chunks = futures::stream::iter((0..40).map(|_| {
            Ok::<_, std::io::Error>(hyper::body::Frame::data(Bytes::from(vec![b'z'; 1_000])))
        }));
        let answer = app
            .http
            .put(&url)
            .bearer_auth(&analytics)
            .body(reqwest::Body::wrap(http_body_util::StreamBody::new(chunks)))
            .send()
            .await
            .expect("send");
        assert_eq!(answer.status(), 413);
        let body: Value = answer.json().await.expect("json");
        assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE");
    }
    let auth = format!("Authorization: Bearer {analytics}");
    for _ in 0..6 {
        let (status, _) = raw_exchange(
            &app,
            &format!("PUT /api/v1/proxy/crm.contacts/contacts/1 HTTP/1.1\r\n{auth}\r\nTransfer-Encoding: chunked"),
            b"zz-not-a-size\r\nabc\r\n0\r\n\r\n",
        )
        .await;
        assert_eq!(status, 400, "broken chunked framing");
    }
    let (status, took) = raw_exchange(
        &app,
        &format!(
            "PUT /api/v1/proxy/crm.contacts/contacts/1 HTTP/1.1\r\n{auth}\r\nContent-Length: 100"
        ),
        b"only ten b",
    )
    .await;
    assert_eq!(status, 408, "a body that stops arriving");
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    // The plugin is as healthy as ever.
    proxy(&app, &analytics, Method::GET, "/crm.contacts/contacts", &[])
        .await
        .assert_status(200);

    // /call: framing headers from `headers` are the hub's business: a wrong Content-Length
    // neither cuts the body nor hangs the plugin.
    for length in ["0", "99999"] {
        let reply = app
            .send(
                Method::POST,
                CALL,
                Some(&analytics),
                &[],
                Some(&json!({
                    "targetPluginId": "plugin-crm", "targetServiceName": "crm.contacts",
                    "method": "GET", "path": "/contacts",
                    "headers": {"Content-Length": length}, "body": {"filter": "ada"},
                })),
            )
            .await;
        let seen = &reply.assert_status(200)["data"];
        assert_eq!(
            seen["body"], r#"{"filter":"ada"}"#,
            "Content-Length {length}: {seen}"
        );
    }
    let before = plugin.hits.load(Ordering::SeqCst);
    let reply = app
        .send(
            Method::POST,
            CALL,
            Some(&analytics),
            &[],
            Some(&json!({
                "targetPluginId": "plugin-crm", "targetServiceName": "crm.contacts",
                "method": "GET", "path": "/contacts",
                "headers": {"Content-Length": "0"}, "body": {"filter": "x".repeat(40_000)},
            })),
        )
        .await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.body["code"], "PAYLOAD_TOO_LARGE", "{}", reply.body);
    assert_eq!(
        plugin.hits.load(Ordering::SeqCst),
        before,
        "nothing was sent"
    );
}

async fn small_limits(backend: Backend) -> Option<TestApp> {
    let gateway = plexhub_server::GatewaySettings {
        max_request_bytes: 30_000,
        request_body_timeout: Duration::from_millis(300),
        ..plexhub_server::GatewaySettings::default()
    };
    let options = Options {
        gateway: Some(gateway),
        max_body_bytes: Some(1024 * 1024),
        ..Options::default()
    };
    spawn_with(backend, options).await
}

#[tokio::test]
async fn a_callers_broken_body_is_its_own_fault_on_sqlite() {
    let app = small_limits(Backend::Sqlite).await.expect("sqlite");
    a_callers_broken_body_never_counts_against_the_plugin(app).await;
}

#[tokio::test]
async fn a_callers_broken_body_is_its_own_fault_on_postgres() {
    if let Some(app) = small_limits(Backend::Postgres).await {
        a_callers_broken_body_never_counts_against_the_plugin(app).await;
    }
}

/// A plugin written on a raw socket: counts the connections it accepted and records each
/// request line; answers `{"ok":1}` and keeps the connection, except on a path ending in `/close`,
/// where it answers with `Connection: close` and closes it.
async fn counting_plugin() -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind plugin");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (counted, seen) = (accepted.clone(), lines.clone());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                    buffer.drain(..end + 4);
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    let close = line.contains("/close ");
                    seen.lock().expect("lines").push(line);
                    let answer = if close {
                        "HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\n{\"ok\":1}"
                    } else {
                        "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n{\"ok\":1}"
                    };
                    if socket.write_all(answer.as_bytes()).await.is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    (base, accepted, lines)
}

#[tokio::test]
async fn connections_to_a_plugin_are_kept_alive_and_replaced_when_it_closes_them() {
    let app = spawn_with(Backend::Sqlite, Options::default())
        .await
        .expect("hub");
    let (base, accepted, lines) = counting_plugin().await;
    // A base URL with a path: every forwarded path goes under it.
    let (_, analytics) = acme(&app, &format!("{base}/base/")).await;
    for _ in 0..5 {
        let reply = proxy(
            &app,
            &analytics,
            Method::GET,
            "/crm.contacts/contacts?limit=2",
            &[],
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body, json!({"ok": 1}));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection carried the calls in turn"
    );
    // The plugin answers and closes: the next call goes out on a new connection.
    for path in ["/crm.contacts/contacts/close", "/crm.contacts/contacts"] {
        let reply = proxy(&app, &analytics, Method::GET, path, &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        2,
        "a closed connection is replaced once"
    );
    let lines = lines.lock().expect("lines").clone();
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert_eq!(lines[0], "GET /base/contacts?limit=2 HTTP/1.1");
    assert_eq!(lines[5], "GET /base/contacts/close HTTP/1.1");
    assert_eq!(lines[6], "GET /base/contacts HTTP/1.1");
}
