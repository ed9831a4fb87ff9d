//! Event bus benchmark: publish → delivery on loopback, through a real hub (in this process)
//! and a real subscriber server, on SQLite or PostgreSQL.
//!
//! `cargo run --release -p plexhub --example events_bench -- sqlite|postgres`
//! (PostgreSQL: `PLEXHUB_BENCH_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`;
//! a fresh database is created and dropped).
//!
//! 1. Throughput: 20 000 events published as fast as 4 publishers can (batches of 100), timed
//!    until the subscriber has acknowledged the last one.
//! 2. Latency: 1 000 events/s for 10 s (a batch of 10 every 10 ms); for each event, the time
//!    from just before its publish request to its arrival at the subscriber.

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

async fn hub(database_url: &str) -> String {
    let settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Secret::new(database_url),
        redis_url: None,
        admin_token: Secret::new(ADMIN),
        max_body_bytes: 4 * 1024 * 1024,
        max_value_bytes: 256 * 1024,
        health: HealthPolicy::default(),
        sweep_interval: Duration::from_secs(5),
        clock: Clock::system(),
        gateway: GatewaySettings::default(),
        signing_keys: vec![HubKey::generate()],
        events: EventSettings::default(),
    };
    let app = Application::build(settings).await.unwrap();
    let url = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
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

fn batch(size: usize) -> Value {
    let t = micros_now();
    Value::Array(
        (0..size)
            .map(|_| json!({"type": "plugin.bench.tick", "data": {"t": t}}))
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

fn percentile(sorted: &[i64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

async fn run(backend: &str, database_url: &str) {
    let arrivals = Arrivals::default();
    let subscriber = subscriber(arrivals.clone()).await;
    let hub = hub(database_url).await;
    let token = set_up(&hub, &subscriber).await;
    let http = reqwest::Client::new();

    // 1. Throughput.
    let started = Instant::now();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|_| {
            let (http, hub, token) = (http.clone(), hub.clone(), token.clone());
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
    let publish_rate = THROUGHPUT_EVENTS as f64 / published_in.as_secs_f64();
    let delivery_rate = THROUGHPUT_EVENTS as f64 / delivered_in.as_secs_f64();
    arrivals.0.lock().unwrap().clear();

    // 2. Latency at 1 000 events/s.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for _ in 0..1_000 {
        tick.tick().await;
        let (http, hub, token) = (http.clone(), hub.clone(), token.clone());
        tokio::spawn(async move { publish(&http, &hub, &token, 10).await });
    }
    wait_for(&arrivals, 10_000).await;
    let mut latencies = arrivals.0.lock().unwrap().clone();
    latencies.sort_unstable();
    println!(
        "| {backend} | {publish_rate:.0} | {delivery_rate:.0} | {:.1} ms | {:.1} ms | {:.1} ms |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
}

#[tokio::main]
async fn main() {
    let backend = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite".to_owned());
    println!(
        "| backend | published/s ({THROUGHPUT_EVENTS}, batches of {BATCH}) | delivered/s end to end | p50 at 1000/s | p99 at 1000/s | max at 1000/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    match backend.as_str() {
        "postgres" => {
            let admin_url = std::env::var("PLEXHUB_BENCH_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
            let name = format!("plexhub_bench_{}", uuid::Uuid::new_v4().simple());
            let mut connection = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut connection)
                .await
                .unwrap();
            let (base, _) = admin_url.rsplit_once('/').unwrap();
            run("postgres", &format!("{base}/{name}")).await;
            sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .execute(&mut connection)
                .await
                .unwrap();
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}", dir.path().join("bench.db").display());
            run("sqlite", &url).await;
        }
    }
}
