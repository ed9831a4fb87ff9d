//! Settings of `plexhub serve`: defaults, then `plexhub.toml`, then `PLEXHUB_*` environment
//! variables, then flags (each later source wins), validated into server [`Settings`].

use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};
use std::time::Duration;

use plexhub_core::registry::HealthPolicy;
use plexhub_core::signing::{HubKey, SigningScheme};
use plexhub_core::tenant::RateLimit;
use plexhub_server::{
    Clock, ConnectionLimits, EventSettings, GatewaySettings, Secret, Settings, UpstreamTls,
};
use serde::{Deserialize, Serialize};

/// Where state lives by default, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "plexhub-data";
/// Name of the generated admin token file inside the data dir.
const TOKEN_FILE: &str = "admin-token";
/// The request-signing keys file in the data dir.
const SIGNING_KEYS_FILE: &str = "signing-keys";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Every setting of `serve`; each field doubles as a `plexhub.toml` key and a `PLEXHUB_<KEY>`
/// environment variable.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServeConfig {
    /// `HOST:PORT` to listen on.
    pub listen: String,
    /// Directory for the SQLite file and the generated admin token.
    pub data_dir: PathBuf,
    /// `postgres://…` for scaled mode (default: SQLite in the data dir).
    pub database_url: Option<String>,
    /// `redis://…` for scaled mode.
    pub redis_url: Option<String>,
    /// `nats://…`: the event bus on NATS JetStream (default: in the database).
    pub events_url: Option<String>,
    /// With `events_url`: partitions of each subscription's keyed events.
    pub event_partitions: u16,
    /// With `events_url`: largest size of one tenant's event log in bytes (default: unlimited).
    pub event_log_max_bytes: Option<u64>,
    /// With `events_url`: copies of each stream in a JetStream cluster.
    pub event_replicas: usize,
    /// The admin token (default: generated into the data dir at first start).
    pub admin_token: Option<String>,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// `tracing` filter, e.g. `info` or `plexhub_server=debug,info`.
    pub log_level: String,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Largest shared-data value (serialised JSON) in bytes.
    pub max_value_bytes: usize,
    /// Milliseconds a client has to send a request's headers (also the idle keep-alive timeout).
    pub header_read_timeout_ms: u64,
    /// Client connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Seconds the listener keeps accepting after SIGTERM (not after Ctrl-C) while `/readyz`
    /// answers 503, so load balancers stop routing here first.
    pub drain_grace: u64,
    /// Seconds, once the listener is closed, for requests and event deliveries in flight to
    /// finish before their connections are cut.
    pub drain_timeout: u64,
    /// Seconds between the heartbeats plugins are asked to send; 3 missed → DEGRADED.
    pub heartbeat_interval: u64,
    /// Seconds without a heartbeat after which a service is UNAVAILABLE.
    pub stale_after: u64,
    /// Seconds between health sweeps.
    pub sweep_interval: u64,
    /// Largest request body the gateway forwards, in bytes.
    pub max_request_bytes: u64,
    /// Largest response body the gateway forwards, in bytes.
    pub max_response_bytes: u64,
    /// Milliseconds to connect to a plugin.
    pub upstream_connect_timeout_ms: u64,
    /// Milliseconds for a plugin to answer (an endpoint's `metadata.timeoutMs` overrides it).
    pub upstream_timeout_ms: u64,
    /// Milliseconds a caller's request body may pause before the gateway answers 408.
    pub request_body_timeout_ms: u64,
    /// PEM file of CA certificates trusted for https plugins besides the system's roots.
    pub upstream_ca_file: Option<PathBuf>,
    /// PEM certificate chain the hub shows to https plugins that require client certificates.
    pub upstream_client_cert: Option<PathBuf>,
    /// PEM private key of `upstream_client_cert`.
    pub upstream_client_key: Option<PathBuf>,
    /// Scaled mode: serve shared data from each instance's cache (faster reads; a value written
    /// on another instance may be read in its old version for milliseconds).
    pub scaled_data_cache: bool,
    /// File of the keys that sign forwarded requests, one base64url seed per line: the first
    /// signs, every one is published (rotate by adding a new first line and restarting)
    /// [default: `<data_dir>/signing-keys`, generated at first start].
    pub signing_keys_file: Option<PathBuf>,
    /// Sign every forwarded request and event delivery; turn off only where plugins are
    /// reachable through the hub alone.
    pub sign_requests: bool,
    /// Scheme of installations that do not choose one at install: `hmac` (each installation's
    /// own secret, about 0.4 µs per request) or `ed25519` (the hub's published key, about 14 µs).
    pub signing_scheme: String,
    /// Hours a rotated-out signing secret keeps signing beside the new one.
    pub signing_overlap_hours: u64,
    /// Default gateway quota per (tenant, calling plugin): `RPS` or `RPS/BURST` [default: none].
    #[serde(default, deserialize_with = "number_or_text")]
    pub rate_limit_per_caller: Option<String>,
    /// Default gateway quota per tenant: `RPS` or `RPS/BURST` [default: none].
    #[serde(default, deserialize_with = "number_or_text")]
    pub rate_limit_per_tenant: Option<String>,
    /// Hours the gateway's audit log keeps calls.
    pub audit_retention_hours: u64,
    /// Hours a web dashboard (`/ui`) session lasts after sign-in.
    pub ui_session_hours: u64,
    /// Published catalog versions wait for review (DRAFT → submit → approve) instead of being
    /// PUBLISHED at once.
    pub catalog_review: bool,
    /// Largest event (its CloudEvents JSON) in bytes.
    pub max_event_bytes: usize,
    /// Hours published events stay replayable.
    pub event_retention_hours: u64,
    /// Milliseconds before the first retry of a failed delivery (doubled per attempt).
    pub event_retry_base_ms: u64,
    /// Longest wait between two delivery attempts, in milliseconds.
    pub event_retry_max_ms: u64,
    /// Milliseconds a subscriber has to answer a delivery.
    pub event_delivery_timeout_ms: u64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:4000".to_owned(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            database_url: None,
            redis_url: None,
            events_url: None,
            event_partitions: 16,
            event_log_max_bytes: None,
            event_replicas: 1,
            admin_token: None,
            log_format: LogFormat::Text,
            log_level: "warn,plexhub=info,plexhub_server=info,plexhub_store=info".to_owned(),
            max_body_bytes: 1024 * 1024,
            header_read_timeout_ms: 30_000,
            max_connections: 10_000,
            drain_grace: 5,
            drain_timeout: 25,
            max_value_bytes: 256 * 1024,
            heartbeat_interval: 15,
            stale_after: 300,
            sweep_interval: 5,
            max_request_bytes: 16 * 1024 * 1024,
            max_response_bytes: 64 * 1024 * 1024,
            upstream_connect_timeout_ms: 5_000,
            upstream_timeout_ms: 30_000,
            request_body_timeout_ms: 10_000,
            upstream_ca_file: None,
            upstream_client_cert: None,
            upstream_client_key: None,
            scaled_data_cache: false,
            signing_keys_file: None,
            sign_requests: true,
            signing_scheme: "hmac".to_owned(),
            signing_overlap_hours: 24,
            rate_limit_per_caller: None,
            rate_limit_per_tenant: None,
            audit_retention_hours: 168,
            ui_session_hours: 12,
            catalog_review: false,
            max_event_bytes: 256 * 1024,
            event_retention_hours: 168,
            event_retry_base_ms: 1_000,
            event_retry_max_ms: 300_000,
            event_delivery_timeout_ms: 10_000,
        }
    }
}

