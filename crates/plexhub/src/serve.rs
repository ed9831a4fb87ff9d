//! `plexhub serve`.

use std::path::PathBuf;

use anyhow::Context as _;
use plexhub_server::{Application, Stop};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

use crate::config::{self, LogFormat};

/// Flags of `serve`; each overrides `PLEXHUB_<NAME>` and `plexhub.toml`.
#[derive(clap::Args, Serialize)]
pub struct ServeArgs {
    /// Settings file (TOML; keys as the flags, with underscores).
    #[arg(long, default_value = "plexhub.toml")]
    #[serde(skip)]
    config: PathBuf,
    /// Apply the database migrations and exit (a deployment's migration job), without serving.
    #[arg(long)]
    #[serde(skip)]
    migrate_only: bool,
    /// HOST:PORT to listen on [default: 127.0.0.1:4000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    /// Directory for the SQLite database and the admin token [default: ./plexhub-data].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<PathBuf>,
    /// postgres://… to use PostgreSQL instead of SQLite.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
    /// redis://… for scaled mode.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_url: Option<String>,
    /// nats://… to run the event bus on NATS JetStream instead of the database.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    events_url: Option<String>,
    /// With --events-url: partitions of each subscription's keyed events (keyed deliveries of
    /// one subscription in flight at most) [default: 16].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    event_partitions: Option<u16>,
    /// With --events-url: largest size of one tenant's event log in JetStream, in bytes
    /// (the oldest events go first) [default: unlimited].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    event_log_max_bytes: Option<u64>,
    /// With --events-url: copies of each stream in a JetStream cluster [default: 1].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    event_replicas: Option<usize>,
    /// Log format [default: text].
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `debug` [default: `warn,plexhub=info,plexhub_server=info,plexhub_store=info`].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    log_level: Option<String>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_body_bytes: Option<usize>,
    /// Largest shared-data value in bytes [default: 262144].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_value_bytes: Option<usize>,
    /// Milliseconds a client has to send a request's headers, also the idle keep-alive
    /// timeout; a slower client is disconnected [default: 30000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    header_read_timeout_ms: Option<u64>,
    /// Client connections served at once; more wait to be accepted [default: 10000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_connections: Option<usize>,
    /// Seconds the listener keeps accepting after SIGTERM (not after Ctrl-C) while /readyz
    /// answers 503, so load balancers stop routing here first [default: 5].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    drain_grace: Option<u64>,
    /// Seconds, once the listener is closed, for in-flight requests and event deliveries to
    /// finish; then connections are cut, the audit log is written and the hub exits
    /// [default: 25].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    drain_timeout: Option<u64>,
    /// Seconds between plugin heartbeats; 3 missed make a service DEGRADED [default: 15].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    heartbeat_interval: Option<u64>,
    /// Seconds without heartbeat after which a service is UNAVAILABLE [default: 300].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    stale_after: Option<u64>,
    /// Seconds between health sweeps [default: 5].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sweep_interval: Option<u64>,
    /// Largest request body the gateway forwards, in bytes [default: 16777216].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_request_bytes: Option<u64>,
    /// Largest response body the gateway forwards, in bytes [default: 67108864].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_response_bytes: Option<u64>,
    /// Milliseconds to connect to a plugin [default: 5000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_connect_timeout_ms: Option<u64>,
    /// Milliseconds for a plugin to answer; an endpoint's metadata.timeoutMs overrides it
    /// [default: 30000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_timeout_ms: Option<u64>,
    /// Milliseconds a caller's request body may pause before the gateway answers 408
    /// REQUEST_BODY_TIMEOUT [default: 10000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    request_body_timeout_ms: Option<u64>,
    /// PEM file of CA certificates trusted for https plugins besides the system's roots (a
    /// private CA).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_ca_file: Option<PathBuf>,
    /// PEM certificate chain shown to https plugins that require a client certificate (mTLS);
    /// with --upstream-client-key.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_client_cert: Option<PathBuf>,
    /// PEM private key of --upstream-client-cert.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_client_key: Option<PathBuf>,
    /// Scaled mode: serve shared data from each instance's cache (about 7× the reads; a value
    /// written on another instance may be read in its old version for milliseconds)
    /// [default: false, every read from the database].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    scaled_data_cache: Option<bool>,
    /// File of request-signing keys, one per line, the first signs [default:
    /// <data-dir>/signing-keys, generated].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_keys_file: Option<PathBuf>,
    /// Sign forwarded requests [default: true]; false only where plugins are reachable through
    /// the hub alone.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    sign_requests: Option<bool>,
    /// Signing scheme of installations that choose none at install: hmac (per-installation
    /// secret) or ed25519 (the hub's published key) [default: hmac].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_scheme: Option<String>,
    /// Hours a rotated-out signing secret keeps signing beside the new one [default: 24].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_overlap_hours: Option<u64>,
    /// Default gateway quota per (tenant, calling plugin), `RPS` or `RPS/BURST` [default: none].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit_per_caller: Option<String>,
    /// Default gateway quota per tenant, `RPS` or `RPS/BURST` [default: none].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit_per_tenant: Option<String>,
    /// Hours the gateway's audit log keeps calls [default: 168].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    audit_retention_hours: Option<u64>,
    /// Hours a web dashboard (`/ui`) session lasts after sign-in [default: 12].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    ui_session_hours: Option<u64>,
    /// Published catalog versions wait for review (DRAFT → submit → approve) instead of being
    /// PUBLISHED at once [default: false].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    catalog_review: Option<bool>,
    /// Largest event (its CloudEvents JSON) in bytes [default: 262144].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    max_event_bytes: Option<usize>,
    /// Hours published events stay replayable [default: 168].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    event_retention_hours: Option<u64>,
    /// Milliseconds before the first retry of a failed delivery, doubled for each further
    /// attempt [default: 1000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    event_retry_base_ms: Option<u64>,
    /// Longest wait between two delivery attempts, in milliseconds [default: 300000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    event_retry_max_ms: Option<u64>,
    /// Milliseconds a subscriber has to answer a delivery [default: 10000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    event_delivery_timeout_ms: Option<u64>,
}

/// The log filter: `RUST_LOG` when it is set (tracing-subscriber's syntax), else `level`.
fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.trim().is_empty() => EnvFilter::try_new(&from_env)
            .with_context(|| format!("invalid RUST_LOG {from_env:?}"))?,
        _ => EnvFilter::try_new(level).with_context(|| format!("invalid log level {level:?}"))?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// SIGTERM (an orchestrator: drain with the grace) or Ctrl-C (an operator: stop accepting at
/// once).
async fn shutdown_signal() -> Stop {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    let stop = tokio::select! {
        _ = interrupt => Stop::Interactive,
        () = terminate => Stop::Orchestrated,
    };
    tracing::info!(?stop, "shutdown requested; finishing in-flight requests");
    stop
}

/// Loads settings, starts the hub and serves until SIGINT/SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let merged = config::load(&args.config, &args)?;
    init_logging(merged.log_format, &merged.log_level)?;
    if args.migrate_only {
        let backend = Application::migrate(&config::database_url(&merged)?).await?;
        println!("migrations applied ({backend})");
        return Ok(());
    }
    let (settings, generated_token) = config::into_settings(&merged)?;
    if let Some(token) = generated_token {
        println!(
            "Generated the admin token (shown once; saved to {}/admin-token, mode 0600):\n{token}",
            merged.data_dir.display()
        );
    }
    let app = Application::build(settings).await?;
    println!("plexhub listening on http://{}", app.local_addr());
    app.run_until(shutdown_signal())
        .await
        .context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}
