use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, analytics, crm_at};

async fn publishing_is_idempotent_and_versions_are_immutable(app: TestApp) {
    let crm = crm_at("1.0.0");
    let created = app.admin(Method::POST, "/api/v1/plugins", Some(&crm)).await;
    let digest = plexhub_core::catalog::manifest_digest(&crm);
    assert_eq!(
        created.assert_status(201),
        &json!({"pluginId": "plugin-crm", "version": "1.0.0", "status": "PUBLISHED",
                "digest": digest})
    );
    let again = app.admin(Method::POST, "/api/v1/plugins", Some(&crm)).await;
    assert_eq!(again.assert_status(200)["digest"], digest);

    let mut changed = crm.clone();
    changed["description"] = json!("Something else entirely");
    let conflict = app
        .admin(Method::POST, "/api/v1/plugins", Some(&changed))
        .await;
    conflict.assert_error(409, "VERSION_EXISTS");

    // The stored manifest is still the first one.
    let stored = app
        .admin(
            Method::GET,
            "/api/v1/plugins/plugin-crm/versions/1.0.0",
            None,
        )
        .await;
    let stored = stored.assert_status(200);
    assert_eq!(stored["manifest"], crm);
    assert_eq!(stored["digest"], digest);
    assert_eq!(stored["status"], "PUBLISHED");
    assert_eq!(stored["installable"], true);
}

async fn invalid_manifests_report_every_error(app: TestApp) {
    let mut manifest = crm_at("1.0.0");
    manifest["id"] = json!("crm");
    manifest["version"] = json!("1.0");
    manifest["surprise"] = json!(true);
    manifest["api"]["services"][0]["name"] = json!("CRM.contacts");
    manifest["api"]["services"][0]["endpoints"][1]["path"] = json!("/contacts/../admin");
    let reply = app
        .admin(Method::POST, "/api/v1/plugins", Some(&manifest))
        .await;
    reply.assert_error(400, "INVALID_MANIFEST");
    let errors = reply.body["error"]["details"]["errors"]
        .as_array()
        .expect("details.errors");
    let paths: Vec<&str> = errors
        .iter()
        .map(|e| e["path"].as_str().expect("path"))
        .collect();
    for expected in [
        "id",
        "version",
        "",
        "api.services.0.name",
        "api.services.0.endpoints.1.path",
    ] {
        assert!(
            paths.contains(&expected),
            "missing error at {expected:?}: {paths:?}"
        );
    }
    assert!(
        errors
            .iter()
            .all(|e| e["message"].as_str().is_some_and(|m| !m.is_empty()))
    );

    // Nothing was published.
    app.admin(Method::GET, "/api/v1/plugins/plugin-crm", None)
        .await
        .assert_error(404, "PLUGIN_NOT_FOUND");
    // A manifest that is not even an object.
    app.admin(Method::POST, "/api/v1/plugins", Some(&json!([1, 2])))
        .await
        .assert_error(400, "INVALID_MANIFEST");
}

async fn validate_reports_without_publishing(app: TestApp) {
    let valid = app
        .admin(Method::POST, "/api/v1/plugins/validate", Some(&analytics()))
        .await;
    assert_eq!(
        valid.assert_status(200),
        &json!({"valid": true, "errors": []})
    );

    let mut broken = analytics();
    broken["api"]["dependencies"][0]["version"] = json!(">>1");
    broken["api"]["dependencies"][1]
        .as_object_mut()
        .expect("dependency")
        .remove("required");
    let invalid = app
        .admin(Method::POST, "/api/v1/plugins/validate", Some(&broken))
        .await;
    let body = invalid.assert_status(200);
    assert_eq!(body["valid"], false);
    let paths: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(
        paths,
        ["api.dependencies.0.version", "api.dependencies.1.required"]
    );
    let catalog = app.admin(Method::GET, "/api/v1/plugins", None).await;
    assert_eq!(catalog.assert_status(200)["plugins"], json!([]));
}

async fn catalog_lists_and_shows_versions(app: TestApp) {
    for version in ["1.0.0", "1.10.0", "1.2.0"] {
        app.publish(&crm_at(version)).await;
    }
    app.publish(&analytics()).await;

    let listed = app.admin(Method::GET, "/api/v1/plugins", None).await;
    let plugins = listed.assert_status(200)["plugins"]
        .as_array()
        .expect("plugins")
        .clone();
    assert_eq!(plugins.len(), 2);
    let crm = plugins
        .iter()
        .find(|p| p["pluginId"] == "plugin-crm")
        .expect("crm listed");
    assert_eq!(
        crm["latestVersion"], "1.10.0",
        "semver order, not text order"
    );
    assert_eq!(crm["name"], "CRM Plugin");
    let mut versions: Vec<&str> = crm["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, ["1.0.0", "1.10.0", "1.2.0"]);

    let shown = app
        .admin(Method::GET, "/api/v1/plugins/plugin-crm", None)
        .await;
    let body = shown.assert_status(200);
    assert_eq!(body["versions"].as_array().map(Vec::len), Some(3));
    assert_eq!(body["versions"][0]["manifest"]["id"], "plugin-crm");

    app.admin(
        Method::GET,
        "/api/v1/plugins/plugin-crm/versions/9.9.9",
        None,
    )
    .await
    .assert_error(404, "VERSION_NOT_FOUND");
    app.admin(Method::GET, "/api/v1/plugins/plugin-nope", None)
        .await
        .assert_error(404, "PLUGIN_NOT_FOUND");
}

crate::on_both_backends!(
    publishing_is_idempotent_and_versions_are_immutable,
    invalid_manifests_report_every_error,
    validate_reports_without_publishing,
    catalog_lists_and_shows_versions,
);
