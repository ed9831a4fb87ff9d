//! Test harness: a real hub on a random port, on SQLite (temp dir) or PostgreSQL (a fresh
//! database per test, dropped afterwards).

use std::time::Duration;

use plexhub_core::registry::HealthPolicy;
use plexhub_server::{Application, Clock, Secret, Settings};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection as _;

/// The admin token every test hub uses.
pub const ADMIN: &str = "test-admin-token-0123456789";

/// The example manifests of the repository.
pub const CRM_MANIFEST: &str = include_str!("../../../../examples/manifests/crm.json");
pub const ANALYTICS_MANIFEST: &str = include_str!("../../../../examples/manifests/analytics.json");

/// Storage backend under test.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Reads a test service URL; `None` (with a visible note) on a laptop without it, a panic
/// under CI, where skipping would hide failures.
pub fn service_url(variable: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!(
                "{variable} must be set under CI: the PostgreSQL/Redis suites may not be skipped"
            )
        }
        _ => {
            eprintln!("SKIPPED: {variable} is not set, so this PostgreSQL/Redis test does not run");
            None
        }
    }
}

/// A PostgreSQL database created for one test and dropped when the guard goes.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> Self {
        let name = format!("plexhub_test_{}", uuid::Uuid::new_v4().simple());
        let mut connection = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to PLEXHUB_TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .expect("create test database");
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("database URL ends with /<database>");
        Self {
            admin_url: admin_url.to_owned(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; do the async cleanup on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async {
                if let Ok(mut connection) = sqlx::PgConnection::connect(&admin_url).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    if let Err(error) = sqlx::query(&drop).execute(&mut connection).await {
                        eprintln!("could not drop test database {name}: {error}");
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Where a test hub keeps its data.
enum Storage {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] PgDatabase),
    /// Another hub owns the database.
    Shared,
}

/// A running hub and a client for it.
pub struct TestApp {
    pub base: String,
    /// The hub's clock: advance it to test time-based rules without sleeping.
    pub clock: Clock,
    /// Where the hub stores its data (to start a second hub on it).
    pub database_url: String,
    pub http: reqwest::Client,
    /// JetStream's URL when the hub's event bus runs there.
    events_url: Option<String>,
    _storage: Storage,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// A hub on JetStream leaves streams and consumers on the shared NATS server; they go with the
/// test (before its database: the tenants' ids are read from it).
impl Drop for TestApp {
    fn drop(&mut self) {
        let Some(events_url) = self.events_url.clone() else {
            return;
        };
        let database_url = self.database_url.clone();
        // Drop runs inside the test's runtime; do the async cleanup on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(delete_streams(&database_url, &events_url));
        });
        let _ = cleanup.join();
    }
}

/// Deletes the JetStream streams of every tenant in the database at `database_url`.
async fn delete_streams(database_url: &str, events_url: &str) {
    let query = "SELECT id FROM tenants";
    let tenants: Vec<String> = if database_url.starts_with("sqlite") {
        match sqlx::SqliteConnection::connect(database_url).await {
            Ok(mut connection) => sqlx::query_scalar(query)
                .fetch_all(&mut connection)
                .await
                .unwrap_or_default(),
            Err(_) => return,
        }
    } else {
        match sqlx::PgConnection::connect(database_url).await {
            Ok(mut connection) => sqlx::query_scalar(query)
                .fetch_all(&mut connection)
                .await
                .unwrap_or_default(),
            Err(_) => return,
        }
    };
    let Ok(client) = async_nats::connect(events_url).await else {
        return;
    };
    let js = async_nats::jetstream::new(client);
    for tenant in tenants {
        for kind in ["EV", "RT", "DL"] {
            let _ = js
                .delete_stream(format!("PLEXHUB_{kind}_{}", tenant.replace('-', "")))
                .await;
        }
    }
}

/// Options for [`spawn_with`].
#[derive(Default)]
pub struct Options {
    pub redis_url: Option<String>,
    /// `nats://…`: the event bus on JetStream (default: in the database).
    pub events_url: Option<String>,
    pub max_body_bytes: Option<usize>,
    /// Gateway limits and timeouts (default: the hub's defaults).
    pub gateway: Option<plexhub_server::GatewaySettings>,
    /// Shared by several hubs that must agree on time; a fresh manual clock by default.
    pub clock: Option<Clock>,
    pub max_value_bytes: Option<usize>,
    /// An existing database (a second hub on the same PostgreSQL).
    pub database_url: Option<String>,
    /// Heartbeat interval and staleness (default: the hub's defaults).
    pub health: Option<HealthPolicy>,
    /// Request-signing keys (default: one new key); hubs of one deployment share them.
    pub signing_keys: Option<Vec<plexhub_core::signing::HubKey>>,
    /// Event bus timing (default: retries after 20 ms, doubling up to 200 ms; 2 s to answer).
    pub events: Option<plexhub_server::EventSettings>,
    /// Header deadline and connection cap (default: the hub's defaults).
    pub connections: Option<plexhub_server::ConnectionLimits>,
    /// Trust and client certificate for https plugins (default: the system's roots only).
    pub upstream_tls: Option<plexhub_server::UpstreamTls>,
    /// Published catalog versions wait for review (default: published at once).
    pub catalog_review: bool,
}

/// Starts a hub on `backend`, or returns `None` when PostgreSQL is not configured (laptop).
pub async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, Options::default()).await
}

