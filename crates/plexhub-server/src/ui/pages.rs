//! The dashboard's pages and actions. Each asks the API (see [`super::api`]) and renders the
//! answer; an API refusal becomes the same status on an HTML page.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Extension, Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures::Stream;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Ui;
use super::api::{query, segment};
use super::layout::{Section, UiError, csrf_field, page, tenant_nav, with_status};
use super::session::Session;

/// A rendered page or why it failed.
type Page = Result<Markup, UiError>;

/// How often the overview's live numbers are sent.
const OVERVIEW_PERIOD: Duration = Duration::from_secs(1);

/// The text of `value[key]`, or `""`.
fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

/// The array `value[key]`, or an empty one.
fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// `/api/v1/tenants/{slug}`…
fn tenant_api(slug: &str) -> String {
    format!("/api/v1/tenants/{}", segment(slug))
}

/// `/ui/tenants/{slug}`…
fn tenant_ui(slug: &str) -> String {
    format!("/ui/tenants/{}", segment(slug))
}

/// A health or state word, colored by what it means.
fn status_badge(status: &str) -> Markup {
    let class = match status {
        "HEALTHY" | "ACTIVE" | "active" => "good",
        "DEGRADED" | "UNKNOWN" | "INSTALLED" | "DISABLED" => "warn",
        _ => "bad",
    };
    html! { span class=(class) { (status) } }
}

/// Every tenant, following the API's pages.
async fn all_tenants(ui: &Ui) -> Result<Vec<Value>, UiError> {
    let mut tenants = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = ui
            .api
            .get(
                &format!(
                    "/api/v1/tenants{}",
                    query(&[("limit", "500"), ("cursor", &cursor)])
                ),
                None,
            )
            .await?;
        tenants.extend(list(&page, "tenants").iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return Ok(tenants),
        }
    }
}

/// Every service of a tenant with its replicas, following the API's pages.
async fn all_services(ui: &Ui, slug: &str) -> Result<Vec<Value>, UiError> {
    let mut services = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = ui
            .api
            .get(
                &format!(
                    "/api/v1/services{}",
                    query(&[("limit", "500"), ("cursor", &cursor)])
                ),
                Some(slug),
            )
            .await?;
        services.extend(list(&page, "services").iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return Ok(services),
        }
    }
}

/// The hub-wide numbers of the overview.
#[derive(Default)]
struct Totals {
    tenants: usize,
    installations: usize,
    active_installations: usize,
    services: usize,
    instances_up: usize,
    instances_unknown: usize,
    instances_down: usize,
    gateway_calls: f64,
    gateway_errors: f64,
    backlog: i64,
    dead_letters: usize,
}

/// Gateway calls and those answered 5xx, from this hub's metrics
/// (`plexhub_gateway_call_duration_seconds_count`).
fn gateway_counts(metrics: &str) -> (f64, f64) {
    let mut calls = 0.0;
    let mut errors = 0.0;
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("plexhub_gateway_call_duration_seconds_count{") else {
            continue;
        };
        let Some((labels, count)) = rest.split_once("} ") else {
            continue;
        };
        let count: f64 = count.trim().parse().unwrap_or(0.0);
        calls += count;
        if labels.contains("status_class=\"5xx\"") {
            errors += count;
        }
    }
    (calls, errors)
}

/// Counts everything the overview shows, tenant by tenant through the API.
async fn totals(ui: &Ui) -> Result<Totals, UiError> {
    let mut totals = Totals::default();
    for tenant in all_tenants(ui).await? {
        let slug = text(&tenant, "slug");
        totals.tenants += 1;
        let installations = ui
            .api
            .get(&format!("{}/installations", tenant_api(slug)), None)
            .await?;
        for installation in list(&installations, "installations") {
            totals.installations += 1;
            if text(installation, "state") == "ACTIVE" {
                totals.active_installations += 1;
            }
        }
        for service in all_services(ui, slug).await? {
            totals.services += 1;
            for instance in list(&service, "instances") {
                match text(instance, "status") {
                    "HEALTHY" | "DEGRADED" => totals.instances_up += 1,
                    "UNKNOWN" => totals.instances_unknown += 1,
                    _ => totals.instances_down += 1,
                }
            }
        }
        let subscriptions = ui.api.get("/api/v1/subscriptions", Some(slug)).await?;
        totals.backlog += list(&subscriptions, "subscriptions")
            .iter()
            .map(|subscription| subscription["lag"].as_i64().unwrap_or(0))
            .sum::<i64>();
        let dead = ui
            .api
            .get("/api/v1/dead-letters?limit=1000", Some(slug))
            .await?;
        totals.dead_letters += list(&dead, "deadLetters").len();
    }
    (totals.gateway_calls, totals.gateway_errors) = gateway_counts(&ui.state.metrics.render());
    Ok(totals)
}

