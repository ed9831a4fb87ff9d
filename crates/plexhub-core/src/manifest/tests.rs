#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;

const CRM_JSON: &str = include_str!("../../../../examples/manifests/crm.json");
const ANALYTICS_JSON: &str = include_str!("../../../../examples/manifests/analytics.json");

/// The smallest valid manifest, from the original test suite.
fn minimal() -> Value {
    json!({
        "id": "plugin-test",
        "name": "Test Plugin",
        "version": "1.0.0",
        "description": "A test plugin",
    })
}

fn with_api(api: Value) -> Value {
    let mut manifest = minimal();
    manifest["api"] = api;
    manifest
}

fn with_service(service: Value) -> Value {
    with_api(json!({ "services": [service] }))
}

fn with_endpoint(endpoint: Value) -> Value {
    with_service(json!({ "name": "crm.contacts", "version": "1.0.0", "endpoints": [endpoint] }))
}

fn with_dependency(dependency: Value) -> Value {
    with_api(json!({ "dependencies": [dependency] }))
}

fn valid(value: &Value) -> Manifest {
    match validate_manifest(value) {
        Ok(manifest) => manifest,
        Err(errors) => panic!("expected a valid manifest, got {errors:#?}"),
    }
}

/// `(path, message)` of every error, in report order.
fn errors(value: &Value) -> Vec<(String, String)> {
    match validate_manifest(value) {
        Ok(manifest) => panic!("expected errors, got {manifest:#?}"),
        Err(errors) => errors.into_iter().map(|e| (e.path, e.message)).collect(),
    }
}

fn paths(value: &Value) -> Vec<String> {
    errors(value).into_iter().map(|(path, _)| path).collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
        .collect()
}

// ----- the original suite's valid examples -----

#[test]
fn minimal_manifest_is_valid() {
    let manifest = valid(&minimal());
    assert_eq!(manifest.id.as_str(), "plugin-test");
    assert_eq!(manifest.name, "Test Plugin");
    assert_eq!(manifest.version.to_string(), "1.0.0");
    assert_eq!(manifest.description, "A test plugin");
    assert!(manifest.services.is_empty());
    assert!(manifest.dependencies.is_empty());
    assert!(manifest.permissions.is_empty());
    assert_eq!(manifest.events, EventsSpec::default());
}

#[test]
fn original_crm_manifest_with_api_section_is_valid() {
    let manifest = valid(&json!({
        "id": "plugin-crm",
        "name": "CRM Plugin",
        "version": "1.0.0",
        "description": "Customer Relationship Management plugin",
        "api": {
            "services": [{
                "name": "crm.contacts",
                "version": "1.0.0",
                "description": "Manage customer contacts",
                "endpoints": [
                    { "method": "GET", "path": "/contacts" },
                    { "method": "POST", "path": "/contacts" },
                    { "method": "GET", "path": "/contacts/:id" },
                ],
            }],
        },
    }));
    assert_eq!(manifest.services.len(), 1);
    assert_eq!(manifest.services[0].endpoints.len(), 3);
}

#[test]
fn original_analytics_manifest_with_dependencies_is_valid() {
    let manifest = valid(&with_dependency(json!({
        "pluginId": "plugin-crm",
        "serviceName": "crm.contacts",
        "version": "^1.0.0",
        "required": true,
        "reason": "Needs CRM data for reports",
    })));
    assert_eq!(manifest.dependencies.len(), 1);
    let dependency = &manifest.dependencies[0];
    assert_eq!(dependency.plugin_id.as_str(), "plugin-crm");
    assert_eq!(
        dependency.service_name.as_ref().map(ServiceName::as_str),
        Some("crm.contacts")
    );
    assert_eq!(dependency.range.as_str(), "^1.0.0");
    assert!(dependency.required);
    assert_eq!(
        dependency.reason.as_deref(),
        Some("Needs CRM data for reports")
    );
}

#[test]
fn original_real_world_manifests_are_valid() {
    valid(&json!({
        "id": "plugin-crm",
        "name": "CRM Plugin",
        "version": "1.0.0",
        "description": "Customer Relationship Management - Manage contacts and deals",
        "category": "Business",
        "author": "Plexica Team",
        "license": "MIT",
        "api": {
            "services": [
                {
                    "name": "crm.contacts",
                    "version": "1.0.0",
                    "description": "Contact management API",
                    "endpoints": [
                        { "method": "GET", "path": "/contacts", "description": "List contacts" },
                        { "method": "POST", "path": "/contacts", "description": "Create contact" },
                    ],
                },
                {
                    "name": "crm.deals",
                    "version": "1.0.0",
                    "description": "Deal management API",
                    "endpoints": [
                        { "method": "GET", "path": "/deals", "description": "List deals" },
                        { "method": "POST", "path": "/deals", "description": "Create deal" },
                    ],
                },
            ],
        },
    }));
    valid(&json!({
        "id": "plugin-analytics",
        "name": "Analytics Plugin",
        "version": "1.0.0",
        "description": "Business Analytics and Reporting",
        "category": "Analytics",
        "author": "Plexica Team",
        "license": "MIT",
        "api": {
            "services": [{
                "name": "analytics.reports",
                "version": "1.0.0",
                "description": "Report generation API",
                "endpoints": [
                    { "method": "GET", "path": "/reports", "description": "List reports" },
                    { "method": "POST", "path": "/reports/:id/run", "description": "Run report" },
                ],
            }],
            "dependencies": [
                {
                    "pluginId": "plugin-crm",
                    "serviceName": "crm.contacts",
                    "version": "^1.0.0",
                    "required": true,
                    "reason": "Analyzes CRM contacts data",
                },
                {
                    "pluginId": "plugin-crm",
                    "serviceName": "crm.deals",
                    "version": "^1.0.0",
                    "required": true,
                    "reason": "Generates deal pipeline reports",
                },
            ],
        },
    }));
}

