//! The `plexhub` binary: admin commands against a running hub, and `serve` itself.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

use crate::helpers::{ADMIN, TestApp};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/manifests");

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn plexhub(app: &TestApp, token: &str, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_plexhub"))
        .args(["--hub", &app.base, "--token", token])
        .args(args)
        .env_remove("PLEXHUB_ADMIN_TOKEN")
        .env_remove("PLEXHUB_URL")
        .output()
        .await
        .expect("run plexhub");
    Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[track_caller]
fn succeeded(run: &Run) -> &str {
    assert!(run.ok, "command failed: {}{}", run.stdout, run.stderr);
    &run.stdout
}

#[track_caller]
fn failed_with(run: &Run, code: &str) {
    assert!(!run.ok, "command should fail: {}", run.stdout);
    let first = run.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains(code),
        "stderr: {}",
        run.stderr
    );
}

async fn the_readme_walkthrough_works_through_the_cli(app: TestApp) {
    let crm = format!("{EXAMPLES}/crm.json");
    let analytics = format!("{EXAMPLES}/analytics.json");

    let created = plexhub(
        &app,
        ADMIN,
        &["tenant", "create", "acme", "--name", "Acme Corp"],
    )
    .await;
    assert!(succeeded(&created).starts_with("acme\tactive\t"));
    failed_with(
        &plexhub(&app, ADMIN, &["tenant", "create", "acme"]).await,
        "TENANT_EXISTS",
    );
    failed_with(
        &plexhub(&app, ADMIN, &["tenant", "create", "Bad_Slug"]).await,
        "INVALID_SLUG",
    );

    assert!(
        succeeded(&plexhub(&app, ADMIN, &["plugin", "validate", &crm]).await).contains("valid")
    );
    let published = plexhub(&app, ADMIN, &["plugin", "publish", &crm]).await;
    assert_eq!(succeeded(&published).trim(), "published plugin-crm 1.0.0");
    let listed = plexhub(&app, ADMIN, &["plugin", "list"]).await;
    assert_eq!(
        succeeded(&listed).trim(),
        "plugin-crm\t1.0.0\tPUBLISHED\t1.0.0"
    );

    failed_with(
        &plexhub(
            &app,
            ADMIN,
            &[
                "install",
                "plugin-analytics",
                "--tenant",
                "acme",
                "--base-url",
                "http://127.0.0.1:3200",
            ],
        )
        .await,
        "PLUGIN_NOT_FOUND",
    );
    succeeded(&plexhub(&app, ADMIN, &["plugin", "publish", &analytics]).await);
    let unmet = plexhub(
        &app,
        ADMIN,
        &[
            "install",
            "plugin-analytics",
            "--tenant",
            "acme",
            "--base-url",
            "http://127.0.0.1:3200",
        ],
    )
    .await;
    failed_with(&unmet, "DEPENDENCY_UNMET");
    assert!(unmet.stderr.contains("plugin-crm"), "{}", unmet.stderr);
    // The manifest's reason for the dependency is printed with it.
    assert!(
        unmet
            .stderr
            .contains("(needed for: Reads contacts for the contacts summary and forecast reports)"),
        "{}",
        unmet.stderr
    );

    let installed = plexhub(
        &app,
        ADMIN,
        &[
            "install",
            "plugin-crm",
            "--tenant",
            "acme",
            "--base-url",
            "http://127.0.0.1:3100",
            "--activate",
        ],
    )
    .await;
    let out = succeeded(&installed);
    assert!(
        out.starts_with("installed plugin-crm 1.0.0 for acme (ACTIVE)"),
        "{out}"
    );
    let token = out
        .lines()
        .find(|l| l.starts_with("phk_"))
        .expect("the credential is printed")
        .to_owned();

    let services = plexhub(&app, ADMIN, &["services", "list", "--tenant", "acme"]).await;
    let lines: Vec<&str> = succeeded(&services).lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0]
            .starts_with("crm.contacts\tplugin-crm\tUNKNOWN\thttp://127.0.0.1:3100\t1 instance"),
        "{lines:?}"
    );
    let shown = plexhub(
        &app,
        ADMIN,
        &["services", "show", "crm.deals", "--tenant", "acme"],
    )
    .await;
    let shown: serde_json::Value = serde_json::from_str(succeeded(&shown)).expect("json");
    assert_eq!(shown["serviceName"], "crm.deals");
    failed_with(
        &plexhub(
            &app,
            ADMIN,
            &["services", "show", "crm.nothing", "--tenant", "acme"],
        )
        .await,
        "SERVICE_NOT_FOUND",
    );
    failed_with(
        &plexhub(&app, ADMIN, &["services", "list", "--tenant", "nobody"]).await,
        "TENANT_NOT_FOUND",
    );

    let set = plexhub(
        &app,
        ADMIN,
        &[
            "data",
            "set",
            "crm.cache",
            "count",
            "42",
            "--tenant",
            "acme",
            "--owner",
            "plugin-crm",
            "--ttl",
            "60",
        ],
    )
    .await;
    assert_eq!(succeeded(&set).trim(), "set crm.cache/count revision 1");
    assert_eq!(
        succeeded(
            &plexhub(
                &app,
                ADMIN,
                &["data", "get", "crm.cache", "count", "--tenant", "acme"]
            )
            .await
        )
        .trim(),
        "42"
    );
    let listed = plexhub(
        &app,
        ADMIN,
        &["data", "list", "crm.cache", "--tenant", "acme"],
    )
    .await;
    assert!(
        succeeded(&listed).starts_with("count\t1\tplugin-crm\t"),
        "{}",
        listed.stdout
    );
    failed_with(
        &plexhub(
            &app,
            ADMIN,
            &[
                "data",
                "set",
                "crm.cache",
                "count",
                "43",
                "--tenant",
                "acme",
                "--owner",
                "plugin-crm",
                "--if-revision",
                "5",
            ],
        )
        .await,
        "PRECONDITION_FAILED",
    );
    failed_with(
        &plexhub(
            &app,
            ADMIN,
            &[
                "data",
                "set",
                "crm.cache",
                "count",
                "not json",
                "--tenant",
                "acme",
                "--owner",
                "plugin-crm",
            ],
        )
        .await,
        "not JSON",
    );
    succeeded(
        &plexhub(
            &app,
            ADMIN,
            &["data", "delete", "crm.cache", "count", "--tenant", "acme"],
        )
        .await,
    );
    failed_with(
        &plexhub(
            &app,
            ADMIN,
            &["data", "get", "crm.cache", "count", "--tenant", "acme"],
        )
        .await,
        "DATA_NOT_FOUND",
    );

    let who = plexhub(&app, &token, &["whoami"]).await;
    let who: serde_json::Value = serde_json::from_str(succeeded(&who)).expect("json");
    assert_eq!(who["kind"], "plugin");
    assert_eq!(who["tenant"], "acme");
    assert_eq!(who["pluginId"], "plugin-crm");

    // A plugin credential cannot administer.
    failed_with(
        &plexhub(&app, &token, &["tenant", "list"]).await,
        "FORBIDDEN",
    );

    let rotated = plexhub(
        &app,
        ADMIN,
        &["credential", "rotate", "plugin-crm", "--tenant", "acme"],
    )
    .await;
    let new_token = succeeded(&rotated)
        .lines()
        .find(|l| l.starts_with("phk_"))
        .expect("new token")
        .to_owned();
    let listed = plexhub(
        &app,
        ADMIN,
        &["credential", "list", "plugin-crm", "--tenant", "acme"],
    )
    .await;
    assert_eq!(succeeded(&listed).lines().count(), 2);
    let old_id = token
        .trim_start_matches("phk_")
        .split_once('.')
        .expect("id")
        .0;
    succeeded(
        &plexhub(
            &app,
            ADMIN,
            &[
                "credential",
                "revoke",
                old_id,
                "--plugin",
                "plugin-crm",
                "--tenant",
                "acme",
            ],
        )
        .await,
    );
    failed_with(&plexhub(&app, &token, &["whoami"]).await, "UNAUTHENTICATED");
    succeeded(&plexhub(&app, &new_token, &["whoami"]).await);

    let rotated = plexhub(
        &app,
        ADMIN,
        &[
            "credential",
            "rotate-signing-secret",
            "plugin-crm",
            "--tenant",
            "acme",
        ],
    )
    .await;
    let printed = succeeded(&rotated);
    assert!(printed.starts_with("signing secret hs_"), "{printed}");
    assert!(printed.contains("keeps signing beside it"), "{printed}");

    succeeded(&plexhub(&app, ADMIN, &["tenant", "suspend", "acme"]).await);
    failed_with(
        &plexhub(&app, &new_token, &["whoami"]).await,
        "TENANT_SUSPENDED",
    );
    let shown = plexhub(&app, ADMIN, &["tenant", "show", "acme"]).await;
    assert!(succeeded(&shown).contains("\"suspended\""));
    succeeded(&plexhub(&app, ADMIN, &["tenant", "resume", "acme"]).await);
    let all = plexhub(&app, ADMIN, &["tenant", "list"]).await;
    assert!(succeeded(&all).starts_with("acme\tactive"));
    succeeded(&plexhub(&app, ADMIN, &["tenant", "delete", "acme"]).await);
    failed_with(
        &plexhub(&app, ADMIN, &["tenant", "show", "acme"]).await,
        "TENANT_NOT_FOUND",
    );
}

