//! The SDK against a real hub (in process, SQLite) and a real plugin server: a plugin calls
//! another through the gateway, the callee accepts only the hub's signed requests, and shared
//! data round-trips, including concurrent read-modify-write.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Json, Router};
use plexhub_core::registry::HealthPolicy;
use plexhub_core::signing::{HmacSigner, HubKey, SignedRequest, SigningSecret};
use plexhub_sdk::{Client, Error, ErrorCode, HubRequest, Verifier};
use plexhub_server::{Application, Clock, GatewaySettings, Secret, Settings};
use serde_json::{Value, json};

const ADMIN: &str = "sdk-test-admin-token-0123456789";
const CRM: &str = include_str!("../../../examples/manifests/crm.json");
const ANALYTICS: &str = include_str!("../../../examples/manifests/analytics.json");

async fn hub(dir: &tempfile::TempDir) -> String {
    hub_signing_with(dir, HubKey::generate()).await
}

async fn hub_signing_with(dir: &tempfile::TempDir, key: HubKey) -> String {
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Secret::new(format!("sqlite://{}", dir.path().join("hub.db").display())),
        redis_url: None,
        events_url: None,
        admin_token: Secret::new(ADMIN),
        max_body_bytes: 1024 * 1024,
        max_value_bytes: 256 * 1024,
        health: HealthPolicy::default(),
        sweep_interval: Duration::from_millis(200),
        clock: Clock::system(),
        gateway: GatewaySettings::default(),
        signing_keys: vec![key],
        events: plexhub_server::EventSettings::default(),
        connections: plexhub_server::ConnectionLimits::default(),
        upstream_tls: plexhub_server::UpstreamTls::default(),
        cache_shared_data_when_scaled: false,
        ui_session_ttl: std::time::Duration::from_secs(12 * 3600),
        catalog_review: false,
    };
    let app = Application::build(settings).await.unwrap();
    let url = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending::<()>()));
    url
}