#[test]
fn original_service_examples_are_valid() {
    let manifest = valid(&with_service(json!({
        "name": "crm.contacts",
        "version": "1.0.0",
        "baseUrl": "http://localhost:3100",
        "endpoints": [{ "method": "GET", "path": "/contacts" }],
        "metadata": { "rateLimit": 1000, "cacheTTL": 300 },
    })));
    let service = &manifest.services[0];
    assert_eq!(service.base_url.as_deref(), Some("http://localhost:3100"));
    assert_eq!(service.metadata["rateLimit"], json!(1000));
}

#[test]
fn api_section_may_be_empty_or_partial() {
    valid(&with_api(json!({})));
    valid(&with_api(json!({ "services": [] })));
    valid(&with_api(json!({
        "dependencies": [{ "pluginId": "plugin-auth", "version": "^2.0.0", "required": true }],
    })));
}

// ----- the example manifests of spec §8 -----

#[test]
fn crm_example_manifest_is_valid() {
    let manifest = valid(&serde_json::from_str(CRM_JSON).unwrap());
    assert_eq!(manifest.id.as_str(), "plugin-crm");
    assert_eq!(manifest.version.to_string(), "1.0.0");
    let names: Vec<&str> = manifest.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["crm.contacts", "crm.deals"]);

    let contacts = &manifest.services[0];
    let routes: Vec<String> = contacts
        .endpoints
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert_eq!(
        routes,
        [
            "GET /contacts",
            "GET /contacts/:id",
            "GET /contacts/company/:company",
            "GET /contacts/tag/:tag",
            "POST /contacts",
            "PUT /contacts/:id",
            "DELETE /contacts/:id",
        ]
    );
    for endpoint in &contacts.endpoints {
        let expected = if endpoint.method == HttpMethod::Get {
            "plugin.crm.contacts.read"
        } else {
            "plugin.crm.contacts.write"
        };
        assert_eq!(endpoint.permissions, [expected], "{}", endpoint.path);
    }
    assert_eq!(contacts.metadata["rateLimit"], json!(100));
    assert_eq!(contacts.metadata["cacheTTL"], json!(300));

    let deals = &manifest.services[1];
    let deal_routes: Vec<String> = deals
        .endpoints
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert!(deal_routes.contains(&"DELETE /deals/:id".to_owned()));
    assert!(deal_routes.contains(&"GET /deals/pipeline/summary".to_owned()));
    assert_eq!(deals.endpoints.len(), 8);

    let permissions: Vec<(&str, &str)> = manifest
        .permissions
        .iter()
        .map(|p| (p.resource.as_str(), p.action.as_str()))
        .collect();
    assert_eq!(
        permissions,
        [
            ("contacts", "read"),
            ("contacts", "write"),
            ("deals", "read"),
            ("deals", "write"),
        ]
    );
    assert!(manifest.dependencies.is_empty());
    assert_eq!(manifest.events.publishes.len(), 6);
    assert!(
        manifest
            .events
            .publishes
            .iter()
            .all(|topic| topic.starts_with("plugin.crm."))
    );
    assert!(manifest.events.subscribes.is_empty());
}

#[test]
fn analytics_example_manifest_is_valid() {
    let manifest = valid(&serde_json::from_str(ANALYTICS_JSON).unwrap());
    assert_eq!(manifest.id.as_str(), "plugin-analytics");
    assert_eq!(manifest.services.len(), 1);
    assert_eq!(manifest.services[0].name.as_str(), "analytics.reports");
    let routes: Vec<String> = manifest.services[0]
        .endpoints
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert_eq!(
        routes,
        ["GET /reports", "GET /reports/:id", "POST /reports/:id/run"]
    );

    let crm_version = Version::parse("1.0.0").unwrap();
    let services: Vec<&str> = manifest
        .dependencies
        .iter()
        .map(|d| {
            assert_eq!(d.plugin_id.as_str(), "plugin-crm");
            assert_eq!(d.range.as_str(), "^1.0.0");
            assert!(d.range.satisfies(&crm_version));
            assert!(d.required);
            assert!(d.reason.is_some());
            d.service_name.as_ref().map_or("", ServiceName::as_str)
        })
        .collect();
    assert_eq!(services, ["crm.contacts", "crm.deals"]);
    assert!(manifest.events.subscribes.is_empty());
    let patterns: Vec<(&str, &str)> = manifest
        .events
        .subscriptions
        .iter()
        .map(|s| (s.pattern.as_str(), s.endpoint.as_str()))
        .collect();
    assert_eq!(
        patterns,
        [
            ("plugin.crm.contact.*", "/events"),
            ("plugin.crm.deal.*", "/events")
        ]
    );
    assert!(manifest.events.publishes.is_empty());
}

