//! Service registry rules: statuses, health from heartbeats, instances, and what discovery may
//! return. Time-based state is computed from stored timestamps, so every hub instance agrees.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::ids::{PluginId, ServiceName};
use crate::installation::BaseUrl;
use crate::manifest::EndpointSpec;
use crate::tenant::TenantId;
use crate::version::Version;

/// The instance the seed-compatible routes manage.
pub const DEFAULT_INSTANCE: &str = "default";

/// Health of a service instance, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ServiceStatus {
    /// Heartbeats arrive on time.
    Healthy,
    /// Registered by activation and not heard from yet (no heartbeat, no answered call);
    /// discoverable and callable. The seed routes show it as HEALTHY, as the original did.
    Unknown,
    /// Three heartbeat intervals missed, or reported degraded by the plugin.
    Degraded,
    /// No heartbeat for `stale-after`, or reported unavailable by the plugin.
    Unavailable,
}

impl ServiceStatus {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "HEALTHY",
            Self::Unknown => "UNKNOWN",
            Self::Degraded => "DEGRADED",
            Self::Unavailable => "UNAVAILABLE",
        }
    }

    /// Parses the stored and wire form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "HEALTHY" => Some(Self::Healthy),
            "UNKNOWN" => Some(Self::Unknown),
            "DEGRADED" => Some(Self::Degraded),
            "UNAVAILABLE" => Some(Self::Unavailable),
            _ => None,
        }
    }

    /// Parses what a plugin may report about itself (not UNKNOWN, which only the hub says).
    pub fn parse_report(text: &str) -> Option<Self> {
        Self::parse(text).filter(|status| *status != Self::Unknown)
    }

    /// Whether discovery may return a service in this state.
    pub fn is_discoverable(self) -> bool {
        self != Self::Unavailable
    }

    /// The status as the seed-compatible routes show it: they know only HEALTHY, DEGRADED and
    /// UNAVAILABLE, and the original showed a service it had not heard from as HEALTHY.
    pub fn seed_form(self) -> Self {
        match self {
            Self::Unknown => Self::Healthy,
            other => other,
        }
    }
}

impl fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How heartbeats translate into health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// How often plugins are asked to send heartbeats, in milliseconds.
    pub heartbeat_interval_ms: i64,
    /// Silence after which an instance is UNAVAILABLE, in milliseconds.
    pub stale_after_ms: i64,
}

/// Missed intervals after which an instance is DEGRADED.
pub const MISSED_HEARTBEATS_FOR_DEGRADED: i64 = 3;

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 15_000,
            stale_after_ms: 300_000,
        }
    }
}

impl HealthPolicy {
    /// The effective status: the worse of what the plugin last reported and what the silence
    /// since `last_seen_ms` implies at `now_ms`; UNKNOWN stays UNKNOWN (a replica that was never
    /// heard from is not expected to beat).
    pub fn status(&self, reported: ServiceStatus, last_seen_ms: i64, now_ms: i64) -> ServiceStatus {
        if reported == ServiceStatus::Unknown {
            return reported;
        }
        let silence = now_ms.saturating_sub(last_seen_ms);
        let implied = if silence >= self.stale_after_ms {
            ServiceStatus::Unavailable
        } else if silence >= MISSED_HEARTBEATS_FOR_DEGRADED * self.heartbeat_interval_ms {
            ServiceStatus::Degraded
        } else {
            ServiceStatus::Healthy
        };
        reported.max(implied)
    }

    /// The first moment after `now_ms` at which silence since `last_seen_ms` changes the
    /// status of a replica that reported `reported` (`i64::MAX` when it cannot change any more
    /// without a new report).
    pub fn next_change_ms(&self, reported: ServiceStatus, last_seen_ms: i64, now_ms: i64) -> i64 {
        if reported == ServiceStatus::Unknown {
            return i64::MAX;
        }
        let degraded_at = last_seen_ms
            .saturating_add(MISSED_HEARTBEATS_FOR_DEGRADED * self.heartbeat_interval_ms);
        let unavailable_at = last_seen_ms.saturating_add(self.stale_after_ms);
        [degraded_at, unavailable_at]
            .into_iter()
            .find(|&at| at > now_ms)
            .unwrap_or(i64::MAX)
    }
}

/// Name of one replica of a service: `[a-z0-9][a-z0-9._-]{0,63}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct InstanceId(String);

