//! The web dashboard in a real browser: headless Chromium driven through chromedriver. Signs
//! in, walks every page (saving screenshots), sees a replica go down and come back
//! on the overview without a reload, publishes a bad manifest and sees the problem at its path,
//! issues a credential, and draws the graph. Without Chromium it prints SKIPPED, except under
//! `CI`, where it fails. The screenshots go to `target/ui-screenshots/`, or to the directory in
//! `PLEXHUB_UI_SCREENSHOTS` — `PLEXHUB_UI_SCREENSHOTS=$PWD/docs/ui cargo test -p plexhub --test api
//! ui_browser` refreshes the ones README shows (a plain test run leaves `docs/` as it is).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN, Backend, TestApp, analytics, crm_at, spawn};

/// chromedriver, stopped when the test ends.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first of `names` on PATH.
fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Starts chromedriver and a headless Chromium session; `None` (with a note) when they are
/// not installed outside CI.
async fn browser(profile: &Path) -> Option<(Driver, Client)> {
    let found = (
        find_binary(&["chromedriver"]),
        find_binary(&["chromium", "chromium-browser", "google-chrome"]),
    );
    let (Some(driver_bin), Some(chromium)) = found else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium and chromedriver must be installed under CI (apt-get install chromium chromium-driver)"
        );
        eprintln!("SKIPPED: chromium or chromedriver is not installed");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let driver = Driver(
        Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--disable-dev-shm-usage", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let started = tokio::time::Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return Some((driver, client)),
            Err(error) if started.elapsed() > Duration::from_secs(20) => {
                panic!("the browser cannot start: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Where the screenshots go: `PLEXHUB_UI_SCREENSHOTS`, else `target/ui-screenshots/`.
fn screenshot_dir() -> PathBuf {
    std::env::var_os("PLEXHUB_UI_SCREENSHOTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots"),
        PathBuf::from,
    )
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::create_dir_all(screenshot_dir()).expect("the screenshot directory");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("saved");
}

/// Waits for `css` and returns its text (read in the page, so a live swap between finding and
/// reading cannot leave a stale element).
async fn text_of(client: &Client, css: &str) -> String {
    let started = tokio::time::Instant::now();
    loop {
        let text = client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;",
                vec![Value::String(css.to_owned())],
            )
            .await
            .expect("script");
        if let Value::String(text) = text {
            return text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{css} not shown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Follows a link of the page by its text (a boosted, in-page navigation), then waits for the
/// page's heading to read `heading`.
async fn follow(client: &Client, link: &str, heading: &str) {
    client
        .find(Locator::LinkText(link))
        .await
        .unwrap_or_else(|error| panic!("link {link}: {error}"))
        .click()
        .await
        .expect("click");
    wait_heading(client, heading).await;
}

async fn wait_heading(client: &Client, heading: &str) {
    let started = tokio::time::Instant::now();
    loop {
        let shown = client
            .execute(
                "const h = document.querySelector('main h1'); return h ? h.textContent.trim() : '';",
                vec![],
            )
            .await
            .expect("script");
        if shown == heading {
            return;
        }
        let shown = shown.as_str().unwrap_or_default().to_owned();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "heading {heading:?} not shown (is {shown:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reports the health of CRM's replica in `tenant` as the plugin (after a heartbeat).
async fn report(app: &TestApp, token: &str, status: &str) {
    let base = "/api/v1/services/crm.contacts/instances/default";
    app.send(
        Method::POST,
        &format!("{base}/heartbeat"),
        Some(token),
        &[],
        None,
    )
    .await
    .assert_status(200);
    app.send(
        Method::POST,
        &format!("{base}/health"),
        Some(token),
        &[],
        Some(&json!({ "status": status })),
    )
    .await
    .assert_status(200);
}

/// Waits until the overview's card `id` shows `value`.
async fn card_shows(client: &Client, id: &str, value: &str) {
    let started = tokio::time::Instant::now();
    loop {
        let shown = text_of(client, &format!("#{id} .value")).await;
        if shown == value {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "card {id} shows {shown}, not {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_dashboard_in_a_real_browser() {
    let profile = tempfile::tempdir().expect("a profile dir");
    let Some((_driver, client)) = browser(profile.path()).await else {
        return;
    };
    let app = spawn(Backend::Sqlite).await.expect("sqlite always runs");
    app.create_tenant("acme").await;
    app.create_tenant("globex").await;
    app.publish(&crm_at("1.0.0")).await;
    app.publish(&analytics()).await;
    let crm = app
        .install("acme", "plugin-crm", json!({ "activate": true }))
        .await;
    app.install("acme", "plugin-analytics", json!({})).await;
    report(&app, &crm, "HEALTHY").await;

    // Signing in.
    client
        .goto(&format!("{}/ui", app.base))
        .await
        .expect("goto");
    wait_heading(&client, "Sign in").await;
    client
        .find(Locator::Css("#token"))
        .await
        .expect("the token field")
        .send_keys(ADMIN)
        .await
        .expect("typed");
    screenshot(&client, "login").await;
    client
        .find(Locator::Css("form button[type=submit]"))
        .await
        .expect("sign in")
        .click()
        .await
        .expect("click");
    wait_heading(&client, "Overview").await;
    card_shows(&client, "instances-up", "1").await;

    // The replica goes down and comes back, seen without a reload.
    client
        .execute("window.notReloaded = true; return true;", vec![])
        .await
        .expect("marker");
    report(&app, &crm, "UNAVAILABLE").await;
    card_shows(&client, "instances-down", "1").await;
    screenshot(&client, "overview-down").await;
    report(&app, &crm, "HEALTHY").await;
    card_shows(&client, "instances-down", "0").await;
    card_shows(&client, "instances-up", "1").await;
    let marker = client
        .execute("return window.notReloaded === true;", vec![])
        .await
        .expect("marker");
    assert_eq!(marker, Value::Bool(true), "the page was not reloaded");
    screenshot(&client, "overview").await;

    // Every page.
    follow(&client, "Tenants", "Tenants").await;
    screenshot(&client, "tenants").await;
    follow(&client, "acme", "Tenant acme").await;
    screenshot(&client, "tenant").await;
    follow(&client, "Services", "Services of acme").await;
    screenshot(&client, "services").await;
    follow(&client, "Dependency graph", "Dependency graph of acme").await;
    let nodes = client
        .find_all(Locator::Css("svg g.node.installed"))
        .await
        .expect("nodes");
    assert_eq!(nodes.len(), 2, "a node per installed plugin");
    screenshot(&client, "graph").await;
    follow(&client, "Access explain", "Access explain in acme").await;
    client
        .find(Locator::Css("#service"))
        .await
        .expect("service field")
        .send_keys("crm.contacts")
        .await
        .expect("typed");
    client
        .find(Locator::Css("#path"))
        .await
        .expect("path field")
        .send_keys("/contacts")
        .await
        .expect("typed");
    client
        .find(Locator::Css("main form button[type=submit]"))
        .await
        .expect("explain")
        .click()
        .await
        .expect("click");
    let rule = text_of(&client, "main table tbody tr td").await;
    assert!(!rule.is_empty(), "the checks are listed");
    screenshot(&client, "access").await;
    follow(&client, "Events", "Events of acme").await;
    screenshot(&client, "events").await;
    follow(&client, "Installations", "Tenant acme").await;
    follow(&client, "plugin-crm", "plugin-crm in acme").await;
    client
        .find(Locator::Css("#issue-credential button"))
        .await
        .expect("issue")
        .click()
        .await
        .expect("click");
    let token = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#new-token"))
        .await
        .expect("the new token")
        .prop("value")
        .await
        .expect("value")
        .unwrap_or_default();
    assert!(token.starts_with("phk_"), "{token}");
    let whoami = app.as_plugin(&token, Method::GET, "/api/v1/whoami").await;
    assert_eq!(whoami.assert_status(200)["pluginId"], "plugin-crm");
    screenshot(&client, "credential").await;

    // A bad manifest's problem at its path.
    follow(&client, "Catalog", "Catalog").await;
    let mut manifest = crm_at("1.0.0");
    manifest["version"] = json!("not-a-version");
    client
        .execute(
            "document.getElementById('manifest').value = arguments[0]; return true;",
            vec![Value::String(manifest.to_string())],
        )
        .await
        .expect("pasted");
    client
        .find(Locator::Css("#publish ~ form button[type=submit]"))
        .await
        .expect("publish")
        .click()
        .await
        .expect("click");
    let path = text_of(&client, ".problem code.path").await;
    assert_eq!(path, "version");
    screenshot(&client, "catalog-refused").await;
    follow(&client, "Calls", "Calls").await;
    screenshot(&client, "calls").await;

    // A phone's width.
    client.set_window_size(390, 844).await.expect("resized");
    follow(&client, "Overview", "Overview").await;
    screenshot(&client, "overview-phone").await;

    client.close().await.expect("closed");
}
