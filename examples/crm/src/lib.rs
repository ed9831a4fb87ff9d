//! The CRM sample plugin: contacts, deals and the sales pipeline (the Plexica CRM plugin's API),
//! kept per tenant, reachable only through the hub.
//!
//! Every tenant route takes a [`HubRequest`]: the hub signed the request, and the tenant it names
//! chooses the data. Each tenant starts from the same seed data (four contacts, four deals, a
//! pipeline of 427 000 USD); data lives in memory, like the original's.

mod book;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use plexhub_sdk::{HubRequest, Installations, OutgoingEvent, RunningPlugin, ServeOptions};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

pub use book::{Book, Contact, Deal, ListQuery, Page, Refusal, STAGES};

/// The plugin's manifest (`examples/manifests/crm.json`).
pub const MANIFEST: &str = include_str!("../../manifests/crm.json");

/// The plugin's version.
pub const VERSION: &str = "1.0.0";

/// The manifest, parsed.
pub fn manifest() -> Value {
    serde_json::from_str(MANIFEST).unwrap_or_default()
}

/// Every tenant's book, created from the seed on the tenant's first request.
#[derive(Debug, Default)]
pub struct Books {
    by_tenant: Mutex<HashMap<String, Book>>,
}

impl Books {
    /// Runs `work` on the tenant's book (seeded on first use).
    fn with<R>(&self, tenant_id: &str, work: impl FnOnce(&mut Book) -> R) -> R {
        let mut map = self
            .by_tenant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        work(map.entry(tenant_id.to_owned()).or_insert_with(Book::seeded))
    }

    fn totals(&self) -> (usize, usize, usize) {
        let map = self
            .by_tenant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let contacts = map.values().map(Book::contact_count).sum();
        let deals = map.values().map(Book::deal_count).sum();
        (map.len(), contacts, deals)
    }
}

/// The plugin's state: every tenant's data, and the credentials to publish its events.
struct Crm {
    books: Books,
    installations: Installations,
}

impl Crm {
    /// Publishes `plugin.crm.<entity>.<action>` in the request's tenant, keyed by the record's
    /// id (so a record's events arrive in order). A failure is logged: the change is made.
    async fn announce<T: serde::Serialize>(
        &self,
        hub: &HubRequest,
        event_type: &str,
        id: &str,
        record: &T,
    ) {
        let Some(client) = self.installations.tenant(&hub.tenant_slug) else {
            return;
        };
        let event = OutgoingEvent {
            event_type: event_type.to_owned(),
            data: serde_json::to_value(record).unwrap_or_default(),
            partition_key: Some(id.to_owned()),
            ..OutgoingEvent::default()
        };
        if let Err(error) = client.publish_all(&[event]).await {
            eprintln!("plexhub-crm: publishing {event_type} failed: {error}");
        }
    }
}

type Shared = State<Arc<Crm>>;

/// An answer in the original's envelope.
enum Reply {
    Data(StatusCode, Value),
    List(Page),
    Refused(Refusal),
    Message(&'static str),
}

impl From<Refusal> for Reply {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        match self {
            Self::Data(status, data) => {
                (status, Json(json!({"success": true, "data": data}))).into_response()
            }
            Self::List(page) => {
                Json(json!({"success": true, "data": page.data, "total": page.total}))
                    .into_response()
            }
            Self::Message(message) => {
                Json(json!({"success": true, "message": message})).into_response()
            }
            Self::Refused(refusal) => {
                let (status, error) = match refusal {
                    Refusal::Invalid(message) => (StatusCode::BAD_REQUEST, message),
                    Refusal::NotFound(message) => (StatusCode::NOT_FOUND, message.to_owned()),
                };
                (status, Json(json!({"success": false, "error": error}))).into_response()
            }
        }
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

fn object(body: &Bytes) -> Result<Map<String, Value>, Reply> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Refusal::Invalid("the body must be a JSON object".to_owned()).into()),
    }
}

fn list_query(query: Result<Query<ListQuery>, QueryRejection>) -> Result<ListQuery, Reply> {
    query.map(|Query(query)| query).map_err(|rejection| {
        Refusal::Invalid(format!("bad query: {}", rejection.body_text())).into()
    })
}

