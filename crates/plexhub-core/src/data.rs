//! Shared data: namespaced key/value entries per tenant, each owned by one plugin, with an
//! optional expiry and a revision that grows on every write.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::PluginId;
use crate::tenant::TenantId;

/// Longest namespace or key, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest accepted TTL: one year, in seconds.
pub const MAX_TTL_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Why shared-data input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    /// A namespace or key breaks the naming rule.
    #[error(
        "invalid {what} {text:?}: use 1-200 characters without '/' or control characters, and not '.' or '..'"
    )]
    InvalidName {
        /// `namespace` or `key`.
        what: &'static str,
        /// The rejected text.
        text: String,
    },
    /// The value is JSON `null`.
    #[error("value must not be null (delete the key instead)")]
    NullValue,
    /// The TTL is not a positive number of seconds up to one year.
    #[error("ttl must be a positive number of seconds, at most one year (31536000); got {0}")]
    InvalidTtl(String),
}

fn check_name(what: &'static str, text: &str) -> Result<String, DataError> {
    let chars = text.chars().count();
    let valid = (1..=MAX_NAME_CHARS).contains(&chars)
        && text != "."
        && text != ".."
        && !text.chars().any(|c| c == '/' || c.is_control());
    if valid {
        Ok(text.to_owned())
    } else {
        Err(DataError::InvalidName {
            what,
            text: text.to_owned(),
        })
    }
}

macro_rules! name_type {
    ($name:ident, $what:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses the text: 1-200 characters, no `/` or control characters, not `.`/`..`.
            pub fn parse(text: &str) -> Result<Self, DataError> {
                check_name($what, text).map(Self)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = DataError;

            fn try_from(text: String) -> Result<Self, DataError> {
                Self::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }
    };
}

name_type!(
    Namespace,
    "namespace",
    "A shared-data namespace, e.g. `crm.cache`."
);
name_type!(DataKey, "key", "A key within a namespace.");

/// Checks a value: any JSON except `null`.
pub fn check_value(value: &Value) -> Result<(), DataError> {
    if value.is_null() {
        Err(DataError::NullValue)
    } else {
        Ok(())
    }
}

/// Parses a TTL given as a JSON number or numeric string (as the original accepted `"60"`)
/// into milliseconds: positive, at most one year.
pub fn parse_ttl(ttl: &Value) -> Result<i64, DataError> {
    let seconds = match ttl {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    match seconds {
        Some(s) if s.is_finite() && s > 0.0 && s <= MAX_TTL_SECONDS => {
            // At least one millisecond, so a tiny positive TTL is still a TTL.
            Ok(((s * 1000.0).round() as i64).max(1))
        }
        _ => Err(DataError::InvalidTtl(ttl.to_string())),
    }
}

/// One shared-data entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Namespace.
    pub namespace: Namespace,
    /// Key.
    pub key: DataKey,
    /// The value (never `null`).
    pub value: Value,
    /// The plugin that may overwrite or delete it.
    pub owner: PluginId,
    /// Grows by one on every write of the key.
    pub revision: i64,
    /// When it stops existing, epoch milliseconds.
    pub expires_at_ms: Option<i64>,
    /// Last write, epoch milliseconds.
    pub updated_at_ms: i64,
}

impl Entry {
    /// Whether the entry exists at `now_ms`: an entry is gone from its expiry instant on.
    pub fn is_live(&self, now_ms: i64) -> bool {
        is_live(self.expires_at_ms, now_ms)
    }
}

/// Whether something expiring at `expires_at_ms` still exists at `now_ms`.
pub fn is_live(expires_at_ms: Option<i64>, now_ms: i64) -> bool {
    expires_at_ms.is_none_or(|expires| now_ms < expires)
}

/// A condition on the current state of a key for a write to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Always.
    None,
    /// Only if the key exists at this revision (`If-Match`).
    Revision(i64),
    /// Only if the key does not exist (`If-None-Match: *`).
    Absent,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_reject_slashes_controls_dots_and_length() {
        for ok in [
            "crm",
            "crm.cache",
            "b:c",
            "a b",
            "é",
            &"x".repeat(200),
            "...",
        ] {
            assert!(Namespace::parse(ok).is_ok(), "{ok:?}");
            assert!(DataKey::parse(ok).is_ok(), "{ok:?}");
        }
        for bad in ["", ".", "..", "a/b", "tab\there", "nl\n", &"x".repeat(201)] {
            assert!(Namespace::parse(bad).is_err(), "{bad:?}");
            assert!(DataKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ttls_are_positive_seconds_up_to_a_year() {
        assert_eq!(parse_ttl(&json!(60)), Ok(60_000));
        assert_eq!(parse_ttl(&json!("60")), Ok(60_000));
        assert_eq!(parse_ttl(&json!(1.5)), Ok(1_500));
        assert_eq!(parse_ttl(&json!(0.0001)), Ok(1));
        assert_eq!(parse_ttl(&json!(31_536_000)), Ok(31_536_000_000));
        for bad in [
            json!(0),
            json!(-1),
            json!("abc"),
            json!(31_536_001),
            json!(true),
            json!(null),
            json!(""),
        ] {
            assert!(parse_ttl(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn null_is_the_only_refused_value() {
        assert!(check_value(&json!(null)).is_err());
        for ok in [
            json!(false),
            json!(0),
            json!(""),
            json!([]),
            json!({}),
            json!({"a": [1, {"b": null}]}),
        ] {
            assert!(check_value(&ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn expiry_is_exclusive_at_the_instant() {
        assert!(is_live(None, i64::MAX));
        assert!(is_live(Some(1000), 999));
        assert!(!is_live(Some(1000), 1000), "not even one millisecond late");
    }
}
