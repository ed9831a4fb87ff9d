//! `plexhub deps …`: the dependency graph, why a plugin is installed, and plans.

use std::collections::HashSet;

use anyhow::bail;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::HubClient;

/// `plexhub deps …`
#[derive(Subcommand)]
pub enum DepsCommand {
    /// Print a plugin's dependency tree (latest catalog versions, manifest and registered
    /// edges), marking cycles.
    Tree {
        /// Plugin id.
        plugin_id: String,
    },
    /// Why a plugin is (or would be) installed in a tenant: what it needs, and which installed
    /// plugins need it.
    Why {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Plan an install, uninstall or upgrade without changing anything.
    #[command(subcommand)]
    Plan(PlanCommand),
}

/// `plexhub deps plan …`
#[derive(Subcommand)]
pub enum PlanCommand {
    /// Which versions installing a plugin takes, dependencies first, or why none fit.
    Install {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Version or npm range.
        #[arg(long)]
        version: Option<String>,
    },
    /// What blocks uninstalling a plugin; with --cascade, the removal order.
    Uninstall {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Show the order in which dependents would be removed first.
        #[arg(long)]
        cascade: bool,
    },
    /// Which installed dependents moving a plugin to a version breaks.
    Upgrade {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The catalog version to move to.
        #[arg(long)]
        version: String,
    },
}

/// Runs one `deps` command.
pub async fn run(client: &HubClient, command: DepsCommand) -> anyhow::Result<()> {
    match command {
        DepsCommand::Tree { plugin_id } => {
            println!("{plugin_id}");
            let mut path = vec![plugin_id.clone()];
            let mut expanded = HashSet::from([plugin_id.clone()]);
            print_children(client, &plugin_id, 1, &mut path, &mut expanded).await
        }
        DepsCommand::Why { plugin_id, tenant } => why(client, &plugin_id, &tenant).await,
        DepsCommand::Plan(command) => plan(client, command).await,
    }
}

async fn direct_dependencies(client: &HubClient, plugin_id: &str) -> anyhow::Result<Vec<Value>> {
    let path = format!("/dependencies/{plugin_id}");
    let (status, body) = client.call_gateway(Method::GET, &path, None).await?;
    if !status.is_success() {
        return Err(HubClient::flat_error(status, &body));
    }
    Ok(body["dependencies"].as_array().cloned().unwrap_or_default())
}

fn describe(edge: &Value) -> String {
    let text = |field: &str| edge[field].as_str().unwrap_or_default().to_owned();
    let kind = if edge["required"] == true {
        "required"
    } else {
        "optional"
    };
    let mut line = format!(
        "{} {}  ({kind}, {})",
        text("dependsOnPluginId"),
        text("version"),
        text("source")
    );
    if let Some(service) = edge["serviceName"].as_str() {
        line.push_str(&format!(" service {service}"));
    }
    if let Some(reason) = edge["reason"].as_str() {
        line.push_str(&format!(": {reason}"));
    }
    line
}

/// Prints the dependencies of `plugin_id` at `depth`, recursing once per plugin.
async fn print_children(
    client: &HubClient,
    plugin_id: &str,
    depth: usize,
    path: &mut Vec<String>,
    expanded: &mut HashSet<String>,
) -> anyhow::Result<()> {
    for edge in direct_dependencies(client, plugin_id).await? {
        let target = edge["dependsOnPluginId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let indent = "  ".repeat(depth);
        if path.contains(&target) {
            println!("{indent}{}  <- cycle", describe(&edge));
        } else if !expanded.insert(target.clone()) {
            println!("{indent}{}  (see above)", describe(&edge));
        } else {
            println!("{indent}{}", describe(&edge));
            path.push(target.clone());
            Box::pin(print_children(client, &target, depth + 1, path, expanded)).await?;
            path.pop();
        }
    }
    Ok(())
}

async fn why(client: &HubClient, plugin_id: &str, tenant: &str) -> anyhow::Result<()> {
    let resolve = format!("/dependencies/{plugin_id}/resolve");
    let (status, resolution) = client
        .call_gateway(Method::POST, &resolve, Some(tenant))
        .await?;
    if resolution.get("valid").is_none() {
        return Err(HubClient::flat_error(status, &resolution));
    }
    println!("{plugin_id} in {tenant}");
    let order: Vec<&str> = resolution["installOrder"]
        .as_array()
        .map(|order| order.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if resolution["valid"] == true {
        let needs: Vec<&str> = order
            .iter()
            .copied()
            .filter(|id| *id != plugin_id)
            .collect();
        if needs.is_empty() {
            println!("  needs: nothing");
        } else {
            println!("  needs (install order): {}", needs.join(", "));
        }
    } else {
        println!("  cannot work as installed:");
    }
    for error in resolution["errors"].as_array().into_iter().flatten() {
        println!("    error: {}", error.as_str().unwrap_or_default());
    }
    for warning in resolution["warnings"].as_array().into_iter().flatten() {
        println!("    note: {}", warning.as_str().unwrap_or_default());
    }
    let check = format!("/dependencies/{plugin_id}/can-uninstall");
    let (status, dependents) = client
        .call_gateway(Method::POST, &check, Some(tenant))
        .await?;
    if status.as_u16() == 404 {
        println!("  not installed in {tenant}");
        return Ok(());
    }
    if !status.is_success() {
        return Err(HubClient::flat_error(status, &dependents));
    }
    let details = dependents["details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if details.is_empty() {
        println!("  needed by: no installed plugin (it can be uninstalled)");
    }
    for detail in details {
        let kind = if detail["required"] == true {
            "requires it"
        } else {
            "uses it optionally"
        };
        println!(
            "  needed by: {} {kind}: {}",
            detail["pluginId"].as_str().unwrap_or_default(),
            detail["reason"].as_str().unwrap_or_default()
        );
    }
    Ok(())
}

async fn plan(client: &HubClient, command: PlanCommand) -> anyhow::Result<()> {
    match command {
        PlanCommand::Install {
            plugin_id,
            tenant,
            version,
        } => {
            let body = json!({ "pluginId": plugin_id, "version": version });
            let path = format!("/tenants/{tenant}/plans/install");
            let plan = client.call(Method::POST, &path, Some(&body)).await?;
            for step in plan["steps"].as_array().into_iter().flatten() {
                println!(
                    "{:<8} {} {}",
                    step["action"].as_str().unwrap_or_default(),
                    step["pluginId"].as_str().unwrap_or_default(),
                    step["version"].as_str().unwrap_or_default()
                );
            }
        }
        PlanCommand::Uninstall {
            plugin_id,
            tenant,
            cascade,
        } => {
            let body = json!({ "pluginId": plugin_id, "cascade": cascade });
            let path = format!("/tenants/{tenant}/plans/uninstall");
            let plan = client.call(Method::POST, &path, Some(&body)).await?;
            let names = |field: &str| -> Vec<String> {
                plan[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            };
            if plan["canUninstall"] == true {
                println!("{plugin_id} can be uninstalled");
            } else {
                println!(
                    "{plugin_id} is required by: {}",
                    names("blockedBy").join(", ")
                );
            }
            for warning in names("warnings") {
                println!("note: {warning}");
            }
            if cascade {
                println!("removal order: {}", names("order").join(", "));
            }
        }
        PlanCommand::Upgrade {
            plugin_id,
            tenant,
            version,
        } => {
            let body = json!({ "pluginId": plugin_id, "version": version });
            let path = format!("/tenants/{tenant}/plans/upgrade");
            let plan = client.call(Method::POST, &path, Some(&body)).await?;
            println!(
                "{plugin_id} {} -> {}: {}",
                plan["from"].as_str().unwrap_or_default(),
                plan["to"].as_str().unwrap_or_default(),
                if plan["ok"] == true {
                    "ok"
                } else {
                    "breaks something"
                }
            );
            for broken in plan["breaks"].as_array().into_iter().flatten() {
                println!(
                    "  breaks {} {} ({} {}, {})",
                    broken["pluginId"].as_str().unwrap_or_default(),
                    broken["version"].as_str().unwrap_or_default(),
                    if broken["required"] == true {
                        "requires"
                    } else {
                        "optionally accepts"
                    },
                    broken["range"].as_str().unwrap_or_default(),
                    plugin_id
                );
            }
            for unmet in plan["unmet"].as_array().into_iter().flatten() {
                println!("  unmet: {}", unmet.as_str().unwrap_or_default());
            }
            if plan["ok"] != true {
                bail!("the upgrade of {plugin_id} to {version} would break the tenant");
            }
        }
    }
    Ok(())
}
