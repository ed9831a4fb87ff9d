//! The hub client: gateway calls and shared data, with the plugin's credential.

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::codes::ErrorCode;

/// Attempts of [`Client::data_update`] before it gives up on a key that keeps changing.
const UPDATE_ATTEMPTS: usize = 16;

/// An error the hub answered with: its stable code, message and details.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct HubError {
    /// HTTP status.
    pub status: u16,
    /// Stable code, e.g. [`ErrorCode::PermissionDenied`].
    pub code: ErrorCode,
    /// What happened, for people.
    pub message: String,
    /// Structured details (`missing`, `availableEndpoints`, `currentRevision`…).
    pub details: Value,
}

/// Why an SDK call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `PLEXHUB_URL` or `PLEXHUB_TOKEN` is missing.
    #[error("{0} is not set")]
    MissingSetting(&'static str),
    /// The hub refused or failed the request (see the code).
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The other plugin answered with an error status (through the gateway).
    #[error("the plugin answered {status}: {body}")]
    Plugin {
        /// Its status.
        status: u16,
        /// Its body, as text.
        body: String,
    },
    /// The hub could not be reached, or the answer was not what was expected.
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
    /// The hub's answer, or a setting, was not what was expected.
    #[error("{0}")]
    Unexpected(String),
    /// A key kept changing under [`Client::data_update`].
    #[error("{0} changed on every attempt; gave up")]
    Contended(String),
}

/// A shared-data entry.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataEntry {
    /// The value.
    pub value: Value,
    /// Revision (increases on every write).
    pub revision: i64,
    /// The owning plugin.
    pub owner_id: String,
    /// Expiry (RFC 3339), if any.
    pub expires_at: Option<String>,
}

/// Builds a [`Client`].
#[derive(Debug, Default)]
pub struct ClientBuilder {
    url: Option<String>,
    token: Option<String>,
}

impl ClientBuilder {
    /// The hub's base URL, e.g. `http://127.0.0.1:4000`.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The plugin's credential (`phk_<id>.<secret>`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The client; both settings are required.
    pub fn build(self) -> Result<Client, Error> {
        Ok(Client {
            http: reqwest::Client::new(),
            base: self
                .url
                .ok_or(Error::MissingSetting("the hub URL"))?
                .trim_end_matches('/')
                .to_owned(),
            token: self.token.ok_or(Error::MissingSetting("the token"))?,
        })
    }
}

