//! End to end: the demo's flow with real sockets (hub, CRM and Analytics servers, every call
//! through the gateway), on SQLite and on PostgreSQL + Redis; and CRM stopped mid-way, then
//! restarted, with nothing done to the hub.

use std::time::Duration;

use plexhub::demo::{Demo, DemoOptions, Summary};
use plexhub_core::registry::HealthPolicy;
use plexhub_server::Clock;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, Options, TestApp, service_url, spawn_with};

/// A hub on the system clock (signatures carry its time) with fast health rules: DEGRADED
/// after 600 ms without heartbeats, UNAVAILABLE after 1.5 s. On PostgreSQL it also uses Redis.
async fn hub(backend: Backend) -> Option<TestApp> {
    let redis_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(service_url("PLEXHUB_TEST_REDIS_URL")?),
    };
    let options = Options {
        redis_url,
        clock: Some(Clock::system()),
        health: Some(HealthPolicy {
            heartbeat_interval_ms: 200,
            stale_after_ms: 1_500,
        }),
        ..Options::default()
    };
    spawn_with(backend, options).await
}

async fn demo(app: &TestApp) -> Demo {
    let options = DemoOptions {
        heartbeat_every: Some(Duration::from_millis(100)),
    };
    Demo::set_up(&app.base, crate::helpers::ADMIN, options)
        .await
        .expect("the demo sets up")
}