#[test]
fn example_manifests_match_the_spec_sample_files() {
    // Guards against the examples drifting from what the tests above were written for.
    let crm: Value = serde_json::from_str(CRM_JSON).unwrap();
    let analytics: Value = serde_json::from_str(ANALYTICS_JSON).unwrap();
    assert_eq!(crm["api"]["dependencies"], json!([]));
    assert_eq!(
        analytics["api"]["dependencies"].as_array().unwrap().len(),
        2
    );
}

// ----- the original suite's invalid examples, with exact paths -----

#[test]
fn invalid_plugin_id_is_reported_at_id() {
    let mut manifest = minimal();
    manifest["id"] = json!("invalid-id");
    assert_eq!(
        errors(&manifest),
        pairs(&[(
            "id",
            "plugin id must start with \"plugin-\" followed by lowercase letters, digits or hyphens"
        )])
    );
}

#[test]
fn invalid_version_is_reported_at_version() {
    let mut manifest = minimal();
    manifest["version"] = json!("v1.0");
    let errors = errors(&manifest);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, "version");
    assert!(
        errors[0].1.starts_with("invalid version \"v1.0\""),
        "{}",
        errors[0].1
    );
}

#[test]
fn missing_required_fields_are_each_reported() {
    assert_eq!(
        errors(&json!({ "id": "plugin-test", "name": "Test Plugin" })),
        pairs(&[
            ("version", "missing required field \"version\""),
            ("description", "missing required field \"description\""),
        ])
    );
    assert_eq!(paths(&json!({})), ["id", "name", "version", "description"]);
}

#[test]
fn service_without_endpoints_is_rejected() {
    let manifest =
        with_service(json!({ "name": "crm.contacts", "version": "1.0.0", "endpoints": [] }));
    assert_eq!(
        errors(&manifest),
        pairs(&[(
            "api.services.0.endpoints",
            "a service must declare at least one endpoint"
        )])
    );
    let missing = with_service(json!({ "name": "crm.contacts", "version": "1.0.0" }));
    assert_eq!(
        errors(&missing),
        pairs(&[(
            "api.services.0.endpoints",
            "missing required field \"endpoints\""
        )])
    );
}

#[test]
fn invalid_service_names_are_reported_at_the_name() {
    for name in ["invalid-name", "invalid name", "crm", "crm.a.b", "CRM.x"] {
        let manifest = with_service(json!({
            "name": name,
            "version": "1.0.0",
            "endpoints": [{ "method": "GET", "path": "/" }],
        }));
        assert_eq!(paths(&manifest), ["api.services.0.name"], "name {name:?}");
    }
}

#[test]
fn dependency_plugin_id_and_required_flag_are_checked() {
    assert_eq!(
        paths(&with_dependency(
            json!({ "pluginId": "invalid", "version": "^1.0.0", "required": true })
        )),
        ["api.dependencies.0.pluginId"]
    );
    assert_eq!(
        errors(&with_dependency(
            json!({ "pluginId": "plugin-crm", "version": "^1.0.0" })
        )),
        pairs(&[(
            "api.dependencies.0.required",
            "missing required field \"required\""
        )])
    );
    assert_eq!(
        errors(&with_dependency(
            json!({ "pluginId": "plugin-crm", "version": "^1.0.0", "required": "yes" })
        )),
        pairs(&[(
            "api.dependencies.0.required",
            "expected a boolean, found a string"
        )])
    );
    assert_eq!(
        paths(&with_dependency(
            json!({ "pluginId": "plugin-crm", "serviceName": "crm", "version": "^1.0.0", "required": true })
        )),
        ["api.dependencies.0.serviceName"]
    );
    // serviceName and reason are optional; required may be false.
    valid(&with_dependency(json!({
        "pluginId": "plugin-crm",
        "version": "^1.0.0",
        "required": false,
        "reason": "Optional integration with CRM",
    })));
}

// ----- version ranges in dependencies -----

#[test]
fn dependency_versions_accept_the_npm_range_grammar() {
    for range in [
        "^1.0.0",
        "~2.3.4",
        ">=1.0.0",
        ">1.0.0",
        "1.0.0",
        ">=1.0.0 <2.0.0",
        "1.x",
        "1.0.0 - 2.0.0",
        "^1.0.0 || ^2.0.0",
        "*",
        "~1.2",
    ] {
        let manifest = valid(&with_dependency(json!({
            "pluginId": "plugin-test",
            "version": range,
            "required": true,
        })));
        assert_eq!(manifest.dependencies[0].range.as_str(), range);
    }
}

#[test]
fn dependency_versions_reject_invalid_ranges() {
    for range in ["latest", ">>1", "abc", "", "   ", "^1.0.0 ||", "1 2"] {
        let errors = errors(&with_dependency(json!({
            "pluginId": "plugin-test",
            "version": range,
            "required": true,
        })));
        assert_eq!(errors.len(), 1, "range {range:?}: {errors:?}");
        assert_eq!(errors[0].0, "api.dependencies.0.version", "range {range:?}");
        assert!(
            errors[0].1.starts_with("invalid version range"),
            "range {range:?}: {}",
            errors[0].1
        );
    }
}

