//! The demo flow: tenants `acme` and `globex`, CRM, Analytics and a console plugin installed
//! and activated for each, the plugins served in this process, reports run through the gateway,
//! and a summary that shows the numbers and that the tenants stay apart.
//!
//! Every call goes through the hub as a plugin would make it: the console (a caller-only
//! plugin) calls Analytics, Analytics calls CRM, each with its own installation's credential.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use plexhub_sdk::{Client, Installations, RunningPlugin, ServeOptions};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The demo's tenants: slug and name.
pub const TENANTS: [(&str, &str); 2] = [("acme", "Acme Corp"), ("globex", "Globex Corporation")];

/// The console plugin's manifest (`examples/manifests/console.json`).
pub const CONSOLE_MANIFEST: &str = include_str!("../../../examples/manifests/console.json");

/// What Analytics may do in CRM.
const ANALYTICS_GRANTS: [&str; 2] = ["plugin.crm.contacts.read", "plugin.crm.deals.read"];

/// What the console may do: run reports, import contacts.
const CONSOLE_GRANTS: [&str; 2] = ["plugin.analytics.reports.read", "plugin.crm.contacts.write"];

/// The contacts the demo imports into acme's CRM only: first name, last name, e-mail, company.
pub const IMPORTED: [(&str, &str, &str, &str); 2] = [
    (
        "Ada",
        "Lovelace",
        "ada@analytical-engines.example",
        "Analytical Engines",
    ),
    (
        "Grace",
        "Hopper",
        "grace@compilers.example",
        "Compilers Inc",
    ),
];

/// The tenant the imported contacts go to.
pub const IMPORT_TENANT: &str = "acme";

/// How the demo's plugins run.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Heartbeat period of the plugins (default: what the hub asks for).
    pub heartbeat_every: Option<Duration>,
}

/// Admin calls to the hub.
struct Admin {
    http: reqwest::Client,
    hub: String,
    token: String,
}

impl Admin {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.hub))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path} answered {status}: {answer}");
        }
        Ok(answer)
    }

    /// Installs and activates `plugin` for `tenant`; returns the installation's token.
    async fn install(
        &self,
        tenant: &str,
        plugin: &str,
        base_url: Option<&str>,
        grants: &[&str],
    ) -> anyhow::Result<String> {
        let body =
            json!({"pluginId": plugin, "baseUrl": base_url, "activate": true, "grants": grants});
        let answer = self
            .post(&format!("/api/v1/tenants/{tenant}/installations"), body)
            .await?;
        answer["credential"]["token"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("installing {plugin} for {tenant} returned no credential"))
    }
}

/// The demo's plugins, running against a hub.
pub struct Demo {
    crm_address: SocketAddr,
    crm_installations: Installations,
    crm: Option<RunningPlugin>,
    analytics: RunningPlugin,
    consoles: BTreeMap<String, Client>,
    options: DemoOptions,
}

/// One tenant's three report results (each report's `data`).
#[derive(Debug, Clone)]
pub struct TenantReports {
    /// The tenant's slug.
    pub tenant: String,
    /// `contacts_summary`.
    pub contacts: Value,
    /// `deals_pipeline`.
    pub pipeline: Value,
    /// `sales_forecast`.
    pub forecast: Value,
}

impl TenantReports {
    /// The names of the contacts the contacts summary lists as recent.
    pub fn recent_contact_names(&self) -> Vec<String> {
        self.contacts["recentContacts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|contact| contact["name"].as_str().map(str::to_owned))
            .collect()
    }
}

/// The demo's outcome, printable.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Every tenant's reports, in [`TENANTS`] order.
    pub tenants: Vec<TenantReports>,
}

fn imported_names() -> Vec<String> {
    IMPORTED
        .iter()
        .map(|(first, last, _, _)| format!("{first} {last}"))
        .collect()
}

impl Summary {
    /// Whether the imported contacts show in [`IMPORT_TENANT`]'s report and in no other.
    pub fn isolated(&self) -> bool {
        let imported = imported_names();
        self.tenants.iter().all(|reports| {
            let names = reports.recent_contact_names();
            let seen = imported.iter().filter(|name| names.contains(name)).count();
            if reports.tenant == IMPORT_TENANT {
                seen == imported.len()
            } else {
                seen == 0
            }
        })
    }

    /// A tenant's reports.
    pub fn tenant(&self, slug: &str) -> Option<&TenantReports> {
        self.tenants.iter().find(|reports| reports.tenant == slug)
    }
}

