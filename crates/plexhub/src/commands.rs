//! Admin commands: each one HTTP call (or two) and a short, readable answer.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Command;
use crate::client::HubClient;

/// `plexhub tenant …`
#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant slug (`[a-z0-9][a-z0-9-]{1,62}`).
        slug: String,
        /// Display name (default: the slug).
        #[arg(long)]
        name: Option<String>,
    },
    /// List tenants.
    List,
    /// Show one tenant.
    Show {
        /// Tenant slug.
        slug: String,
    },
    /// Suspend a tenant: its plugin credentials are refused until resumed.
    Suspend {
        /// Tenant slug.
        slug: String,
    },
    /// Resume a suspended tenant.
    Resume {
        /// Tenant slug.
        slug: String,
    },
    /// Delete a tenant and everything that belongs to it.
    Delete {
        /// Tenant slug.
        slug: String,
    },
}

/// `plexhub plugin …`
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Check a manifest file; lists every problem.
    Validate {
        /// Path to the manifest JSON.
        manifest: PathBuf,
    },
    /// Publish a manifest version to the catalog.
    Publish {
        /// Path to the manifest JSON.
        manifest: PathBuf,
    },
    /// List (search) the catalog: id, latest version, status, versions.
    List {
        /// Words to find in ids, names, descriptions and tags.
        #[arg(long)]
        q: Option<String>,
        /// Only plugins with this tag.
        #[arg(long)]
        tag: Option<String>,
        /// Only plugins with a version in this status (DRAFT, PENDING_REVIEW, PUBLISHED,
        /// DEPRECATED, REJECTED).
        #[arg(long)]
        status: Option<String>,
    },
    /// Show a catalog plugin (its versions), or one version's manifest with `--version`.
    Show {
        /// Plugin id, e.g. plugin-crm.
        plugin_id: String,
        /// An exact version, e.g. 1.2.0.
        #[arg(long)]
        version: Option<String>,
    },
    /// Submit a DRAFT version for review (→ PENDING_REVIEW).
    Submit(TransitionArgs),
    /// Approve a version pending review (→ PUBLISHED).
    Approve(TransitionArgs),
    /// Reject a version pending review (→ REJECTED); needs `--reason`.
    Reject(TransitionArgs),
    /// Deprecate a PUBLISHED version (→ DEPRECATED); needs `--message`.
    Deprecate(TransitionArgs),
    /// Yank a version: no new install or plan picks it, installations keep running; needs
    /// `--reason`.
    Yank(TransitionArgs),
    /// Undo a yank.
    Unyank(TransitionArgs),
    /// Show a version's audit trail: every transition with who and why.
    History {
        /// Plugin id, e.g. plugin-crm.
        plugin_id: String,
        /// The exact version, e.g. 1.2.0.
        version: String,
    },
}

/// Which catalog version a lifecycle command moves, and why.
#[derive(Args)]
pub struct TransitionArgs {
    /// Plugin id, e.g. plugin-crm.
    plugin_id: String,
    /// The exact version, e.g. 1.2.0.
    version: String,
    /// Why (required to reject or yank; recorded for every action).
    #[arg(long)]
    reason: Option<String>,
    /// Deprecation message shown on the plugin and its installations.
    #[arg(long)]
    message: Option<String>,
    /// With deprecate: the plugin or version to use instead.
    #[arg(long)]
    replacement: Option<String>,
    /// Who acts, as the audit trail names them [default: $USER, else admin].
    #[arg(long)]
    by: Option<String>,
}

/// `plexhub install …`
#[derive(Args)]
pub struct InstallArgs {
    /// Catalog plugin id, e.g. plugin-crm.
    plugin_id: String,
    /// Tenant slug.
    #[arg(long)]
    tenant: String,
    /// Where the plugin is reachable, e.g. http://127.0.0.1:3100 (leave it out for a plugin
    /// that exposes no service; set it later with `plexhub installation base-url`).
    #[arg(long)]
    base_url: Option<String>,
    /// Version or npm range (default: latest release).
    #[arg(long)]
    version: Option<String>,
    /// Permission granted to the installation (repeatable).
    #[arg(long = "grant")]
    grants: Vec<String>,
    /// Browser origin allowed to reach the plugin (repeatable).
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// Activate right away.
    #[arg(long)]
    activate: bool,
}