// ----- endpoints -----

#[test]
fn endpoint_methods_and_paths_from_the_original_are_valid() {
    for (method, path) in [
        ("GET", "/contacts"),
        ("POST", "/contacts"),
        ("PUT", "/contacts/:id"),
        ("PATCH", "/contacts/:id"),
        ("DELETE", "/contacts/:id"),
        ("GET", "/contacts/:id/deals/:dealId"),
    ] {
        let manifest = valid(&with_endpoint(json!({ "method": method, "path": path })));
        let endpoint = &manifest.services[0].endpoints[0];
        assert_eq!(endpoint.method.as_str(), method);
        assert_eq!(endpoint.path, path);
    }
}

#[test]
fn endpoint_paths_allow_dots_inside_segments() {
    for path in [
        "/",
        "/files.json",
        "/v1.2/items",
        "/a.b.c",
        "/.well-known",
        "/assets/*",
        "/files/:name.:ext",
        "/snake_case/kebab-case/CamelCase/123",
        "/...",
    ] {
        valid(&with_endpoint(json!({ "method": "GET", "path": path })));
    }
}

#[test]
fn endpoint_paths_reject_bad_shapes() {
    let cases = [
        ("contacts", "path must start with \"/\""),
        ("", "path must start with \"/\""),
        (
            "//",
            "path must not contain empty segments (\"//\" or a trailing \"/\")",
        ),
        (
            "/a//b",
            "path must not contain empty segments (\"//\" or a trailing \"/\")",
        ),
        (
            "/contacts/",
            "path must not contain empty segments (\"//\" or a trailing \"/\")",
        ),
        ("/.", "path must not contain a \".\" segment"),
        ("/./contacts", "path must not contain a \".\" segment"),
        ("/contacts/..", "path must not contain a \"..\" segment"),
        ("/../etc/passwd", "path must not contain a \"..\" segment"),
        (
            "/a b",
            "path contains ' '; only letters, digits, '-', '_', ':', '*', '.' and '/' are allowed",
        ),
        (
            "/contacts?x=1",
            "path contains '?'; only letters, digits, '-', '_', ':', '*', '.' and '/' are allowed",
        ),
        (
            "/caf\u{e9}",
            "path contains '\u{e9}'; only letters, digits, '-', '_', ':', '*', '.' and '/' are allowed",
        ),
        (
            "/a%2e",
            "path contains '%'; only letters, digits, '-', '_', ':', '*', '.' and '/' are allowed",
        ),
    ];
    for (path, message) in cases {
        assert_eq!(
            errors(&with_endpoint(json!({ "method": "GET", "path": path }))),
            pairs(&[("api.services.0.endpoints.0.path", message)]),
            "path {path:?}"
        );
    }
}

#[test]
fn endpoint_methods_must_be_upper_case_known_methods() {
    for method in ["get", "Get", "HEAD", "OPTIONS", ""] {
        assert_eq!(
            errors(&with_endpoint(json!({ "method": method, "path": "/x" }))),
            pairs(&[(
                "api.services.0.endpoints.0.method",
                &format!(
                    "method must be one of GET, POST, PUT, PATCH, DELETE (upper case), got \"{method}\""
                ),
            )]),
        );
    }
}

#[test]
fn endpoints_are_not_strict_but_known_fields_are_typed() {
    let manifest = valid(&with_endpoint(json!({
        "method": "POST",
        "path": "/contacts",
        "description": "Create",
        "permissions": ["contacts.create", "contacts.write"],
        "metadata": { "rateLimit": 100, "cache": true },
        "requiresAuth": true,
    })));
    let endpoint = &manifest.services[0].endpoints[0];
    assert_eq!(endpoint.description.as_deref(), Some("Create"));
    assert_eq!(endpoint.permissions, ["contacts.create", "contacts.write"]);
    assert_eq!(endpoint.metadata["cache"], json!(true));

    assert_eq!(
        errors(&with_endpoint(json!({
            "method": "GET",
            "path": "/x",
            "description": 5,
            "permissions": ["ok", 7],
            "metadata": [],
        }))),
        pairs(&[
            (
                "api.services.0.endpoints.0.description",
                "expected a string, found a number"
            ),
            (
                "api.services.0.endpoints.0.permissions.1",
                "expected a string, found a number"
            ),
            (
                "api.services.0.endpoints.0.metadata",
                "expected an object, found an array"
            ),
        ])
    );
    assert_eq!(
        errors(&with_endpoint(json!({ "path": "/x" }))),
        pairs(&[(
            "api.services.0.endpoints.0.method",
            "missing required field \"method\""
        )])
    );
}

// ----- strict objects -----

#[test]
fn unknown_top_level_fields_are_reported_at_the_root_one_per_key() {
    let mut manifest = minimal();
    manifest["foo"] = json!(1);
    manifest["bar"] = json!({});
    assert_eq!(
        errors(&manifest),
        pairs(&[("", "unknown field \"bar\""), ("", "unknown field \"foo\"")])
    );
}

