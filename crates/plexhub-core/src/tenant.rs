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

impl TenantId {
    /// The hyphenated lowercase form written into `buffer`, without allocating.
    pub fn encode<'a>(&self, buffer: &'a mut [u8; 36]) -> &'a str {
        self.0.as_hyphenated().encode_lower(buffer)
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
    /// Gateway quotas of this tenant (each overrides the hub's default when set).
    pub rate_limits: RateLimits,
}

/// A token-bucket rate: `rps` requests per second on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second (1 or more).
    pub rps: u32,
    /// Requests allowed at once (1 or more).
    pub burst: u32,
}

impl RateLimit {
    /// Parses `RPS` or `RPS/BURST` (burst defaults to the rate), as the settings write it.
    pub fn parse(text: &str) -> Result<Self, TenantError> {
        let invalid = || TenantError::InvalidRateLimit(text.to_owned());
        let (rps, burst) = match text.split_once('/') {
            Some((rps, burst)) => (rps, Some(burst)),
            None => (text, None),
        };
        let rps: u32 = rps.trim().parse().map_err(|_| invalid())?;
        let burst: u32 = match burst {
            Some(burst) => burst.trim().parse().map_err(|_| invalid())?,
            None => rps,
        };
        Self::new(rps, burst).map_err(|_| invalid())
    }

    /// A rate, both numbers at least 1 and at most 1 000 000.
    pub fn new(rps: u32, burst: u32) -> Result<Self, TenantError> {
        if (1..=1_000_000).contains(&rps) && (1..=1_000_000).contains(&burst) {
            Ok(Self { rps, burst })
        } else {
            Err(TenantError::InvalidRateLimit(format!("{rps}/{burst}")))
        }
    }

    /// Time between two requests at the sustained rate, µs.
    pub fn interval_us(self) -> i64 {
        1_000_000 / i64::from(self.rps.max(1))
    }

    /// How far ahead of the rate a burst may run, µs.
    pub fn tolerance_us(self) -> i64 {
        self.interval_us() * (i64::from(self.burst.max(1)) - 1)
    }

    /// One step of the generic cell rate algorithm (a token bucket kept as one number): given
    /// the stored theoretical arrival time (µs, `None` for a fresh key) and now, either the new
    /// time to store (the request is admitted) or how long to wait (µs).
    pub fn admit(self, stored_tat_us: Option<i64>, now_us: i64) -> Result<i64, i64> {
        let (interval, tolerance) = (self.interval_us(), self.tolerance_us());
        let tat = stored_tat_us.unwrap_or(now_us).max(now_us);
        if tat - now_us > tolerance {
            Err(tat - now_us - tolerance)
        } else {
            Ok(tat + interval)
        }
    }
}

/// A tenant's gateway quotas; `None` falls back to the hub's setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimits {
    /// Per calling plugin of the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_caller: Option<RateLimit>,
    /// For the whole tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_tenant: Option<RateLimit>,
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
    /// A rate limit is not `RPS[/BURST]` with numbers from 1 to 1 000 000.
    #[error("invalid rate limit {0:?}: expected RPS or RPS/BURST, each from 1 to 1000000")]
    InvalidRateLimit(String),
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
    fn rate_limits_admit_a_burst_then_the_rate() {
        let limit = RateLimit::parse("10/3").unwrap_or_else(|e| panic!("{e}"));
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(
                limit
                    .admit(tat, 0)
                    .unwrap_or_else(|wait| panic!("waited {wait}")),
            );
        }
        assert_eq!(
            limit.admit(tat, 0),
            Err(100_000),
            "the fourth waits one interval"
        );
        assert!(
            limit.admit(tat, 100_000).is_ok(),
            "one interval later one more fits"
        );
        assert_eq!(RateLimit::parse("5").map(|l| l.burst), Ok(5));
        for bad in ["0", "x", "5/0", "1/2/3", "2000000"] {
            assert!(RateLimit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_must_be_present_and_bounded() {
        assert!(validate_tenant_name("Acme Corp").is_ok());
        assert!(validate_tenant_name("  ").is_err());
        assert!(validate_tenant_name(&"x".repeat(201)).is_err());
    }
}
