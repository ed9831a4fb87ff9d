//! The seed's `POST /api/plugin-gateway/call`: one plugin calls another's endpoint through the
//! hub and gets the answer wrapped in the original's envelope. Hardened: the caller is the
//! credential's plugin, access is decided like the proxy's, and failures have their own codes.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use plexhub_core::ids::PluginId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::error::{ApiError, ErrorCode};
use crate::extract::ApiJson;
use crate::gateway::{self, Attempt, CallContext};
use crate::registry::parse_service_name;
use crate::routes::v1::calling_plugin;
use crate::state::{AppState, rfc3339};

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(call_plugin))
}

/// The seed's call request.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallRequest {
    /// Must be the calling plugin (required when the admin calls).
    caller_plugin_id: Option<String>,
    /// The plugin expected to own the service (400 `PLUGIN_MISMATCH` otherwise).
    target_plugin_id: String,
    target_service_name: String,
    /// GET, POST, PUT, PATCH or DELETE.
    method: String,
    /// Path on the service, may carry a query string.
    path: String,
    /// Extra request headers (string values).
    #[serde(default)]
    headers: Map<String, Value>,
    /// Query parameters appended to the path's.
    #[serde(default)]
    query: Map<String, Value>,
    /// JSON body, sent as `application/json` unless absent or null.
    body: Option<Value>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidBody, message)
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

/// A call for a service of a plugin installed without a `baseUrl` (it exposes none): say so
/// rather than only that the service does not exist.
async fn explain_not_callable(
    state: &AppState,
    scope: &TenantScope,
    target: &PluginId,
    error: ApiError,
) -> ApiError {
    if error.code() != ErrorCode::ServiceNotFound {
        return error;
    }
    match state.store.installation(scope.tenant.id, target).await {
        Ok(Some(installation)) if installation.base_url.is_none() => ApiError::new(
            ErrorCode::NotCallable,
            format!(
                "{target} exposes no service (installed without a baseUrl): it calls other plugins \
                 and cannot be called"
            ),
        ),
        _ => error,
    }
}

/// Call another plugin's endpoint (also served by the front door's hot path); the answer's
/// status is the plugin's, its body the original's
/// envelope `{status, headers, data, metadata:{targetPlugin, targetService, duration, timestamp}}`.
#[utoipa::path(post, path = "/api/plugin-gateway/call", tag = "gateway (seed-compatible)",
    request_body = CallRequest,
    responses((status = 200, body = Object, description = "the envelope; the HTTP status is the plugin's"),
        (status = 400, description = "INVALID_BODY, PLUGIN_MISMATCH"),
        (status = 403, description = "CALLER_MISMATCH, CALLER_NOT_ACTIVE, ACCESS_DENIED, PERMISSION_DENIED"),
        (status = 404, description = "SERVICE_NOT_FOUND, NOT_CALLABLE (the target was installed without a baseUrl), ENDPOINT_NOT_FOUND"),
        (status = 502, description = "UPSTREAM_UNREACHABLE, UPSTREAM_FAILED, UPSTREAM_TLS, UPSTREAM_RESPONSE_TOO_LARGE"),
        (status = 503, description = "SERVICE_UNAVAILABLE"), (status = 504, description = "UPSTREAM_TIMEOUT")),
    security(("bearer" = [])))]