#[test]
fn unknown_fields_in_every_strict_object_are_reported() {
    let mut manifest = with_api(json!({
        "services": [{
            "name": "crm.contacts",
            "version": "1.0.0",
            "endpoints": [{ "method": "GET", "path": "/c" }],
            "basePath": "/crm",
        }],
        "dependencies": [{
            "pluginId": "plugin-auth",
            "version": "^1.0.0",
            "required": true,
            "optional": false,
        }],
        "exports": [],
    }));
    manifest["events"] = json!({ "publishes": [], "emits": [] });
    assert_eq!(
        errors(&manifest),
        pairs(&[
            ("api", "unknown field \"exports\""),
            ("api.services.0", "unknown field \"basePath\""),
            ("api.dependencies.0", "unknown field \"optional\""),
            ("events", "unknown field \"emits\""),
        ])
    );
}

// ----- type errors -----

#[test]
fn wrong_json_types_are_reported_with_their_path() {
    assert_eq!(
        errors(&json!([])),
        pairs(&[("", "expected an object, found an array")])
    );
    assert_eq!(
        errors(&json!(null)),
        pairs(&[("", "expected an object, found null")])
    );

    let mut manifest = minimal();
    manifest["name"] = json!(42);
    manifest["description"] = json!(null);
    manifest["api"] = json!([]);
    manifest["events"] = json!("crm.*");
    assert_eq!(
        errors(&manifest),
        pairs(&[
            ("name", "expected a string, found a number"),
            ("description", "expected a string, found null"),
            ("api", "expected an object, found an array"),
            ("events", "expected an object, found a string"),
        ])
    );

    assert_eq!(
        errors(&with_api(json!({ "services": {}, "dependencies": "none" }))),
        pairs(&[
            ("api.services", "expected an array, found an object"),
            ("api.dependencies", "expected an array, found a string"),
        ])
    );
    assert_eq!(
        errors(&with_service(json!({
            "name": "crm.contacts",
            "version": 1,
            "endpoints": ["GET /x"],
            "metadata": "none",
        }))),
        pairs(&[
            (
                "api.services.0.version",
                "expected a string, found a number"
            ),
            (
                "api.services.0.endpoints.0",
                "expected an object, found a string"
            ),
            (
                "api.services.0.metadata",
                "expected an object, found a string"
            ),
        ])
    );
}

#[test]
fn optional_top_level_fields_get_light_type_checks() {
    let mut manifest = minimal();
    manifest["category"] = json!("crm");
    manifest["translations"] = json!({ "namespaces": ["crm"], "supportedLocales": ["en"] });
    manifest["config"] = json!([{ "key": "currency", "type": "select" }]);
    manifest["configuration"] = json!([]);
    manifest["navigation"] = json!([{ "label": "CRM", "path": "/crm" }]);
    manifest["backend"] = json!("dist/index.js");
    manifest["frontend"] = json!({ "remoteEntry": "https://cdn.example.com/remoteEntry.js" });
    manifest["entryPoints"] = json!({ "backend": "dist/index.js" });
    manifest["dependencies"] = json!({ "lodash": "^4.17.0" });
    manifest["lifecycle"] = json!({ "install": "scripts/install.js" });
    manifest["hooks"] = json!({ "onEnable": "hooks/enable.js" });
    manifest["metadata"] = json!({ "keywords": ["crm"] });
    manifest["runtime"] = json!({ "type": "container", "image": "crm:1" });
    valid(&manifest);

    let mut manifest = minimal();
    manifest["category"] = json!(3);
    manifest["translations"] = json!("en");
    manifest["config"] = json!({});
    manifest["configuration"] = json!(["key"]);
    manifest["navigation"] = json!("none");
    manifest["entryPoints"] = json!([]);
    manifest["dependencies"] = json!({ "lodash": "^4", "react": 18 });
    manifest["lifecycle"] = json!({ "install": true, "custom": 1 });
    manifest["hooks"] = json!({ "onUpdate": [] });
    manifest["metadata"] = json!([]);
    manifest["runtime"] = json!("docker");
    assert_eq!(
        errors(&manifest),
        pairs(&[
            ("category", "expected a string, found a number"),
            ("translations", "expected an object, found a string"),
            ("config", "expected an array, found an object"),
            ("configuration.0", "expected an object, found a string"),
            ("navigation", "expected an array, found a string"),
            ("entryPoints", "expected an object, found an array"),
            ("dependencies.react", "expected a string, found a number"),
            ("lifecycle.install", "expected a string, found a boolean"),
            ("hooks.onUpdate", "expected a string, found an array"),
            ("metadata", "expected an object, found an array"),
            ("runtime", "expected an object, found a string"),
        ])
    );
}

#[test]
fn permissions_are_typed() {
    let mut manifest = minimal();
    manifest["permissions"] = json!([
        { "resource": "contacts", "action": "read", "description": "Read contacts" },
    ]);
    assert_eq!(
        valid(&manifest).permissions,
        [PermissionSpec {
            resource: "contacts".to_owned(),
            action: "read".to_owned(),
            description: "Read contacts".to_owned(),
        }]
    );

    manifest["permissions"] = json!([
        { "resource": "contacts", "action": 1, "description": "x" },
        { "resource": "contacts" },
        "contacts:read",
    ]);
    assert_eq!(
        errors(&manifest),
        pairs(&[
            ("permissions.0.action", "expected a string, found a number"),
            ("permissions.1.action", "missing required field \"action\""),
            (
                "permissions.1.description",
                "missing required field \"description\""
            ),
            ("permissions.2", "expected an object, found a string"),
        ])
    );
}

