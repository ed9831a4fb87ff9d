//! Tenants: the isolation unit. Everything tenant-scoped is keyed by [`TenantId`], never by slug.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The immutable identity of a tenant (a UUID); every tenant-scoped row carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(Uuid);

impl TenantId {
    /// A fresh random id.
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses the hyphenated UUID form, as stored.
    pub fn parse(text: &str) -> Result<Self, TenantError> {
        Uuid::parse_str(text)
            .map(Self)
            .map_err(|_| TenantError::InvalidId(text.to_owned()))
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

/// A tenant's human-facing handle: `[a-z0-9][a-z0-9-]{1,62}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantSlug(String);

impl TenantSlug {
    /// Accepts 2 to 63 characters of lowercase letters, digits and hyphens, not starting with a hyphen.
    pub fn parse(text: &str) -> Result<Self, TenantError> {
        let bytes = text.as_bytes();
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        let valid =
            (2..=63).contains(&bytes.len()) && bytes[0] != b'-' && bytes.iter().all(allowed);
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(TenantError::InvalidSlug(text.to_owned()))
        }
    }

    /// The slug text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a tenant's plugins may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Normal operation.
    Active,
    /// Plugin credentials of this tenant are refused with `TENANT_SUSPENDED`.
    Suspended,
}

impl TenantStatus {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    /// Parses `active` or `suspended`.
    pub fn parse(text: &str) -> Result<Self, TenantError> {
        match text {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            other => Err(TenantError::InvalidStatus(other.to_owned())),
        }
    }
}

/// Longest accepted display name.
pub const MAX_TENANT_NAME_CHARS: usize = 200;

/// Checks a tenant display name: 1 to 200 characters, not only whitespace.
pub fn validate_tenant_name(name: &str) -> Result<(), TenantError> {
    let length = name.chars().count();
    if name.trim().is_empty() || length > MAX_TENANT_NAME_CHARS {
        Err(TenantError::InvalidName)
    } else {
        Ok(())
    }
}

/// A tenant as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Immutable identity.
    pub id: TenantId,
    /// Unique handle.
    pub slug: TenantSlug,
    /// Display name (defaults to the slug).
    pub name: String,
    /// Active or suspended.
    pub status: TenantStatus,
    /// Creation time, epoch milliseconds.
    pub created_at_ms: i64,
}

/// Why a tenant value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// The slug does not match `[a-z0-9][a-z0-9-]{1,62}`.
    #[error(
        "invalid tenant slug {0:?}: use 2-63 lowercase letters, digits or hyphens, starting with a letter or digit"
    )]
    InvalidSlug(String),
    /// The status is not `active` or `suspended`.
    #[error("invalid tenant status {0:?}: expected \"active\" or \"suspended\"")]
    InvalidStatus(String),
    /// The display name is empty or longer than 200 characters.
    #[error("tenant name must be 1-200 characters and not blank")]
    InvalidName,
    /// A stored id is not a UUID.
    #[error("invalid tenant id {0:?}")]
    InvalidId(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_documented_pattern() {
        for ok in ["acme", "a1", "acme-corp", "0tenant", &"a".repeat(63)] {
            assert!(TenantSlug::parse(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "",
            "a",
            "-acme",
            "Acme",
            "acme_corp",
            "acme.corp",
            &"a".repeat(64),
            "ac me",
        ] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad} should be invalid");
        }
    }

    #[test]
    fn status_round_trips() {
        for status in [TenantStatus::Active, TenantStatus::Suspended] {
            assert_eq!(TenantStatus::parse(status.as_str()), Ok(status));
        }
        assert!(TenantStatus::parse("deleted").is_err());
    }

    #[test]
    fn names_must_be_present_and_bounded() {
        assert!(validate_tenant_name("Acme Corp").is_ok());
        assert!(validate_tenant_name("  ").is_err());
        assert!(validate_tenant_name(&"x".repeat(201)).is_err());
    }
}
