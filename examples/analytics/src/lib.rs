//! The Analytics sample plugin: three reports built from CRM's contacts and deals, fetched
//! **through the hub** with the SDK (the original called CRM directly), each result cached in
//! the tenant's shared data.
//!
//! CRM publishes every change; Analytics subscribes (`POST /events`) and drops the cached
//! results the change makes stale.
//!
//! A report runs for the tenant of the verified request, with that tenant's installation
//! credential, so it can only ever see that tenant's CRM data. When CRM cannot be reached it
//! answers 503 with the reason and the last cached result, if any.

mod reports;

use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use plexhub_sdk::{
    Client, Error, Event, EventRouter, HubRequest, Installations, RunningPlugin, ServeOptions,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub use reports::{
    Contact, Deal, REPORTS, Report, contacts_summary, deals_pipeline, sales_forecast,
};

/// The plugin's manifest (`examples/manifests/analytics.json`).
pub const MANIFEST: &str = include_str!("../../manifests/analytics.json");

/// Shared-data namespace of the cached report results (key: the report id).
pub const CACHE_NAMESPACE: &str = "analytics.reports";

/// How long a cached report result lives, in seconds.
pub const CACHE_TTL_SECONDS: u64 = 300;

/// The manifest, parsed.
pub fn manifest() -> Value {
    serde_json::from_str(MANIFEST).unwrap_or_default()
}

/// A failed report: the status and `{success:false, error, code, lastRun?}`.
#[derive(Debug)]
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
    last_run: Option<Value>,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            last_run: None,
        }
    }

    /// Why a call to CRM through the hub failed, as this plugin's answer: CRM out of reach is
    /// 503 (try again later); a refusal by the hub or an error from CRM is 502.
    fn from_crm(error: Error) -> Self {
        match error {
            Error::Hub(error) if error.code.is_target_unavailable() => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "CRM_UNAVAILABLE",
                format!(
                    "CRM plugin is not available: the hub answered {} ({})",
                    error.code, error.message
                ),
            ),
            Error::Transport(error) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "HUB_UNREACHABLE",
                format!("the hub cannot be reached: {error}"),
            ),
            Error::Hub(error) => Self::new(
                StatusCode::BAD_GATEWAY,
                "CRM_REFUSED",
                format!(
                    "the hub refused the call to CRM: {} ({})",
                    error.code, error.message
                ),
            ),
            other => Self::new(
                StatusCode::BAD_GATEWAY,
                "CRM_FAILED",
                format!("CRM failed: {other}"),
            ),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut body = json!({"success": false, "error": self.message, "code": self.code});
        if let Some(last_run) = self.last_run {
            body["lastRun"] = last_run;
        }
        (self.status, Json(body)).into_response()
    }
}

fn not_found() -> Failure {
    Failure::new(
        StatusCode::NOT_FOUND,
        "REPORT_NOT_FOUND",
        "Report not found",
    )
}

fn tenant_client<'a>(
    installations: &'a Installations,
    hub: &HubRequest,
) -> Result<&'a Client, Failure> {
    installations.tenant(&hub.tenant_slug).ok_or_else(|| {
        Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_CONFIGURED",
            format!(
                "this replica has no credential for tenant {}",
                hub.tenant_slug
            ),
        )
    })
}

/// The report `id` and the client of the request's tenant.
fn report_for<'a>(
    installations: &'a Installations,
    hub: &HubRequest,
    id: &str,
) -> Result<(&'static Report, &'a Client), Failure> {
    let report = reports::find(id).ok_or_else(not_found)?;
    Ok((report, tenant_client(installations, hub)?))
}

/// CRM's list envelope.
#[derive(Deserialize)]
struct CrmList<T> {
    data: Vec<T>,
}

async fn fetch<T: DeserializeOwned>(
    client: &Client,
    service: &str,
    path: &str,
) -> Result<Vec<T>, Failure> {
    client
        .get_json::<CrmList<T>>(service, path)
        .await
        .map(|list| list.data)
        .map_err(Failure::from_crm)
}

async fn cached(client: &Client, report: &Report) -> Option<Value> {
    match client.data_get(CACHE_NAMESPACE, report.id).await {
        Ok(entry) => entry.map(|entry| entry.value),
        Err(_) => None,
    }
}

async fn list_reports(_hub: HubRequest) -> Json<Value> {
    Json(json!({"success": true, "data": REPORTS, "total": REPORTS.len()}))
}

/// `GET /reports/{id}`: the report, with its last result while cached.
async fn get_report(
    hub: HubRequest,
    State(installations): State<Installations>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    let (report, client) = report_for(&installations, &hub, &id)?;
    let mut data = serde_json::to_value(report).unwrap_or_default();
    data["lastRun"] = cached(client, report).await.unwrap_or(Value::Null);
    Ok(Json(json!({"success": true, "data": data})))
}