/// Merges the sources; `flags` holds only the flags given on the command line.
pub fn load(config_file: &Path, flags: impl Serialize) -> anyhow::Result<ServeConfig> {
    Figment::from(Serialized::defaults(ServeConfig::default()))
        .merge(Toml::file(config_file))
        .merge(Env::prefixed("PLEXHUB_"))
        .merge(Serialized::defaults(flags))
        .extract()
        .context("invalid settings")
}

/// The admin token: configured, or read from / generated into the data dir.
/// Returns the token and whether it was just generated.
fn admin_token(config: &ServeConfig) -> anyhow::Result<(String, bool)> {
    if let Some(token) = &config.admin_token {
        if token.trim().len() < 16 {
            bail!("the admin token must be at least 16 characters");
        }
        return Ok((token.trim().to_owned(), false));
    }
    if let Some(token) = read_token_file(&config.data_dir) {
        return Ok((token, false));
    }
    let token = plexhub_core::credential::generate_admin_token();
    let path = config.data_dir.join(TOKEN_FILE);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{token}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok((token, true))
}

/// The request-signing keys: read from the keys file, which is created with one new key
/// (mode 0600) when missing.
fn signing_keys(config: &ServeConfig) -> anyhow::Result<Vec<HubKey>> {
    let path = config
        .signing_keys_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join(SIGNING_KEYS_FILE));
    if !path.exists() {
        let key = HubKey::generate();
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        writeln!(file, "{}", key.to_seed())
            .with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(vec![key]);
    }
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(HubKey::from_seed_text)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: every line must be a key", path.display()))?;
    if keys.is_empty() {
        bail!("{} holds no signing key", path.display());
    }
    Ok(keys)
}

/// A setting written as text that may also arrive as a bare number (`PLEXHUB_X=50` or
/// `x = 50` in TOML, which figment reads as numbers).
fn number_or_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Number(u64),
    }
    Ok(
        Option::<Raw>::deserialize(deserializer)?.map(|raw| match raw {
            Raw::Text(text) => text,
            Raw::Number(number) => number.to_string(),
        }),
    )
}

/// An optional `RPS[/BURST]` setting.
fn rate_limit(text: Option<&str>) -> anyhow::Result<Option<RateLimit>> {
    text.map(RateLimit::parse)
        .transpose()
        .context("invalid rate limit setting")
}

