//! Discovery with a local cache that the registry's watch stream keeps fresh: an answer is
//! served from the cache until the hub says that service changed; while the stream is down the
//! cache is not used at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

use crate::client::{Client, Error};

/// Pause before following the watch stream again after it broke.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

type Cache = Arc<RwLock<HashMap<String, Option<Value>>>>;

/// Cached discovery of the plugin's tenant (see [`Client::discovery`]).
#[derive(Debug)]
pub struct Discovery {
    client: Client,
    cache: Cache,
    following: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Client {
    /// Starts cached discovery: follows `GET /api/v1/services/watch` in the background.
    ///
    /// ```no_run
    /// # async fn example(hub: plexhub_sdk::Client) -> Result<(), plexhub_sdk::Error> {
    /// let discovery = hub.discovery();
    /// if let Some(service) = discovery.discover("crm.contacts").await? {
    ///     println!("CRM contacts at {}", service["baseUrl"]);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn discovery(&self) -> Discovery {
        let cache: Cache = Arc::default();
        let following = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(follow(self.clone(), cache.clone(), following.clone()));
        Discovery {
            client: self.clone(),
            cache,
            following,
            task,
        }
    }
}

impl Discovery {
    /// The discoverable service (`{serviceName, pluginId, baseUrl, status, endpoints…}`), or
    /// `None` when there is none (unknown, its plugin not ACTIVE, or no HEALTHY/DEGRADED replica).
    pub async fn discover(&self, service: &str) -> Result<Option<Value>, Error> {
        let trusted = self.following.load(Ordering::Acquire);
        if trusted && let Some(hit) = self.cache.read().ok().and_then(|c| c.get(service).cloned()) {
            return Ok(hit);
        }
        let path = format!("/api/plugin-gateway/services/discover/{service}");
        let found = match self
            .client
            .send_json(reqwest::Method::GET, &path, &Value::Null)
            .await
        {
            Ok(answer) => Some(answer["service"].clone()),
            Err(Error::Hub(error)) if error.status == 404 => None,
            Err(other) => return Err(other),
        };
        if trusted && let Ok(mut cache) = self.cache.write() {
            cache.insert(service.to_owned(), found.clone());
        }
        Ok(found)
    }

    /// Whether the watch stream is followed (answers are then cached).
    pub fn is_following(&self) -> bool {
        self.following.load(Ordering::Acquire)
    }

    /// Stops following the watch stream.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// Follows the watch stream, dropping the cached answer of every service an event names
/// (everything on `reset` or when the stream breaks), and reconnecting.
async fn follow(client: Client, cache: Cache, following: Arc<AtomicBool>) {
    loop {
        if let Ok(mut response) = client.watch("/api/v1/services/watch").await {
            if let Ok(mut entries) = cache.write() {
                entries.clear();
            }
            following.store(true, Ordering::Release);
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    let event: String = buffer.drain(..end + 2).collect();
                    forget(&cache, &event);
                }
            }
        }
        following.store(false, Ordering::Release);
        if let Ok(mut entries) = cache.write() {
            entries.clear();
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}

/// Applies one server-sent event to the cache.
fn forget(cache: &Cache, event: &str) {
    let data = event
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim)
        .collect::<String>();
    let Ok(data) = serde_json::from_str::<Value>(&data) else {
        return;
    };
    let Ok(mut entries) = cache.write() else {
        return;
    };
    match data["service"]["serviceName"].as_str() {
        Some(name) if data["type"] != "reset" => {
            entries.remove(name);
        }
        _ => entries.clear(),
    }
}