fn data<T: serde::Serialize>(status: StatusCode, record: &T) -> Reply {
    Reply::Data(status, serde_json::to_value(record).unwrap_or_default())
}

async fn list_contacts(
    hub: HubRequest,
    State(crm): Shared,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Reply, Reply> {
    let query = list_query(query)?;
    Ok(Reply::List(crm.books.with(&hub.tenant_id, |book| {
        book.contacts(&query, |_| true)
    })))
}

async fn contacts_of_company(
    hub: HubRequest,
    State(crm): Shared,
    Path(company): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Reply, Reply> {
    let query = list_query(query)?;
    let wanted = company.to_lowercase();
    let page = crm.books.with(&hub.tenant_id, |book| {
        book.contacts(&query, |contact| {
            contact
                .company
                .as_deref()
                .is_some_and(|c| c.to_lowercase() == wanted)
        })
    });
    Ok(Reply::List(page))
}

async fn contacts_with_tag(
    hub: HubRequest,
    State(crm): Shared,
    Path(tag): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Reply, Reply> {
    let query = list_query(query)?;
    let page = crm.books.with(&hub.tenant_id, |book| {
        book.contacts(&query, |contact| contact.tags.contains(&tag))
    });
    Ok(Reply::List(page))
}

async fn get_contact(
    hub: HubRequest,
    State(crm): Shared,
    Path(id): Path<String>,
) -> Result<Reply, Reply> {
    crm.books.with(&hub.tenant_id, |book| {
        Ok(data(StatusCode::OK, book.contact(&id)?))
    })
}

async fn create_contact(hub: HubRequest, State(crm): Shared, body: Bytes) -> Result<Reply, Reply> {
    let body = object(&body)?;
    let contact = crm
        .books
        .with(&hub.tenant_id, |book| book.create_contact(&body, &now()))?;
    crm.announce(&hub, "plugin.crm.contact.created", &contact.id, &contact)
        .await;
    Ok(data(StatusCode::CREATED, &contact))
}

async fn update_contact(
    hub: HubRequest,
    State(crm): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Reply, Reply> {
    let body = object(&body)?;
    let contact = crm.books.with(&hub.tenant_id, |book| {
        book.update_contact(&id, &body, &now())
    })?;
    crm.announce(&hub, "plugin.crm.contact.updated", &id, &contact)
        .await;
    Ok(data(StatusCode::OK, &contact))
}

async fn delete_contact(
    hub: HubRequest,
    State(crm): Shared,
    Path(id): Path<String>,
) -> Result<Reply, Reply> {
    crm.books
        .with(&hub.tenant_id, |book| book.delete_contact(&id))?;
    crm.announce(
        &hub,
        "plugin.crm.contact.deleted",
        &id,
        &json!({ "id": id }),
    )
    .await;
    Ok(Reply::Message("Contact deleted"))
}

async fn list_deals(
    hub: HubRequest,
    State(crm): Shared,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Reply, Reply> {
    let query = list_query(query)?;
    Ok(Reply::List(
        crm.books
            .with(&hub.tenant_id, |book| book.deals(&query, |_| true)),
    ))
}

async fn deals_in_stage(
    hub: HubRequest,
    State(crm): Shared,
    Path(stage): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Reply, Reply> {
    let query = list_query(query)?;
    if !STAGES.contains(&stage.as_str()) {
        return Err(Refusal::Invalid(format!("stage must be one of {}", STAGES.join(", "))).into());
    }
    Ok(Reply::List(crm.books.with(&hub.tenant_id, |book| {
        book.deals(&query, |deal| deal.stage == stage)
    })))
}

async fn deals_of_contact(
    hub: HubRequest,
    State(crm): Shared,
    Path(contact): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Reply, Reply> {
    let query = list_query(query)?;
    let page = crm.books.with(&hub.tenant_id, |book| {
        book.deals(&query, |deal| deal.contact_id.as_deref() == Some(&contact))
    });
    Ok(Reply::List(page))
}

async fn get_deal(
    hub: HubRequest,
    State(crm): Shared,
    Path(id): Path<String>,
) -> Result<Reply, Reply> {
    crm.books.with(&hub.tenant_id, |book| {
        Ok(Reply::Data(StatusCode::OK, book.enriched(book.deal(&id)?)))
    })
}

async fn create_deal(hub: HubRequest, State(crm): Shared, body: Bytes) -> Result<Reply, Reply> {
    let body = object(&body)?;
    let (id, deal) = crm.books.with(&hub.tenant_id, |book| {
        let deal = book.create_deal(&body, &now())?;
        Ok::<_, Refusal>((deal.id.clone(), book.enriched(&deal)))
    })?;
    crm.announce(&hub, "plugin.crm.deal.created", &id, &deal)
        .await;
    Ok(Reply::Data(StatusCode::CREATED, deal))
}

async fn update_deal(
    hub: HubRequest,
    State(crm): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Reply, Reply> {
    let body = object(&body)?;
    let deal = crm.books.with(&hub.tenant_id, |book| {
        let deal = book.update_deal(&id, &body, &now())?;
        Ok::<_, Refusal>(book.enriched(&deal))
    })?;
    crm.announce(&hub, "plugin.crm.deal.updated", &id, &deal)
        .await;
    Ok(Reply::Data(StatusCode::OK, deal))
}

async fn delete_deal(
    hub: HubRequest,
    State(crm): Shared,
    Path(id): Path<String>,
) -> Result<Reply, Reply> {
    crm.books
        .with(&hub.tenant_id, |book| book.delete_deal(&id))?;
    crm.announce(&hub, "plugin.crm.deal.deleted", &id, &json!({ "id": id }))
        .await;
    Ok(Reply::Message("Deal deleted"))
}

async fn pipeline_summary(hub: HubRequest, State(crm): Shared) -> Reply {
    Reply::Data(
        StatusCode::OK,
        crm.books
            .with(&hub.tenant_id, |book| book.pipeline_summary()),
    )
}

/// `GET /health`, for operators (no tenant data, no signature needed).
async fn health(State(crm): Shared) -> Json<Value> {
    let (tenants, contacts, deals) = crm.books.totals();
    Json(json!({
        "status": "ok", "plugin": "crm", "version": VERSION, "timestamp": now(),
        "tenants": tenants, "services": {"contacts": contacts, "deals": deals},
    }))
}

/// `GET /info`: the manifest's services, for operators.
async fn info() -> Json<Value> {
    let manifest = manifest();
    Json(json!({
        "name": manifest["name"], "version": VERSION,
        "description": manifest["description"], "services": manifest["api"]["services"],
    }))
}

/// The plugin's HTTP API. Tenant routes need the hub's signature (the SDK's `Verifier`
/// extension, which [`start`] adds); every change is published as `plugin.crm.contact.*` /
/// `plugin.crm.deal.*` in the request's tenant, with `installations`' credentials.
pub fn router(installations: Installations) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/info", get(info))
        .route("/contacts", get(list_contacts).post(create_contact))
        .route("/contacts/company/{company}", get(contacts_of_company))
        .route("/contacts/tag/{tag}", get(contacts_with_tag))
        .route(
            "/contacts/{id}",
            get(get_contact).put(update_contact).delete(delete_contact),
        )
        .route("/deals", get(list_deals).post(create_deal))
        .route("/deals/pipeline/summary", get(pipeline_summary))
        .route("/deals/stage/{stage}", get(deals_in_stage))
        .route("/deals/contact/{contact_id}", get(deals_of_contact))
        .route(
            "/deals/{id}",
            get(get_deal).put(update_deal).delete(delete_deal),
        )
        .with_state(Arc::new(Crm {
            books: Books::default(),
            installations,
        }))
}

/// Serves the plugin on `listener` for every installation, registered with the hub and beating.
pub async fn start(
    listener: TcpListener,
    installations: &Installations,
    options: ServeOptions,
) -> Result<RunningPlugin, plexhub_sdk::Error> {
    let router = router(installations.clone());
    plexhub_sdk::serve(listener, router, &manifest(), installations, options).await
}