/// Reads the generated admin token file of a data dir, if there is one.
pub fn read_token_file(data_dir: &Path) -> Option<String> {
    let text = fs::read_to_string(data_dir.join(TOKEN_FILE)).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// The database to use: `database_url`, or SQLite in the data dir (which is created).
pub fn database_url(config: &ServeConfig) -> anyhow::Result<String> {
    if let Some(url) = &config.database_url {
        return Ok(url.clone());
    }
    fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    Ok(format!(
        "sqlite://{}",
        config.data_dir.join("plexhub.db").display()
    ))
}

/// Validates the merged configuration, creating the data dir, and returns server settings
/// plus the admin token when it was generated now (to be shown once).
pub fn into_settings(config: &ServeConfig) -> anyhow::Result<(Settings, Option<String>)> {
    let listen: SocketAddr = config
        .listen
        .parse()
        .with_context(|| format!("listen address {:?} is not HOST:PORT", config.listen))?;
    fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let database_url = database_url(config)?;
    if config.max_body_bytes == 0 {
        bail!("max_body_bytes must be positive");
    }
    if config.ui_session_hours == 0 {
        bail!("ui_session_hours must be positive");
    }
    if config.heartbeat_interval == 0 || config.sweep_interval == 0 {
        bail!("heartbeat_interval and sweep_interval must be positive");
    }
    if config.stale_after <= 3 * config.heartbeat_interval {
        bail!("stale_after must exceed 3 heartbeat intervals (when services become DEGRADED)");
    }
    let seconds = |s: u64| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX);
    let (token, generated) = admin_token(config)?;
    let signing_keys = signing_keys(config)?;
    let settings = Settings {
        listen,
        database_url: Secret::new(database_url),
        redis_url: config.redis_url.clone().map(Secret::new),
        events_url: config.events_url.clone().map(Secret::new),
        admin_token: Secret::new(token.clone()),
        max_body_bytes: config.max_body_bytes,
        max_value_bytes: config.max_value_bytes,
        health: HealthPolicy {
            heartbeat_interval_ms: seconds(config.heartbeat_interval),
            stale_after_ms: seconds(config.stale_after),
        },
        sweep_interval: Duration::from_secs(config.sweep_interval),
        clock: Clock::system(),
        gateway: GatewaySettings {
            max_request_bytes: config.max_request_bytes,
            max_response_bytes: config.max_response_bytes,
            connect_timeout: Duration::from_millis(config.upstream_connect_timeout_ms),
            request_timeout: Duration::from_millis(config.upstream_timeout_ms),
            request_body_timeout: Duration::from_millis(config.request_body_timeout_ms.max(1)),
            sign_requests: config.sign_requests,
            signing_scheme: SigningScheme::parse(&config.signing_scheme)
                .ok_or_else(|| anyhow::anyhow!("signing_scheme must be hmac or ed25519"))?,
            signing_overlap: Duration::from_secs(config.signing_overlap_hours.saturating_mul(3600)),
            rate_limit_per_caller: rate_limit(config.rate_limit_per_caller.as_deref())?,
            rate_limit_per_tenant: rate_limit(config.rate_limit_per_tenant.as_deref())?,
            audit_retention: Duration::from_secs(config.audit_retention_hours.saturating_mul(3600)),
        },
        signing_keys,
        events: EventSettings {
            max_event_bytes: config.max_event_bytes,
            retention: Duration::from_secs(config.event_retention_hours.saturating_mul(3600)),
            retry_base: Duration::from_millis(config.event_retry_base_ms.max(1)),
            retry_max: Duration::from_millis(config.event_retry_max_ms.max(1)),
            delivery_timeout: Duration::from_millis(config.event_delivery_timeout_ms.max(1)),
            partitions: config.event_partitions.max(1),
            max_log_bytes: config.event_log_max_bytes,
            replicas: config.event_replicas.max(1),
            ..EventSettings::default()
        },
        connections: ConnectionLimits {
            header_read_timeout: Duration::from_millis(config.header_read_timeout_ms.max(1)),
            max_connections: config.max_connections.max(1),
            drain_grace: Duration::from_secs(config.drain_grace),
            drain_timeout: Duration::from_secs(config.drain_timeout),
        },
        upstream_tls: UpstreamTls {
            ca_file: config.upstream_ca_file.clone(),
            client_cert: config.upstream_client_cert.clone(),
            client_key: config.upstream_client_key.clone(),
        },
        cache_shared_data_when_scaled: config.scaled_data_cache,
        ui_session_ttl: Duration::from_secs(config.ui_session_hours.saturating_mul(3600)),
        catalog_review: config.catalog_review,
    };
    Ok((settings, generated.then_some(token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_may_be_bare_numbers_or_text() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("plexhub.toml");
        fs::write(
            &file,
            "rate_limit_per_caller = 50\nrate_limit_per_tenant = \"500/1000\"\n",
        )
        .expect("config written");
        let config = load(&file, serde_json::json!({})).expect("settings load");
        assert_eq!(config.rate_limit_per_caller.as_deref(), Some("50"));
        assert_eq!(config.rate_limit_per_tenant.as_deref(), Some("500/1000"));
        assert_eq!(
            rate_limit(config.rate_limit_per_caller.as_deref())
                .expect("valid")
                .map(|limit| limit.rps),
            Some(50)
        );
    }
}
