//! Request signing: how a plugin knows a request came through the hub. Two schemes, chosen per
//! target installation:
//!
//! - **HMAC-SHA256** (`v2`, the default): each installation has its own secret (32 random
//!   bytes), shown to it once and readable again only with its own credential. Header:
//!   `X-Plexhub-Signature: v2;keyId=<id>;ts=<epoch ms>;sig=<base64url>`. While a rotated secret
//!   is still in its overlap window the request carries one MAC per active secret, newest first:
//!   `v2;keyId=<new>,<old>;ts=…;sig=<mac new>,<mac old>`, so a plugin holding either accepts it.
//! - **Ed25519** (`v1`): the hub signs with its own key; plugins verify with the public keys the
//!   hub publishes at `GET /.well-known/plexhub-keys`. Header
//!   `v1;keyId=<id>;ts=<epoch ms>;sig=<base64url>`.
//!
//! Both cover, one per line: `plexhub-v1` or `plexhub-v2`, method, path, query (empty when
//! none), tenant id, calling plugin, request id, user id and workspace id (the caller's
//! `X-User-ID` and `X-Workspace-ID`, empty when absent), timestamp.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use hmac::{Hmac, Mac as _};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "x-plexhub-signature";
/// The end user on whose behalf the calling plugin acts, as that plugin asserts it (the hub
/// checks its form and signs it, but cannot know whether it is true).
pub const USER_ID_HEADER: &str = "x-user-id";
/// The workspace the calling plugin acts in, as that plugin asserts it.
pub const WORKSPACE_ID_HEADER: &str = "x-workspace-id";
/// Longest accepted `X-User-ID` / `X-Workspace-ID` value.
pub const MAX_USER_CONTEXT_LEN: usize = 256;

/// Whether `value` is an acceptable `X-User-ID` / `X-Workspace-ID`: 1 to
/// [`MAX_USER_CONTEXT_LEN`] visible ASCII characters (no space or control character).
pub fn valid_user_context(value: &[u8]) -> bool {
    (1..=MAX_USER_CONTEXT_LEN).contains(&value.len()) && value.iter().all(u8::is_ascii_graphic)
}

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
    /// `X-User-ID` as the calling plugin asserted it (empty when absent).
    pub user_id: &'a str,
    /// `X-Workspace-ID` as the calling plugin asserted it (empty when absent).
    pub workspace_id: &'a str,
}

impl SignedRequest<'_> {
    /// The signed fields after the scheme's tag, in order, ending with the timestamp.
    fn fields<'a>(&'a self, timestamp: &'a str) -> [&'a str; 9] {
        [
            self.method,
            self.path,
            self.query,
            self.tenant_id,
            self.caller,
            self.request_id,
            self.user_id,
            self.workspace_id,
            timestamp,
        ]
    }

    /// The `v1` message: the tag and the fields, one per line.
    fn message(&self, timestamp_ms: i64) -> String {
        let timestamp = timestamp_ms.to_string();
        let mut message = String::from("plexhub-v1");
        for field in self.fields(&timestamp) {
            message.push('\n');
            message.push_str(field);
        }
        message
    }

    /// Feeds the `v2` message into a MAC, field by field (no message buffer).
    fn feed(&self, mac: &mut HmacSha256, timestamp: &str) {
        mac.update(b"plexhub-v2");
        for field in self.fields(timestamp) {
            mac.update(b"\n");
            mac.update(field.as_bytes());
        }
    }
}

/// How the hub proves a forwarded request's origin to a target installation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningScheme {
    /// HMAC-SHA256 with the installation's own secret (header `v2`).
    Hmac,
    /// Ed25519 with the hub's key (header `v1`).
    Ed25519,
}

impl SigningScheme {
    /// The name used in settings and APIs: `hmac` or `ed25519`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hmac => "hmac",
            Self::Ed25519 => "ed25519",
        }
    }

    /// Reads `hmac` or `ed25519` (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "hmac" => Some(Self::Hmac),
            "ed25519" => Some(Self::Ed25519),
            _ => None,
        }
    }
}

impl std::fmt::Display for SigningScheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

type HmacSha256 = Hmac<Sha256>;

/// An installation's HMAC signing secret: an id (public, in every signature) and 32 secret
/// bytes. `Debug` never prints the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    key_id: String,
    secret: [u8; 32],
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningSecret({}, ***)", self.key_id)
    }
}

impl SigningSecret {
    /// A new secret from the operating system's random source.
    pub fn generate() -> Self {
        let id: [u8; 8] = rand::random();
        Self {
            key_id: format!(
                "hs_{}",
                id.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ),
            secret: rand::random(),
        }
    }

    /// A secret from its id and base64url text (as [`SigningSecret::secret_text`] writes it).
    pub fn from_text(key_id: &str, secret: &str) -> Result<Self, InvalidKey> {
        let bytes = URL_SAFE_NO_PAD
            .decode(secret.trim())
            .map_err(|_| InvalidKey)?;
        let secret: [u8; 32] = bytes.try_into().map_err(|_| InvalidKey)?;
        if key_id.is_empty()
            || !key_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(InvalidKey);
        }
        Ok(Self {
            key_id: key_id.to_owned(),
            secret,
        })
    }

    /// The id carried by signatures (`keyId`).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The secret, base64url: what the installation is given and the store keeps.
    pub fn secret_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.secret)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; 32 bytes cannot be refused.
        HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts any key length")
    }
}