/// The overview's numbers; `rate` is (calls/s, 5xx share) since the previous update, if any.
fn overview_cards(totals: &Totals, rate: Option<(f64, f64)>) -> Markup {
    let card = |value: String, label: &str, id: &str| {
        html! { div.card id=(id) { div.value { (value) } div.label { (label) } } }
    };
    let error_share = if totals.gateway_calls > 0.0 {
        totals.gateway_errors / totals.gateway_calls
    } else {
        0.0
    };
    html! {
        div.cards {
            (card(totals.tenants.to_string(), "tenants", "tenants"))
            (card(format!("{} / {}", totals.active_installations, totals.installations), "installations active / all", "installations"))
            (card(totals.services.to_string(), "services", "services"))
            (card(totals.instances_up.to_string(), "instances up", "instances-up"))
            (card(totals.instances_unknown.to_string(), "instances not heard from", "instances-unknown"))
            (card(totals.instances_down.to_string(), "instances down", "instances-down"))
            (card(match rate { Some((per_second, _)) => format!("{per_second:.1}"), None => "–".to_owned() }, "gateway calls/s (this hub)", "calls-rate"))
            (card(match rate { Some((_, share)) => format!("{:.1} %", share * 100.0), None => format!("{:.1} %", error_share * 100.0) }, "gateway 5xx share", "error-rate"))
            (card(format!("{}", totals.gateway_calls), "gateway calls since start (this hub)", "calls-total"))
            (card(totals.backlog.to_string(), "event backlog", "backlog"))
            (card(totals.dead_letters.to_string(), "dead letters", "dead-letters"))
        }
    }
}

/// `GET /ui`: the hub at a glance, kept current by server-sent events.
pub(crate) async fn overview(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
) -> Page {
    let totals = totals(&ui).await?;
    Ok(page(
        "Overview",
        &session,
        Section::Overview,
        html! {
            div hx-ext="sse" sse-connect="/ui/overview/stream" {
                div #live sse-swap="overview" aria-live="polite" {
                    (overview_cards(&totals, None))
                }
            }
            p { "Updated every second without reloading; rates are since the previous update." }
        },
    ))
}

/// `GET /ui/overview/stream`: the overview's numbers as an `overview` event every second,
/// until the client leaves or the hub stops.
pub(crate) async fn overview_stream(
    Extension(ui): Extension<Ui>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let shutdown = ui.state.shutdown.clone();
    let updates = futures::stream::unfold(
        (ui, None::<(f64, f64, tokio::time::Instant)>),
        |(ui, previous)| async move {
            tokio::time::sleep(OVERVIEW_PERIOD).await;
            let now = tokio::time::Instant::now();
            let (fragment, current) = match totals(&ui).await {
                Ok(totals) => {
                    let rate = previous.map(|(calls, errors, at)| {
                        let seconds = now.duration_since(at).as_secs_f64().max(0.001);
                        let new_calls = totals.gateway_calls - calls;
                        let new_errors = totals.gateway_errors - errors;
                        let share = if new_calls > 0.0 {
                            new_errors / new_calls
                        } else {
                            0.0
                        };
                        (new_calls / seconds, share)
                    });
                    let fragment = overview_cards(&totals, rate).into_string();
                    (
                        fragment,
                        Some((totals.gateway_calls, totals.gateway_errors, now)),
                    )
                }
                Err(error) => {
                    let (_, code, message) = error.summary();
                    let alert = html! {
                        div.problem role="alert" { p { "Cannot update: " strong { (code) } ": " (message) } }
                    };
                    (alert.into_string(), previous)
                }
            };
            let event = Event::default().event("overview").data(fragment);
            Some((Ok(event), (ui, current)))
        },
    );
    let updates = futures::StreamExt::take_until(updates, shutdown.cancelled_owned());
    Sse::new(updates).keep_alive(KeepAlive::default())
}

