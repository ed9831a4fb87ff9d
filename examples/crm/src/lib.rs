//! The CRM sample plugin: contacts, deals and the sales pipeline (the Plexica CRM plugin's API),
//! kept per tenant, reachable only through the hub.
//!
//! Every tenant route takes a [`HubRequest`]: the hub signed the request, and the tenant it names
//! chooses the data. Each tenant starts from the same seed data (four contacts, four deals, a
//! pipeline of 427 000 USD). Unlike the original, which kept it in memory, the data lives in the
//! hub's shared data (one entry per tenant, [`STATE_ENTRY`], written with compare-and-set), so a
//! restart or a second replica loses nothing; each change's event waits in the same entry until
//! the hub accepted it (at-least-once, without duplicates: the event id is fixed at the change).
//! The pattern to copy for a plugin of one's own.

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
use plexhub_sdk::{Client, HubRequest, Installations, OutgoingEvent, RunningPlugin, ServeOptions};
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

/// Where a tenant's data lives in the hub's shared data (namespace, key).
pub const STATE_ENTRY: (&str, &str) = ("crm.state", "book");

/// Attempts of a change that keeps meeting another replica's write.
const WRITE_ATTEMPTS: usize = 5;

/// How often unpublished events are offered to the hub again.
const OUTBOX_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// What the CRM keeps in the hub's shared data for one tenant: its records, and the events of
/// changes the hub has not accepted yet. Both are written in one compare-and-set, so a change
/// is stored with its event or not at all (a transactional outbox); the event is then published
/// until the hub accepts it, under an id fixed at the change, so a retry is never a second event.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Stored {
    book: Book,
    #[serde(default)]
    outbox: Vec<OutgoingEvent>,
}

/// A tenant's data as this process last read or wrote it, and its revision in shared data
/// (`None`: never written, the seed).
#[derive(Debug)]
struct Tenant {
    slug: String,
    stored: Stored,
    revision: Option<i64>,
}

/// Every tenant's data: read from the hub's shared data on the tenant's first request (the
/// seed when it has none), kept in memory for reads, and written back on every change before
/// the change is answered. A restart loses nothing.
#[derive(Debug, Default)]
pub struct Books {
    by_tenant: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Tenant>>>>>,
}

/// The hub could not store or load a tenant's data: 503, nothing changed.
fn unavailable(error: &plexhub_sdk::Error) -> Reply {
    Reply::Unavailable(format!("the hub cannot store CRM data right now: {error}"))
}

impl Books {
    fn slot(&self, tenant_id: &str) -> Arc<tokio::sync::Mutex<Option<Tenant>>> {
        let mut map = self
            .by_tenant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(tenant_id.to_owned()).or_default().clone()
    }

    /// The tenant's data as stored in the hub (the seed when none).
    async fn load(client: &Client, slug: &str) -> Result<Tenant, plexhub_sdk::Error> {
        let (namespace, key) = STATE_ENTRY;
        Ok(match client.data_get(namespace, key).await? {
            Some(entry) => Tenant {
                slug: slug.to_owned(),
                stored: serde_json::from_value(entry.value).map_err(|error| {
                    plexhub_sdk::Error::Unexpected(format!("stored CRM data: {error}"))
                })?,
                revision: Some(entry.revision),
            },
            None => Tenant {
                slug: slug.to_owned(),
                stored: Stored {
                    book: Book::seeded(),
                    outbox: Vec::new(),
                },
                revision: None,
            },
        })
    }

    /// Runs `work` on the tenant's book.
    async fn read<R>(
        &self,
        crm: &Crm,
        hub: &HubRequest,
        work: impl FnOnce(&Book) -> R,
    ) -> Result<R, Reply> {
        let client = crm.client(hub)?;
        let slot = self.slot(&hub.tenant_id);
        let mut tenant = slot.lock().await;
        let loaded = match tenant.take() {
            Some(loaded) => loaded,
            None => Self::load(&client, &hub.tenant_slug)
                .await
                .map_err(|e| unavailable(&e))?,
        };
        let answer = work(&loaded.stored.book);
        *tenant = Some(loaded);
        Ok(answer)
    }