// ----- all errors at once -----

#[test]
fn three_problems_yield_three_errors() {
    let manifest = json!({
        "id": "crm",
        "name": "CRM",
        "version": "1.0",
        "description": "x",
        "api": {
            "services": [{
                "name": "crm.contacts",
                "version": "1.0.0",
                "endpoints": [
                    { "method": "GET", "path": "/contacts" },
                    { "method": "GET", "path": "/contacts/../admin" },
                ],
            }],
        },
    });
    assert_eq!(
        paths(&manifest),
        ["id", "version", "api.services.0.endpoints.1.path"]
    );
}

#[test]
fn errors_deep_in_the_tree_are_all_collected() {
    let manifest = json!({
        "id": "plugin-crm",
        "name": "",
        "version": "1.0.0",
        "description": "x",
        "homepage": "ftp://example.com",
        "unexpected": true,
        "api": {
            "services": [
                {
                    "name": "crm.contacts",
                    "version": "1.0.0",
                    "endpoints": [{ "method": "get", "path": "contacts" }],
                },
                {
                    "name": "crm.deals",
                    "version": "01.0.0",
                    "baseUrl": "localhost:3100",
                    "endpoints": [{ "method": "GET", "path": "/deals" }],
                },
            ],
            "dependencies": [{ "pluginId": "plugin-auth", "version": ">>1", "required": true }],
        },
        "events": { "publishes": ["crm.contact.created", "CRM.Bad"] },
    });
    assert_eq!(
        paths(&manifest),
        [
            "",
            "name",
            "homepage",
            "api.services.0.endpoints.0.method",
            "api.services.0.endpoints.0.path",
            "api.services.1.version",
            "api.services.1.baseUrl",
            "api.dependencies.0.version",
            "events.publishes.1",
        ]
    );
}

// ----- duplicates -----

#[test]
fn duplicate_service_names_are_rejected() {
    let service = json!({
        "name": "crm.contacts",
        "version": "1.0.0",
        "endpoints": [{ "method": "GET", "path": "/contacts" }],
    });
    let other = json!({
        "name": "crm.deals",
        "version": "1.0.0",
        "endpoints": [{ "method": "GET", "path": "/deals" }],
    });
    // The third copy also has another problem: both are reported.
    let broken_copy = json!({ "name": "crm.contacts", "version": "x", "endpoints": [] });
    assert_eq!(
        errors(&with_api(
            json!({ "services": [service, other, service, broken_copy] })
        )),
        pairs(&[
            (
                "api.services.2.name",
                "duplicate service name \"crm.contacts\", already declared at api.services.0"
            ),
            (
                "api.services.3.version",
                "invalid version \"x\": expected MAJOR.MINOR.PATCH with optional -prerelease and \
                 +build, like \"1.2.3\" or \"1.2.3-beta.1\""
            ),
            (
                "api.services.3.endpoints",
                "a service must declare at least one endpoint"
            ),
            (
                "api.services.3.name",
                "duplicate service name \"crm.contacts\", already declared at api.services.0"
            ),
        ])
    );
}

#[test]
fn duplicate_endpoints_in_one_service_are_rejected() {
    let manifest = with_service(json!({
        "name": "crm.contacts",
        "version": "1.0.0",
        "endpoints": [
            { "method": "GET", "path": "/contacts" },
            { "method": "POST", "path": "/contacts" },
            { "method": "GET", "path": "/contacts/:id" },
            { "method": "GET", "path": "/contacts", "description": "again" },
        ],
    }));
    assert_eq!(
        errors(&manifest),
        pairs(&[(
            "api.services.0.endpoints.3",
            "duplicate endpoint \"GET /contacts\", already declared at api.services.0.endpoints.0"
        )])
    );

    // The same route in two different services is fine.
    valid(&with_api(json!({
        "services": [
            { "name": "crm.a", "version": "1.0.0", "endpoints": [{ "method": "GET", "path": "/x" }] },
            { "name": "crm.b", "version": "1.0.0", "endpoints": [{ "method": "GET", "path": "/x" }] },
        ],
    })));
}

// ----- events -----

#[test]
fn events_are_optional_and_strict() {
    let mut manifest = minimal();
    manifest["events"] = json!({});
    assert_eq!(valid(&manifest).events, EventsSpec::default());

    manifest["events"] = json!({
        "publishes": ["crm.contact.created", "crm.deal_updated", "a"],
        "subscribes": ["crm.*", "analytics.report-ready", "core.v2.tenant.created"],
    });
    let events = valid(&manifest).events;
    assert_eq!(
        events.publishes,
        ["crm.contact.created", "crm.deal_updated", "a"]
    );
    assert_eq!(events.subscribes[0], "crm.*");
}

