//! `plexhub-hello`: the smallest plugin that calls another one through the hub. It lists CRM's
//! contacts (through the gateway, as `plugin-hello`, in the tenant its credential belongs to)
//! and counts its runs in the tenant's shared data.
//!
//! Environment: `PLEXHUB_URL` (e.g. `http://127.0.0.1:4000`) and `PLEXHUB_TOKEN` (the
//! credential `plexhub install plugin-hello …` printed).

use std::process::ExitCode;

use plexhub_sdk::{Client, Error, ErrorCode};
use serde::Deserialize;

/// The part of CRM's `GET /contacts` answer this plugin reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Contacts {
    data: Vec<Contact>,
    total: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Contact {
    first_name: String,
    last_name: String,
    company: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let hub = match Client::from_env() {
        Ok(hub) => hub,
        Err(error) => {
            eprintln!("plexhub-hello: {error}");
            return ExitCode::FAILURE;
        }
    };
    match greet(&hub).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Hub(refusal)) if refusal.code == ErrorCode::PermissionDenied => {
            eprintln!(
                "plexhub-hello: grant it the permission first: {}",
                refusal.message
            );
            ExitCode::FAILURE
        }
        Err(Error::Hub(refusal)) if refusal.code.is_target_unavailable() => {
            eprintln!(
                "plexhub-hello: CRM is not reachable right now: {}",
                refusal.message
            );
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("plexhub-hello: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn greet(hub: &Client) -> Result<(), Error> {
    // Through the gateway: the hub checks this plugin's manifest and grants, then signs the
    // request it forwards to CRM with the tenant and the caller.
    let contacts: Contacts = hub
        .get_json("crm.contacts", "/contacts?sortBy=lastName&sortOrder=asc")
        .await?;
    for contact in &contacts.data {
        let company = contact.company.as_deref().unwrap_or("no company");
        println!(
            "Hello, {} {} ({company})!",
            contact.first_name, contact.last_name
        );
    }
    // Shared data: this plugin owns the key; compare-and-set retries on concurrent runs.
    let revision = hub
        .data_update("hello", "runs", |old| {
            serde_json::json!(old.and_then(serde_json::Value::as_i64).unwrap_or(0) + 1)
        })
        .await?;
    println!("{} contacts greeted; run number {revision}", contacts.total);
    Ok(())
}