/// `GET /ui/tenants`.
pub(crate) async fn tenants(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
) -> Page {
    let tenants = all_tenants(&ui).await?;
    Ok(page(
        "Tenants",
        &session,
        Section::Tenants,
        html! {
            div.table { table {
                thead { tr { th scope="col" { "Slug" } th scope="col" { "Name" } th scope="col" { "Status" } th scope="col" { "Created" } } }
                tbody {
                    @for tenant in &tenants {
                        tr {
                            td { a href=(tenant_ui(text(tenant, "slug"))) { (text(tenant, "slug")) } }
                            td { (text(tenant, "name")) }
                            td { (status_badge(text(tenant, "status"))) }
                            td { (text(tenant, "createdAt")) }
                        }
                    }
                }
            } }
            @if tenants.is_empty() { p { "No tenant yet: create one with " code { "plexhub tenant create" } "." } }
        },
    ))
}

/// `GET /ui/tenants/{slug}`: the tenant's installations with their lifecycle actions.
pub(crate) async fn tenant(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    Path(slug): Path<String>,
) -> Page {
    let tenant = ui.api.get(&tenant_api(&slug), None).await?;
    let installations = ui
        .api
        .get(&format!("{}/installations", tenant_api(&slug)), None)
        .await?;
    let base = tenant_ui(&slug);
    Ok(page(
        &format!("Tenant {}", text(&tenant, "slug")),
        &session,
        Section::Tenants,
        html! {
            (tenant_nav(&slug, "Installations"))
            p { (text(&tenant, "name")) " · " (status_badge(text(&tenant, "status"))) }
            div.table { table {
                thead { tr {
                    th scope="col" { "Plugin" } th scope="col" { "Version" } th scope="col" { "State" }
                    th scope="col" { "Grants" } th scope="col" { "Actions" }
                } }
                tbody {
                    @for installation in list(&installations, "installations") {
                        @let plugin = text(installation, "pluginId");
                        @let actions = format!("{base}/installations/{}", segment(plugin));
                        tr {
                            td { a href=(actions) { (plugin) } }
                            td { (text(installation, "version")) }
                            td { (status_badge(text(installation, "state"))) }
                            td {
                                @for grant in list(installation, "grants") { code { (grant.as_str().unwrap_or_default()) } " " }
                            }
                            td {
                                @if text(installation, "state") == "ACTIVE" {
                                    form.inline method="post" action={(actions) "/deactivate"} {
                                        (csrf_field(&session))
                                        button.secondary type="submit" aria-label={"Deactivate " (plugin)} { "Deactivate" }
                                    }
                                } @else {
                                    form.inline method="post" action={(actions) "/activate"} {
                                        (csrf_field(&session))
                                        button.secondary type="submit" aria-label={"Activate " (plugin)} { "Activate" }
                                    }
                                }
                                " "
                                a href={(actions) "/uninstall"} { "Uninstall…" }
                            }
                        }
                    }
                }
            } }
        },
    ))
}

/// `GET /ui/tenants/{slug}/installations/{plugin}`: details and credentials.
pub(crate) async fn installation(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    Path((slug, plugin)): Path<(String, String)>,
) -> Page {
    installation_page(&ui, &session, &slug, &plugin, None).await
}