#[test]
fn invalid_event_names_are_reported_per_item() {
    let mut manifest = minimal();
    manifest["events"] = json!({
        "publishes": ["ok.name", "", "Crm.Contact"],
        "subscribes": ["a b", 3, "x".repeat(201), "y".repeat(200)],
    });
    assert_eq!(
        errors(&manifest),
        pairs(&[
            ("events.publishes.1", "event name must not be empty"),
            (
                "events.publishes.2",
                "event name contains 'C'; only lowercase letters, digits, '.', '_', '*' and '-' are allowed"
            ),
            (
                "events.subscribes.0",
                "event name contains ' '; only lowercase letters, digits, '.', '_', '*' and '-' are allowed"
            ),
            ("events.subscribes.1", "expected a string, found a number"),
            (
                "events.subscribes.2",
                "event name must be at most 200 characters long, got 201"
            ),
        ])
    );
    manifest["events"] = json!({ "publishes": "crm.contact.created" });
    assert_eq!(
        errors(&manifest),
        pairs(&[("events.publishes", "expected an array, found a string")])
    );
}

// ----- URLs and lengths -----

#[test]
fn homepage_repository_and_base_url_must_be_http_urls() {
    for url in [
        "http://localhost:3100",
        "https://plexica.io",
        "https://github.com/plexica/plugin-crm",
        "http://10.0.0.1:8080/api?x=1#y",
        "https://user@example.com",
    ] {
        let mut manifest = minimal();
        manifest["homepage"] = json!(url);
        manifest["repository"] = json!(url);
        let manifest = valid(&manifest);
        assert_eq!(manifest.homepage.as_deref(), Some(url));
    }
    for url in [
        "",
        "plexica.io",
        "ftp://plexica.io",
        "http://",
        "https:///path",
        "http://:8080",
        "https://plexica .io",
        "https://plexica.io/a b",
        "HTTP//x",
        "javascript:alert(1)",
    ] {
        let mut manifest = minimal();
        manifest["homepage"] = json!(url);
        manifest["repository"] = json!(url);
        assert_eq!(paths(&manifest), ["homepage", "repository"], "url {url:?}");
        assert_eq!(
            paths(&with_service(json!({
                "name": "crm.contacts",
                "version": "1.0.0",
                "baseUrl": url,
                "endpoints": [{ "method": "GET", "path": "/" }],
            }))),
            ["api.services.0.baseUrl"],
            "url {url:?}"
        );
    }
}

#[test]
fn string_lengths_follow_the_schema() {
    let mut manifest = minimal();
    manifest["name"] = json!("n".repeat(100));
    manifest["description"] = json!("d".repeat(1000));
    manifest["author"] = json!("a".repeat(200));
    manifest["license"] = json!("l".repeat(50));
    valid(&manifest);
    manifest["description"] = json!("");
    valid(&manifest);

    manifest["name"] = json!("n".repeat(101));
    manifest["description"] = json!("d".repeat(1001));
    manifest["author"] = json!("a".repeat(201));
    manifest["license"] = json!("l".repeat(51));
    assert_eq!(
        errors(&manifest),
        pairs(&[
            ("name", "must be at most 100 characters long, got 101"),
            (
                "description",
                "must be at most 1000 characters long, got 1001"
            ),
            ("author", "must be at most 200 characters long, got 201"),
            ("license", "must be at most 50 characters long, got 51"),
        ])
    );

    manifest = minimal();
    manifest["name"] = json!("");
    assert_eq!(
        errors(&manifest),
        pairs(&[("name", "must be at least 1 character(s) long")])
    );

    let long = "r".repeat(501);
    assert_eq!(
        paths(&with_service(json!({
            "name": "crm.contacts",
            "version": "1.0.0",
            "description": long,
            "endpoints": [{ "method": "GET", "path": "/" }],
        }))),
        ["api.services.0.description"]
    );
    assert_eq!(
        paths(&with_dependency(json!({
            "pluginId": "plugin-crm",
            "version": "^1.0.0",
            "required": true,
            "reason": long,
        }))),
        ["api.dependencies.0.reason"]
    );
    // Lengths count characters, not bytes.
    let mut manifest = minimal();
    manifest["name"] = json!("é".repeat(100));
    valid(&manifest);
}

// ----- public types -----

#[test]
fn http_method_round_trips_upper_case() {
    for method in HttpMethod::ALL {
        assert_eq!(HttpMethod::parse(method.as_str()), Some(method));
        assert_eq!(
            serde_json::to_value(method).unwrap(),
            json!(method.as_str())
        );
        assert_eq!(method.to_string(), method.as_str());
    }
    assert_eq!(HttpMethod::parse("get"), None);
}

#[test]
fn manifest_errors_serialize_and_display() {
    let error = ManifestError {
        path: "api.services.0.name".to_owned(),
        message: "bad".to_owned(),
    };
    assert_eq!(
        serde_json::to_value(&error).unwrap(),
        json!({ "path": "api.services.0.name", "message": "bad" })
    );
    assert_eq!(error.to_string(), "api.services.0.name: bad");
    let root = ManifestError {
        path: String::new(),
        message: "unknown field \"x\"".to_owned(),
    };
    assert_eq!(root.to_string(), "unknown field \"x\"");
}

#[test]
fn manifest_serializes_with_manifest_field_names() {
    let manifest = valid(&serde_json::from_str(ANALYTICS_JSON).unwrap());
    let value = serde_json::to_value(&manifest).unwrap();
    assert_eq!(value["id"], json!("plugin-analytics"));
    assert_eq!(value["dependencies"][0]["pluginId"], json!("plugin-crm"));
    assert_eq!(value["dependencies"][0]["version"], json!("^1.0.0"));
    assert_eq!(
        value["services"][0]["endpoints"][2]["method"],
        json!("POST")
    );
}