impl InstanceId {
    /// Parses an instance id.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let bytes = text.as_bytes();
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(b);
        let valid = (1..=64).contains(&bytes.len())
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes.iter().all(allowed);
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(RegistryError::InvalidInstanceId(text.to_owned()))
        }
    }

    /// The instance the seed-compatible routes manage.
    pub fn default_instance() -> Self {
        Self(DEFAULT_INSTANCE.to_owned())
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One replica of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Replica name, unique within the service.
    pub id: InstanceId,
    /// Where this replica is reached.
    pub base_url: BaseUrl,
    /// The replica's own version, when it differs from the service's.
    pub version: Option<Version>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// What the plugin last said about itself (a heartbeat or registration says HEALTHY).
    pub reported: ServiceStatus,
    /// Why the plugin reported a degraded or unavailable state.
    pub reason: Option<String>,
    /// Last registration, heartbeat or health report, epoch milliseconds.
    pub last_seen_ms: i64,
}

/// A registered service of one plugin in one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Stable id (the same across re-registrations).
    pub id: String,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Owning plugin.
    pub plugin_id: PluginId,
    /// Service name, unique within the tenant.
    pub name: ServiceName,
    /// Service version.
    pub version: Version,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Declared endpoints, in registration order.
    pub endpoints: Vec<EndpointSpec>,
    /// Replicas, ordered by id.
    pub instances: Vec<Instance>,
}

impl Service {
    /// The replica discovery should route to, with its status: HEALTHY before DEGRADED before
    /// UNAVAILABLE, then the most recently seen.
    pub fn best_instance(
        &self,
        policy: &HealthPolicy,
        now_ms: i64,
    ) -> Option<(&Instance, ServiceStatus)> {
        self.instances
            .iter()
            .map(|i| (i, policy.status(i.reported, i.last_seen_ms, now_ms)))
            .min_by(|(a, sa), (b, sb)| sa.cmp(sb).then(b.last_seen_ms.cmp(&a.last_seen_ms)))
    }

    /// The service's status: its best instance's (UNAVAILABLE without instances).
    pub fn status(&self, policy: &HealthPolicy, now_ms: i64) -> ServiceStatus {
        self.best_instance(policy, now_ms)
            .map_or(ServiceStatus::Unavailable, |(_, status)| status)
    }

    /// Until when (exclusive) every replica's status, and so anything derived from them, stays
    /// what it is at `now_ms`.
    pub fn status_stable_until(&self, policy: &HealthPolicy, now_ms: i64) -> i64 {
        self.instances
            .iter()
            .map(|i| policy.next_change_ms(i.reported, i.last_seen_ms, now_ms))
            .min()
            .unwrap_or(i64::MAX)
    }

    /// The most recent `last_seen` of any instance.
    pub fn last_seen_ms(&self) -> Option<i64> {
        self.instances.iter().map(|i| i.last_seen_ms).max()
    }
}

/// Checks a list of endpoints for repeated (method, path) pairs and invalid paths.
pub fn check_endpoints(endpoints: &[EndpointSpec]) -> Result<(), RegistryError> {
    for (index, endpoint) in endpoints.iter().enumerate() {
        crate::manifest::check_endpoint_path(&endpoint.path).map_err(|reason| {
            RegistryError::InvalidEndpoint(format!("endpoints.{index}.path: {reason}"))
        })?;
        let repeated = endpoints[..index]
            .iter()
            .any(|e| e.method == endpoint.method && e.path == endpoint.path);
        if repeated {
            return Err(RegistryError::InvalidEndpoint(format!(
                "endpoints.{index}: {} {} is declared twice",
                endpoint.method, endpoint.path
            )));
        }
    }
    Ok(())
}

