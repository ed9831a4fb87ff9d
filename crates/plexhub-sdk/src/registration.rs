//! Keeping a plugin's services registered: one replica per service at start-up, then heartbeats
//! in the background; a replica the hub no longer knows (hub restarted on a fresh database,
//! replica removed by an operator) is registered again by the next beat.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::{Client, Error};
use crate::codes::ErrorCode;

/// One service of the plugin's manifest (`api.services[]`).
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Service name, e.g. `crm.contacts`.
    pub name: String,
    /// Service version.
    pub version: String,
    /// The manifest's endpoints, as JSON.
    pub endpoints: Value,
}

/// The services of a manifest (`api.services[]`).
pub fn manifest_services(manifest: &Value) -> Vec<ServiceSpec> {
    manifest["api"]["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|service| ServiceSpec {
            name: service["name"].as_str().unwrap_or_default().to_owned(),
            version: service["version"].as_str().unwrap_or("1.0.0").to_owned(),
            endpoints: service["endpoints"].clone(),
        })
        .filter(|service| !service.name.is_empty())
        .collect()
}

/// The background heartbeats of a plugin replica; [`Heartbeats::stop`] ends them cleanly.
#[derive(Debug)]
pub struct Heartbeats {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Heartbeats {
    /// Stops beating and waits for the task to end (the hub marks the replica DEGRADED, then
    /// UNAVAILABLE, as beats stop arriving).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Client {
    /// Registers (or refreshes) this replica of `service` at `base_url`; when the hub does not
    /// know the service at all, registers the service from its spec first. Returns the hub's
    /// heartbeat interval.
    pub async fn register_replica(
        &self,
        service: &ServiceSpec,
        instance: &str,
        base_url: &str,
    ) -> Result<Duration, Error> {
        let replica = json!({ "baseUrl": base_url });
        let path = format!("/api/v1/services/{}/instances/{instance}", service.name);
        let answer = match self.send_json(reqwest::Method::PUT, &path, &replica).await {
            Err(Error::Hub(error)) if error.code == ErrorCode::ServiceNotFound => {
                let who = self
                    .send_json(reqwest::Method::GET, "/api/v1/whoami", &Value::Null)
                    .await?;
                let registration = json!({
                    "pluginId": who["pluginId"],
                    "serviceName": service.name,
                    "version": service.version,
                    "baseUrl": base_url,
                    "endpoints": service.endpoints,
                });
                self.send_json(
                    reqwest::Method::POST,
                    "/api/plugin-gateway/services/register",
                    &registration,
                )
                .await?;
                self.send_json(reqwest::Method::PUT, &path, &replica)
                    .await?
            }
            other => other?,
        };
        let seconds = answer["heartbeatIntervalSeconds"].as_u64().unwrap_or(15);
        Ok(Duration::from_secs(seconds.max(1)))
    }

    /// Registers this replica of every service, then beats in the background every `every`
    /// (default: the hub's interval), registering again whatever the hub forgot. Errors while
    /// the hub is unreachable are logged to stderr and retried at the next beat.
    ///
    /// ```no_run
    /// # async fn example(hub: plexhub_sdk::Client, manifest: serde_json::Value) -> Result<(), plexhub_sdk::Error> {
    /// let services = plexhub_sdk::manifest_services(&manifest);
    /// let beats = hub.keep_registered(services, "replica-1", "http://10.0.0.7:3100", None).await?;
    /// // … serve …
    /// beats.stop().await;
    /// # Ok(()) }
    /// ```
    pub async fn keep_registered(
        &self,
        services: Vec<ServiceSpec>,
        instance: &str,
        base_url: &str,
        every: Option<Duration>,
    ) -> Result<Heartbeats, Error> {
        let mut interval = Duration::from_secs(15);
        for service in &services {
            interval = self.register_replica(service, instance, base_url).await?;
        }
        let interval = every.unwrap_or(interval);
        let (stop, mut stopped) = oneshot::channel();
        let client = self.clone();
        let (instance, base_url) = (instance.to_owned(), base_url.to_owned());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(interval) => {}
                }
                for service in &services {
                    let path = format!(
                        "/api/v1/services/{}/instances/{instance}/heartbeat",
                        service.name
                    );
                    let beat = client
                        .send_json(reqwest::Method::POST, &path, &Value::Null)
                        .await;
                    let outcome = match beat {
                        Err(Error::Hub(error)) if error.status == 404 => client
                            .register_replica(service, &instance, &base_url)
                            .await
                            .map(|_| ()),
                        other => other.map(|_| ()),
                    };
                    if let Err(error) = outcome {
                        eprintln!("plexhub-sdk: heartbeat of {} failed: {error}", service.name);
                    }
                }
            }
        });
        Ok(Heartbeats {
            stop: Some(stop),
            task,
        })
    }
}
