//! Credentials: the admin token, per-installation plugin credentials `phk_<id>.<secret>` and
//! per-tenant read-only shell credentials `phs_<id>.<secret>` (the web shell reads its plugins'
//! UI remotes with one; it is not a plugin).
//!
//! A plugin credential's secret is 32 random bytes (base64url); only its SHA-256 is stored, and
//! comparisons are constant-time. SHA-256 suffices (no password hashing) because the secret is
//! high-entropy random data, not something a person chose.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Prefix that marks a plugin credential.
pub const PLUGIN_TOKEN_PREFIX: &str = "phk_";
/// Prefix that marks a tenant's read-only shell credential.
pub const SHELL_TOKEN_PREFIX: &str = "phs_";
/// Prefix of generated admin tokens.
pub const ADMIN_TOKEN_PREFIX: &str = "pha_";

/// Public identifier of a plugin credential (16 lowercase hex characters), kept inline: every
/// authenticated request parses one.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialId([u8; 16]);

impl CredentialId {
    /// Parses 16 lowercase hex characters.
    pub fn parse(text: &str) -> Option<Self> {
        let id: [u8; 16] = text.as_bytes().try_into().ok()?;
        id.iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            .then_some(Self(id))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        // Hex digits only (`parse`, `generate_with`): always UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for CredentialId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// SHA-256 of a credential secret: what the store keeps instead of the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    /// Hashes a secret.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Whether `secret` hashes to this value, compared in constant time.
    pub fn matches(&self, secret: &str) -> bool {
        Self::of(secret).0.ct_eq(&self.0).into()
    }

    /// Lowercase hex, as stored.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses the stored hex form.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// Checks presented secrets against a stored hash, remembering the secret once it matched so
/// later checks compare in constant time without hashing again. Meant for in-memory caches of
/// live credentials; only the hash is ever stored.
#[derive(Clone)]
pub struct SecretCheck {
    hash: SecretHash,
    verified: std::sync::OnceLock<Box<str>>,
}

impl SecretCheck {
    /// A check against `hash`.
    pub fn new(hash: SecretHash) -> Self {
        Self {
            hash,
            verified: std::sync::OnceLock::new(),
        }
    }

    /// Whether `secret` is the credential's secret.
    pub fn matches(&self, secret: &str) -> bool {
        if let Some(known) = self.verified.get() {
            return known.as_bytes().ct_eq(secret.as_bytes()).into();
        }
        let matches = self.hash.matches(secret);
        if matches {
            let _ = self.verified.set(secret.into());
        }
        matches
    }
}

impl fmt::Debug for SecretCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretCheck(..)")
    }
}

/// A freshly issued plugin credential: the token is shown once, the hash is stored.
pub struct IssuedCredential {
    /// Public id.
    pub id: CredentialId,
    /// The full bearer token `phk_<id>.<secret>`.
    pub token: String,
    /// What the store keeps.
    pub hash: SecretHash,
}

impl IssuedCredential {
    /// Generates a new plugin credential from the operating system's random source.
    pub fn generate() -> Self {
        Self::generate_with(PLUGIN_TOKEN_PREFIX)
    }

    /// Generates a new shell credential (`phs_…`).
    pub fn generate_shell() -> Self {
        Self::generate_with(SHELL_TOKEN_PREFIX)
    }

    fn generate_with(prefix: &str) -> Self {
        let mut id_bytes = [0u8; 8];
        let mut secret_bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut id_bytes);
        rand::rng().fill_bytes(&mut secret_bytes);
        let mut id = [0u8; 16];
        for (pair, byte) in id.chunks_exact_mut(2).zip(id_bytes) {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0xf)];
        }
        let id = CredentialId(id);
        let secret = URL_SAFE_NO_PAD.encode(secret_bytes);
        Self {
            token: format!("{prefix}{id}.{secret}"),
            hash: SecretHash::of(&secret),
            id,
        }
    }
}

/// A plugin credential as presented by a caller, split into id and secret.
#[derive(Debug, PartialEq, Eq)]
pub struct PresentedCredential<'a> {
    /// The id part, used to look the credential up.
    pub id: CredentialId,
    /// The secret part, checked against the stored hash.
    pub secret: &'a str,
}

