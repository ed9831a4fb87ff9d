//! The one place where failures become HTTP responses: a code table and two renderings.
//!
//! `/api/v1` renders `{"error":{"code","message","details?"}}`; the seed-compatible routes render
//! the original's flat `{"error":"<message>","code":…, …details}` (see [`render_flat`]).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use plexhub_store::StoreError;
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::request_id;

/// Stable error codes. The HTTP status of each lives in [`ErrorCode::status`] and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// No credential, or one the hub does not know.
    Unauthenticated,
    /// The credential may not use this route.
    Forbidden,
    /// The caller's tenant is suspended.
    TenantSuspended,
    /// `X-Tenant-Slug` names another tenant than the credential's.
    TenantMismatch,
    /// A tenant-scoped route was called with an admin token and no `X-Tenant-Slug`.
    TenantRequired,
    /// No tenant with that slug.
    TenantNotFound,
    /// A tenant with that slug exists.
    TenantExists,
    /// The slug does not match `[a-z0-9][a-z0-9-]{1,62}`.
    InvalidSlug,
    /// The request body is not valid JSON.
    MalformedJson,
    /// The body is JSON but does not fit the schema (types, missing or unknown fields).
    InvalidBody,
    /// A query or path parameter is invalid.
    InvalidParameter,
    /// The body is not `application/json`.
    UnsupportedMediaType,
    /// The body exceeds the configured limit.
    PayloadTooLarge,
    /// No such route.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The manifest breaks the schema; every problem is in `details.errors`.
    InvalidManifest,
    /// The same plugin version was published with different content.
    VersionExists,
    /// No such plugin in the catalog.
    PluginNotFound,
    /// No catalog version matches.
    VersionNotFound,
    /// The plugin is already installed for the tenant.
    AlreadyInstalled,
    /// The plugin is not installed for the tenant.
    NotInstalled,
    /// The installation's state does not allow the requested lifecycle action.
    InvalidTransition,
    /// A grant names a permission no endpoint of the plugin's dependencies requires;
    /// `details.grantable` lists those that do.
    UnknownGrant,
    /// A dependency declared in the manifest is missing or installed at a wrong version.
    DependencyUnmet,
    /// A batch of registered dependencies breaks a rule; every problem is in `details.errors`.
    InvalidDependencies,
    /// No choice of versions satisfies every constraint, or the plugins to install require each
    /// other in a cycle; `details.explanation` says why.
    DependencyConflict,
    /// Installed plugins require the plugin to uninstall; `details.blockedBy` names them.
    HasDependents,
    /// No such credential for this installation.
    CredentialNotFound,
    /// A plugin tried to act for another plugin.
    PluginNotCaller,
    /// The service name belongs to another plugin of the tenant.
    ServiceOwned,
    /// A registered URL's origin is not allowed for the installation.
    OriginNotAllowed,
    /// No such (discoverable) service.
    ServiceNotFound,
    /// The target plugin was installed without a `baseUrl`: it exposes no service.
    NotCallable,
    /// No such replica of the service.
    InstanceNotFound,
    /// A namespace or key breaks the naming rule.
    InvalidName,
    /// A plugin named another plugin as the owner of what it writes.
    OwnerMismatch,
    /// The entry belongs to another plugin.
    NotOwner,
    /// The value exceeds the configured size limit.
    ValueTooLarge,
    /// No such (live) entry.
    DataNotFound,
    /// `If-Match` / `If-None-Match` does not hold; details carry the current revision.
    PreconditionFailed,
    /// An operation of a data transaction failed; nothing was applied.
    TransactionFailed,
    /// A dependency of the hub (database, Redis) is unavailable, or a called service has no
    /// HEALTHY, UNKNOWN or DEGRADED replica.
    ServiceUnavailable,
    /// The called service belongs to another plugin than the one named.
    PluginMismatch,
    /// A body's `callerPluginId` is not the credential's plugin.
    CallerMismatch,
    /// The calling plugin is not ACTIVE in the tenant.
    CallerNotActive,
    /// The caller's manifest declares no dependency on the target plugin (or service).
    AccessDenied,
    /// No endpoint of the service matches; `details.availableEndpoints` lists them.
    EndpointNotFound,
    /// The caller lacks permissions the endpoint requires; `details.missing` names them.
    PermissionDenied,
    /// The plugin did not answer in time.
    UpstreamTimeout,
    /// The caller stopped sending its request body (nothing arrived for the body timeout).
    RequestBodyTimeout,
    /// The caller's request body is not valid HTTP framing (a broken chunked encoding).
    MalformedBody,
    /// The plugin could not be connected to.
    UpstreamUnreachable,
    /// The connection to the plugin failed before it answered.
    UpstreamFailed,
    /// TLS with a plugin served over https failed (unknown issuer, wrong name, a client
    /// certificate it required); the message says why.
    UpstreamTls,
    /// The plugin's answer exceeds the response size limit.
    UpstreamResponseTooLarge,
    /// A gateway quota is used up; `Retry-After` says when to try again.
    RateLimited,
    /// A plugin published an event type outside its own `plugin.<name>.…` (or under `plexhub.`).
    TopicNotOwned,
    /// A manifest subscribes to events the plugin may not read; `details.pattern` names it.
    SubscriptionNotAllowed,
    /// No such dead letter in the tenant.
    DeadLetterNotFound,
    /// Unexpected failure; the response carries a request id, the log carries the cause.
    Internal,
}