/// `plexhub deps`: the tree with its cycle mark, why a plugin is installed, and the three plans.
async fn deps_commands_explain_the_graph(app: TestApp) {
    let crm = format!("{EXAMPLES}/crm.json");
    let analytics = format!("{EXAMPLES}/analytics.json");
    succeeded(&plexhub(&app, ADMIN, &["tenant", "create", "acme"]).await);
    for manifest in [&crm, &analytics] {
        succeeded(&plexhub(&app, ADMIN, &["plugin", "publish", manifest]).await);
    }
    let tree = plexhub(&app, ADMIN, &["deps", "tree", "plugin-analytics"]).await;
    let tree = succeeded(&tree);
    assert!(tree.starts_with("plugin-analytics\n"), "{tree}");
    assert!(
        tree.contains(
            "  plugin-crm ^1.0.0  (required, manifest) service crm.contacts: Reads contacts"
        ),
        "{tree}"
    );
    assert!(tree.contains("(see above)"), "{tree}");

    let plan = plexhub(
        &app,
        ADMIN,
        &[
            "deps",
            "plan",
            "install",
            "plugin-analytics",
            "--tenant",
            "acme",
        ],
    )
    .await;
    assert_eq!(
        succeeded(&plan),
        "install  plugin-crm 1.0.0\ninstall  plugin-analytics 1.0.0\n"
    );
    let too_new = plexhub(
        &app,
        ADMIN,
        &[
            "deps",
            "plan",
            "install",
            "plugin-analytics",
            "--tenant",
            "acme",
            "--version",
            "^2",
        ],
    )
    .await;
    failed_with(&too_new, "DEPENDENCY_CONFLICT");

    for plugin in ["plugin-crm", "plugin-analytics"] {
        let base_url = "--base-url=http://127.0.0.1:9";
        succeeded(
            &plexhub(
                &app,
                ADMIN,
                &["install", plugin, "--tenant", "acme", base_url],
            )
            .await,
        );
    }
    let why = plexhub(
        &app,
        ADMIN,
        &["deps", "why", "plugin-crm", "--tenant", "acme"],
    )
    .await;
    let why = succeeded(&why);
    assert!(why.contains("needs: nothing"), "{why}");
    assert!(
        why.contains("needed by: plugin-analytics requires it: Reads contacts"),
        "{why}"
    );
    let uninstall = plexhub(
        &app,
        ADMIN,
        &[
            "deps",
            "plan",
            "uninstall",
            "plugin-crm",
            "--tenant",
            "acme",
            "--cascade",
        ],
    )
    .await;
    assert_eq!(
        succeeded(&uninstall),
        "plugin-crm is required by: plugin-analytics\nremoval order: plugin-analytics, plugin-crm\n"
    );
    let upgrade = plexhub(
        &app,
        ADMIN,
        &[
            "deps",
            "plan",
            "upgrade",
            "plugin-crm",
            "--tenant",
            "acme",
            "--version",
            "1.0.0",
        ],
    )
    .await;
    assert_eq!(succeeded(&upgrade), "plugin-crm 1.0.0 -> 1.0.0: ok\n");
}