    /// Applies `change` (which also names the event it causes) and stores the result with the
    /// event in its outbox; answers only once the hub stored both. On another replica's write,
    /// reads again and reapplies. Then offers the outbox to the hub.
    async fn write<R>(
        &self,
        crm: &Crm,
        hub: &HubRequest,
        mut change: impl FnMut(&mut Book) -> Result<(R, OutgoingEvent), Refusal>,
    ) -> Result<R, Reply> {
        let client = crm.client(hub)?;
        let slot = self.slot(&hub.tenant_id);
        let mut guard = slot.lock().await;
        let (namespace, key) = STATE_ENTRY;
        for _ in 0..WRITE_ATTEMPTS {
            let tenant = match guard.take() {
                Some(tenant) => tenant,
                None => Self::load(&client, &hub.tenant_slug)
                    .await
                    .map_err(|e| unavailable(&e))?,
            };
            let mut next = tenant.stored.clone();
            let outcome = change(&mut next.book);
            let (answer, mut event) = match outcome {
                Ok(done) => done,
                Err(refusal) => {
                    *guard = Some(tenant);
                    return Err(refusal.into());
                }
            };
            event.id = Some(uuid::Uuid::new_v4().to_string());
            next.outbox.push(event);
            match client
                .data_replace(namespace, key, &next, tenant.revision)
                .await
            {
                Ok(Some(revision)) => {
                    *guard = Some(Tenant {
                        slug: tenant.slug,
                        stored: next,
                        revision: Some(revision),
                    });
                    drop(guard);
                    self.publish(&client, &slot).await;
                    return Ok(answer);
                }
                // Another replica wrote first: read again (the guard stays empty) and redo.
                Ok(None) => {}
                Err(error) => {
                    *guard = Some(tenant);
                    return Err(unavailable(&error));
                }
            }
        }
        Err(unavailable(&plexhub_sdk::Error::Contended(format!(
            "{namespace}/{key}"
        ))))
    }

    /// Publishes the tenant's outbox; what the hub accepted leaves it. A failure keeps the
    /// events for the next attempt (the retry task's, or the next change's).
    async fn publish(&self, client: &Client, slot: &tokio::sync::Mutex<Option<Tenant>>) {
        let pending = match slot.lock().await.as_ref() {
            Some(tenant) if !tenant.stored.outbox.is_empty() => tenant.stored.outbox.clone(),
            _ => return,
        };
        if let Err(error) = client.publish_all(&pending).await {
            eprintln!(
                "plexhub-crm: {} event(s) wait for the hub: {error}",
                pending.len()
            );
            return;
        }
        let mut guard = slot.lock().await;
        let Some(tenant) = guard.as_mut() else {
            return;
        };
        let mut next = tenant.stored.clone();
        next.outbox.retain(|event| !pending.contains(event));
        let (namespace, key) = STATE_ENTRY;
        match client
            .data_replace(namespace, key, &next, tenant.revision)
            .await
        {
            Ok(Some(revision)) => {
                tenant.stored = next;
                tenant.revision = Some(revision);
            }
            // Someone else wrote: read again later; the events stay and a second publish of the
            // same ids is a no-op at the hub.
            Ok(None) => *guard = None,
            Err(error) => eprintln!("plexhub-crm: cannot clear the outbox: {error}"),
        }
    }

    /// Offers every loaded tenant's outbox to the hub again.
    async fn publish_pending(&self, crm: &Crm) {
        for slot in self.slots() {
            let slug = match slot.lock().await.as_ref() {
                Some(tenant) if !tenant.stored.outbox.is_empty() => tenant.slug.clone(),
                _ => continue,
            };
            if let Some(client) = crm.installations.tenant(&slug).cloned() {
                self.publish(&client, &slot).await;
            }
        }
    }

    fn slots(&self) -> Vec<Arc<tokio::sync::Mutex<Option<Tenant>>>> {
        let map = self
            .by_tenant
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.values().cloned().collect()
    }

