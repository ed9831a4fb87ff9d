//! The lifecycle of a catalog version: review statuses, the yank flag, which transitions an
//! operator may make, and whether a version may be installed.
//!
//! `DRAFT → PENDING_REVIEW → PUBLISHED | REJECTED`, `PUBLISHED → DEPRECATED`; independently a
//! published (or deprecated) version may be yanked and unyanked. Only a published or deprecated
//! version that is not yanked is installable; existing installations of any version keep
//! running.

use std::fmt;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// Longest reason, deprecation message or replacement text, in characters.
pub const NOTE_MAX_CHARS: usize = 1000;

/// Review status of a catalog version (the platform's `PluginStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VersionStatus {
    /// Stored, not yet submitted for review.
    Draft,
    /// Waiting for a reviewer.
    PendingReview,
    /// Approved (or published directly): installable unless yanked.
    Published,
    /// Published, then deprecated: still installable unless yanked, with a message.
    Deprecated,
    /// Refused by a reviewer: never installable.
    Rejected,
}

impl VersionStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 5] = [
        Self::Draft,
        Self::PendingReview,
        Self::Published,
        Self::Deprecated,
        Self::Rejected,
    ];

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::PendingReview => "PENDING_REVIEW",
            Self::Published => "PUBLISHED",
            Self::Deprecated => "DEPRECATED",
            Self::Rejected => "REJECTED",
        }
    }

    /// Parses the stored and wire form.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// How an explanation words a version in this status that cannot be installed.
    fn unavailable_words(self) -> &'static str {
        match self {
            Self::Draft => "a draft, not published",
            Self::PendingReview => "pending review, not published yet",
            Self::Rejected => "rejected by review",
            Self::Published | Self::Deprecated => "published",
        }
    }
}

impl fmt::Display for VersionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a catalog version stands: its status and whether it is yanked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Standing {
    /// Review status.
    pub status: VersionStatus,
    /// Yanked: no new install or plan picks it.
    pub yanked: bool,
}

impl Standing {
    /// A published, unyanked version.
    pub const PUBLISHED: Self = Self {
        status: VersionStatus::Published,
        yanked: false,
    };

    /// Whether a new install or plan may pick the version.
    pub fn installable(self) -> bool {
        matches!(
            self.status,
            VersionStatus::Published | VersionStatus::Deprecated
        ) && !self.yanked
    }

    /// Why the version cannot be installed, in words (`None` when it can): "yanked",
    /// "pending review, not published yet"…
    pub fn unavailable_reason(self) -> Option<&'static str> {
        if self.installable() {
            None
        } else if self.yanked {
            Some("yanked")
        } else {
            Some(self.status.unavailable_words())
        }
    }

    /// The actions allowed from here, in a fixed order.
    pub fn allowed(self) -> Vec<CatalogAction> {
        CatalogAction::ALL
            .into_iter()
            .filter(|action| self.next(*action).is_some())
            .collect()
    }

    /// Where `action` takes the version, or why it cannot.
    pub fn apply(self, action: CatalogAction) -> Result<Self, InvalidTransition> {
        self.next(action).ok_or_else(|| InvalidTransition {
            action,
            from: self,
            allowed: self.allowed(),
        })
    }

    /// Where `action` takes the version, if it may.
    fn next(self, action: CatalogAction) -> Option<Self> {
        use VersionStatus::{Deprecated, Draft, PendingReview, Published, Rejected};
        match (action, self.status, self.yanked) {
            (CatalogAction::Submit, Draft, _) => Some(Self {
                status: PendingReview,
                ..self
            }),
            (CatalogAction::Approve, PendingReview, _) => Some(Self {
                status: Published,
                ..self
            }),
            (CatalogAction::Reject, PendingReview, _) => Some(Self {
                status: Rejected,
                ..self
            }),
            (CatalogAction::Deprecate, Published, _) => Some(Self {
                status: Deprecated,
                ..self
            }),
            (CatalogAction::Yank, Published | Deprecated, false) => Some(Self {
                yanked: true,
                ..self
            }),
            (CatalogAction::Unyank, _, true) => Some(Self {
                yanked: false,
                ..self
            }),
            _ => None,
        }
    }
}

impl fmt::Display for Standing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.yanked {
            write!(f, "{} (yanked)", self.status)
        } else {
            write!(f, "{}", self.status)
        }
    }
}

/// An operator's transition of a catalog version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CatalogAction {
    /// DRAFT → PENDING_REVIEW.
    Submit,
    /// PENDING_REVIEW → PUBLISHED.
    Approve,
    /// PENDING_REVIEW → REJECTED (with the reviewer's reason).
    Reject,
    /// PUBLISHED → DEPRECATED (with a message and an optional replacement).
    Deprecate,
    /// Sets the yank flag of a published or deprecated version.
    Yank,
    /// Clears the yank flag.
    Unyank,
}

impl CatalogAction {
    /// Every action, in the order listings show them.
    pub const ALL: [Self; 6] = [
        Self::Submit,
        Self::Approve,
        Self::Reject,
        Self::Deprecate,
        Self::Yank,
        Self::Unyank,
    ];

    /// The wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Approve => "approve",
            Self::Reject => "reject",
            Self::Deprecate => "deprecate",
            Self::Yank => "yank",
            Self::Unyank => "unyank",
        }
    }

    /// Parses the wire form.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_str() == text)
    }
}

impl fmt::Display for CatalogAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition that the version's standing does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a version that is {from}; allowed: {}", allowed_text(.allowed))]
pub struct InvalidTransition {
    /// What was asked.
    pub action: CatalogAction,
    /// Where the version stands.
    pub from: Standing,
    /// What may be asked instead.
    pub allowed: Vec<CatalogAction>,
}