/// `1234567.0` → `1,234,567`.
fn grouped(amount: f64) -> String {
    let digits = format!("{:.0}", amount.abs());
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if amount < 0.0 { format!("-{out}") } else { out }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns: Vec<&str> = self.tenants.iter().map(|r| r.tenant.as_str()).collect();
        write!(f, "{:<28}", "")?;
        for column in &columns {
            write!(f, "{column:>14}")?;
        }
        writeln!(f)?;
        let row =
            |f: &mut fmt::Formatter<'_>, label: &str, cell: &dyn Fn(&TenantReports) -> String| {
                write!(f, "{label:<28}")?;
                for reports in &self.tenants {
                    write!(f, "{:>14}", cell(reports))?;
                }
                writeln!(f)
            };
        let number = |value: &Value| value.as_f64().map_or_else(|| "?".to_owned(), grouped);
        row(f, "contacts", &|r| number(&r.contacts["totalContacts"]))?;
        row(f, "deals", &|r| number(&r.pipeline["totalDeals"]))?;
        row(f, "pipeline total (USD)", &|r| {
            number(&r.pipeline["totalValue"])
        })?;
        row(f, "open deals forecast (USD)", &|r| {
            number(&r.forecast["expectedRevenue"])
        })?;
        row(f, "  weighted by probability", &|r| {
            number(&r.forecast["weightedRevenue"])
        })?;
        row(f, "  confidence", &|r| {
            r.forecast["confidenceLevel"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })?;
        writeln!(f)?;
        let imported = imported_names().join(", ");
        writeln!(
            f,
            "Imported into {IMPORT_TENANT} only, through the gateway: {imported}"
        )?;
        for reports in &self.tenants {
            let names = reports.recent_contact_names();
            writeln!(
                f,
                "  {}'s contacts summary lists: {}",
                reports.tenant,
                names.join(", ")
            )?;
        }
        let verdict = if self.isolated() {
            "OK, each tenant's reports see only that tenant's contacts"
        } else {
            "FAILED, a tenant's report shows another tenant's contacts"
        };
        writeln!(f, "Isolation: {verdict}")
    }
}

impl Demo {
    /// Sets the demo up on a running hub (whose admin token is `admin_token`): tenants,
    /// manifests, installations, the plugins served on local ports, two contacts imported into
    /// acme's CRM through the gateway.
    pub async fn set_up(
        hub: &str,
        admin_token: &str,
        options: DemoOptions,
    ) -> anyhow::Result<Self> {
        let admin = Admin {
            http: reqwest::Client::new(),
            hub: hub.trim_end_matches('/').to_owned(),
            token: admin_token.to_owned(),
        };
        for (slug, name) in TENANTS {
            admin
                .post("/api/v1/tenants", json!({"slug": slug, "name": name}))
                .await?;
        }
        for manifest in [
            plexhub_example_crm::MANIFEST,
            plexhub_example_analytics::MANIFEST,
            CONSOLE_MANIFEST,
        ] {
            let manifest: Value = serde_json::from_str(manifest).context("a sample manifest")?;
            admin.post("/api/v1/plugins", manifest).await?;
        }
        let crm_listener = TcpListener::bind("127.0.0.1:0").await?;
        let analytics_listener = TcpListener::bind("127.0.0.1:0").await?;
        let crm_address = crm_listener.local_addr()?;
        let analytics_url = format!("http://{}", analytics_listener.local_addr()?);
        let (mut crm_tokens, mut analytics_tokens, mut consoles) =
            (Vec::new(), Vec::new(), BTreeMap::new());
        for (tenant, _) in TENANTS {
            // Dependencies first: Analytics needs CRM, the console needs both.
            crm_tokens.push(
                admin
                    .install(
                        tenant,
                        "plugin-crm",
                        Some(&format!("http://{crm_address}")),
                        &[],
                    )
                    .await?,
            );
            analytics_tokens.push(
                admin
                    .install(
                        tenant,
                        "plugin-analytics",
                        Some(&analytics_url),
                        &ANALYTICS_GRANTS,
                    )
                    .await?,
            );
            let console = admin
                // The console serves no routes: installed without a base URL.
                .install(tenant, "plugin-console", None, &CONSOLE_GRANTS)
                .await?;
            consoles.insert(
                tenant.to_owned(),
                Client::builder().url(hub).token(console).build()?,
            );
        }
        let crm_installations = Installations::connect(hub, crm_tokens).await?;
        let analytics_installations = Installations::connect(hub, analytics_tokens).await?;
        let serve_options = ServeOptions {
            heartbeat_every: options.heartbeat_every,
            ..ServeOptions::default()
        };
        let analytics = plexhub_example_analytics::start(
            analytics_listener,
            &analytics_installations,
            serve_options.clone(),
        )
        .await?;
        let crm =
            plexhub_example_crm::start(crm_listener, &crm_installations, serve_options).await?;
        let demo = Self {
            crm_address,
            crm_installations,
            crm: Some(crm),
            analytics,
            consoles,
            options,
        };
        demo.import().await?;
        Ok(demo)
    }