/// `POST /reports/{id}/run`: fetches CRM's data through the hub, computes, caches the result.
async fn run_report(
    hub: HubRequest,
    State(installations): State<Installations>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Failure> {
    let (report, client) = report_for(&installations, &hub, &id)?;
    let outcome = compute(client, report).await;
    let result = match outcome {
        Ok(result) => result,
        Err(mut failure) => {
            failure.last_run = cached(client, report).await;
            return Err(failure);
        }
    };
    // The cache is a convenience: a failed write leaves the answer as it is.
    if let Err(error) = client
        .data_set(CACHE_NAMESPACE, report.id, &result, Some(CACHE_TTL_SECONDS))
        .await
    {
        eprintln!("plexhub-analytics: caching {} failed: {error}", report.id);
    }
    Ok(Json(json!({"success": true, "data": result})))
}

async fn compute(client: &Client, report: &Report) -> Result<Value, Failure> {
    let (data, records) = match report.kind {
        "contacts_summary" => {
            let contacts: Vec<Contact> =
                fetch(client, "crm.contacts", "/contacts?take=500").await?;
            (contacts_summary(&contacts), contacts.len())
        }
        "deals_pipeline" => {
            let deals: Vec<Deal> = fetch(client, "crm.deals", "/deals?take=500").await?;
            (deals_pipeline(&deals), deals.len())
        }
        _ => {
            let deals: Vec<Deal> = fetch(client, "crm.deals", "/deals?take=500").await?;
            (sales_forecast(&deals), deals.len())
        }
    };
    Ok(json!({
        "reportId": report.id,
        "reportName": report.name,
        "type": report.kind,
        "generatedAt": humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        "data": data,
        "metadata": {"dataSource": report.sources, "recordsAnalyzed": records, "timePeriod": "all time"},
    }))
}

/// Drops the cached results of `reports` in the event's tenant that were computed before the
/// change: a result computed after it already includes it, and a delivery may arrive late
/// (retries, a busy hub). Both times come from clocks of the same deployment.
async fn invalidate(
    installations: Installations,
    hub: HubRequest,
    event: Event,
    reports: &[&str],
) -> Result<(), String> {
    let Some(client) = installations.tenant(&hub.tenant_slug) else {
        return Ok(());
    };
    let changed_at = humantime::parse_rfc3339(&event.time).ok();
    for report in reports {
        let cached = client
            .data_get(CACHE_NAMESPACE, report)
            .await
            .map_err(|error| format!("cannot read the cached {report}: {error}"))?;
        let Some(entry) = cached else {
            continue;
        };
        let computed_at = entry.value["generatedAt"]
            .as_str()
            .and_then(|time| humantime::parse_rfc3339(time).ok());
        let stale = match (computed_at, changed_at) {
            (Some(computed), Some(changed)) => computed <= changed,
            _ => true,
        };
        if stale {
            client
                .data_delete(CACHE_NAMESPACE, report)
                .await
                .map_err(|error| format!("cannot drop the cached {report}: {error}"))?;
        }
    }
    Ok(())
}

/// Deliveries of the manifest's subscriptions (`POST /events`): a contact change invalidates
/// the contacts summary, a deal change the pipeline and the forecast.
fn events(installations: &Installations) -> Router {
    let (contacts, deals) = (installations.clone(), installations.clone());
    EventRouter::new()
        .on(
            "plugin.crm.contact.*",
            move |hub: HubRequest, event: Event| {
                invalidate(contacts.clone(), hub, event, &["report-1"])
            },
        )
        .on("plugin.crm.deal.*", move |hub: HubRequest, event: Event| {
            invalidate(deals.clone(), hub, event, &["report-2", "report-3"])
        })
        .into_router("/events")
}

/// The plugin's HTTP API; every route needs the hub's signature (the SDK's `Verifier`
/// extension, which [`start`] adds). `GET /reports` lists the reports of every tenant alike.
pub fn router(installations: Installations) -> Router {
    Router::new()
        .route("/reports", get(list_reports))
        .route("/reports/{id}", get(get_report))
        .route("/reports/{id}/run", post(run_report))
        .with_state(installations.clone())
        .merge(events(&installations))
}

/// Serves the plugin on `listener` for every installation, registered with the hub and beating.
pub async fn start(
    listener: TcpListener,
    installations: &Installations,
    options: ServeOptions,
) -> Result<RunningPlugin, Error> {
    let router = router(installations.clone());
    plexhub_sdk::serve(listener, router, &manifest(), installations, options).await
}
