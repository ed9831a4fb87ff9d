//! `plexhub events …` and `plexhub dead-letters …`: the event bus from the command line.

use anyhow::Context as _;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::HubClient;
use crate::commands::{follow, print_json, segment};

/// `plexhub events …`
#[derive(Subcommand)]
pub enum EventsCommand {
    /// Publish an event as a plugin (`--token phk_…`: a plugin publishes its own
    /// `plugin.<name>.…` types).
    Publish {
        /// Event type, e.g. plugin.crm.contact.created.
        event_type: String,
        /// Payload as JSON.
        #[arg(long, default_value = "null")]
        data: String,
        /// Event id (default: generated; a repeated id is accepted once).
        #[arg(long)]
        id: Option<String>,
        /// Partition key (events of one key are delivered in order).
        #[arg(long)]
        key: Option<String>,
    },
    /// Print a tenant's events as they are published (`--from-start` replays the retained
    /// log first).
    Tail {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Only these types (`*` one segment, final `#` the rest).
        #[arg(long)]
        pattern: Option<String>,
        /// Replay the retained log first.
        #[arg(long)]
        from_start: bool,
    },
    /// List a tenant's subscriptions with their lag.
    Subscriptions {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
}

/// `plexhub dead-letters …`
#[derive(Subcommand)]
pub enum DeadLettersCommand {
    /// List a tenant's dead letters.
    List {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Only this subscription's.
        #[arg(long)]
        subscription: Option<String>,
    },
    /// Deliver a dead letter's event again (attempts start over).
    Retry {
        /// Dead letter id.
        id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Delete a dead letter.
    Drop {
        /// Dead letter id.
        id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
}

/// Runs `plexhub events …`.
pub async fn events(client: &HubClient, command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Publish {
            event_type,
            data,
            id,
            key,
        } => {
            let data: Value =
                serde_json::from_str(&data).context("--data must be JSON, e.g. '{\"a\":1}'")?;
            let mut event = json!({ "type": event_type, "data": data });
            if let Some(id) = id {
                event["id"] = json!(id);
            }
            if let Some(key) = key {
                event["partitionkey"] = json!(key);
            }
            let answer = client.call(Method::POST, "/events", Some(&event)).await?;
            print_json(&answer);
        }
        EventsCommand::Tail {
            tenant,
            pattern,
            from_start,
        } => {
            let query = pattern
                .map(|pattern| format!("?pattern={}", segment(&pattern)))
                .unwrap_or_default();
            let resume = from_start.then_some("0");
            follow(
                client,
                &tenant,
                &format!("/events/stream{query}"),
                resume,
                |id, kind, event| {
                    format!(
                        "{id}\t{kind}\t{}\t{}",
                        event["source"].as_str().unwrap_or("-"),
                        event["data"]
                    )
                },
            )
            .await?;
        }
        EventsCommand::Subscriptions { tenant } => {
            let answer = client
                .call_for(&tenant, Method::GET, "/subscriptions", None, &[])
                .await?;
            for subscription in answer["subscriptions"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}\t{}\tlag {}\tdelivered {}\tdead {}",
                    subscription["id"].as_str().unwrap_or("-"),
                    subscription["pluginId"].as_str().unwrap_or("-"),
                    subscription["pattern"].as_str().unwrap_or("-"),
                    subscription["endpoint"].as_str().unwrap_or("-"),
                    subscription["lag"],
                    subscription["delivered"],
                    subscription["deadLettered"],
                );
            }
        }
    }
    Ok(())
}

/// Runs `plexhub dead-letters …`.
pub async fn dead_letters(client: &HubClient, command: DeadLettersCommand) -> anyhow::Result<()> {
    match command {
        DeadLettersCommand::List {
            tenant,
            subscription,
        } => {
            let query = subscription
                .map(|id| format!("?subscription={}", segment(&id)))
                .unwrap_or_default();
            let answer = client
                .call_for(
                    &tenant,
                    Method::GET,
                    &format!("/dead-letters{query}"),
                    None,
                    &[],
                )
                .await?;
            print_json(&answer);
        }
        DeadLettersCommand::Retry { id, tenant } => {
            let path = format!("/dead-letters/{}/retry", segment(&id));
            client
                .call_for(&tenant, Method::POST, &path, None, &[])
                .await?;
            println!("queued {id} again");
        }
        DeadLettersCommand::Drop { id, tenant } => {
            let path = format!("/dead-letters/{}", segment(&id));
            client
                .call_for(&tenant, Method::DELETE, &path, None, &[])
                .await?;
            println!("dropped {id}");
        }
    }
    Ok(())
}