/// The effective status of a tenant's service, as the registry reports it.
async fn status(app: &TestApp, tenant: &str, service: &str) -> String {
    let reply = app
        .send(
            Method::GET,
            &format!("/api/v1/services/{service}"),
            Some(crate::helpers::ADMIN),
            &[("x-tenant-slug", tenant)],
            None,
        )
        .await;
    let instances = reply.body["instances"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    instances
        .first()
        .and_then(|instance| instance["status"].as_str())
        .unwrap_or("GONE")
        .to_owned()
}

/// Polls until `status` of CRM's deals service in acme is `wanted` (10 s at most).
async fn wait_for_status(app: &TestApp, wanted: &str) {
    let mut last = String::new();
    for _ in 0..200 {
        last = status(app, "acme", "crm.deals").await;
        if last == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("crm.deals stayed {last}, never {wanted}");
}

fn assert_seed_numbers(summary: &Summary) {
    for tenant in ["acme", "globex"] {
        let reports = summary.tenant(tenant).expect("tenant reported");
        assert_eq!(reports.pipeline["totalValue"], 427_000.0, "{tenant}");
        assert_eq!(reports.pipeline["totalDeals"], 4, "{tenant}");
        assert_eq!(reports.forecast["weightedRevenue"], 223_500.0, "{tenant}");
        assert_eq!(reports.forecast["confidenceLevel"], "medium", "{tenant}");
    }
}

async fn the_demo_flow_runs_through_the_gateway(app: TestApp) {
    let demo = demo(&app).await;
    let summary = demo.summary().await.expect("reports run");
    assert_seed_numbers(&summary);
    let contacts =
        |tenant| summary.tenant(tenant).expect("tenant").contacts["totalContacts"].clone();
    assert_eq!(contacts("acme"), 6, "seed plus the two imported contacts");
    assert_eq!(contacts("globex"), 4, "the seed only");
    assert!(summary.isolated(), "{summary}");
    let printed = summary.to_string();
    assert!(
        printed.contains("427,000") && printed.contains("Isolation: OK"),
        "{printed}"
    );

    // Each tenant's Analytics cached its own result in its own shared data.
    for (tenant, expected) in [("acme", 6), ("globex", 4)] {
        let cached = app
            .send(
                Method::GET,
                "/api/v1/data/analytics.reports/report-1",
                Some(crate::helpers::ADMIN),
                &[("x-tenant-slug", tenant)],
                None,
            )
            .await;
        let body = cached.assert_status(200);
        assert_eq!(
            body["value"]["data"]["totalContacts"], expected,
            "{tenant}: {body}"
        );
        assert_eq!(body["ownerId"], "plugin-analytics");
        assert!(body["expiresAt"].is_string(), "cached with a TTL: {body}");
    }

    // A new contact in acme: CRM publishes plugin.crm.contact.created, Analytics (subscribed)
    // drops acme's cached contacts summary; globex's stays.
    let contact = json!({"firstName": "Alan", "lastName": "Turing", "email": "alan@example.com"});
    demo.create_contact("acme", &contact)
        .await
        .expect("created");
    let cached = |tenant: &'static str| {
        let app = &app;
        async move {
            app.send(
                Method::GET,
                "/api/v1/data/analytics.reports/report-1",
                Some(crate::helpers::ADMIN),
                &[("x-tenant-slug", tenant)],
                None,
            )
            .await
            .status
        }
    };
    let mut acme_cache = cached("acme").await;
    for _ in 0..200 {
        if acme_cache == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        acme_cache = cached("acme").await;
    }
    assert_eq!(
        acme_cache, 404,
        "the event invalidated acme's cached report"
    );
    assert_eq!(cached("globex").await, 200, "globex saw no acme event");

    // An unknown report is the plugin's 404, not a hub error.
    match demo.run_report("globex", "report-9").await {
        Err(plexhub_sdk::Error::Plugin { status: 404, body }) => {
            assert!(body.contains("Report not found"), "{body}");
        }
        other => panic!("a 404 from Analytics expected: {other:?}"),
    }
    // The plugins answer only what the hub signed.
    let direct = reqwest::get(format!("{}/deals", demo.crm_url()))
        .await
        .expect("CRM up");
    assert_eq!(direct.status(), 401);
    let direct = reqwest::Client::new()
        .post(format!("{}/reports/report-1/run", demo.analytics_url()))
        .send()
        .await
        .expect("Analytics up");
    assert_eq!(direct.status(), 401);
    assert_eq!(status(&app, "globex", "crm.contacts").await, "HEALTHY");
    demo.stop().await;
}

/// The body of Analytics' answer while CRM is out of reach.
fn unavailable(outcome: Result<Value, plexhub_sdk::Error>) -> Value {
    match outcome {
        Err(plexhub_sdk::Error::Plugin { status: 503, body }) => {
            let body: Value = serde_json::from_str(&body).expect("a JSON error");
            assert_eq!(body["code"], "CRM_UNAVAILABLE", "{body}");
            assert!(
                body["error"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("CRM plugin is not available")),
                "{body}"
            );
            body
        }
        other => panic!("503 from Analytics expected, got {other:?}"),
    }
}

async fn crm_stopped_mid_way_recovers_without_touching_the_hub(app: TestApp) {
    let mut demo = demo(&app).await;
    assert_seed_numbers(&demo.summary().await.expect("reports run"));

    demo.stop_crm().await;
    // Refused connection: Analytics says CRM is unavailable and shows its last cached result.
    let body = unavailable(demo.run_report("acme", "report-2").await);
    assert_eq!(body["lastRun"]["data"]["totalValue"], 427_000.0, "{body}");
    // Without heartbeats the registry marks CRM DEGRADED, then UNAVAILABLE.
    wait_for_status(&app, "DEGRADED").await;
    wait_for_status(&app, "UNAVAILABLE").await;
    unavailable(demo.run_report("acme", "report-3").await);
    unavailable(demo.run_report("globex", "report-1").await);

    // CRM comes back on its address; its heartbeats alone make it HEALTHY again.
    demo.start_crm().await.expect("CRM restarts");
    wait_for_status(&app, "HEALTHY").await;
    let mut recovered = None;
    for _ in 0..100 {
        if let Ok(summary) = demo.summary().await {
            recovered = Some(summary);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = recovered.expect("reports run again once CRM is back");
    assert_seed_numbers(&summary);
    // CRM keeps its data in the hub's shared data: the restart lost none of acme's imports.
    assert_eq!(
        summary.tenant("acme").expect("acme").contacts["totalContacts"],
        6
    );
    assert!(summary.isolated(), "{summary}");
    demo.stop().await;
}

mod sqlite {
    #[tokio::test]
    async fn the_demo_flow_runs_through_the_gateway() {
        let app = super::hub(super::Backend::Sqlite)
            .await
            .expect("sqlite always runs");
        super::the_demo_flow_runs_through_the_gateway(app).await;
    }

    #[tokio::test]
    async fn crm_stopped_mid_way_recovers_without_touching_the_hub() {
        let app = super::hub(super::Backend::Sqlite)
            .await
            .expect("sqlite always runs");
        super::crm_stopped_mid_way_recovers_without_touching_the_hub(app).await;
    }
}

mod postgres_and_redis {
    #[tokio::test]
    async fn the_demo_flow_runs_through_the_gateway() {
        if let Some(app) = super::hub(super::Backend::Postgres).await {
            super::the_demo_flow_runs_through_the_gateway(app).await;
        }
    }

    #[tokio::test]
    async fn crm_stopped_mid_way_recovers_without_touching_the_hub() {
        if let Some(app) = super::hub(super::Backend::Postgres).await {
            super::crm_stopped_mid_way_recovers_without_touching_the_hub(app).await;
        }
    }
}