impl<'a> PresentedCredential<'a> {
    /// Splits `phk_<id>.<secret>`; `None` if the token is not shaped like a plugin credential.
    pub fn parse(token: &'a str) -> Option<Self> {
        Self::parse_with(token, PLUGIN_TOKEN_PREFIX)
    }

    /// Splits `phs_<id>.<secret>`; `None` if the token is not shaped like a shell credential.
    pub fn parse_shell(token: &'a str) -> Option<Self> {
        Self::parse_with(token, SHELL_TOKEN_PREFIX)
    }

    fn parse_with(token: &'a str, prefix: &str) -> Option<Self> {
        let rest = token.strip_prefix(prefix)?;
        let (id, secret) = crate::text::split_once_ascii(rest, b'.')?;
        let secret_ok = secret.len() == 43
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        secret_ok.then_some(())?;
        Some(Self {
            id: CredentialId::parse(id)?,
            secret,
        })
    }
}

/// Generates an admin token: the prefix and 32 random bytes, base64url.
pub fn generate_admin_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{ADMIN_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Compares a presented token with the expected one in time independent of where they differ.
pub fn tokens_match(presented: &str, expected: &str) -> bool {
    // Hashing first gives equal-length inputs, so the comparison leaks neither length nor prefix.
    SecretHash::of(expected).matches(presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_parse_back_and_verify() {
        let issued = IssuedCredential::generate();
        let presented = PresentedCredential::parse(&issued.token).expect("well-formed");
        assert_eq!(presented.id, issued.id);
        assert!(issued.hash.matches(presented.secret));
        assert!(!issued.hash.matches("something-else"));
        let shell = IssuedCredential::generate_shell();
        assert!(shell.token.starts_with(SHELL_TOKEN_PREFIX));
        assert!(PresentedCredential::parse(&shell.token).is_none());
        let presented = PresentedCredential::parse_shell(&shell.token).expect("shell token");
        assert!(shell.hash.matches(presented.secret));
        assert!(PresentedCredential::parse_shell(&issued.token).is_none());
        let again = IssuedCredential::generate();
        assert_ne!(again.token, issued.token);
        let id = issued.id.as_str();
        assert!(
            id.len() == 16
                && id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
            "{id}"
        );
        assert_eq!(CredentialId::parse(id), Some(issued.id));
        assert_eq!(format!("{:?}", issued.id), format!("{id:?}"));
        assert_eq!(
            serde_json::to_value(issued.id).ok(),
            Some(serde_json::Value::from(id))
        );
    }

    #[test]
    fn credential_ids_are_16_lowercase_hex_digits() {
        assert!(CredentialId::parse("0123456789abcdef").is_some());
        for bad in [
            "0123456789ABCDEF",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789abcdeg",
            "é123456789abcd",
        ] {
            assert_eq!(CredentialId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn malformed_tokens_are_not_plugin_credentials() {
        let issued = IssuedCredential::generate();
        let secret = issued
            .token
            .split_once('.')
            .map(|(_, s)| s)
            .unwrap_or_default();
        for bad in [
            "phk_".to_owned(),
            "phk_0123456789abcdef".to_owned(),
            format!("phk_XYZ3456789abcdef.{secret}"),
            format!("phk_0123456789abcdef.{secret}!"),
            format!("pha_0123456789abcdef.{secret}"),
        ] {
            assert!(PresentedCredential::parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_secret_check_remembers_only_the_right_secret() {
        let check = SecretCheck::new(SecretHash::of("right"));
        assert!(!check.matches("wrong"));
        assert!(check.matches("right"));
        assert!(check.matches("right"), "again, from memory");
        assert!(!check.matches("wrong"));
        assert!(!check.matches("righ"));
        assert!(!check.clone().matches("wrong"));
    }

    #[test]
    fn hashes_round_trip_through_hex() {
        let hash = SecretHash::of("s3cret");
        assert_eq!(SecretHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(SecretHash::from_hex("zz"), None);
    }

    #[test]
    fn admin_tokens_compare_by_content() {
        let token = generate_admin_token();
        assert!(token.starts_with(ADMIN_TOKEN_PREFIX));
        assert!(tokens_match(&token, &token.clone()));
        assert!(!tokens_match("pha_wrong", &token));
    }
}
