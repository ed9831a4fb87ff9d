//! Event bus benchmark: publish → delivery on loopback, through a real hub (in this process)
//! and a real subscriber server, on SQLite, PostgreSQL, or PostgreSQL with the bus on NATS
//! JetStream.
//!
//! `cargo run --release -p plexhub --example events_bench -- sqlite|postgres|jetstream`
//! (PostgreSQL: `PLEXHUB_BENCH_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`;
//! a fresh database is created and dropped. JetStream: `PLEXHUB_BENCH_NATS_URL`, default
//! `nats://127.0.0.1:4222`; each scenario's tenant has streams of its own).
//!
//! Each scenario runs on a fresh hub and database:
//! 1. Latency: 1 000 events/s for 10 s (a batch of 10 every 10 ms); for each event, the time
//!    from just before its publish request to its arrival at the subscriber.
//! 2. Throughput: 20 000 events published as fast as 4 publishers can (batches of 100), timed
//!    until the subscriber has acknowledged the last one.
//!
//! Hub, subscriber and publishers share this process (and this machine's cores).
//! `BENCH_THROUGHPUT_ONLY=1` runs the second scenario alone; `BENCH_KEYS=N` gives events one
//! of N partition keys (default: none); `BENCH_HUBS=2` runs two hubs on the same database (and
//! NATS), with Redis at `PLEXHUB_BENCH_REDIS_URL` (default `redis://127.0.0.1:6379`), the
//! publishers taking turns between them; `BENCH_PARTITIONS=N` sets JetStream's partitions per
//! subscription (default: the hub's).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use plexhub_core::registry::HealthPolicy;
use plexhub_core::signing::HubKey;
use plexhub_server::{Application, Clock, EventSettings, GatewaySettings, Secret, Settings};
use serde_json::{Value, json};
use sqlx::Connection as _;

const ADMIN: &str = "bench-admin-token-0123456789";
const THROUGHPUT_EVENTS: usize = 20_000;
const PUBLISHERS: usize = 4;
const BATCH: usize = 100;

fn micros_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_micros(),
    )
    .unwrap()
}

/// Arrival latencies (µs) of acknowledged events, by run.
#[derive(Clone, Default)]
struct Arrivals(Arc<Mutex<Vec<i64>>>);

async fn receive(State(arrivals): State<Arrivals>, Json(event): Json<Value>) -> &'static str {
    if let Some(sent) = event["data"]["t"].as_i64() {
        arrivals.0.lock().unwrap().push(micros_now() - sent);
    }
    "ok"
}

