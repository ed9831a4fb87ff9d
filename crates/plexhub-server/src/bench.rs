//! What one gateway call costs the hub itself, without any I/O: for `cargo bench -p
//! plexhub-server --features bench --bench per_request` (the feature exists only for it).
//!
//! [`PerRequest::new`] starts nothing: it builds the hub's state on a temporary SQLite file,
//! installs CRM and Analytics in a tenant through the router (as an operator would), and drains
//! the audit queue. [`PerRequest::run`] then does what the proxy route does before the plugin is
//! reached and after it answered: authenticate the credential, scope the tenant, decide access
//! (with quota and signing lookups), build and sign the outgoing headers, and queue the audit
//! record, all through the same functions the route calls.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request};
use tower::ServiceExt as _;

use crate::auth::{self, TenantScope};
use crate::gateway::{self, Attempt, CallContext};
use crate::routes::v1::proxy;
use crate::settings::Settings;
use crate::state::AppState;
use crate::{Application, Secret};

const ADMIN: &str = "bench-admin-token-0123456789";
const CRM: &str = include_str!("../../../examples/manifests/crm.json");
const ANALYTICS: &str = include_str!("../../../examples/manifests/analytics.json");

/// A hub ready to serve Analytics' call `GET /api/v1/proxy/crm.contacts/contacts?limit=5`.
pub struct PerRequest {
    state: AppState,
    request: Request<()>,
}

impl PerRequest {
    /// Builds the hub in `data_dir` (a fresh directory) and installs the two plugins.
    pub async fn new(data_dir: &std::path::Path) -> Self {
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("an address"),
            database_url: Secret::new(format!("sqlite://{}", data_dir.join("hub.db").display())),
            redis_url: None,
            events_url: None,
            admin_token: Secret::new(ADMIN),
            max_body_bytes: 1024 * 1024,
            max_value_bytes: 256 * 1024,
            health: plexhub_core::registry::HealthPolicy {
                heartbeat_interval_ms: 15_000,
                stale_after_ms: 1_000_000_000,
            },
            sweep_interval: std::time::Duration::from_secs(3600),
            clock: crate::Clock::system(),
            gateway: crate::GatewaySettings::default(),
            signing_keys: vec![plexhub_core::signing::HubKey::generate()],
            events: crate::EventSettings::default(),
            connections: crate::ConnectionLimits::default(),
            upstream_tls: crate::UpstreamTls::default(),
            cache_shared_data_when_scaled: false,
            ui_session_ttl: std::time::Duration::from_secs(12 * 3600),
            catalog_review: false,
        };
        let app = Application::build(settings).await.expect("the hub builds");
        let Application {
            router,
            state,
            mut audited_calls,
            ..
        } = app;
        tokio::spawn(async move { while audited_calls.recv().await.is_some() {} });
        let admin = |method: Method, path: &str, body: &str| {
            Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {ADMIN}"))
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .expect("a request")
        };
        let mut token = String::new();
        for (path, body) in [
            ("/api/v1/tenants", r#"{"slug":"bench"}"#.to_owned()),
            ("/api/v1/plugins", CRM.to_owned()),
            ("/api/v1/plugins", ANALYTICS.to_owned()),
            (
                "/api/v1/tenants/bench/installations",
                r#"{"pluginId":"plugin-crm","baseUrl":"http://127.0.0.1:9","activate":true}"#
                    .to_owned(),
            ),
            (
                "/api/v1/tenants/bench/installations",
                r#"{"pluginId":"plugin-analytics","baseUrl":"http://127.0.0.1:9","activate":true,"grants":["plugin.crm.contacts.read"]}"#
                    .to_owned(),
            ),
        ] {
            let answer = router
                .clone()
                .oneshot(admin(Method::POST, path, &body))
                .await
                .expect("the router answers");
            assert!(answer.status().is_success(), "{path}: {}", answer.status());
            let bytes = axum::body::to_bytes(answer.into_body(), usize::MAX)
                .await
                .expect("a body");
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            if let Some(issued) = json["credential"]["token"].as_str() {
                token = issued.to_owned();
            }
        }
        let request = Request::builder()
            .method(Method::GET)
            .uri("/api/v1/proxy/crm.contacts/contacts?limit=5")
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "application/json")
            .header("user-agent", "bench")
            .header("x-request-id", "3f1c2a54-7d0e-4b7e-9f65-0c1f0c9d7e11")
            .body(())
            .expect("a request");
        Self { state, request }
    }

    /// One call's own work; returns the headers the plugin would receive.
    pub async fn run(&self) -> HeaderMap {
        let started = std::time::Instant::now();
        let (parts, ()) = self.request.clone().into_parts();
        let caller = auth::identify(&self.state, &parts.headers)
            .await
            .expect("the credential is valid");
        let scope = TenantScope::of(&self.state, caller, &parts.headers)
            .await
            .expect("a tenant");
        let admitted = proxy::admit(&scope, &self.state, &parts, started)
            .await
            .expect("the call is allowed");
        let call = CallContext {
            tenant: &scope.tenant,
            caller: &admitted.caller,
        };
        let signed = gateway::CallHeaders::of(&parts.headers).expect("valid user context");
        let mut outgoing = gateway::outgoing_headers(
            &self.state,
            &call,
            &admitted.route,
            (&parts.method, &admitted.path_and_query),
            &parts.headers,
            &signed,
        );
        outgoing.insert("x-bench", HeaderValue::from_static("1"));
        let attempt = Attempt {
            kind: "proxy",
            service: admitted.service.as_str(),
            method: &parts.method,
            path: "/contacts",
            request_id: admitted.request_id,
            started,
        };
        gateway::audit(&self.state, &call, &attempt, Some(&admitted.route), 200).await;
        outgoing
    }
}
