//! `plexhub new plugin --lang rust`: the generated project builds outside this workspace, runs
//! against a hub with the CRM sample, calls CRM through the gateway, and refuses unsigned
//! requests. (The TypeScript project is checked by the TypeScript SDK's tests.)

use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use crate::helpers::{Backend, Options, cargo_build, spawn_with, within};

#[tokio::test]
async fn a_generated_rust_plugin_builds_runs_and_calls_crm() {
    let app = spawn_with(Backend::Sqlite, Options::default())
        .await
        .expect("hub");
    app.create_tenant("acme").await;
    app.publish(&plexhub_example_crm::manifest()).await;
    let crm_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("port");
    let crm_url = format!("http://{}", crm_listener.local_addr().expect("address"));
    let crm_token = app
        .install(
            "acme",
            "plugin-crm",
            json!({"baseUrl": crm_url, "activate": true}),
        )
        .await;
    let crm_installations = plexhub_sdk::Installations::connect(&app.base, [crm_token])
        .await
        .expect("CRM's credential");
    let crm = plexhub_example_crm::start(crm_listener, &crm_installations, Default::default())
        .await
        .expect("CRM runs");

    let work = tempfile::tempdir().expect("temp dir");
    let project = work.path().join("greeter");
    let generated = Command::new(env!("CARGO_BIN_EXE_plexhub"))
        .args(["new", "plugin", "greeter", "--lang", "rust", "--dir"])
        .arg(&project)
        .output()
        .await
        .expect("plexhub runs");
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let again = Command::new(env!("CARGO_BIN_EXE_plexhub"))
        .args(["new", "plugin", "greeter", "--dir"])
        .arg(&project)
        .output()
        .await
        .expect("plexhub runs");
    assert!(!again.status.success(), "a non-empty directory is refused");
    Command::new(env!("CARGO_BIN_EXE_plexhub"))
        .args(["new", "plugin", "Bad_Name"])
        .current_dir(work.path())
        .output()
        .await
        .map(|out| assert!(!out.status.success(), "an invalid name is refused"))
        .expect("plexhub runs");

    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(project.join("manifest.json")).expect("manifest written"),
    )
    .expect("manifest is JSON");
    app.publish(&manifest).await;
    let port = free_port();
    let token = app
        .install(
            "acme",
            "plugin-greeter",
            json!({
                "baseUrl": format!("http://127.0.0.1:{port}"),
                "activate": true,
                "grants": ["plugin.crm.contacts.read"],
            }),
        )
        .await;

    let binary = cargo_build(&project, &[], "the generated project")
        .await
        .join("greeter");
    let mut plugin = Command::new(binary)
        .env("PLEXHUB_URL", &app.base)
        .env("PLEXHUB_TOKEN", &token)
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the plugin starts");
    let mut lines = BufReader::new(plugin.stdout.take().expect("stdout")).lines();
    let mut seen = Vec::new();
    let serving = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("output") {
            let done = line.starts_with("greeter: serving on ");
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(serving, Ok(true), "the plugin did not start: {seen:?}");
    assert_eq!(seen[0], "greeter: CRM has 4 contacts in acme", "{seen:?}");

    // Its call reached CRM through the gateway (the audit log says so) …
    let audited = || async {
        app.admin(
            Method::GET,
            "/api/v1/calls?tenant=acme&caller=plugin-greeter",
            None,
        )
        .await
    };
    // The audit log is written in batches, shortly after the call.
    within(Duration::from_secs(2), || async {
        audited().await.body["calls"]
            .as_array()
            .is_some_and(|calls| !calls.is_empty())
    })
    .await;
    let calls = audited().await;
    let first = &calls.assert_status(200)["calls"][0];
    assert_eq!(
        (&first["target"], &first["status"]),
        (&json!("plugin-crm"), &json!(200)),
        "{}",
        calls.body
    );
    // … it registered its service (heard from: HEALTHY) …
    let service = app
        .as_plugin(&token, Method::GET, "/api/v1/services/greeter.hello")
        .await;
    assert_eq!(service.assert_status(200)["status"], "HEALTHY");
    // … and what does not come from the hub is refused.
    let direct = reqwest::get(format!("http://127.0.0.1:{port}/hello"))
        .await
        .expect("the plugin answers");
    assert_eq!(direct.status(), 401);

    plugin.start_kill().expect("stop the plugin");
    let _ = plugin.wait().await;
    crm.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}