impl ErrorCode {
    /// The HTTP status for this code.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            Unauthenticated => StatusCode::UNAUTHORIZED,
            Forbidden
            | TenantSuspended
            | TenantMismatch
            | PluginNotCaller
            | OwnerMismatch
            | NotOwner
            | CallerMismatch
            | CallerNotActive
            | AccessDenied
            | PermissionDenied
            | TopicNotOwned
            | SubscriptionNotAllowed => StatusCode::FORBIDDEN,
            PluginMismatch => StatusCode::BAD_REQUEST,
            RateLimited => StatusCode::TOO_MANY_REQUESTS,
            EndpointNotFound => StatusCode::NOT_FOUND,
            UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            RequestBodyTimeout => StatusCode::REQUEST_TIMEOUT,
            MalformedBody => StatusCode::BAD_REQUEST,
            UpstreamUnreachable | UpstreamFailed | UpstreamTls | UpstreamResponseTooLarge => {
                StatusCode::BAD_GATEWAY
            }
            ValueTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            TenantRequired | InvalidSlug | MalformedJson | InvalidBody | InvalidParameter
            | InvalidManifest | OriginNotAllowed | InvalidName | InvalidDependencies
            | UnknownGrant => StatusCode::BAD_REQUEST,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            TenantNotFound | NotFound | PluginNotFound | VersionNotFound | NotInstalled
            | CredentialNotFound | ServiceNotFound | NotCallable | InstanceNotFound
            | DataNotFound | DeadLetterNotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            TenantExists | VersionExists | AlreadyInstalled | InvalidTransition
            | DependencyUnmet | ServiceOwned | TransactionFailed | DependencyConflict
            | HasDependents => StatusCode::CONFLICT,
            ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failed request: a code, a message for people and optional structured details.
#[derive(Debug, Clone)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    details: Option<Value>,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Attaches structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// An unexpected failure: the cause is logged, the caller sees only a request id.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The human message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The error envelope of `/api/v1`, for the OpenAPI document.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    error: ErrorObject,
}

/// The inner error object of [`ErrorEnvelope`].
#[derive(Serialize, ToSchema)]
pub struct ErrorObject {
    code: ErrorCode,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Value>,
}

