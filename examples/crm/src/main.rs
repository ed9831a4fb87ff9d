//! `plexhub-crm`: the CRM sample plugin as a program.
//!
//! Environment: `PLEXHUB_URL`, `PLEXHUB_TOKENS` (the credentials of its installations, one per
//! tenant, comma-separated; or `PLEXHUB_TOKEN`), `PORT` (default 3100), `PUBLIC_URL` (how the
//! hub reaches it; default `http://127.0.0.1:<PORT>`).

use std::process::ExitCode;

use plexhub_sdk::{Installations, ServeOptions};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("plexhub-crm: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3100".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let installations = Installations::from_env().await?;
    let options = ServeOptions {
        public_url: std::env::var("PUBLIC_URL").ok(),
        ..ServeOptions::default()
    };
    let plugin = plexhub_example_crm::start(listener, &installations, options).await?;
    let tenants: Vec<&str> = installations.tenants().collect();
    println!("plexhub-crm on {} for {}", plugin.url(), tenants.join(", "));
    tokio::signal::ctrl_c().await?;
    plugin.stop().await;
    Ok(())
}