/// Why registry input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The instance id is not `[a-z0-9][a-z0-9._-]{0,63}`.
    #[error(
        "invalid instance id {0:?}: use 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    InvalidInstanceId(String),
    /// An endpoint is malformed or repeated.
    #[error("invalid endpoint {0}")]
    InvalidEndpoint(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::HttpMethod;

    const MINUTE: i64 = 60_000;

    #[test]
    fn silence_degrades_then_makes_unavailable() {
        let policy = HealthPolicy::default();
        let seen = 1_000_000;
        let at = |ms| policy.status(ServiceStatus::Healthy, seen, seen + ms);
        assert_eq!(at(0), ServiceStatus::Healthy);
        assert_eq!(at(44_999), ServiceStatus::Healthy);
        assert_eq!(
            at(45_000),
            ServiceStatus::Degraded,
            "3 missed 15 s intervals"
        );
        assert_eq!(at(5 * MINUTE - 1), ServiceStatus::Degraded);
        assert_eq!(at(5 * MINUTE), ServiceStatus::Unavailable);
    }

    #[test]
    fn the_next_status_change_is_predicted_exactly() {
        let policy = HealthPolicy::default();
        let seen = 1_000_000;
        assert_eq!(
            policy.next_change_ms(ServiceStatus::Healthy, seen, seen),
            seen + 45_000
        );
        assert_eq!(
            policy.next_change_ms(ServiceStatus::Healthy, seen, seen + 45_000),
            seen + 5 * MINUTE
        );
        assert_eq!(
            policy.next_change_ms(ServiceStatus::Healthy, seen, seen + 5 * MINUTE),
            i64::MAX
        );
        for offset in [0, 44_999, 45_000, 299_999] {
            let now = seen + offset;
            let until = policy.next_change_ms(ServiceStatus::Healthy, seen, now);
            let status = policy.status(ServiceStatus::Healthy, seen, now);
            assert_eq!(
                policy.status(ServiceStatus::Healthy, seen, until - 1),
                status
            );
            assert_ne!(policy.status(ServiceStatus::Healthy, seen, until), status);
        }
    }

    #[test]
    fn a_replica_never_heard_from_stays_unknown_and_callable() {
        let policy = HealthPolicy::default();
        for silence in [0, 45_000, 10 * MINUTE] {
            let status = policy.status(ServiceStatus::Unknown, 0, silence);
            assert_eq!(status, ServiceStatus::Unknown, "after {silence} ms");
            assert!(status.is_discoverable());
        }
        assert_eq!(
            policy.next_change_ms(ServiceStatus::Unknown, 0, 0),
            i64::MAX
        );
        assert_eq!(ServiceStatus::Unknown.seed_form(), ServiceStatus::Healthy);
        assert_eq!(
            ServiceStatus::parse("UNKNOWN"),
            Some(ServiceStatus::Unknown)
        );
        assert_eq!(
            ServiceStatus::parse_report("UNKNOWN"),
            None,
            "only the hub says UNKNOWN"
        );
        assert!(
            ServiceStatus::Healthy < ServiceStatus::Unknown,
            "a heard-from replica is preferred"
        );
        assert!(ServiceStatus::Unknown < ServiceStatus::Degraded);
    }

    #[test]
    fn a_reported_state_is_never_hidden_by_fresh_heartbeats() {
        let policy = HealthPolicy::default();
        assert_eq!(
            policy.status(ServiceStatus::Degraded, 0, 1),
            ServiceStatus::Degraded
        );
        assert_eq!(
            policy.status(ServiceStatus::Degraded, 0, 10 * MINUTE),
            ServiceStatus::Unavailable
        );
    }

    fn instance(id: &str, reported: ServiceStatus, last_seen_ms: i64) -> Instance {
        Instance {
            id: InstanceId::parse(id).expect("id"),
            base_url: BaseUrl::parse(&format!("http://{id}:80")).expect("url"),
            version: None,
            metadata: Map::new(),
            reported,
            reason: None,
            last_seen_ms,
        }
    }

    #[test]
    fn the_best_instance_is_healthy_first_then_most_recent() {
        let now = 10 * MINUTE;
        let mut service = Service {
            id: "s".into(),
            tenant_id: TenantId::new_random(),
            plugin_id: PluginId::parse("plugin-crm").expect("id"),
            name: ServiceName::parse("crm.contacts").expect("name"),
            version: Version::parse("1.0.0").expect("version"),
            metadata: Map::new(),
            endpoints: vec![],
            instances: vec![
                instance("a", ServiceStatus::Degraded, now),
                instance("b", ServiceStatus::Healthy, now - 1000),
                instance("c", ServiceStatus::Healthy, now - 500),
            ],
        };
        let policy = HealthPolicy::default();
        let (best, status) = service.best_instance(&policy, now).expect("best");
        assert_eq!((best.id.as_str(), status), ("c", ServiceStatus::Healthy));

        service.instances.truncate(1);
        assert_eq!(service.status(&policy, now), ServiceStatus::Degraded);
        service.instances.clear();
        assert_eq!(service.status(&policy, now), ServiceStatus::Unavailable);
    }

    #[test]
    fn instance_ids_are_restricted() {
        for ok in ["default", "pod-1", "a.b_c", "0"] {
            assert!(InstanceId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "Pod", "a/b", &"a".repeat(65)] {
            assert!(InstanceId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repeated_or_invalid_endpoints_are_rejected() {
        let endpoint = |method, path: &str| EndpointSpec {
            method,
            path: path.to_owned(),
            description: None,
            permissions: vec![],
            metadata: Map::new(),
        };
        assert!(
            check_endpoints(&[
                endpoint(HttpMethod::Get, "/a"),
                endpoint(HttpMethod::Post, "/a")
            ])
            .is_ok()
        );
        assert!(
            check_endpoints(&[
                endpoint(HttpMethod::Get, "/a"),
                endpoint(HttpMethod::Get, "/a")
            ])
            .is_err()
        );
        assert!(check_endpoints(&[endpoint(HttpMethod::Get, "/a/../b")]).is_err());
    }
}