/// Starts a hub with options.
pub async fn spawn_with(backend: Backend, options: Options) -> Option<TestApp> {
    let (storage, database_url) = match (backend, options.database_url) {
        (_, Some(url)) => (Storage::Shared, url),
        (Backend::Sqlite, None) => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}", dir.path().join("plexhub.db").display());
            (Storage::Sqlite(dir), url)
        }
        (Backend::Postgres, None) => {
            let admin_url = service_url("PLEXHUB_TEST_DATABASE_URL")?;
            let database = PgDatabase::create(&admin_url).await;
            let url = database.url.clone();
            (Storage::Postgres(database), url)
        }
    };
    let clock = options.clock.unwrap_or_else(Clock::manual);
    let settings = Settings {
        listen: "127.0.0.1:0".parse().expect("address"),
        database_url: Secret::new(database_url.clone()),
        redis_url: options.redis_url.map(Secret::new),
        events_url: options.events_url.clone().map(Secret::new),
        admin_token: Secret::new(ADMIN),
        max_body_bytes: options.max_body_bytes.unwrap_or(1024 * 1024),
        max_value_bytes: options.max_value_bytes.unwrap_or(256 * 1024),
        health: options.health.unwrap_or_default(),
        sweep_interval: Duration::from_millis(50),
        clock: clock.clone(),
        gateway: options.gateway.unwrap_or_default(),
        signing_keys: options
            .signing_keys
            .unwrap_or_else(|| vec![plexhub_core::signing::HubKey::generate()]),
        events: options.events.unwrap_or(plexhub_server::EventSettings {
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(200),
            delivery_timeout: Duration::from_secs(2),
            poll_interval: Duration::from_millis(50),
            ..plexhub_server::EventSettings::default()
        }),
        connections: options.connections.unwrap_or_default(),
        upstream_tls: options.upstream_tls.unwrap_or_default(),
        cache_shared_data_when_scaled: false,
        ui_session_ttl: std::time::Duration::from_secs(12 * 3600),
        catalog_review: options.catalog_review,
    };
    let app = Application::build(settings).await.expect("hub starts");
    let address = app.local_addr();
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = stop.await;
    }));
    Some(TestApp {
        base: format!("http://{address}"),
        clock,
        database_url,
        http: reqwest::Client::new(),
        events_url: options.events_url.clone(),
        _storage: storage,
        _shutdown: shutdown,
    })
}

/// A response: status, headers and JSON body (`Null` when empty or not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The stable error code of a `/api/v1` error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no code>")
    }

    /// Asserts status and error code together, showing the body on failure.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status.as_u16(), self.code()),
            (status, code),
            "body: {}",
            self.body
        );
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "an error needs a message: {}",
            self.body
        );
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        &self.body
    }
}