#[test]
fn subscriptions_are_objects_in_subscribes() {
    let mut manifest = minimal();
    manifest["events"] = json!({ "subscribes": [
        "crm.contact.created",
        { "pattern": "plugin.crm.contact.*", "endpoint": "/events/crm" },
        { "pattern": "plexhub.plugin.#", "endpoint": "/events/hub", "maxAttempts": 8 },
    ]});
    let events = valid(&manifest).events;
    assert_eq!(events.subscribes, ["crm.contact.created"]);
    let declared: Vec<(&str, &str, u32)> = events
        .subscriptions
        .iter()
        .map(|s| (s.pattern.as_str(), s.endpoint.as_str(), s.max_attempts))
        .collect();
    assert_eq!(
        declared,
        [
            ("plugin.crm.contact.*", "/events/crm", 4),
            ("plexhub.plugin.#", "/events/hub", 8),
        ]
    );

    manifest["events"] = json!({ "subscribes": [
        { "pattern": "plugin.#.x", "endpoint": "/events/:id", "maxAttempts": 0, "retry": true },
        { "endpoint": "events" },
    ]});
    let found = paths(&manifest);
    for expected in [
        "events.subscribes.0.pattern",
        "events.subscribes.0.endpoint",
        "events.subscribes.0.maxAttempts",
        "events.subscribes.0",
        "events.subscribes.1.pattern",
        "events.subscribes.1.endpoint",
    ] {
        assert!(
            found.contains(&expected.to_owned()),
            "{expected} in {found:?}"
        );
    }
}

// ----- tags -----

#[test]
fn tags_are_checked_each_at_its_path() {
    let mut manifest = minimal();
    manifest["tags"] = json!(["crm", "sales-2"]);
    assert_eq!(valid(&manifest).tags, vec!["crm", "sales-2"]);
    manifest["tags"] = json!(["crm", "Sales", "crm", 3]);
    assert_eq!(
        paths(&manifest),
        vec!["tags.1", "tags.2", "tags.3"],
        "{:?}",
        errors(&manifest)
    );
    manifest["tags"] = json!(vec!["t"; TAGS_MAX + 1]);
    assert_eq!(paths(&manifest), vec!["tags"]);
}

// ----- frontend (the shell's remote) -----

fn with_frontend(frontend: Value) -> Value {
    let mut manifest = minimal();
    manifest["frontend"] = frontend;
    manifest
}

#[test]
fn a_frontend_remote_is_parsed_with_its_routes_and_menu() {
    let integrity = format!("sha384-{}", "A".repeat(64));
    let manifest = valid(&with_frontend(json!({
        "remoteEntry": "https://cdn.example.com/test/remoteEntry.js",
        "exposedModules": {"./Page": "./src/Page.tsx", "./Widget": "./src/Widget.tsx"},
        "routes": [{"path": "/test", "module": "./Page", "title": "Test"}],
        "menu": [{"label": "Test", "path": "/test", "icon": "flask", "order": 3}],
        "integrity": integrity,
    })));
    let frontend = manifest.frontend.expect("frontend");
    assert_eq!(frontend.scope, "plugin_test");
    assert_eq!(frontend.exposed_modules.len(), 2);
    assert_eq!(frontend.routes[0].module, "./Page");
    assert_eq!(frontend.menu[0].order, 3);
    assert_eq!(frontend.integrity, Some(integrity));
    // The original's free-form string stays valid and is no remote.
    assert_eq!(valid(&with_frontend(json!("dist/frontend"))).frontend, None);
}

#[test]
fn frontend_errors_are_reported_each_at_its_path() {
    let manifest = with_frontend(json!({
        "remoteEntry": "http://cdn.example.com/remoteEntry.js",
        "scope": "9lives",
        "exposedModules": {"Page": "./src/Page.tsx", "./Ok": "./src/Ok.tsx"},
        "routes": [
            {"path": "crm", "module": "./Ok"},
            {"path": "/crm", "module": "./Missing"},
            {"path": "/other", "module": "./Ok", "extra": true},
        ],
        "menu": [{"label": "", "path": "/nowhere", "order": "first"}],
        "integrity": "sha256-abc",
        "port": 3201,
    }));
    let reported = paths(&manifest);
    for expected in [
        "frontend",
        "frontend.remoteEntry",
        "frontend.scope",
        "frontend.exposedModules.Page",
        "frontend.routes.0.path",
        "frontend.routes.1.module",
        "frontend.routes.2",
        "frontend.menu.0.label",
        "frontend.menu.0.path",
        "frontend.menu.0.order",
        "frontend.integrity",
    ] {
        assert!(
            reported.contains(&expected.to_owned()),
            "{expected}: {reported:?}"
        );
    }
    let remote = errors(&manifest)
        .into_iter()
        .find(|(path, _)| path == "frontend.remoteEntry")
        .expect("remoteEntry error");
    assert!(remote.1.contains("https"), "{}", remote.1);
    assert_eq!(
        paths(&with_frontend(json!({}))),
        vec!["frontend.remoteEntry"]
    );
}