/// Signs requests for one target installation with its active secrets (newest first). The
/// keyed MAC states are computed once, so a signature costs two SHA-256 passes over the message
/// per secret and no key schedule.
#[derive(Clone)]
pub struct HmacSigner {
    macs: Vec<HmacSha256>,
    /// `v2;keyId=<ids>;ts=`, built once.
    prefix: String,
}

impl std::fmt::Debug for HmacSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HmacSigner({})", self.prefix)
    }
}

/// One HMAC-SHA256 in base64url without padding, and the comma before the next.
const SIGNATURE_TEXT_LEN_WITH_COMMA: usize = 44;

impl HmacSigner {
    /// A signer for `secrets`, newest first; `None` when there is none.
    pub fn new(secrets: &[SigningSecret]) -> Option<Self> {
        if secrets.is_empty() {
            return None;
        }
        let ids: Vec<&str> = secrets.iter().map(SigningSecret::key_id).collect();
        Some(Self {
            macs: secrets.iter().map(SigningSecret::mac).collect(),
            prefix: format!("v2;keyId={};ts=", ids.join(",")),
        })
    }

    /// The `X-Plexhub-Signature` value for `request` at `timestamp_ms`.
    pub fn sign(&self, request: &SignedRequest<'_>, timestamp_ms: i64) -> String {
        let mut digits = itoa::Buffer::new();
        let timestamp = digits.format(timestamp_ms);
        // Exactly the header's length: a header value made from a string whose capacity is its
        // length takes its buffer as it is (any other needs one more allocation).
        let mut header = String::with_capacity(
            self.prefix.len()
                + timestamp.len()
                + ";sig=".len()
                + SIGNATURE_TEXT_LEN_WITH_COMMA * self.macs.len()
                - 1,
        );
        header.push_str(&self.prefix);
        header.push_str(timestamp);
        header.push_str(";sig=");
        for (index, keyed) in self.macs.iter().enumerate() {
            let mut mac = keyed.clone();
            request.feed(&mut mac, timestamp);
            if index > 0 {
                header.push(',');
            }
            URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut header);
        }
        header
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
    /// No header, or not `v1;keyId=…;ts=…;sig=…` / `v2;keyId=…;ts=…;sig=…`.
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
    /// The same signature was presented before (a replayed request).
    #[error("the request was already received (replayed)")]
    Replayed,
}

/// What a verifier trusts: the hub's public keys (`v1`) and the installation's own secrets
/// (`v2`).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    /// The hub's published Ed25519 keys.
    pub public_keys: Vec<PublicKey>,
    /// The installation's HMAC secrets.
    pub secrets: Vec<SigningSecret>,
}

/// The parts of a signature header.
struct Parsed<'a> {
    version: &'a str,
    key_ids: &'a str,
    timestamp_text: &'a str,
    timestamp: i64,
    signatures: &'a str,
}

fn parse_header(header: &str) -> Result<Parsed<'_>, VerifyError> {
    let mut parts = header.split(';');
    let version = parts.next().ok_or(VerifyError::Malformed)?;
    if version != "v1" && version != "v2" {
        return Err(VerifyError::Malformed);
    }
    let (mut key_ids, mut timestamp, mut signatures) = (None, None, None);
    for part in parts {
        match part.split_once('=') {
            Some(("keyId", value)) if key_ids.is_none() => key_ids = Some(value),
            Some(("ts", value)) if timestamp.is_none() => {
                timestamp = value.parse::<i64>().ok().map(|ts| (value, ts));
            }
            Some(("sig", value)) if signatures.is_none() => signatures = Some(value),
            _ => return Err(VerifyError::Malformed),
        }
    }
    let (Some(key_ids), Some((timestamp_text, timestamp)), Some(signatures)) =
        (key_ids, timestamp, signatures)
    else {
        return Err(VerifyError::Malformed);
    };
    Ok(Parsed {
        version,
        key_ids,
        timestamp_text,
        timestamp,
        signatures,
    })
}