/// `plexhub call` and `plexhub access explain` against a real plugin server.
async fn gateway_commands_call_and_explain(app: TestApp) {
    let plugin = crate::gateway::upstream().await;
    crate::gateway::acme(&app, &plugin.base).await;
    let as_analytics = ["--as", "plugin-analytics", "--tenant", "acme"];
    let mut args = vec!["call", "crm.contacts", "GET", "/contacts?x=1"];
    args.extend(as_analytics);
    let answer = plexhub(&app, ADMIN, &args).await;
    let answer: serde_json::Value =
        serde_json::from_str(succeeded(&answer).trim()).expect("the plugin's JSON");
    assert_eq!(answer["path"], "/contacts");
    assert_eq!(answer["query"], "x=1");
    assert_eq!(answer["headers"]["x-caller-plugin-id"], "plugin-analytics");

    let mut args = vec!["call", "crm.contacts", "POST", "/contacts", "--data", "{}"];
    args.extend(as_analytics);
    failed_with(&plexhub(&app, ADMIN, &args).await, "PERMISSION_DENIED");

    let mut args = vec!["access", "explain", "crm.contacts", "POST", "/contacts"];
    args.extend(as_analytics);
    let explained = plexhub(&app, ADMIN, &args).await;
    let explained = succeeded(&explained);
    assert!(
        explained.starts_with("denied: PERMISSION_DENIED: "),
        "{explained}"
    );
    assert!(
        explained.contains("  FAIL permissions_granted: not granted: plugin.crm.contacts.write"),
        "{explained}"
    );
    assert!(
        explained.contains("  ok   dependency_declared: "),
        "{explained}"
    );

    // The audit log holds the call (written in batches: it may take a moment).
    let mut audited = String::new();
    for _ in 0..50 {
        let calls = plexhub(
            &app,
            ADMIN,
            &[
                "calls",
                "--tenant",
                "acme",
                "--caller",
                "plugin-analytics",
                "--status",
                "2xx",
            ],
        )
        .await;
        audited = succeeded(&calls).to_owned();
        if !audited.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let line = audited.lines().next().unwrap_or_default();
    assert!(
        line.contains("plugin-analytics -> plugin-crm\tcrm.contacts\tGET /contacts\t200\t"),
        "{audited}"
    );
    failed_with(
        &plexhub(&app, ADMIN, &["calls", "--status", "6xx"]).await,
        "INVALID_PARAMETER",
    );
    // A page at a time: the cursor of the next page is on stderr.
    let every = plexhub(&app, ADMIN, &["calls", "--tenant", "acme"]).await;
    let every: Vec<&str> = succeeded(&every).lines().collect();
    assert!(every.len() >= 2, "{every:?}");
    let first = plexhub(&app, ADMIN, &["calls", "--tenant", "acme", "--limit", "1"]).await;
    assert_eq!(succeeded(&first).lines().collect::<Vec<_>>(), every[..1]);
    let cursor = first
        .stderr
        .strip_prefix("older calls: add --cursor ")
        .map(str::trim)
        .unwrap_or_else(|| panic!("no cursor: {}", first.stderr));
    let second = plexhub(
        &app,
        ADMIN,
        &[
            "calls", "--tenant", "acme", "--limit", "1", "--cursor", cursor,
        ],
    )
    .await;
    assert_eq!(succeeded(&second).lines().collect::<Vec<_>>(), every[1..2]);

    // The catalog, plugin by plugin.
    let shown = plexhub(&app, ADMIN, &["plugin", "show", "plugin-crm"]).await;
    let shown: serde_json::Value = serde_json::from_str(succeeded(&shown)).expect("JSON");
    assert_eq!(shown["pluginId"], "plugin-crm");
    let version = shown["latestVersion"]
        .as_str()
        .expect("a latest version")
        .to_owned();
    let manifest = plexhub(
        &app,
        ADMIN,
        &["plugin", "show", "plugin-crm", "--version", &version],
    )
    .await;
    let manifest: serde_json::Value = serde_json::from_str(succeeded(&manifest)).expect("JSON");
    assert_eq!(manifest["version"], version.as_str(), "{manifest}");
    failed_with(
        &plexhub(&app, ADMIN, &["plugin", "show", "plugin-nothing"]).await,
        "PLUGIN_NOT_FOUND",
    );
}

/// Every operation in `/openapi.json` is reachable from the CLI, or listed here with the reason
/// it is not (plugin-facing routes the SDKs call, probes). A new route fails this test until it
/// gets a command or a reason; each command named must exist.
#[tokio::test]
async fn every_admin_route_has_a_cli_command() {
    const SDK: &str = "plugin-facing: called by the SDKs with a plugin credential";
    const SEED: &str =
        "the original SDK's route, kept for compatibility; the native route has the command";
    const PROBE: &str = "for probes, scrapers and verifiers, not operators";
    const SHELL: &str = "the web shell's live feed; `plexhub remotes` reads the same answer";
    let commands: &[(&str, &str, &str)] = &[
        ("get", "/api/v1/tenants", "tenant list"),
        ("post", "/api/v1/tenants", "tenant create"),
        ("get", "/api/v1/tenants/{slug}", "tenant show"),
        ("patch", "/api/v1/tenants/{slug}", "tenant suspend"),
        ("delete", "/api/v1/tenants/{slug}", "tenant delete"),
        ("get", "/api/v1/plugins", "plugin list"),
        ("post", "/api/v1/plugins", "plugin publish"),
        ("post", "/api/v1/plugins/validate", "plugin validate"),
        ("get", "/api/v1/plugins/{pluginId}", "plugin show"),
        (
            "get",
            "/api/v1/plugins/{pluginId}/versions/{version}",
            "plugin show",
        ),
        (
            "post",
            "/api/v1/plugins/{pluginId}/versions/{version}/transitions",
            "plugin yank",
        ),
        (
            "get",
            "/api/v1/plugins/{pluginId}/versions/{version}/transitions",
            "plugin history",
        ),
        (
            "post",
            "/api/v1/tenants/{slug}/shell-credentials",
            "shell-credential issue",
        ),
        (
            "get",
            "/api/v1/tenants/{slug}/shell-credentials",
            "shell-credential list",
        ),
        (
            "delete",
            "/api/v1/tenants/{slug}/shell-credentials/{id}",
            "shell-credential revoke",
        ),
        ("get", "/api/v1/ui/remotes", "remotes"),
        (
            "get",
            "/api/v1/tenants/{slug}/installations",
            "installation list",
        ),
        ("post", "/api/v1/tenants/{slug}/installations", "install"),
        (
            "get",
            "/api/v1/tenants/{slug}/installations/{pluginId}",
            "installation show",
        ),
        (
            "delete",
            "/api/v1/tenants/{slug}/installations/{pluginId}",
            "installation uninstall",
        ),
        (
            "post",
            "/api/v1/tenants/{slug}/installations/{pluginId}/activate",
            "installation activate",
        ),
        (
            "post",
            "/api/v1/tenants/{slug}/installations/{pluginId}/deactivate",
            "installation deactivate",
        ),
        (
            "put",
            "/api/v1/tenants/{slug}/installations/{pluginId}/grants",
            "installation grants set",
        ),
        (
            "put",
            "/api/v1/tenants/{slug}/installations/{pluginId}/allowed-origins",
            "installation origins",
        ),
        (
            "put",
            "/api/v1/tenants/{slug}/installations/{pluginId}/base-url",
            "installation base-url",
        ),
        (
            "get",
            "/api/v1/tenants/{slug}/installations/{pluginId}/credentials",
            "credential list",
        ),
        (
            "post",
            "/api/v1/tenants/{slug}/installations/{pluginId}/credentials",
            "credential rotate",
        ),
        (
            "delete",
            "/api/v1/tenants/{slug}/installations/{pluginId}/credentials/{credentialId}",
            "credential revoke",
        ),
        (
            "post",
            "/api/v1/tenants/{slug}/installations/{pluginId}/signing-secret/rotate",
            "credential rotate-signing-secret",
        ),
        (
            "post",
            "/api/v1/tenants/{slug}/plans/install",
            "deps plan install",
        ),
        (
            "post",
            "/api/v1/tenants/{slug}/plans/uninstall",
            "deps plan uninstall",
        ),
        (
            "post",
            "/api/v1/tenants/{slug}/plans/upgrade",
            "deps plan upgrade",
        ),
        ("get", "/api/v1/services", "services list"),
        ("get", "/api/v1/services/{serviceName}", "services show"),
        ("get", "/api/v1/services/watch", "services watch"),
        ("get", "/api/v1/data/{namespace}", "data list"),
        ("get", "/api/v1/data/{namespace}/{key}", "data get"),
        ("put", "/api/v1/data/{namespace}/{key}", "data set"),
        ("delete", "/api/v1/data/{namespace}/{key}", "data delete"),
        ("get", "/api/v1/data-watch/{namespace}", "data watch"),
        ("post", "/api/v1/events", "events publish"),
        ("get", "/api/v1/events/stream", "events tail"),
        ("get", "/api/v1/subscriptions", "events subscriptions"),
        ("get", "/api/v1/dead-letters", "dead-letters list"),
        (
            "post",
            "/api/v1/dead-letters/{id}/retry",
            "dead-letters retry",
        ),
        ("delete", "/api/v1/dead-letters/{id}", "dead-letters drop"),
        ("get", "/api/v1/access/explain", "access explain"),
        ("get", "/api/v1/calls", "calls"),
        ("get", "/api/v1/whoami", "whoami"),
        ("get", "/api/v1/proxy/{serviceName}", "call"),
        ("post", "/api/v1/proxy/{serviceName}", "call"),
        ("put", "/api/v1/proxy/{serviceName}", "call"),
        ("patch", "/api/v1/proxy/{serviceName}", "call"),
        ("delete", "/api/v1/proxy/{serviceName}", "call"),
        ("get", "/api/v1/proxy/{serviceName}/{path}", "call"),
        ("post", "/api/v1/proxy/{serviceName}/{path}", "call"),
        ("put", "/api/v1/proxy/{serviceName}/{path}", "call"),
        ("patch", "/api/v1/proxy/{serviceName}/{path}", "call"),
        ("delete", "/api/v1/proxy/{serviceName}/{path}", "call"),
        ("post", "/api/plugin-gateway/call", "call"),
    ];
    let exceptions: &[(&str, &str, &str)] = &[
        ("post", "/api/v1/data/{namespace}/batch-get", SDK),
        ("post", "/api/v1/data-transactions", SDK),
        ("get", "/api/v1/self/signing-secrets", SDK),
        (
            "put",
            "/api/v1/services/{serviceName}/instances/{instanceId}",
            SDK,
        ),
        (
            "delete",
            "/api/v1/services/{serviceName}/instances/{instanceId}",
            SDK,
        ),
        (
            "post",
            "/api/v1/services/{serviceName}/instances/{instanceId}/heartbeat",
            SDK,
        ),
        (
            "post",
            "/api/v1/services/{serviceName}/instances/{instanceId}/health",
            SDK,
        ),
        ("post", "/api/plugin-gateway/services/register", SEED),
        ("get", "/api/plugin-gateway/services", SEED),
        (
            "get",
            "/api/plugin-gateway/services/discover/{serviceName}",
            SEED,
        ),
        (
            "delete",
            "/api/plugin-gateway/services/{pluginId}/{serviceName}",
            SEED,
        ),
        (
            "post",
            "/api/plugin-gateway/services/{serviceId}/heartbeat",
            SEED,
        ),
        ("post", "/api/plugin-gateway/shared-data", SEED),
        ("get", "/api/plugin-gateway/shared-data/{namespace}", SEED),
        (
            "get",
            "/api/plugin-gateway/shared-data/{namespace}/{key}",
            SEED,
        ),
        (
            "delete",
            "/api/plugin-gateway/shared-data/{namespace}/{key}",
            SEED,
        ),
        ("post", "/api/plugin-gateway/dependencies", SEED),
        ("get", "/api/plugin-gateway/dependencies/{pluginId}", SEED),
        (
            "get",
            "/api/plugin-gateway/dependencies/{pluginId}/dependents",
            SEED,
        ),
        (
            "post",
            "/api/plugin-gateway/dependencies/{pluginId}/resolve",
            SEED,
        ),
        (
            "post",
            "/api/plugin-gateway/dependencies/{pluginId}/can-uninstall",
            SEED,
        ),
        ("get", "/api/v1/ui/remotes/stream", SHELL),
        ("get", "/healthz", PROBE),
        ("get", "/readyz", PROBE),
        ("get", "/metrics", PROBE),
        ("get", "/.well-known/plexhub-keys", PROBE),
    ];
    let app = crate::helpers::spawn(crate::helpers::Backend::Sqlite)
        .await
        .expect("sqlite");
    let documented = crate::helpers::documented_operations(&app).await;
    let accounted: std::collections::BTreeSet<(String, String)> = commands
        .iter()
        .chain(exceptions)
        .map(|(method, path, _)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    let without_command: Vec<_> = documented.difference(&accounted).collect();
    assert!(
        without_command.is_empty(),
        "routes with neither a CLI command nor a listed reason: {without_command:?}"
    );
    let stale: Vec<_> = accounted.difference(&documented).collect();
    assert!(stale.is_empty(), "listed but not documented: {stale:?}");
    for (_, _, command) in commands {
        let output = Command::new(env!("CARGO_BIN_EXE_plexhub"))
            .args(command.split(' '))
            .arg("--help")
            .output()
            .await
            .expect("run plexhub");
        assert!(
            output.status.success(),
            "`plexhub {command}` is not a command: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// `plexhub installation …`: lifecycle, grants and origins without the REST calls.
async fn installation_commands_cover_the_lifecycle(app: TestApp) {
    let plugin = crate::gateway::upstream().await;
    crate::gateway::acme_granting(&app, &plugin.base, serde_json::json!([])).await;
    let tenant = ["--tenant", "acme"];
    let run = |args: Vec<&'static str>| {
        let app = &app;
        async move {
            let mut all = args;
            all.extend(tenant);
            plexhub(app, ADMIN, &all).await
        }
    };
    let listed = run(vec!["installation", "list"]).await;
    let listed = succeeded(&listed);
    assert!(
        listed.contains("plugin-analytics\t1.0.0\tACTIVE\t"),
        "{listed}"
    );
    assert!(listed.contains("plugin-crm\t1.0.0\tACTIVE\t"), "{listed}");

    let added = run(vec![
        "installation",
        "grants",
        "add",
        "plugin-analytics",
        "plugin.crm.contacts.read",
        "plugin.crm.deals.read",
    ])
    .await;
    assert_eq!(
        succeeded(&added),
        "plugin-analytics is granted: plugin.crm.contacts.read, plugin.crm.deals.read\n"
    );
    let removed = run(vec![
        "installation",
        "grants",
        "remove",
        "plugin-analytics",
        "plugin.crm.deals.read",
    ])
    .await;
    assert_eq!(
        succeeded(&removed),
        "plugin-analytics is granted: plugin.crm.contacts.read\n"
    );
    let unknown = run(vec![
        "installation",
        "grants",
        "set",
        "plugin-analytics",
        "plugin.nobody.read",
    ])
    .await;
    failed_with(&unknown, "UNKNOWN_GRANT");
    let shown = run(vec!["installation", "show", "plugin-analytics"]).await;
    let shown: serde_json::Value = serde_json::from_str(succeeded(&shown)).expect("json");
    assert_eq!(
        shown["grants"],
        serde_json::json!(["plugin.crm.contacts.read"])
    );

    let origins = run(vec![
        "installation",
        "origins",
        "plugin-analytics",
        "--origin",
        "https://app.acme.test",
    ])
    .await;
    assert_eq!(
        succeeded(&origins),
        "plugin-analytics may register services at: https://app.acme.test\n"
    );

    let deactivated = run(vec!["installation", "deactivate", "plugin-crm"]).await;
    assert!(succeeded(&deactivated).contains("\tDISABLED\t"));
    // Deactivating what is disabled is a no-op, not an error.
    let again = run(vec!["installation", "deactivate", "plugin-crm"]).await;
    assert!(succeeded(&again).contains("\tDISABLED\t"));
    let activated = run(vec!["installation", "activate", "plugin-crm"]).await;
    assert!(succeeded(&activated).contains("\tACTIVE\t"));

    // Analytics requires CRM: the plan says so, the plain uninstall refuses, --cascade does it.
    let plan = run(vec![
        "installation",
        "uninstall",
        "plugin-crm",
        "--plan",
        "--cascade",
    ])
    .await;
    let plan: serde_json::Value = serde_json::from_str(succeeded(&plan)).expect("json");
    assert_eq!(
        plan["order"],
        serde_json::json!(["plugin-analytics", "plugin-crm"])
    );
    failed_with(
        &run(vec!["installation", "uninstall", "plugin-crm"]).await,
        "HAS_DEPENDENTS",
    );
    let cascaded = run(vec!["installation", "uninstall", "plugin-crm", "--cascade"]).await;
    assert_eq!(
        succeeded(&cascaded),
        "uninstalled, in order: plugin-analytics, plugin-crm\n"
    );
    let listed = run(vec!["installation", "list"]).await;
    assert_eq!(succeeded(&listed), "");
}

/// `plexhub plugin yank|unyank|deprecate|history`, and what the catalog listing shows.
async fn catalog_lifecycle_commands(app: TestApp) {
    let crm = format!("{EXAMPLES}/crm.json");
    succeeded(&plexhub(&app, ADMIN, &["plugin", "publish", &crm]).await);
    let run = |args: &'static [&'static str]| plexhub(&app, ADMIN, args);
    failed_with(
        &run(&["plugin", "yank", "plugin-crm", "1.0.0"]).await,
        "INVALID_BODY",
    );
    let yanked = run(&[
        "plugin",
        "yank",
        "plugin-crm",
        "1.0.0",
        "--reason",
        "broken",
        "--by",
        "dana",
    ])
    .await;
    assert_eq!(
        succeeded(&yanked).trim(),
        "plugin-crm 1.0.0: PUBLISHED (yanked)"
    );
    failed_with(
        &run(&["plugin", "approve", "plugin-crm", "1.0.0"]).await,
        "INVALID_TRANSITION",
    );
    succeeded(&run(&["plugin", "unyank", "plugin-crm", "1.0.0"]).await);
    let deprecated = run(&[
        "plugin",
        "deprecate",
        "plugin-crm",
        "1.0.0",
        "--message",
        "moved to plugin-crm-pro",
    ])
    .await;
    assert_eq!(
        succeeded(&deprecated).trim(),
        "plugin-crm 1.0.0: DEPRECATED"
    );
    let listed = run(&["plugin", "list", "--status", "DEPRECATED"]).await;
    assert_eq!(
        succeeded(&listed).trim(),
        "plugin-crm\t1.0.0\tDEPRECATED\t1.0.0\tdeprecated: moved to plugin-crm-pro"
    );
    let history = run(&["plugin", "history", "plugin-crm", "1.0.0"]).await;
    let lines: Vec<String> = succeeded(&history)
        .lines()
        .map(|line| line.split('\t').skip(1).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0], "publish - -> PUBLISHED by admin ");
    assert_eq!(
        lines[1],
        "yank PUBLISHED -> PUBLISHED (yanked) by dana broken"
    );
    assert!(
        lines[3].starts_with("deprecate PUBLISHED -> DEPRECATED by "),
        "{lines:?}"
    );
}

/// `plexhub shell-credential issue|list|revoke` and `plexhub remotes` (as the admin for a
/// tenant, and with the shell credential itself).
async fn shell_credential_and_remotes_commands(app: TestApp) {
    let mut crm: serde_json::Value =
        serde_json::from_str(crate::helpers::CRM_MANIFEST).expect("crm manifest");
    crm["frontend"] = serde_json::json!({
        "remoteEntry": "https://crm.example.com/remoteEntry.js",
        "exposedModules": {"./Page": "./src/Page.tsx"},
        "routes": [{"path": "/crm", "module": "./Page"}],
    });
    app.publish(&crm).await;
    app.create_tenant("acme").await;
    app.install(
        "acme",
        "plugin-crm",
        serde_json::json!({"activate": true,
                           "allowedOrigins": ["http://127.0.0.1:9", "https://crm.example.com"]}),
    )
    .await;
    let issued = plexhub(
        &app,
        ADMIN,
        &["shell-credential", "issue", "--tenant", "acme"],
    )
    .await;
    let token = succeeded(&issued).trim().to_owned();
    assert!(token.starts_with("phs_"), "{token}");
    let expected = "plugin-crm\t1.0.0\thttps://crm.example.com/remoteEntry.js\t/crm";
    let as_admin = plexhub(&app, ADMIN, &["remotes", "--tenant", "acme"]).await;
    assert_eq!(succeeded(&as_admin).trim(), expected);
    let as_shell = plexhub(&app, &token, &["remotes"]).await;
    assert_eq!(succeeded(&as_shell).trim(), expected);
    failed_with(
        &plexhub(&app, &token, &["tenant", "list"]).await,
        "FORBIDDEN",
    );
    let listed = plexhub(
        &app,
        ADMIN,
        &["shell-credential", "list", "--tenant", "acme"],
    )
    .await;
    let id = succeeded(&listed)
        .split('\t')
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(token.starts_with(&format!("phs_{id}.")), "{id}");
    succeeded(
        &plexhub(
            &app,
            ADMIN,
            &["shell-credential", "revoke", &id, "--tenant", "acme"],
        )
        .await,
    );
    failed_with(
        &plexhub(&app, &token, &["remotes"]).await,
        "UNAUTHENTICATED",
    );
}

crate::on_both_backends!(
    shell_credential_and_remotes_commands,
    catalog_lifecycle_commands,
    the_readme_walkthrough_works_through_the_cli,
    deps_commands_explain_the_graph,
    gateway_commands_call_and_explain,
    installation_commands_cover_the_lifecycle,
);

#[tokio::test]
async fn cli_errors_are_one_line_with_a_failing_exit_code() {
    let dir = tempfile::tempdir().expect("tmp");
    let invalid = dir.path().join("bad.json");
    std::fs::write(&invalid, "{ not json").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_plexhub"))
        .args([
            "--hub",
            "http://127.0.0.1:1",
            "--token",
            ADMIN,
            "plugin",
            "publish",
        ])
        .arg(&invalid)
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("not valid JSON"),
        "{stderr}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_plexhub"))
        .args([
            "--hub",
            "http://127.0.0.1:1",
            "--token",
            ADMIN,
            "tenant",
            "list",
        ])
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach the hub at http://127.0.0.1:1"),
        "{stderr}"
    );
}

