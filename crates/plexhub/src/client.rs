//! A small HTTP client for the admin commands.

use anyhow::{Context as _, anyhow, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Talks to one hub with one token.
pub struct HubClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl HubClient {
    /// A client for `base` (e.g. `http://127.0.0.1:4000`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// Sends a request to `/api/v1{path}`; returns the JSON body (`null` for 204) or an error
    /// that carries the hub's code and message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let response = self
            .send_with(method, &format!("/api/v1{path}"), None, body, &[])
            .await?;
        Self::answer(response).await
    }

    /// Sends a request to a seed-compatible route `/api/plugin-gateway{path}` (acting for
    /// `tenant` if given); returns the status and JSON body whatever the status, since some
    /// of these routes answer 400 with a result (`/resolve`).
    pub async fn call_gateway(
        &self,
        method: Method,
        path: &str,
        tenant: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let path = format!("/api/plugin-gateway{path}");
        let response = self.send_with(method, &path, tenant, None, &[]).await?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("cannot read the hub's answer")?;
        let json = serde_json::from_str(&text)
            .with_context(|| format!("the hub answered {status} with a non-JSON body"))?;
        Ok((status, json))
    }

    /// Calls another plugin's service through the gateway's proxy route as the admin acting for
    /// `tenant` and `caller`; returns the plugin's status and body as they came.
    pub async fn proxy(
        &self,
        tenant: &str,
        caller: &str,
        method: Method,
        service_path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, String)> {
        let headers = [("x-caller-plugin-id", caller.to_owned())];
        let path = format!("/api/v1/proxy/{service_path}");
        let response = self
            .send_with(method, &path, Some(tenant), body, &headers)
            .await?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("cannot read the plugin's answer")?;
        Ok((status, text))
    }

    /// The error of a seed-compatible route's flat answer (`{"error":"…","code":"…"}`).
    pub fn flat_error(status: StatusCode, json: &Value) -> anyhow::Error {
        anyhow!(
            "{}: {} ({status})",
            json["code"].as_str().unwrap_or("UNKNOWN"),
            json["error"].as_str().unwrap_or("no message")
        )
    }

    /// Like [`HubClient::call`], acting for `tenant` (sent as `X-Tenant-Slug`), with extra
    /// headers.
    pub async fn call_for(
        &self,
        tenant: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<Value> {
        let response = self
            .send_with(
                method,
                &format!("/api/v1{path}"),
                Some(tenant),
                body,
                headers,
            )
            .await?;
        Self::answer(response).await
    }

    /// Opens a long-lived request (a watch stream), from `resume` (a `Last-Event-ID`) when
    /// given, failing on an error status.
    pub async fn stream_for(
        &self,
        tenant: &str,
        path: &str,
        resume: Option<&str>,
    ) -> anyhow::Result<reqwest::Response> {
        let headers: Vec<(&str, String)> = resume
            .map(|id| ("last-event-id", id.to_owned()))
            .into_iter()
            .collect();
        let response = self
            .send_with(
                Method::GET,
                &format!("/api/v1{path}"),
                Some(tenant),
                None,
                &headers,
            )
            .await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        Self::answer(response).await?;
        bail!("the hub answered {status} to the watch request")
    }

    /// Sends a request to `path` (from the root, e.g. `/api/v1/tenants`).
    async fn send_with(
        &self,
        method: Method,
        path: &str,
        tenant: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> anyhow::Result<reqwest::Response> {
        let token = self.token.as_deref().ok_or_else(|| {
            anyhow!(
                "no admin token: pass --token, set PLEXHUB_ADMIN_TOKEN, or run where plexhub-data/admin-token is"
            )
        })?;
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(token);
        if let Some(tenant) = tenant {
            request = request.header("x-tenant-slug", tenant);
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .with_context(|| format!("cannot reach the hub at {}", self.base))
    }

    async fn answer(response: reqwest::Response) -> anyhow::Result<Value> {
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        let text = response
            .text()
            .await
            .context("cannot read the hub's answer")?;
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("the hub answered {status} with a non-JSON body"))?;
        if status.is_success() {
            return Ok(json);
        }
        let error = &json["error"];
        let code = error["code"].as_str().unwrap_or("UNKNOWN");
        let message = error["message"].as_str().unwrap_or("no message");
        let mut description = format!("{code}: {message}");
        if let Some(problems) = error["details"]["errors"].as_array() {
            for problem in problems {
                description.push_str(&format!(
                    "\n  {}: {}",
                    problem["path"].as_str().unwrap_or(""),
                    problem["message"].as_str().unwrap_or("")
                ));
            }
        }
        if let Some(unmet) = error["details"]["unmet"].as_array() {
            for dependency in unmet {
                description.push_str(&format!(
                    "\n  {}",
                    dependency["message"].as_str().unwrap_or("")
                ));
                // The manifest's own words on why the dependency is needed.
                if let Some(reason) = dependency["reason"].as_str() {
                    description.push_str(&format!(" (needed for: {reason})"));
                }
            }
        }
        bail!(description)
    }
}