    /// Tenants, contacts and deals loaded here (a tenant busy at this moment is skipped).
    fn totals(&self) -> (usize, usize, usize) {
        let mut totals = (0, 0, 0);
        for slot in self.slots() {
            if let Ok(tenant) = slot.try_lock()
                && let Some(tenant) = tenant.as_ref()
            {
                totals.0 += 1;
                totals.1 += tenant.stored.book.contact_count();
                totals.2 += tenant.stored.book.deal_count();
            }
        }
        totals
    }
}

/// The plugin's state: every tenant's data, and the credentials to publish its events.
struct Crm {
    books: Books,
    installations: Installations,
}

impl Crm {
    /// The hub client of the request's tenant.
    fn client(&self, hub: &HubRequest) -> Result<Client, Reply> {
        self.installations
            .tenant(&hub.tenant_slug)
            .cloned()
            .ok_or_else(|| {
                Reply::Unavailable(format!("no credential for tenant {}", hub.tenant_slug))
            })
    }
}

/// The event of a change: `plugin.crm.<entity>.<action>`, keyed by the record's id (so a
/// record's events arrive in order).
fn event<T: serde::Serialize>(event_type: &str, id: &str, record: &T) -> OutgoingEvent {
    OutgoingEvent {
        event_type: event_type.to_owned(),
        data: serde_json::to_value(record).unwrap_or_default(),
        partition_key: Some(id.to_owned()),
        ..OutgoingEvent::default()
    }
}

type Shared = State<Arc<Crm>>;

/// An answer in the original's envelope.
enum Reply {
    Data(StatusCode, Value),
    List(Page),
    Refused(Refusal),
    Message(&'static str),
    /// The hub could not store or read the data: 503.
    Unavailable(String),
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
            Self::Unavailable(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"success": false, "error": message})),
            )
                .into_response(),
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
    let page = crm
        .books
        .read(&crm, &hub, |book| book.contacts(&query, |_| true))
        .await?;
    Ok(Reply::List(page))
}