/// Starts `plexhub serve` in `dir` and returns the child and the address it prints.
pub(crate) async fn serve(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, String, Vec<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plexhub"));
    command
        .arg("serve")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (name, _) in std::env::vars() {
        if name.starts_with("PLEXHUB_") {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("spawn serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    let address = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            printed.push(line.clone());
            if let Some(address) = line.strip_prefix("plexhub listening on ") {
                return address.to_owned();
            }
        }
        panic!("serve exited early: {printed:?}");
    })
    .await
    .expect("serve starts within a minute");
    (child, address, printed)
}

fn terminate(child: &tokio::process::Child) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn serve_starts_with_no_configuration_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mut child, address, printed) = serve(dir.path(), &["--listen", "127.0.0.1:0"], &[]).await;

    let token_file = dir.path().join("plexhub-data/admin-token");
    let token = std::fs::read_to_string(&token_file)
        .expect("token file")
        .trim()
        .to_owned();
    assert!(token.starts_with("pha_"));
    assert!(
        printed.iter().any(|line| line == &token),
        "the token is printed once at first start"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&token_file)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        dir.path().join("plexhub-data/plexhub.db").exists(),
        "SQLite file in the data dir"
    );

    let http = reqwest::Client::new();
    let health = http
        .get(format!("{address}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    let who = http
        .get(format!("{address}/api/v1/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("whoami");
    assert_eq!(who.status(), 200);

    // The CLI finds the token file in the data dir by itself.
    let output = Command::new(env!("CARGO_BIN_EXE_plexhub"))
        .args(["--hub", &address, "tenant", "create", "from-file"])
        .current_dir(dir.path())
        .env_remove("PLEXHUB_ADMIN_TOKEN")
        .output()
        .await
        .expect("cli");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    terminate(&child);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops")
        .expect("status");
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");

    // Second start: same token, not printed again; data kept.
    let (child, address, printed) = serve(dir.path(), &["--listen", "127.0.0.1:0"], &[]).await;
    assert!(!printed.iter().any(|line| line.contains(&token)));
    let tenant = http
        .get(format!("{address}/api/v1/tenants/from-file"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("show");
    assert_eq!(tenant.status(), 200);
    terminate(&child);
}

#[tokio::test]
async fn settings_come_from_flags_then_environment_then_file() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("plexhub.toml"),
        "listen = \"127.0.0.1:1\"\nadmin_token = \"token-from-the-file-0001\"\nmax_body_bytes = 64\ndata_dir = \"state\"\n",
    )
    .expect("toml");
    let (child, address, _) = serve(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        &[("PLEXHUB_ADMIN_TOKEN", "token-from-the-environment-01")],
    )
    .await;
    assert!(!address.ends_with(":1"), "the flag beats the file");
    let http = reqwest::Client::new();
    let as_env = http
        .get(format!("{address}/api/v1/whoami"))
        .bearer_auth("token-from-the-environment-01")
        .send()
        .await
        .expect("whoami");
    assert_eq!(as_env.status(), 200, "the environment beats the file");
    let as_file = http
        .get(format!("{address}/api/v1/whoami"))
        .bearer_auth("token-from-the-file-0001")
        .send()
        .await
        .expect("whoami");
    assert_eq!(as_file.status(), 401);
    let too_big = http
        .post(format!("{address}/api/v1/tenants"))
        .bearer_auth("token-from-the-environment-01")
        .json(&serde_json::json!({"slug": "acme", "name": "x".repeat(100)}))
        .send()
        .await
        .expect("post");
    assert_eq!(too_big.status(), 413, "the file's max_body_bytes applies");
    assert!(
        dir.path().join("state/plexhub.db").exists(),
        "the file's data_dir applies"
    );
    terminate(&child);
}

/// Runs a `watch` command, triggers a change once it follows, and returns the first line it
/// prints.
async fn first_watch_line(
    app: &TestApp,
    args: &[&str],
    trigger: impl Future<Output = ()>,
) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plexhub"))
        .args(["--hub", &app.base, "--token", ADMIN])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("watch");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut notices = BufReader::new(child.stderr.take().expect("stderr")).lines();
    // The command says when the hub has answered; from then on no change is missed.
    let notice = tokio::time::timeout(Duration::from_secs(30), notices.next_line())
        .await
        .expect("the watch starts in time")
        .expect("read")
        .expect("a notice");
    assert!(notice.starts_with("following "), "{notice}");
    trigger.await;
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a line in time")
        .expect("read")
        .expect("a line")
}

#[tokio::test]
async fn watch_commands_print_changes_as_they_happen() {
    let app = crate::helpers::spawn(crate::helpers::Backend::Sqlite)
        .await
        .expect("sqlite");
    app.create_tenant("acme").await;
    app.publish(&crate::helpers::crm_at("1.0.0")).await;
    let token = app
        .install(
            "acme",
            "plugin-crm",
            serde_json::json!({"baseUrl": "http://127.0.0.1:3100"}),
        )
        .await;

    let register = async {
        let body = serde_json::json!({"pluginId": "plugin-crm", "serviceName": "crm.reports", "version": "1.0.0"});
        app.send(
            reqwest::Method::POST,
            "/api/plugin-gateway/services/register",
            Some(&token),
            &[],
            Some(&body),
        )
        .await
        .assert_status(201);
    };
    let line = first_watch_line(&app, &["services", "watch", "--tenant", "acme"], register).await;
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(
        fields[1..],
        ["registered", "crm.reports", "HEALTHY"],
        "{line}"
    );
    assert!(fields[0].parse::<i64>().is_ok(), "{line}");

    let write = async {
        app.send(
            reqwest::Method::PUT,
            "/api/v1/data/crm.cache/total",
            Some(&token),
            &[],
            Some(&serde_json::json!({"value": 3})),
        )
        .await
        .assert_status(200);
    };
    let line = first_watch_line(
        &app,
        &["data", "watch", "crm.cache", "--tenant", "acme"],
        write,
    )
    .await;
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields[1..], ["set", "total", "1"], "{line}");
}

/// `plexhub events publish` as a plugin, `events subscriptions`, `dead-letters list|retry|drop`
/// as the admin; errors keep their codes.
#[tokio::test]
async fn event_commands_publish_list_and_handle_dead_letters() {
    let app = crate::helpers::spawn(crate::helpers::Backend::Sqlite)
        .await
        .expect("sqlite");
    app.create_tenant("acme").await;
    app.publish(&crate::helpers::crm_at("1.0.0")).await;
    app.publish(&crate::helpers::analytics()).await;
    let crm = app
        .install("acme", "plugin-crm", serde_json::json!({"activate": true}))
        .await;
    // Analytics at a port nobody listens on, so its deliveries fail.
    app.install(
        "acme",
        "plugin-analytics",
        serde_json::json!({"activate": true, "baseUrl": "http://127.0.0.1:9"}),
    )
    .await;

    let published = plexhub(
        &app,
        &crm,
        &[
            "events",
            "publish",
            "plugin.crm.contact.created",
            "--data",
            r#"{"id":"c-9"}"#,
            "--id",
            "c-9",
            "--key",
            "c-9",
        ],
    )
    .await;
    let answer: serde_json::Value = serde_json::from_str(succeeded(&published)).expect("json");
    assert_eq!(answer["events"][0]["id"], "c-9");
    failed_with(
        &plexhub(&app, &crm, &["events", "publish", "plugin.analytics.x"]).await,
        "TOPIC_NOT_OWNED",
    );
    let subscriptions = plexhub(
        &app,
        ADMIN,
        &["events", "subscriptions", "--tenant", "acme"],
    )
    .await;
    assert!(
        succeeded(&subscriptions).contains("plugin.crm.contact.*"),
        "{}",
        subscriptions.stdout
    );
    let listed = plexhub(&app, ADMIN, &["dead-letters", "list", "--tenant", "acme"]).await;
    let listed: serde_json::Value = serde_json::from_str(succeeded(&listed)).expect("json");
    assert!(listed["deadLetters"].is_array());
    failed_with(
        &plexhub(
            &app,
            ADMIN,
            &["dead-letters", "retry", "nope", "--tenant", "acme"],
        )
        .await,
        "DEAD_LETTER_NOT_FOUND",
    );
    failed_with(
        &plexhub(
            &app,
            ADMIN,
            &["dead-letters", "drop", "nope", "--tenant", "acme"],
        )
        .await,
        "DEAD_LETTER_NOT_FOUND",
    );
}

/// `plexhub demo --once` from nothing: it prints the reports with the seed's pipeline total and
/// the isolation verdict, and exits 0.
#[tokio::test]
async fn demo_once_prints_the_summary_and_exits() {
    let dir = tempfile::tempdir().expect("tmp");
    let output = Command::new(env!("CARGO_BIN_EXE_plexhub"))
        .args(["demo", "--once"])
        .current_dir(dir.path())
        .env_remove("PLEXHUB_ADMIN_TOKEN")
        .env_remove("PLEXHUB_URL")
        .output()
        .await
        .expect("run plexhub demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pipeline = stdout
        .lines()
        .find(|line| line.starts_with("pipeline total (USD)"))
        .unwrap_or_else(|| panic!("no pipeline line: {stdout}"));
    assert_eq!(pipeline.matches("427,000").count(), 2, "{pipeline}");
    assert!(stdout.contains("Isolation: OK"), "{stdout}");
    assert!(stdout.contains("Done in "), "{stdout}");
    assert!(
        std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
        "the demo leaves nothing in the working directory"
    );
}

/// A running `plexhub serve` whose stdout and stderr are captured together.
struct LoggingHub {
    _child: tokio::process::Child,
    captured: std::sync::Arc<std::sync::Mutex<String>>,
    address: String,
}

/// Starts `plexhub serve --listen 127.0.0.1:0 --log-format json` with `args`, in `dir`, with
/// `RUST_LOG` set or not, and no other `PLEXHUB_*` setting than the admin token.
async fn serve_logging(dir: &Path, args: &[&str], rust_log: Option<&str>) -> LoggingHub {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plexhub"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
        .current_dir(dir)
        .env("PLEXHUB_ADMIN_TOKEN", ADMIN)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    for (name, _) in std::env::vars() {
        if name.starts_with("PLEXHUB_") && name != "PLEXHUB_ADMIN_TOKEN" {
            command.env_remove(name);
        }
    }
    let mut child = command.spawn().expect("spawn serve");
    let captured = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (address_tx, address_rx) = tokio::sync::oneshot::channel::<String>();
    let mut address_tx = Some(address_tx);
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let sink = captured.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = out.next_line().await {
            if let Some(address) = line.strip_prefix("plexhub listening on ")
                && let Some(tx) = address_tx.take()
            {
                let _ = tx.send(address.to_owned());
            }
            let mut all = sink.lock().expect("lock");
            all.push_str(&line);
            all.push('\n');
        }
    });
    let mut err = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let sink = captured.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = err.next_line().await {
            let mut all = sink.lock().expect("lock");
            all.push_str(&line);
            all.push('\n');
        }
    });
    let address = tokio::time::timeout(Duration::from_secs(60), address_rx)
        .await
        .expect("serve starts")
        .expect("an address");
    LoggingHub {
        _child: child,
        captured,
        address,
    }
}

