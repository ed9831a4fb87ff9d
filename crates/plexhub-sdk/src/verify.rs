//! For the plugin's own server: accept only requests the hub forwarded and signed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use plexhub_core::signing::{
    PublicKey, SIGNATURE_HEADER, SignedRequest, SigningSecret, TrustedKeys, USER_ID_HEADER,
    VerifyError, WORKSPACE_ID_HEADER, verify_any,
};
use serde::Deserialize;
use serde_json::json;

use crate::client::{Client, Error};

/// How far a signature's time may be from this server's clock; a signature is also remembered
/// this long, so that the same request presented twice is refused.
const MAX_SKEW_MS: i64 = 5 * 60 * 1000;

/// Signatures remembered at most (16 bytes each); past it, the oldest half is forgotten (a
/// replay of one of those would then be accepted while still within the skew window).
const MAX_REMEMBERED: usize = 1_000_000;
/// Expired signatures are forgotten every this many accepted ones.
const PRUNE_EVERY: usize = 4_096;

/// What the hub's requests are checked against: its published Ed25519 keys (`v1` signatures)
/// and, for a plugin, its installations' own HMAC secrets (`v2`, the hub's default). A
/// signature is accepted once: the same one presented again within the skew window is a replay.
/// Add it to the plugin's router as an extension so that [`HubRequest`] finds it:
///
/// ```no_run
/// # async fn example() -> Result<(), plexhub_sdk::Error> {
/// use std::sync::Arc;
/// use axum::{Extension, Router, routing::get};
/// use plexhub_sdk::{HubRequest, Installations, Verifier};
///
/// async fn contacts(hub: HubRequest) -> String {
///     format!("contacts of tenant {} for {}", hub.tenant_slug, hub.caller)
/// }
///
/// let installations = Installations::from_env().await?;
/// let verifier = Arc::new(Verifier::for_installations(&installations).await?);
/// let app: Router = Router::new()
///     .route("/contacts", get(contacts))
///     .layer(Extension(verifier));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Verifier {
    hub: String,
    http: reqwest::Client,
    /// The installations whose secrets are trusted (each with its own credential).
    installations: RwLock<Vec<Client>>,
    trusted: RwLock<TrustedKeys>,
    /// Accepted signatures (a keyed hash of the header) and their timestamps, to refuse replays.
    seen: Mutex<HashMap<u64, i64>>,
    hasher: std::hash::RandomState,
}

#[derive(Deserialize)]
struct OwnSecret {
    #[serde(rename = "keyId")]
    key_id: String,
    secret: String,
}

#[derive(Deserialize)]
struct OwnSecrets {
    secrets: Vec<OwnSecret>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

impl Verifier {
    /// Trusts the hub's published Ed25519 keys only (`GET /.well-known/plexhub-keys`): for
    /// installations whose signing scheme is `ed25519`.
    pub async fn fetch(hub_url: &str) -> Result<Self, Error> {
        Self::with_installations(hub_url, Vec::new()).await
    }

    /// Trusts the hub's public keys and the HMAC secrets of every installation of the plugin
    /// (read with each installation's own credential from `GET /api/v1/self/signing-secrets`).
    pub async fn for_installations(installations: &crate::Installations) -> Result<Self, Error> {
        let clients = installations
            .tenants()
            .filter_map(|tenant| installations.tenant(tenant).cloned())
            .collect();
        Self::with_installations(installations.hub_url(), clients).await
    }

    async fn with_installations(hub_url: &str, installations: Vec<Client>) -> Result<Self, Error> {
        let verifier = Self {
            hub: hub_url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            installations: RwLock::new(installations),
            trusted: RwLock::new(TrustedKeys::default()),
            seen: Mutex::new(HashMap::new()),
            hasher: std::hash::RandomState::new(),
        };
        verifier.refresh().await?;
        Ok(verifier)
    }

