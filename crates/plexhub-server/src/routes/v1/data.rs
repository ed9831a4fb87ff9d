//! `/api/v1/data`: shared data with revisions, compare-and-set, listing and batch reads;
//! `/api/v1/data-transactions` and `/api/v1/data-watch` live beside it so that no key name can
//! collide with them.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::response::sse::{Event, Sse};
use futures::Stream;
use plexhub_core::data::{DataKey, Namespace, Precondition};
use plexhub_core::ids::PluginId;
use plexhub_core::tenant::TenantId;
use plexhub_store::feed::{Change, FeedEvent};
use plexhub_store::{DataDelete, DataEventsSince, DataListing, DataOp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::data::{
    self, EntryView, build_write, data_error, names, outcome_error, parse_revision, with_etag,
    writer,
};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::watch::{self, Batch, ChangeLog};

/// Most operations in one transaction.
const MAX_TRANSACTION_OPS: usize = 64;
/// Most keys in one batch read.
const MAX_BATCH_KEYS: usize = 100;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_entry, get_entry, delete_entry, batch_get))
        .routes(routes!(list_entries))
        .routes(routes!(transaction))
        .routes(routes!(watch_data))
}

/// Body of a write.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PutEntry {
    /// Any JSON except null.
    #[serde(default)]
    value: Value,
    /// Seconds until the entry disappears (at most one year); without it, no expiry.
    ttl: Option<Value>,
    /// Only for the admin: the plugin that owns the entry.
    owner_id: Option<String>,
}

/// Result of a write.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    namespace: String,
    key: String,
    revision: i64,
}

fn precondition(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match (text("if-match"), text("if-none-match")) {
        (Some(_), Some(_)) => Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "send If-Match or If-None-Match, not both",
        )),
        (Some(revision), None) => Ok(Precondition::Revision(parse_revision(revision)?)),
        (None, Some("*")) => Ok(Precondition::Absent),
        (None, Some(other)) => Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("If-None-Match supports only \"*\", got {other:?}"),
        )),
        (None, None) => Ok(Precondition::None),
    }
}

/// Write a value; `If-Match: <revision>` makes it a compare-and-set, `If-None-Match: *` a
/// create.
#[utoipa::path(put, path = "/api/v1/data/{namespace}/{key}", tag = "shared data", request_body = PutEntry,
    responses((status = 200, body = Written), (status = 400, body = ErrorEnvelope),
        (status = 403, description = "OWNER_MISMATCH, NOT_OWNER", body = ErrorEnvelope),
        (status = 412, description = "PRECONDITION_FAILED, details.currentRevision", body = ErrorEnvelope),
        (status = 413, description = "VALUE_TOO_LARGE", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn put_entry(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PutEntry>,
) -> Result<Response, ApiError> {
    let names = names(&namespace, &key)?;
    let owner = writer(&scope, body.owner_id.as_deref())?;
    let condition = precondition(&headers)?;
    let write = build_write(
        &state,
        names,
        body.value,
        body.ttl.as_ref(),
        owner,
        condition,
    )?;
    let revision = data::put(&state, &scope, write.clone()).await?;
    Ok(with_etag(
        revision,
        Json(Written {
            namespace: write.namespace.to_string(),
            key: write.key.to_string(),
            revision,
        }),
    ))
}

/// Read a value with its owner, revision and expiry (`ETag` = revision).
#[utoipa::path(get, path = "/api/v1/data/{namespace}/{key}", tag = "shared data",
    responses((status = 200, body = EntryView), (status = 404, description = "DATA_NOT_FOUND", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn get_entry(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
) -> Result<Response, ApiError> {
    let (namespace, key) = names(&namespace, &key)?;
    data::read_answer(&state, &scope, &namespace, &key).await
}

/// Delete a value (owner or admin); `If-Match` makes it conditional.
#[utoipa::path(delete, path = "/api/v1/data/{namespace}/{key}", tag = "shared data",
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 412, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn delete_entry(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath((namespace, key)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let if_revision = match precondition(&headers)? {
        Precondition::Revision(revision) => Some(revision),
        Precondition::None => None,
        Precondition::Absent => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "If-None-Match makes no sense on a delete",
            ));
        }
    };
    data::delete(&state, &scope, names(&namespace, &key)?, if_revision).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of a batch read.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchGet {
    /// Up to 100 keys.
    keys: Vec<String>,
}

/// Result of a batch read.
#[derive(Serialize, ToSchema)]
pub struct BatchFound {
    entries: Vec<EntryView>,
    missing: Vec<String>,
}

/// Read several keys of a namespace at once (up to 100).
///
/// Routed as a POST on any key path (a POST on another key is 405, so `batch-get` stays usable as
/// a key name) and documented at `/api/v1/data/{namespace}/batch-get` (see
/// `routes::DOCUMENTED_ELSEWHERE`).
#[utoipa::path(post, path = "/api/v1/data/{namespace}/{key}", tag = "shared data", request_body = BatchGet,
    responses((status = 200, body = BatchFound), (status = 400, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn batch_get(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath((namespace, operation)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<BatchGet>,
) -> Result<Json<BatchFound>, ApiError> {
    if operation != "batch-get" {
        return Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            "use PUT to write a key; POST is only for /batch-get",
        ));
    }
    if body.keys.len() > MAX_BATCH_KEYS {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            format!("at most {MAX_BATCH_KEYS} keys per batch"),
        ));
    }
    let namespace = Namespace::parse(&namespace).map_err(data_error)?;
    let mut found = BatchFound {
        entries: Vec::new(),
        missing: Vec::new(),
    };
    for key in &body.keys {
        let key = DataKey::parse(key).map_err(data_error)?;
        match data::read(&state, &scope, &namespace, &key).await {
            Ok(entry) => found.entries.push(EntryView::new(&entry, true)),
            Err(error) if error.code() == ErrorCode::DataNotFound => {
                found.missing.push(key.to_string());
            }
            Err(error) => return Err(error),
        }
    }
    Ok(Json(found))
}

/// Listing parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ListParams {
    /// Only keys starting with this.
    prefix: Option<String>,
    /// Page size, 1-1000 (default 100).
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// Include values (default false).
    values: Option<bool>,
    /// Only entries of this owner.
    owner_id: Option<String>,
}

/// One page of a namespace.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryPage {
    namespace: String,
    entries: Vec<EntryView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// List the live entries of a namespace by key, a page at a time.
#[utoipa::path(get, path = "/api/v1/data/{namespace}", tag = "shared data", params(ListParams),
    responses((status = 200, body = EntryPage), (status = 400, body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn list_entries(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath(namespace): ApiPath<String>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<EntryPage>, ApiError> {
    let namespace = Namespace::parse(&namespace).map_err(data_error)?;
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "limit must be between 1 and 1000",
        ));
    }
    let owner = params
        .owner_id
        .as_deref()
        .map(PluginId::parse)
        .transpose()
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("ownerId: {e}")))?;
    let listing = DataListing {
        prefix: params.prefix.unwrap_or_default(),
        after: params.cursor.unwrap_or_default(),
        owner,
        limit: limit + 1,
    };
    let now = state.clock.now_ms();
    let mut entries = state
        .store
        .list_data(scope.tenant.id, &namespace, &listing, now)
        .await?;
    let next_cursor = (entries.len() > limit as usize).then(|| {
        entries.truncate(limit as usize);
        entries
            .last()
            .map(|e| e.key.to_string())
            .unwrap_or_default()
    });
    let with_values = params.values.unwrap_or(false);
    Ok(Json(EntryPage {
        namespace: namespace.to_string(),
        entries: entries
            .iter()
            .map(|e| EntryView::new(e, with_values))
            .collect(),
        next_cursor,
    }))
}