async fn contacts_of_company(
    hub: HubRequest,
    State(crm): Shared,
    Path(company): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Reply, Reply> {
    let query = list_query(query)?;
    let wanted = company.to_lowercase();
    let page = crm
        .books
        .read(&crm, &hub, |book| {
            book.contacts(&query, |contact| {
                contact
                    .company
                    .as_deref()
                    .is_some_and(|c| c.to_lowercase() == wanted)
            })
        })
        .await?;
    Ok(Reply::List(page))
}

async fn contacts_with_tag(
    hub: HubRequest,
    State(crm): Shared,
    Path(tag): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Reply, Reply> {
    let query = list_query(query)?;
    let page = crm
        .books
        .read(&crm, &hub, |book| {
            book.contacts(&query, |contact| contact.tags.contains(&tag))
        })
        .await?;
    Ok(Reply::List(page))
}

async fn get_contact(
    hub: HubRequest,
    State(crm): Shared,
    Path(id): Path<String>,
) -> Result<Reply, Reply> {
    crm.books
        .read(&crm, &hub, |book| {
            Ok(data(StatusCode::OK, book.contact(&id)?))
        })
        .await?
}

async fn create_contact(hub: HubRequest, State(crm): Shared, body: Bytes) -> Result<Reply, Reply> {
    let body = object(&body)?;
    let contact = crm
        .books
        .write(&crm, &hub, |book| {
            let contact = book.create_contact(&body, &now())?;
            let event = event("plugin.crm.contact.created", &contact.id, &contact);
            Ok((contact, event))
        })
        .await?;
    Ok(data(StatusCode::CREATED, &contact))
}

async fn update_contact(
    hub: HubRequest,
    State(crm): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Reply, Reply> {
    let body = object(&body)?;
    let contact = crm
        .books
        .write(&crm, &hub, |book| {
            let contact = book.update_contact(&id, &body, &now())?;
            let event = event("plugin.crm.contact.updated", &id, &contact);
            Ok((contact, event))
        })
        .await?;
    Ok(data(StatusCode::OK, &contact))
}

async fn delete_contact(
    hub: HubRequest,
    State(crm): Shared,
    Path(id): Path<String>,
) -> Result<Reply, Reply> {
    crm.books
        .write(&crm, &hub, |book| {
            book.delete_contact(&id)?;
            let event = event("plugin.crm.contact.deleted", &id, &json!({ "id": id }));
            Ok(((), event))
        })
        .await?;
    Ok(Reply::Message("Contact deleted"))
}

async fn list_deals(
    hub: HubRequest,
    State(crm): Shared,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Reply, Reply> {
    let query = list_query(query)?;
    let page = crm
        .books
        .read(&crm, &hub, |book| book.deals(&query, |_| true))
        .await?;
    Ok(Reply::List(page))
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
    let page = crm
        .books
        .read(&crm, &hub, |book| {
            book.deals(&query, |deal| deal.stage == stage)
        })
        .await?;
    Ok(Reply::List(page))
}

async fn deals_of_contact(
    hub: HubRequest,
    State(crm): Shared,
    Path(contact): Path<String>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Reply, Reply> {
    let query = list_query(query)?;
    let page = crm
        .books
        .read(&crm, &hub, |book| {
            book.deals(&query, |deal| deal.contact_id.as_deref() == Some(&contact))
        })
        .await?;
    Ok(Reply::List(page))
}

async fn get_deal(
    hub: HubRequest,
    State(crm): Shared,
    Path(id): Path<String>,
) -> Result<Reply, Reply> {
    crm.books
        .read(&crm, &hub, |book| {
            Ok(Reply::Data(StatusCode::OK, book.enriched(book.deal(&id)?)))
        })
        .await?
}

async fn create_deal(hub: HubRequest, State(crm): Shared, body: Bytes) -> Result<Reply, Reply> {
    let body = object(&body)?;
    let deal = crm
        .books
        .write(&crm, &hub, |book| {
            let deal = book.create_deal(&body, &now())?;
            let enriched = book.enriched(&deal);
            let event = event("plugin.crm.deal.created", &deal.id, &enriched);
            Ok((enriched, event))
        })
        .await?;
    Ok(Reply::Data(StatusCode::CREATED, deal))
}

async fn update_deal(
    hub: HubRequest,
    State(crm): Shared,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Reply, Reply> {
    let body = object(&body)?;
    let deal = crm
        .books
        .write(&crm, &hub, |book| {
            let deal = book.update_deal(&id, &body, &now())?;
            let enriched = book.enriched(&deal);
            let event = event("plugin.crm.deal.updated", &id, &enriched);
            Ok((enriched, event))
        })
        .await?;
    Ok(Reply::Data(StatusCode::OK, deal))
}

async fn delete_deal(
    hub: HubRequest,
    State(crm): Shared,
    Path(id): Path<String>,
) -> Result<Reply, Reply> {
    crm.books
        .write(&crm, &hub, |book| {
            book.delete_deal(&id)?;
            let event = event("plugin.crm.deal.deleted", &id, &json!({ "id": id }));
            Ok(((), event))
        })
        .await?;
    Ok(Reply::Message("Deal deleted"))
}

async fn pipeline_summary(hub: HubRequest, State(crm): Shared) -> Result<Reply, Reply> {
    let summary = crm.books.read(&crm, &hub, Book::pipeline_summary).await?;
    Ok(Reply::Data(StatusCode::OK, summary))
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
    let crm = Arc::new(Crm {
        books: Books::default(),
        installations,
    });
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::spawn(retry_outboxes(Arc::downgrade(&crm)));
    }
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
        .with_state(crm)
}

/// Offers unpublished events to the hub every [`OUTBOX_RETRY`] while the plugin's router lives.
async fn retry_outboxes(crm: std::sync::Weak<Crm>) {
    loop {
        tokio::time::sleep(OUTBOX_RETRY).await;
        let Some(crm) = crm.upgrade() else {
            return;
        };
        crm.books.publish_pending(&crm).await;
    }
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