    /// Trusts one more installation's secrets (`client` holds its credential): for a plugin
    /// whose server had to run before it was installed.
    pub async fn add_installation(&self, client: Client) -> Result<(), Error> {
        if let Ok(mut installations) = self.installations.write() {
            installations.push(client);
        }
        self.refresh().await
    }

    /// Reads the keys and secrets again (after the hub rotated them).
    pub async fn refresh(&self) -> Result<(), Error> {
        let answer: serde_json::Value = self
            .http
            .get(format!("{}/.well-known/plexhub-keys", self.hub))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let public_keys: Vec<PublicKey> =
            serde_json::from_value(answer["keys"].clone()).unwrap_or_default();
        let installations = self
            .installations
            .read()
            .map(|installations| installations.clone())
            .unwrap_or_default();
        let mut secrets = Vec::new();
        for installation in &installations {
            let own: OwnSecrets = serde_json::from_value(
                installation
                    .send_json(
                        reqwest::Method::GET,
                        "/api/v1/self/signing-secrets",
                        &serde_json::Value::Null,
                    )
                    .await?,
            )
            .map_err(|error| Error::Unexpected(error.to_string()))?;
            for secret in own.secrets {
                let secret = SigningSecret::from_text(&secret.key_id, &secret.secret)
                    .map_err(|error| Error::Unexpected(error.to_string()))?;
                secrets.push(secret);
            }
        }
        if let Ok(mut trusted) = self.trusted.write() {
            *trusted = TrustedKeys {
                public_keys,
                secrets,
            };
        }
        Ok(())
    }

    /// Checks a signature header (`v1` or `v2`) against the request it came with, the trusted
    /// keys, the clock and the signatures already accepted.
    pub fn check(&self, header: &str, request: &SignedRequest<'_>) -> Result<(), VerifyError> {
        let now_ms = now_ms();
        let timestamp = {
            let trusted = self.trusted.read().map_err(|_| VerifyError::UnknownKey)?;
            verify_any(&trusted, header, request, now_ms, MAX_SKEW_MS)?
        };
        let key = std::hash::BuildHasher::hash_one(&self.hasher, header);
        let Ok(mut seen) = self.seen.lock() else {
            return Ok(());
        };
        if seen.len() % PRUNE_EVERY == 0 || seen.len() >= MAX_REMEMBERED {
            // A signature older than the skew window is refused as stale anyway.
            seen.retain(|_, at| now_ms - *at <= MAX_SKEW_MS);
            if seen.len() >= MAX_REMEMBERED {
                let mut times: Vec<i64> = seen.values().copied().collect();
                let (_, median, _) = times.select_nth_unstable(MAX_REMEMBERED / 2);
                let median = *median;
                seen.retain(|_, at| *at > median);
            }
        }
        if seen.insert(key, timestamp).is_some() {
            return Err(VerifyError::Replayed);
        }
        Ok(())
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
    /// `X-User-ID`: the end user the calling plugin says it acts for. Asserted by the calling
    /// plugin, not verified by the hub (which only guarantees it was not changed on the way).
    pub user_id: Option<String>,
    /// `X-Workspace-ID`, asserted by the calling plugin like `user_id`.
    pub workspace_id: Option<String>,
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
            user_id: header(parts, USER_ID_HEADER),
            workspace_id: header(parts, WORKSPACE_ID_HEADER),
        };
        let mut outcome = verifier.check(signature, &request);
        if outcome == Err(VerifyError::UnknownKey) && verifier.refresh().await.is_ok() {
            outcome = verifier.check(signature, &request);
        }
        outcome.map_err(|error| {
            let code = if error == VerifyError::Replayed {
                "REPLAYED_REQUEST"
            } else {
                "BAD_SIGNATURE"
            };
            Refused(code, error.to_string())
        })?;
        Ok(Self {
            tenant_id: request.tenant_id.to_owned(),
            tenant_slug: header(parts, "x-tenant-slug").to_owned(),
            caller: request.caller.to_owned(),
            request_id: request.request_id.to_owned(),
            user_id: Some(request.user_id)
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            workspace_id: Some(request.workspace_id)
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
        })
    }
}