/// The installation page, with a just-issued credential shown once.
async fn installation_page(
    ui: &Ui,
    session: &Session,
    slug: &str,
    plugin: &str,
    issued: Option<&Value>,
) -> Page {
    let path = format!("{}/installations/{}", tenant_api(slug), segment(plugin));
    let installation = ui.api.get(&path, None).await?;
    let credentials = ui.api.get(&format!("{path}/credentials"), None).await?;
    let actions = format!("{}/installations/{}", tenant_ui(slug), segment(plugin));
    Ok(page(
        &format!("{plugin} in {slug}"),
        session,
        Section::Tenants,
        html! {
            (tenant_nav(slug, ""))
            @if let Some(issued) = issued {
                div.notice role="status" {
                    p { strong { "New credential. It is shown once: copy it now." } }
                    p { label for="new-token" { "Token" } input #new-token readonly value=(text(issued, "token")) size="60"; }
                }
            }
            dl {
                dt { "Version" } dd { (text(&installation, "version")) }
                dt { "State" } dd { (status_badge(text(&installation, "state"))) }
                dt { "Base URL" } dd { code { (installation["baseUrl"].as_str().unwrap_or("none")) } }
                dt { "Grants" } dd { @for grant in list(&installation, "grants") { code { (grant.as_str().unwrap_or_default()) } " " } }
                dt { "Signing" } dd { (text(&installation, "signing")) }
            }
            h2 { "Credentials" }
            div.table { table {
                thead { tr { th scope="col" { "Id" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { "Revoke" } } }
                tbody {
                    @for credential in list(&credentials, "credentials") {
                        @let id = text(credential, "id");
                        tr {
                            td.mono { (id) }
                            td { (text(credential, "createdAt")) }
                            td { (credential["lastUsedAt"].as_str().unwrap_or("never")) }
                            td {
                                form.inline method="post" action={(actions) "/credentials/" (segment(id)) "/revoke"} {
                                    (csrf_field(session))
                                    button.danger type="submit" aria-label={"Revoke " (id)} { "Revoke" }
                                }
                            }
                        }
                    }
                }
            } }
            form #issue-credential method="post" action={(actions) "/credentials"} {
                (csrf_field(session))
                p { button type="submit" { "Issue a new credential (rotation)" } }
            }
        },
    ))
}

/// Runs a lifecycle action through the API, then back to the tenant page (303).
async fn lifecycle(ui: &Ui, slug: &str, plugin: &str, action: &str) -> Result<Response, UiError> {
    ui.api
        .post(
            &format!(
                "{}/installations/{}/{action}",
                tenant_api(slug),
                segment(plugin)
            ),
            Value::Null,
        )
        .await?;
    Ok(Redirect::to(&tenant_ui(slug)).into_response())
}

/// `POST …/activate`.
pub(crate) async fn activate(
    Extension(ui): Extension<Ui>,
    Path((slug, plugin)): Path<(String, String)>,
) -> Result<Response, UiError> {
    lifecycle(&ui, &slug, &plugin, "activate").await
}

/// `POST …/deactivate`.
pub(crate) async fn deactivate(
    Extension(ui): Extension<Ui>,
    Path((slug, plugin)): Path<(String, String)>,
) -> Result<Response, UiError> {
    lifecycle(&ui, &slug, &plugin, "deactivate").await
}

/// `GET …/uninstall`: the uninstall plan (what blocks it, what a cascade removes), then the
/// confirming form.
pub(crate) async fn uninstall_plan(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    Path((slug, plugin)): Path<(String, String)>,
) -> Page {
    let plan = ui
        .api
        .post(
            &format!("{}/plans/uninstall", tenant_api(&slug)),
            json!({ "pluginId": plugin, "cascade": true }),
        )
        .await?;
    let can_uninstall = plan["canUninstall"].as_bool().unwrap_or(false);
    let actions = format!("{}/installations/{}", tenant_ui(&slug), segment(&plugin));
    Ok(page(
        &format!("Uninstall {plugin} from {slug}"),
        &session,
        Section::Tenants,
        html! {
            (tenant_nav(&slug, ""))
            h2 { "Plan" }
            @if can_uninstall {
                p { "Nothing installed requires " code { (plugin) } ": it can be uninstalled alone." }
            } @else {
                p.warn { "Installed plugins require it: " @for blocker in list(&plan, "blockedBy") { code { (blocker.as_str().unwrap_or_default()) } " " } }
            }
            @if !list(&plan, "order").is_empty() {
                p { "Removal order with its dependents:" }
                ol { @for step in list(&plan, "order") { li { code { (step.as_str().unwrap_or_default()) } } } }
            }
            @for warning in list(&plan, "warnings") { p.warn { (warning.as_str().unwrap_or_default()) } }
            form method="post" action={(actions) "/uninstall"} {
                (csrf_field(&session))
                @if !can_uninstall { input type="hidden" name="cascade" value="true"; }
                button.danger type="submit" {
                    @if can_uninstall { "Uninstall " (plugin) } @else { "Uninstall " (plugin) " and its dependents" }
                }
                " " a href=(tenant_ui(&slug)) { "Cancel" }
            }
        },
    ))
}

/// The confirming form of an uninstall.
#[derive(Deserialize)]
pub(crate) struct UninstallForm {
    cascade: Option<String>,
}

/// `POST …/uninstall`: uninstalls through the API (cascading when the plan said so).
pub(crate) async fn uninstall(
    Extension(ui): Extension<Ui>,
    Path((slug, plugin)): Path<(String, String)>,
    axum::Form(form): axum::Form<UninstallForm>,
) -> Result<Response, UiError> {
    let cascade = if form.cascade.as_deref() == Some("true") {
        "?cascade=true"
    } else {
        ""
    };
    ui.api
        .call(
            Method::DELETE,
            &format!(
                "{}/installations/{}{cascade}",
                tenant_api(&slug),
                segment(&plugin)
            ),
            None,
            None,
        )
        .await?;
    Ok(Redirect::to(&tenant_ui(&slug)).into_response())
}

/// `POST …/credentials`: issues a credential and shows its token once.
pub(crate) async fn issue_credential(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    Path((slug, plugin)): Path<(String, String)>,
) -> Page {
    let issued = ui
        .api
        .post(
            &format!(
                "{}/installations/{}/credentials",
                tenant_api(&slug),
                segment(&plugin)
            ),
            Value::Null,
        )
        .await?;
    installation_page(&ui, &session, &slug, &plugin, Some(&issued)).await
}

/// `POST …/credentials/{credential}/revoke`.
pub(crate) async fn revoke_credential(
    Extension(ui): Extension<Ui>,
    Path((slug, plugin, credential)): Path<(String, String, String)>,
) -> Result<Response, UiError> {
    ui.api
        .call(
            Method::DELETE,
            &format!(
                "{}/installations/{}/credentials/{}",
                tenant_api(&slug),
                segment(&plugin),
                segment(&credential)
            ),
            None,
            None,
        )
        .await?;
    Ok(Redirect::to(&format!(
        "{}/installations/{}",
        tenant_ui(&slug),
        segment(&plugin)
    ))
    .into_response())
}

/// `GET /ui/tenants/{slug}/services`: every service with its replicas' health.
pub(crate) async fn services(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    Path(slug): Path<String>,
) -> Page {
    ui.api.get(&tenant_api(&slug), None).await?;
    let services = all_services(&ui, &slug).await?;
    Ok(page(
        &format!("Services of {slug}"),
        &session,
        Section::Tenants,
        html! {
            (tenant_nav(&slug, "Services"))
            @if services.is_empty() { p { "No service registered." } }
            @for service in &services {
                h2 { (text(service, "serviceName")) " " small { "(" (text(service, "pluginId")) ")" } }
                p { "Status " (status_badge(text(service, "status")))
                    @if service["discoverable"].as_bool() == Some(false) { " · not discoverable" } }
                div.table { table {
                    thead { tr { th scope="col" { "Instance" } th scope="col" { "Health" } th scope="col" { "Last heartbeat" } th scope="col" { "URL" } th scope="col" { "Reason" } th scope="col" { "Circuit (this hub)" } } }
                    tbody {
                        @for instance in list(service, "instances") {
                            tr {
                                td.mono { (text(instance, "instanceId")) }
                                td { (status_badge(text(instance, "status"))) }
                                td { (text(instance, "lastSeenAt")) }
                                td.mono { (text(instance, "baseUrl")) }
                                td { (instance["reason"].as_str().unwrap_or_default()) }
                                td { @match instance["circuitOpenUntil"].as_str() {
                                    Some(until) => { "open until " (until) }
                                    None => { "closed" }
                                } }
                            }
                        }
                    }
                } }
            }
        },
    ))
}

/// The access-explain form's fields.
#[derive(Deserialize, Default)]
pub(crate) struct ExplainForm {
    #[serde(default)]
    caller: String,
    #[serde(default)]
    service: String,
    #[serde(default)]
    method: String,
    #[serde(default)]
    path: String,
}

/// `GET /ui/tenants/{slug}/access`: the API's access explanation for a call, every check
/// passed or failed.
pub(crate) async fn access(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    Path(slug): Path<String>,
    Query(form): Query<ExplainForm>,
) -> Page {
    let installations = ui
        .api
        .get(&format!("{}/installations", tenant_api(&slug)), None)
        .await?;
    let explanation = if form.service.is_empty() {
        None
    } else {
        let method = if form.method.is_empty() {
            "GET"
        } else {
            &form.method
        };
        let path = if form.path.is_empty() {
            "/"
        } else {
            &form.path
        };
        Some(
            ui.api
                .get(
                    &format!(
                        "/api/v1/access/explain{}",
                        query(&[
                            ("caller", &form.caller),
                            ("service", &form.service),
                            ("method", method),
                            ("path", path)
                        ])
                    ),
                    Some(&slug),
                )
                .await,
        )
    };
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    Ok(page(
        &format!("Access explain in {slug}"),
        &session,
        Section::Tenants,
        html! {
            (tenant_nav(&slug, "Access explain"))
            form method="get" {
                div.row {
                    div { label for="caller" { "Caller" }
                        select #caller name="caller" {
                            @for installation in list(&installations, "installations") {
                                @let id = text(installation, "pluginId");
                                option value=(id) selected[id == form.caller] { (id) }
                            }
                        } }
                    div { label for="service" { "Service" } input #service name="service" value=(form.service) required; }
                    div { label for="method" { "Method" }
                        select #method name="method" {
                            @for method in methods { option selected[method == form.method] { (method) } }
                        } }
                    div { label for="path" { "Path" } input #path name="path" value=(form.path) placeholder="/contacts/42"; }
                    div { button type="submit" { "Explain" } }
                }
            }
            @match &explanation {
                Some(Ok(answer)) => {
                    div class=(if answer["allowed"].as_bool() == Some(true) { "notice" } else { "problem" }) role="status" {
                        p { strong { @if answer["allowed"].as_bool() == Some(true) { "Allowed" } @else { "Denied" } }
                            @if let Some(code) = answer["code"].as_str() { " · " code { (code) } }
                            @if let Some(message) = answer["message"].as_str() { " · " (message) } }
                    }
                    div.table { table {
                        thead { tr { th scope="col" { "Rule" } th scope="col" { "Result" } th scope="col" { "Detail" } } }
                        tbody {
                            @for check in list(answer, "checks") {
                                tr {
                                    td { (text(check, "rule")) }
                                    td { @if check["passed"].as_bool() == Some(true) { span.good { "passed" } } @else { span.bad { "failed" } } }
                                    td { (text(check, "detail")) }
                                }
                            }
                        }
                    } }
                }
                Some(Err(failure)) => {
                    div.problem role="alert" { p { strong { (failure.code) } ": " (failure.message) } }
                }
                None => {}
            }
        },
    ))
}

/// `GET /ui/tenants/{slug}/events`: subscriptions with their backlog, and dead letters.
pub(crate) async fn events(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    Path(slug): Path<String>,
) -> Page {
    ui.api.get(&tenant_api(&slug), None).await?;
    let subscriptions = ui.api.get("/api/v1/subscriptions", Some(&slug)).await?;
    let dead = ui
        .api
        .get("/api/v1/dead-letters?limit=1000", Some(&slug))
        .await?;
    let base = tenant_ui(&slug);
    Ok(page(
        &format!("Events of {slug}"),
        &session,
        Section::Tenants,
        html! {
            (tenant_nav(&slug, "Events"))
            h2 { "Subscriptions" }
            div.table { table {
                thead { tr { th scope="col" { "Plugin" } th scope="col" { "Pattern" } th scope="col" { "Endpoint" } th scope="col" { "Backlog" } th scope="col" { "Delivered" } th scope="col" { "Dead letters" } } }
                tbody {
                    @for subscription in list(&subscriptions, "subscriptions") {
                        tr {
                            td { (text(subscription, "pluginId")) }
                            td { code { (text(subscription, "pattern")) } }
                            td.mono { (text(subscription, "endpoint")) }
                            td { (subscription["lag"].as_i64().unwrap_or(0)) }
                            td { (subscription["delivered"].as_i64().unwrap_or(0)) }
                            td { (subscription["deadLettered"].as_i64().unwrap_or(0)) }
                        }
                    }
                }
            } }
            h2 { "Dead letters" }
            @if list(&dead, "deadLetters").is_empty() { p { "None." } }
            div.table { table {
                thead { tr { th scope="col" { "Event type" } th scope="col" { "Plugin" } th scope="col" { "Attempts" } th scope="col" { "Last error" } th scope="col" { "Failed" } th scope="col" { "Actions" } } }
                tbody {
                    @for letter in list(&dead, "deadLetters") {
                        @let id = segment(text(letter, "id"));
                        tr {
                            td { code { (letter["event"]["type"].as_str().unwrap_or_default()) } }
                            td { (text(letter, "pluginId")) }
                            td { (letter["attempts"].as_i64().unwrap_or(0)) }
                            td { (text(letter, "lastError")) }
                            td { (text(letter, "failedAt")) }
                            td {
                                form.inline method="post" action={(base) "/dead-letters/" (id) "/retry"} {
                                    (csrf_field(&session)) button.secondary type="submit" { "Retry" }
                                }
                                " "
                                form.inline method="post" action={(base) "/dead-letters/" (id) "/delete"} {
                                    (csrf_field(&session)) button.danger type="submit" { "Delete" }
                                }
                            }
                        }
                    }
                }
            } }
        },
    ))
}

/// `POST …/dead-letters/{id}/retry`.
pub(crate) async fn retry_dead_letter(
    Extension(ui): Extension<Ui>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, UiError> {
    ui.api
        .call(
            Method::POST,
            &format!("/api/v1/dead-letters/{}/retry", segment(&id)),
            Some(&slug),
            None,
        )
        .await?;
    Ok(Redirect::to(&format!("{}/events", tenant_ui(&slug))).into_response())
}

/// `POST …/dead-letters/{id}/delete`.
pub(crate) async fn delete_dead_letter(
    Extension(ui): Extension<Ui>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Response, UiError> {
    ui.api
        .call(
            Method::DELETE,
            &format!("/api/v1/dead-letters/{}", segment(&id)),
            Some(&slug),
            None,
        )
        .await?;
    Ok(Redirect::to(&format!("{}/events", tenant_ui(&slug))).into_response())
}

/// The catalog page, with the publish form holding `manifest` and the problems of a refused
/// publication.
fn catalog_page(session: &Session, plugins: &Value, manifest: &str, problems: Markup) -> Markup {
    page(
        "Catalog",
        session,
        Section::Catalog,
        html! {
            div.table { table {
                thead { tr { th scope="col" { "Plugin" } th scope="col" { "Name" } th scope="col" { "Latest" } th scope="col" { "Status" } th scope="col" { "Versions" } } }
                tbody {
                    @for plugin in list(plugins, "plugins") {
                        @let id = text(plugin, "pluginId");
                        tr {
                            td { a href={ "/ui/catalog/" (segment(id)) } { (id) } }
                            td { (text(plugin, "name")) }
                            td { (text(plugin, "latestVersion")) }
                            td {
                                (text(plugin, "status"))
                                @if let Some(message) = plugin["deprecation"]["message"].as_str() { ": " (message) }
                            }
                            td { @for version in list(plugin, "versions") { (version.as_str().unwrap_or_default()) " " } }
                        }
                    }
                }
            } }
            h2 #publish { "Publish a manifest" }
            (problems)
            form method="post" action="/ui/catalog" {
                (csrf_field(session))
                label for="manifest-file" { "Upload a manifest file" }
                input #manifest-file type="file" accept=".json,application/json"
                    onchange="const f=this.files[0];if(f){f.text().then(t=>{document.getElementById('manifest').value=t})}";
                label for="manifest" { "Or paste it (JSON)" }
                textarea #manifest name="manifest" required { (manifest) }
                p { button type="submit" { "Publish" } }
            }
        },
    )
}

/// `GET /ui/catalog`: plugins, versions and the publish form.
pub(crate) async fn catalog(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
) -> Page {
    let plugins = ui.api.get("/api/v1/plugins", None).await?;
    Ok(catalog_page(&session, &plugins, "", html! {}))
}

/// The publish form's fields.
#[derive(Deserialize)]
pub(crate) struct PublishForm {
    manifest: String,
}

/// `POST /ui/catalog`: publishes through the API; a refused manifest comes back with every
/// problem at its path (400), a published one goes to its plugin page (303).
pub(crate) async fn publish(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    axum::Form(form): axum::Form<PublishForm>,
) -> Result<Response, UiError> {
    let problems = match serde_json::from_str::<Value>(&form.manifest) {
        Err(error) => vec![(
            "(document)".to_owned(),
            format!(
                "not JSON: {error} (line {}, column {})",
                error.line(),
                error.column()
            ),
        )],
        Ok(manifest) => match ui.api.post("/api/v1/plugins", manifest).await {
            Ok(published) => {
                let id = published["pluginId"]
                    .as_str()
                    .or_else(|| published["plugin"]["pluginId"].as_str())
                    .unwrap_or_default();
                let target = if id.is_empty() {
                    "/ui/catalog".to_owned()
                } else {
                    format!("/ui/catalog/{}", segment(id))
                };
                return Ok(Redirect::to(&target).into_response());
            }
            Err(failure) => {
                let listed: Vec<(String, String)> = list(&failure.details, "errors")
                    .iter()
                    .map(|problem| {
                        (
                            text(problem, "path").to_owned(),
                            text(problem, "message").to_owned(),
                        )
                    })
                    .collect();
                if listed.is_empty() {
                    vec![(failure.code, failure.message)]
                } else {
                    listed
                }
            }
        },
    };
    let plugins = ui.api.get("/api/v1/plugins", None).await?;
    let problems = html! {
        div.problem role="alert" {
            p { strong { "The manifest was not published:" } }
            ul { @for (path, message) in &problems { li { code.path { (path) } ": " (message) } } }
        }
    };
    Ok(with_status(
        StatusCode::BAD_REQUEST,
        catalog_page(&session, &plugins, &form.manifest, problems),
    ))
}

/// `GET /ui/catalog/{plugin}`: a plugin's versions (404 for an unknown plugin).
pub(crate) async fn plugin(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    Path(plugin): Path<String>,
) -> Page {
    let detail = ui
        .api
        .get(&format!("/api/v1/plugins/{}", segment(&plugin)), None)
        .await?;
    Ok(page(
        &format!("Plugin {}", text(&detail, "pluginId")),
        &session,
        Section::Catalog,
        html! {
            p { (text(&detail, "name")) " · latest " (text(&detail, "latestVersion")) }
            @for version in list(&detail, "versions").iter().rev() {
                details {
                    summary {
                        (text(version, "version")) " · " (text(version, "status"))
                        @if version["yanked"].as_bool() == Some(true) { " (yanked: " (text(version, "yankReason")) ")" }
                        @if let Some(message) = version["deprecation"]["message"].as_str() { " · deprecated: " (message) }
                        " · published " (text(version, "publishedAt"))
                    }
                    pre.mono { (serde_json::to_string_pretty(&version["manifest"]).unwrap_or_default()) }
                }
            }
        },
    ))
}

/// The audit log's filters, as the API takes them, plus the page size.
#[derive(Deserialize, Default)]
pub(crate) struct CallFilters {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    caller: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    cursor: String,
}

/// Calls per page.
const CALLS_PER_PAGE: &str = "50";

/// `GET /ui/calls`: the gateway's audit log with the API's filters, a page at a time.
pub(crate) async fn calls(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    Query(filters): Query<CallFilters>,
) -> Page {
    let pairs = [
        ("tenant", filters.tenant.as_str()),
        ("caller", filters.caller.as_str()),
        ("target", filters.target.as_str()),
        ("status", filters.status.as_str()),
        ("since", filters.since.as_str()),
    ];
    let mut api_pairs = pairs.to_vec();
    api_pairs.extend([("limit", CALLS_PER_PAGE), ("cursor", &filters.cursor)]);
    let answer = match ui
        .api
        .get(&format!("/api/v1/calls{}", query(&api_pairs)), None)
        .await
    {
        Err(failure) if failure.status == StatusCode::NOT_FOUND => return Err(failure.into()),
        answer => answer,
    };
    let next_page = answer
        .as_ref()
        .ok()
        .and_then(|answer| answer["nextCursor"].as_str())
        .map(|cursor| {
            let mut next_pairs = pairs.to_vec();
            next_pairs.push(("cursor", cursor));
            format!("/ui/calls{}", query(&next_pairs))
        });
    let first_page = (!filters.cursor.is_empty()).then(|| format!("/ui/calls{}", query(&pairs)));
    let fields = [
        ("tenant", "Tenant", &filters.tenant, "acme"),
        ("caller", "Caller", &filters.caller, "plugin id"),
        ("target", "Target", &filters.target, "plugin id"),
        ("status", "Status", &filters.status, "404 or 5xx"),
        ("since", "Since", &filters.since, "RFC 3339"),
    ];
    Ok(page(
        "Calls",
        &session,
        Section::Calls,
        html! {
            form method="get" {
                div.row {
                    @for (name, label, value, hint) in fields {
                        div { label for=(name) { (label) } input id=(name) name=(name) value=(value) placeholder=(hint); }
                    }
                    div { button type="submit" { "Filter" } }
                }
            }
            @match &answer {
                Err(failure) => { div.problem role="alert" { p { strong { (failure.code) } ": " (failure.message) } } }
                Ok(answer) => {
                    @let calls = list(answer, "calls");
                    p { (calls.len()) @if calls.len() == 1 { " call" } @else { " calls" } ", newest first" @if first_page.is_some() { " (a later page)" } "." }
                    div.table { table {
                        thead { tr { th scope="col" { "At" } th scope="col" { "Caller" } th scope="col" { "Target" } th scope="col" { "Request" } th scope="col" { "Status" } th scope="col" { "ms" } } }
                        tbody {
                            @for call in calls {
                                tr {
                                    td { (text(call, "at")) }
                                    td { (text(call, "caller")) }
                                    td { (call["target"].as_str().unwrap_or("–")) }
                                    td.mono { (text(call, "method")) " " (text(call, "service")) (text(call, "path")) }
                                    td { (call["status"].as_u64().unwrap_or(0)) }
                                    td { (format!("{:.1}", call["durationMs"].as_f64().unwrap_or(0.0))) }
                                }
                            }
                        }
                    } }
                    nav.pages aria-label="Pages" {
                        @if let Some(first) = &first_page { a href=(first) { "Newest" } " " }
                        @if let Some(next) = &next_page { a href=(next) rel="next" { "Older calls" } }
                    }
                }
            }
        },
    ))
}
