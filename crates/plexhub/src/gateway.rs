//! `plexhub call`, `plexhub access explain` and `plexhub calls`: the gateway from the command
//! line.

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

/// `plexhub calls [--tenant …] [--caller …] [--target …] [--status …] [--since …] [--limit …]
/// [--cursor …]`
#[derive(Args)]
pub struct CallsArgs {
    /// Only this tenant (slug).
    #[arg(long)]
    tenant: Option<String>,
    /// Only calls of this plugin.
    #[arg(long)]
    caller: Option<String>,
    /// Only calls to this plugin.
    #[arg(long)]
    target: Option<String>,
    /// A status (404) or a class (5xx).
    #[arg(long)]
    status: Option<String>,
    /// Since this time: RFC 3339 or epoch milliseconds.
    #[arg(long)]
    since: Option<String>,
    /// How many, newest first (1-1000, default 100).
    #[arg(long)]
    limit: Option<u32>,
    /// Continue after a previous page (the cursor it printed).
    #[arg(long)]
    cursor: Option<String>,
}

/// Runs `plexhub calls`: the gateway's audit log, newest first, one call per line (time,
/// tenant id, caller → target, service, method, path, status, milliseconds, request id); the
/// cursor of the next page, if any, on stderr.
pub async fn calls(client: &HubClient, args: CallsArgs) -> anyhow::Result<()> {
    let limit = args.limit.map(|limit| limit.to_string());
    let filters = [
        ("tenant", args.tenant.as_deref()),
        ("caller", args.caller.as_deref()),
        ("target", args.target.as_deref()),
        ("status", args.status.as_deref()),
        ("since", args.since.as_deref()),
        ("limit", limit.as_deref()),
        ("cursor", args.cursor.as_deref()),
    ];
    let query: Vec<String> = filters
        .iter()
        .filter_map(|(name, value)| {
            value.map(|value| format!("{name}={}", crate::commands::segment(value)))
        })
        .collect();
    let path = if query.is_empty() {
        "/calls".to_owned()
    } else {
        format!("/calls?{}", query.join("&"))
    };
    let answer = client.call(Method::GET, &path, None).await?;
    for call in answer["calls"].as_array().into_iter().flatten() {
        let text = |name: &str| call[name].as_str().unwrap_or("-").to_owned();
        println!(
            "{}\t{}\t{} -> {}\t{}\t{} {}\t{}\t{}ms\t{}",
            text("at"),
            text("tenantId"),
            text("caller"),
            text("target"),
            text("service"),
            text("method"),
            text("path"),
            call["status"],
            call["durationMs"],
            text("requestId")
        );
    }
    if let Some(cursor) = answer["nextCursor"].as_str() {
        eprintln!("older calls: add --cursor {cursor}");
    }
    Ok(())
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