/// One operation of a transaction.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OpInput {
    /// `set`, `delete` or `check`.
    op: String,
    namespace: String,
    key: String,
    /// For `set`.
    value: Option<Value>,
    /// For `set`: seconds.
    ttl: Option<Value>,
    /// Required current revision (`check` without it requires existence).
    if_revision: Option<i64>,
    /// Only for the admin on `set`: the owner.
    owner_id: Option<String>,
}

/// Body of a transaction.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionInput {
    /// 1 to 64 operations, applied in order, all or none.
    ops: Vec<OpInput>,
}

/// Result of an applied transaction: the revision each operation produced or checked.
#[derive(Serialize, ToSchema)]
pub struct Applied {
    revisions: Vec<i64>,
}

fn to_op(
    state: &AppState,
    scope: &TenantScope,
    index: usize,
    input: OpInput,
) -> Result<DataOp, ApiError> {
    let at = |error: ApiError| {
        ApiError::new(
            error.code(),
            format!("ops.{index}: {}", error_message(&error)),
        )
    };
    let names = names(&input.namespace, &input.key).map_err(at)?;
    match input.op.as_str() {
        "set" => {
            let owner = writer(scope, input.owner_id.as_deref()).map_err(at)?;
            let precondition = input
                .if_revision
                .map_or(Precondition::None, Precondition::Revision);
            let value = input.value.unwrap_or(Value::Null);
            build_write(state, names, value, input.ttl.as_ref(), owner, precondition)
                .map(DataOp::Set)
                .map_err(at)
        }
        "delete" => Ok(DataOp::Delete(DataDelete {
            namespace: names.0,
            key: names.1,
            actor: scope.calling_plugin().cloned(),
            if_revision: input.if_revision,
        })),
        "check" => Ok(DataOp::Check {
            namespace: names.0,
            key: names.1,
            if_revision: input.if_revision,
        }),
        other => Err(ApiError::new(
            ErrorCode::InvalidBody,
            format!("ops.{index}.op {other:?}: expected set, delete or check"),
        )),
    }
}

fn error_message(error: &ApiError) -> String {
    error.message().to_owned()
}

