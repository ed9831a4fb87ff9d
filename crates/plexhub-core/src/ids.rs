//! Plugin ids and service names: the two names every other rule keys on.
//!
//! Both are parsed once at the edge; a value of these types is valid by construction.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The prefix every plugin id starts with.
const PLUGIN_ID_PREFIX: &str = "plugin-";

/// Longest accepted plugin id, in bytes (all accepted characters are ASCII).
pub const PLUGIN_ID_MAX_LEN: usize = 64;

/// Longest accepted service name, in bytes (all accepted characters are ASCII).
pub const SERVICE_NAME_MAX_LEN: usize = 128;

/// Why a plugin id or service name was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The plugin id does not start with `plugin-`, or nothing follows the prefix.
    #[error(
        "plugin id must start with \"plugin-\" followed by lowercase letters, digits or hyphens"
    )]
    PluginIdFormat,
    /// The plugin id contains a character outside `[a-z0-9-]`.
    #[error("plugin id contains {found:?}; only lowercase letters, digits and hyphens are allowed")]
    PluginIdCharacter {
        /// The first offending character.
        found: char,
    },
    /// The plugin id is longer than [`PLUGIN_ID_MAX_LEN`].
    #[error("plugin id must be at most {max} characters long, got {len}", max = PLUGIN_ID_MAX_LEN)]
    PluginIdTooLong {
        /// Length of the rejected id.
        len: usize,
    },
    /// The service name is not made of exactly two dot-separated segments.
    #[error(
        "service name must be exactly two dot-separated segments like \"crm.contacts\", got {segments} segment(s)"
    )]
    ServiceNameSegments {
        /// How many segments the rejected name had.
        segments: usize,
    },
    /// One of the two segments of the service name is empty.
    #[error("service name segments must not be empty (expected a name like \"crm.contacts\")")]
    ServiceNameEmptySegment,
    /// The service name contains a character outside `[a-z0-9-]` (besides the one dot).
    #[error(
        "service name contains {found:?}; segments may only contain lowercase letters, digits and hyphens"
    )]
    ServiceNameCharacter {
        /// The first offending character.
        found: char,
    },
    /// The service name is longer than [`SERVICE_NAME_MAX_LEN`].
    #[error("service name must be at most {max} characters long, got {len}", max = SERVICE_NAME_MAX_LEN)]
    ServiceNameTooLong {
        /// Length of the rejected name.
        len: usize,
    },
}

/// Whether `c` may appear in a plugin id suffix or a service name segment.
fn is_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// Whether `name` is a valid service name, in one pass over its bytes: the gateway parses the
/// service of every proxied call. Anything else goes through [`ServiceName::parse`]'s checks,
/// which say what is wrong.
fn is_plain_service_name(name: &[u8]) -> bool {
    let mut dot = None;
    for (at, &byte) in name.iter().enumerate() {
        match byte {
            b'.' if dot.is_none() => dot = Some(at),
            b'a'..=b'z' | b'0'..=b'9' | b'-' => {}
            _ => return false,
        }
    }
    name.len() <= SERVICE_NAME_MAX_LEN && dot.is_some_and(|at| at > 0 && at + 1 < name.len())
}

/// A plugin id such as `plugin-crm`: `plugin-` followed by lowercase letters, digits or hyphens,
/// at most 64 characters in total.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PluginId(String);

impl PluginId {
    /// Parses a plugin id, rejecting anything that does not follow the `plugin-…` rule.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let len = input.chars().count();
        if len > PLUGIN_ID_MAX_LEN {
            return Err(NameError::PluginIdTooLong { len });
        }
        let rest = input
            .strip_prefix(PLUGIN_ID_PREFIX)
            .filter(|rest| !rest.is_empty())
            .ok_or(NameError::PluginIdFormat)?;
        if let Some(found) = rest.chars().find(|&c| !is_name_char(c)) {
            return Err(NameError::PluginIdCharacter { found });
        }
        Ok(Self(input.to_owned()))
    }

    /// The id as written, e.g. `plugin-crm`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A service name such as `crm.contacts`: exactly two dot-separated segments of lowercase
/// letters, digits or hyphens, at most 128 characters in total.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceName(String);

impl ServiceName {
    /// Parses a service name, rejecting anything but `segment.segment`.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        if is_plain_service_name(input.as_bytes()) {
            return Ok(Self(input.to_owned()));
        }
        Self::parse_explained(input)
    }

    /// Parses a service name check by check, so that a refusal says what is wrong.
    fn parse_explained(input: &str) -> Result<Self, NameError> {
        let len = input.chars().count();
        if len > SERVICE_NAME_MAX_LEN {
            return Err(NameError::ServiceNameTooLong { len });
        }
        // One pass for the common, valid name; the segments are counted only to explain a
        // refusal.
        let Some((plugin, service)) = input
            .split_once('.')
            .filter(|(_, rest)| !rest.contains('.'))
        else {
            let segments = input.split('.').count();
            return Err(NameError::ServiceNameSegments { segments });
        };
        if plugin.is_empty() || service.is_empty() {
            return Err(NameError::ServiceNameEmptySegment);
        }
        if let Some(found) = input.chars().find(|&c| c != '.' && !is_name_char(c)) {
            return Err(NameError::ServiceNameCharacter { found });
        }
        Ok(Self(input.to_owned()))
    }

    /// The name as written, e.g. `crm.contacts`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Display, `AsRef<str>`, `FromStr` and string serde for a parsed name newtype.
