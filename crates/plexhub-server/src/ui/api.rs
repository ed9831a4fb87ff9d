//! The dashboard's way to the API: requests dispatched in process to the router that serves
//! `/api/v1`, as the admin, so pages show exactly what the API answers and actions go through
//! the API's own checks.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::auth::{Caller, TENANT_HEADER};

/// The API's routes without the authentication layer (the caller is set here, as the admin:
/// only a signed-in session reaches the dashboard's handlers).
pub(crate) struct ApiClient {
    routes: Router,
}

/// An API answer other than 2xx: its status and error body.
#[derive(Debug)]
pub(crate) struct ApiFailure {
    /// The status the API answered.
    pub status: StatusCode,
    /// The error code (`TENANT_NOT_FOUND`…).
    pub code: String,
    /// The message for people.
    pub message: String,
    /// Structured details (every manifest problem, the uninstall blockers…), or `Null`.
    pub details: Value,
}

impl ApiClient {
    /// Wraps the API's routes (with their state).
    pub(crate) fn new(routes: Router) -> Self {
        Self { routes }
    }

    /// `GET path` (with its query), in `tenant` when given (`X-Tenant-Slug`).
    pub(crate) async fn get(&self, path: &str, tenant: Option<&str>) -> Result<Value, ApiFailure> {
        self.call(Method::GET, path, tenant, None).await
    }

    /// `POST path` with a JSON body (none when `Null`).
    pub(crate) async fn post(&self, path: &str, body: Value) -> Result<Value, ApiFailure> {
        self.call(Method::POST, path, None, Some(body)).await
    }

    /// `method path`, in `tenant` when given, with a JSON body when given.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        tenant: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, ApiFailure> {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(tenant) = tenant {
            request = request.header(TENANT_HEADER, tenant);
        }
        let body = match body {
            Some(Value::Null) | None => Body::empty(),
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
        };
        let mut request = request.body(body).map_err(|error| ApiFailure {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_PARAMETER".to_owned(),
            message: error.to_string(),
            details: Value::Null,
        })?;
        request.extensions_mut().insert(Caller::Admin);
        let response = match self.routes.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_default();
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let error = &json["error"];
        Err(ApiFailure {
            status,
            code: error["code"].as_str().unwrap_or("INTERNAL").to_owned(),
            message: error["message"]
                .as_str()
                .unwrap_or("the API gave no reason")
                .to_owned(),
            details: error["details"].clone(),
        })
    }
}

/// One path segment, percent-encoded (a slug or plugin id taken from the dashboard's URL).
pub(crate) fn segment(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `pairs` as a query string (empty values left out), with its leading `?` when not empty.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs.iter().filter(|(_, value)| !value.is_empty()) {
        serializer.append_pair(name, value);
    }
    let text = serializer.finish();
    if text.is_empty() {
        text
    } else {
        format!("?{text}")
    }
}
