//! `plexhub call` and `plexhub access explain`: the gateway from the command line.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use crate::client::HubClient;

/// `plexhub call <service> <method> <path> --as <plugin> --tenant <slug>`
#[derive(Args)]
pub struct CallArgs {
    /// Service name, e.g. crm.contacts.
    service: String,
    /// GET, POST, PUT, PATCH or DELETE.
    method: String,
    /// Path on the service, with its query, e.g. /contacts?limit=5.
    path: String,
    /// The calling plugin.
    #[arg(long = "as")]
    caller: String,
    /// Tenant slug.
    #[arg(long)]
    tenant: String,
    /// JSON body.
    #[arg(long)]
    data: Option<String>,
}

/// `plexhub access …`
#[derive(Subcommand)]
pub enum AccessCommand {
    /// Why a call would be allowed or denied: every rule the gateway checks, in order.
    Explain {
        /// Service name.
        service: String,
        /// GET, POST, PUT, PATCH or DELETE.
        method: String,
        /// Path on the service.
        path: String,
        /// The calling plugin.
        #[arg(long = "as")]
        caller: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
}

fn method(text: &str) -> anyhow::Result<Method> {
    Method::from_bytes(text.to_ascii_uppercase().as_bytes())
        .with_context(|| format!("{text:?} is not an HTTP method"))
}

/// Runs `plexhub call`: prints the plugin's answer; a non-2xx answer fails the command.
pub async fn call(client: &HubClient, args: CallArgs) -> anyhow::Result<()> {
    let body: Option<Value> = args
        .data
        .as_deref()
        .map(serde_json::from_str)
        .transpose()
        .context("--data must be JSON")?;
    if !args.path.starts_with('/') {
        bail!("the path must start with /");
    }
    let service_path = format!("{}{}", args.service, args.path);
    let (status, text) = client
        .proxy(
            &args.tenant,
            &args.caller,
            method(&args.method)?,
            &service_path,
            body.as_ref(),
        )
        .await?;
    if !status.is_success() {
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match json["error"]["code"].as_str() {
            Some(code) => bail!(
                "{code}: {}",
                json["error"]["message"].as_str().unwrap_or_default()
            ),
            None => bail!("the plugin answered {status}: {text}"),
        }
    }
    println!("{text}");
    Ok(())
}

/// Runs `plexhub access …`.
pub async fn access(client: &HubClient, command: AccessCommand) -> anyhow::Result<()> {
    let AccessCommand::Explain {
        service,
        method: verb,
        path,
        caller,
        tenant,
    } = command;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("caller", &caller)
        .append_pair("service", &service)
        .append_pair("method", &verb)
        .append_pair("path", &path)
        .finish();
    let answer = client
        .call_for(
            &tenant,
            Method::GET,
            &format!("/access/explain?{query}"),
            None,
            &[],
        )
        .await?;
    if answer["allowed"] == true {
        println!(
            "allowed: {} {path} matches {}",
            verb.to_ascii_uppercase(),
            answer["endpoint"].as_str().unwrap_or_default()
        );
    } else {
        println!(
            "denied: {}: {}",
            answer["code"].as_str().unwrap_or_default(),
            answer["message"].as_str().unwrap_or_default()
        );
    }
    for check in answer["checks"].as_array().into_iter().flatten() {
        let mark = if check["passed"] == true {
            "ok  "
        } else {
            "FAIL"
        };
        println!(
            "  {mark} {}: {}",
            check["rule"].as_str().unwrap_or_default(),
            check["detail"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}