macro_rules! string_name {
    ($ty:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_name!(PluginId);
string_name!(ServiceName);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plugin_id_accepts_valid_ids() {
        for id in [
            "plugin-crm",
            "plugin-analytics",
            "plugin-a",
            "plugin-0",
            "plugin--",
            "plugin-my-plugin-2",
        ] {
            let parsed = PluginId::parse(id).unwrap();
            assert_eq!(parsed.as_str(), id);
            assert_eq!(parsed.to_string(), id);
        }
    }

    #[test]
    fn plugin_id_rejects_invalid_ids_with_reason() {
        let cases = [
            ("", NameError::PluginIdFormat),
            ("plugin-", NameError::PluginIdFormat),
            ("plugin", NameError::PluginIdFormat),
            ("crm", NameError::PluginIdFormat),
            ("invalid-id", NameError::PluginIdFormat),
            ("Plugin-crm", NameError::PluginIdFormat),
            (" plugin-crm", NameError::PluginIdFormat),
            ("plugin-CRM", NameError::PluginIdCharacter { found: 'C' }),
            ("plugin-crm ", NameError::PluginIdCharacter { found: ' ' }),
            ("plugin-crm.x", NameError::PluginIdCharacter { found: '.' }),
            ("plugin-crm_x", NameError::PluginIdCharacter { found: '_' }),
            ("plugin-é", NameError::PluginIdCharacter { found: 'é' }),
        ];
        for (input, expected) in cases {
            assert_eq!(PluginId::parse(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn plugin_id_length_limit_is_64() {
        let max = format!("plugin-{}", "a".repeat(64 - 7));
        assert_eq!(max.len(), 64);
        assert!(PluginId::parse(&max).is_ok());
        let over = format!("{max}a");
        assert_eq!(
            PluginId::parse(&over),
            Err(NameError::PluginIdTooLong { len: 65 })
        );
    }

    #[test]
    fn service_name_accepts_two_segments() {
        for name in [
            "crm.contacts",
            "crm.deals",
            "analytics.reports",
            "a.b",
            "my-plugin.sub-resource-2",
        ] {
            assert_eq!(ServiceName::parse(name).unwrap().as_str(), name);
        }
    }

    proptest::proptest! {
        /// The one-pass check accepts exactly what the explaining checks accept.
        #[test]
        fn plain_service_name_check_agrees_with_the_explained_one(
            input in "[ab0C.\\-_ é]{0,6}|[a-z]{60,70}\\.[a-z]{60,70}"
        ) {
            proptest::prop_assert_eq!(
                is_plain_service_name(input.as_bytes()),
                ServiceName::parse_explained(&input).is_ok(),
                "input {:?}", input
            );
        }
    }

    #[test]
    fn service_name_rejects_invalid_names_with_reason() {
        let cases = [
            ("", NameError::ServiceNameSegments { segments: 1 }),
            ("crm", NameError::ServiceNameSegments { segments: 1 }),
            (
                "invalid-name",
                NameError::ServiceNameSegments { segments: 1 },
            ),
            ("crm.a.b", NameError::ServiceNameSegments { segments: 3 }),
            (".contacts", NameError::ServiceNameEmptySegment),
            ("crm.", NameError::ServiceNameEmptySegment),
            ("CRM.x", NameError::ServiceNameCharacter { found: 'C' }),
            (
                "crm.Contacts",
                NameError::ServiceNameCharacter { found: 'C' },
            ),
            (
                "invalid name.x",
                NameError::ServiceNameCharacter { found: ' ' },
            ),
            (
                "crm.con_tacts",
                NameError::ServiceNameCharacter { found: '_' },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(ServiceName::parse(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn service_name_length_limit_is_128() {
        let max = format!("{}.{}", "a".repeat(64), "b".repeat(63));
        assert_eq!(max.len(), 128);
        assert!(ServiceName::parse(&max).is_ok());
        let over = format!("{max}b");
        assert_eq!(
            ServiceName::parse(&over),
            Err(NameError::ServiceNameTooLong { len: 129 })
        );
    }

    #[test]
    fn error_messages_are_human() {
        assert_eq!(
            NameError::PluginIdFormat.to_string(),
            "plugin id must start with \"plugin-\" followed by lowercase letters, digits or hyphens"
        );
        assert_eq!(
            PluginId::parse("plugin-A").unwrap_err().to_string(),
            "plugin id contains 'A'; only lowercase letters, digits and hyphens are allowed"
        );
        assert_eq!(
            ServiceName::parse("crm").unwrap_err().to_string(),
            "service name must be exactly two dot-separated segments like \"crm.contacts\", got 1 segment(s)"
        );
        assert_eq!(
            PluginId::parse(&"plugin-".repeat(10))
                .unwrap_err()
                .to_string(),
            "plugin id must be at most 64 characters long, got 70"
        );
    }

    #[test]
    fn names_serialize_as_strings_and_deserialize_through_parse() {
        let id = PluginId::parse("plugin-crm").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"plugin-crm\"");
        let name = ServiceName::parse("crm.contacts").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"crm.contacts\"");

        let back: PluginId = serde_json::from_str("\"plugin-crm\"").unwrap();
        assert_eq!(back, id);
        assert!(serde_json::from_str::<PluginId>("\"crm\"").is_err());
        assert!(serde_json::from_str::<ServiceName>("\"crm\"").is_err());
    }

    #[test]
    fn names_order_lexicographically() {
        let mut ids = ["plugin-b", "plugin-a", "plugin-c"].map(|s| PluginId::parse(s).unwrap());
        ids.sort();
        assert_eq!(
            ids.map(|id| id.to_string()),
            ["plugin-a", "plugin-b", "plugin-c"]
        );
    }
}
