//! `{{name}}`: a plexhub plugin made by `plexhub new plugin`. At start it calls CRM through the
//! hub; then it serves `GET /hello` behind the hub's signature check (only requests the hub
//! forwarded and signed reach the handler) and keeps its service registered with heartbeats,
//! until Ctrl-C or SIGTERM.
//!
//! Environment: `PLEXHUB_URL` (e.g. `http://127.0.0.1:4000`), `PLEXHUB_TOKEN` (the credential
//! `plexhub install {{plugin_id}} …` printed; or `PLEXHUB_TOKENS`, one per tenant), `PORT`
//! (default {{port}}) and `PUBLIC_URL` (how the hub reaches it; default `http://127.0.0.1:<PORT>`).

use std::process::ExitCode;

use axum::routing::get;
use axum::{Extension, Json, Router};
use plexhub_sdk::{Client, Error, HubRequest, Installations, ServeOptions, serve};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{{name}}: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let installations = Installations::from_env().await?;
    for tenant in installations.tenants() {
        if let Some(hub) = installations.tenant(tenant) {
            let total = crm_contacts(hub).await?;
            println!("{{name}}: CRM has {total} contacts in {tenant}");
        }
    }
    let manifest: Value = serde_json::from_str(include_str!("../manifest.json"))?;
    let port = std::env::var("PORT").unwrap_or_else(|_| "{{port}}".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let router = Router::new()
        .route("/hello", get(hello))
        .layer(Extension(installations.clone()));
    let options = ServeOptions {
        public_url: std::env::var("PUBLIC_URL").ok(),
        ..ServeOptions::default()
    };
    let plugin = serve(listener, router, &manifest, &installations, options).await?;
    println!("{{name}}: serving on {}", plugin.url());
    stopped().await;
    plugin.stop().await;
    Ok(())
}

/// `GET /hello`: who called, and how many contacts CRM has in the caller's tenant.
async fn hello(hub: HubRequest, Extension(installations): Extension<Installations>) -> Json<Value> {
    let contacts = match installations.tenant(&hub.tenant_slug) {
        Some(client) => crm_contacts(client).await.ok(),
        None => None,
    };
    Json(json!({"hello": hub.caller, "tenant": hub.tenant_slug, "crmContacts": contacts}))
}

/// How many contacts CRM has. Through the gateway: the hub checks this plugin's manifest (its
/// dependency on CRM) and grants, then signs the request it forwards to CRM.
async fn crm_contacts(hub: &Client) -> Result<u64, Error> {
    let answer: Value = hub.get_json("crm.contacts", "/contacts?limit=1").await?;
    Ok(answer["total"].as_u64().unwrap_or(0))
}

/// Ctrl-C or SIGTERM.
async fn stopped() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