/// The default filter lets the hub's own crates speak at `info` and others only at `warn`:
/// an install plan (where the solver logs at INFO) leaves no line of another crate.
#[tokio::test]
async fn default_logs_hold_only_the_hubs_own_info_lines() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = serve_logging(dir.path(), &[], None).await;
    let http = reqwest::Client::new();
    let admin = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        http.request(method, format!("{}{path}", hub.address))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
    };
    let tenant = serde_json::json!({"slug": "acme"});
    admin(reqwest::Method::POST, "/api/v1/tenants", tenant)
        .await
        .expect("tenant");
    for manifest in [crate::helpers::crm_at("1.0.0"), crate::helpers::analytics()] {
        admin(reqwest::Method::POST, "/api/v1/plugins", manifest)
            .await
            .expect("publish");
    }
    let plan = admin(
        reqwest::Method::POST,
        "/api/v1/tenants/acme/plans/install",
        serde_json::json!({"pluginId": "plugin-analytics"}),
    )
    .await
    .expect("plan");
    assert_eq!(plan.status(), 200);
    let install = serde_json::json!({"pluginId": "plugin-crm", "baseUrl": "http://127.0.0.1:9"});
    let installed = admin(
        reqwest::Method::POST,
        "/api/v1/tenants/acme/installations",
        install,
    )
    .await
    .expect("install");
    assert_eq!(installed.status(), 201);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = hub.captured.lock().expect("lock").clone();
    let mut targets = std::collections::BTreeSet::new();
    for line in logs.lines().filter(|line| line.starts_with('{')) {
        let entry: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        let target = entry["target"].as_str().unwrap_or_default().to_owned();
        let level = entry["level"].as_str().unwrap_or_default();
        if !target.starts_with("plexhub") {
            assert!(
                matches!(level, "WARN" | "ERROR"),
                "a line of another crate below WARN: {line}"
            );
        }
        targets.insert(target);
    }
    assert!(
        targets.iter().any(|target| target.starts_with("plexhub")),
        "the hub's own info lines are there: {logs}"
    );
}