async fn subscriber(arrivals: Arrivals) -> String {
    let app = Router::new()
        .route("/events", post(receive))
        .with_state(arrivals);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// What the hubs of one scenario run on.
#[derive(Clone)]
struct Backing {
    database_url: String,
    /// JetStream's URL for the `jetstream` backend.
    events_url: Option<String>,
}

fn hub_count() -> usize {
    std::env::var("BENCH_HUBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

async fn hub(backing: &Backing, redis_url: Option<String>) -> String {
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Secret::new(backing.database_url.clone()),
        redis_url: redis_url.map(Secret::new),
        events_url: backing.events_url.clone().map(Secret::new),
        admin_token: Secret::new(ADMIN),
        max_body_bytes: 4 * 1024 * 1024,
        max_value_bytes: 256 * 1024,
        health: HealthPolicy::default(),
        sweep_interval: Duration::from_secs(5),
        clock: Clock::system(),
        gateway: GatewaySettings::default(),
        signing_keys: vec![HubKey::generate()],
        events: EventSettings {
            partitions: std::env::var("BENCH_PARTITIONS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(EventSettings::default().partitions),
            ..EventSettings::default()
        },
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

async fn admin(http: &reqwest::Client, url: String, body: Value) -> Value {
    let response = http
        .post(url)
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// A tenant with a publisher and a subscriber (to `plugin.bench.#` at `subscriber`); returns
/// the publisher's token.
async fn set_up(hub: &str, subscriber: &str) -> String {
    let http = reqwest::Client::new();
    admin(
        &http,
        format!("{hub}/api/v1/tenants"),
        json!({"slug": "bench"}),
    )
    .await;
    let publisher = json!({"id": "plugin-bench", "name": "Bench", "version": "1.0.0",
                           "description": "publishes"});
    let consumer = json!({"id": "plugin-sink", "name": "Sink", "version": "1.0.0",
        "description": "subscribes",
        "api": {"dependencies": [{"pluginId": "plugin-bench", "version": "^1.0.0", "required": true}]},
        "events": {"subscribes": [{"pattern": "plugin.bench.#", "endpoint": "/events"}]}});
    for manifest in [publisher, consumer] {
        admin(&http, format!("{hub}/api/v1/plugins"), manifest).await;
    }
    let installs = format!("{hub}/api/v1/tenants/bench/installations");
    let bench = admin(
        &http,
        installs.clone(),
        json!({"pluginId": "plugin-bench", "baseUrl": "http://127.0.0.1:9", "activate": true}),
    )
    .await;
    admin(
        &http,
        installs,
        json!({"pluginId": "plugin-sink", "baseUrl": subscriber, "activate": true}),
    )
    .await;
    bench["credential"]["token"].as_str().unwrap().to_owned()
}

/// `BENCH_KEYS=N`: events carry one of N partition keys (each key delivered in order);
/// default none (events are not ordered).
fn partition_keys() -> Option<usize> {
    std::env::var("BENCH_KEYS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
}

fn batch(size: usize) -> Value {
    let t = micros_now();
    let keys = partition_keys();
    Value::Array(
        (0..size)
            .map(|i| match keys {
                Some(keys) => json!({"type": "plugin.bench.tick", "partitionkey": format!("k{}", (t as usize + i) % keys), "data": {"t": t}}),
                None => json!({"type": "plugin.bench.tick", "data": {"t": t}}),
            })
            .collect(),
    )
}

async fn publish(http: &reqwest::Client, hub: &str, token: &str, size: usize) {
    let response = http
        .post(format!("{hub}/api/v1/events"))
        .bearer_auth(token)
        .json(&batch(size))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

async fn wait_for(arrivals: &Arrivals, count: usize) {
    while arrivals.0.lock().unwrap().len() < count {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Deletes the scenario's tenant, and with it what it left outside the database (JetStream's
/// streams on a NATS server that outlives the bench).
async fn forget(http: &reqwest::Client, hub: &str) {
    let response = http
        .delete(format!("{hub}/api/v1/tenants/bench"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

/// Hubs (`BENCH_HUBS`) on a fresh database with a subscriber: their URLs, the publisher's
/// token, the arrivals.
async fn fresh(backing: &Backing) -> (Vec<String>, String, Arrivals) {
    let arrivals = Arrivals::default();
    let subscriber = subscriber(arrivals.clone()).await;
    let redis_url = (hub_count() > 1).then(|| {
        std::env::var("PLEXHUB_BENCH_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    });
    let mut hubs = Vec::new();
    for _ in 0..hub_count() {
        hubs.push(hub(backing, redis_url.clone()).await);
    }
    let token = set_up(&hubs[0], &subscriber).await;
    (hubs, token, arrivals)
}

/// Publishes as fast as the publishers can; returns (published/s, delivered/s).
async fn throughput(backing: &Backing) -> (f64, f64) {
    let (hubs, token, arrivals) = fresh(backing).await;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|n| {
            let hub = hubs[n % hubs.len()].clone();
            let (http, token) = (http.clone(), token.clone());
            tokio::spawn(async move {
                for _ in 0..THROUGHPUT_EVENTS / PUBLISHERS / BATCH {
                    publish(&http, &hub, &token, BATCH).await;
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let published_in = started.elapsed();
    wait_for(&arrivals, THROUGHPUT_EVENTS).await;
    let delivered_in = started.elapsed();
    forget(&http, &hubs[0]).await;
    (
        THROUGHPUT_EVENTS as f64 / published_in.as_secs_f64(),
        THROUGHPUT_EVENTS as f64 / delivered_in.as_secs_f64(),
    )
}

/// 1 000 events/s (or `BENCH_EVENTS_PER_10MS` × 100) for 10 s; returns the sorted
/// publish-to-arrival latencies (µs).
async fn latency(backing: &Backing) -> Vec<i64> {
    let per_tick: usize = std::env::var("BENCH_EVENTS_PER_10MS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10);
    let (hubs, token, arrivals) = fresh(backing).await;
    let http = reqwest::Client::new();
    let durations = Arrivals::default();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for n in 0..1_000 {
        tick.tick().await;
        let hub = hubs[n % hubs.len()].clone();
        let (http, token) = (http.clone(), token.clone());
        let durations = durations.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            publish(&http, &hub, &token, per_tick).await;
            let took = i64::try_from(started.elapsed().as_micros()).unwrap();
            durations.0.lock().unwrap().push(took);
        });
    }
    wait_for(&arrivals, 1_000 * per_tick).await;
    forget(&http, &hubs[0]).await;
    let mut publishes = durations.0.lock().unwrap().clone();
    publishes.sort_unstable();
    eprintln!(
        "publish requests at 1000/s: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&publishes, 0.5),
        percentile(&publishes, 0.99)
    );
    let mut latencies = arrivals.0.lock().unwrap().clone();
    latencies.sort_unstable();
    latencies
}

/// Runs both scenarios, each on a fresh database from `database`.
/// `BENCH_THROUGHPUT_ONLY=1` skips the latency scenario (to profile the other alone).
async fn run(backend: &str, database: impl AsyncFn() -> String) {
    let events_url = (backend == "jetstream").then(|| {
        std::env::var("PLEXHUB_BENCH_NATS_URL")
            .unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
    });
    let backing = async || Backing {
        database_url: database().await,
        events_url: events_url.clone(),
    };
    let latencies = if std::env::var_os("BENCH_THROUGHPUT_ONLY").is_some() {
        None
    } else {
        Some(latency(&backing().await).await)
    };
    let (publish_rate, delivery_rate) = throughput(&backing().await).await;
    let latency_columns = latencies.map_or_else(
        || "— | — | —".to_owned(),
        |latencies| {
            format!(
                "{:.1} ms | {:.1} ms | {:.1} ms",
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                percentile(&latencies, 1.0)
            )
        },
    );
    let keys = partition_keys().map_or_else(|| "none".to_owned(), |keys| keys.to_string());
    let hubs = hub_count();
    println!(
        "| {backend} | {hubs} | {keys} | {publish_rate:.0} | {delivery_rate:.0} | {latency_columns} |"
    );
}

#[tokio::main]
async fn main() {
    let backend = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite".to_owned());
    println!(
        "| backend | hubs | keys | published/s ({THROUGHPUT_EVENTS}, batches of {BATCH}) | delivered/s end to end | p50 at 1000/s | p99 at 1000/s | max at 1000/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    match backend.as_str() {
        "postgres" | "jetstream" => {
            let admin_url = std::env::var("PLEXHUB_BENCH_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
            let names = Mutex::new(Vec::new());
            let database = async || {
                let name = format!("plexhub_bench_{}", uuid::Uuid::new_v4().simple());
                let mut connection = sqlx::PgConnection::connect(&admin_url).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut connection)
                    .await
                    .unwrap();
                names.lock().unwrap().push(name.clone());
                let (base, _) = admin_url.rsplit_once('/').unwrap();
                format!("{base}/{name}")
            };
            run(&backend, database).await;
            let mut connection = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            let created = names.lock().unwrap().clone();
            for name in created {
                let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                    .execute(&mut connection)
                    .await;
            }
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let count = std::sync::atomic::AtomicUsize::new(0);
            let database = async || {
                let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!(
                    "sqlite://{}",
                    dir.path().join(format!("bench-{n}.db")).display()
                )
            };
            run("sqlite", database).await;
        }
    }
}
