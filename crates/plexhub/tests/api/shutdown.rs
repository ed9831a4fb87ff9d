//! Stopping `plexhub serve` with SIGTERM: `/readyz` answers 503 at once while the listener
//! still accepts for the drain grace; then the listener closes, a gateway call in flight still
//! gets its answer, the audit log is written, and the process exits 0. Ctrl-C (SIGINT) skips
//! the grace.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::helpers::{ADMIN, analytics, crm_at};

/// How long the plugin takes to answer: longer than the drain grace, so the call is still in
/// flight when the listener closes.
const SLOW: Duration = Duration::from_secs(3);

/// A plugin that answers every request after [`SLOW`]; `arrived` fires as each request comes in.
async fn slow_plugin() -> (String, Arc<Notify>) {
    let arrived = Arc::new(Notify::new());
    let seen = arrived.clone();
    let app = Router::new().fallback(move || {
        let seen = seen.clone();
        async move {
            seen.notify_one();
            tokio::time::sleep(SLOW).await;
            axum::Json(json!({"id": "7", "name": "slow"}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind plugin");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, arrived)
}

/// An admin call that must succeed; returns the JSON body.
async fn admin(http: &reqwest::Client, hub: &str, path: &str, body: Value) -> Value {
    let reply = http
        .post(format!("{hub}{path}"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .expect("admin call");
    assert!(reply.status().is_success(), "{path}: {}", reply.status());
    reply.json().await.expect("json")
}

/// `/readyz` over a new connection: its status and body, or `None` when refused.
async fn readyz(hub: &str) -> Option<(u16, Value)> {
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let reply = fresh.get(format!("{hub}/readyz")).send().await.ok()?;
    let status = reply.status().as_u16();
    Some((status, reply.json().await.unwrap_or(Value::Null)))
}

#[tokio::test]
async fn sigterm_turns_unready_keeps_accepting_for_the_grace_then_drains_and_exits_0() {
    let (plugin, arrived) = slow_plugin().await;
    let dir = tempfile::tempdir().expect("tmp");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--drain-grace",
        "1",
        "--drain-timeout",
        "10",
    ];
    let env = [("PLEXHUB_ADMIN_TOKEN", ADMIN)];
    let (mut child, hub, _) = crate::cli::serve(dir.path(), &args, &env).await;
    let http = reqwest::Client::new();
    admin(&http, &hub, "/api/v1/tenants", json!({"slug": "acme"})).await;
    admin(&http, &hub, "/api/v1/plugins", crm_at("1.0.0")).await;
    admin(&http, &hub, "/api/v1/plugins", analytics()).await;
    let installations = "/api/v1/tenants/acme/installations";
    let crm = json!({"pluginId": "plugin-crm", "baseUrl": plugin, "activate": true});
    admin(&http, &hub, installations, crm).await;
    let caller = json!({"pluginId": "plugin-analytics", "baseUrl": "http://127.0.0.1:9",
        "activate": true, "grants": ["plugin.crm.contacts.read"]});
    let token = admin(&http, &hub, installations, caller).await["credential"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(readyz(&hub).await.map(|(status, _)| status), Some(200));

    // A call the plugin holds for SLOW, in flight when the signal comes.
    let call = tokio::spawn({
        let (http, url) = (
            http.clone(),
            format!("{hub}/api/v1/proxy/crm.contacts/contacts/7"),
        );
        async move { http.get(url).bearer_auth(token).send().await }
    });
    tokio::time::timeout(Duration::from_secs(5), arrived.notified())
        .await
        .expect("the call reaches the plugin");
    let pid = child.id().expect("running").to_string();
    let signalled = Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());

    // Unready at once, with the reason, over connections the listener still accepts…
    let unready = loop {
        match readyz(&hub).await {
            Some((503, body)) => break body,
            Some(_) => {}
            None => panic!("the listener closed before /readyz answered 503"),
        }
        assert!(
            signalled.elapsed() < Duration::from_millis(500),
            "503 at once"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(unready["status"], "draining", "{unready}");
    let unready_after = signalled.elapsed();
    // …until the grace is over; then new connections are refused.
    let closed_after = loop {
        if readyz(&hub).await.is_none() {
            break signalled.elapsed();
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(3),
            "the listener closes after the grace"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        closed_after >= Duration::from_millis(900) && unready_after < closed_after,
        "unready after {unready_after:?}, closed after {closed_after:?} (grace 1 s)"
    );
    assert!(
        !call.is_finished(),
        "the call is still in flight when the listener closes"
    );

    let answer = call
        .await
        .expect("join")
        .expect("the call in flight is answered");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.json::<Value>().await.expect("json")["name"], "slow");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits after draining")
        .expect("status");
    assert!(status.success(), "a drained hub exits 0: {status:?}");

    // The call was written to the audit log before the exit.
    let (_child, hub, _) = crate::cli::serve(dir.path(), &args, &env).await;
    let calls: Value = http
        .get(format!("{hub}/api/v1/calls?tenant=acme"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("calls")
        .json()
        .await
        .expect("json");
    let statuses: Vec<&Value> = calls["calls"]
        .as_array()
        .map(|calls| calls.iter().map(|call| &call["status"]).collect())
        .unwrap_or_default();
    assert_eq!(statuses, [&json!(200)], "{calls}");
}

#[tokio::test]
async fn ctrl_c_skips_the_grace_and_exits_0() {
    let dir = tempfile::tempdir().expect("tmp");
    // A grace far longer than the test may take: Ctrl-C must not wait for it.
    let args = ["--listen", "127.0.0.1:0", "--drain-grace", "60"];
    let env = [("PLEXHUB_ADMIN_TOKEN", ADMIN)];
    let (mut child, hub, _) = crate::cli::serve(dir.path(), &args, &env).await;
    assert_eq!(readyz(&hub).await.map(|(status, _)| status), Some(200));
    let pid = child.id().expect("running").to_string();
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(interrupted.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits without waiting for the 60 s grace")
        .expect("status");
    assert!(status.success(), "{status:?}");
    assert!(readyz(&hub).await.is_none(), "the listener is closed");
}
