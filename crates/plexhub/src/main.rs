//! The `plexhub` binary: `plexhub serve` runs the hub; the other commands administer a running
//! hub over HTTP.

mod client;
mod commands;
mod config;
mod demo_command;
mod deps;
mod events;
mod gateway;
mod installations;
mod scaffold;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// mimalloc: measurably faster than the system allocator on the request path (bench/).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// plexhub: the plugin communication hub.
#[derive(Parser)]
#[command(name = "plexhub", version, about)]
struct Cli {
    /// Hub to talk to (admin commands).
    #[arg(
        long,
        global = true,
        env = "PLEXHUB_URL",
        default_value = "http://127.0.0.1:4000"
    )]
    hub: String,
    /// Admin token (admin commands); falls back to the `admin-token` file in `PLEXHUB_DATA_DIR`
    /// (default `./plexhub-data`).
    #[arg(
        long,
        global = true,
        env = "PLEXHUB_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Threads of the async runtime [default: one per CPU]. With the hub pinned to fewer CPUs
    /// than the machine has, match them: extra threads only trade work back and forth. With 1,
    /// the hub runs one event loop on the main thread.
    #[arg(long, global = true, env = "PLEXHUB_WORKER_THREADS")]
    worker_threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub.
    Serve(Box<serve::ServeArgs>),
    /// Try it: a hub on a temporary database, two tenants, the CRM and Analytics samples,
    /// reports run through the gateway, and a summary.
    Demo(demo_command::DemoArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(commands::TenantCommand),
    /// Validate, publish and list plugin manifests.
    #[command(subcommand)]
    Plugin(commands::PluginCommand),
    /// Install a catalog plugin for a tenant and print its credential.
    Install(commands::InstallArgs),
    /// List, show, activate, deactivate and uninstall installations; change their grants and
    /// allowed origins.
    #[command(subcommand)]
    Installation(installations::InstallationCommand),
    /// Issue, list and revoke installation credentials.
    #[command(subcommand)]
    Credential(commands::CredentialCommand),
    /// Issue, list and revoke a tenant's read-only web-shell credentials.
    #[command(subcommand)]
    ShellCredential(commands::ShellCredentialCommand),
    /// List a tenant's plugin UI remotes (what its web shell loads).
    Remotes {
        /// Tenant slug (for the admin token; a plugin or shell credential reads its own).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Inspect a tenant's service registry.
    #[command(subcommand)]
    Services(commands::ServicesCommand),
    /// Read, write and follow a tenant's shared data.
    #[command(subcommand)]
    Data(commands::DataCommand),
    /// Inspect dependencies: trees, why a plugin is installed, install/uninstall/upgrade plans.
    #[command(subcommand)]
    Deps(deps::DepsCommand),
    /// Call another plugin's service through the gateway, as a plugin of a tenant.
    Call(gateway::CallArgs),
    /// Read the gateway's audit log: who called what, with which status, how long it took.
    Calls(gateway::CallsArgs),
    /// Explain the gateway's access decisions.
    #[command(subcommand)]
    Access(gateway::AccessCommand),
    /// Publish and follow events; list subscriptions.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// List, retry and drop dead letters.
    #[command(subcommand)]
    DeadLetters(events::DeadLettersCommand),
    /// Show who a token belongs to.
    Whoami,
    /// Start a plugin project of your own (Rust or TypeScript).
    #[command(subcommand)]
    New(scaffold::NewCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One thread: an event loop without the work-stealing scheduler's hand-offs (measured
    // +35 % throughput for a proxy on one CPU).
    let mut builder = match cli.worker_threads.filter(|threads| *threads > 0) {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all();
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Demo(args) => demo_command::run(args).await,
            Command::New(command) => scaffold::run(command),
            other => {
                let token = cli
                    .token
                    .or_else(|| config::read_token_file(&default_data_dir()));
                let client = client::HubClient::new(&cli.hub, token);
                commands::run(&client, other).await
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The data directory admin commands look in for the token file: `PLEXHUB_DATA_DIR` or the
/// serve default.
fn default_data_dir() -> PathBuf {
    std::env::var_os("PLEXHUB_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_DATA_DIR))
}