/// Checks a signature header of either scheme (chosen by its version) against the request it
/// came with, the trusted keys and the time (`max_skew_ms` either way). Returns the signature's
/// timestamp, for a replay check.
pub fn verify_any(
    trusted: &TrustedKeys,
    header: &str,
    request: &SignedRequest<'_>,
    now_ms: i64,
    max_skew_ms: i64,
) -> Result<i64, VerifyError> {
    let parsed = parse_header(header)?;
    if parsed.version == "v1" {
        return verify(&trusted.public_keys, header, request, now_ms, max_skew_ms)
            .map(|()| parsed.timestamp);
    }
    let key_ids = parsed.key_ids.split(',');
    let signatures = parsed.signatures.split(',');
    if parsed.key_ids.split(',').count() != parsed.signatures.split(',').count() {
        return Err(VerifyError::Malformed);
    }
    let mut known = false;
    for (key_id, signature) in key_ids.zip(signatures) {
        let Some(secret) = trusted.secrets.iter().find(|s| s.key_id == key_id) else {
            continue;
        };
        known = true;
        if (now_ms - parsed.timestamp).abs() > max_skew_ms {
            return Err(VerifyError::Stale);
        }
        let presented = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| VerifyError::Malformed)?;
        let mut mac = secret.mac();
        request.feed(&mut mac, parsed.timestamp_text);
        let expected = mac.finalize().into_bytes();
        if bool::from(expected.as_slice().ct_eq(&presented)) {
            return Ok(parsed.timestamp);
        }
    }
    Err(if known {
        VerifyError::Mismatch
    } else {
        VerifyError::UnknownKey
    })
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
        user_id: "user-7",
        workspace_id: "",
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
            SignedRequest {
                user_id: "user-8",
                ..REQUEST
            },
            SignedRequest {
                workspace_id: "ws-1",
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

    fn trusting(secrets: &[SigningSecret]) -> TrustedKeys {
        TrustedKeys {
            public_keys: Vec::new(),
            secrets: secrets.to_vec(),
        }
    }

    #[test]
    fn an_hmac_signature_verifies_and_any_change_breaks_it() {
        let secret = SigningSecret::generate();
        let signer = HmacSigner::new(std::slice::from_ref(&secret)).unwrap();
        let header = signer.sign(&REQUEST, 1_000);
        assert!(header.starts_with(&format!("v2;keyId={};ts=1000;sig=", secret.key_id())));
        let trusted = trusting(std::slice::from_ref(&secret));
        assert_eq!(
            verify_any(&trusted, &header, &REQUEST, 1_500, 60_000),
            Ok(1_000)
        );
        let changed = SignedRequest {
            path: "/contacts/8",
            ..REQUEST
        };
        assert_eq!(
            verify_any(&trusted, &header, &changed, 1_500, 60_000),
            Err(VerifyError::Mismatch)
        );
        let forged = header.replace("ts=1000", "ts=1001");
        assert_eq!(
            verify_any(&trusted, &forged, &REQUEST, 1_500, 60_000),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_any(&trusted, &header, &REQUEST, 100_000, 60_000),
            Err(VerifyError::Stale)
        );
        let stranger = trusting(&[SigningSecret::generate()]);
        assert_eq!(
            verify_any(&stranger, &header, &REQUEST, 1_500, 60_000),
            Err(VerifyError::UnknownKey)
        );
        // Another installation's secret under this key id does not verify.
        let impostor =
            SigningSecret::from_text(secret.key_id(), &SigningSecret::generate().secret_text())
                .unwrap();
        assert_eq!(
            verify_any(&trusting(&[impostor]), &header, &REQUEST, 1_500, 60_000),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn during_an_overlap_either_secret_accepts_the_request() {
        let (new, old) = (SigningSecret::generate(), SigningSecret::generate());
        let signer = HmacSigner::new(&[new.clone(), old.clone()]).unwrap();
        let header = signer.sign(&REQUEST, 1_000);
        assert!(header.contains(&format!("keyId={},{}", new.key_id(), old.key_id())));
        for signer in [
            &signer,
            &HmacSigner::new(std::slice::from_ref(&new)).unwrap(),
        ] {
            for timestamp in [1_000, 1_765_000_000_000] {
                let header = signer.sign(&REQUEST, timestamp);
                assert_eq!(header.len(), header.capacity(), "made to its exact length");
            }
        }
        for holder in [&new, &old] {
            let trusted = trusting(std::slice::from_ref(holder));
            assert_eq!(
                verify_any(&trusted, &header, &REQUEST, 1_000, 60_000),
                Ok(1_000)
            );
        }
        let unbalanced = header.replacen(",", "", 1);
        assert_eq!(
            verify_any(&trusting(&[new]), &unbalanced, &REQUEST, 1_000, 60_000),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn both_schemes_verify_through_one_entry_point() {
        let key = HubKey::generate();
        let trusted = TrustedKeys {
            public_keys: vec![key.public()],
            secrets: Vec::new(),
        };
        let header = key.sign(&REQUEST, 2_000);
        assert_eq!(
            verify_any(&trusted, &header, &REQUEST, 2_000, 60_000),
            Ok(2_000)
        );
        assert_eq!(
            verify_any(&trusted, "v3;keyId=a;ts=1;sig=b", &REQUEST, 2_000, 60_000),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn secrets_round_trip_through_their_text_and_never_print() {
        let secret = SigningSecret::generate();
        let again = SigningSecret::from_text(secret.key_id(), &secret.secret_text()).unwrap();
        assert_eq!(again, secret);
        assert!(!format!("{secret:?}").contains(&secret.secret_text()));
        assert_eq!(SigningSecret::from_text("id", "short"), Err(InvalidKey));
        assert_eq!(
            SigningSecret::from_text("bad id", &secret.secret_text()),
            Err(InvalidKey)
        );
        assert_eq!(SigningScheme::parse("HMAC"), Some(SigningScheme::Hmac));
        assert_eq!(SigningScheme::parse("rsa"), None);
    }
}