/// `plexhub services …` (operators: admin token, acting for one tenant)
#[derive(Subcommand)]
pub enum ServicesCommand {
    /// List a tenant's services: name, plugin, status, base URL, replicas.
    List {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Show one service with its endpoints and replicas.
    Show {
        /// Service name, e.g. crm.contacts.
        name: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Follow a tenant's registry changes until interrupted.
    Watch {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
}

/// `plexhub credential …`
#[derive(Subcommand)]
pub enum CredentialCommand {
    /// Issue a new credential for an installation (revoke the old one afterwards).
    Rotate {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Rotate an installation's HMAC signing secret: the new one signs at once, the old one
    /// beside it until the overlap window (`--signing-overlap-hours`) ends.
    RotateSigningSecret {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// List an installation's credentials.
    List {
        /// Plugin id.
        plugin_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a credential.
    Revoke {
        /// Credential id (the part between `phk_` and the dot).
        credential_id: String,
        /// Plugin id.
        #[arg(long)]
        plugin: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
}

/// `plexhub shell-credential …`
#[derive(Subcommand)]
pub enum ShellCredentialCommand {
    /// Issue a shell credential for a tenant and print its token (shown once).
    Issue {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// List a tenant's shell credentials.
    List {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a shell credential.
    Revoke {
        /// Credential id (the part between `phs_` and the dot).
        credential_id: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
}

async fn shell_credential(
    client: &HubClient,
    command: ShellCredentialCommand,
) -> anyhow::Result<()> {
    match command {
        ShellCredentialCommand::Issue { tenant } => {
            let path = format!("/tenants/{}/shell-credentials", segment(&tenant));
            let issued = client.call(Method::POST, &path, None).await?;
            println!("{}", issued["token"].as_str().unwrap_or(""));
        }
        ShellCredentialCommand::List { tenant } => {
            let path = format!("/tenants/{}/shell-credentials", segment(&tenant));
            let listed = client.call(Method::GET, &path, None).await?;
            for credential in listed["credentials"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}",
                    credential["id"].as_str().unwrap_or(""),
                    credential["createdAt"].as_str().unwrap_or("")
                );
            }
        }
        ShellCredentialCommand::Revoke {
            credential_id,
            tenant,
        } => {
            let path = format!(
                "/tenants/{}/shell-credentials/{}",
                segment(&tenant),
                segment(&credential_id)
            );
            client.call(Method::DELETE, &path, None).await?;
            println!("revoked {credential_id}");
        }
    }
    Ok(())
}

/// `plexhub remotes`: one line per remote, `pluginId version remoteEntry routes`.
async fn remotes(client: &HubClient, tenant: Option<String>) -> anyhow::Result<()> {
    let list = match tenant {
        Some(tenant) => {
            client
                .call_for(&tenant, Method::GET, "/ui/remotes", None, &[])
                .await?
        }
        None => client.call(Method::GET, "/ui/remotes", None).await?,
    };
    for remote in list["remotes"].as_array().into_iter().flatten() {
        let routes: Vec<&str> = remote["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|route| route["path"].as_str())
            .collect();
        println!(
            "{}\t{}\t{}\t{}",
            remote["pluginId"].as_str().unwrap_or(""),
            remote["version"].as_str().unwrap_or(""),
            remote["remoteEntry"].as_str().unwrap_or(""),
            routes.join(",")
        );
    }
    Ok(())
}

fn read_manifest(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

pub(crate) fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn print_tenant(tenant: &Value) {
    println!(
        "{}\t{}\t{}\t{}",
        tenant["slug"].as_str().unwrap_or(""),
        tenant["status"].as_str().unwrap_or(""),
        tenant["id"].as_str().unwrap_or(""),
        tenant["name"].as_str().unwrap_or("")
    );
}

/// Runs one admin command against the hub.
pub async fn run(client: &HubClient, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) | Command::Demo(_) | Command::New(_) => bail!("not an admin command"),
        Command::Tenant(command) => tenant(client, command).await,
        Command::Plugin(command) => plugin(client, command).await,
        Command::Install(args) => install(client, args).await,
        Command::Installation(command) => crate::installations::run(client, command).await,
        Command::Credential(command) => credential(client, command).await,
        Command::ShellCredential(command) => shell_credential(client, command).await,
        Command::Remotes { tenant } => remotes(client, tenant).await,
        Command::Services(command) => services(client, command).await,
        Command::Data(command) => data(client, command).await,
        Command::Deps(command) => crate::deps::run(client, command).await,
        Command::Call(args) => crate::gateway::call(client, args).await,
        Command::Access(command) => crate::gateway::access(client, command).await,
        Command::Calls(args) => crate::gateway::calls(client, args).await,
        Command::Events(command) => crate::events::events(client, command).await,
        Command::DeadLetters(command) => crate::events::dead_letters(client, command).await,
        Command::Whoami => {
            print_json(&client.call(Method::GET, "/whoami", None).await?);
            Ok(())
        }
    }
}

async fn tenant(client: &HubClient, command: TenantCommand) -> anyhow::Result<()> {
    match command {
        TenantCommand::Create { slug, name } => {
            let body = json!({ "slug": slug, "name": name });
            let tenant = client.call(Method::POST, "/tenants", Some(&body)).await?;
            print_tenant(&tenant);
        }
        TenantCommand::List => {
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(cursor) => format!("/tenants?limit=500&cursor={cursor}"),
                    None => "/tenants?limit=500".to_owned(),
                };
                let page = client.call(Method::GET, &path, None).await?;
                for tenant in page["tenants"].as_array().into_iter().flatten() {
                    print_tenant(tenant);
                }
                match page["nextCursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        TenantCommand::Show { slug } => {
            print_json(
                &client
                    .call(Method::GET, &format!("/tenants/{slug}"), None)
                    .await?,
            );
        }
        TenantCommand::Suspend { slug } => set_status(client, &slug, "suspended").await?,
        TenantCommand::Resume { slug } => set_status(client, &slug, "active").await?,
        TenantCommand::Delete { slug } => {
            client
                .call(Method::DELETE, &format!("/tenants/{slug}"), None)
                .await?;
            println!("deleted tenant {slug}");
        }
    }
    Ok(())
}

async fn set_status(client: &HubClient, slug: &str, status: &str) -> anyhow::Result<()> {
    let body = json!({ "status": status });
    let tenant = client
        .call(Method::PATCH, &format!("/tenants/{slug}"), Some(&body))
        .await?;
    print_tenant(&tenant);
    Ok(())
}

async fn plugin(client: &HubClient, command: PluginCommand) -> anyhow::Result<()> {
    match command {
        PluginCommand::Validate { manifest } => {
            let body = read_manifest(&manifest)?;
            let result = client
                .call(Method::POST, "/plugins/validate", Some(&body))
                .await?;
            let problems = result["errors"].as_array().cloned().unwrap_or_default();
            if problems.is_empty() {
                println!("{}: valid", manifest.display());
                return Ok(());
            }
            for problem in &problems {
                println!(
                    "{}: {}",
                    problem["path"].as_str().unwrap_or(""),
                    problem["message"].as_str().unwrap_or("")
                );
            }
            bail!(
                "{} is invalid ({} problem(s))",
                manifest.display(),
                problems.len()
            );
        }
        PluginCommand::Publish { manifest } => {
            let body = read_manifest(&manifest)?;
            let published = client.call(Method::POST, "/plugins", Some(&body)).await?;
            let plugin_id = published["pluginId"].as_str().unwrap_or("");
            let version = published["version"].as_str().unwrap_or("");
            match published["status"].as_str() {
                Some("DRAFT") => println!(
                    "stored {plugin_id} {version} as DRAFT (this hub reviews the catalog): \
                     plexhub plugin submit {plugin_id} {version}, then approve"
                ),
                _ => println!("published {plugin_id} {version}"),
            }
        }
        PluginCommand::Show { plugin_id, version } => {
            let path = match version {
                Some(version) => format!(
                    "/plugins/{}/versions/{}",
                    segment(&plugin_id),
                    segment(&version)
                ),
                None => format!("/plugins/{}", segment(&plugin_id)),
            };
            print_json(&client.call(Method::GET, &path, None).await?);
        }
        PluginCommand::List { q, tag, status } => {
            let mut query: Vec<String> = Vec::new();
            for (key, value) in [("q", q), ("tag", tag), ("status", status)] {
                if let Some(value) = value {
                    query.push(format!("{key}={}", segment(&value)));
                }
            }
            let mut cursor: Option<String> = None;
            loop {
                let mut page_query = query.clone();
                if let Some(cursor) = &cursor {
                    page_query.push(format!("cursor={}", segment(cursor)));
                }
                let path = if page_query.is_empty() {
                    "/plugins".to_owned()
                } else {
                    format!("/plugins?{}", page_query.join("&"))
                };
                let catalog = client.call(Method::GET, &path, None).await?;
                for plugin in catalog["plugins"].as_array().into_iter().flatten() {
                    print_plugin_line(plugin);
                }
                match catalog["nextCursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        PluginCommand::Submit(args) => transition(client, "submit", args).await?,
        PluginCommand::Approve(args) => transition(client, "approve", args).await?,
        PluginCommand::Reject(args) => transition(client, "reject", args).await?,
        PluginCommand::Deprecate(args) => transition(client, "deprecate", args).await?,
        PluginCommand::Yank(args) => transition(client, "yank", args).await?,
        PluginCommand::Unyank(args) => transition(client, "unyank", args).await?,
        PluginCommand::History { plugin_id, version } => {
            let path = format!(
                "/plugins/{}/versions/{}/transitions",
                segment(&plugin_id),
                segment(&version)
            );
            let trail = client.call(Method::GET, &path, None).await?;
            for step in trail["transitions"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{} -> {}{}\tby {}\t{}",
                    step["at"].as_str().unwrap_or(""),
                    step["action"].as_str().unwrap_or(""),
                    step["from"].as_str().unwrap_or("-"),
                    step["to"].as_str().unwrap_or(""),
                    if step["yanked"].as_bool() == Some(true) {
                        " (yanked)"
                    } else {
                        ""
                    },
                    step["by"].as_str().unwrap_or(""),
                    step["reason"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

/// `plugin-crm  1.2.0  PUBLISHED  1.0.0,1.1.0,1.2.0` (and the deprecation message, if any).
fn print_plugin_line(plugin: &Value) {
    let versions: Vec<&str> = plugin["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let deprecation = plugin["deprecation"]["message"]
        .as_str()
        .map(|message| format!("\tdeprecated: {message}"))
        .unwrap_or_default();
    println!(
        "{}\t{}\t{}\t{}{deprecation}",
        plugin["pluginId"].as_str().unwrap_or(""),
        plugin["latestVersion"].as_str().unwrap_or(""),
        plugin["status"].as_str().unwrap_or(""),
        versions.join(",")
    );
}

/// Applies one lifecycle action to a catalog version and prints where it now stands.
async fn transition(client: &HubClient, action: &str, args: TransitionArgs) -> anyhow::Result<()> {
    let by = args
        .by
        .or_else(|| std::env::var("USER").ok().filter(|user| !user.is_empty()));
    let body = json!({
        "action": action,
        "reason": args.reason,
        "message": args.message,
        "replacement": args.replacement,
        "by": by,
    });
    let path = format!(
        "/plugins/{}/versions/{}/transitions",
        segment(&args.plugin_id),
        segment(&args.version)
    );
    let version = client.call(Method::POST, &path, Some(&body)).await?;
    println!(
        "{} {}: {}{}",
        version["pluginId"].as_str().unwrap_or(""),
        version["version"].as_str().unwrap_or(""),
        version["status"].as_str().unwrap_or(""),
        if version["yanked"].as_bool() == Some(true) {
            " (yanked)"
        } else {
            ""
        }
    );
    Ok(())
}

async fn install(client: &HubClient, args: InstallArgs) -> anyhow::Result<()> {
    let body = json!({
        "pluginId": args.plugin_id,
        "version": args.version,
        "baseUrl": args.base_url,
        "grants": args.grants,
        "allowedOrigins": args.allowed_origins,
        "activate": args.activate,
    });
    let path = format!("/tenants/{}/installations", args.tenant);
    let installed = client.call(Method::POST, &path, Some(&body)).await?;
    let installation = &installed["installation"];
    println!(
        "installed {} {} for {} ({})",
        installation["pluginId"].as_str().unwrap_or(""),
        installation["version"].as_str().unwrap_or(""),
        installation["tenant"].as_str().unwrap_or(""),
        installation["state"].as_str().unwrap_or("")
    );
    print_new_credential(&installed["credential"]);
    Ok(())
}

fn print_new_credential(credential: &Value) {
    println!(
        "credential {} (shown once, store it now):\n{}",
        credential["id"].as_str().unwrap_or(""),
        credential["token"].as_str().unwrap_or("")
    );
    if let Some(secret) = credential.get("signingSecret") {
        print_signing_secret(secret);
    }
}

fn print_signing_secret(secret: &Value) {
    println!(
        "signing secret {} (verifies what the hub forwards to it; the plugin reads it again with its credential):\n{}",
        secret["keyId"].as_str().unwrap_or(""),
        secret["secret"].as_str().unwrap_or("")
    );
}

async fn credential(client: &HubClient, command: CredentialCommand) -> anyhow::Result<()> {
    match command {
        CredentialCommand::Rotate { plugin_id, tenant } => {
            let path = format!("/tenants/{tenant}/installations/{plugin_id}/credentials");
            let issued = client.call(Method::POST, &path, None).await?;
            print_new_credential(&issued);
        }
        CredentialCommand::RotateSigningSecret { plugin_id, tenant } => {
            let path = format!("/tenants/{tenant}/installations/{plugin_id}/signing-secret/rotate");
            let rotated = client.call(Method::POST, &path, None).await?;
            print_signing_secret(&rotated["signingSecret"]);
            for old in rotated["stillSigning"].as_array().into_iter().flatten() {
                println!(
                    "{} keeps signing beside it until the overlap window ends",
                    old.as_str().unwrap_or("")
                );
            }
        }
        CredentialCommand::List { plugin_id, tenant } => {
            let path = format!("/tenants/{tenant}/installations/{plugin_id}/credentials");
            let list = client.call(Method::GET, &path, None).await?;
            for credential in list["credentials"].as_array().into_iter().flatten() {
                println!(
                    "{}\tcreated {}\tlast used {}",
                    credential["id"].as_str().unwrap_or(""),
                    credential["createdAt"].as_str().unwrap_or(""),
                    credential["lastUsedAt"].as_str().unwrap_or("never")
                );
            }
        }
        CredentialCommand::Revoke {
            credential_id,
            plugin,
            tenant,
        } => {
            let path =
                format!("/tenants/{tenant}/installations/{plugin}/credentials/{credential_id}");
            client.call(Method::DELETE, &path, None).await?;
            println!("revoked credential {credential_id}");
        }
    }
    Ok(())
}

async fn services(client: &HubClient, command: ServicesCommand) -> anyhow::Result<()> {
    match command {
        ServicesCommand::List { tenant } => {
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(cursor) => format!("/services?limit=500&cursor={cursor}"),
                    None => "/services?limit=500".to_owned(),
                };
                let page = client
                    .call_for(&tenant, Method::GET, &path, None, &[])
                    .await?;
                for service in page["services"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\t{}\t{}\t{} instance(s)",
                        service["serviceName"].as_str().unwrap_or(""),
                        service["pluginId"].as_str().unwrap_or(""),
                        service["status"].as_str().unwrap_or(""),
                        service["baseUrl"].as_str().unwrap_or("-"),
                        service["instances"].as_array().map_or(0, Vec::len)
                    );
                }
                match page["nextCursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
            }
        }
        ServicesCommand::Show { name, tenant } => {
            let service = client
                .call_for(
                    &tenant,
                    Method::GET,
                    &format!("/services/{name}"),
                    None,
                    &[],
                )
                .await?;
            print_json(&service);
        }
        ServicesCommand::Watch { tenant } => {
            follow(
                client,
                &tenant,
                "/services/watch",
                None,
                |id, kind, data| {
                    format!(
                        "{id}\t{kind}\t{}\t{}",
                        data["service"]["serviceName"].as_str().unwrap_or("-"),
                        data["service"]["status"].as_str().unwrap_or("-")
                    )
                },
            )
            .await?;
        }
    }
    Ok(())
}

/// Follows a server-sent event stream (from `resume`, a `Last-Event-ID`, when given),
/// printing one line per event.
pub(crate) async fn follow(
    client: &HubClient,
    tenant: &str,
    path: &str,
    resume: Option<&str>,
    line: impl Fn(&str, &str, &Value) -> String,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut response = client.stream_for(tenant, path, resume).await?;
    // Once the hub has answered, every later change reaches this stream.
    eprintln!("following {path} of tenant {tenant}; Ctrl-C to stop");
    let mut buffer = String::new();
    while let Some(chunk) = response.chunk().await.context("the watch stream broke")? {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|value| value.trim().to_owned())
            };
            let (Some(kind), Some(data)) = (field("event:"), field("data:")) else {
                continue;
            };
            let data: Value = serde_json::from_str(&data).unwrap_or_default();
            println!("{}", line(&field("id:").unwrap_or_default(), &kind, &data));
            std::io::stdout()
                .flush()
                .context("cannot write to stdout")?;
        }
    }
    Ok(())
}

/// `plexhub data …` (operators: admin token, acting for one tenant)
#[derive(Subcommand)]
pub enum DataCommand {
    /// Print a value.
    Get {
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// Write a value (JSON) as an installed plugin.
    Set {
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
        /// The value as JSON, e.g. 42, '"text"' or '{"a":1}'.
        value: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Owning plugin.
        #[arg(long)]
        owner: String,
        /// Seconds until it disappears.
        #[arg(long)]
        ttl: Option<f64>,
        /// Only if the key is at this revision.
        #[arg(long)]
        if_revision: Option<i64>,
    },
    /// Delete a value.
    Delete {
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
    },
    /// List the keys of a namespace: key, revision, owner, expiry.
    List {
        /// Namespace.
        namespace: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Follow changes in a namespace until interrupted.
    Watch {
        /// Namespace.
        namespace: String,
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

/// Encodes one path segment.
pub(crate) fn segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

async fn data(client: &HubClient, command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Get {
            namespace,
            key,
            tenant,
        } => {
            let path = format!("/data/{}/{}", segment(&namespace), segment(&key));
            let entry = client
                .call_for(&tenant, Method::GET, &path, None, &[])
                .await?;
            print_json(&entry["value"]);
        }
        DataCommand::Set {
            namespace,
            key,
            value,
            tenant,
            owner,
            ttl,
            if_revision,
        } => {
            let value: Value = serde_json::from_str(&value)
                .with_context(|| format!("the value {value:?} is not JSON (quote strings)"))?;
            let body = json!({ "value": value, "ttl": ttl, "ownerId": owner });
            let headers: Vec<(&str, String)> = if_revision
                .map(|r| ("if-match", r.to_string()))
                .into_iter()
                .collect();
            let path = format!("/data/{}/{}", segment(&namespace), segment(&key));
            let written = client
                .call_for(&tenant, Method::PUT, &path, Some(&body), &headers)
                .await?;
            println!("set {namespace}/{key} revision {}", written["revision"]);
        }
        DataCommand::Delete {
            namespace,
            key,
            tenant,
        } => {
            let path = format!("/data/{}/{}", segment(&namespace), segment(&key));
            client
                .call_for(&tenant, Method::DELETE, &path, None, &[])
                .await?;
            println!("deleted {namespace}/{key}");
        }
        DataCommand::List {
            namespace,
            tenant,
            prefix,
        } => {
            let mut cursor = String::new();
            loop {
                let path = format!(
                    "/data/{}?limit=1000&prefix={}&cursor={}",
                    segment(&namespace),
                    segment(&prefix),
                    segment(&cursor)
                );
                let page = client
                    .call_for(&tenant, Method::GET, &path, None, &[])
                    .await?;
                for entry in page["entries"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\t{}\t{}",
                        entry["key"].as_str().unwrap_or(""),
                        entry["revision"],
                        entry["ownerId"].as_str().unwrap_or(""),
                        entry["expiresAt"].as_str().unwrap_or("never")
                    );
                }
                match page["nextCursor"].as_str() {
                    Some(next) => cursor = next.to_owned(),
                    None => break,
                }
            }
        }
        DataCommand::Watch {
            namespace,
            tenant,
            prefix,
        } => {
            let path = format!(
                "/data-watch/{}?prefix={}",
                segment(&namespace),
                segment(&prefix)
            );
            follow(client, &tenant, &path, None, |id, kind, data| {
                format!(
                    "{id}\t{kind}\t{}\t{}",
                    data["key"].as_str().unwrap_or("-"),
                    data["revision"]
                )
            })
            .await?;
        }
    }
    Ok(())
}