    fn console(&self, tenant: &str) -> anyhow::Result<&Client> {
        self.consoles
            .get(tenant)
            .with_context(|| format!("no demo tenant {tenant}"))
    }

    async fn import(&self) -> anyhow::Result<()> {
        let console = self.console(IMPORT_TENANT)?;
        for (first, last, email, company) in IMPORTED {
            let contact = json!({"firstName": first, "lastName": last, "email": email,
                                 "company": company, "tags": ["imported"]});
            console
                .post_json::<_, Value>("crm.contacts", "/contacts", &contact)
                .await
                .with_context(|| format!("importing {first} {last}"))?;
        }
        Ok(())
    }

    /// Creates a contact in `tenant`'s CRM through the gateway, as its console would (CRM
    /// publishes `plugin.crm.contact.created`; Analytics drops its cached contacts summary).
    pub async fn create_contact(&self, tenant: &str, contact: &Value) -> anyhow::Result<Value> {
        let answer = self
            .console(tenant)?
            .post_json("crm.contacts", "/contacts", contact)
            .await?;
        Ok(answer)
    }

    /// Runs one report for `tenant` as its console would: through the gateway, to Analytics,
    /// which fetches CRM's data through the gateway. Returns the report's `data`.
    pub async fn run_report(
        &self,
        tenant: &str,
        report: &str,
    ) -> Result<Value, plexhub_sdk::Error> {
        let console = self
            .consoles
            .get(tenant)
            .ok_or(plexhub_sdk::Error::MissingSetting("a demo tenant"))?;
        let answer: Value = console
            .post_json(
                "analytics.reports",
                &format!("/reports/{report}/run"),
                &json!({}),
            )
            .await?;
        Ok(answer["data"]["data"].clone())
    }

    /// Runs the three reports for every tenant.
    pub async fn summary(&self) -> Result<Summary, plexhub_sdk::Error> {
        let mut tenants = Vec::new();
        for (tenant, _) in TENANTS {
            tenants.push(TenantReports {
                tenant: tenant.to_owned(),
                contacts: self.run_report(tenant, "report-1").await?,
                pipeline: self.run_report(tenant, "report-2").await?,
                forecast: self.run_report(tenant, "report-3").await?,
            });
        }
        Ok(Summary { tenants })
    }

    /// The URL CRM is served at.
    pub fn crm_url(&self) -> String {
        format!("http://{}", self.crm_address)
    }

    /// The URL Analytics is served at.
    pub fn analytics_url(&self) -> &str {
        self.analytics.url()
    }

    /// Stops CRM: its heartbeats stop and its port closes, as if its process died.
    pub async fn stop_crm(&mut self) {
        if let Some(crm) = self.crm.take() {
            crm.stop().await;
        }
    }

    /// Starts CRM again on its address (its data is read back from the hub's shared data). The
    /// hub is not told: CRM's heartbeats are what bring it back.
    pub async fn start_crm(&mut self) -> anyhow::Result<()> {
        let listener = TcpListener::bind(self.crm_address)
            .await
            .with_context(|| format!("binding CRM's address {} again", self.crm_address))?;
        let options = ServeOptions {
            heartbeat_every: self.options.heartbeat_every,
            ..ServeOptions::default()
        };
        self.crm =
            Some(plexhub_example_crm::start(listener, &self.crm_installations, options).await?);
        Ok(())
    }

    /// Stops both plugins.
    pub async fn stop(mut self) {
        self.stop_crm().await;
        self.analytics.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn amounts_are_grouped_by_thousands() {
        assert_eq!(grouped(427_000.0), "427,000");
        assert_eq!(grouped(1_234_567.4), "1,234,567");
        assert_eq!(grouped(999.0), "999");
        assert_eq!(grouped(-1000.0), "-1,000");
        assert_eq!(grouped(0.0), "0");
    }
}