/// The CRM side: answers only requests the hub signed, with who asked. Its verifier trusts the
/// hub's public keys at once, and CRM's own secret once [`Verifier::add_installation`] is told.
async fn crm_plugin(hub: &str) -> (String, Arc<Verifier>) {
    async fn contacts(request: HubRequest) -> Json<Value> {
        Json(json!({
            "tenant": request.tenant_slug,
            "caller": request.caller,
            "contacts": [{"name": "Ada"}],
        }))
    }
    let verifier = Arc::new(Verifier::fetch(hub).await.unwrap());
    let app = Router::new()
        .route("/contacts", get(contacts))
        .layer(Extension(verifier.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, verifier)
}

async fn admin(hub: &str, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{hub}{path}"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_plugin_calls_another_through_the_hub_and_shares_data() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(&dir).await;
    let (crm_url, verifier) = crm_plugin(&hub).await;
    admin(&hub, "/api/v1/tenants", json!({"slug": "acme"})).await;
    for manifest in [CRM, ANALYTICS] {
        let manifest: Value = serde_json::from_str(manifest).unwrap();
        admin(&hub, "/api/v1/plugins", manifest).await;
    }
    let installs = "/api/v1/tenants/acme/installations";
    let crm = admin(
        &hub,
        installs,
        json!({"pluginId": "plugin-crm", "baseUrl": crm_url, "activate": true}),
    )
    .await;
    let analytics = admin(
        &hub,
        installs,
        json!({"pluginId": "plugin-analytics", "baseUrl": "http://127.0.0.1:9", "activate": true,
               "grants": ["plugin.crm.contacts.read"]}),
    )
    .await;
    let token = analytics["credential"]["token"].as_str().unwrap();
    let client = Client::builder().url(&hub).token(token).build().unwrap();
    let crm_token = crm["credential"]["token"].as_str().unwrap();
    let crm_client = Client::builder()
        .url(&hub)
        .token(crm_token)
        .build()
        .unwrap();
    verifier.add_installation(crm_client.clone()).await.unwrap();

    // Through the gateway, verified by the callee.
    let answer: Value = client.get_json("crm.contacts", "/contacts").await.unwrap();
    assert_eq!(answer["tenant"], "acme");
    assert_eq!(answer["caller"], "plugin-analytics");
    // The hub's refusals come back as its codes; the plugin's own errors as Plugin.
    let refused = client
        .post_json::<_, Value>("crm.contacts", "/contacts", &json!({"name": "Bob"}))
        .await
        .unwrap_err();
    let Error::Hub(error) = refused else {
        panic!("a hub error expected: {refused}");
    };
    assert_eq!(error.code, ErrorCode::PermissionDenied);
    assert_eq!(error.status, 403);

    // Straight to the plugin, without or with a forged signature: 401.
    let direct = reqwest::Client::new();
    let unsigned = direct
        .get(format!("{crm_url}/contacts"))
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let forged = direct
        .get(format!("{crm_url}/contacts"))
        .header(
            "x-plexhub-signature",
            "v1;keyId=0000000000000000;ts=1;sig=AAAA",
        )
        .header("x-tenant-slug", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);

    // Shared data, with compare-and-set updates racing each other.
    assert_eq!(client.data_get("reports", "visits").await.unwrap(), None);
    let updates = (0..10).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .data_update("reports", "visits", |old| {
                    json!(old.and_then(Value::as_i64).unwrap_or(0) + 1)
                })
                .await
                .unwrap()
        })
    });
    for update in updates {
        update.await.unwrap();
    }
    let visits = client.data_get("reports", "visits").await.unwrap().unwrap();
    assert_eq!(visits.value, json!(10), "no update lost");
    assert_eq!(visits.revision, 10);
    assert_eq!(visits.owner_id, "plugin-analytics");
    client
        .data_set("reports", "summary", &json!({"total": 427_000}), Some(60))
        .await
        .unwrap();
    assert_eq!(
        client.data_list("reports").await.unwrap(),
        ["summary", "visits"]
    );
    assert!(client.data_delete("reports", "summary").await.unwrap());
    assert!(!client.data_delete("reports", "summary").await.unwrap());

    // CRM keeps a second replica registered; removed by an operator, it comes back by itself.
    let manifest: Value = serde_json::from_str(CRM).unwrap();
    let services = plexhub_sdk::manifest_services(&manifest);
    assert_eq!(services.len(), 2);
    let beats = crm_client
        .keep_registered(services, "sdk-1", &crm_url, Some(Duration::from_millis(50)))
        .await
        .unwrap();
    let replicas = |hub: String| async move {
        let view: Value = reqwest::Client::new()
            .get(format!("{hub}/api/v1/services/crm.deals"))
            .bearer_auth(ADMIN)
            .header("x-tenant-slug", "acme")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        view["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["instanceId"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert!(replicas(hub.clone()).await.contains(&"sdk-1".to_owned()));
    let removed = reqwest::Client::new()
        .delete(format!("{hub}/api/v1/services/crm.deals/instances/sdk-1"))
        .bearer_auth(ADMIN)
        .header("x-tenant-slug", "acme")
        .send()
        .await
        .unwrap();
    assert!(removed.status().is_success(), "{}", removed.status());
    let started = tokio::time::Instant::now();
    while !replicas(hub.clone()).await.contains(&"sdk-1".to_owned()) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "registered again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    beats.stop().await;

    // Cached discovery follows the registry: CRM deactivated, its services vanish.
    let discovery = client.discovery();
    let started = tokio::time::Instant::now();
    while !discovery.is_following() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the watch stream opens"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let found = discovery.discover("crm.contacts").await.unwrap().unwrap();
    assert_eq!(found["pluginId"], "plugin-crm");
    assert_eq!(discovery.discover("crm.nothing").await.unwrap(), None);
    admin(
        &hub,
        "/api/v1/tenants/acme/installations/plugin-crm/deactivate",
        json!(null),
    )
    .await;
    let started = tokio::time::Instant::now();
    while discovery.discover("crm.contacts").await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the watch stream invalidates"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    discovery.stop();
}

/// Every code the hub documents in its OpenAPI document is a variant of the SDK's enum: a code
/// added to the hub without the SDK fails here.
#[tokio::test]
async fn the_sdk_knows_every_error_code_of_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let hub = hub(&dir).await;
    let document: Value = reqwest::get(format!("{hub}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let codes = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(codes.len() > 40, "the hub documents its codes: {codes:?}");
    for code in codes {
        let code = code.as_str().unwrap();
        let parsed = ErrorCode::parse(code);
        assert_ne!(
            parsed,
            ErrorCode::Unknown,
            "{code} is missing from ErrorCode"
        );
        assert_eq!(parsed.to_string(), code);
    }
}

/// The verifier accepts a request the hub signed once, with either scheme, and refuses it
/// tampered, too old, or presented a second time (a replay).
#[tokio::test]
async fn the_verifier_refuses_tampered_stale_and_replayed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let key = HubKey::generate();
    let hub = hub_signing_with(&dir, key.clone()).await;
    let (crm_url, verifier) = crm_plugin(&hub).await;
    admin(&hub, "/api/v1/tenants", json!({"slug": "acme"})).await;
    let manifest: Value = serde_json::from_str(CRM).unwrap();
    admin(&hub, "/api/v1/plugins", manifest).await;
    let crm = admin(
        &hub,
        "/api/v1/tenants/acme/installations",
        json!({"pluginId": "plugin-crm", "baseUrl": crm_url, "activate": true}),
    )
    .await;
    let issued = &crm["credential"]["signingSecret"];
    let secret = SigningSecret::from_text(
        issued["keyId"].as_str().unwrap(),
        issued["secret"].as_str().unwrap(),
    )
    .unwrap();
    let client = Client::builder()
        .url(&hub)
        .token(crm["credential"]["token"].as_str().unwrap())
        .build()
        .unwrap();
    verifier.add_installation(client).await.unwrap();

    let hmac = HmacSigner::new(&[secret]).unwrap();
    type Sign = Box<dyn Fn(&SignedRequest<'_>, i64) -> String>;
    let schemes: [(&str, Sign); 2] = [
        ("hmac", Box::new(move |request, at| hmac.sign(request, at))),
        (
            "ed25519",
            Box::new(move |request, at| key.sign(request, at)),
        ),
    ];
    let http = reqwest::Client::new();
    for (scheme, sign) in schemes {
        let request_id = format!("req-{scheme}");
        let request = SignedRequest {
            method: "GET",
            path: "/contacts",
            query: "",
            tenant_id: "5f0c2a54-7d0e-4b7e-9f65-0c1f0c9d7e11",
            caller: "plugin-analytics",
            request_id: &request_id,
            user_id: "",
            workspace_id: "",
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let send = |path: String, signature: String| {
            http.get(format!("{crm_url}{path}"))
                .header("x-plexhub-signature", signature)
                .header("x-tenant-id", request.tenant_id)
                .header("x-tenant-slug", "acme")
                .header("x-caller-plugin-id", request.caller)
                .header("x-request-id", request.request_id)
                .send()
        };
        let refusal = |response: reqwest::Response| async move {
            assert_eq!(response.status(), 401, "{scheme}");
            let body: Value = response.json().await.unwrap();
            body["error"]["code"].as_str().unwrap().to_owned()
        };
        let fresh = sign(&request, now);
        let accepted = send("/contacts".into(), fresh.clone()).await.unwrap();
        assert_eq!(accepted.status(), 200, "{scheme}: a fresh signature");
        let replayed = send("/contacts".into(), fresh).await.unwrap();
        assert_eq!(refusal(replayed).await, "REPLAYED_REQUEST", "{scheme}");
        let tampered = send("/contacts?all=1".into(), sign(&request, now + 1))
            .await
            .unwrap();
        assert_eq!(refusal(tampered).await, "BAD_SIGNATURE", "{scheme}");
        let stale = send("/contacts".into(), sign(&request, now - 10 * 60 * 1000))
            .await
            .unwrap();
        assert_eq!(refusal(stale).await, "BAD_SIGNATURE", "{scheme}");
    }
}
