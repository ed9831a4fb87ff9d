//! `plexhub installation …`: an installation's lifecycle, grants and allowed origins.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::HubClient;
use crate::commands::print_json;

/// `plexhub installation …`
#[derive(Subcommand)]
pub enum InstallationCommand {
    /// List a tenant's installations: plugin, version, state, base URL, grants.
    List {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Show one installation.
    Show {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Activate an installation (INSTALLED or DISABLED → ACTIVE).
    Activate {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Deactivate an installation (ACTIVE → DISABLED): it can no longer call or be called.
    Deactivate {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Uninstall a plugin; `--plan` only shows what it would do.
    Uninstall {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Also remove the installed plugins that require it, dependents first.
        #[arg(long)]
        cascade: bool,
        /// Show the plan (what blocks it, the removal order) and change nothing.
        #[arg(long)]
        plan: bool,
    },
    /// Change the permissions an installation is granted, without reinstalling it.
    #[command(subcommand)]
    Grants(GrantsCommand),
    /// Set where an installation is reachable (a caller-only plugin that starts serving, or one
    /// that moved); its manifest's services move there when it is ACTIVE.
    BaseUrl {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// The new URL, e.g. http://127.0.0.1:3200.
        url: String,
    },
    /// Set the origins an installation may register services at (none: its baseUrl's origin).
    Origins {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// An origin, `scheme://host[:port]` (repeatable; none clears the list).
        #[arg(long = "origin")]
        origins: Vec<String>,
    },
}

/// `plexhub installation grants …`
#[derive(Subcommand)]
pub enum GrantsCommand {
    /// Replace the whole set of grants.
    Set(GrantsArgs),
    /// Add grants to those the installation has.
    Add(GrantsArgs),
    /// Remove grants from those the installation has.
    Remove(GrantsArgs),
}

/// Which installation, and the grants to set, add or remove.
#[derive(clap::Args)]
pub struct GrantsArgs {
    /// Plugin id.
    plugin_id: String,
    /// Tenant slug.
    #[arg(long)]
    tenant: String,
    /// Permissions, e.g. plugin.crm.contacts.read.
    grants: Vec<String>,
}

fn installation_path(tenant: &str, plugin_id: &str) -> String {
    format!("/tenants/{tenant}/installations/{plugin_id}")
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn print_installation(installation: &Value) {
    println!(
        "{}\t{}\t{}\t{}\tgrants: {}",
        installation["pluginId"].as_str().unwrap_or(""),
        installation["version"].as_str().unwrap_or(""),
        installation["state"].as_str().unwrap_or(""),
        installation["baseUrl"].as_str().unwrap_or("-"),
        strings(&installation["grants"]).join(",")
    );
}

/// Runs one `installation` command.
pub async fn run(client: &HubClient, command: InstallationCommand) -> anyhow::Result<()> {
    match command {
        InstallationCommand::List { tenant } => {
            let path = format!("/tenants/{tenant}/installations");
            let list = client.call(Method::GET, &path, None).await?;
            for installation in list["installations"].as_array().into_iter().flatten() {
                print_installation(installation);
            }
        }
        InstallationCommand::Show { plugin_id, tenant } => {
            let path = installation_path(&tenant, &plugin_id);
            print_json(&client.call(Method::GET, &path, None).await?);
        }
        InstallationCommand::Activate { plugin_id, tenant } => {
            let path = format!("{}/activate", installation_path(&tenant, &plugin_id));
            print_installation(&client.call(Method::POST, &path, None).await?);
        }
        InstallationCommand::Deactivate { plugin_id, tenant } => {
            let path = format!("{}/deactivate", installation_path(&tenant, &plugin_id));
            print_installation(&client.call(Method::POST, &path, None).await?);
        }
        InstallationCommand::Uninstall {
            plugin_id,
            tenant,
            cascade,
            plan,
        } => uninstall(client, &tenant, &plugin_id, cascade, plan).await?,
        InstallationCommand::Grants(command) => grants(client, command).await?,
        InstallationCommand::BaseUrl {
            plugin_id,
            tenant,
            url,
        } => {
            let path = format!("{}/base-url", installation_path(&tenant, &plugin_id));
            let body = json!({ "baseUrl": url });
            print_installation(&client.call(Method::PUT, &path, Some(&body)).await?);
        }
        InstallationCommand::Origins {
            plugin_id,
            tenant,
            origins,
        } => {
            let path = format!("{}/allowed-origins", installation_path(&tenant, &plugin_id));
            let body = json!({ "allowedOrigins": origins });
            let updated = client.call(Method::PUT, &path, Some(&body)).await?;
            println!(
                "{} may register services at: {}",
                updated["pluginId"].as_str().unwrap_or(""),
                match strings(&updated["allowedOrigins"]) {
                    origins if origins.is_empty() => "its baseUrl's origin".to_owned(),
                    origins => origins.join(", "),
                }
            );
        }
    }
    Ok(())
}

async fn uninstall(
    client: &HubClient,
    tenant: &str,
    plugin_id: &str,
    cascade: bool,
    plan: bool,
) -> anyhow::Result<()> {
    if plan {
        let body = json!({ "pluginId": plugin_id, "cascade": cascade });
        let plan = client
            .call(
                Method::POST,
                &format!("/tenants/{tenant}/plans/uninstall"),
                Some(&body),
            )
            .await?;
        print_json(&plan);
        return Ok(());
    }
    let path = format!("{}?cascade={cascade}", installation_path(tenant, plugin_id));
    let answer = client.call(Method::DELETE, &path, None).await?;
    let removed = strings(&answer["uninstalled"]);
    if removed.is_empty() {
        println!("uninstalled {plugin_id}");
    } else {
        println!("uninstalled, in order: {}", removed.join(", "));
    }
    Ok(())
}

/// How a `grants` command changes the current set with the given grants.
type GrantsChange = fn(&mut Vec<String>, Vec<String>);

async fn grants(client: &HubClient, command: GrantsCommand) -> anyhow::Result<()> {
    let (args, change): (GrantsArgs, GrantsChange) = match command {
        GrantsCommand::Set(args) => (args, |current, given| *current = given),
        GrantsCommand::Add(args) => (args, |current, given| {
            for grant in given {
                if !current.contains(&grant) {
                    current.push(grant);
                }
            }
        }),
        GrantsCommand::Remove(args) => (args, |current, given| {
            current.retain(|grant| !given.contains(grant));
        }),
    };
    let path = installation_path(&args.tenant, &args.plugin_id);
    let mut grants = strings(&client.call(Method::GET, &path, None).await?["grants"]);
    let before = grants.clone();
    change(&mut grants, args.grants);
    if grants == before {
        println!("{} grants unchanged: {}", args.plugin_id, grants.join(", "));
        return Ok(());
    }
    let body = json!({ "grants": grants });
    let updated = client
        .call(Method::PUT, &format!("{path}/grants"), Some(&body))
        .await?;
    let now = strings(&updated["grants"]);
    println!("{} is granted: {}", args.plugin_id, now.join(", "));
    Ok(())
}