/// Apply up to 64 operations atomically: all or none.
#[utoipa::path(post, path = "/api/v1/data-transactions", tag = "shared data", request_body = TransactionInput,
    responses((status = 200, body = Applied), (status = 400, body = ErrorEnvelope),
        (status = 409, description = "TRANSACTION_FAILED: details name the failing operation", body = ErrorEnvelope)),
    security(("bearer" = [])))]
async fn transaction(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<TransactionInput>,
) -> Result<Json<Applied>, ApiError> {
    if body.ops.is_empty() || body.ops.len() > MAX_TRANSACTION_OPS {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            format!("a transaction has 1 to {MAX_TRANSACTION_OPS} operations"),
        ));
    }
    let ops = body
        .ops
        .into_iter()
        .enumerate()
        .map(|(index, input)| to_op(&state, &scope, index, input))
        .collect::<Result<Vec<_>, _>>()?;
    let now = state.clock.now_ms();
    let result = state
        .store
        .data_transaction(scope.tenant.id, &ops, now)
        .await;
    let result = match result {
        Err(plexhub_store::StoreError::MissingReference) => {
            return Err(ApiError::new(
                ErrorCode::NotInstalled,
                "an owner is not installed for this tenant",
            ));
        }
        other => other?,
    };
    match result {
        Ok(revisions) => {
            for op in &ops {
                let (namespace, key) = match op {
                    DataOp::Set(write) => (&write.namespace, &write.key),
                    DataOp::Delete(delete) => (&delete.namespace, &delete.key),
                    DataOp::Check { .. } => continue,
                };
                state.changed(data::change(&scope, namespace, key)).await;
            }
            Ok(Json(Applied { revisions }))
        }
        Err((index, outcome)) => {
            let (namespace, key) = match &ops[index] {
                DataOp::Set(write) => (&write.namespace, &write.key),
                DataOp::Delete(delete) => (&delete.namespace, &delete.key),
                DataOp::Check { namespace, key, .. } => (namespace, key),
            };
            let cause = outcome_error(outcome, namespace, key);
            Err(ApiError::new(
                ErrorCode::TransactionFailed,
                format!(
                    "operation {index} failed, nothing was applied: {}",
                    error_message(&cause)
                ),
            )
            .with_details(json!({ "index": index, "code": cause.code() })))
        }
    }
}

/// Watch filter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WatchFilter {
    /// Only keys starting with this.
    prefix: Option<String>,
}

/// The tenant's shared-data change log, filtered to one namespace and key prefix.
struct DataLog {
    state: AppState,
    tenant: TenantId,
    namespace: Namespace,
    prefix: String,
}

impl ChangeLog for DataLog {
    fn concerns(&self, event: &FeedEvent) -> bool {
        match event {
            FeedEvent::Change(Change::Data {
                tenant, namespace, ..
            }) => *tenant == self.tenant && *namespace == self.namespace,
            FeedEvent::Change(Change::Tenant { tenant }) => *tenant == self.tenant,
            FeedEvent::Change(_) => false,
            FeedEvent::Connected | FeedEvent::Disconnected => true,
        }
    }

    async fn read_after(&self, after: i64) -> Batch {
        match self
            .state
            .store
            .data_events_since(self.tenant, after, watch::BATCH)
            .await
        {
            Ok(DataEventsSince::Events(changes)) => Batch::Events {
                last: changes.last().map_or(after, |c| c.seq),
                more: changes.len() == watch::BATCH as usize,
                events: changes
                    .iter()
                    .filter(|c| {
                        c.namespace == self.namespace && c.key.as_str().starts_with(&self.prefix)
                    })
                    .map(|c| {
                        let data = json!({
                            "type": c.kind,
                            "namespace": c.namespace,
                            "key": c.key,
                            "revision": c.revision,
                        });
                        Event::default()
                            .id(c.seq.to_string())
                            .event(c.kind)
                            .data(data.to_string())
                    })
                    .collect(),
            },
            Ok(DataEventsSince::Reset { current }) => Batch::Reset { current },
            Err(error) => {
                tracing::warn!(%error, "data watch cannot read the change log; retrying");
                Batch::Failed
            }
        }
    }
}

/// Server-Sent Events of `set`, `deleted` and `expired` in a namespace (optionally under a key
/// prefix), each with the key and its revision; resumable with `Last-Event-ID`.
#[utoipa::path(get, path = "/api/v1/data-watch/{namespace}", tag = "shared data", params(WatchFilter),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream")),
    security(("bearer" = [])))]
async fn watch_data(
    scope: TenantScope,
    State(state): State<AppState>,
    ApiPath(namespace): ApiPath<String>,
    ApiQuery(filter): ApiQuery<WatchFilter>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let log = DataLog {
        state: state.clone(),
        tenant: scope.tenant.id,
        namespace: Namespace::parse(&namespace).map_err(data_error)?,
        prefix: filter.prefix.unwrap_or_default(),
    };
    Ok(watch::follow(state, log, watch::resume_id(&headers)).await)
}
