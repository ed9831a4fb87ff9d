//! For the plugin's own server: accept only requests the hub forwarded and signed.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use plexhub_core::signing::{PublicKey, SIGNATURE_HEADER, SignedRequest, VerifyError, verify};
use serde_json::json;

use crate::client::Error;

/// How far a signature's time may be from this server's clock.
const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

/// The hub's published keys, checked against incoming requests. Add it to the plugin's router
/// as an extension so that [`HubRequest`] finds it:
///
/// ```no_run
/// # async fn example() -> Result<(), plexhub_sdk::Error> {
/// use std::sync::Arc;
/// use axum::{Extension, Router, routing::get};
/// use plexhub_sdk::{HubRequest, Verifier};
///
/// async fn contacts(hub: HubRequest) -> String {
///     format!("contacts of tenant {} for {}", hub.tenant_slug, hub.caller)
/// }
///
/// let verifier = Arc::new(Verifier::fetch("http://127.0.0.1:4000").await?);
/// let app: Router = Router::new()
///     .route("/contacts", get(contacts))
///     .layer(Extension(verifier));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Verifier {
    hub: String,
    http: reqwest::Client,
    keys: RwLock<Vec<PublicKey>>,
}

impl Verifier {
    /// Reads the hub's keys from `GET /.well-known/plexhub-keys`.
    pub async fn fetch(hub_url: &str) -> Result<Self, Error> {
        let verifier = Self {
            hub: hub_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            keys: RwLock::new(Vec::new()),
        };
        verifier.refresh().await?;
        Ok(verifier)
    }

    /// Reads the keys again (after the hub rotated them).
    pub async fn refresh(&self) -> Result<(), Error> {
        let answer: serde_json::Value = self
            .http
            .get(format!("{}/.well-known/plexhub-keys", self.hub))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let keys: Vec<PublicKey> =
            serde_json::from_value(answer["keys"].clone()).unwrap_or_default();
        if let Ok(mut current) = self.keys.write() {
            *current = keys;
        }
        Ok(())
    }

    fn check(&self, header: &str, request: &SignedRequest<'_>) -> Result<(), VerifyError> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            });
        let keys = self
            .keys
            .read()
            .map(|keys| keys.clone())
            .unwrap_or_default();
        verify(&keys, header, request, now_ms, MAX_SKEW_MS)
    }
}

/// A request the hub forwarded, verified: who calls, for which tenant. Handlers that take it
/// refuse anything else with 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubRequest {
    /// The tenant's id (UUID).
    pub tenant_id: String,
    /// The tenant's slug.
    pub tenant_slug: String,
    /// The calling plugin.
    pub caller: String,
    /// The request id (for logs).
    pub request_id: String,
}

/// Why a request was refused: 401 with `{"error":{"code","message"}}`.
#[derive(Debug)]
pub struct Refused(&'static str, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.0, "message": self.1 } });
        (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> &'a str {
    parts
        .headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

impl<S: Send + Sync> FromRequestParts<S> for HubRequest {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(verifier) = parts.extensions.get::<Arc<Verifier>>().cloned() else {
            return Err(Refused(
                "NO_VERIFIER",
                "the plugin's router lacks the plexhub Verifier extension".to_owned(),
            ));
        };
        let signature = header(parts, SIGNATURE_HEADER);
        if signature.is_empty() {
            return Err(Refused(
                "UNSIGNED_REQUEST",
                "only requests forwarded by the hub are accepted".to_owned(),
            ));
        }
        let request = SignedRequest {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or_default(),
            tenant_id: header(parts, "x-tenant-id"),
            caller: header(parts, "x-caller-plugin-id"),
            request_id: header(parts, "x-request-id"),
        };
        let mut outcome = verifier.check(signature, &request);
        if outcome == Err(VerifyError::UnknownKey) && verifier.refresh().await.is_ok() {
            outcome = verifier.check(signature, &request);
        }
        outcome.map_err(|error| Refused("BAD_SIGNATURE", error.to_string()))?;
        Ok(Self {
            tenant_id: request.tenant_id.to_owned(),
            tenant_slug: header(parts, "x-tenant-slug").to_owned(),
            caller: request.caller.to_owned(),
            request_id: request.request_id.to_owned(),
        })
    }
}