fn allowed_text(allowed: &[CatalogAction]) -> String {
    if allowed.is_empty() {
        return "nothing (the status is final)".to_owned();
    }
    let names: Vec<&str> = allowed.iter().map(|action| action.as_str()).collect();
    names.join(", ")
}

/// Checks a reason, message or replacement text: non-blank and at most [`NOTE_MAX_CHARS`].
pub fn check_note(field: &str, text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        Err(format!("{field} must not be blank"))
    } else if text.chars().count() > NOTE_MAX_CHARS {
        Err(format!(
            "{field} is longer than {NOTE_MAX_CHARS} characters"
        ))
    } else {
        Ok(())
    }
}

/// The version listings describe among `items`: the highest installable release, else the
/// highest installable pre-release; when none is installable, the same among all of them.
pub fn latest<T>(
    items: &[T],
    version: impl Fn(&T) -> &crate::version::Version,
    installable: impl Fn(&T) -> bool,
) -> Option<&T> {
    let highest = |installable_only: bool| {
        let candidates = || {
            items
                .iter()
                .filter(|item| !installable_only || installable(item))
        };
        candidates()
            .filter(|item| !version(item).is_prerelease())
            .max_by(|a, b| version(a).cmp(version(b)))
            .or_else(|| candidates().max_by(|a, b| version(a).cmp(version(b))))
    };
    highest(true).or_else(|| highest(false))
}

/// The content address of a manifest: `sha256:` and the lowercase hex SHA-256 of its stored
/// text (compact JSON with keys in sorted order, so equal manifests have equal digests).
pub fn manifest_digest(manifest: &serde_json::Value) -> String {
    let digest = Sha256::digest(manifest.to_string().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn standing(status: VersionStatus, yanked: bool) -> Standing {
        Standing { status, yanked }
    }

    #[test]
    fn review_path_reaches_published() {
        let draft = standing(VersionStatus::Draft, false);
        let pending = draft.apply(CatalogAction::Submit).unwrap();
        assert_eq!(pending.status, VersionStatus::PendingReview);
        assert!(!pending.installable());
        let published = pending.apply(CatalogAction::Approve).unwrap();
        assert_eq!(published, Standing::PUBLISHED);
        assert!(published.installable());
        let rejected = pending.apply(CatalogAction::Reject).unwrap();
        assert_eq!(rejected.status, VersionStatus::Rejected);
        assert!(rejected.allowed().is_empty());
    }

    #[test]
    fn yank_keeps_status_and_blocks_installs() {
        let deprecated = Standing::PUBLISHED.apply(CatalogAction::Deprecate).unwrap();
        assert!(deprecated.installable());
        let yanked = deprecated.apply(CatalogAction::Yank).unwrap();
        assert_eq!(yanked.status, VersionStatus::Deprecated);
        assert!(!yanked.installable());
        assert_eq!(yanked.unavailable_reason(), Some("yanked"));
        assert_eq!(yanked.allowed(), vec![CatalogAction::Unyank]);
        assert_eq!(yanked.apply(CatalogAction::Unyank).unwrap(), deprecated);
    }

    #[test]
    fn invalid_transition_names_the_allowed_ones() {
        let error = Standing::PUBLISHED
            .apply(CatalogAction::Approve)
            .unwrap_err();
        assert_eq!(
            error.allowed,
            vec![CatalogAction::Deprecate, CatalogAction::Yank]
        );
        assert_eq!(
            error.to_string(),
            "cannot approve a version that is PUBLISHED; allowed: deprecate, yank"
        );
        let draft = standing(VersionStatus::Draft, false);
        assert!(draft.apply(CatalogAction::Yank).is_err());
        assert!(draft.apply(CatalogAction::Unyank).is_err());
        assert_eq!(draft.unavailable_reason(), Some("a draft, not published"));
    }

    #[test]
    fn every_status_round_trips() {
        for status in VersionStatus::ALL {
            assert_eq!(VersionStatus::parse(status.as_str()), Some(status));
        }
        for action in CatalogAction::ALL {
            assert_eq!(CatalogAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(VersionStatus::parse("published"), None);
    }

    #[test]
    fn latest_prefers_installable_releases() {
        let v = |text: &str| crate::version::Version::parse(text).unwrap();
        let versions = [
            (v("1.0.0"), true),
            (v("1.1.0"), false),
            (v("2.0.0-rc.1"), true),
        ];
        let pick = |items: &[(crate::version::Version, bool)]| {
            latest(items, |(version, _)| version, |(_, ok)| *ok).map(|(version, _)| version.clone())
        };
        assert_eq!(pick(&versions), Some(v("1.0.0")));
        assert_eq!(pick(&versions[1..]), Some(v("2.0.0-rc.1")));
        assert_eq!(
            pick(&versions[1..2]),
            Some(v("1.1.0")),
            "none installable: any"
        );
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn digests_ignore_key_order_and_see_content() {
        let a = serde_json::json!({"id": "plugin-a", "version": "1.0.0"});
        let b: serde_json::Value =
            serde_json::from_str(r#"{"version": "1.0.0", "id": "plugin-a"}"#).unwrap();
        assert_eq!(manifest_digest(&a), manifest_digest(&b));
        assert_eq!(manifest_digest(&a).len(), "sha256:".len() + 64);
        let c = serde_json::json!({"id": "plugin-a", "version": "1.0.1"});
        assert_ne!(manifest_digest(&a), manifest_digest(&c));
    }

    #[test]
    fn notes_are_checked() {
        assert!(check_note("reason", "  ").is_err());
        assert!(check_note("reason", &"x".repeat(NOTE_MAX_CHARS + 1)).is_err());
        assert!(check_note("reason", "broken build").is_ok());
    }
}
