//! Shared-data operations shared by the seed-compatible and native routes: who may write, size
//! and name rules, the cached read path (which checks expiry itself on every read), and how
//! store outcomes become errors.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use plexhub_core::data::{
    DataError, DataKey, Entry, Namespace, Precondition, check_value, parse_ttl,
};
use plexhub_core::ids::PluginId;
use plexhub_store::feed::Change;
use plexhub_store::{DataDelete, DataOutcome, DataWrite, StoreError};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::TenantScope;
use crate::cache::DataEntry;
use crate::error::{ApiError, ErrorCode};
use crate::state::{AppState, rfc3339};
use crate::writer::WriteError;

/// Maps a rule violation to its error.
pub fn data_error(error: DataError) -> ApiError {
    let code = match error {
        DataError::InvalidName { .. } => ErrorCode::InvalidName,
        DataError::NullValue | DataError::InvalidTtl(_) => ErrorCode::InvalidBody,
    };
    ApiError::new(code, error.to_string())
}

/// Parses a namespace and key from a path or body.
pub fn names(namespace: &str, key: &str) -> Result<(Namespace, DataKey), ApiError> {
    Ok((
        Namespace::parse(namespace).map_err(data_error)?,
        DataKey::parse(key).map_err(data_error)?,
    ))
}

/// The plugin a write is made as: the caller itself (naming another owner is 403
/// `OWNER_MISMATCH`), or for the admin the named `ownerId` (required).
pub fn writer(scope: &TenantScope, owner_id: Option<&str>) -> Result<PluginId, ApiError> {
    match (scope.calling_plugin(), owner_id) {
        (Some(caller), Some(named)) if named != caller.as_str() => Err(ApiError::new(
            ErrorCode::OwnerMismatch,
            format!("{caller} cannot write as {named}: the owner is always the calling plugin"),
        )),
        (Some(caller), _) => Ok(caller.clone()),
        (None, Some(named)) => PluginId::parse(named)
            .map_err(|e| ApiError::new(ErrorCode::InvalidBody, format!("ownerId: {e}"))),
        (None, None) => Err(ApiError::new(
            ErrorCode::InvalidBody,
            "ownerId is required when the admin writes shared data",
        )),
    }
}

/// Builds a checked write.
pub fn build_write(
    state: &AppState,
    (namespace, key): (Namespace, DataKey),
    value: Value,
    ttl: Option<&Value>,
    owner: PluginId,
    precondition: Precondition,
) -> Result<DataWrite, ApiError> {
    check_value(&value).map_err(data_error)?;
    let size = value.to_string().len();
    if size > state.max_value_bytes {
        return Err(ApiError::new(
            ErrorCode::ValueTooLarge,
            format!(
                "the value is {size} bytes; the limit is {}",
                state.max_value_bytes
            ),
        ));
    }
    let ttl_ms = ttl.map(parse_ttl).transpose().map_err(data_error)?;
    Ok(DataWrite {
        namespace,
        key,
        value,
        owner,
        ttl_ms,
        precondition,
    })
}

/// Maps a store outcome that is not success to its error.
pub fn outcome_error(outcome: DataOutcome, namespace: &Namespace, key: &DataKey) -> ApiError {
    match outcome {
        DataOutcome::Done { .. } => ApiError::internal(&"a successful outcome is not an error"),
        DataOutcome::Missing => not_found(namespace, key),
        DataOutcome::NotOwner(owner) => ApiError::new(
            ErrorCode::NotOwner,
            format!("{namespace}/{key} belongs to {owner}; only its owner may change it"),
        )
        .with_details(json!({ "ownerId": owner })),
        DataOutcome::PreconditionFailed { current } => ApiError::new(
            ErrorCode::PreconditionFailed,
            match current {
                Some(revision) => format!("{namespace}/{key} is at revision {revision}"),
                None => format!("{namespace}/{key} does not exist"),
            },
        )
        .with_details(json!({ "currentRevision": current })),
    }
}

/// 404 `DATA_NOT_FOUND` in the seed's words.
pub fn not_found(namespace: &Namespace, key: &DataKey) -> ApiError {
    ApiError::new(ErrorCode::DataNotFound, "Data not found")
        .with_details(json!({ "namespace": namespace, "key": key }))
}

fn missing_owner(error: StoreError, owner: &PluginId) -> ApiError {
    match error {
        StoreError::MissingReference => ApiError::new(
            ErrorCode::NotInstalled,
            format!("{owner} is not installed for this tenant"),
        ),
        other => other.into(),
    }
}

