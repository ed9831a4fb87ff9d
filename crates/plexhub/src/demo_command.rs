//! `plexhub demo`: a hub on a temporary SQLite database and the sample plugins, in one
//! process, with the reports run through the gateway and a summary printed.

use std::time::Instant;

use anyhow::bail;
use plexhub::demo::{Demo, DemoOptions};
use plexhub_server::Application;
use tokio::sync::oneshot;

use crate::config::{self, ServeConfig};

/// Options of `plexhub demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Exit after the summary instead of staying up until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// `HOST:PORT` for the hub (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

/// Runs the demo; fails when a step fails or the isolation check does not hold.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::Builder::new().prefix("plexhub-demo-").tempdir()?;
    let config = ServeConfig {
        listen: args.listen,
        data_dir: dir.path().to_owned(),
        ..ServeConfig::default()
    };
    let (settings, _) = config::into_settings(&config)?;
    let admin_token = settings.admin_token.expose().to_owned();
    let app = Application::build(settings).await?;
    let hub = format!("http://{}", app.local_addr());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    println!(
        "plexhub demo: hub on {hub}, SQLite in {}",
        dir.path().display()
    );
    let demo = Demo::set_up(&hub, &admin_token, DemoOptions::default()).await?;
    println!(
        "  tenants acme and globex; plugin-crm, plugin-analytics and plugin-console installed and ACTIVE in each"
    );
    println!(
        "  CRM serves on {}, Analytics on {}: both accept only requests the hub signed",
        demo.crm_url(),
        demo.analytics_url()
    );
    let summary = demo.summary().await?;
    println!(
        "\nReports run by each tenant's console through the gateway (console -> Analytics -> CRM):\n"
    );
    print!("{summary}");
    println!("\nDone in {:.1} s.", started.elapsed().as_secs_f64());
    if !args.once {
        println!("\nThe hub stays up at {hub} (API docs: {hub}/docs).");
        println!("Try: plexhub --hub {hub} --token {admin_token} services list --tenant acme");
        println!("Ctrl-C stops the hub and the plugins and deletes the temporary database.");
        tokio::signal::ctrl_c().await?;
    }
    demo.stop().await;
    let _ = stop.send(());
    server.await??;
    if !summary.isolated() {
        bail!("the isolation check failed: see the summary above");
    }
    Ok(())
}