/// Logs operators can use, and never a secret: `RUST_LOG` overrides `--log-level`; with
/// `--log-format json` every line is a JSON object, and the access log (`plexhub::access` at
/// DEBUG) gives tenant, caller, route, status and duration per request. Through a whole flow at
/// DEBUG for every crate, the captured output never contains the admin token, a credential or a
/// signing secret.
#[tokio::test]
async fn logs_are_json_follow_rust_log_and_never_hold_a_secret() {
    let dir = tempfile::tempdir().expect("tmp");
    let hub = serve_logging(dir.path(), &["--log-level", "error"], Some("debug")).await;
    let (captured, address) = (hub.captured.clone(), hub.address.clone());
    let http = reqwest::Client::new();
    let admin = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut request = http
            .request(method, format!("{address}{path}"))
            .bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    admin(
        reqwest::Method::POST,
        "/api/v1/tenants",
        Some(serde_json::json!({"slug": "acme"})),
    )
    .await
    .expect("tenant");
    for manifest in [crate::helpers::crm_at("1.0.0"), crate::helpers::analytics()] {
        admin(reqwest::Method::POST, "/api/v1/plugins", Some(manifest))
            .await
            .expect("publish");
    }
    let mut secrets = vec![ADMIN.to_owned()];
    for body in [
        serde_json::json!({"pluginId": "plugin-crm", "baseUrl": "http://127.0.0.1:9", "activate": true}),
        serde_json::json!({"pluginId": "plugin-analytics", "baseUrl": "http://127.0.0.1:9", "activate": true,
               "grants": ["plugin.crm.contacts.read"]}),
    ] {
        let installed: serde_json::Value = admin(
            reqwest::Method::POST,
            "/api/v1/tenants/acme/installations",
            Some(body),
        )
        .await
        .expect("install")
        .json()
        .await
        .expect("json");
        let token = installed["credential"]["token"].as_str().expect("token");
        secrets.push(token.to_owned());
        secrets.push(token.split_once('.').expect("id.secret").1.to_owned());
        secrets.push(
            installed["credential"]["signingSecret"]["secret"]
                .as_str()
                .expect("signing secret")
                .to_owned(),
        );
    }
    let analytics = secrets[4].clone();
    for path in [
        "/api/v1/proxy/crm.contacts/contacts",
        "/api/v1/whoami",
        "/api/v1/self/signing-secrets",
    ] {
        let _ = http
            .get(format!("{address}{path}"))
            .bearer_auth(&analytics)
            .send()
            .await
            .expect("call");
    }
    let rotated: serde_json::Value = admin(
        reqwest::Method::POST,
        "/api/v1/tenants/acme/installations/plugin-crm/signing-secret/rotate",
        None,
    )
    .await
    .expect("rotate")
    .json()
    .await
    .expect("json");
    secrets.push(
        rotated["signingSecret"]["secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
    );
    let _ = http
        .get(format!("{address}/api/v1/whoami"))
        .bearer_auth("phk_wrong.guess")
        .send()
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(hub);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = captured.lock().expect("lock").clone();

    let json_lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|line| !line.starts_with("plexhub listening on "))
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("every log line is a JSON object"))
        .collect();
    assert!(
        json_lines.len() > 20,
        "RUST_LOG=debug overrides --log-level error: {logs}"
    );
    let access = json_lines
        .iter()
        .find(|line| {
            line["target"] == "plexhub::access"
                && line["fields"]["route"] == "/api/v1/proxy/{serviceName}/{*path}"
        })
        .unwrap_or_else(|| panic!("an access line for the proxy call in {logs}"));
    assert_eq!(access["fields"]["tenant"], "acme");
    assert_eq!(access["fields"]["caller"], "plugin-analytics");
    assert!(access["fields"]["status"].is_u64() && access["fields"]["duration_ms"].is_f64());
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret was logged ({}…)",
            &secret[..6]
        );
    }
}