pub(crate) async fn call_plugin(
    scope: TenantScope,
    State(state): State<AppState>,
    headers_in: HeaderMap,
    ApiJson(request): ApiJson<CallRequest>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let caller = calling_plugin(&scope, request.caller_plugin_id.as_deref())?;
    let target = PluginId::parse(&request.target_plugin_id)
        .map_err(|error| invalid(format!("targetPluginId: {error}")))?;
    let service = parse_service_name(&request.target_service_name)?;
    let method = match request.method.as_str() {
        "GET" => Method::GET,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "PATCH" => Method::PATCH,
        "DELETE" => Method::DELETE,
        other => {
            return Err(invalid(format!(
                "method {other:?} is not GET, POST, PUT, PATCH or DELETE"
            )));
        }
    };
    if !request.path.starts_with('/') || request.path.contains('#') {
        return Err(invalid("path must start with \"/\" and carry no fragment"));
    }
    let (path, inline_query) = match request.path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (request.path.as_str(), None),
    };
    let call = CallContext {
        tenant: &scope.tenant,
        caller: &caller,
    };
    let request_id = headers_in
        .get(&crate::request_id::REQUEST_ID_HEADER)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let attempt = Attempt {
        kind: "call",
        service: service.as_str(),
        method: &method,
        path,
        request_id: &request_id,
        started,
    };
    let route =
        match gateway::authorize(&state, &call, &service, Some(&target), &method, path).await {
            Ok(route) => route,
            Err(error) => {
                let error = explain_not_callable(&state, &scope, &target, error).await;
                let status = error.code().status().as_u16();
                gateway::audit(&state, &call, &attempt, None, status).await;
                return Err(error);
            }
        };

    let query = {
        let mut query =
            url::form_urlencoded::Serializer::new(inline_query.unwrap_or_default().to_owned());
        for (name, value) in &request.query {
            let value =
                text_of(value).ok_or_else(|| invalid(format!("query.{name} must be a string")))?;
            query.append_pair(name, &value);
        }
        query.finish()
    };
    let path_and_query = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let mut headers = HeaderMap::new();
    if let Some(id) = headers_in.get(&crate::request_id::REQUEST_ID_HEADER) {
        headers.insert(crate::request_id::REQUEST_ID_HEADER.clone(), id.clone());
    }
    for (name, value) in &request.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("headers.{name} is not a header name")))?;
        // The hub frames the body it sends itself: a caller's Content-Length would contradict
        // it (hanging the plugin, or cutting the body). Transfer-Encoding, Connection, Host, TE,
        // Upgrade and other hop-by-hop headers are dropped by the gateway for every route.
        if header == axum::http::header::CONTENT_LENGTH {
            continue;
        }
        let value = text_of(value)
            .and_then(|text| HeaderValue::from_str(&text).ok())
            .ok_or_else(|| invalid(format!("headers.{name} must be a header value")))?;
        headers.append(header, value);
    }
    // The user context the original SDK sends as headers to the hub is forwarded as on the
    // proxy route (checked and signed by the gateway); it wins over the body's `headers`.
    for name in [
        gateway::USER_ID_HEADER_NAME,
        gateway::WORKSPACE_ID_HEADER_NAME,
    ] {
        let mut sent = headers_in.get_all(&name).iter().cloned();
        if let Some(first) = sent.next() {
            headers.insert(name.clone(), first);
            for more in sent {
                headers.append(name.clone(), more);
            }
        }
    }
    let body = match request.body.filter(|body| !body.is_null()) {
        Some(body) => {
            let text = body.to_string();
            let limit = state.gateway.settings().max_request_bytes;
            if text.len() as u64 > limit {
                let error = ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("body exceeds {limit} bytes (--max-request-bytes); nothing was sent"),
                );
                gateway::audit(&state, &call, &attempt, Some(&route), 413).await;
                return Err(error);
            }
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Body::from(text)
        }
        None => Body::empty(),
    };
    let answer = gateway::forward(
        &state,
        &call,
        &route,
        method.clone(),
        &path_and_query,
        &headers,
        body,
    )
    .await;
    let status = match &answer {
        Ok(response) => response.status().as_u16(),
        Err(error) => error.code().status().as_u16(),
    };
    gateway::audit(&state, &call, &attempt, Some(&route), status).await;
    let answer = answer?;
    let (parts, body) = answer.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::UpstreamResponseTooLarge,
                format!(
                    "{} answered more than {} bytes (or broke off)",
                    route.target_plugin(),
                    state.gateway.settings().max_response_bytes
                ),
            )
        })?
        .to_bytes();
    let duration = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let envelope = Envelope {
        data: AnswerData::of(&bytes),
        headers: AnsweredHeaders(&parts.headers),
        metadata: Metadata {
            duration,
            target_plugin: route.target_plugin().as_str(),
            target_service: service.as_str(),
            timestamp: rfc3339(state.clock.now_ms()),
        },
        status: parts.status.as_u16(),
    };
    let json = serde_json::to_vec(&envelope).map_err(|error| ApiError::internal(&error))?;
    let status = StatusCode::from_u16(parts.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    Ok((
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        json,
    )
        .into_response())
}

/// The original's answer envelope, written straight from the plugin's answer (its JSON body is
/// validated and copied as it is, not parsed into a tree and written again). Fields in
/// alphabetical order, as the original's JSON objects were written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    data: AnswerData<'a>,
    headers: AnsweredHeaders<'a>,
    metadata: Metadata<'a>,
    status: u16,
}

/// The plugin's body: its JSON as it is, or else its text (`""` when empty).
#[derive(Serialize)]
#[serde(untagged)]
enum AnswerData<'a> {
    Json(&'a serde_json::value::RawValue),
    Text(std::borrow::Cow<'a, str>),
}

impl<'a> AnswerData<'a> {
    fn of(bytes: &'a [u8]) -> Self {
        match serde_json::from_slice(bytes) {
            Ok(json) => Self::Json(json),
            Err(_) => Self::Text(String::from_utf8_lossy(bytes)),
        }
    }
}

/// The plugin's answer headers by name (sorted), repeated ones joined with `, `.
struct AnsweredHeaders<'a>(&'a HeaderMap);

impl Serialize for AnsweredHeaders<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut names: Vec<&str> = self.0.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        let mut map = serializer.serialize_map(Some(names.len()))?;
        for name in names {
            let mut values = self
                .0
                .get_all(name)
                .iter()
                .map(|value| value.to_str().unwrap_or_default());
            let first = values.next().unwrap_or_default();
            match values.next() {
                None => map.serialize_entry(name, first)?,
                Some(second) => {
                    let mut joined = format!("{first}, {second}");
                    for more in values {
                        joined.push_str(", ");
                        joined.push_str(more);
                    }
                    map.serialize_entry(name, &joined)?;
                }
            }
        }
        map.end()
    }
}

/// The call's metadata in the envelope.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    duration: u64,
    target_plugin: &'a str,
    target_service: &'a str,
    timestamp: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_carries_the_answer_as_the_original_did() {
        let json = |data: AnswerData<'_>| serde_json::to_string(&data).expect("serializes");
        assert_eq!(
            json(AnswerData::of(br#"{"b": 1, "a": [true]}"#)),
            r#"{"b": 1, "a": [true]}"#
        );
        assert_eq!(json(AnswerData::of(b"plain text")), r#""plain text""#);
        assert_eq!(
            json(AnswerData::of(b"")),
            r#""""#,
            "an empty body is an empty string"
        );
        assert_eq!(json(AnswerData::of(b"{broken")), r#""{broken""#);

        let mut headers = HeaderMap::new();
        headers.insert("x-b", HeaderValue::from_static("2"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("one"));
        headers.append("x-a", HeaderValue::from_static("uno"));
        assert_eq!(
            serde_json::to_string(&AnsweredHeaders(&headers)).expect("serializes"),
            r#"{"x-a":"1, one, uno","x-b":"2"}"#,
            "sorted by name, repeated values joined"
        );
    }
}
