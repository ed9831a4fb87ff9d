//! Request signing: how a plugin knows a request came through the hub. The hub signs what it
//! forwards with an Ed25519 key; plugins verify with the public keys the hub publishes at
//! `GET /.well-known/plexhub-keys`.
//!
//! The header is `X-Plexhub-Signature: v1;keyId=<id>;ts=<epoch ms>;sig=<base64url>` and the
//! signature covers, one per line: `plexhub-v1`, method, path, query (empty when none), tenant
//! id, calling plugin, request id, timestamp.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-plexhub-signature";

/// What a signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedRequest<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Path as sent to the plugin (percent-encoding kept).
    pub path: &'a str,
    /// Query string without `?`, empty when none.
    pub query: &'a str,
    /// The tenant's id (UUID).
    pub tenant_id: &'a str,
    /// The calling plugin.
    pub caller: &'a str,
    /// The request id.
    pub request_id: &'a str,
}

impl SignedRequest<'_> {
    fn message(&self, timestamp_ms: i64) -> String {
        format!(
            "plexhub-v1\n{}\n{}\n{}\n{}\n{}\n{}\n{timestamp_ms}",
            self.method, self.path, self.query, self.tenant_id, self.caller, self.request_id
        )
    }
}

/// Why a key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a signing key is 32 bytes in base64url")]
pub struct InvalidKey;

/// One of the hub's signing keys.
#[derive(Clone)]
pub struct HubKey {
    signing: SigningKey,
    id: String,
}

impl std::fmt::Debug for HubKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HubKey({})", self.id)
    }
}

fn key_id(public: &VerifyingKey) -> String {
    let digest = Sha256::digest(public.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

impl HubKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Self {
        Self::from_seed(rand::random())
    }

    fn from_seed(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let id = key_id(&signing.verifying_key());
        Self { signing, id }
    }

    /// Reads a key from its base64url seed (as [`HubKey::to_seed`] writes it).
    pub fn from_seed_text(text: &str) -> Result<Self, InvalidKey> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| InvalidKey)?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| InvalidKey)?;
        Ok(Self::from_seed(seed))
    }

    /// The secret seed, base64url: what a key file keeps.
    pub fn to_seed(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.signing.to_bytes())
    }

    /// The key's id (16 hex digits of the public key's SHA-256).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The public half, as published.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            key_id: self.id.clone(),
            algorithm: "Ed25519",
            public_key: URL_SAFE_NO_PAD.encode(self.signing.verifying_key().as_bytes()),
        }
    }

    /// The `X-Plexhub-Signature` value for `request` at `timestamp_ms`.
    pub fn sign(&self, request: &SignedRequest<'_>, timestamp_ms: i64) -> String {
        let signature = self.signing.sign(request.message(timestamp_ms).as_bytes());
        format!(
            "v1;keyId={};ts={timestamp_ms};sig={}",
            self.id,
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }
}

/// A published verification key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicKey {
    /// Matches `keyId` in signatures.
    pub key_id: String,
    /// Always `Ed25519`.
    #[serde(skip_deserializing, default = "ed25519")]
    pub algorithm: &'static str,
    /// The 32-byte public key, base64url.
    pub public_key: String,
}

fn ed25519() -> &'static str {
    "Ed25519"
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No header, or not `v1;keyId=…;ts=…;sig=…`.
    #[error("the request carries no well-formed X-Plexhub-Signature")]
    Malformed,
    /// The key id is not among the hub's published keys.
    #[error("the signature names an unknown key")]
    UnknownKey,
    /// The timestamp is further from now than allowed.
    #[error("the signature is too old (or from the future)")]
    Stale,
    /// The signature does not match the request.
    #[error("the signature does not match the request")]
    Mismatch,
}

/// Checks a signature header against the request it came with, the hub's published keys
/// and the time (`max_skew_ms` either way).
pub fn verify(
    keys: &[PublicKey],
    header: &str,
    request: &SignedRequest<'_>,
    now_ms: i64,
    max_skew_ms: i64,
) -> Result<(), VerifyError> {
    let mut key_id = None;
    let mut timestamp = None;
    let mut signature = None;
    let mut parts = header.split(';');
    if parts.next() != Some("v1") {
        return Err(VerifyError::Malformed);
    }
    for part in parts {
        match part.split_once('=') {
            Some(("keyId", value)) => key_id = Some(value),
            Some(("ts", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("sig", value)) => signature = Some(value),
            _ => return Err(VerifyError::Malformed),
        }
    }
    let (Some(key_id), Some(timestamp), Some(signature)) = (key_id, timestamp, signature) else {
        return Err(VerifyError::Malformed);
    };
    let key = keys
        .iter()
        .find(|key| key.key_id == key_id)
        .ok_or(VerifyError::UnknownKey)?;
    if (now_ms - timestamp).abs() > max_skew_ms {
        return Err(VerifyError::Stale);
    }
    let public: [u8; 32] = URL_SAFE_NO_PAD
        .decode(&key.public_key)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(VerifyError::UnknownKey)?;
    let public = VerifyingKey::from_bytes(&public).map_err(|_| VerifyError::UnknownKey)?;
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(signature)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(VerifyError::Malformed)?;
    public
        .verify(
            request.message(timestamp).as_bytes(),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const REQUEST: SignedRequest<'static> = SignedRequest {
        method: "GET",
        path: "/contacts/7",
        query: "x=1",
        tenant_id: "5f0c2a54-7d0e-4b7e-9f65-0c1f0c9d7e11",
        caller: "plugin-analytics",
        request_id: "req-1",
    };

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let key = HubKey::generate();
        let keys = [key.public()];
        let header = key.sign(&REQUEST, 1_000);
        assert_eq!(verify(&keys, &header, &REQUEST, 1_500, 60_000), Ok(()));
        for changed in [
            SignedRequest {
                path: "/contacts/8",
                ..REQUEST
            },
            SignedRequest {
                method: "DELETE",
                ..REQUEST
            },
            SignedRequest {
                query: "",
                ..REQUEST
            },
            SignedRequest {
                tenant_id: "another",
                ..REQUEST
            },
            SignedRequest {
                caller: "plugin-crm",
                ..REQUEST
            },
            SignedRequest {
                request_id: "req-2",
                ..REQUEST
            },
        ] {
            assert_eq!(
                verify(&keys, &header, &changed, 1_500, 60_000),
                Err(VerifyError::Mismatch)
            );
        }
        assert_eq!(
            verify(&keys, &header, &REQUEST, 100_000, 60_000),
            Err(VerifyError::Stale)
        );
        let other = HubKey::generate();
        assert_eq!(
            verify(&[other.public()], &header, &REQUEST, 1_500, 60_000),
            Err(VerifyError::UnknownKey)
        );
        let forged = header.replace("ts=1000", "ts=1001");
        assert_eq!(
            verify(&keys, &forged, &REQUEST, 1_500, 60_000),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&keys, "v2;nope", &REQUEST, 1_500, 60_000),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn keys_round_trip_through_their_seed() {
        let key = HubKey::generate();
        let again = HubKey::from_seed_text(&key.to_seed()).unwrap();
        assert_eq!(again.public(), key.public());
        assert_eq!(key.id().len(), 16);
        assert_eq!(HubKey::from_seed_text("short").unwrap_err(), InvalidKey);
    }
}
