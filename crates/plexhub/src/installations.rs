//! `plexhub installation …`: an installation's lifecycle, grants and allowed origins.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::HubClient;
use crate::commands::print_json;

/// Which installation a command is about.
#[derive(clap::Args)]
pub struct Which {
    /// Plugin id.
    plugin_id: String,
    /// Tenant slug.
    #[arg(long)]
    tenant: String,
}

impl Which {
    /// `/tenants/{tenant}/installations/{pluginId}`, followed by `rest`.
    fn path(&self, rest: &str) -> String {
        format!(
            "/tenants/{}/installations/{}{rest}",
            self.tenant, self.plugin_id
        )
    }
}

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
    Show(Which),
    /// Activate an installation (INSTALLED or DISABLED → ACTIVE).
    Activate(Which),
    /// Deactivate an installation (ACTIVE → DISABLED): it can no longer call or be called.
    Deactivate(Which),
    /// Uninstall a plugin; `--plan` only shows what it would do.
    Uninstall {
        #[command(flatten)]
        which: Which,
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
        #[command(flatten)]
        which: Which,
        /// The new URL, e.g. http://127.0.0.1:3200.
        url: String,
    },
    /// Set the origins an installation may register services at (none: its baseUrl's origin).
    Origins {
        #[command(flatten)]
        which: Which,
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
    #[command(flatten)]
    which: Which,
    /// Permissions, e.g. plugin.crm.contacts.read.
    grants: Vec<String>,
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
        InstallationCommand::Show(which) => {
            print_json(&client.call(Method::GET, &which.path(""), None).await?);
        }
        InstallationCommand::Activate(which) => {
            let path = which.path("/activate");
            print_installation(&client.call(Method::POST, &path, None).await?);
        }
        InstallationCommand::Deactivate(which) => {
            let path = which.path("/deactivate");
            print_installation(&client.call(Method::POST, &path, None).await?);
        }
        InstallationCommand::Uninstall {
            which,
            cascade,
            plan,
        } => uninstall(client, &which, cascade, plan).await?,
        InstallationCommand::Grants(command) => grants(client, command).await?,
        InstallationCommand::BaseUrl { which, url } => {
            let body = json!({ "baseUrl": url });
            let path = which.path("/base-url");
            print_installation(&client.call(Method::PUT, &path, Some(&body)).await?);
        }
        InstallationCommand::Origins { which, origins } => {
            let path = which.path("/allowed-origins");
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
    which: &Which,
    cascade: bool,
    plan: bool,
) -> anyhow::Result<()> {
    let (tenant, plugin_id) = (&which.tenant, &which.plugin_id);
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
    let path = which.path(&format!("?cascade={cascade}"));
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
    let path = args.which.path("");
    let mut grants = strings(&client.call(Method::GET, &path, None).await?["grants"]);
    let before = grants.clone();
    change(&mut grants, args.grants);
    if grants == before {
        println!(
            "{} grants unchanged: {}",
            args.which.plugin_id,
            grants.join(", ")
        );
        return Ok(());
    }
    let body = json!({ "grants": grants });
    let updated = client
        .call(Method::PUT, &format!("{path}/grants"), Some(&body))
        .await?;
    let now = strings(&updated["grants"]);
    println!("{} is granted: {}", args.which.plugin_id, now.join(", "));
    Ok(())
}