/// Marks a response as an error, so the compatibility layer can render it flat.
#[derive(Clone)]
pub struct ErrorReport(ApiError);

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        if self.code == ErrorCode::Internal {
            let request_id = request_id::current();
            self.message = format!("internal error (request id {request_id})");
            self.details = Some(json!({ "requestId": request_id }));
        }
        let body = ErrorEnvelope {
            error: ErrorObject {
                code: self.code,
                message: self.message.clone(),
                details: self.details.clone(),
            },
        };
        let mut response = (self.code.status(), Json(body)).into_response();
        mark_hub_error(&mut response, self.code);
        if let Some(seconds) = retry_after(&self) {
            response.headers_mut().insert(header::RETRY_AFTER, seconds);
        }
        response.extensions_mut().insert(ErrorReport(self));
        response
    }
}

/// Marks an answer as the hub's own error (`X-Plexhub-Error: <CODE>`), so that a gateway caller
/// can tell it from a plugin's answer (the gateway never lets a plugin send `X-Plexhub-*`).
fn mark_hub_error(response: &mut Response, code: ErrorCode) {
    let text = serde_json::to_value(code)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    if let Ok(value) = axum::http::HeaderValue::from_str(&text) {
        response.headers_mut().insert("x-plexhub-error", value);
    }
}

/// `Retry-After` for a rate-limited answer.
fn retry_after(error: &ApiError) -> Option<axum::http::HeaderValue> {
    let seconds = error.details.as_ref()?["retryAfterSeconds"].as_u64()?;
    Some(axum::http::HeaderValue::from(seconds))
}

/// Renders an error in the seed's flat shape: `{"error":"<message>","code":"…", …details}`.
pub fn render_flat(report: &ErrorReport) -> Response {
    let error = &report.0;
    let mut body = serde_json::Map::new();
    body.insert("error".into(), Value::String(error.message.clone()));
    body.insert("code".into(), json!(error.code));
    if let Some(Value::Object(details)) = &error.details {
        for (key, value) in details {
            body.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    let mut response = (error.code.status(), Json(Value::Object(body))).into_response();
    mark_hub_error(&mut response, error.code);
    if let Some(seconds) = retry_after(error) {
        response.headers_mut().insert(header::RETRY_AFTER, seconds);
    }
    response
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if let StoreError::Bus(_) = &error {
            tracing::error!(cause = %error, "event bus unavailable");
            return ApiError::new(
                ErrorCode::ServiceUnavailable,
                "the event bus is unavailable; retry later",
            );
        }
        if error.is_unavailable() {
            tracing::error!(cause = %error, "database unavailable");
            return ApiError::new(
                ErrorCode::ServiceUnavailable,
                "the database is unavailable; retry later",
            );
        }
        ApiError::internal(&error)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let text = rejection.body_text();
        match rejection {
            JsonRejection::JsonSyntaxError(_) => ApiError::new(ErrorCode::MalformedJson, text),
            JsonRejection::JsonDataError(_) => ApiError::new(ErrorCode::InvalidBody, text),
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected a body with Content-Type: application/json",
            ),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
            }
            _ => ApiError::new(ErrorCode::InvalidBody, text),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::new(ErrorCode::InvalidParameter, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(ErrorCode::InvalidParameter, rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json body")
    }

    #[tokio::test]
    async fn one_error_renders_nested_for_v1_and_flat_for_compat() {
        let error = ApiError::new(ErrorCode::TenantNotFound, "tenant \"x\" not found")
            .with_details(json!({"tenant": "x", "error": "must not override"}));

        let nested = error.clone().into_response();
        assert_eq!(nested.status(), StatusCode::NOT_FOUND);
        let report = nested
            .extensions()
            .get::<ErrorReport>()
            .cloned()
            .expect("report");
        assert_eq!(
            body_json(nested).await,
            json!({"error": {"code": "TENANT_NOT_FOUND", "message": "tenant \"x\" not found",
                             "details": {"tenant": "x", "error": "must not override"}}})
        );

        let flat = render_flat(&report);
        assert_eq!(flat.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            body_json(flat).await,
            json!({"error": "tenant \"x\" not found", "code": "TENANT_NOT_FOUND", "tenant": "x"})
        );
    }
}
