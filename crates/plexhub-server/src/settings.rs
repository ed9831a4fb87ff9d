//! The settings the server is built from. Loading them (flags, environment, file, defaults) is
//! the binary's job; this is the validated result.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use plexhub_core::registry::HealthPolicy;

use crate::state::Clock;

/// A string that must not appear in logs: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Validated server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: Secret,
    /// Redis URL in scaled mode.
    pub redis_url: Option<Secret>,
    /// `nats://…`: the event bus on NATS JetStream; `None`: in the database.
    pub events_url: Option<Secret>,
    /// Bearer token of the operator.
    pub admin_token: Secret,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest shared-data value (serialised JSON), in bytes.
    pub max_value_bytes: usize,
    /// Heartbeat interval and staleness threshold of the registry.
    pub health: HealthPolicy,
    /// How often the health sweep runs.
    pub sweep_interval: Duration,
    /// Time source (the system clock outside tests).
    pub clock: Clock,
    /// Limits and timeouts of calls forwarded to plugins.
    pub gateway: GatewaySettings,
    /// Keys that sign forwarded requests: the first signs, all are published.
    pub signing_keys: Vec<plexhub_core::signing::HubKey>,
    /// Limits, retention and delivery timing of the event bus.
    pub events: EventSettings,
    /// Header deadline and connection cap of client connections.
    pub connections: crate::connections::ConnectionLimits,
    /// Trust (and client certificate) for plugins served over https.
    pub upstream_tls: crate::upstream_tls::UpstreamTls,
    /// With several instances (Redis), serve shared data from each instance's cache too: reads
    /// about 7× faster, but a value written on another instance may be read in its old version
    /// for the feed's delay (milliseconds; up to 500 ms while Redis is silent). Off by default.
    pub cache_shared_data_when_scaled: bool,
    /// How long a web dashboard (`/ui`) session lasts after sign-in.
    pub ui_session_ttl: Duration,
    /// Whether a published catalog version waits for review (DRAFT, then submit and approve)
    /// instead of being PUBLISHED at once (the default).
    pub catalog_review: bool,
}

/// Limits, retention and delivery timing of the event bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSettings {
    /// Largest event (its CloudEvents JSON), in bytes (413 `PAYLOAD_TOO_LARGE` beyond).
    pub max_event_bytes: usize,
    /// How long published events stay in the log for replay.
    pub retention: Duration,
    /// Wait before the first retry of a failed delivery; doubled for each further attempt.
    pub retry_base: Duration,
    /// Longest wait between two attempts.
    pub retry_max: Duration,
    /// Time a subscriber has to answer a delivery.
    pub delivery_timeout: Duration,
    /// How often a hub looks for due deliveries without being woken up.
    pub poll_interval: Duration,
    /// Deliveries one hub has in flight at most.
    pub max_in_flight: usize,
    /// JetStream bus: partitions of each subscription's keyed events (keyed deliveries of one
    /// subscription in flight at most).
    pub partitions: u16,
    /// JetStream bus: largest size of one tenant's log in bytes; `None`: unlimited.
    pub max_log_bytes: Option<u64>,
    /// JetStream bus: copies of each stream in a JetStream cluster.
    pub replicas: usize,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            max_event_bytes: 256 * 1024,
            retention: Duration::from_secs(7 * 24 * 3600),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            delivery_timeout: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
            max_in_flight: 512,
            partitions: 16,
            max_log_bytes: None,
            replicas: 1,
        }
    }
}

/// Limits and timeouts of calls forwarded to plugins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewaySettings {
    /// Largest request body forwarded (413 `PAYLOAD_TOO_LARGE` beyond).
    pub max_request_bytes: u64,
    /// Largest response body forwarded (502 `UPSTREAM_RESPONSE_TOO_LARGE` beyond).
    pub max_response_bytes: u64,
    /// Time to open a connection to a plugin (502 `UPSTREAM_UNREACHABLE` beyond).
    pub connect_timeout: Duration,
    /// Time for a plugin to answer with its status and headers (504 `UPSTREAM_TIMEOUT`
    /// beyond), unless the endpoint's `metadata.timeoutMs` says otherwise.
    pub request_timeout: Duration,
    /// Longest pause in a caller's request body before the gateway gives up on it (408
    /// `REQUEST_BODY_TIMEOUT`, not the plugin's fault).
    pub request_body_timeout: Duration,
    /// Sign every forwarded request and event delivery (`X-Plexhub-Signature`). Turn off only
    /// where plugins are reachable through the hub alone.
    pub sign_requests: bool,
    /// The scheme of installations that did not choose one at install: HMAC-SHA256 with the
    /// installation's own secret (about 0.4 µs per request) or Ed25519 with the hub's key (about
    /// 19 µs); see `cargo bench -p plexhub-core --bench signing`.
    pub signing_scheme: plexhub_core::signing::SigningScheme,
    /// How long a rotated-out signing secret still signs (beside the new one).
    pub signing_overlap: Duration,
    /// Default token bucket per (tenant, calling plugin); `None` = unlimited.
    pub rate_limit_per_caller: Option<plexhub_core::tenant::RateLimit>,
    /// Default token bucket per tenant; `None` = unlimited.
    pub rate_limit_per_tenant: Option<plexhub_core::tenant::RateLimit>,
    /// How long the audit log keeps calls.
    pub audit_retention: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            max_request_bytes: 16 * 1024 * 1024,
            max_response_bytes: 64 * 1024 * 1024,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            request_body_timeout: Duration::from_secs(10),
            sign_requests: true,
            signing_scheme: plexhub_core::signing::SigningScheme::Hmac,
            signing_overlap: Duration::from_secs(24 * 3600),
            rate_limit_per_caller: None,
            rate_limit_per_tenant: None,
            audit_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}
