//! Running a plugin: its installations (one credential per tenant), its HTTP server behind the
//! hub's signature check, and its registration kept alive while it serves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::{Client, Error};
use crate::registration::{Heartbeats, manifest_services};
use crate::verify::Verifier;

/// Who a credential belongs to (`GET /api/v1/whoami`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// `plugin` or `admin`.
    pub kind: String,
    /// The tenant's slug.
    pub tenant: Option<String>,
    /// The plugin, for a plugin credential.
    pub plugin_id: Option<String>,
}

impl Client {
    /// Who this client's credential belongs to.
    pub async fn whoami(&self) -> Result<Identity, Error> {
        let answer = self
            .send_json(reqwest::Method::GET, "/api/v1/whoami", &Value::Null)
            .await?;
        serde_json::from_value(answer).map_err(|error| Error::Unexpected(error.to_string()))
    }
}

/// A plugin's installations: one [`Client`] per tenant the plugin is installed for, each with
/// that installation's credential. A request the hub forwards names its tenant
/// ([`crate::HubRequest::tenant_slug`]); answer it with that tenant's client, so that calls
/// and shared data stay in the tenant.
///
/// ```no_run
/// # async fn example() -> Result<(), plexhub_sdk::Error> {
/// let installations = plexhub_sdk::Installations::connect(
///     "http://127.0.0.1:4000",
///     ["phk_acme….secret", "phk_globex….secret"],
/// )
/// .await?;
/// let acme = installations.tenant("acme").expect("installed for acme");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Installations {
    hub: String,
    plugin_id: String,
    by_tenant: Arc<BTreeMap<String, Client>>,
}

impl Installations {
    /// Checks each credential with the hub and files it under its tenant. All must belong to
    /// the same plugin.
    pub async fn connect<T: Into<String>>(
        hub_url: &str,
        tokens: impl IntoIterator<Item = T>,
    ) -> Result<Self, Error> {
        let mut by_tenant = BTreeMap::new();
        let mut plugin_id = None::<String>;
        for token in tokens {
            let client = Client::builder().url(hub_url).token(token).build()?;
            let identity = client.whoami().await?;
            let (Some(tenant), Some(plugin)) = (identity.tenant, identity.plugin_id) else {
                return Err(Error::Unexpected(
                    "an installation needs a plugin credential, not an admin token".to_owned(),
                ));
            };
            if plugin_id.as_ref().is_some_and(|known| *known != plugin) {
                return Err(Error::Unexpected(format!(
                    "credentials of two plugins given: {} and {plugin}",
                    plugin_id.unwrap_or_default()
                )));
            }
            plugin_id = Some(plugin);
            by_tenant.insert(tenant, client);
        }
        let Some(plugin_id) = plugin_id else {
            return Err(Error::MissingSetting("a plugin credential"));
        };
        Ok(Self {
            hub: hub_url.trim_end_matches('/').to_owned(),
            plugin_id,
            by_tenant: Arc::new(by_tenant),
        })
    }

    /// From `PLEXHUB_URL` and `PLEXHUB_TOKENS` (comma-separated, one per tenant), or
    /// `PLEXHUB_TOKEN` for a plugin installed for one tenant.
    pub async fn from_env() -> Result<Self, Error> {
        let url = std::env::var("PLEXHUB_URL").map_err(|_| Error::MissingSetting("PLEXHUB_URL"))?;
        let tokens = std::env::var("PLEXHUB_TOKENS")
            .or_else(|_| std::env::var("PLEXHUB_TOKEN"))
            .map_err(|_| Error::MissingSetting("PLEXHUB_TOKENS or PLEXHUB_TOKEN"))?;
        let tokens: Vec<String> = tokens
            .split(',')
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .map(str::to_owned)
            .collect();
        Self::connect(&url, tokens).await
    }

    /// The client of the installation in `tenant` (slug), if the plugin is installed there.
    pub fn tenant(&self, tenant: &str) -> Option<&Client> {
        self.by_tenant.get(tenant)
    }

    /// The tenants (slugs), sorted.
    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.by_tenant.keys().map(String::as_str)
    }

    /// The plugin these credentials belong to.
    pub fn plugin_id(&self) -> &str {
        &self.plugin_id
    }

    /// The hub's base URL.
    pub fn hub_url(&self) -> &str {
        &self.hub
    }
}

/// How [`serve`] runs a plugin.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The replica's id in the registry (default `default`, the replica the hub registers at
    /// the installation's `baseUrl` on activation).
    pub instance: String,
    /// The URL the hub reaches this replica at (default `http://<the listener's address>`).
    pub public_url: Option<String>,
    /// Heartbeat period (default: the interval the hub asks for).
    pub heartbeat_every: Option<Duration>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            instance: "default".to_owned(),
            public_url: None,
            heartbeat_every: None,
        }
    }
}

/// A plugin being served; [`RunningPlugin::stop`] ends it.
#[derive(Debug)]
pub struct RunningPlugin {
    url: String,
    heartbeats: Vec<Heartbeats>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl RunningPlugin {
    /// The URL the hub reaches this replica at.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the heartbeats (the hub marks the replica DEGRADED, then UNAVAILABLE, as beats
    /// stop arriving), then the server: requests in flight finish, new connections are refused.
    pub async fn stop(mut self) {
        for beats in self.heartbeats.drain(..) {
            beats.stop().await;
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.server).await;
    }
}

/// Serves a plugin: `router` behind the hub's signature check (the [`Verifier`] extension that
/// [`crate::HubRequest`] needs), and the services of `manifest` registered at this replica for
/// every installation, kept alive by heartbeats until [`RunningPlugin::stop`].
///
/// ```no_run
/// # async fn example(router: axum::Router, manifest: serde_json::Value) -> Result<(), plexhub_sdk::Error> {
/// use plexhub_sdk::{Installations, ServeOptions, serve};
/// let installations = Installations::from_env().await?;
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:3100").await.expect("port 3100 free");
/// let options = ServeOptions { public_url: Some("http://crm.internal:3100".into()), ..Default::default() };
/// let plugin = serve(listener, router, &manifest, &installations, options).await?;
/// tokio::signal::ctrl_c().await.expect("a terminal");
/// plugin.stop().await;
/// # Ok(()) }
/// ```
pub async fn serve(
    listener: TcpListener,
    router: Router,
    manifest: &Value,
    installations: &Installations,
    options: ServeOptions,
) -> Result<RunningPlugin, Error> {
    let verifier = Arc::new(Verifier::for_installations(installations).await?);
    let url = match options.public_url {
        Some(url) => url,
        None => format!(
            "http://{}",
            listener
                .local_addr()
                .map_err(|error| Error::Unexpected(error.to_string()))?
        ),
    };
    let (shutdown, stopped) = oneshot::channel::<()>();
    let app = router.layer(Extension(verifier));
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    let mut running = RunningPlugin {
        url,
        heartbeats: Vec::new(),
        shutdown: Some(shutdown),
        server,
    };
    let services = manifest_services(manifest);
    for tenant in installations.tenants() {
        let Some(client) = installations.tenant(tenant) else {
            continue;
        };
        let beats = client
            .keep_registered(
                services.clone(),
                &options.instance,
                &running.url,
                options.heartbeat_every,
            )
            .await;
        match beats {
            Ok(beats) => running.heartbeats.push(beats),
            Err(error) => {
                running.stop().await;
                return Err(error);
            }
        }
    }
    Ok(running)
}
