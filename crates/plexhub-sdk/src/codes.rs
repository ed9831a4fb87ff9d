//! The hub's stable error codes, as a Rust enum.

use serde::{Deserialize, Serialize};

/// A stable error code of the hub (`error.code` in its answers). Codes this SDK does not know
/// yet (a newer hub) are [`ErrorCode::Unknown`]; the text is still in [`crate::HubError::message`].
///
/// ```
/// use plexhub_sdk::ErrorCode;
/// assert_eq!(ErrorCode::parse("PERMISSION_DENIED"), ErrorCode::PermissionDenied);
/// assert_eq!(ErrorCode::parse("SOMETHING_NEW"), ErrorCode::Unknown);
/// assert_eq!(ErrorCode::RateLimited.to_string(), "RATE_LIMITED");
/// assert!(ErrorCode::UpstreamUnreachable.is_target_unavailable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is its code; README's error table explains them
pub enum ErrorCode {
    Unauthenticated,
    Forbidden,
    TenantSuspended,
    TenantMismatch,
    TenantRequired,
    TenantNotFound,
    TenantExists,
    InvalidSlug,
    MalformedJson,
    InvalidBody,
    InvalidParameter,
    UnsupportedMediaType,
    PayloadTooLarge,
    NotFound,
    MethodNotAllowed,
    InvalidManifest,
    VersionExists,
    PluginNotFound,
    VersionNotFound,
    AlreadyInstalled,
    NotInstalled,
    InvalidTransition,
    UnknownGrant,
    NotCallable,
    DependencyUnmet,
    InvalidDependencies,
    DependencyConflict,
    HasDependents,
    CredentialNotFound,
    PluginNotCaller,
    ServiceOwned,
    OriginNotAllowed,
    ServiceNotFound,
    InstanceNotFound,
    InvalidName,
    OwnerMismatch,
    NotOwner,
    ValueTooLarge,
    DataNotFound,
    PreconditionFailed,
    TransactionFailed,
    ServiceUnavailable,
    PluginMismatch,
    CallerMismatch,
    CallerNotActive,
    AccessDenied,
    EndpointNotFound,
    PermissionDenied,
    UpstreamTimeout,
    RequestBodyTimeout,
    MalformedBody,
    UpstreamUnreachable,
    UpstreamFailed,
    UpstreamTls,
    UpstreamResponseTooLarge,
    RateLimited,
    TopicNotOwned,
    SubscriptionNotAllowed,
    DeadLetterNotFound,
    Internal,
    /// A code this version of the SDK does not know.
    #[serde(other)]
    Unknown,
}

impl std::fmt::Display for ErrorCode {
    /// The code as the hub writes it, e.g. `PERMISSION_DENIED`.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_value(self).unwrap_or_default();
        formatter.write_str(text.as_str().unwrap_or("UNKNOWN"))
    }
}

impl ErrorCode {
    /// The code for its text (`Unknown` for one this SDK does not know).
    pub fn parse(code: &str) -> Self {
        serde_json::from_value(serde_json::Value::from(code)).unwrap_or(Self::Unknown)
    }

    /// Whether the called plugin cannot be reached right now (no healthy replica, refused or
    /// timed-out connection, not discoverable): worth a later retry or a "try again" message,
    /// not a bug report.
    pub fn is_target_unavailable(self) -> bool {
        matches!(
            self,
            Self::ServiceUnavailable
                | Self::ServiceNotFound
                | Self::UpstreamTimeout
                | Self::UpstreamUnreachable
                | Self::UpstreamFailed
        )
    }
}