impl TestApp {
    /// Sends a request; `token` is the bearer, `headers` extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request reaches the hub");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.send(method, path, Some(ADMIN), &[], body).await
    }

    pub async fn as_plugin(&self, token: &str, method: Method, path: &str) -> Reply {
        self.send(method, path, Some(token), &[], None).await
    }

    /// Deactivates a plugin's installation in a tenant (as the admin).
    pub async fn deactivate(&self, slug: &str, plugin: &str) -> Reply {
        let path = format!("/api/v1/tenants/{slug}/installations/{plugin}/deactivate");
        self.admin(Method::POST, &path, None).await
    }

    /// Creates a tenant and returns its JSON.
    pub async fn create_tenant(&self, slug: &str) -> Value {
        self.admin(
            Method::POST,
            "/api/v1/tenants",
            Some(&json!({ "slug": slug })),
        )
        .await
        .assert_status(201)
        .clone()
    }

    /// Publishes a manifest (as JSON) and asserts it was created.
    pub async fn publish(&self, manifest: &Value) {
        self.admin(Method::POST, "/api/v1/plugins", Some(manifest))
            .await
            .assert_status(201);
    }

    /// Installs a plugin and returns the installed credential's token.
    pub async fn install(&self, tenant: &str, plugin_id: &str, extra: Value) -> String {
        let mut body = json!({ "pluginId": plugin_id, "baseUrl": "http://127.0.0.1:9" });
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        let reply = self
            .admin(
                Method::POST,
                &format!("/api/v1/tenants/{tenant}/installations"),
                Some(&body),
            )
            .await;
        reply.assert_status(201)["credential"]["token"]
            .as_str()
            .expect("token")
            .to_owned()
    }
}

/// The CRM manifest with another version.
pub fn crm_at(version: &str) -> Value {
    let mut manifest: Value = serde_json::from_str(CRM_MANIFEST).expect("crm manifest");
    manifest["version"] = json!(version);
    manifest
}

/// The Analytics manifest.
pub fn analytics() -> Value {
    serde_json::from_str(ANALYTICS_MANIFEST).expect("analytics manifest")
}

/// Runs each listed `async fn(TestApp)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let app = $crate::helpers::spawn($crate::helpers::Backend::Sqlite)
                        .await
                        .expect("sqlite always runs");
                    super::$test(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    if let Some(app) = $crate::helpers::spawn($crate::helpers::Backend::Postgres).await {
                        super::$test(app).await;
                    }
                }
            )*
        }
    };
}

/// Two hubs on one fresh PostgreSQL database and the Redis server, both ready (their change
/// feed connected); `None` (a visible note) without the services outside CI.
pub async fn two_hubs(clock: Option<Clock>) -> Option<(TestApp, TestApp)> {
    two_hubs_with(clock, None).await
}

/// [`two_hubs`] with their event bus on JetStream at `events_url` when given.
pub async fn two_hubs_with(
    clock: Option<Clock>,
    events_url: Option<String>,
) -> Option<(TestApp, TestApp)> {
    let (Some(_), Some(redis_url)) = (
        service_url("PLEXHUB_TEST_DATABASE_URL"),
        service_url("PLEXHUB_TEST_REDIS_URL"),
    ) else {
        return None;
    };
    // One deployment: the hubs share their signing keys, as scaled mode requires.
    let keys = vec![plexhub_core::signing::HubKey::generate()];
    let options = |database_url: Option<String>| Options {
        redis_url: Some(redis_url.clone()),
        events_url: events_url.clone(),
        clock: clock.clone(),
        database_url,
        signing_keys: Some(keys.clone()),
        ..Options::default()
    };
    let a = spawn_with(Backend::Postgres, options(None)).await?;
    let b = spawn_with(Backend::Postgres, options(Some(a.database_url.clone()))).await?;
    for hub in [&a, &b] {
        let started = tokio::time::Instant::now();
        while hub
            .send(Method::GET, "/readyz", None, &[], None)
            .await
            .status
            != 200
        {
            assert!(started.elapsed() < Duration::from_secs(5), "feed connects");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Some((a, b))
}

/// Every operation `/openapi.json` documents, as (method, path).
pub async fn documented_operations(app: &TestApp) -> std::collections::BTreeSet<(String, String)> {
    let doc = app
        .send(reqwest::Method::GET, "/openapi.json", None, &[], None)
        .await;
    let doc = doc.assert_status(200);
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if method != "parameters" {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    documented
}

/// Polls `check` until it holds, for at most `within`; returns how long it took.
pub async fn within<F, Fut>(within: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "not seen within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Runs `cargo build --quiet <args>` in `dir` into a target dir of its own kept under this
/// workspace's (`target/scaffold`: builds outside this test's own, reused by later runs), and
/// returns its `debug/` directory; `what` names the build when it fails.
pub async fn cargo_build(dir: &std::path::Path, args: &[&str], what: &str) -> std::path::PathBuf {
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/scaffold");
    let built = tokio::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet"])
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .await
        .expect("cargo runs");
    assert!(built.success(), "{what} does not build");
    target.join("debug")
}