/// Writes (through the group-commit writer) and announces; returns the new revision.
pub async fn put(state: &AppState, scope: &TenantScope, write: DataWrite) -> Result<i64, ApiError> {
    let (namespace, key, owner) = (
        write.namespace.clone(),
        write.key.clone(),
        write.owner.clone(),
    );
    let outcome = match state.writer.write(scope.tenant.id, write).await {
        Ok(outcome) => outcome,
        Err(WriteError::Store(error)) => return Err(missing_owner(error, &owner)),
        Err(WriteError::Stopped) => {
            return Err(ApiError::new(
                ErrorCode::ServiceUnavailable,
                "the hub is shutting down; retry on another instance",
            ));
        }
    };
    match outcome {
        DataOutcome::Done { revision } => {
            state.changed(change(scope, &namespace, &key)).await;
            Ok(revision)
        }
        other => Err(outcome_error(other, &namespace, &key)),
    }
}

/// Deletes and announces.
pub async fn delete(
    state: &AppState,
    scope: &TenantScope,
    (namespace, key): (Namespace, DataKey),
    if_revision: Option<i64>,
) -> Result<(), ApiError> {
    let delete = DataDelete {
        namespace,
        key,
        actor: scope.calling_plugin().cloned(),
        if_revision,
    };
    let now = state.clock.now_ms();
    match state
        .store
        .delete_data(scope.tenant.id, &delete, now)
        .await?
    {
        DataOutcome::Done { .. } => {
            state
                .changed(change(scope, &delete.namespace, &delete.key))
                .await;
            Ok(())
        }
        other => Err(outcome_error(other, &delete.namespace, &delete.key)),
    }
}

/// The change that invalidates one entry everywhere.
pub fn change(scope: &TenantScope, namespace: &Namespace, key: &DataKey) -> Change {
    Change::Data {
        tenant: scope.tenant.id,
        namespace: namespace.clone(),
        key: key.clone(),
    }
}

async fn cached(
    state: &AppState,
    scope: &TenantScope,
    namespace: &Namespace,
    key: &DataKey,
) -> Result<Arc<DataEntry>, ApiError> {
    let tenant = scope.tenant.id;
    Ok(state
        .cache
        .data((tenant, namespace.clone(), key.clone()), || async move {
            let now = state.clock.now_ms();
            state.store.get_data(tenant, namespace, key, now).await
        })
        .await?)
}

/// The live entry, through the cache; an entry past its expiry is never returned, whatever
/// the cache holds.
pub async fn read(
    state: &AppState,
    scope: &TenantScope,
    namespace: &Namespace,
    key: &DataKey,
) -> Result<Entry, ApiError> {
    let entry = cached(state, scope, namespace, key).await?;
    match &entry.found {
        Some(found) if found.is_live(state.clock.now_ms()) => Ok(found.clone()),
        _ => Err(not_found(namespace, key)),
    }
}

/// The live entry as a JSON answer with its `ETag`, rendered once per cached entry.
pub async fn read_answer(
    state: &AppState,
    scope: &TenantScope,
    namespace: &Namespace,
    key: &DataKey,
) -> Result<Response, ApiError> {
    let entry = cached(state, scope, namespace, key).await?;
    match &entry.found {
        Some(found) if found.is_live(state.clock.now_ms()) => {
            let body = entry.body(|| Bytes::from(json!(EntryView::new(found, true)).to_string()));
            Ok(with_etag(
                found.revision,
                ([(header::CONTENT_TYPE, "application/json")], body),
            ))
        }
        _ => Err(not_found(namespace, key)),
    }
}

/// An entry on the wire.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntryView {
    namespace: String,
    key: String,
    /// Any JSON except null (absent in key-only listings).
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
    owner_id: String,
    revision: i64,
    /// RFC 3339, or null when the entry never expires.
    expires_at: Option<String>,
    updated_at: String,
}

impl EntryView {
    /// The view of an entry, with or without its value.
    pub fn new(entry: &Entry, with_value: bool) -> Self {
        Self {
            namespace: entry.namespace.to_string(),
            key: entry.key.to_string(),
            value: with_value.then(|| entry.value.clone()),
            owner_id: entry.owner.to_string(),
            revision: entry.revision,
            expires_at: entry.expires_at_ms.map(rfc3339),
            updated_at: rfc3339(entry.updated_at_ms),
        }
    }
}

/// Answers with an `ETag` of the revision (`"<revision>"`).
pub fn with_etag(revision: i64, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    if let Ok(value) = HeaderValue::from_str(&format!("\"{revision}\"")) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Parses an `If-Match` revision (quoted or bare).
pub fn parse_revision(text: &str) -> Result<i64, ApiError> {
    text.trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                format!("invalid revision {text:?}"),
            )
        })
}