/// A plugin's connection to the hub (cheap to clone).
///
/// ```
/// let hub = plexhub_sdk::Client::builder()
///     .url("http://127.0.0.1:4000")
///     .token("phk_0123456789abcdef.secret")
///     .build()
///     .expect("both settings given");
/// assert_eq!(hub.url(), "http://127.0.0.1:4000");
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// A builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// From `PLEXHUB_URL` and `PLEXHUB_TOKEN`.
    pub fn from_env() -> Result<Self, Error> {
        let url = std::env::var("PLEXHUB_URL").map_err(|_| Error::MissingSetting("PLEXHUB_URL"))?;
        let token =
            std::env::var("PLEXHUB_TOKEN").map_err(|_| Error::MissingSetting("PLEXHUB_TOKEN"))?;
        Self::builder().url(url).token(token).build()
    }

    /// The hub's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn hub_error(response: reqwest::Response) -> Error {
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let error = &body["error"];
        // `/api/v1` nests the error; the seed-compatible routes keep it flat.
        let (code, message) = match error {
            Value::Object(_) => (error["code"].as_str(), error["message"].as_str()),
            _ => (body["code"].as_str(), error.as_str()),
        };
        HubError {
            status,
            code: code.map_or(ErrorCode::Unknown, ErrorCode::parse),
            message: message.unwrap_or_default().to_owned(),
            details: error["details"].clone(),
        }
        .into()
    }

    /// Calls another plugin's service through the gateway's proxy route and returns the raw
    /// answer. A refusal by the hub (access, quota, unreachable plugin…) is [`Error::Hub`]; the
    /// plugin's own answer comes back whatever its status.
    pub async fn call(
        &self,
        service: &str,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, Error> {
        let url = format!("{}/api/v1/proxy/{service}{path_and_query}", self.base);
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        if !response.status().is_success() && is_hub_error(&response) {
            return Err(Self::hub_error(response).await);
        }
        Ok(response)
    }

    /// `GET` through the gateway, decoding a 2xx JSON answer.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        service: &str,
        path_and_query: &str,
    ) -> Result<T, Error> {
        let response = self
            .call(service, Method::GET, path_and_query, None)
            .await?;
        Self::plugin_json(response).await
    }

    /// `POST` a JSON body through the gateway, decoding a 2xx JSON answer.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        service: &str,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let body = serde_json::to_value(body).unwrap_or(Value::Null);
        let response = self.call(service, Method::POST, path, Some(&body)).await?;
        Self::plugin_json(response).await
    }

    async fn plugin_json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T, Error> {
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(Error::Plugin {
                status: status.as_u16(),
                body,
            });
        }
        Ok(response.json().await?)
    }

    /// A hub API call (`path` from the root): the JSON answer (`null` when empty), or the
    /// hub's error.
    pub(crate) async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, Error> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if !body.is_null() {
            request = request.json(body);
        }
        let response = request.send().await?;
        if !response.status().is_success() {
            return Err(Self::hub_error(response).await);
        }
        let text = response.text().await?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Opens a long-lived request (a watch stream), failing on an error status.
    pub(crate) async fn watch(&self, path: &str) -> Result<reqwest::Response, Error> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(Self::hub_error(response).await);
        }
        Ok(response)
    }

    fn data_url(&self, namespace: &str, key: &str) -> String {
        format!("{}/api/v1/data/{namespace}/{key}", self.base)
    }

    /// A shared-data entry of the plugin's tenant, `None` when missing or expired.
    pub async fn data_get(&self, namespace: &str, key: &str) -> Result<Option<DataEntry>, Error> {
        let response = self
            .http
            .get(self.data_url(namespace, key))
            .bearer_auth(&self.token)
            .send()
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(response.json().await?)),
            _ => Err(Self::hub_error(response).await),
        }
    }

    /// Writes an entry this plugin owns (`ttl` seconds, or none); returns the new revision.
    pub async fn data_set<T: Serialize>(
        &self,
        namespace: &str,
        key: &str,
        value: &T,
        ttl: Option<u64>,
    ) -> Result<i64, Error> {
        self.put(namespace, key, value, ttl, None).await
    }

    async fn put<T: Serialize>(
        &self,
        namespace: &str,
        key: &str,
        value: &T,
        ttl: Option<u64>,
        condition: Option<(&'static str, String)>,
    ) -> Result<i64, Error> {
        let mut body = json!({ "value": value });
        if let Some(ttl) = ttl {
            body["ttl"] = json!(ttl);
        }
        let mut request = self
            .http
            .put(self.data_url(namespace, key))
            .bearer_auth(&self.token)
            .json(&body);
        if let Some((name, value)) = condition {
            request = request.header(name, value);
        }
        let response = request.send().await?;
        if !response.status().is_success() {
            return Err(Self::hub_error(response).await);
        }
        let answer: Value = response.json().await?;
        Ok(answer["revision"].as_i64().unwrap_or_default())
    }

    /// Compare-and-set: writes `value` only if the entry is still at `revision` (`None`: only if
    /// it does not exist); returns the new revision, or `Ok(None)` when someone else wrote first
    /// (read it again and decide).
    pub async fn data_replace<T: Serialize>(
        &self,
        namespace: &str,
        key: &str,
        value: &T,
        revision: Option<i64>,
    ) -> Result<Option<i64>, Error> {
        let condition = match revision {
            Some(revision) => ("if-match", revision.to_string()),
            None => ("if-none-match", "*".to_owned()),
        };
        match self.put(namespace, key, value, None, Some(condition)).await {
            Ok(revision) => Ok(Some(revision)),
            Err(Error::Hub(error)) if error.code == ErrorCode::PreconditionFailed => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Deletes an entry this plugin owns; `false` when it did not exist.
    pub async fn data_delete(&self, namespace: &str, key: &str) -> Result<bool, Error> {
        let response = self
            .http
            .delete(self.data_url(namespace, key))
            .bearer_auth(&self.token)
            .send()
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            status if status.is_success() => Ok(true),
            _ => Err(Self::hub_error(response).await),
        }
    }

    /// The keys of a namespace (first page of up to 1000, sorted).
    pub async fn data_list(&self, namespace: &str) -> Result<Vec<String>, Error> {
        let response = self
            .http
            .get(format!("{}/api/v1/data/{namespace}?limit=1000", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(Self::hub_error(response).await);
        }
        let page: Value = response.json().await?;
        Ok(page["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry["key"].as_str())
            .map(str::to_owned)
            .collect())
    }

    /// Read-modify-write with compare-and-set: `change` gets the current value (`None` when
    /// missing) and returns the new one; on a concurrent write the read and `change` are
    /// repeated. Returns the new revision.
    ///
    /// ```no_run
    /// # async fn example(hub: plexhub_sdk::Client) -> Result<(), plexhub_sdk::Error> {
    /// let revision = hub
    ///     .data_update("counters", "visits", |old| {
    ///         serde_json::json!(old.and_then(|v| v.as_i64()).unwrap_or(0) + 1)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn data_update(
        &self,
        namespace: &str,
        key: &str,
        mut change: impl FnMut(Option<&Value>) -> Value,
    ) -> Result<i64, Error> {
        for _ in 0..UPDATE_ATTEMPTS {
            let current = self.data_get(namespace, key).await?;
            let next = change(current.as_ref().map(|entry| &entry.value));
            let revision = current.as_ref().map(|entry| entry.revision);
            if let Some(revision) = self.data_replace(namespace, key, &next, revision).await? {
                return Ok(revision);
            }
        }
        Err(Error::Contended(format!("{namespace}/{key}")))
    }
}

/// Whether an error answer comes from the hub itself rather than from the called plugin: the hub
/// marks its own errors with `X-Plexhub-Error`, a header the gateway never lets a plugin send.
fn is_hub_error(response: &reqwest::Response) -> bool {
    response.headers().contains_key("x-plexhub-error")
}
